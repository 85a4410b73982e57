// AVX512-BF16 microkernel: the AVX-512 16 x 16 register block (kernels_avx512.cpp) with
// vdpbf16ps in place of vfmadd: each instruction takes one broadcast weight pair and one
// pair row and adds two products per lane, so a pair row load feeds 32 multiply-adds.
// The epilogue is the float32 one.
#include <immintrin.h>

#include "cpu/kernels_bf16.hpp"
#include "cpu/kernels_epilogue_avx512.hpp"

namespace fastinv::cpu {
namespace {

constexpr int MR = kMrAvx512;

template <int ROWS, bool Contiguous, int Terms>
inline void block(const GemmBf16Args& g, int64_t blk) {
  const int64_t kp = g.kp;
  const float* bias = g.bias + blk * MR;
  const uint32_t* a = g.a + blk * kp * Terms * MR;
  const uint32_t* in = g.in;
  const int32_t* offsets = g.offsets;
  const int64_t rows = g.m - blk * MR;
  float* out = g.out + blk * MR * g.out_stride;
  __m512 c[ROWS];
  start_rows_avx512(c, g.accumulate, out, g.out_stride, rows, bias);
  for (int64_t kk = 0; kk < kp; ++kk, a += Terms * MR) {
    const __m512bh b = (__m512bh)_mm512_loadu_si512(in + (Contiguous ? kk * kTileWidth : offsets[kk]));
    for (int term = 0; term < Terms; ++term) {
#pragma GCC unroll 16
      for (int r = 0; r < ROWS; ++r)
        c[r] = _mm512_dpbf16_ps(c[r], (__m512bh)_mm512_set1_epi32(int(a[term * MR + r])), b);
    }
  }
  finish_rows_avx512<ROWS>(c, rows, out, g.out_stride, g.leaky, g.slope, g.max_into_out);
}

template <bool Contiguous, int Terms>
void blocks(const GemmBf16Args& g) {
  for (int64_t blk = 0; blk * MR < g.m; ++blk) {
    const int64_t rows = g.m - blk * MR;
    if (rows > MR / 2)
      block<MR, Contiguous, Terms>(g, blk);
    else if (rows > MR / 4)
      block<MR / 2, Contiguous, Terms>(g, blk);
    else
      block<MR / 4, Contiguous, Terms>(g, blk);
  }
}

template <int Terms>
void gemm_terms(const GemmBf16Args& g) {
  if (g.offsets)
    blocks<false, Terms>(g);
  else
    blocks<true, Terms>(g);
}

}  // namespace

void gemm_avx512_bf16(const GemmBf16Args& g) {
  if (g.in2) {
    GemmBf16Args second = g;
    second.in = g.in2;
    second.out = g.out2;
    second.in2 = nullptr;
    gemm_avx512_bf16(second);
  }
  if (g.terms == 2)
    gemm_terms<2>(g);
  else
    gemm_terms<1>(g);
}

void to_pair_rows_avx512_bf16(const float* in, int64_t positions, int64_t channels, uint32_t* out) {
  // vcvtne2ps2bf16 puts its second operand's 16 values in the low half: interleave the halves
  const __m512i interleave = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8, 23, 7, 22,
                                              6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
  const int64_t pairs = (channels + 1) / 2;
  for (int64_t l = 0; l < positions; ++l) {
    const float* row = in + l * channels * kTileWidth;
    for (int64_t p = 0; p < pairs; ++p, out += kTileWidth) {
      const __m512 even = _mm512_loadu_ps(row + 2 * p * kTileWidth);
      const __m512 odd = 2 * p + 1 < channels ? _mm512_loadu_ps(row + (2 * p + 1) * kTileWidth) : _mm512_setzero_ps();
      const __m512i halves = (__m512i)_mm512_cvtne2ps_pbh(odd, even);
      _mm512_storeu_si512(out, _mm512_permutexvar_epi16(interleave, halves));
    }
  }
  _mm512_storeu_si512(out, _mm512_setzero_si512());
}

double dp_loop_avx512_bf16(int64_t iterations, float* sink) {
  constexpr int kChains = 16;
  __m512 acc[kChains];
  const __m512bh a = _mm512_cvtne2ps_pbh(_mm512_set1_ps(0.5f), _mm512_set1_ps(0.25f));
  const __m512bh b = _mm512_cvtne2ps_pbh(_mm512_set1_ps(1e-7f), _mm512_set1_ps(-1e-7f));
#pragma GCC unroll 16
  for (int c = 0; c < kChains; ++c) acc[c] = _mm512_set1_ps(float(c));
  for (int64_t i = 0; i < iterations; ++i) {
#pragma GCC unroll 16
    for (int c = 0; c < kChains; ++c) acc[c] = _mm512_dpbf16_ps(acc[c], a, b);
  }
  __m512 sum = acc[0];
#pragma GCC unroll 16
  for (int c = 1; c < kChains; ++c) sum = _mm512_add_ps(sum, acc[c]);
  alignas(64) float lanes[16];
  _mm512_store_ps(lanes, sum);
  sink[0] += lanes[0];
  return 4.0 * 16 * kChains * double(iterations);
}

}  // namespace fastinv::cpu
