// The fused per-pixel network kernel (DeepEM-style 1x1 / Linear chains): ONE
// persistent launch runs every layer. Each CTA (8 warps) loops over tiles of TILE
// pixels; a tile's activations stay in shared memory between layers (two ping-pong
// buffers of `rows` x (TILE + 8): the +8 padding makes the tensor-core B-fragment
// reads and the SIMT float4 reads bank-conflict free), so device memory sees only
// the input planes, the output planes and the (L2-resident) weights. Weights arrive
// pre-packed by cuda::pack_fused_weights in 64-row x 32-deep chunks that cp.async
// double-buffers from L2 while the previous chunk is multiplied. Bias and activation
// are applied in the epilogue; the last layer's epilogue writes the planar output.
//
// Precisions: fp32 -- register-tiled SIMT FMA (4 rows x TILE/16 pixels per thread),
// exact float32; tf32 -- mma.sync.m16n8k8 (weights rounded to tf32 on the host,
// activations by cvt.rna), fp32 accumulation; bf16 -- mma.sync.m16n8k16 with the
// activations stored as bf16 (k-pairs interleaved so a B fragment register is one
// 32-bit shared load), fp32 accumulation. Warps tile a chunk 4 (16 rows) x 2 (TILE/2 px).
//
// The opt-in ldmatrix variant (LDM, FASTINV_CUDA_KERNEL=ldmatrix; tf32 and bf16 only) keeps
// this structure but lays activations out for ldmatrix (cuda/fused_ldmatrix.hpp), loads
// the B fragments of two n8 tiles with one ldmatrix.x4, and compiles the epilogue once per
// activation kind (cuda/fused_activation.hpp), chosen once per layer. The opt-in pipeline
// variant (FASTINV_CUDA_KERNEL=pipeline) is cuda/fused_pipeline.cu.
#include <algorithm>

#include "activation.cuh"
#include "cuda_check.cuh"
#include "fused_activation.hpp"
#include "fused_index.hpp"
#include "fused_ldmatrix.hpp"
#include "fused_ptx.cuh"
#include "gpu_kernels.hpp"

