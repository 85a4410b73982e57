// Vectorisable Faddeeva kernel, compiled once per instruction set (faddeeva_generic.cpp,
// faddeeva_avx2.cpp, faddeeva_avx512.cpp each include this file inside their own
// namespace with their own compiler flags); faddeeva.cpp picks one at run time.
// Internal header: not installed.
#pragma once
#include <cstddef>

#include "stokes/faddeeva_tables.hpp"

namespace fastinv::stokes::detail {
namespace FASTINV_FADDEEVA_NS {

// Far region: (2 i z / pi) P(u) / Q(u), u = z^2, in real arithmetic.
inline void w_far(double x, double y, const FaddeevaTables& T, double& re, double& im) {
  const double ur = x * x - y * y, ui = 2.0 * x * y;
  double pr = T.p[2] * ur + T.p[1], pi = T.p[2] * ui;
  {
    const double tr = pr * ur - pi * ui + T.p[0];
    pi = pr * ui + pi * ur;
    pr = tr;
  }
  double qr = ur + T.q[2], qi = ui;
  {
    const double sr = qr * ur - qi * ui + T.q[1], si = qr * ui + qi * ur;
    qr = sr * ur - si * ui + T.q[0];
    qi = sr * ui + si * ur;
  }
  const double inv = 1.0 / (qr * qr + qi * qi);
  const double dr = (pr * qr + pi * qi) * inv, di = (pi * qr - pr * qi) * inv;
  const double zr = -2.0 * y * kInvPi, zi = 2.0 * x * kInvPi;
  re = zr * dr - zi * di;
  im = zr * di + zi * dr;
}

// Weideman's expansion for the k points v_j (any order), results to re/im. The Horner
// step is the OUTER loop so the inner loop runs over independent points (throughput-
// bound SIMD instead of one latency-bound chain per point).
inline void w_near_block(const FaddeevaTables& T, double a, const double* v, std::size_t k, double* re, double* im) {
  alignas(64) double Zr[kFaddeevaChunk], Zi[kFaddeevaChunk];
  alignas(64) double er[kFaddeevaChunk], ei[kFaddeevaChunk];
  alignas(64) double pr[kFaddeevaChunk], pi[kFaddeevaChunk];
  const double L = T.L;
  const double lpy = L + a;
#pragma omp simd
  for (std::size_t j = 0; j < k; ++j) {
    const double xx = v[j];
    const double inv_d2 = 1.0 / (lpy * lpy + xx * xx);  // 1 / |L - i z|^2
    Zr[j] = (L * L - a * a - xx * xx) * inv_d2;         // Z = (L + i z) / (L - i z)
    Zi[j] = 2.0 * L * xx * inv_d2;
    er[j] = lpy * inv_d2;  // 1 / (L - i z)
    ei[j] = xx * inv_d2;
    pr[j] = T.c[kWeidemanN - 1];
    pi[j] = 0.0;
  }
  for (int n = kWeidemanN - 2; n >= 0; --n) {
    const double c = T.c[n];
#pragma omp simd
    for (std::size_t j = 0; j < k; ++j) {
      const double tr = pr[j] * Zr[j] - pi[j] * Zi[j] + c;
      pi[j] = pr[j] * Zi[j] + pi[j] * Zr[j];
      pr[j] = tr;
    }
  }
#pragma omp simd
  for (std::size_t j = 0; j < k; ++j) {
    // w = 2 p / (L - i z)^2 + 1 / (sqrt(pi) (L - i z))
    const double e2r = er[j] * er[j] - ei[j] * ei[j], e2i = 2.0 * er[j] * ei[j];
    re[j] = 2.0 * (pr[j] * e2r - pi[j] * e2i) + kInvSqrtPi * er[j];
    im[j] = 2.0 * (pr[j] * e2i + pi[j] * e2r) + kInvSqrtPi * ei[j];
  }
}

inline void far_range(const FaddeevaTables& T, double a, const double* x, double shift, std::size_t lo, std::size_t hi,
                      double* H, double* F) {
#pragma omp simd
  for (std::size_t i = lo; i < hi; ++i) w_far(x[i] - shift, a, T, H[i], F[i]);
}

// H, F at v_i = x_i - shift for m <= kFaddeevaChunk points, y = a >= 0.
// Sorted x (a wavelength grid, the usual case): the near points |v|^2 + a^2 < R^2 form
// one contiguous range, found by a scan, evaluated in place. Unsorted x: the far formula
// runs everywhere, the near points are gathered, evaluated and scattered back.
inline void chunk(const FaddeevaTables& T, double a, const double* x, double shift, std::size_t m, double* H,
                  double* F) {
  const double lim = kFaddeevaInnerR2 - a * a;
  int unsorted = 0;
#pragma omp simd reduction(+ : unsorted)
  for (std::size_t i = 1; i < m; ++i) unsorted += (x[i] >= x[i - 1]) ? 0 : 1;  // NaN: unsorted
  if (unsorted == 0) {
    if (lim <= 0.0) {
      far_range(T, a, x, shift, 0, m, H, F);
      return;
    }
    const double r = __builtin_sqrt(lim);
    std::size_t lo = 0, hi = 0;
    // first point with v > -r and first with v >= r (v increases with i)
#pragma omp simd reduction(+ : lo, hi)
    for (std::size_t i = 0; i < m; ++i) {
      const double v = x[i] - shift;
      lo += (v <= -r) ? 1 : 0;
      hi += (v < r) ? 1 : 0;
    }
    far_range(T, a, x, shift, 0, lo, H, F);
    far_range(T, a, x, shift, hi, m, H, F);
    if (hi > lo) {
      alignas(64) double v[kFaddeevaChunk];
#pragma omp simd
      for (std::size_t i = lo; i < hi; ++i) v[i - lo] = x[i] - shift;
      w_near_block(T, a, v, hi - lo, H + lo, F + lo);
    }
    return;
  }
  alignas(64) double nx[kFaddeevaChunk], nre[kFaddeevaChunk], nim[kFaddeevaChunk];
  int idx[kFaddeevaChunk];
  far_range(T, a, x, shift, 0, m, H, F);
  std::size_t k = 0;
  for (std::size_t i = 0; i < m; ++i) {
    const double v = x[i] - shift;
    idx[k] = static_cast<int>(i);
    nx[k] = v;
    k += (v * v < lim) ? 1 : 0;
  }
  if (k == 0) return;
  w_near_block(T, a, nx, k, nre, nim);
  for (std::size_t j = 0; j < k; ++j) {
    H[idx[j]] = nre[j];
    F[idx[j]] = nim[j];
  }
}

}  // namespace FASTINV_FADDEEVA_NS
}  // namespace fastinv::stokes::detail
