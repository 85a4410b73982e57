// An exact-fp32 SIMT dense layer in the planar (channels x pixels) layout: the
// reference the fused tensor-core kernels are checked against.
#include <memory>

#include "cuda_check.cuh"
#include "cuda_device.hpp"

namespace fastinv::cuda {
namespace {

__global__ void linear_planar_kernel(const float* __restrict__ w, const float* __restrict__ b,
                                     const float* __restrict__ x, float* __restrict__ y, int cin, int cout,
                                     int64_t npix, float slope) {
  const int64_t p = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  const int o = blockIdx.y;
  if (p >= npix) return;
  float acc = b[o];
  for (int i = 0; i < cin; ++i) acc = fmaf(w[o * cin + i], x[i * npix + p], acc);
  y[o * npix + p] = acc >= 0.f ? acc : slope * acc;
}

struct DeviceFree {
  void operator()(float* p) const { cudaFree(p); }
};
using DeviceBuffer = std::unique_ptr<float, DeviceFree>;

DeviceBuffer upload(const float* host, size_t n) {
  float* dev = nullptr;
  FASTINV_CUDA_CHECK(cudaMalloc(&dev, n * sizeof(float)));
  DeviceBuffer buf(dev);
  if (host) FASTINV_CUDA_CHECK(cudaMemcpy(dev, host, n * sizeof(float), cudaMemcpyHostToDevice));
  return buf;
}

}  // namespace

void linear_planar_reference(const float* w, const float* b, const float* x, float* y, int cin, int cout, int64_t npix,
                             float slope) {
  if (cin <= 0 || cout <= 0 || npix < 0 || cout > 65535) throw InvalidArgument("linear_planar_reference: bad sizes");
  if (npix == 0) return;
  DeviceBuffer dw = upload(w, size_t(cout) * cin), db = upload(b, cout);
  DeviceBuffer dx = upload(x, size_t(cin) * npix), dy = upload(nullptr, size_t(cout) * npix);
  const int threads = 256;
  dim3 grid(static_cast<unsigned>((npix + threads - 1) / threads), cout);
  linear_planar_kernel<<<grid, threads>>>(dw.get(), db.get(), dx.get(), dy.get(), cin, cout, npix, slope);
  FASTINV_CUDA_CHECK(cudaGetLastError());
  FASTINV_CUDA_CHECK(cudaMemcpy(y, dy.get(), size_t(cout) * npix * sizeof(float), cudaMemcpyDeviceToHost));
}

}  // namespace fastinv::cuda
