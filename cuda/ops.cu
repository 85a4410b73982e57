// One kernel per op for general graphs (1D CNNs with branches, residuals, pools):
// the first correct version, exact fp32. Threads run along samples (coalesced); a
// convolution is an implicit GEMM over a 64-output x 64-sample tile whose input rows
// come through a row table (the im2col costs nothing; padding rows read 0).
#include <algorithm>

#include "activation.cuh"
#include "cuda_check.cuh"
#include "gpu_kernels.hpp"

namespace fastinv::cuda {
namespace {

constexpr int kBM = 64, kBP = 64, kBK = 16;  // conv tile: outputs x samples x depth

__global__ void __launch_bounds__(256)
    conv_kernel(const float* __restrict__ w, const float* __restrict__ bias, const int32_t* __restrict__ rows, int m,
                int kdim, const float* __restrict__ in, float* __restrict__ out, int64_t ld, int64_t n, DevAct act) {
  __shared__ float ws[kBK][kBM + 4];  // transposed weight tile: ws[j][o]
  __shared__ float xs[kBK][kBP + 4];
  const int tid = threadIdx.x, tm = tid / 16, tp = tid % 16;  // 16 x 16 threads, 4 x 4 outputs each
  const int o0 = blockIdx.y * kBM, lo = blockIdx.z;
  const int64_t p0 = int64_t(blockIdx.x) * kBP;
  const int32_t* row_of = rows ? rows + int64_t(lo) * kdim : nullptr;
  float acc[4][4] = {};
  for (int j0 = 0; j0 < kdim; j0 += kBK) {
    for (int e = tid; e < kBK * kBM; e += 256) {  // weights: consecutive threads along j (row-major w)
      const int o = e / kBK, j = e % kBK;
      ws[j][o] = (o0 + o < m && j0 + j < kdim) ? w[int64_t(o0 + o) * kdim + j0 + j] : 0.f;
    }
    for (int e = tid; e < kBK * kBP; e += 256) {  // inputs: consecutive threads along samples
      const int j = e / kBP, p = e % kBP;
      float v = 0.f;
      if (j0 + j < kdim && p0 + p < n) {
        const int64_t r = row_of ? row_of[j0 + j] : j0 + j;
        if (r >= 0) v = in[r * ld + p0 + p];
      }
      xs[j][p] = v;
    }
    __syncthreads();
#pragma unroll
    for (int j = 0; j < kBK; ++j) {
      float a[4], b[4];
#pragma unroll
      for (int i = 0; i < 4; ++i) a[i] = ws[j][tm * 4 + i];
#pragma unroll
      for (int i = 0; i < 4; ++i) b[i] = xs[j][tp + 16 * i];
#pragma unroll
      for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int q = 0; q < 4; ++q) acc[i][q] = fmaf(a[i], b[q], acc[i][q]);
    }
    __syncthreads();
  }
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const int o = o0 + tm * 4 + i;
    if (o >= m) continue;
    const float b = bias[o];
    float* dst = out + (int64_t(lo) * m + o) * ld + p0;
#pragma unroll
    for (int q = 0; q < 4; ++q)
      if (p0 + tp + 16 * q < n) dst[tp + 16 * q] = activate(act, acc[i][q] + b);
  }
}

// Elementwise kernels: blockIdx.y (and a loop) over rows, x over samples.
__global__ void act_kernel(const float* __restrict__ in, float* __restrict__ out, int64_t nrows, int64_t ld, int64_t n,
                           DevAct act) {
  const int64_t p = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (p >= n) return;
  for (int64_t r = blockIdx.y; r < nrows; r += gridDim.y) out[r * ld + p] = activate(act, in[r * ld + p]);
}

__global__ void affine_kernel(const float* __restrict__ in, float* __restrict__ out, const float* __restrict__ scale,
                              const float* __restrict__ shift, int c, int64_t nrows, int64_t ld, int64_t n) {
  const int64_t p = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (p >= n) return;
  for (int64_t r = blockIdx.y; r < nrows; r += gridDim.y)
    out[r * ld + p] = in[r * ld + p] * scale[r % c] + shift[r % c];
}

