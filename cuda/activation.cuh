// Device activations, the same formulas as the CPU engine (cpu_plan.cpp) and torch:
// full-precision expf/erff/tanhf/log1pf (no fast-math intrinsics), so fp32 mode keeps
// its 1e-5 agreement with a float64 reference.
#pragma once
#include "gpu_kernels.hpp"

namespace fastinv::cuda {

__device__ __forceinline__ float activate(const DevAct& a, float x) {
  switch (a.kind) {
    case 0:
      return x;  // identity
    case 1:
      return x < 0.f ? 0.f : x;  // relu
    case 2:
      return x < 0.f ? a.alpha * x : x;  // leaky_relu
    case 3:
      return x > 0.f ? x : a.alpha * expm1f(x);  // elu
    case 4:
      return x / (1.f + expf(-x));  // silu
    case 5:
      return 0.5f * x * (1.f + erff(x * 0.70710678118654752f));  // gelu
    case 6: {                                                    // gelu_tanh
      const float inner = 0.79788456080286536f * (x + 0.044715f * x * x * x);
      return 0.5f * x * (1.f + tanhf(inner));
    }
    case 7:
      return tanhf(x);  // tanh
    case 8:
      return 1.f / (1.f + expf(-x));  // sigmoid
    case 9: {                         // softplus
      const float bx = a.beta * x;
      return bx > a.threshold ? x : log1pf(expf(bx)) / a.beta;
    }
  }
  return x;
}

}  // namespace fastinv::cuda