namespace fastinv::cuda {

// The pipeline variant's kernel for a precision (tf32/bf16) and tile (cuda/fused_pipeline.cu,
// its own translation unit so that nvcc compiles the variants in parallel).
const void* fused_pipeline_kernel(Precision p, int tile);

namespace {

using fused::kThreads, fused::kRows, fused::kDepth;
using namespace ptx;

// Where activation (row, col) lives in a buffer (bf16: 16-bit index, else float index).
template <Precision P, int TILE, bool LDM>
__device__ __forceinline__ int slot(int row, int col, int rows) {
  if constexpr (LDM) return fused::ldm::act_slot<P, TILE>(row, col, rows);
  return fused::act_slot<P>(row, col, fused::ld<TILE>());
}
template <Precision P, int TILE, bool LDM>
__device__ __forceinline__ int buffer_words(int rows) {
  if constexpr (LDM) return fused::ldm::buffer_words<P, TILE>(rows);
  return fused::buffer_words(P, rows, fused::ld<TILE>());
}

// Accumulators of one thread for one 64-row chunk x TILE pixels.
template <Precision P, int TILE>
struct Acc {
  static constexpr int kN = 4 * (TILE / 16);  // SIMT: 4 rows x TILE/16 px; mma: TILE/16 n8 tiles x 4
  float v[kN];
};

// One 32-deep chunk: acc += W[chunk rows][kc*32 .. +32] * X[kc*32 .. +32][tile].
template <Precision P, int TILE, int LD, bool LDM>
__device__ __forceinline__ void mma_chunk(Acc<P, TILE>& acc, const uint32_t* wch, const uint32_t* x, int kc, int rows) {
  const int tid = threadIdx.x;
  if constexpr (LDM) {
    const fused::MmaLane m = fused::mma_lane(tid);
    const uint4* wf = reinterpret_cast<const uint4*>(wch);
#pragma unroll
    for (int kt = 0; kt < fused::k_steps<P>(); ++kt) {
      const uint4 a = wf[fused::a_fragment<P>(m.wm, kt, m.lane)];
#pragma unroll
      for (int jj = 0; jj < TILE / 32; ++jj) {  // pairs of n8 tiles
        uint32_t b[2][2];
        ldmatrix_b_pair<P>(b, x, fused::ldm::b_row_address<P, TILE>(m, kc, kt, jj, rows), jj);
#pragma unroll
        for (int h = 0; h < 2; ++h) {
          float (&d)[4] = *reinterpret_cast<float (*)[4]>(&acc.v[fused::mma_acc(2 * jj + h, 0)]);
          if constexpr (P == Precision::tf32)
            mma_tf32(d, a, b[h][0], b[h][1]);
          else
            mma_bf16(d, a, b[h][0], b[h][1]);
        }
      }
    }
  } else if constexpr (P == Precision::fp32) {
    constexpr int NC = TILE / 16;  // pixels per thread, contiguous
    const fused::SimtThread th = fused::simt_thread(tid);
    const float* w = reinterpret_cast<const float*>(wch);
    const float* xs = reinterpret_cast<const float*>(x);
#pragma unroll 8
    for (int d = 0; d < kDepth; ++d) {
      const float4 a = *reinterpret_cast<const float4*>(w + fused::simt_w(d, th.tm));
      const float* xd = xs + fused::simt_x<TILE>(kc, d, th.tn, LD);
      float b[NC];
      if constexpr (NC % 4 == 0) {
#pragma unroll
        for (int q = 0; q < NC; q += 4) {
          const float4 t = *reinterpret_cast<const float4*>(xd + q);
          b[q] = t.x, b[q + 1] = t.y, b[q + 2] = t.z, b[q + 3] = t.w;
        }
      } else {
        const float2 t = *reinterpret_cast<const float2*>(xd);
        b[0] = t.x, b[1] = t.y;
      }
      const float av[4] = {a.x, a.y, a.z, a.w};
#pragma unroll
      for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int q = 0; q < NC; ++q) {
          float& c = acc.v[fused::simt_acc<TILE>(i, q)];
          c = fmaf(av[i], b[q], c);
        }
    }
  } else {
    constexpr int NT = TILE / 16;  // n8 tiles per warp (a warp covers TILE/2 pixels)
    const fused::MmaLane m = fused::mma_lane(tid);
    const uint4* wf = reinterpret_cast<const uint4*>(wch);
#pragma unroll
    for (int kt = 0; kt < fused::k_steps<P>(); ++kt) {
      const uint4 a = wf[fused::a_fragment<P>(m.wm, kt, m.lane)];
#pragma unroll
      for (int j = 0; j < NT; ++j) {
        const int n = fused::b_col<TILE>(m, j);
        float (&d)[4] = *reinterpret_cast<float (*)[4]>(&acc.v[fused::mma_acc(j, 0)]);
        if constexpr (P == Precision::tf32) {
          const float* xs = reinterpret_cast<const float*>(x);
          const uint32_t b0 = to_tf32(xs[fused::b_index<P>(kc, kt, m.t, 0, n, LD)]);
          const uint32_t b1 = to_tf32(xs[fused::b_index<P>(kc, kt, m.t, 1, n, LD)]);
          mma_tf32(d, a, b0, b1);
        } else {
          const uint32_t b0 = x[fused::b_index<P>(kc, kt, m.t, 0, n, LD)];
          const uint32_t b1 = x[fused::b_index<P>(kc, kt, m.t, 1, n, LD)];
          mma_bf16(d, a, b0, b1);
        }
      }
    }
  }
}

// Bias + activation on one chunk's accumulators; rows >= m become 0 (the next layer's
// zero-padded depth must read zeros). The last layer writes the planar output.
// ACT < 0: the activation by the run-time switch of activation.cuh (the default kernel);
// else fused::activate<ACT> (the ldmatrix variant).
template <Precision P, int TILE, bool LDM, int ACT>
__device__ __forceinline__ void epilogue(const Acc<P, TILE>& acc, const FusedArgs& args, const FusedLayerArgs& L,
                                         int mc, uint32_t* dst, bool last, int64_t p0, int valid) {
  const int tid = threadIdx.x;
  auto put = [&](int row, int col, float a) {
    const bool real = row < L.m;
    float v = 0.f;
    if constexpr (ACT < 0) {
      if (real) v = activate(L.act, a + L.bias[row]);
    } else {
      if (real) v = fused::activate<ACT>(L.act, a + L.bias[row]);
    }
    if (last) {
      if (fused::output_written(row, col, L.m, valid)) args.out[fused::out_index(args, row, p0, col)] = v;
    } else {
      store_act<P>(dst, slot<P, TILE, LDM>(row, col, args.rows), v);
    }
  };
  if constexpr (P == Precision::fp32) {
    const fused::SimtThread th = fused::simt_thread(tid);
#pragma unroll
    for (int i = 0; i < 4; ++i)
#pragma unroll
      for (int q = 0; q < TILE / 16; ++q)
        put(fused::simt_row(th, mc, i), fused::simt_col<TILE>(th, q), acc.v[fused::simt_acc<TILE>(i, q)]);
  } else {
    const fused::MmaLane m = fused::mma_lane(tid);
#pragma unroll
    for (int j = 0; j < TILE / 16; ++j)
#pragma unroll
      for (int q = 0; q < 4; ++q)
        put(fused::mma_row(m, mc, q), fused::mma_col<TILE>(m, j, q), acc.v[fused::mma_acc(j, q)]);
  }
}

template <Precision P, int TILE, bool LDM>
__global__ void __launch_bounds__(kThreads, 2) fused_mlp_kernel(const __grid_constant__ FusedArgs args) {
  static_assert(!LDM || P != Precision::fp32, "the ldmatrix variant is tf32/bf16 only");
  constexpr int LD = fused::ld<TILE>();
  constexpr int CW = int(chunk_words(P));
  extern __shared__ uint4 smem_raw[];
  uint32_t* smem = reinterpret_cast<uint32_t*>(smem_raw);
  const int buf_words = buffer_words<P, TILE, LDM>(args.rows);
  const int tid = threadIdx.x;
  const int64_t ntiles = fused::tile_count(args.npix, TILE);

  for (int64_t tile = blockIdx.x; tile < ntiles; tile += gridDim.x) {
    const int64_t p0 = tile * TILE;
    const int valid = fused::tile_valid(args.npix, p0, TILE);
    {  // input planes -> buffer 0, zero beyond k and beyond the frame
      const FusedLayerArgs& L0 = args.layers[0];
      for (int e = tid; e < L0.kpad * TILE; e += kThreads) {
        const int r = fused::input_row(e, TILE), p = fused::input_col(e, TILE);
        const float v = fused::input_read(r, p, L0.k, valid) ? args.in[fused::in_index(args, r, p0, p)] : 0.f;
        store_act<P>(smem + fused::buffer_offset(0, buf_words), slot<P, TILE, LDM>(r, p, args.rows), v);
      }
    }
    __syncthreads();
    for (int l = 0; l < args.nlayers; ++l) {
      const FusedLayerArgs& L = args.layers[l];
      // ping-pong by arithmetic (a run-time-indexed pointer array would go to local memory)
      const uint32_t* src = smem + fused::buffer_offset(l, buf_words);
      uint32_t* dst = smem + fused::buffer_offset(l + 1, buf_words);
      const bool last = l == args.nlayers - 1;
      const int nkc = L.kpad / kDepth, nchunks = (L.mpad / kRows) * nkc;
      auto issue = [&](int c) {
        const uint4* g = reinterpret_cast<const uint4*>(L.w + fused::chunk_word(c, CW));
        uint32_t* s = smem + fused::stage_offset(c, buf_words, CW);
        for (int i = tid; i < CW / 4; i += kThreads) cp_async16(s + i * 4, g + i);
        cp_async_commit();
      };
      issue(0);
      for (int mc = 0; mc < L.mpad / kRows; ++mc) {
        Acc<P, TILE> acc;
#pragma unroll
        for (int i = 0; i < Acc<P, TILE>::kN; ++i) acc.v[i] = 0.f;
        for (int kc = 0; kc < nkc; ++kc) {
          const int c = fused::chunk_index(mc, kc, nkc);
          if (c + 1 < nchunks)
            issue(c + 1);
          else
            cp_async_commit();  // an empty group keeps "all but the newest" meaning chunk c
          cp_async_wait_prev();
          __syncthreads();
          mma_chunk<P, TILE, LD, LDM>(acc, smem + fused::stage_offset(c, buf_words, CW), src, kc, args.rows);
          __syncthreads();
        }
        if constexpr (LDM)
          fused::with_activation(L.act.kind, [&](auto act) {
            epilogue<P, TILE, LDM, decltype(act)::kind>(acc, args, L, mc, dst, last, p0, valid);
          });
        else
          epilogue<P, TILE, LDM, -1>(acc, args, L, mc, dst, last, p0, valid);
      }
      __syncthreads();
    }
  }
}

template <Precision P, int TILE>
const void* kernel_ptr(FusedKernel k) {
  if constexpr (P != Precision::fp32) {
    if (k == FusedKernel::ldmatrix) return reinterpret_cast<const void*>(&fused_mlp_kernel<P, TILE, true>);
    if (k == FusedKernel::pipeline) return fused_pipeline_kernel(P, TILE);
  }
  return reinterpret_cast<const void*>(&fused_mlp_kernel<P, TILE, false>);
}

template <Precision P>
const void* pick(int tile, FusedKernel k) {
  switch (tile) {
    case 32:
      return kernel_ptr<P, 32>(k);
    case 64:
      return kernel_ptr<P, 64>(k);
    case 128:
      return kernel_ptr<P, 128>(k);
  }
  throw InvalidArgument("fused kernel: tile must be 32, 64 or 128");
}

const void* kernel_for(Precision p, int tile, FusedKernel k) {
  switch (p) {
    case Precision::fp32:
      return pick<Precision::fp32>(tile, k);
    case Precision::tf32:
      return pick<Precision::tf32>(tile, k);
    case Precision::bf16:
      return pick<Precision::bf16>(tile, k);
  }
  throw InvalidArgument("fused kernel: bad precision");
}

}  // namespace