__global__ void add_kernel(const float* __restrict__ a, const float* __restrict__ b, float* __restrict__ out,
                           int64_t nrows, int64_t ld, int64_t n) {
  const int64_t p = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (p >= n) return;
  for (int64_t r = blockIdx.y; r < nrows; r += gridDim.y) out[r * ld + p] = a[r * ld + p] + b[r * ld + p];
}

__global__ void accumulate_kernel(float* __restrict__ acc, const float* __restrict__ b, int64_t nrows, int64_t ld,
                                  int64_t n) {
  const int64_t p = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (p >= n) return;
  for (int64_t r = blockIdx.y; r < nrows; r += gridDim.y) acc[r * ld + p] += b[r * ld + p];
}

__global__ void copy_rows_kernel(const float* __restrict__ in, float* __restrict__ out,
                                 const int32_t* __restrict__ dst_rows, int64_t nrows, int64_t ld, int64_t n) {
  const int64_t p = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (p >= n) return;
  for (int64_t r = blockIdx.y; r < nrows; r += gridDim.y) out[int64_t(dst_rows[r]) * ld + p] = in[r * ld + p];
}

// Output row lo*c + ch; as the CPU: max lets NaN win (torch semantics), avg divides
// by the padded or the valid window length.
__global__ void pool_kernel(bool is_max, const float* __restrict__ in, float* __restrict__ out, int c, int lin,
                            int lout, int kernel, int stride, int pad, bool count_include_pad, int64_t ld, int64_t n) {
  const int64_t p = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (p >= n) return;
  for (int64_t r = blockIdx.y; r < int64_t(lout) * c; r += gridDim.y) {
    const int lo = int(r / c), ch = int(r % c);
    const int start = lo * stride - pad;
    const int lo_valid = max(start, 0), hi_valid = min(start + kernel, lin);
    float acc;
    if (is_max) {
      acc = -INFINITY;
      for (int q = lo_valid; q < hi_valid; ++q) {
        const float v = in[(int64_t(q) * c + ch) * ld + p];
        if (v > acc || isnan(v)) acc = v;
      }
    } else {
      acc = 0.f;
      for (int q = lo_valid; q < hi_valid; ++q) acc += in[(int64_t(q) * c + ch) * ld + p];
      const int padded_end = min(start + kernel, lin + pad);
      acc /= float(count_include_pad ? padded_end - start : hi_valid - lo_valid);
    }
    out[r * ld + p] = acc;
  }
}

__device__ __forceinline__ int64_t sample_offset(const StridedDesc& d, int64_t s) {
  const int64_t i2 = s % d.sample_shape[2], rest = s / d.sample_shape[2];
  const int64_t i1 = rest % d.sample_shape[1], i0 = rest / d.sample_shape[1];
  return i0 * d.sample_strides[0] + i1 * d.sample_strides[1] + i2 * d.sample_strides[2];
}

template <typename T>
__global__ void gather_kernel(const T* __restrict__ src, StridedDesc d, int64_t c, int64_t l, int64_t first, int64_t n,
                              float* __restrict__ dst, int64_t ld) {
  const int64_t j = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (j >= n) return;
  const T* base = src + sample_offset(d, first + j);
  for (int64_t r = blockIdx.y; r < c * l; r += gridDim.y) {
    const int64_t pos = r / c, ch = r % c;
    dst[r * ld + j] = float(base[ch * d.feature_strides[0] + pos * d.feature_strides[1]]);
  }
}

__global__ void scatter_kernel(const float* __restrict__ src, int64_t ld, int64_t c, int64_t l, int64_t first,
                               int64_t n, float* __restrict__ dst, StridedDesc d) {
  const int64_t j = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (j >= n) return;
  float* base = dst + sample_offset(d, first + j);
  for (int64_t r = blockIdx.y; r < c * l; r += gridDim.y) {
    const int64_t pos = r / c, ch = r % c;
    base[ch * d.feature_strides[0] + pos * d.feature_strides[1]] = src[r * ld + j];
  }
}

constexpr int kThreads = 256;
dim3 rows_grid(int64_t n, int64_t nrows) {
  return dim3(unsigned((n + kThreads - 1) / kThreads), unsigned(std::min<int64_t>(std::max<int64_t>(nrows, 1), 65535)));
}
cudaStream_t cs(StreamHandle s) { return static_cast<cudaStream_t>(s); }

}  // namespace

