// Plain C++ declarations of the CUDA kernels' launchers. Activations on the device
// are planar: a value of per-sample shape (C, L) is C*L rows of `ld` floats, row
// l*C + c (position-major, as the CPU tiles), samples along the row, so every
// kernel's accesses are coalesced over samples. Launchers check the launch.
#pragma once
#include <cstdint>
#include <string>

#include "host/pack.hpp"
#include "gpu_runtime.hpp"

namespace fastinv::cuda {

// An activation: kind is int(fastinv::ActKind) (identity, relu, leaky_relu, elu, silu,
// gelu, gelu_tanh, tanh, sigmoid, softplus), parameters as in fastinv::Activation.
struct DevAct {
  int kind = 0;
  float alpha = 0.f, beta = 1.f, threshold = 20.f;
};

// ---- fused per-pixel network (fused_mlp.cu)
struct FusedLayerArgs {
  int m = 0, k = 0;             // true output / input widths
  int mpad = 0, kpad = 0;       // round_up(m, kChunkRows), round_up(k, kChunkDepth)
  const uint32_t* w = nullptr;  // cuda::pack_fused_weights for the kernel's precision
  const float* bias = nullptr;  // [mpad], zero beyond m
  DevAct act;
};

struct FusedArgs {
  int nlayers = 0;
  FusedLayerArgs layers[cuda::kMaxFusedLayers];
  int rows = 0;               // activation buffer rows: max(layers[0].kpad, every mpad)
  const float* in = nullptr;  // [layers[0].k][in_ld]
  int64_t in_ld = 0;
  float* out = nullptr;  // [layers[last].m][out_ld]
  int64_t out_ld = 0;
  int64_t npix = 0;
};

// (the variant, cuda::FusedKernel, is declared in host/pack.hpp with the geometry it changes)
// "mma" / "ldmatrix" / "pipeline" (anything else: InvalidArgument naming the choices).
FusedKernel fused_kernel_from_name(const std::string& name);

// (shared memory size and tile choice: cuda::fused_smem_bytes / cuda::fused_pick_tile)
// Raise the kernel's dynamic shared memory limit (once per device and variant) and
// return the persistent grid size for `sms` multiprocessors.
int fused_prepare(cuda::Precision p, int tile, int64_t smem, int sms, FusedKernel kernel);
void launch_fused(const FusedArgs& args, cuda::Precision p, int tile, int grid, int64_t smem, FusedKernel kernel,
                  StreamHandle stream);

// ---- general graphs, one kernel per op (ops.cu); n samples per row, row stride ld
// conv1d / linear as an implicit GEMM with fused bias and activation:
//   out[lo*m + o][p] = act(bias[o] + sum_j w[o*kdim + j] * x_j),  x_j = in[rows[lo*kdim + j]][p]
// (a row index < 0 reads 0: padding); rows == nullptr means x_j = in[j][p] (lout = 1).
void launch_conv(const float* w, const float* bias, const int32_t* rows, int m, int kdim, int lout, const float* in,
                 float* out, int64_t ld, int64_t n, DevAct act, StreamHandle s);
void launch_act(const float* in, float* out, int64_t nrows, int64_t ld, int64_t n, DevAct act, StreamHandle s);
void launch_pool(bool is_max, const float* in, float* out, int c, int lin, int lout, int kernel, int stride, int pad,
                 bool count_include_pad, int64_t ld, int64_t n, StreamHandle s);
void launch_affine(const float* in, float* out, const float* scale, const float* shift, int c, int64_t nrows,
                   int64_t ld, int64_t n, StreamHandle s);
// out = a + b, out distinct from a and b (the kernel's pointers are __restrict__);
// acc += b in place for the third and later operands of a sum.
void launch_add(const float* a, const float* b, float* out, int64_t nrows, int64_t ld, int64_t n, StreamHandle s);
void launch_accumulate(float* acc, const float* b, int64_t nrows, int64_t ld, int64_t n, StreamHandle s);
// out[dst_rows[r]][p] = in[r][p] for r < nrows (flatten's permutation, concat's blocks).
void launch_copy_rows(const float* in, float* out, const int32_t* dst_rows, int64_t nrows, int64_t ld, int64_t n,
                      StreamHandle s);

// ---- caller's device arrays <-> planar chunks (ops.cu)
struct StridedDesc {  // element strides, as fastinv::Strided
  int64_t sample_shape[3] = {0, 1, 1};
  int64_t sample_strides[3] = {0, 0, 0};
  int64_t feature_strides[2] = {1, 0};
};
// dst[l*c + ch][j] = src[sample first + j][ch][l] for j < n (float32 or float64 source).
void launch_gather(const void* src, bool f64, const StridedDesc& d, int64_t c, int64_t l, int64_t first, int64_t n,
                   float* dst, int64_t ld, StreamHandle s);
void launch_scatter(const float* src, int64_t ld, int64_t c, int64_t l, int64_t first, int64_t n, float* dst,
                    const StridedDesc& d, StreamHandle s);

}  // namespace fastinv::cuda
