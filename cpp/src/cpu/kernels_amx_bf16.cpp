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

// A call covers NB <= 2 row blocks of one or two pixel tiles (GemmBf16Args::in2), each
// (block, pixel tile) in its own C tile (tmm0-3): TDPBF16PS's latency is several times
// its issue interval, so fewer than four chains leave the tile unit mostly idle. The B
// tiles of a chunk (tmm6, tmm7) are loaded once for every block; each A tile (tmm4 and
// tmm5 in turn) once for both pixel tiles. Weight tiles come from L2 at about the rate
// TDPBF16PS consumes them, so with two terms (bf16x2) reusing each for two pixel tiles is
// what keeps the tile unit busy. One pixel tile runs four blocks at once as before.
// Every tile is 16 x 64 bytes: the last, shorter chunk of pair rows is padded with zero
// rows (its weight tile is zero-padded by pack_weights_bf16_tiles), which adds exact +0
// products and so leaves every sum as the shorter tile shapes gave it.
constexpr int kChains = 4;

// LDTILECFG (which also zeroes every tile) only when the tile registers hold another
// configuration: consecutive GEMMs keep theirs. Read back rather than remembered, because
// other code on this thread (oneDNN's AMX kernels under PyTorch's bf16 autocast, sharing
// the OpenMP main thread) may configure or release the tiles between our calls.
void configure() {
  TileConfig cfg;
  for (int t = 0; t < 8; ++t) {
    cfg.rows[t] = kRows;
    cfg.colsb[t] = kRowBytes;
  }
  TileConfig now;
  _tile_storeconfig(&now);  // all zero when the tiles are released (INIT state)
  if (std::memcmp(&now, &cfg, sizeof(cfg)) != 0) _tile_loadconfig(&cfg);
}

// Tile instructions with the tile numbers as template arguments: GCC's intrinsics paste
// their tile argument into the assembly text, so they take only literals. ("memory": the
// loads read, and the stores write, buffers the compiler must not reorder around them.)
template <int T>
inline void tile_load(const void* base) {
  asm volatile("tileloadd (%0,%1,1), %%tmm%c2" ::"r"(base), "r"(int64_t(kRowBytes)), "i"(T) : "memory");
}
template <int T>
inline void tile_store(void* base) {
  asm volatile("tilestored %%tmm%c2, (%0,%1,1)" ::"r"(base), "r"(int64_t(kRowBytes)), "i"(T) : "memory");
}
template <int T>
inline void tile_zero() {
  asm volatile("tilezero %%tmm%c0" ::"i"(T));
}
template <int C, int A, int B>
inline void tile_dp() {
  asm volatile("tdpbf16ps %%tmm%c0, %%tmm%c1, %%tmm%c2" ::"i"(B), "i"(A), "i"(C));
}

// The pair rows of chunk c of pixel tile `in`: in place when they are a whole chunk of one
// block of pair rows, else gathered through the offsets into `window`, zero past `pairs`
// (padding taps read the zero row).
inline const uint32_t* pair_rows(const GemmBf16Args& g, const uint32_t* in, int64_t c, int64_t pairs,
                                 uint32_t* window) {
  if (!g.offsets && pairs == kPairs) return in + c * kPairs * kTileWidth;
  for (int64_t p = 0; p < pairs; ++p)
    std::memcpy(window + p * kTileWidth, in + (g.offsets ? g.offsets[c * kPairs + p] : (c * kPairs + p) * kTileWidth),
                kRowBytes);
  std::memset(window + pairs * kTileWidth, 0, size_t((kPairs - pairs) * kRowBytes));
  return window;
}

