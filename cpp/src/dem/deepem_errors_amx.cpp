// The AMX-BF16 products of DeepEM's noise propagation (deepem_errors_bf16.cpp): several
// directions through one layer, out[r] = W . in[r] for each direction r, 16 lanes each.
// One row block times three directions: three independent accumulators, and each weight tile,
// the one operand that comes from L2 (W2 is 180 kB in bf16), feeds three TDPBF16PS while the
// three directions' pair rows stay in L1. Through layer 2 each finished block gets its slopes
// and becomes bf16 pair rows while in L1 (gemm_directions_amx_pairs): the float32 tangents
// (123 kB per tile) never go through L2. Per perf, the two together took ~10 % fewer samples
// in these kernels than two blocks times two directions with float32 output.
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

namespace {

// The products of `directions` directions, three at a time; store(r, n, blk) then takes the n
// accumulator tiles 0.. of directions r.. for row block blk.
template <typename Store>
void products(const uint32_t* a, int64_t blocks, int64_t chunks, const uint32_t* in, int64_t in_stride, int directions,
              Store store) noexcept {
  TileConfig cfg;
  for (int t = 0; t < 8; ++t) {
    cfg.rows[t] = kRows;
    cfg.colsb[t] = kRowBytes;
  }
  _tile_loadconfig(&cfg);
  const int64_t block_words = chunks * kRows * kPairs, chunk_words = kRows * kPairs;
  // Three directions at a time, their pair rows (3 x 10 kB for a 300-wide layer) staying in
  // L1 while the weight tiles stream through once per three directions.
  for (int r = 0; r < directions; r += 3) {
    const int n = directions - r < 3 ? directions - r : 3;
    const uint32_t* b0 = in + r * in_stride;
    const uint32_t* b1 = b0 + in_stride;
    const uint32_t* b2 = b1 + in_stride;
    for (int64_t blk = 0; blk < blocks; ++blk) {
      const uint32_t* a0 = a + blk * block_words;
      _tile_zero(0);
      _tile_zero(1);
      _tile_zero(2);
      if (n == 3) {
        for (int64_t c = 0; c < chunks; ++c) {
          _tile_loadd(3, a0 + c * chunk_words, kRowBytes);
          _tile_loadd(4, b0 + c * kPairs * kW, kRowBytes);
          _tile_dpbf16ps(0, 3, 4);
          _tile_loadd(5, b1 + c * kPairs * kW, kRowBytes);
          _tile_dpbf16ps(1, 3, 5);
          _tile_loadd(6, b2 + c * kPairs * kW, kRowBytes);
          _tile_dpbf16ps(2, 3, 6);
        }
      } else {
        for (int64_t c = 0; c < chunks; ++c) {
          _tile_loadd(3, a0 + c * chunk_words, kRowBytes);
          _tile_loadd(4, b0 + c * kPairs * kW, kRowBytes);
          _tile_dpbf16ps(0, 3, 4);
          if (n == 2) {
            _tile_loadd(5, b1 + c * kPairs * kW, kRowBytes);
            _tile_dpbf16ps(1, 3, 5);
          }
        }
      }
      store(r, n, blk);
    }
  }
}

}  // namespace

void gemm_directions_amx(const uint32_t* a, int64_t blocks, int64_t chunks, const uint32_t* in, int64_t in_stride,
                         int dirs, float* out, int64_t out_stride) noexcept {
  products(a, blocks, chunks, in, in_stride, dirs, [&](int r, int n, int64_t blk) {
    float* o = out + blk * kRows * kW + r * out_stride;
    _tile_stored(0, o, kRowBytes);
    if (n > 1) _tile_stored(1, o + out_stride, kRowBytes);
    if (n > 2) _tile_stored(2, o + 2 * out_stride, kRowBytes);
  });
}

void gemm_directions_amx_pairs(const uint32_t* a, int64_t blocks, int64_t chunks, const uint32_t* in, int64_t in_stride,
                               int dirs, const float* a2, int64_t n_rows, float slope, uint32_t* pairs,
                               int64_t pair_stride) noexcept {
  alignas(64) float block[3][kRows][kW];  // one block of three directions, in L1
  products(a, blocks, chunks, in, in_stride, dirs, [&](int r, int n, int64_t blk) {
    _tile_stored(0, block[0][0], kRowBytes);
    if (n > 1) _tile_stored(1, block[1][0], kRowBytes);
    if (n > 2) _tile_stored(2, block[2][0], kRowBytes);
    layer2_block_pairs(a2, n_rows, slope, block[0][0], n, blk * kRows, pairs + r * pair_stride, pair_stride);
  });
}

}  // namespace fastinv::dem
