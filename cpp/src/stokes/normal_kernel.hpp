// Levenberg-Marquardt normal equations of the ME inversion (internal header), compiled once
// per instruction set like me_kernel.hpp (which must be included first); me_inversion.cpp
// picks one (select_normal_kernel).
//
// Why per ISA: A = J^T J and g = J^T r are ~55 dot products of ~700 doubles per Jacobian;
// compiled for the portable x86-64 baseline (2 doubles per SSE2 vector) they took ~12 % of a
// ViSP step. Here each dot product runs four independent 8-lane accumulators (32 points per
// step: the additions do not chain on one register) over L1-resident chunks, summed in a
// fixed order, so results do not depend on threads.
#pragma once
#include <algorithm>
#include <cstdint>

#include "stokes/me_kernel.hpp"

namespace fastinv::stokes::detail {
namespace FASTINV_FADDEEVA_NS {

// 8 lanes of partial sums: a GCC/Clang vector (lowered to the unit's instruction set), or a
// plain array elsewhere.
#if defined(__GNUC__)
typedef double NormalVec __attribute__((vector_size(64)));
inline NormalVec normal_load(const double* p) {
  NormalVec v;
  __builtin_memcpy(&v, p, sizeof(v));
  return v;
}
#else
struct NormalVec {
  double x[8];
  double operator[](int l) const { return x[l]; }
  NormalVec& operator+=(const NormalVec& o) {
    for (int l = 0; l < 8; ++l) x[l] += o.x[l];
    return *this;
  }
};
inline NormalVec operator+(NormalVec a, const NormalVec& b) { return a += b; }
inline NormalVec operator*(const NormalVec& a, const NormalVec& b) {
  NormalVec r;
  for (int l = 0; l < 8; ++l) r.x[l] = a.x[l] * b.x[l];
  return r;
}
inline NormalVec normal_load(const double* p) {
  NormalVec v;
  for (int l = 0; l < 8; ++l) v.x[l] = p[l];
  return v;
}
#endif

// 8-lane partial sums of a . b over n points (n a multiple of 32): four independent
// accumulators, so that the additions do not chain on one register.
inline NormalVec dot_lanes(const double* a, const double* b, int64_t n) {
  NormalVec s0 = normal_load(a) * normal_load(b), s1 = normal_load(a + 8) * normal_load(b + 8);
  NormalVec s2 = normal_load(a + 16) * normal_load(b + 16), s3 = normal_load(a + 24) * normal_load(b + 24);
  for (int64_t k = 32; k < n; k += 32) {
    s0 += normal_load(a + k) * normal_load(b + k);
    s1 += normal_load(a + k + 8) * normal_load(b + k + 8);
    s2 += normal_load(a + k + 16) * normal_load(b + k + 16);
    s3 += normal_load(a + k + 24) * normal_load(b + k + 24);
  }
  return (s0 + s1) + (s2 + s3);
}
inline double lanes_sum(const NormalVec& s) {
  return ((s[0] + s[4]) + (s[1] + s[5])) + ((s[2] + s[6]) + (s[3] + s[7]));
}

// res = (obs - prof) iw; g[a] = jw_a . res, A = jw jw^T (nf x nf, row-major, both
// triangles) with jw_a = jac[idx[a]] iw, the weighted free Jacobian rows (formed chunk by
// chunk in a small buffer, zero-padded to a multiple of 32 points). Chunks of kNormalChunk
// points keep the rows in L1 while every product is accumulated over them (whole-row dot
// products streamed ~55 pairs of 5.5 kB rows from L2 per call); each product's 8 lanes are
// carried across the chunks and summed once, in a fixed order.
constexpr int64_t kNormalChunk = 128;
inline void normal_equations(const double* obs, const double* prof, const double* iw, const double* jac, int64_t n,
                             const int* idx, int nf, double* res, double* A, double* g) {
  constexpr int kMax = 12;  // kMeInvParameters
  alignas(64) double rows[(kMax + 1) * kNormalChunk];
  NormalVec acc[(kMax + 1) * (kMax + 2) / 2];
  const int nr = nf + 1;  // the weighted rows, then the residuals
  for (int64_t c0 = 0; c0 < n; c0 += kNormalChunk) {
    const int64_t m = std::min<int64_t>(kNormalChunk, n - c0), mp = (m + 31) / 32 * 32;
    double* rr = rows + nf * kNormalChunk;
#pragma omp simd
    for (int64_t k = 0; k < m; ++k) rr[k] = (obs[c0 + k] - prof[c0 + k]) * iw[c0 + k];
    for (int64_t k = 0; k < m; ++k) res[c0 + k] = rr[k];
    for (int a = 0; a < nf; ++a) {
      const double* ja = jac + idx[a] * n + c0;
      double* wa = rows + a * kNormalChunk;
#pragma omp simd
      for (int64_t k = 0; k < m; ++k) wa[k] = ja[k] * iw[c0 + k];
    }
    for (int a = 0; a < nr; ++a)
      for (int64_t k = m; k < mp; ++k) rows[a * kNormalChunk + k] = 0.0;
    int q = 0;
    for (int a = 0; a < nr; ++a)
      for (int b = 0; b <= a; ++b, ++q) {
        const NormalVec d = dot_lanes(rows + a * kNormalChunk, rows + b * kNormalChunk, mp);
        if (c0 == 0)
          acc[q] = d;
        else
          acc[q] += d;
      }
  }
  int q = 0;
  for (int a = 0; a < nr; ++a)
    for (int b = 0; b <= a; ++b, ++q) {
      const double v = lanes_sum(acc[q]);
      if (a < nf)
        A[a * nf + b] = A[b * nf + a] = v;
      else if (b < nf)
        g[b] = v;
    }
}

// sum_k ((obs_k - model_k) iw_k)^2, with the residuals left in res.
inline double weighted_chi2(const double* obs, const double* model, const double* iw, int64_t n, double* res) {
#pragma omp simd
  for (int64_t k = 0; k < n; ++k) res[k] = (obs[k] - model[k]) * iw[k];
  const int64_t n32 = n / 32 * 32;
  double t = n32 > 0 ? lanes_sum(dot_lanes(res, res, n32)) : 0.0;
  for (int64_t k = n32; k < n; ++k) t += res[k] * res[k];
  return t;
}

}  // namespace FASTINV_FADDEEVA_NS
}  // namespace fastinv::stokes::detail
