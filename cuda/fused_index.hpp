// Index math of the fused per-pixel kernel (cuda/fused_mlp.cu) in one header compiled
// for the device and for the host. The kernel addresses the caller's planes, shared
// memory, weight stages and mma fragments only through these functions, and the CPU
// emulation (cuda/host/emulate_fused.cpp) walks the same blocks, tiles, warps, lanes and
// stages through them against the PTX ISA's definition of the mma instructions. A wrong
// index here therefore fails CPU tests (tests/test_cuda.py) instead of waiting for a GPU.
//
// Shared memory, in 32-bit words: [buffer 0][buffer 1][stage 0][stage 1]. A buffer holds
// a tile's activations, `rows` x LD (bf16: rows / 2 words of two values); LD = TILE + 8
// makes the B-fragment reads (lanes (t, g) hit banks 8t + g) and the SIMT float4 reads
// conflict free. A stage holds one packed weight chunk (host/pack.hpp).
#pragma once
#include <cstdint>

#include "gpu_kernels.hpp"
#include "host/pack.hpp"

#if defined(__CUDACC__)
#define FASTINV_HD __host__ __device__ __forceinline__
#else
#define FASTINV_HD inline
#endif

namespace fastinv::cuda::fused {

constexpr int kThreads = 256;  // 8 warps: 4 (16-row slices of a chunk) x 2 (halves of the tile)
constexpr int kRows = kChunkRows, kDepth = kChunkDepth;

template <int TILE>
constexpr int ld() {
  return TILE + 8;
}

// ---- tiles of the caller's planes
FASTINV_HD int64_t tile_count(int64_t npix, int tile) { return (npix + tile - 1) / tile; }
FASTINV_HD int tile_valid(int64_t npix, int64_t p0, int tile) { return npix - p0 < tile ? int(npix - p0) : tile; }
// Element (row, col) of a plane stack with row stride ld, tile starting at pixel p0.
FASTINV_HD int64_t plane_index(int row, int64_t ld, int64_t p0, int col) { return int64_t(row) * ld + p0 + col; }
FASTINV_HD int64_t in_index(const FusedArgs& a, int row, int64_t p0, int col) {
  return plane_index(row, a.in_ld, p0, col);
}
FASTINV_HD int64_t out_index(const FusedArgs& a, int row, int64_t p0, int col) {
  return plane_index(row, a.out_ld, p0, col);
}
// The input copy's element e (threads stride by kThreads over kpad x TILE); rows beyond
// the layer's k and pixels beyond the frame are stored as zeros, never read.
FASTINV_HD int input_row(int e, int tile) { return e / tile; }
FASTINV_HD int input_col(int e, int tile) { return e % tile; }
FASTINV_HD bool input_read(int row, int col, int k, int valid) { return row < k && col < valid; }
// The last layer writes rows below m and pixels inside the frame only.
FASTINV_HD bool output_written(int row, int col, int m, int valid) { return row < m && col < valid; }

// ---- shared memory
FASTINV_HD int buffer_words(Precision p, int rows, int ld) { return (p == Precision::bf16 ? rows / 2 : rows) * ld; }
// Layer l reads buffer l & 1 and writes the other one.
FASTINV_HD int buffer_offset(int l, int buf_words) { return (l & 1) * buf_words; }
// Chunk c of a layer is staged in stage c & 1 (double buffer: c + 1 is copied while c is used).
FASTINV_HD int stage_offset(int c, int buf_words, int chunk_words) { return 2 * buf_words + (c & 1) * chunk_words; }
// Chunk (mc, kc) of a layer's packed weights (host/pack.hpp: mc-major, nkc chunks per row block).
FASTINV_HD int chunk_index(int mc, int kc, int nkc) { return mc * nkc + kc; }
FASTINV_HD int64_t chunk_word(int c, int chunk_words) { return int64_t(c) * chunk_words; }

// Activation (row, col) of a buffer: fp32/tf32 the float at row * LD + col; bf16 the 16-bit
// value at this index, rows 2j and 2j + 1 of one pixel sharing word j * LD + col (lower row in
// the low half), so a bf16 B register (two consecutive k) is one 32-bit load.
template <Precision P>
FASTINV_HD int act_slot(int row, int col, int ld) {
  if constexpr (P == Precision::bf16) return ((row >> 1) * ld + col) * 2 + (row & 1);
  return row * ld + col;
}

// ---- tensor cores (tf32: mma.m16n8k8, bf16: mma.m16n8k16): one warp computes 16 rows x TILE/2 pixels
struct MmaLane {
  int lane, wm, wn, g, t;  // wm: 16-row slice of the chunk, wn: half of the tile; g, t: PTX groupID, threadID_in_group
};
FASTINV_HD MmaLane mma_lane(int tid) {
  const int lane = tid & 31, warp = tid >> 5;
  return MmaLane{lane, warp & 3, warp >> 2, lane >> 2, lane & 3};
}
template <Precision P>
constexpr int k_steps() {
  return P == Precision::tf32 ? kDepth / 8 : kDepth / 16;
}
// A fragment (uint4) of k-step kt for this lane, as indexed in a stage (host/pack.hpp order).
template <Precision P>
FASTINV_HD int a_fragment(int wm, int kt, int lane) {
  return (wm * k_steps<P>() + kt) * 32 + lane;
}
// Pixel (tile column) of this lane's B operand in n8-tile j.
template <int TILE>
FASTINV_HD int b_col(const MmaLane& m, int j) {
  return m.wn * (TILE / 2) + m.g + j * 8;
}
// B register `reg` (0 or 1) of k-step kt of chunk kc at column n: tf32 the float index of
// k = kc*32 + kt*8 + t (+4); bf16 the word index of the pair k = kc*32 + kt*16 + 2t (+8), +1.
template <Precision P>
FASTINV_HD int b_index(int kc, int kt, int t, int reg, int n, int ld) {
  if constexpr (P == Precision::tf32) return (kc * kDepth + kt * 8 + t + 4 * reg) * ld + n;
  return ((kc * kDepth + kt * 16) / 2 + t + 4 * reg) * ld + n;
}
// Accumulator q (0..3) of n8-tile j: the C/D fragment element (g + 8 (q >> 1), 2t + (q & 1)),
// as a row of the layer output and a tile column.
FASTINV_HD int mma_acc(int j, int q) { return j * 4 + q; }
FASTINV_HD int mma_row(const MmaLane& m, int mc, int q) { return mc * kRows + m.wm * 16 + m.g + (q >> 1) * 8; }
template <int TILE>
FASTINV_HD int mma_col(const MmaLane& m, int j, int q) {
  return m.wn * (TILE / 2) + j * 8 + 2 * m.t + (q & 1);
}

// ---- SIMT fp32: a 16 x 16 thread grid, each thread 4 consecutive rows x TILE/16 consecutive pixels
struct SimtThread {
  int tm, tn;
};
FASTINV_HD SimtThread simt_thread(int tid) { return SimtThread{tid / 16, tid % 16}; }
// Weights of depth d, rows 4 tm .. 4 tm + 3 (one float4) in a stage.
FASTINV_HD int simt_w(int d, int tm) { return d * kRows + tm * 4; }
// Activation at depth kc*32 + d, first of this thread's pixels.
template <int TILE>
FASTINV_HD int simt_x(int kc, int d, int tn, int ld) {
  return (kc * kDepth + d) * ld + tn * (TILE / 16);
}
template <int TILE>
FASTINV_HD int simt_acc(int i, int q) {
  return i * (TILE / 16) + q;
}
FASTINV_HD int simt_row(const SimtThread& s, int mc, int i) { return mc * kRows + s.tm * 4 + i; }
template <int TILE>
FASTINV_HD int simt_col(const SimtThread& s, int q) {
  return s.tn * (TILE / 16) + q;
}

}  // namespace fastinv::cuda::fused
