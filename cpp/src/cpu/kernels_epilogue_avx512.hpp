// The float32 row start and epilogue shared by the AVX-512 GEMMs (fp32 FMA, bf16 vdpbf16ps
// and the AMX tiles): one zmm per output row holding start + products; applies the fused
// activation and stores the rows or maxes them into a fused pool's stored rows
// (GemmArgs). Include only from translation units compiled for AVX-512; internal
// linkage, as kernels_rows.hpp explains.
#pragma once
#include <immintrin.h>

#include <cstdint>

#include "cpu/kernels_rows.hpp"

namespace fastinv::cpu {
namespace {

// The accumulators' start: the stored rows when accumulating (zero past `rows`), else the bias.
template <int ROWS>
__attribute__((always_inline)) inline void start_rows_avx512(__m512 (&c)[ROWS], bool accumulate, const float* out,
                                                             int64_t out_stride, int64_t rows, const float* bias) {
  if (accumulate) {
#pragma GCC unroll 16
    for (int r = 0; r < ROWS; ++r) c[r] = r < rows ? _mm512_loadu_ps(out + r * out_stride) : _mm512_setzero_ps();
  } else {
#pragma GCC unroll 16
    for (int r = 0; r < ROWS; ++r) c[r] = _mm512_set1_ps(bias[r]);
  }
}

// ROWS accumulators, of which `rows` (may be fewer or more than ROWS) are real output
// rows at out, out + out_stride, ...; always inlined so that c stays in registers.
template <int ROWS>
__attribute__((always_inline)) inline void finish_rows_avx512(__m512 (&c)[ROWS], int64_t rows, float* out,
                                                              int64_t out_stride, bool leaky, float slope,
                                                              bool max_into_out) {
  if (leaky) {
    const __m512 vslope = _mm512_set1_ps(slope), zero = _mm512_setzero_ps();
    const bool relu = slope == 0.f;  // exactly 0, also for -inf
#pragma GCC unroll 16
    for (int r = 0; r < ROWS; ++r) {
      const __mmask16 neg = _mm512_cmp_ps_mask(c[r], zero, _CMP_LT_OQ);
      c[r] = relu ? _mm512_mask_mov_ps(c[r], neg, zero) : _mm512_mask_mul_ps(c[r], neg, c[r], vslope);
    }
  }
  if (rows >= ROWS) {
    if (max_into_out) {
#pragma GCC unroll 16
      for (int r = 0; r < ROWS; ++r) {
        const __m512 stored = _mm512_loadu_ps(out + r * out_stride);
        // max gives its second operand when either is NaN; a stored NaN is kept by the
        // mask (maskz: GCC 12 warns falsely about _mm512_max_ps's undefined pass-through)
        const __m512 m = _mm512_maskz_max_ps(0xffff, stored, c[r]);
        c[r] = _mm512_mask_mov_ps(m, _mm512_cmp_ps_mask(stored, stored, _CMP_UNORD_Q), stored);
      }
    }
#pragma GCC unroll 16
    for (int r = 0; r < ROWS; ++r) _mm512_storeu_ps(out + r * out_stride, c[r]);
  } else {
    alignas(64) float tmp[ROWS][kTileWidth];
#pragma GCC unroll 16
    for (int r = 0; r < ROWS; ++r) _mm512_store_ps(tmp[r], c[r]);
    for (int64_t r = 0; r < rows; ++r) store_row(out + r * out_stride, tmp[r], max_into_out);
  }
}

}  // namespace
}  // namespace fastinv::cpu