void launch_conv(const float* w, const float* bias, const int32_t* rows, int m, int kdim, int lout, const float* in,
                 float* out, int64_t ld, int64_t n, DevAct act, StreamHandle s) {
  if (n <= 0) return;
  if (lout > 65535 || (m + kBM - 1) / kBM > 65535) throw InvalidArgument("conv layer too large for the CUDA backend");
  dim3 grid(unsigned((n + kBP - 1) / kBP), unsigned((m + kBM - 1) / kBM), unsigned(lout));
  conv_kernel<<<grid, 256, 0, cs(s)>>>(w, bias, rows, m, kdim, in, out, ld, n, act);
  check_launch("conv1d/linear");
}

void launch_act(const float* in, float* out, int64_t nrows, int64_t ld, int64_t n, DevAct act, StreamHandle s) {
  if (n <= 0 || nrows <= 0) return;
  act_kernel<<<rows_grid(n, nrows), kThreads, 0, cs(s)>>>(in, out, nrows, ld, n, act);
  check_launch("activation");
}

void launch_pool(bool is_max, const float* in, float* out, int c, int lin, int lout, int kernel, int stride, int pad,
                 bool count_include_pad, int64_t ld, int64_t n, StreamHandle s) {
  if (n <= 0) return;
  pool_kernel<<<rows_grid(n, int64_t(lout) * c), kThreads, 0, cs(s)>>>(is_max, in, out, c, lin, lout, kernel, stride,
                                                                       pad, count_include_pad, ld, n);
  check_launch(is_max ? "maxpool1d" : "avgpool1d");
}

void launch_affine(const float* in, float* out, const float* scale, const float* shift, int c, int64_t nrows,
                   int64_t ld, int64_t n, StreamHandle s) {
  if (n <= 0 || nrows <= 0) return;
  affine_kernel<<<rows_grid(n, nrows), kThreads, 0, cs(s)>>>(in, out, scale, shift, c, nrows, ld, n);
  check_launch("affine");
}

void launch_add(const float* a, const float* b, float* out, int64_t nrows, int64_t ld, int64_t n, StreamHandle s) {
  if (n <= 0 || nrows <= 0) return;
  add_kernel<<<rows_grid(n, nrows), kThreads, 0, cs(s)>>>(a, b, out, nrows, ld, n);
  check_launch("add");
}

void launch_accumulate(float* acc, const float* b, int64_t nrows, int64_t ld, int64_t n, StreamHandle s) {
  if (n <= 0 || nrows <= 0) return;
  accumulate_kernel<<<rows_grid(n, nrows), kThreads, 0, cs(s)>>>(acc, b, nrows, ld, n);
  check_launch("accumulate");
}

void launch_copy_rows(const float* in, float* out, const int32_t* dst_rows, int64_t nrows, int64_t ld, int64_t n,
                      StreamHandle s) {
  if (n <= 0 || nrows <= 0) return;
  copy_rows_kernel<<<rows_grid(n, nrows), kThreads, 0, cs(s)>>>(in, out, dst_rows, nrows, ld, n);
  check_launch("copy_rows");
}

void launch_gather(const void* src, bool f64, const StridedDesc& d, int64_t c, int64_t l, int64_t first, int64_t n,
                   float* dst, int64_t ld, StreamHandle s) {
  if (n <= 0) return;
  if (f64)
    gather_kernel<double>
        <<<rows_grid(n, c * l), kThreads, 0, cs(s)>>>(static_cast<const double*>(src), d, c, l, first, n, dst, ld);
  else
    gather_kernel<float>
        <<<rows_grid(n, c * l), kThreads, 0, cs(s)>>>(static_cast<const float*>(src), d, c, l, first, n, dst, ld);
  check_launch("gather input");
}

void launch_scatter(const float* src, int64_t ld, int64_t c, int64_t l, int64_t first, int64_t n, float* dst,
                    const StridedDesc& d, StreamHandle s) {
  if (n <= 0) return;
  scatter_kernel<<<rows_grid(n, c * l), kThreads, 0, cs(s)>>>(src, ld, c, l, first, n, dst, d);
  check_launch("scatter output");
}

}  // namespace fastinv::cuda
