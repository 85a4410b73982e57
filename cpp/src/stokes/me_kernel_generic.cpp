// Milne-Eddington per-profile kernel compiled for the generic instruction set (me_kernel.hpp) and its derivative
// version (me_deriv_kernel.hpp), the LSF resampling (resample_kernel.hpp) and the
// inversion's normal equations (normal_kernel.hpp).
#define FASTINV_FADDEEVA_NS me_isa_generic
#include "stokes/me_kernel.hpp"
#include "stokes/me_deriv_kernel.hpp"
#include "stokes/normal_kernel.hpp"
#include "stokes/resample_kernel.hpp"

namespace fastinv::stokes::detail {

void me_profile_generic(const std::vector<MELineData>& lines, const double* wl, int64_t n, const MEProfileInput& p,
                        MEWork& w, double* prof) {
  me_isa_generic::me_profile(lines, wl, n, p, w, prof);
}

void me_deriv_generic(const std::vector<MELineData>& lines, const double* wl, int64_t n, const MEProfileInput& p,
                      MEDerivWork& w, double* prof, double* jac) {
  me_isa_generic::me_profile_deriv(lines, wl, n, p, w.f64, prof, jac);
}

void me_deriv32_generic(const std::vector<MELineData>& lines, const double* wl, int64_t n, const MEProfileInput& p,
                        MEDerivWork& w, float* prof, float* jac) {
  me_isa_generic::me_profile_deriv(lines, wl, n, p, w.f32, prof, jac);
}

void resample_rows_generic(const double* in, int64_t rows, int64_t n, const double* g, int64_t M, int64_t first,
                           int64_t stride, int64_t n_out, double* out, double* phase) {
  me_isa_generic::resample_rows(in, rows, n, g, g, M, first, stride, n_out, out, phase);
}

void resample_rows32_generic(const float* in, int64_t rows, int64_t n, const double* g, const float* gf, int64_t M,
                             int64_t first, int64_t stride, int64_t n_out, double* out, float* phase) {
  me_isa_generic::resample_rows(in, rows, n, g, gf, M, first, stride, n_out, out, phase);
}

NormalKernels normal_kernels_generic() { return {&me_isa_generic::normal_equations, &me_isa_generic::weighted_chi2}; }

}  // namespace fastinv::stokes::detail
