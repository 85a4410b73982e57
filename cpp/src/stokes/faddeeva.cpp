// Faddeeva function: Gauss-Hermite rational far from the origin, Weideman (1994) near it.
// See fastinv/stokes/faddeeva.hpp for conventions and the tested accuracy. The hot loop
// lives in faddeeva_kernel.hpp, compiled per ISA; this file builds the tables, picks the
// kernel at run time and handles the scalar / lower-half-plane cases.
#include "fastinv/stokes/faddeeva.hpp"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <string>

#include "fastinv/error.hpp"
#include "fastinv/runtime.hpp"
#include "stokes/faddeeva_tables.hpp"
#include "stokes/me_types.hpp"

namespace fastinv::stokes {
namespace detail {

namespace {

constexpr double kPi = 3.14159265358979323846;

FaddeevaTables make_tables() {
  FaddeevaTables T;
  // Weideman's coefficients: the DFT of f(t) = exp(-t^2) (L^2 + t^2) sampled at
  // t = L tan(theta/2), theta = k pi / M (his MATLAB listing, done with a direct DFT).
  const int N = kWeidemanN, M = 2 * N, M2 = 2 * M;
  T.L = std::sqrt(N / std::sqrt(2.0));
  std::array<double, 4 * kWeidemanN> f{};  // length 2M; f[0] = 0
  for (int k = -M + 1; k <= M - 1; ++k) {
    const double t = T.L * std::tan(0.5 * k * kPi / M);
    f[1 + (k + M - 1)] = std::exp(-t * t) * (T.L * T.L + t * t);
  }
  // fftshift (even length 2M): g[j] = f[(j + M) mod 2M]; a_m = Re sum_j g[j] e^{-2 pi i jm/2M} / M2
  for (int n = 0; n < N; ++n) {
    const int m = n + 1;
    long double acc = 0.0L;
    for (int j = 0; j < 2 * M; ++j)
      acc += static_cast<long double>(f[(j + M) % (2 * M)]) *
             std::cos(2.0L * 3.14159265358979323846264338L * j * m / (2 * M));
    T.c[n] = static_cast<double>(acc / M2);
  }
  // 6-node Gauss-Hermite quadrature, positive nodes and weights (Abramowitz & Stegun
  // Table 25.10): w(z) ~ (i/pi) sum_k w_k 2z/(z^2 - t_k^2) = (2iz/pi) P(u)/Q(u).
  const double t[3] = {0.436077411927616508679, 1.335849074013696949715, 2.350604973674492222834};
  const double wt[3] = {0.724629595224392524092, 0.157067320322856643916, 0.00453000990550884564086};
  const double tau[3] = {t[0] * t[0], t[1] * t[1], t[2] * t[2]};
  T.q[2] = -(tau[0] + tau[1] + tau[2]);
  T.q[1] = tau[0] * tau[1] + tau[0] * tau[2] + tau[1] * tau[2];
  T.q[0] = -tau[0] * tau[1] * tau[2];
  for (int k = 0; k < 3; ++k) {
    const double a = tau[(k + 1) % 3], b = tau[(k + 2) % 3];
    T.p[2] += wt[k];
    T.p[1] += -wt[k] * (a + b);
    T.p[0] += wt[k] * a * b;
  }
  return T;
}

bool cpu_has(const char* isa) {
#if defined(__x86_64__) || defined(_M_X64)
  __builtin_cpu_init();
  if (std::strcmp(isa, "avx2") == 0) return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  if (std::strcmp(isa, "avx512") == 0)
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
           __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#endif
  (void)isa;
  return false;
}

// One ISA's Stokes kernels, each list written once; the select_* functions below read the
// table of the ISA chosen for the Faddeeva kernel, so every kernel runs the same ISA.
struct StokesKernels {
  const char* name;
  FaddeevaChunkFn faddeeva;
  MEProfileFn profile;
  MEDerivFn deriv;
  MEDeriv32Fn deriv32;
  ResampleFn resample;
  Resample32Fn resample32;
  NormalKernels (*normal)();
};

const StokesKernels kGeneric{
    "generic",           &faddeeva_chunk_generic, &me_profile_generic,      &me_deriv_generic,
    &me_deriv32_generic, &resample_rows_generic,  &resample_rows32_generic, &normal_kernels_generic};
#ifdef FASTINV_STOKES_AVX2
const StokesKernels kAvx2{"avx2",           &faddeeva_chunk_avx2, &me_profile_avx2,      &me_deriv_avx2,
                          &me_deriv32_avx2, &resample_rows_avx2,  &resample_rows32_avx2, &normal_kernels_avx2};
#endif
#ifdef FASTINV_STOKES_AVX512
const StokesKernels kAvx512{
    "avx512",           &faddeeva_chunk_avx512, &me_profile_avx512,      &me_deriv_avx512,
    &me_deriv32_avx512, &resample_rows_avx512,  &resample_rows32_avx512, &normal_kernels_avx512};
#endif

// The best kernels this build and CPU have, lowered by FASTINV_ISA=generic|avx2 (the same
// variable the NN kernels honour).
const StokesKernels& selected() {
  const char* env = std::getenv("FASTINV_ISA");
  // Validated by the engine's parser, so a misspelt value is the same clear error on every path.
  const std::string cap = env && *env ? isa_name(isa_from_name(env)) : "avx512";
#ifdef FASTINV_STOKES_AVX512
  if (cap == "avx512" && cpu_has("avx512")) return kAvx512;
#endif
#ifdef FASTINV_STOKES_AVX2
  if ((cap == "avx512" || cap == "avx2") && cpu_has("avx2")) return kAvx2;
#endif
  (void)cap;
  return kGeneric;
}

}  // namespace

MEProfileFn select_me_kernel() { return selected().profile; }
MEDerivFn select_me_deriv_kernel() { return selected().deriv; }
MEDeriv32Fn select_me_deriv32_kernel() { return selected().deriv32; }
ResampleFn select_resample_kernel() { return selected().resample; }
Resample32Fn select_resample32_kernel() { return selected().resample32; }
NormalKernels select_normal_kernels() { return selected().normal(); }

const FaddeevaTables& faddeeva_tables() {
  static const FaddeevaTables T = make_tables();  // thread-safe one-time init
  return T;
}

}  // namespace detail

namespace {

using detail::FaddeevaChunkFn;
using detail::kFaddeevaChunk;

// The kernels chosen at first use (the Faddeeva kernel and faddeeva_isa() agree).
const detail::StokesKernels& chosen() {
  static const detail::StokesKernels& k = detail::selected();
  return k;
}

FaddeevaChunkFn kernel() { return chosen().faddeeva; }

void check_damping(double a) {
  if (!(a >= 0.0) || !std::isfinite(a))
    throw InvalidArgument("Voigt damping a must be finite and >= 0, got " + std::to_string(a));
}

}  // namespace

std::complex<double> faddeeva(std::complex<double> z) {
  double x = z.real(), y = z.imag();
  if (!std::isfinite(x) || !std::isfinite(y)) return {std::nan(""), std::nan("")};
  const bool lower = y < 0.0;
  if (lower) {
    x = -x;
    y = -y;
  }
  double re, im;
  detail::faddeeva_chunk_generic(detail::faddeeva_tables(), y, &x, 0.0, 1, &re, &im);
  const std::complex<double> w(re, im);
  if (lower) return 2.0 * std::exp(-z * z) - w;  // w(z) = 2 exp(-z^2) - w(-z)
  return w;
}

void voigt_faraday(double a, const double* v, std::size_t n, double* H, double* F) {
  check_damping(a);
  const auto& T = detail::faddeeva_tables();
  const FaddeevaChunkFn fn = kernel();
  for (std::size_t s = 0; s < n; s += kFaddeevaChunk)
    fn(T, a, v + s, 0.0, std::min(kFaddeevaChunk, n - s), H + s, F + s);
}

void voigt_faraday_add(double a, const double* x, double shift, double weight, std::size_t n, double* Hsum,
                       double* Fsum) {
  check_damping(a);
  const auto& T = detail::faddeeva_tables();
  const FaddeevaChunkFn fn = kernel();
  alignas(64) double h[kFaddeevaChunk], f[kFaddeevaChunk];
  for (std::size_t s = 0; s < n; s += kFaddeevaChunk) {
    const std::size_t m = std::min(kFaddeevaChunk, n - s);
    fn(T, a, x + s, shift, m, h, f);
#pragma omp simd
    for (std::size_t i = 0; i < m; ++i) {
      Hsum[s + i] += weight * h[i];
      Fsum[s + i] += weight * f[i];
    }
  }
}

const char* faddeeva_isa() { return chosen().name; }

}  // namespace fastinv::stokes
