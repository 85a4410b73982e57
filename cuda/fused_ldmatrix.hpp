// Index math of the fused kernel's opt-in ldmatrix variant (FASTINV_CUDA_KERNEL=ldmatrix,
// docs/cuda.md "The next design", step 1), shared by cuda/fused_mlp.cu and the CPU
// emulation (cuda/host/emulate_fused.cpp) like fused_index.hpp. fp32 is unchanged (SIMT);
// tf32 and bf16 take every B fragment of a k-step for two n8 tiles with ONE
// ldmatrix.sync.aligned.m8n8.x4 per lane instead of four 32-bit shared loads, which needs
// activation layouts whose 16-byte rows are the 8x8 b16 matrices ldmatrix reads:
//
//   bf16: channel-major, row k = TILE + 8 halves (rows x LD halves = the default buffer's
//         words); matrix rows are k, 8 consecutive pixels each, read with .trans so that a
//         lane receives two consecutive k of one pixel (the m16n8k16 B register).
//   tf32: pixel-major, pixel n = rows + 4 words; matrix rows are pixels, 4 consecutive k
//         (one float = two b16) each, read without .trans so that a lane receives the
//         float (k = t, n = g) (the m16n8k8 B register).
//
// Both strides are 4 words (mod 32) apart, so the 8 rows of a matrix hit 32 distinct banks.
// Neither buffer is larger than the default kernel's (rows >= 64 >= TILE / 2), so the
// shared-memory size and the tile choice (cuda::fused_smem_bytes) are the same.
#pragma once
#include "fused_index.hpp"

namespace fastinv::cuda::fused::ldm {

template <int TILE>
constexpr int ld_bf16() {  // halves per channel row
  return TILE + 8;
}
FASTINV_HD int ld_tf32(int rows) { return rows + 4; }  // words per pixel row

template <Precision P, int TILE>
FASTINV_HD int buffer_words(int rows) {
  if constexpr (P == Precision::bf16) return rows * ld_bf16<TILE>() / 2;
  return TILE * ld_tf32(rows);
}

// Activation (row = channel, col = pixel) of a buffer: bf16 the 16-bit index, tf32 the
// float index (as fused::act_slot for the default kernel).
template <Precision P, int TILE>
FASTINV_HD int act_slot(int row, int col, int rows) {
  if constexpr (P == Precision::bf16) return row * ld_bf16<TILE>() + col;
  return col * ld_tf32(rows) + row;
}

// ldmatrix .x4: lane l supplies the address of row (l & 7) of matrix (l >> 3); matrix q
// holds B register (q & 1) of n8 tile 2 jj + (q >> 1) of the warp. The element index
// (bf16: halves, tf32: floats, from the buffer's start) of the row this lane supplies, for
// k-step kt of chunk kc and n8-tile pair jj.
FASTINV_HD int x4_matrix(int lane) { return lane >> 3; }
FASTINV_HD int x4_row(int lane) { return lane & 7; }
FASTINV_HD int b_tile(int jj, int q) { return 2 * jj + (q >> 1); }
FASTINV_HD int b_reg(int q) { return q & 1; }
template <Precision P, int TILE>
FASTINV_HD int b_row_address(const MmaLane& m, int kc, int kt, int jj, int rows) {
  const int q = x4_matrix(m.lane), r = x4_row(m.lane);
  const int n0 = m.wn * (TILE / 2) + b_tile(jj, q) * 8;
  if constexpr (P == Precision::bf16) {  // rows of the matrix are k, 8 pixels each
    const int k0 = kc * kDepth + kt * 16 + 8 * b_reg(q);
    return act_slot<P, TILE>(k0 + r, n0, rows);
  }
  const int k0 = kc * kDepth + kt * 8 + 4 * b_reg(q);  // rows are pixels, k0 .. k0 + 3 each
  return act_slot<P, TILE>(k0, n0 + r, rows);
}

}  // namespace fastinv::cuda::fused::ldm
