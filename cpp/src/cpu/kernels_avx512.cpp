// AVX-512 microkernel: 16 output rows x 16 samples, one zmm accumulator per row;
// 32 zmm registers let the block grow to 16 rows (channel counts of 64 and 256 divide
// evenly): one input load per 16 FMAs, against two per 12 in the AVX2 shape. The last
// block of a layer whose rows are not a multiple of 16 runs 8 or 4 rows when that
// covers them (DeepEM's 18 outputs: 16 + 4 rows computed instead of 32).
#include <immintrin.h>

#include "cpu/kernels.hpp"
#include "cpu/kernels_epilogue_avx512.hpp"

namespace fastinv::cpu {
namespace {

constexpr int MR = kMrAvx512;

// Constant-bound row loops keep the accumulators in registers (see kernels_avx2.cpp).
// ROWS <= MR rows of block blk; the packed panel keeps its MR-row stride.
template <int ROWS, bool Contiguous>
inline void block(const GemmArgs& g, int64_t blk) {
  const int64_t k = g.k;
  const float* bias = g.bias + blk * MR;
  const float* a = g.a + blk * k * MR;
  const float* in = g.in;
  const int32_t* offsets = g.offsets;
  const int64_t rows = g.m - blk * MR;
  float* out = g.out + blk * MR * g.out_stride;
  __m512 c[ROWS];
  start_rows_avx512(c, g.accumulate, out, g.out_stride, rows, bias);
  for (int64_t kk = 0; kk < k; ++kk, a += MR) {
    const __m512 b = _mm512_loadu_ps(in + (Contiguous ? kk * kTileWidth : offsets[kk]));
#pragma GCC unroll 16
    for (int r = 0; r < ROWS; ++r) c[r] = _mm512_fmadd_ps(_mm512_set1_ps(a[r]), b, c[r]);
  }
  finish_rows_avx512<ROWS>(c, rows, out, g.out_stride, g.leaky, g.slope, g.max_into_out);
}

template <bool Contiguous>
void blocks(const GemmArgs& g) {
  for (int64_t blk = 0; blk * MR < g.m; ++blk) {
    const int64_t rows = g.m - blk * MR;
    if (rows > MR / 2)
      block<MR, Contiguous>(g, blk);
    else if (rows > MR / 4)
      block<MR / 2, Contiguous>(g, blk);
    else
      block<MR / 4, Contiguous>(g, blk);
  }
}

}  // namespace

void gemm_avx512(const GemmArgs& g) {
  if (g.offsets)
    blocks<false>(g);
  else
    blocks<true>(g);
}

double fma_loop_avx512(int64_t iterations, float* sink) {
  constexpr int kChains = 16;
  __m512 acc[kChains];
  const __m512 a = _mm512_set1_ps(0.999999f), b = _mm512_set1_ps(1e-7f);
#pragma GCC unroll 16
  for (int c = 0; c < kChains; ++c) acc[c] = _mm512_set1_ps(float(c));
  for (int64_t i = 0; i < iterations; ++i) {
#pragma GCC unroll 16
    for (int c = 0; c < kChains; ++c) acc[c] = _mm512_fmadd_ps(acc[c], a, b);
  }
  __m512 sum = acc[0];
#pragma GCC unroll 16
  for (int c = 1; c < kChains; ++c) sum = _mm512_add_ps(sum, acc[c]);
  alignas(64) float lanes[16];  // (GCC 12 warns falsely inside _mm512_reduce_add_ps)
  _mm512_store_ps(lanes, sum);
  sink[0] += lanes[0];
  return 2.0 * 16 * kChains * double(iterations);
}

bool mix_rows_avx512(const MixArgs& args) { return mix_rows_impl<64>(args); }

}  // namespace fastinv::cpu
