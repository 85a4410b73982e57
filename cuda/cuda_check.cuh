// Every CUDA call and launch goes through FASTINV_CUDA_CHECK so that a failure
// becomes a fastinv::Error naming the call, never a silent wrong result.
#pragma once
#include <cuda_runtime.h>

#include <string>

#include "fastinv/error.hpp"

#define FASTINV_CUDA_CHECK(call)                                                                               \
  do {                                                                                                         \
    cudaError_t fastinv_err_ = (call);                                                                         \
    if (fastinv_err_ != cudaSuccess)                                                                           \
      throw ::fastinv::Error(std::string("CUDA error in ") + #call + ": " + cudaGetErrorString(fastinv_err_)); \
  } while (0)
