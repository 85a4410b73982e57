// Milne-Eddington per-profile kernel compiled for the avx2 instruction set (me_kernel.hpp) and its derivative version
// (me_deriv_kernel.hpp), the LSF resampling (resample_kernel.hpp) and the
// inversion's normal equations (normal_kernel.hpp).
#define FASTINV_FADDEEVA_NS me_isa_avx2
#include "stokes/me_kernel.hpp"
#include "stokes/me_deriv_kernel.hpp"
#include "stokes/normal_kernel.hpp"
#include "stokes/resample_kernel.hpp"

namespace fastinv::stokes::detail {

void me_profile_avx2(const std::vector<MELineData>& lines, const double* wl, int64_t n, const MEProfileInput& p,
                     MEWork& w, double* prof) {
  me_isa_avx2::me_profile(lines, wl, n, p, w, prof);
}

void me_deriv_avx2(const std::vector<MELineData>& lines, const double* wl, int64_t n, const MEProfileInput& p,
                   MEDerivWork& w, double* prof, double* jac) {
  me_isa_avx2::me_profile_deriv(lines, wl, n, p, w.f64, prof, jac);
}

void me_deriv32_avx2(const std::vector<MELineData>& lines, const double* wl, int64_t n, const MEProfileInput& p,
                     MEDerivWork& w, float* prof, float* jac) {
  me_isa_avx2::me_profile_deriv(lines, wl, n, p, w.f32, prof, jac);
}

void resample_rows_avx2(const double* in, int64_t rows, int64_t n, const double* g, int64_t M, int64_t first,
                        int64_t stride, int64_t n_out, double* out, double* phase) {
  me_isa_avx2::resample_rows(in, rows, n, g, g, M, first, stride, n_out, out, phase);
}

void resample_rows32_avx2(const float* in, int64_t rows, int64_t n, const double* g, const float* gf, int64_t M,
                          int64_t first, int64_t stride, int64_t n_out, double* out, float* phase) {
  me_isa_avx2::resample_rows(in, rows, n, g, gf, M, first, stride, n_out, out, phase);
}

NormalKernels normal_kernels_avx2() { return {&me_isa_avx2::normal_equations, &me_isa_avx2::weighted_chi2}; }

}  // namespace fastinv::stokes::detail
