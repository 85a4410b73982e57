// Levenberg-Marquardt normal equations of the ME inversion (internal header), compiled once
// per instruction set like me_kernel.hpp (which must be included first); me_inversion.cpp
// picks one (select_normal_kernel).
//
// Why per ISA: A = J^T J and g = J^T r are ~55 dot products of ~450-700 doubles per Jacobian;
// compiled for the portable x86-64 baseline (2 doubles per SSE2 vector) they took ~12 % of a
// ViSP step. Here the weighted rows of an L1-sized chunk are multiplied in blocks of rows held
// in vector registers (normal_block), each product in 8 lanes summed in a fixed order, so
// results do not depend on threads. (Forming the products in float, 16 lanes, was measured:
// no gain over this; not kept.)
#pragma once
#include <algorithm>
#include <cstdint>

#include "stokes/me_kernel.hpp"

namespace fastinv::stokes::detail {
namespace FASTINV_FADDEEVA_NS {

// 8 lanes of partial sums: a GCC/Clang vector (lowered to the unit's instruction set), or a
// plain array elsewhere.
#if defined(__GNUC__)
// These inline helpers never cross a translation unit, so GCC's note that a 64-byte vector
// return has another ABI without AVX-512 (the AVX2 and generic builds) does not apply.
#pragma GCC diagnostic ignored "-Wpsabi"
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

// Products of the rows [a0, a0 + RA) with the rows [b0, b0 + RB) over mp points (a multiple
// of 8), added to their 8-lane accumulators acc[a (a + 1) / 2 + b]; Diag (a0 == b0, RA ==
// RB) takes only b <= a. A block loads its RA + RB rows once per 8 points for RA x RB
// products (pairwise dot products loaded two rows per product, and the loads, not the FMAs,
// bounded them).
template <int RA, int RB, bool Diag>
inline void normal_block(const double* rows, int64_t stride, int a0, int b0, int64_t mp, NormalVec* acc) {
  NormalVec s[RA][RB];
  for (int i = 0; i < RA; ++i)
    for (int j = 0; j < RB; ++j) s[i][j] = NormalVec{};
  for (int64_t k = 0; k < mp; k += 8) {
    NormalVec vb[RB];
    for (int j = 0; j < RB; ++j) vb[j] = normal_load(rows + (b0 + j) * stride + k);
    for (int i = 0; i < RA; ++i) {
      const NormalVec va = normal_load(rows + (a0 + i) * stride + k);
      for (int j = 0; j < (Diag ? i + 1 : RB); ++j) s[i][j] += va * vb[j];
    }
  }
  for (int i = 0; i < RA; ++i)
    for (int j = 0; j < (Diag ? i + 1 : RB); ++j) {
      const int a = a0 + i, b = b0 + j;
      acc[a * (a + 1) / 2 + b] += s[i][j];
    }
}

// Row blocks: 4 rows where a vector register holds 8 doubles (4 x 4 partial sums and the
// rows fit the 32 registers), 2 elsewhere (8 doubles take two AVX2 registers of the 16).
#if defined(__AVX512F__)
constexpr int kNormalBlock = 4;
#else
constexpr int kNormalBlock = 2;
#endif

// Row block [a0, a0 + RA) against every block before it (full ones: a0 is a multiple of
// kNormalBlock) and itself.
template <int RA>
inline void normal_block_row(const double* rows, int64_t stride, int a0, int64_t mp, NormalVec* acc) {
  for (int b0 = 0; b0 < a0; b0 += kNormalBlock) normal_block<RA, kNormalBlock, false>(rows, stride, a0, b0, mp, acc);
  normal_block<RA, RA, true>(rows, stride, a0, a0, mp, acc);
}

// res = (obs - prof) iw; g[a] = jw_a . res, A = jw jw^T (nf x nf, row-major, both
// triangles) with jw_a = jac[idx[a]] iw, the weighted free Jacobian rows (formed chunk by
// chunk in a small buffer, zero-padded to a multiple of 8 points). Chunks of kNormalChunk
// points keep the rows in L1 while their products are accumulated in row blocks; each
// product's 8 lanes are carried across the chunks and summed once, in a fixed order.
constexpr int64_t kNormalChunk = 128;
inline void normal_equations(const double* obs, const double* prof, const double* iw, const double* jac, int64_t n,
                             const int* idx, int nf, double* res, double* A, double* g) {
  constexpr int kMax = 12;  // kMeInvParameters
  alignas(64) double rows[(kMax + 1) * kNormalChunk];
  NormalVec acc[(kMax + 1) * (kMax + 2) / 2];
  const int nr = nf + 1;  // the weighted rows, then the residuals
  for (int q = 0; q < nr * (nr + 1) / 2; ++q) acc[q] = NormalVec{};
  for (int64_t c0 = 0; c0 < n; c0 += kNormalChunk) {
    const int64_t m = std::min<int64_t>(kNormalChunk, n - c0), mp = (m + 7) / 8 * 8;
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
    for (int a0 = 0; a0 < nr; a0 += kNormalBlock) {
      switch (std::min(kNormalBlock, nr - a0)) {
        case 1:
          normal_block_row<1>(rows, kNormalChunk, a0, mp, acc);
          break;
        case 2:
          normal_block_row<2>(rows, kNormalChunk, a0, mp, acc);
          break;
        case 3:  // only with blocks of 4 (the min keeps the other instantiation valid)
          normal_block_row<std::min(3, kNormalBlock)>(rows, kNormalChunk, a0, mp, acc);
          break;
        default:
          normal_block_row<kNormalBlock>(rows, kNormalChunk, a0, mp, acc);
          break;
      }
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
