// The AMX-BF16 product of DeepEM's noise propagation (deepem_errors_bf16.cpp): several
// directions through one layer, out[r] = W . in[r] for each direction r, 16 lanes each.
// Two row blocks times two directions give four independent accumulators, so no TDPBF16PS
// waits for the one before it, and each A (weight) and B (direction) tile load feeds two
// (the engine's gemm_amx_bf16 pairs two pixel tiles the same way).
#include <immintrin.h>

#include "dem/deepem_errors.hpp"

namespace fastinv::dem {
namespace {

constexpr int kRows = 16, kPairs = 16, kRowBytes = 64, kW = cpu::kTileWidth;

struct alignas(64) TileConfig {
  uint8_t palette = 1, start_row = 0;
  uint8_t reserved[14] = {};
  uint16_t colsb[16] = {};
  uint8_t rows[16] = {};
};

}  // namespace

void gemm_directions_amx(const uint32_t* a, int64_t blocks, int64_t chunks, const uint32_t* in, int64_t in_stride,
                         int directions, float* out, int64_t out_stride) noexcept {
  TileConfig cfg;
  for (int t = 0; t < 8; ++t) {
    cfg.rows[t] = kRows;
    cfg.colsb[t] = kRowBytes;
  }
  _tile_loadconfig(&cfg);
  const int64_t block_words = chunks * kRows * kPairs, chunk_words = kRows * kPairs;
  int64_t blk = 0;
  for (; blk + 2 <= blocks; blk += 2) {
    const uint32_t* a0 = a + blk * block_words;
    const uint32_t* a1 = a0 + block_words;
    float* o0 = out + blk * kRows * kW;
    float* o1 = o0 + kRows * kW;
    int r = 0;
    for (; r + 2 <= directions; r += 2) {
      const uint32_t* b0 = in + r * in_stride;
      const uint32_t* b1 = b0 + in_stride;
      _tile_zero(0);
      _tile_zero(1);
      _tile_zero(2);
      _tile_zero(3);
      for (int64_t c = 0; c < chunks; ++c) {
        _tile_loadd(4, a0 + c * chunk_words, kRowBytes);
        _tile_loadd(6, b0 + c * kPairs * kW, kRowBytes);
        _tile_dpbf16ps(0, 4, 6);
        _tile_loadd(7, b1 + c * kPairs * kW, kRowBytes);
        _tile_dpbf16ps(1, 4, 7);
        _tile_loadd(5, a1 + c * chunk_words, kRowBytes);
        _tile_dpbf16ps(2, 5, 6);
        _tile_dpbf16ps(3, 5, 7);
      }
      _tile_stored(0, o0 + r * out_stride, kRowBytes);
      _tile_stored(1, o0 + (r + 1) * out_stride, kRowBytes);
      _tile_stored(2, o1 + r * out_stride, kRowBytes);
      _tile_stored(3, o1 + (r + 1) * out_stride, kRowBytes);
    }
    if (r < directions) {  // an odd last direction: two row blocks, one B tile
      const uint32_t* b0 = in + r * in_stride;
      _tile_zero(0);
      _tile_zero(2);
      for (int64_t c = 0; c < chunks; ++c) {
        _tile_loadd(6, b0 + c * kPairs * kW, kRowBytes);
        _tile_loadd(4, a0 + c * chunk_words, kRowBytes);
        _tile_dpbf16ps(0, 4, 6);
        _tile_loadd(5, a1 + c * chunk_words, kRowBytes);
        _tile_dpbf16ps(2, 5, 6);
      }
      _tile_stored(0, o0 + r * out_stride, kRowBytes);
      _tile_stored(2, o1 + r * out_stride, kRowBytes);
    }
  }
  if (blk < blocks) {  // an odd last row block: one A tile, two directions at a time
    const uint32_t* a0 = a + blk * block_words;
    float* o0 = out + blk * kRows * kW;
    int r = 0;
    for (; r + 2 <= directions; r += 2) {
      const uint32_t* b0 = in + r * in_stride;
      const uint32_t* b1 = b0 + in_stride;
      _tile_zero(0);
      _tile_zero(1);
      for (int64_t c = 0; c < chunks; ++c) {
        _tile_loadd(4, a0 + c * chunk_words, kRowBytes);
        _tile_loadd(6, b0 + c * kPairs * kW, kRowBytes);
        _tile_dpbf16ps(0, 4, 6);
        _tile_loadd(7, b1 + c * kPairs * kW, kRowBytes);
        _tile_dpbf16ps(1, 4, 7);
      }
      _tile_stored(0, o0 + r * out_stride, kRowBytes);
      _tile_stored(1, o0 + (r + 1) * out_stride, kRowBytes);
    }
    if (r < directions) {
      const uint32_t* b0 = in + r * in_stride;
      _tile_zero(0);
      for (int64_t c = 0; c < chunks; ++c) {
        _tile_loadd(4, a0 + c * chunk_words, kRowBytes);
        _tile_loadd(6, b0 + c * kPairs * kW, kRowBytes);
        _tile_dpbf16ps(0, 4, 6);
      }
      _tile_stored(0, o0 + r * out_stride, kRowBytes);
    }
  }
}

}  // namespace fastinv::dem
