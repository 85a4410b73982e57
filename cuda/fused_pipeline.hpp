// Index math and schedule of the fused kernel's opt-in pipeline variant
// (FASTINV_CUDA_KERNEL=pipeline; docs/cuda.md "The next design", steps 1 and 2), shared by
// cuda/fused_pipeline.cu and the CPU emulation (cuda/host/emulate_pipeline.cpp) like
// fused_index.hpp. tf32 and bf16 only; the activations use the ldmatrix layouts
// (cuda/fused_ldmatrix.hpp).
//
// Warp tiles: a block has one warp per 32 pixels of its tile; each warp computes all 64 rows
// of a weight chunk for its 32 pixels (4 m16 x 4 n8 mma tiles), so an A fragment is reused
// over four n8 tiles and a B fragment (one ldmatrix.x4 gives two n8 tiles) over four m16
// tiles. A warp reads and writes only its own pixels' activations; warps share the weights.
//
// Weight ring: the chunks a tile needs are the same sequence for every tile (layer 0's
// chunks in the kernel's order, ..., the last layer's), so a block's weight stream is that
// sequence repeated once per tile it owns. Position `pos` of the stream lives in stage
// stage_of(pos) of a kFusedStages-deep ring. Before consuming `pos` a thread waits until
// all but its newest wait_depth() cp.async groups have completed (one group per position,
// empty past the stream's end) and the block meets at a barrier; then position pos +
// prefetch_distance() is copied into the stage that pos - 1 used, which every warp has
// finished reading by that barrier. The copies run ahead across layer and tile edges.
#pragma once
#include "fused_ldmatrix.hpp"

namespace fastinv::cuda::fused::pipe {

constexpr int kStages = kFusedStages;
// Positions in flight ahead of the one being consumed.
FASTINV_HD constexpr int prefetch_distance() { return kStages - 1; }
// cp.async.wait_group operand before consuming a position: the newest groups that may still
// be in flight (positions pos + 1 .. pos + prefetch_distance() - 1).
FASTINV_HD constexpr int wait_depth() { return kStages - 2; }
FASTINV_HD int stage_of(int64_t pos) { return int(pos % kStages); }
// Shared memory, in words: [buffer 0][buffer 1][stage 0] ... [stage kStages - 1].
FASTINV_HD int stage_offset(int stage, int buf_words, int chunk_words) { return 2 * buf_words + stage * chunk_words; }

template <int TILE>
constexpr int warps() {
  return TILE / 32;
}
template <int TILE>
constexpr int threads() {
  return 32 * warps<TILE>();
}

// ---- the weight stream
FASTINV_HD int layer_chunks(const FusedLayerArgs& L) { return (L.mpad / kRows) * (L.kpad / kDepth); }
FASTINV_HD int tile_chunks(const FusedArgs& a) {
  int n = 0;
  for (int l = 0; l < a.nlayers; ++l) n += layer_chunks(a.layers[l]);
  return n;
}
// Tiles block `block` of `grid` owns (tiles block, block + grid, ...).
FASTINV_HD int64_t block_tiles(int64_t ntiles, int64_t block, int64_t grid) {
  return block < ntiles ? (ntiles - 1 - block) / grid + 1 : 0;
}
// First packed word of stream position pos (per_tile = tile_chunks): the layer's chunk
// c = fused::chunk_index(mc, kc, nkc), as the consumer walks them.
FASTINV_HD const uint32_t* stream_chunk(const FusedArgs& a, int64_t pos, int per_tile, int chunk_words) {
  int c = int(pos % per_tile), l = 0;
  while (c >= layer_chunks(a.layers[l])) c -= layer_chunks(a.layers[l++]);
  return a.layers[l].w + chunk_word(c, chunk_words);
}

// ---- the warp tile: warp w owns tile pixels 32 w .. 32 w + 31
FASTINV_HD int warp_col0(int warp) { return warp * 32; }
constexpr int kMTiles = kRows / 16, kNTiles = 4;
constexpr int kAcc = kMTiles * kNTiles * 4;  // accumulators per lane
FASTINV_HD int acc_index(int mi, int ni, int q) { return (mi * kNTiles + ni) * 4 + q; }
// ldmatrix.x4 row address (bf16: halves, tf32: floats, from the buffer's start) this lane
// supplies for k-step kt of chunk kc and n8-tile pair jj (n8 tiles 2 jj, 2 jj + 1) of the
// warp: matrix q = B register ldm::b_reg(q) of n8 tile ldm::b_tile(jj, q), as in the
// ldmatrix variant but at the warp tile's columns.
template <Precision P, int TILE>
FASTINV_HD int b_row_address(int warp, int lane, int kc, int kt, int jj, int rows) {
  const int q = ldm::x4_matrix(lane), r = ldm::x4_row(lane);
  const int n0 = warp_col0(warp) + ldm::b_tile(jj, q) * 8;
  if constexpr (P == Precision::bf16) {  // rows of the matrix are k, 8 pixels each (.trans)
    const int k0 = kc * kDepth + kt * 16 + 8 * ldm::b_reg(q);
    return ldm::act_slot<P, TILE>(k0 + r, n0, rows);
  }
  const int k0 = kc * kDepth + kt * 8 + 4 * ldm::b_reg(q);  // rows are pixels, k0 .. k0 + 3 each
  return ldm::act_slot<P, TILE>(k0, n0 + r, rows);
}
// Accumulator q of (m16 tile mi, n8 tile ni): C/D element (g + 8 (q >> 1), 2t + (q & 1)),
// as a row of the layer's output and a tile column.
FASTINV_HD int acc_row(int mc, int mi, int lane, int q) { return mc * kRows + mi * 16 + (lane >> 2) + (q >> 1) * 8; }
FASTINV_HD int acc_col(int warp, int ni, int lane, int q) {
  return warp_col0(warp) + ni * 8 + 2 * (lane & 3) + (q & 1);
}

}  // namespace fastinv::cuda::fused::pipe
