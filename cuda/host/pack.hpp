// Host-side (plain C++) half of the CUDA backend: precision modes, the geometry the
// fused per-pixel kernel is built around, and the packing of weights into the order
// that kernel streams. Compiled in every build, CUDA or not, so the packing is
// unit-tested on any machine (tests/test_cuda.py against the PTX fragment layouts).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace fastinv::cuda {

// fp32: exact float32 arithmetic (register-tiled SIMT FMA).
// tf32 / bf16: tensor-core mma.sync with operands rounded to tf32 / bf16 and fp32
// accumulation (never fp16 accumulation).
enum class Precision { fp32, tf32, bf16 };

Precision precision_from_name(const std::string& name);  // throws InvalidArgument
const char* precision_name(Precision p);

// Fused per-pixel kernel geometry. A layer's weights [m][k] are zero-padded to
// [round_up(m, kChunkRows)][round_up(k, kChunkDepth)] and cut into chunks of
// kChunkRows output rows x kChunkDepth reduction steps; each chunk is contiguous in
// the packed array (chunk (mc, kc) at index mc * (kpad / kChunkDepth) + kc), so one
// cp.async sweep copies it into shared memory.
constexpr int kChunkRows = 64;
constexpr int kChunkDepth = 32;
constexpr int kMaxFusedWidth = 512;  // widest layer the fused kernel accepts
constexpr int kMaxFusedLayers = 16;

constexpr int64_t round_up(int64_t v, int64_t m) { return (v + m - 1) / m * m; }

// float -> bfloat16 bits, round to nearest even; NaN stays a (quiet) NaN.
uint16_t bf16_bits(float x);
float bf16_value(uint16_t bits);  // the float a bfloat16 holds
// float -> tf32 (10 explicit mantissa bits) kept in a float, round to nearest with
// ties away from zero, as cvt.rna.tf32.f32 does on the device. Inf/NaN unchanged.
float tf32_round(float x);

// Pack W[m][k] (row-major float32) for the fused kernel; returns 32-bit words.
// Inside each chunk (64 rows x 32 depth):
//   fp32: [32 depth][64 rows] floats (a thread reads 4 consecutive rows as a float4);
//   tf32: [4 row tiles of 16][4 depth tiles of 8][32 lanes][4] floats rounded to tf32,
//         lane L = 4 g + t holding the mma.m16n8k8 A fragment
//         a0 = W[g][t], a1 = W[g+8][t], a2 = W[g][t+4], a3 = W[g+8][t+4];
//   bf16: [4 row tiles of 16][2 depth tiles of 16][32 lanes][4 words], each word two
//         bf16 (lower k in the low half): the mma.m16n8k16 A fragment
//         a0 = W[g][2t..2t+1], a1 = W[g+8][2t..2t+1], a2 = W[g][2t+8..2t+9], a3 = W[g+8][2t+8..2t+9].
// Row/column indices are relative to the tile; padding is zero. Layouts: PTX ISA,
// "Matrix Fragments for mma.m16n8k8" (.tf32) and "Matrix Fragments for mma.m16n8k16
// with floating point type" (.bf16: row g for a0,a1,a4,a5 else g+8; column 2t + (i & 1),
// + 8 for i >= 4; the lower-indexed element in the low half of each register).
std::vector<uint32_t> pack_fused_weights(const float* w, int64_t m, int64_t k, Precision p);

// The fused kernel's variant: `mma` (the default); `ldmatrix` (opt-in,
// FASTINV_CUDA_KERNEL=ldmatrix: tf32/bf16 B fragments by ldmatrix.x4 and an epilogue
// compiled per activation, cuda/fused_ldmatrix.hpp); `pipeline` (opt-in: the ldmatrix
// layouts with 64x32 warp tiles and a kFusedStages-deep cp.async weight ring running across
// layers and tiles, cuda/fused_pipeline.hpp). fp32 runs the default either way.
enum class FusedKernel { mma, ldmatrix, pipeline };
constexpr int kFusedStages = 4;  // weight stages of the pipeline variant

// Words per chunk for a precision (fp32/tf32: 2048, bf16: 1024).
constexpr int64_t chunk_words(Precision p) {
  return p == Precision::bf16 ? kChunkRows * kChunkDepth / 2 : kChunkRows * kChunkDepth;
}

// Dynamic shared memory of the fused kernel for a tile of `tile` pixels and `rows`
// activation rows: two ping-pong buffers of rows x (tile + 8) words (bf16: rows / 2; the
// ldmatrix layouts are no larger) and two weight-chunk stages (pipeline: kFusedStages).
int64_t fused_smem_bytes(Precision p, int tile, int rows, FusedKernel kernel = FusedKernel::mma);
// Largest tile (128, 64 or 32 pixels) whose shared memory fits `smem_optin`; 0 if none.
int fused_pick_tile(Precision p, int rows, int64_t smem_optin, FusedKernel kernel = FusedKernel::mma);
// Threads per block: 256 (8 warps), or one warp per 32 pixels of the tile for the pipeline
// variant (each warp owns a 64-row x 32-pixel warp tile). fp32 always runs the default.
int fused_threads(Precision p, int tile, FusedKernel kernel);

}  // namespace fastinv::cuda
