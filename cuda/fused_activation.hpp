// The activations of the fused kernel's ldmatrix variant, one instantiation per kind
// (docs/cuda.md "The next design", step 3): the epilogue is compiled once per kind and
// selected once per layer (`with_activation`), so the per-element run-time switch of
// activation.cuh leaves the inner loop. Compiled for the device and for the host, so the
// CPU emulation (cuda/host/emulate_fused.cpp) runs exactly this code; the formulas are
// those of activation.cuh and the CPU engine (full-precision expf/erff/tanhf/log1pf).
#pragma once
#include <cmath>

#include "fused_index.hpp"

namespace fastinv::cuda::fused {

constexpr int kActKinds = 10;  // int(fastinv::ActKind): identity .. softplus

template <int KIND>
FASTINV_HD float activate(const DevAct& a, float x) {
  static_assert(KIND >= 0 && KIND < kActKinds, "activation kind");
  if constexpr (KIND == 0)
    return x;  // identity
  else if constexpr (KIND == 1)
    return x < 0.f ? 0.f : x;  // relu
  else if constexpr (KIND == 2)
    return x < 0.f ? a.alpha * x : x;  // leaky_relu
  else if constexpr (KIND == 3)
    return x > 0.f ? x : a.alpha * expm1f(x);  // elu
  else if constexpr (KIND == 4)
    return x / (1.f + expf(-x));  // silu
  else if constexpr (KIND == 5)
    return 0.5f * x * (1.f + erff(x * 0.70710678118654752f));  // gelu
  else if constexpr (KIND == 6) {                              // gelu_tanh
    const float inner = 0.79788456080286536f * (x + 0.044715f * x * x * x);
    return 0.5f * x * (1.f + tanhf(inner));
  } else if constexpr (KIND == 7)
    return tanhf(x);  // tanh
  else if constexpr (KIND == 8)
    return 1.f / (1.f + expf(-x));  // sigmoid
  else {                            // softplus (KIND == 9)
    const float bx = a.beta * x;
    return bx > a.threshold ? x : log1pf(expf(bx)) / a.beta;
  }
}

template <int KIND>
struct ActTag {
  static constexpr int kind = KIND;
};

// f(ActTag<kind>{}) for a run-time kind (uniform over the block: one branch per layer).
template <typename F>
FASTINV_HD void with_activation(int kind, F&& f) {
  switch (kind) {
    case 0:
      return f(ActTag<0>{});
    case 1:
      return f(ActTag<1>{});
    case 2:
      return f(ActTag<2>{});
    case 3:
      return f(ActTag<3>{});
    case 4:
      return f(ActTag<4>{});
    case 5:
      return f(ActTag<5>{});
    case 6:
      return f(ActTag<6>{});
    case 7:
      return f(ActTag<7>{});
    case 8:
      return f(ActTag<8>{});
    default:
      return f(ActTag<9>{});
  }
}

}  // namespace fastinv::cuda::fused
