#include "cuda_check.cuh"
#include "cuda_device.hpp"

namespace fastinv::cuda {

int device_count() {
  int count = 0;
  // No driver or no device is a normal situation on CPU machines, not an error.
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    cudaGetLastError();
    return 0;
  }
  return count;
}

std::string device_name(int device) {
  cudaDeviceProp prop{};
  FASTINV_CUDA_CHECK(cudaGetDeviceProperties(&prop, device));
  return prop.name;
}

}  // namespace fastinv::cuda
