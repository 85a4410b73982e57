// AVX2 + FMA microkernel: 6 output rows x 16 samples = 12 ymm accumulators, two
// loads and six broadcasts per k (measured ~95 % of FMA peak on Zen 3 in this shape;
// wider or taller blocks spilled or starved the FMA ports).
#include <immintrin.h>

#include "cpu/kernels.hpp"
#include "cpu/kernels_rows.hpp"

namespace fastinv::cpu {
namespace {

constexpr int MR = kMrAvx2;

// max_ps gives its second operand when either is NaN; a stored NaN is kept by the blend.
inline __m256 max_propagating_nan(__m256 stored, __m256 v) {
  return _mm256_blendv_ps(_mm256_max_ps(stored, v), stored, _mm256_cmp_ps(stored, stored, _CMP_UNORD_Q));
}

// All loops over rows have constant bounds so the accumulators stay in registers;
// a run-time row count anywhere makes GCC keep them in memory.
template <bool Contiguous>
inline void block(const GemmArgs& g, int64_t blk) {
  const int64_t k = g.k;
  const float* bias = g.bias + blk * MR;
  const float* a = g.a + blk * k * MR;
  const float* in = g.in;
  const int32_t* offsets = g.offsets;
  const int64_t rows = g.m - blk * MR;
  float* out = g.out + blk * MR * g.out_stride;
  __m256 c0[MR], c1[MR];
  if (g.accumulate) {
#pragma GCC unroll 6
    for (int r = 0; r < MR; ++r) {
      c0[r] = r < rows ? _mm256_loadu_ps(out + r * g.out_stride) : _mm256_setzero_ps();
      c1[r] = r < rows ? _mm256_loadu_ps(out + r * g.out_stride + 8) : _mm256_setzero_ps();
    }
  } else {
#pragma GCC unroll 6
    for (int r = 0; r < MR; ++r) c0[r] = c1[r] = _mm256_broadcast_ss(bias + r);
  }
  // Unrolled by 4: the loop's pointer and counter updates otherwise take ports the FMAs
  // need (Intel) often enough to cost 3-4 % of the peak on DeepEM.
#pragma GCC unroll 4
  for (int64_t kk = 0; kk < k; ++kk, a += MR) {
    const float* row = in + (Contiguous ? kk * kTileWidth : offsets[kk]);
    const __m256 b0 = _mm256_loadu_ps(row), b1 = _mm256_loadu_ps(row + 8);
#pragma GCC unroll 6
    for (int r = 0; r < MR; ++r) {
      const __m256 w = _mm256_broadcast_ss(a + r);
      c0[r] = _mm256_fmadd_ps(w, b0, c0[r]);
      c1[r] = _mm256_fmadd_ps(w, b1, c1[r]);
    }
  }
  if (g.leaky) {
    const __m256 slope = _mm256_set1_ps(g.slope), zero = _mm256_setzero_ps();
    if (g.slope >= 0.f && g.slope <= 1.f) {
      // max(slope * v, v) is the leaky ReLU for 0 <= slope <= 1 in two instructions: max_ps
      // returns its second operand (v) on NaN and on equal values (keeps -0); ReLU is
      // max(0, v) likewise, so -inf gives 0 and NaN passes, as in the compare-blend form.
#pragma GCC unroll 6
      for (int r = 0; r < MR; ++r) {
        c0[r] = _mm256_max_ps(g.slope == 0.f ? zero : _mm256_mul_ps(c0[r], slope), c0[r]);
        c1[r] = _mm256_max_ps(g.slope == 0.f ? zero : _mm256_mul_ps(c1[r], slope), c1[r]);
      }
    } else {
#pragma GCC unroll 6
      for (int r = 0; r < MR; ++r) {
        const __m256 n0 = _mm256_cmp_ps(c0[r], zero, _CMP_LT_OQ), n1 = _mm256_cmp_ps(c1[r], zero, _CMP_LT_OQ);
        c0[r] = _mm256_blendv_ps(c0[r], _mm256_mul_ps(c0[r], slope), n0);
        c1[r] = _mm256_blendv_ps(c1[r], _mm256_mul_ps(c1[r], slope), n1);
      }
    }
  }
  if (rows >= MR) {
    if (g.max_into_out) {
#pragma GCC unroll 6
      for (int r = 0; r < MR; ++r) {
        c0[r] = max_propagating_nan(_mm256_loadu_ps(out + r * g.out_stride), c0[r]);
        c1[r] = max_propagating_nan(_mm256_loadu_ps(out + r * g.out_stride + 8), c1[r]);
      }
    }
#pragma GCC unroll 6
    for (int r = 0; r < MR; ++r) {
      _mm256_storeu_ps(out + r * g.out_stride, c0[r]);
      _mm256_storeu_ps(out + r * g.out_stride + 8, c1[r]);
    }
  } else {
    alignas(32) float tmp[MR][kTileWidth];
#pragma GCC unroll 6
    for (int r = 0; r < MR; ++r) {
      _mm256_store_ps(tmp[r], c0[r]);
      _mm256_store_ps(tmp[r] + 8, c1[r]);
    }
    for (int64_t r = 0; r < rows; ++r) store_row(out + r * g.out_stride, tmp[r], g.max_into_out);
  }
}

}  // namespace

void gemm_avx2(const GemmArgs& g) {
  for (int64_t blk = 0; blk * MR < g.m; ++blk) {
    if (g.offsets)
      block<false>(g, blk);
    else
      block<true>(g, blk);
  }
}

double fma_loop_avx2(int64_t iterations, float* sink) {
  constexpr int kChains = 12;  // FMA latency 4 x 2 pipes, with margin
  __m256 acc[kChains];
  const __m256 a = _mm256_set1_ps(0.999999f), b = _mm256_set1_ps(1e-7f);
#pragma GCC unroll 12
  for (int c = 0; c < kChains; ++c) acc[c] = _mm256_set1_ps(float(c));
  for (int64_t i = 0; i < iterations; ++i) {
#pragma GCC unroll 12
    for (int c = 0; c < kChains; ++c) acc[c] = _mm256_fmadd_ps(acc[c], a, b);
  }
  __m256 sum = acc[0];
#pragma GCC unroll 12
  for (int c = 1; c < kChains; ++c) sum = _mm256_add_ps(sum, acc[c]);
  sink[0] += _mm256_cvtss_f32(sum);
  return 2.0 * 8 * kChains * double(iterations);
}

bool mix_rows_avx2(const MixArgs& args) { return mix_rows_impl<32>(args); }

}  // namespace fastinv::cpu
