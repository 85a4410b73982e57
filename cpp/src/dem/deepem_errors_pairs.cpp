// DeepEM's bf16 tangents written as the bf16 kernels' pair rows (deepem_errors_bf16.cpp),
// compiled for AVX512-BF16: vcvtne2ps2bf16 rounds two rows at once, as the engine's
// to_pair_rows does, but straight from the tangents, without a float32 copy of them.
#include <immintrin.h>

#include "dem/deepem_errors.hpp"

namespace fastinv::dem {
namespace {

constexpr int kW = cpu::kTileWidth;
constexpr int kDirs = kErrorDirections;

// Rows `even` and `odd` rounded to bf16 (nearest even) into one pair row, even in the low halves.
__m512i pair_row(__m512 even, __m512 odd) {
  // vcvtne2ps2bf16 puts its second operand's 16 values in the low half: interleave the halves
  const __m512i interleave = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8, 23, 7, 22,
                                              6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
  return _mm512_permutexvar_epi16(interleave, (__m512i)_mm512_cvtne2ps_pbh(odd, even));
}

// act'(pre) from the engine's activation row: slope >= 0, so act > 0 exactly where pre > 0.
__m512 slope_of(const float* act_row, float slope) {
  const __mmask16 up = _mm512_cmp_ps_mask(_mm512_loadu_ps(act_row), _mm512_setzero_ps(), _CMP_GT_OQ);
  return _mm512_mask_blend_ps(up, _mm512_set1_ps(slope), _mm512_set1_ps(1.f));
}

// Zero pair rows from `from` to the end of its 16-pair chunk (the AMX kernel reads whole chunks).
void zero_to_chunk(uint32_t* pairs, int64_t from) {
  for (int64_t p = from; p < (from + 15) / 16 * 16; ++p) _mm512_storeu_si512(pairs + p * kW, _mm512_setzero_si512());
}

}  // namespace

void layer1_pairs(const DeepEmErrorModel& m, const float* a1, const float (*s)[kW], uint32_t* pairs,
                  int64_t stride) noexcept {
  __m512 sv[kDirs];
  for (int c = 0; c < kDirs; ++c) sv[c] = _mm512_loadu_ps(s[c]);
  const int64_t n = m.n_h1, kp = (n + 1) / 2;
  for (int64_t p = 0; p < kp; ++p) {
    const int64_t k0 = 2 * p, k1 = k0 + 1;
    const __m512 d0 = slope_of(a1 + k0 * kW, m.slope1);
    const __m512 d1 = k1 < n ? slope_of(a1 + k1 * kW, m.slope1) : _mm512_setzero_ps();
    const float* w0 = m.w1.data() + k0 * kDirs;
    const float* w1 = k1 < n ? w0 + kDirs : w0;  // (times d1 = 0 past the layer)
    for (int c = 0; c < kDirs; ++c) {
      const __m512 t0 = _mm512_mul_ps(_mm512_mul_ps(d0, _mm512_set1_ps(w0[c])), sv[c]);
      const __m512 t1 = _mm512_mul_ps(_mm512_mul_ps(d1, _mm512_set1_ps(w1[c])), sv[c]);
      _mm512_storeu_si512(pairs + c * stride + p * kW, pair_row(t0, t1));
    }
  }
  for (int c = 0; c < kDirs; ++c) zero_to_chunk(pairs + c * stride, kp);
}

void layer2_pairs(const DeepEmErrorModel& m, const float* a2, const float* t, int64_t t_stride, uint32_t* pairs,
                  int64_t stride) noexcept {
  const int64_t n = m.n_h2, kp = (n + 1) / 2;
  for (int64_t p = 0; p < kp; ++p) {
    const int64_t k0 = 2 * p, k1 = k0 + 1;
    const __m512 d0 = slope_of(a2 + k0 * kW, m.slope2);
    const __m512 d1 = k1 < n ? slope_of(a2 + k1 * kW, m.slope2) : _mm512_setzero_ps();
    for (int c = 0; c < kDirs; ++c) {
      const float* tc = t + c * t_stride;
      const __m512 t0 = _mm512_mul_ps(d0, _mm512_loadu_ps(tc + k0 * kW));
      const __m512 t1 = k1 < n ? _mm512_mul_ps(d1, _mm512_loadu_ps(tc + k1 * kW)) : _mm512_setzero_ps();
      _mm512_storeu_si512(pairs + c * stride + p * kW, pair_row(t0, t1));
    }
  }
  for (int c = 0; c < kDirs; ++c) zero_to_chunk(pairs + c * stride, kp);
}

void layer2_block_pairs(const float* a2, int64_t n, float slope, const float* block, int directions, int64_t row0,
                        uint32_t* pairs, int64_t stride) noexcept {
  for (int q = 0; q < 8; ++q) {
    const int64_t r0 = row0 + 2 * q, r1 = r0 + 1;
    // rows past the layer hold 0 (zero weights); their activation rows do not exist
    const __m512 d0 = r0 < n ? slope_of(a2 + r0 * kW, slope) : _mm512_setzero_ps();
    const __m512 d1 = r1 < n ? slope_of(a2 + r1 * kW, slope) : _mm512_setzero_ps();
    for (int c = 0; c < directions; ++c) {
      const float* rows = block + (c * 16 + 2 * q) * kW;
      const __m512 t0 = _mm512_mul_ps(d0, _mm512_loadu_ps(rows)), t1 = _mm512_mul_ps(d1, _mm512_loadu_ps(rows + kW));
      _mm512_storeu_si512(pairs + c * stride + (row0 / 2 + q) * kW, pair_row(t0, t1));
    }
  }
}

}  // namespace fastinv::dem
