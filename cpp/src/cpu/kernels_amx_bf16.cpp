// AMX-BF16 microkernel for precision="bf16": the same GEMM as kernels_avx512_bf16.cpp
// (bf16 pairs, float32 sums) on the tile unit, where the CPU has one (Sapphire Rapids
// and later). A tile's layout is the engine's: the B tile is 16 pair rows of 16 lanes,
// exactly the pair rows the layer input was rounded into, and the C tile is 16 output
// rows of 16 lanes. One TDPBF16PS does 16 x 16 x 32 multiply-adds. Weights are packed
// per 16-row block and 16-pair chunk as [16 rows][16 pairs] (pack_weights_bf16_tiles);
// with two weight terms (bf16x2) as [hi, lo][16 rows][16 pairs]: both A tiles meet the
// same B tile, so the activations are loaded once for twice the products.
#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "cpu/kernels_bf16.hpp"
#include "cpu/kernels_epilogue_avx512.hpp"

namespace fastinv::cpu {
namespace {

constexpr int kRows = 16, kPairs = 16, kRowBytes = 64;

struct alignas(64) TileConfig {
  uint8_t palette = 1, start_row = 0;
  uint8_t reserved[14] = {};
  uint16_t colsb[16] = {};
  uint8_t rows[16] = {};
};

// Up to kGroup row blocks run at once, each in its own C tile (tmm0-3): TDPBF16PS's
// latency is several times its issue interval, so one block's chain alone leaves the
// tile unit mostly idle (one chain per block, with a tile configuration per call and a
// scalar epilogue, held the ViSP network to 1.09x float32). A chunk's B tile (tmm6) is loaded once for the whole group;
// tmm4 holds a full A chunk, tmm5 / tmm7 the A / B of the last, shorter one.
constexpr int kGroup = 4;

// LDTILECFG (which also zeroes every tile) only when the tile registers hold another
// configuration: consecutive GEMMs of a layer keep theirs. Read back rather than
// remembered, because other code on this thread (oneDNN's AMX kernels under PyTorch's
// bf16 autocast, sharing the OpenMP main thread) may configure or release the tiles
// between our calls.
void configure(int64_t tail_pairs) {
  TileConfig cfg;
  for (int t = 0; t < kGroup; ++t) {
    cfg.rows[t] = kRows;
    cfg.colsb[t] = kRowBytes;
  }
  cfg.rows[4] = kRows;
  cfg.colsb[4] = kRowBytes;
  cfg.rows[6] = kPairs;
  cfg.colsb[6] = kRowBytes;
  if (tail_pairs > 0) {
    cfg.rows[5] = kRows;
    cfg.colsb[5] = uint16_t(4 * tail_pairs);
    cfg.rows[7] = uint8_t(tail_pairs);
    cfg.colsb[7] = kRowBytes;
  }
  TileConfig now;
  _tile_storeconfig(&now);  // all zero when the tiles are released (INIT state)
  if (std::memcmp(&now, &cfg, sizeof(cfg)) != 0) _tile_loadconfig(&cfg);
}

// One chunk's products into C tile J, and its zeroing and store. GCC's tile intrinsics
// paste their tile argument into the assembly text: it must be a literal, hence the
// per-tile specializations.
template <int J>
struct CTile;
#define FASTINV_AMX_C_TILE(J)                                                        \
  template <>                                                                        \
  struct CTile<J> {                                                                  \
    static void chunk(const uint32_t* a) {                                           \
      _tile_loadd(4, a, kRowBytes);                                                  \
      _tile_dpbf16ps(J, 4, 6);                                                       \
    }                                                                                \
    static void tail(const uint32_t* a) {                                            \
      _tile_loadd(5, a, kRowBytes);                                                  \
      _tile_dpbf16ps(J, 5, 7);                                                       \
    }                                                                                \
    static void zero() { _tile_zero(J); }                                            \
    static void store(float (*acc)[kTileWidth]) { _tile_stored(J, acc, kRowBytes); } \
  };
FASTINV_AMX_C_TILE(0)
FASTINV_AMX_C_TILE(1)
FASTINV_AMX_C_TILE(2)
FASTINV_AMX_C_TILE(3)
#undef FASTINV_AMX_C_TILE

template <int J>
inline void zero_and_store(bool zero, float (*acc)[kTileWidth]) {
  if (zero)
    CTile<J>::zero();
  else
    CTile<J>::store(acc);
}

template <int NB, int J = 0>
inline void for_tiles_zero_store(bool zero, float (*acc)[kRows][kTileWidth]) {
  if constexpr (J < NB) {
    zero_and_store<J>(zero, acc[J]);
    for_tiles_zero_store<NB, J + 1>(zero, acc);
  }
}
template <int NB, int J = 0>
inline void for_tiles_chunk(const uint32_t* a, int64_t block_words, bool tail) {
  if constexpr (J < NB) {
    if (tail)
      CTile<J>::tail(a + J * block_words);
    else
      CTile<J>::chunk(a + J * block_words);
    for_tiles_chunk<NB, J + 1>(a, block_words, tail);
  }
}

// The `pairs` pair rows of chunk c: in place when the window is one block of pair rows,
// else gathered through the offsets into `window` (padding taps read the zero row).
inline const uint32_t* pair_rows(const GemmBf16Args& g, int64_t c, int64_t pairs, uint32_t* window) {
  if (!g.offsets) return g.in + c * kPairs * kTileWidth;
  for (int64_t p = 0; p < pairs; ++p) std::memcpy(window + p * kTileWidth, g.in + g.offsets[c * kPairs + p], kRowBytes);
  return window;
}

// Row blocks blk0 .. blk0 + NB - 1 over the pair rows of g, then the float32 epilogue of the
// AVX-512 kernels on each block's 16 rows.
template <int NB>
void block_group(const GemmBf16Args& g, int64_t blk0, int64_t chunks, int64_t tail) {
  const int64_t chunk_words = g.terms * kRows * kPairs;
  const int64_t padded = chunks + (tail > 0), block_words = padded * chunk_words;
  const uint32_t* a = g.a + blk0 * block_words;
  alignas(64) float acc[NB][kRows][kTileWidth];
  alignas(64) uint32_t window[kPairs * kTileWidth];
  for_tiles_zero_store<NB>(true, acc);
  for (int64_t c = 0; c < chunks; ++c) {
    _tile_loadd(6, pair_rows(g, c, kPairs, window), kRowBytes);
    for (int term = 0; term < g.terms; ++term)
      for_tiles_chunk<NB>(a + c * chunk_words + term * kRows * kPairs, block_words, false);
  }
  if (tail > 0) {
    _tile_loadd(7, pair_rows(g, chunks, tail, window), kRowBytes);
    for (int term = 0; term < g.terms; ++term)
      for_tiles_chunk<NB>(a + chunks * chunk_words + term * kRows * kPairs, block_words, true);
  }
  for_tiles_zero_store<NB>(false, acc);
  for (int j = 0; j < NB; ++j) {
    const int64_t blk = blk0 + j, rows = g.m - blk * kRows;
    float* out = g.out + blk * kRows * g.out_stride;
    __m512 c[kRows];
#pragma GCC unroll 16
    for (int r = 0; r < kRows; ++r) {
      // start: bias (padded to whole blocks) or the stored partial sum
      const __m512 start = !g.accumulate ? _mm512_set1_ps(g.bias[blk * kRows + r])
                           : r < rows    ? _mm512_loadu_ps(out + r * g.out_stride)
                                         : _mm512_setzero_ps();
      c[r] = _mm512_add_ps(start, _mm512_load_ps(acc[j][r]));
    }
    finish_rows_avx512<kRows>(c, rows, out, g.out_stride, g.leaky, g.slope, g.max_into_out);
  }
}

}  // namespace

void gemm_amx_bf16(const GemmBf16Args& g) {
  const int64_t chunks = g.kp / kPairs, tail = g.kp % kPairs;
  configure(tail);
  const int64_t blocks = (g.m + kRows - 1) / kRows;
  for (int64_t blk0 = 0; blk0 < blocks; blk0 += kGroup) {
    switch (std::min<int64_t>(kGroup, blocks - blk0)) {
      case 1:
        block_group<1>(g, blk0, chunks, tail);
        break;
      case 2:
        block_group<2>(g, blk0, chunks, tail);
        break;
      case 3:
        block_group<3>(g, blk0, chunks, tail);
        break;
      default:
        block_group<4>(g, blk0, chunks, tail);
    }
  }
}

double tile_loop_amx_bf16(int64_t iterations, float* sink) {
  // Four independent accumulator tiles (TDPBF16PS's latency is several times its issue
  // interval), from two A and two B tiles of ordinary values.
  alignas(64) uint32_t ab[kRows * kPairs];
  for (int i = 0; i < kRows * kPairs; ++i) ab[i] = 0x3f803f00u + uint32_t(i % 7);  // bf16 pairs near 0.5, 1
  TileConfig cfg;
  for (int t = 0; t < 8; ++t) {
    cfg.rows[t] = kRows;
    cfg.colsb[t] = kRowBytes;
  }
  _tile_loadconfig(&cfg);
  _tile_zero(0);  // (tile numbers are immediates: no loop)
  _tile_zero(1);
  _tile_zero(2);
  _tile_zero(3);
  _tile_loadd(4, ab, kRowBytes);
  _tile_loadd(5, ab, kRowBytes);
  _tile_loadd(6, ab, kRowBytes);
  _tile_loadd(7, ab, kRowBytes);
  for (int64_t i = 0; i < iterations; ++i) {
    _tile_dpbf16ps(0, 4, 6);
    _tile_dpbf16ps(1, 4, 7);
    _tile_dpbf16ps(2, 5, 6);
    _tile_dpbf16ps(3, 5, 7);
  }
  alignas(64) float c[kRows][kTileWidth];
  _tile_stored(0, c, kRowBytes);
  sink[0] += c[0][0];
  return 4.0 * 2 * kRows * kTileWidth * 2 * kPairs * double(iterations);
}

}  // namespace fastinv::cpu
