// Portable microkernel: plain loops the compiler vectorises for the baseline ISA.
// Row loops have constant bounds so the accumulator block stays in registers.
#include <cstring>

#include "cpu/kernels.hpp"

namespace fastinv::cpu {

void gemm_generic(const GemmArgs& g) {
  constexpr int MR = kMrGeneric, NR = kTileWidth;
  const int64_t k = g.k;
  for (int64_t blk = 0; blk * MR < g.m; ++blk) {
    float acc[MR][NR];
    const float* bias = g.bias + blk * MR;
    for (int r = 0; r < MR; ++r)
      for (int j = 0; j < NR; ++j) acc[r][j] = bias[r];
    const float* a = g.a + blk * k * MR;
    for (int64_t kk = 0; kk < k; ++kk, a += MR) {
      const float* row = g.in + (g.offsets ? g.offsets[kk] : kk * NR);
      for (int r = 0; r < MR; ++r)
        for (int j = 0; j < NR; ++j) acc[r][j] += a[r] * row[j];
    }
    if (g.leaky)
      for (int r = 0; r < MR; ++r)
        for (int j = 0; j < NR; ++j)
          if (acc[r][j] < 0.f) acc[r][j] = g.slope == 0.f ? 0.f : g.slope * acc[r][j];
    const int64_t rows = g.m - blk * MR < MR ? g.m - blk * MR : MR;
    for (int64_t r = 0; r < rows; ++r) std::memcpy(g.out + (blk * MR + r) * g.out_stride, acc[r], sizeof(acc[r]));
  }
}

double fma_loop_generic(int64_t iterations, float* sink) {
  constexpr int kChains = 8, kWidth = 4;
  float acc[kChains][kWidth] = {};
  for (int64_t i = 0; i < iterations; ++i)
    for (int c = 0; c < kChains; ++c)
      for (int j = 0; j < kWidth; ++j) acc[c][j] = acc[c][j] * 0.999999f + 1e-7f;
  for (int c = 0; c < kChains; ++c) sink[0] += acc[c][0];
  return 2.0 * double(iterations) * kChains * kWidth;
}

}  // namespace fastinv::cpu