// Block j's A tile of one chunk and term, into tmm4 or tmm5 (alternating, so that a load
// can overlap the other tile's products), times each pixel tile's B (tmm6, tmm7).
template <int NB, int NP, int J = 0>
inline void blocks_chunk(const uint32_t* a, int64_t block_words) {
  if constexpr (J < NB) {
    constexpr int A = 4 + J % 2;
    tile_load<A>(a + J * block_words);
    tile_dp<J * NP, A, 6>();
    if constexpr (NP == 2) tile_dp<J * NP + 1, A, 7>();
    blocks_chunk<NB, NP, J + 1>(a, block_words);
  }
}
template <int NC, int J = 0>
inline void zero_tiles() {
  if constexpr (J < NC) {
    tile_zero<J>();
    zero_tiles<NC, J + 1>();
  }
}
template <int NC, int J = 0>
inline void store_tiles(float (*acc)[kRows][kTileWidth]) {
  if constexpr (J < NC) {
    tile_store<J>(acc[J]);
    store_tiles<NC, J + 1>(acc);
  }
}

// Row blocks blk0 .. blk0 + NB - 1 over the pair rows of the NP pixel tiles of g, then
// the float32 epilogue of the AVX-512 kernels on each block's 16 rows of each tile.
template <int NB, int NP>
void block_group(const GemmBf16Args& g, int64_t blk0, int64_t chunks, int64_t tail) {
  const int64_t chunk_words = g.terms * kRows * kPairs;
  const int64_t padded = chunks + (tail > 0), block_words = padded * chunk_words;
  const uint32_t* a = g.a + blk0 * block_words;
  const uint32_t* in[2] = {g.in, g.in2};
  float* outs[2] = {g.out, g.out2};
  alignas(64) float acc[NB * NP][kRows][kTileWidth];
  alignas(64) uint32_t window[NP][kPairs * kTileWidth];
  zero_tiles<NB * NP>();
  for (int64_t c = 0; c < padded; ++c) {
    const int64_t pairs = c < chunks ? kPairs : tail;
    tile_load<6>(pair_rows(g, in[0], c, pairs, window[0]));
    if constexpr (NP == 2) tile_load<7>(pair_rows(g, in[1], c, pairs, window[NP - 1]));
    for (int term = 0; term < g.terms; ++term)
      blocks_chunk<NB, NP>(a + c * chunk_words + term * kRows * kPairs, block_words);
  }
  store_tiles<NB * NP>(acc);
  for (int j = 0; j < NB; ++j)
    for (int p = 0; p < NP; ++p) {
      const int64_t blk = blk0 + j, rows = g.m - blk * kRows;
      float* out = outs[p] + blk * kRows * g.out_stride;
      __m512 c[kRows];
#pragma GCC unroll 16
      for (int r = 0; r < kRows; ++r) {
        // start: bias (padded to whole blocks) or the stored partial sum
        const __m512 start = !g.accumulate ? _mm512_set1_ps(g.bias[blk * kRows + r])
                             : r < rows    ? _mm512_loadu_ps(out + r * g.out_stride)
                                           : _mm512_setzero_ps();
        c[r] = _mm512_add_ps(start, _mm512_load_ps(acc[j * NP + p][r]));
      }
      finish_rows_avx512<kRows>(c, rows, out, g.out_stride, g.leaky, g.slope, g.max_into_out);
    }
}

template <int NP>
void block_groups(const GemmBf16Args& g, int64_t chunks, int64_t tail) {
  constexpr int group = kChains / NP;
  const int64_t blocks = (g.m + kRows - 1) / kRows;
  for (int64_t blk0 = 0; blk0 < blocks; blk0 += group) {
    const int64_t nb = std::min<int64_t>(group, blocks - blk0);
    if constexpr (NP == 1) {
      if (nb >= 4)
        block_group<4, 1>(g, blk0, chunks, tail);
      else if (nb == 3)
        block_group<3, 1>(g, blk0, chunks, tail);
      else if (nb == 2)
        block_group<2, 1>(g, blk0, chunks, tail);
      else
        block_group<1, 1>(g, blk0, chunks, tail);
    } else {
      if (nb >= 2)
        block_group<2, 2>(g, blk0, chunks, tail);
      else
        block_group<1, 2>(g, blk0, chunks, tail);
    }
  }
}

}  // namespace

void gemm_amx_bf16(const GemmBf16Args& g) {
  const int64_t chunks = g.kp / kPairs, tail = g.kp % kPairs;
  configure();
  if (g.in2)
    block_groups<2>(g, chunks, tail);
  else
    block_groups<1>(g, chunks, tail);
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
