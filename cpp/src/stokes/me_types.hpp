// Data shared by milne_eddington.cpp and the per-ISA ME kernels (internal header).
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

namespace fastinv::stokes::detail {

constexpr double kInvCkms = 1.0 / 299792.458;  // 1 / c [s/km]
constexpr double kLarmor = 4.6686448e-13;      // dlambda_B per unit g [A] / (lambda0^2 [A^2] B [G])

struct MEComponent {
  int group;      // 0 sigma_b, 1 pi, 2 sigma_r
  double shift;   // in units of dlambda_B
  double weight;  // strength_ratio * strength / sqrt(pi)
};

struct MELineData {
  double lambda0;
  double scale;  // lambda0 / lambda0 of the first line
  double ratio;  // eta0 of this line / eta0
  std::vector<MEComponent> comps;
};

// One profile's parameters, angles in radians, Doppler width in Angstrom.
struct MEProfileInput {
  double B, inclination, azimuth, vlos, doppler_width, damping, eta0, S0, S1, filling_factor, mu;
  // me_profile_deriv: whether the filling factor's derivative row is wanted. At f = 1 without
  // it the unmagnetised component contributes nothing, and its Voigt functions are skipped
  // (that row is then left meaningless).
  bool filling_derivative = true;
};

struct MESegment {
  int group;
  double weight;
  int64_t lo, hi;
  std::size_t offset;
};

// Per-thread scratch, sized by resize(). `segments` has a fixed length that the per-ISA
// kernels index: growing a vector there would instantiate std::vector's shared template
// code inside an AVX-512 unit, and the linker may then hand that copy to the portable path.
struct MEWork {
  std::vector<double> x, sums, near_v, near_h, near_f;
  std::vector<MESegment> segments;
  void resize(int64_t n, std::size_t max_components) {
    x.resize(n);
    sums.resize(8 * n);
    near_v.resize(n * max_components);
    near_h.resize(n * max_components);
    near_f.resize(n * max_components);
    segments.resize(max_components);
  }
};

// Scratch of the derivative kernel (me_deriv_kernel.hpp) in its precision R.
constexpr int kMeDerivs = 10;  // B, gamma, chi, v, Doppler width, a, eta0, S0, S1, filling factor
template <typename R>
struct MEDerivBuffers {
  std::vector<R> x, u, h, f, sums;
  void resize(int64_t n) {
    x.resize(n);
    u.resize(n);
    h.resize(n);
    f.resize(n);
    sums.resize(32 * n + 16);  // + one block of lanes past the last row (me_deriv_kernel.hpp)
  }
};
// Both precisions' scratch; only the one in use is sized. out32: the float kernel's outputs
// (profile and Jacobian rows).
struct MEDerivWork {
  MEDerivBuffers<double> f64;
  MEDerivBuffers<float> f32;
  std::vector<float> out32;
};

using MEProfileFn = void (*)(const std::vector<MELineData>&, const double* wl, int64_t n, const MEProfileInput&,
                             MEWork&, double* prof);
void me_profile_generic(const std::vector<MELineData>&, const double*, int64_t, const MEProfileInput&, MEWork&,
                        double*);
void me_profile_avx2(const std::vector<MELineData>&, const double*, int64_t, const MEProfileInput&, MEWork&, double*);
void me_profile_avx512(const std::vector<MELineData>&, const double*, int64_t, const MEProfileInput&, MEWork&, double*);
using MEDerivFn = void (*)(const std::vector<MELineData>&, const double* wl, int64_t n, const MEProfileInput&,
                           MEDerivWork&, double* prof, double* jac);
void me_deriv_generic(const std::vector<MELineData>&, const double*, int64_t, const MEProfileInput&, MEDerivWork&,
                      double*, double*);
void me_deriv_avx2(const std::vector<MELineData>&, const double*, int64_t, const MEProfileInput&, MEDerivWork&, double*,
                   double*);
void me_deriv_avx512(const std::vector<MELineData>&, const double*, int64_t, const MEProfileInput&, MEDerivWork&,
                     double*, double*);
// The same in float arithmetic, outputs in float: the inversion's single-precision Jacobian.
using MEDeriv32Fn = void (*)(const std::vector<MELineData>&, const double* wl, int64_t n, const MEProfileInput&,
                             MEDerivWork&, float* prof, float* jac);
void me_deriv32_generic(const std::vector<MELineData>&, const double*, int64_t, const MEProfileInput&, MEDerivWork&,
                        float*, float*);
void me_deriv32_avx2(const std::vector<MELineData>&, const double*, int64_t, const MEProfileInput&, MEDerivWork&,
                     float*, float*);
void me_deriv32_avx512(const std::vector<MELineData>&, const double*, int64_t, const MEProfileInput&, MEDerivWork&,
                       float*, float*);
MEDeriv32Fn select_me_deriv32_kernel();
MEDerivFn select_me_deriv_kernel();
// Gaussian LSF + resampling of rows (resample_kernel.hpp); g: normalised kernel g[-M..M].
// Outputs per register block: the block's accumulators stay in registers across the taps
// (accumulating through memory would chain every tap on a store-to-load round trip).
constexpr int64_t kResampleBlock = 32;
// Scratch doubles the resampling needs for a row of n points and a stride.
inline int64_t resample_scratch(int64_t n, int64_t stride) {
  return stride * ((n + stride - 1) / stride) + kResampleBlock;
}
using ResampleFn = void (*)(const double* in, int64_t rows, int64_t n, const double* g, int64_t M, int64_t first,
                            int64_t stride, int64_t n_out, double* out, double* phase);
void resample_rows_generic(const double*, int64_t, int64_t, const double*, int64_t, int64_t, int64_t, int64_t, double*,
                           double*);
void resample_rows_avx2(const double*, int64_t, int64_t, const double*, int64_t, int64_t, int64_t, int64_t, double*,
                        double*);
void resample_rows_avx512(const double*, int64_t, int64_t, const double*, int64_t, int64_t, int64_t, int64_t, double*,
                          double*);
ResampleFn select_resample_kernel();
// The same for float rows (the float32 Jacobian's, as the derivative kernel writes them), with
// float phases, weights gf and block sums; g (double) for the outputs near the grid's ends;
// phase: resample_scratch(n, stride) floats.
using Resample32Fn = void (*)(const float* in, int64_t rows, int64_t n, const double* g, const float* gf, int64_t M,
                              int64_t first, int64_t stride, int64_t n_out, double* out, float* phase);
void resample_rows32_generic(const float*, int64_t, int64_t, const double*, const float*, int64_t, int64_t, int64_t,
                             int64_t, double*, float*);
void resample_rows32_avx2(const float*, int64_t, int64_t, const double*, const float*, int64_t, int64_t, int64_t,
                          int64_t, double*, float*);
void resample_rows32_avx512(const float*, int64_t, int64_t, const double*, const float*, int64_t, int64_t, int64_t,
                            int64_t, double*, float*);
Resample32Fn select_resample32_kernel();
// gaussian_resample_rows (spectral_operator.hpp) through Resample32Fn: the float32 precision's
// Jacobian rows; kernel as there, the float scratch per thread.
void gaussian_resample_rows32(const float* in, int64_t rows, int64_t n, double h, double sigma, int64_t first,
                              int64_t stride, int64_t n_out, double* out, std::vector<double>& kernel);
// The inversion's normal equations and chi2 (normal_kernel.hpp).
struct NormalKernels {
  void (*normal_equations)(const double* obs, const double* prof, const double* iw, const double* jac, int64_t n,
                           const int* idx, int nf, double* res, double* A, double* g);
  double (*weighted_chi2)(const double* obs, const double* model, const double* iw, int64_t n, double* res);
};
NormalKernels normal_kernels_generic();
NormalKernels normal_kernels_avx2();
NormalKernels normal_kernels_avx512();
NormalKernels select_normal_kernels();
// The kernel matching the Faddeeva ISA in use (faddeeva_isa()).
MEProfileFn select_me_kernel();

}  // namespace fastinv::stokes::detail
