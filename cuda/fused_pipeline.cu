// The fused kernel's opt-in pipeline variant (FASTINV_CUDA_KERNEL=pipeline; tf32 / bf16):
// the ldmatrix variant's activation layouts and per-kind epilogue (cuda/fused_mlp.cu) with
// one warp per 32 pixels, each computing a 64-row x 32-pixel warp tile, and a 4-stage
// cp.async weight ring that runs ahead across layers and tiles. Index math and schedule:
// cuda/fused_pipeline.hpp, which the CPU emulation (cuda/host/emulate_pipeline.cpp) walks.
#include "cuda_check.cuh"
#include "fused_activation.hpp"
#include "fused_pipeline.hpp"
#include "fused_ptx.cuh"
#include "gpu_kernels.hpp"

namespace fastinv::cuda {
namespace {

using fused::kRows, fused::kDepth;
using namespace ptx;

// One chunk of the warp tile: acc[mi][ni] += W[chunk rows of mi][kc*32 ..] * X[..][pixels of ni].
template <Precision P, int TILE>
__device__ __forceinline__ void pipe_chunk(float (&acc)[fused::pipe::kAcc], const uint32_t* wch, const uint32_t* x,
                                           int kc, int rows, int warp, int lane) {
  using namespace fused::pipe;
  const uint4* wf = reinterpret_cast<const uint4*>(wch);
#pragma unroll
  for (int kt = 0; kt < fused::k_steps<P>(); ++kt) {
    uint4 a[kMTiles];
#pragma unroll
    for (int mi = 0; mi < kMTiles; ++mi) a[mi] = wf[fused::a_fragment<P>(mi, kt, lane)];
#pragma unroll
    for (int jj = 0; jj < kNTiles / 2; ++jj) {
      uint32_t b[2][2];
      ldmatrix_b_pair<P>(b, x, b_row_address<P, TILE>(warp, lane, kc, kt, jj, rows), jj);
#pragma unroll
      for (int h = 0; h < 2; ++h)
#pragma unroll
        for (int mi = 0; mi < kMTiles; ++mi) {
          float (&d)[4] = *reinterpret_cast<float (*)[4]>(&acc[acc_index(mi, 2 * jj + h, 0)]);
          if constexpr (P == Precision::tf32)
            mma_tf32(d, a[mi], b[h][0], b[h][1]);
          else
            mma_bf16(d, a[mi], b[h][0], b[h][1]);
        }
    }
  }
}

// Bias + activation (fused::activate<ACT>) on the warp tile; rows >= m become 0; the last
// layer writes the planar output.
template <Precision P, int TILE, int ACT>
__device__ __forceinline__ void pipe_epilogue(const float (&acc)[fused::pipe::kAcc], const FusedArgs& args,
                                              const FusedLayerArgs& L, int mc, uint32_t* dst, bool last, int64_t p0,
                                              int valid, int warp, int lane) {
  using namespace fused::pipe;
#pragma unroll
  for (int mi = 0; mi < kMTiles; ++mi)
#pragma unroll
    for (int ni = 0; ni < kNTiles; ++ni)
#pragma unroll
      for (int q = 0; q < 4; ++q) {
        const int row = acc_row(mc, mi, lane, q), col = acc_col(warp, ni, lane, q);
        const float v = row < L.m ? fused::activate<ACT>(L.act, acc[acc_index(mi, ni, q)] + L.bias[row]) : 0.f;
        if (last) {
          if (fused::output_written(row, col, L.m, valid)) args.out[fused::out_index(args, row, p0, col)] = v;
        } else {
          store_act<P>(dst, fused::ldm::act_slot<P, TILE>(row, col, args.rows), v);
        }
      }
}

template <Precision P, int TILE>
__global__ void __launch_bounds__(fused::pipe::threads<TILE>())
    fused_pipe_kernel(const __grid_constant__ FusedArgs args) {
  static_assert(P != Precision::fp32, "the pipeline variant is tf32/bf16 only");
  using namespace fused::pipe;
  constexpr int NT = threads<TILE>();
  constexpr int CW = int(chunk_words(P));
  extern __shared__ uint4 smem_raw[];
  uint32_t* smem = reinterpret_cast<uint32_t*>(smem_raw);
  const int buf_words = fused::ldm::buffer_words<P, TILE>(args.rows);
  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
  const int64_t ntiles = fused::tile_count(args.npix, TILE);
  const int per_tile = tile_chunks(args);
  const int64_t total = block_tiles(ntiles, blockIdx.x, gridDim.x) * per_tile;
  // Stream position pos -> its stage; one commit group per position (empty past the end, so
  // the wait depth keeps its meaning on the last positions).
  auto issue = [&](int64_t pos) {
    if (pos < total) {
      const uint4* g = reinterpret_cast<const uint4*>(stream_chunk(args, pos, per_tile, CW));
      uint32_t* s = smem + stage_offset(stage_of(pos), buf_words, CW);
      for (int i = tid; i < CW / 4; i += NT) cp_async16(s + i * 4, g + i);
    }
    cp_async_commit();
  };
  for (int i = 0; i < prefetch_distance(); ++i) issue(i);
  int64_t pos = 0;
  for (int64_t tile = blockIdx.x; tile < ntiles; tile += gridDim.x) {
    const int64_t p0 = tile * TILE;
    const int valid = fused::tile_valid(args.npix, p0, TILE);
    __syncthreads();  // every warp is done reading the previous tile's last buffer (buffer 0 if nlayers is odd)
    {
      const FusedLayerArgs& L0 = args.layers[0];
      for (int e = tid; e < L0.kpad * TILE; e += NT) {
        const int r = fused::input_row(e, TILE), p = fused::input_col(e, TILE);
        const float v = fused::input_read(r, p, L0.k, valid) ? args.in[fused::in_index(args, r, p0, p)] : 0.f;
        store_act<P>(smem + fused::buffer_offset(0, buf_words), fused::ldm::act_slot<P, TILE>(r, p, args.rows), v);
      }
    }
    for (int l = 0; l < args.nlayers; ++l) {
      const FusedLayerArgs& L = args.layers[l];
      const uint32_t* src = smem + fused::buffer_offset(l, buf_words);
      uint32_t* dst = smem + fused::buffer_offset(l + 1, buf_words);
      const bool last = l == args.nlayers - 1;
      const int nkc = L.kpad / kDepth;
      for (int mc = 0; mc < L.mpad / kRows; ++mc) {
        float acc[kAcc];
#pragma unroll
        for (int i = 0; i < kAcc; ++i) acc[i] = 0.f;
        for (int kc = 0; kc < nkc; ++kc, ++pos) {
          cp_async_wait<wait_depth()>();  // position pos has landed (this thread's copies)
          __syncthreads();                // ... everyone's; every warp is done with pos - 1 and the last epilogue
          issue(pos + prefetch_distance());
          pipe_chunk<P, TILE>(acc, smem + stage_offset(stage_of(pos), buf_words, CW), src, kc, args.rows, warp, lane);
        }
        fused::with_activation(L.act.kind, [&](auto act) {
          pipe_epilogue<P, TILE, decltype(act)::kind>(acc, args, L, mc, dst, last, p0, valid, warp, lane);
        });
      }
    }
  }
  cp_async_wait<0>();  // no copy may outlive the block (they are all empty groups by now)
}

template <Precision P>
const void* pick(int tile) {
  switch (tile) {
    case 32:
      return reinterpret_cast<const void*>(&fused_pipe_kernel<P, 32>);
    case 64:
      return reinterpret_cast<const void*>(&fused_pipe_kernel<P, 64>);
    case 128:
      return reinterpret_cast<const void*>(&fused_pipe_kernel<P, 128>);
  }
  throw InvalidArgument("fused pipeline kernel: tile must be 32, 64 or 128");
}

}  // namespace

const void* fused_pipeline_kernel(Precision p, int tile) {
  if (p == Precision::tf32) return pick<Precision::tf32>(tile);
  if (p == Precision::bf16) return pick<Precision::bf16>(tile);
  throw InvalidArgument("fused pipeline kernel: tf32 or bf16 only");
}

}  // namespace fastinv::cuda
