// AMX-BF16 microkernel for precision="bf16": the same GEMM as kernels_avx512_bf16.cpp
// (bf16 pairs, float32 sums) on the tile unit, where the CPU has one (Sapphire Rapids
// and later). A tile's layout is the engine's: the B tile is 16 pair rows of 16 lanes,
// exactly the pair rows the layer input was rounded into, and the C tile is 16 output
// rows of 16 lanes. One TDPBF16PS does 16 x 16 x 32 multiply-adds. Weights are packed
// per 16-row block and 16-pair chunk as [16 rows][16 pairs] (pack_weights_bf16_tiles).
#include <immintrin.h>

#include <cstring>
#include <vector>

#include "cpu/kernels_bf16.hpp"
#include "cpu/kernels_rows.hpp"

namespace fastinv::cpu {
namespace {

constexpr int kRows = 16, kPairs = 16, kRowBytes = 64;

struct alignas(64) TileConfig {
  uint8_t palette = 1, start_row = 0;
  uint8_t reserved[14] = {};
  uint16_t colsb[16] = {};
  uint8_t rows[16] = {};
};

// tmm0: C, tmm1/tmm2: A/B of a full 16-pair chunk, tmm3/tmm4: A/B of the last, shorter one.
void configure(int64_t tail_pairs) {
  TileConfig cfg;
  cfg.rows[0] = kRows;
  cfg.colsb[0] = kRowBytes;
  cfg.rows[1] = kRows;
  cfg.colsb[1] = kRowBytes;
  cfg.rows[2] = kPairs;
  cfg.colsb[2] = kRowBytes;
  if (tail_pairs > 0) {
    cfg.rows[3] = kRows;
    cfg.colsb[3] = uint16_t(4 * tail_pairs);
    cfg.rows[4] = uint8_t(tail_pairs);
    cfg.colsb[4] = kRowBytes;
  }
  _tile_loadconfig(&cfg);
}

}  // namespace

void gemm_amx_bf16(const GemmBf16Args& g) {
  const int64_t chunks = g.kp / kPairs, tail = g.kp % kPairs, padded = (g.kp + kPairs - 1) / kPairs;
  // Windows that are not one block of pair rows are gathered into one (thread_local: the
  // buffer only grows, once per thread).
  thread_local std::vector<uint32_t> gathered;
  const uint32_t* b = g.in;
  if (g.offsets) {
    gathered.resize(size_t(g.kp * kTileWidth));
    for (int64_t kk = 0; kk < g.kp; ++kk)
      std::memcpy(&gathered[size_t(kk * kTileWidth)], g.in + g.offsets[kk], kRowBytes);
    b = gathered.data();
  }
  configure(tail);
  alignas(64) float acc[kRows][kTileWidth];
  for (int64_t blk = 0; blk * kRows < g.m; ++blk) {
    const uint32_t* a = g.a + blk * padded * kRows * kPairs;
    _tile_zero(0);
    for (int64_t c = 0; c < chunks; ++c) {
      _tile_loadd(1, a + c * kRows * kPairs, kRowBytes);
      _tile_loadd(2, b + c * kPairs * kTileWidth, kRowBytes);
      _tile_dpbf16ps(0, 1, 2);
    }
    if (tail > 0) {
      _tile_loadd(3, a + chunks * kRows * kPairs, kRowBytes);
      _tile_loadd(4, b + chunks * kPairs * kTileWidth, kRowBytes);
      _tile_dpbf16ps(0, 3, 4);
    }
    _tile_stored(0, acc, kRowBytes);
    // The float32 epilogue of the AVX-512 kernels, row by row: start (bias or the
    // stored partial sum) + products, activation, pool max.
    const int64_t rows = g.m - blk * kRows < kRows ? g.m - blk * kRows : kRows;
    float* out = g.out + blk * kRows * g.out_stride;
    const __m512 slope = _mm512_set1_ps(g.slope), zero = _mm512_setzero_ps();
    for (int64_t r = 0; r < rows; ++r) {
      float* o = out + r * g.out_stride;
      const __m512 start = g.accumulate ? _mm512_loadu_ps(o) : _mm512_set1_ps(g.bias[blk * kRows + r]);
      __m512 v = _mm512_add_ps(start, _mm512_load_ps(acc[r]));
      if (g.leaky) {
        const __mmask16 neg = _mm512_cmp_ps_mask(v, zero, _CMP_LT_OQ);
        v = g.slope == 0.f ? _mm512_mask_mov_ps(v, neg, zero) : _mm512_mask_mul_ps(v, neg, v, slope);
      }
      _mm512_store_ps(acc[r], v);
      store_row(o, acc[r], g.max_into_out);
    }
  }
}

}  // namespace fastinv::cpu
