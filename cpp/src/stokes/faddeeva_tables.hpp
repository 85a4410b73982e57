// Constants shared by the per-ISA Faddeeva kernels (internal header).
#pragma once
#include <array>
#include <cstddef>

namespace fastinv::stokes::detail {

constexpr double kInvPi = 0.31830988618379067154;
constexpr double kInvSqrtPi = 0.56418958354775628695;

// |z|^2 below which Weideman's expansion is used. From |z| = 6 on the 6-node rational is
// accurate to 1e-8 (complex), 3e-7 (H where H > 1e-9) relative to scipy's wofz.
constexpr double kFaddeevaInnerR2 = 36.0;
// Terms of Weideman's expansion: N = 38 keeps H within 2.4e-7 relative down to H = 1e-9
// near the real axis for |z| < 6 (N = 32: 4e-5, N = 36: 8e-7).
constexpr int kWeidemanN = 38;
constexpr std::size_t kFaddeevaChunk = 128;

struct FaddeevaTables {
  double L = 0.0;                      // Weideman's L = sqrt(N / sqrt 2)
  std::array<double, kWeidemanN> c{};  // p(Z) = sum_n c[n] Z^n
  std::array<double, 3> p{};           // far: P(u) = p0 + p1 u + p2 u^2
  std::array<double, 3> q{};           // far: Q(u) = q0 + q1 u + q2 u^2 + u^3
};

const FaddeevaTables& faddeeva_tables();

// One chunk (m <= kFaddeevaChunk) of H, F at x_i - shift; per-ISA implementations.
using FaddeevaChunkFn = void (*)(const FaddeevaTables&, double a, const double* x, double shift, std::size_t m,
                                 double* H, double* F);
void faddeeva_chunk_generic(const FaddeevaTables&, double, const double*, double, std::size_t, double*, double*);
void faddeeva_chunk_avx2(const FaddeevaTables&, double, const double*, double, std::size_t, double*, double*);
void faddeeva_chunk_avx512(const FaddeevaTables&, double, const double*, double, std::size_t, double*, double*);

}  // namespace fastinv::stokes::detail
