// CPU emulation of the CUDA kernels (tests and the GPU check's same-precision reference;
// no GPU needed). The per-op kernels are emulated by their formulas; the fused kernel by
// executing its own index math (cuda/fused_index.hpp) block by block, warp by warp, lane
// by lane, against the PTX ISA's definition of mma.m16n8k8.tf32 / mma.m16n8k16.bf16, with
// shared memory pre-filled with NaN and every shared-memory access bounds-checked.
#pragma once
#include <cstdint>

#include "gpu_kernels.hpp"
#include "host/plan.hpp"

namespace fastinv::cuda {

// Planar in [in rows][n] and out [out rows][n].
void emulate_general(const GeneralPlan& plan, const float* in, int64_t in_rows, float* out, int64_t out_rows,
                     int64_t n);

// The fused kernel's launch: min(grid, tiles) blocks of fused::kThreads threads with
// `smem_bytes` of shared memory each, on host pointers. Rounding as on the device (tf32:
// cvt.rna of B operands; bf16 activations stored round-to-nearest-even); an mma adds its
// exact products in double to the float accumulator and rounds once. Throws Error when
// the index math leaves shared memory or the tile, misaligns a vector access, writes an
// output element twice or leaves one unwritten, or reads/writes the planes outside
// [0, in_extent) / [0, out_extent) (pass -1 to skip those two checks).
// `kernel` picks the variant (cuda/fused_ldmatrix.hpp for FusedKernel::ldmatrix,
// cuda/fused_pipeline.hpp for FusedKernel::pipeline).
void emulate_fused_launch(const FusedArgs& args, Precision p, int tile, int grid, int64_t smem_bytes,
                          int64_t in_extent = -1, int64_t out_extent = -1, FusedKernel kernel = FusedKernel::mma);

// The pipeline variant's launch (cuda/host/emulate_pipeline.cpp; tf32/bf16), as
// emulate_fused_launch, which calls it for FusedKernel::pipeline. Also throws Error when the
// cp.async groups, waits and barriers let a warp read a stage before its copy is visible,
// recycle a stage warps may still read, or read and write an activation buffer unordered.
void emulate_pipeline_launch(const FusedArgs& args, Precision p, int tile, int grid, int64_t smem_bytes,
                             int64_t in_extent, int64_t out_extent);

// A fused plan on planar in [k][in_ld] and out [m][out_ld] (n pixels), tile and grid as
// given (tile 0: the largest that fits `smem_optin` bytes, as the backend picks it).
// Returns the tile used.
int emulate_fused(const FusedPlan& plan, Precision p, const float* in, int64_t in_ld, float* out, int64_t out_ld,
                  int64_t n, int tile, int grid, int64_t smem_optin, FusedKernel kernel = FusedKernel::mma);

}  // namespace fastinv::cuda