int fused_prepare(cuda::Precision p, int tile, int64_t smem, int sms, FusedKernel kernel) {
  const void* k = kernel_for(p, tile, kernel);
  FASTINV_CUDA_CHECK(cudaFuncSetAttribute(k, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)));
  int per_sm = 0;
  FASTINV_CUDA_CHECK(
      cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, k, fused_threads(p, tile, kernel), size_t(smem)));
  if (per_sm < 1)
    throw Error("fused kernel: no block fits on a multiprocessor with " + std::to_string(smem) +
                " bytes of shared memory");
  return per_sm * sms;
}

void launch_fused(const FusedArgs& args, cuda::Precision p, int tile, int grid, int64_t smem, FusedKernel kernel,
                  StreamHandle stream) {
  if (args.npix <= 0) return;
  const int64_t ntiles = (args.npix + tile - 1) / tile;
  const unsigned blocks = unsigned(std::min<int64_t>(grid, ntiles));
  void* params[] = {const_cast<FusedArgs*>(&args)};
  FASTINV_CUDA_CHECK(cudaLaunchKernel(kernel_for(p, tile, kernel), dim3(blocks),
                                      dim3(unsigned(fused_threads(p, tile, kernel))), params, size_t(smem),
                                      static_cast<cudaStream_t>(stream)));
  check_launch("fused per-pixel network");
}

}  // namespace fastinv::cuda
