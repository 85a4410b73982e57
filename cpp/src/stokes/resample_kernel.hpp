// Gaussian LSF convolution + resampling of many rows (internal header), compiled once per
// instruction set like me_kernel.hpp (which must be included first); spectral_operator.cpp's
// gaussian_resample_rows picks one.
//
// Why this shape: one output is an 11-tap dot product, and a reduction per output leaves
// the vector units idle (horizontal sums of 11 numbers). Here every output whose kernel lies
// inside the grid is accumulated tap by tap over ALL outputs at once -- contiguous vector
// FMAs -- after the row is split into its `stride` phases, so that the inputs of one tap for
// consecutive outputs are consecutive in memory. The summation order (taps in ascending
// order, per output) is fixed, so results do not depend on threads.
#pragma once
#include <algorithm>
#include <cstdint>

#include "stokes/me_kernel.hpp"

namespace fastinv::stokes::detail {
namespace FASTINV_FADDEEVA_NS {

// One block of kResampleBlock outputs: acc = sum over the taps m of g[m] s[m's input...].
// GCC vectorises a plain version of this loop nest across the TAPS (with emulated gathers),
// so the block is written with explicit 64-byte vectors (8 doubles or 16 floats), lowered to
// the unit's instruction set. T = float (the Jacobian rows of the float32 precision) halves
// the vectors per block.
#if defined(__GNUC__)
template <class T>
struct ResampleVec {
  typedef T type __attribute__((vector_size(64)));
};
template <class T>
inline typename ResampleVec<T>::type load_vec(const T* p) {
  typename ResampleVec<T>::type v;
  __builtin_memcpy(&v, p, sizeof(v));
  return v;
}
#endif

// acc[0..kResampleBlock) = sum_{m=-M..M} g[m] phase[p_m * np + j_m + l], where tap m's input
// starts at phase (p, j) = (b0 % stride, b0 / stride + k0) and steps through the phases.
template <class T>
inline void resample_block(const T* g, int64_t M, const T* phase, int64_t np, int64_t stride, int64_t b0, int64_t k0,
                           T* acc) {
  int64_t p = b0 % stride, j = b0 / stride + k0;
#if defined(__GNUC__)
  using Vec = typename ResampleVec<T>::type;
  constexpr int64_t L = 64 / sizeof(T), V = kResampleBlock / L;
  static_assert(V * L == kResampleBlock, "whole vectors per block");
  Vec a[V] = {};
  for (int64_t m = -M; m <= M; ++m) {
    const T* s = phase + p * np + j;
    const T w = g[m];
    for (int64_t v = 0; v < V; ++v) a[v] += w * load_vec(s + v * L);
    if (++p == stride) {
      p = 0;
      ++j;
    }
  }
  __builtin_memcpy(acc, a, sizeof(a));
#else
  for (int64_t l = 0; l < kResampleBlock; ++l) acc[l] = 0;
  for (int64_t m = -M; m <= M; ++m) {
    const T* s = phase + p * np + j;
    for (int64_t l = 0; l < kResampleBlock; ++l) acc[l] += g[m] * s[l];
    if (++p == stride) {
      p = 0;
      ++j;
    }
  }
#endif
}

// in: rows x n; out: rows x n_out; g: the normalised kernel, g[-M..M] (sum 1), gt: the same in
// T; phase: resample_scratch(n, stride) T. Outputs whose kernel reaches beyond the grid use
// the part inside it, renormalised (in double). With T = float the inputs are float (I) or
// rounded to float when the row is split into its phases, and each block output sums in float.
template <class T, class I>
inline void resample_rows(const I* in, int64_t rows, int64_t n, const double* g, const T* gt, int64_t M, int64_t first,
                          int64_t stride, int64_t n_out, double* out, T* phase) {
  constexpr int64_t B = kResampleBlock;
  int64_t k_lo = 0, k_hi = n_out;
  while (k_lo < n_out && first + k_lo * stride - M < 0) ++k_lo;
  while (k_hi > k_lo && first + (k_hi - 1) * stride + M > n - 1) --k_hi;
  const int64_t np = (n + stride - 1) / stride, K = k_hi - k_lo;
  // the last block reads up to B - 1 points past its phase: into the next phase or this pad
  std::fill(phase + stride * np, phase + stride * np + B, T(0));
  auto edge = [&](const I* x, int64_t k) {
    const int64_t centre = first + k * stride;
    const int64_t lo = std::max<int64_t>(-M, -centre), hi = std::min<int64_t>(M, n - 1 - centre);
    double acc = 0.0, norm = 0.0;
    for (int64_t m = lo; m <= hi; ++m) {
      acc += g[m] * x[centre + m];
      norm += g[m];
    }
    return acc / norm;
  };
  for (int64_t r = 0; r < rows; ++r) {
    const I* x = in + r * n;
    double* y = out + r * n_out;
    for (int64_t k = 0; k < k_lo; ++k) y[k] = edge(x, k);
    for (int64_t k = k_hi; k < n_out; ++k) y[k] = edge(x, k);
    if (K <= 0) continue;
    if (stride == 1) {  // one phase: a copy (the generic loop below would gather)
#pragma omp simd
      for (int64_t j = 0; j < n; ++j) phase[j] = static_cast<T>(x[j]);
    } else if (stride == 2) {
      T* e = phase;
      T* o = phase + np;
      const int64_t half = n / 2;
#pragma omp simd
      for (int64_t j = 0; j < half; ++j) {
        e[j] = static_cast<T>(x[2 * j]);
        o[j] = static_cast<T>(x[2 * j + 1]);
      }
      if (n % 2) e[half] = static_cast<T>(x[n - 1]);
    } else {
      for (int64_t p = 0; p < stride; ++p) {
        T* dst = phase + p * np;
        const int64_t cnt = (n - p + stride - 1) / stride;
#pragma omp simd
        for (int64_t j = 0; j < cnt; ++j) dst[j] = static_cast<T>(x[p + stride * j]);
      }
    }
    const int64_t b0 = first + k_lo * stride - M;  // the first tap's input; >= 0: inside the grid
    for (int64_t k0 = 0; k0 < K; k0 += B) {
      alignas(64) T acc[B];
      resample_block(gt, M, phase, np, stride, b0, k0, acc);
      const int64_t cnt = std::min(B, K - k0);
      std::copy(acc, acc + cnt, y + k_lo + k0);
    }
  }
}

}  // namespace FASTINV_FADDEEVA_NS
}  // namespace fastinv::stokes::detail
