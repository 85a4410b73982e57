// Portable microkernel: GCC/Clang vector extensions of 4 floats, which compile to the
// baseline SIMD of any target (SSE2 on x86-64, NEON on AArch64) without ISA flags.
// 3 output rows x 16 samples = 12 vector accumulators, so the block plus four input
// vectors fit the 16 registers of SSE2 (plain loops left GCC at a third of this speed).
#include <cstring>

#include "cpu/kernels.hpp"
#include "cpu/kernels_rows.hpp"

namespace fastinv::cpu {
namespace {

typedef float v4 __attribute__((vector_size(16)));
constexpr int MR = kMrGeneric, NR = kTileWidth, NV = NR / 4;

inline v4 load(const float* p) {
  v4 v;
  std::memcpy(&v, p, sizeof(v));  // unaligned load
  return v;
}

}  // namespace

void gemm_generic(const GemmArgs& g) {
  const int64_t k = g.k;
  for (int64_t blk = 0; blk * MR < g.m; ++blk) {
    v4 acc[MR][NV];
    const int64_t rows = g.m - blk * MR < MR ? g.m - blk * MR : MR;
    for (int r = 0; r < MR; ++r)
      for (int q = 0; q < NV; ++q)
        acc[r][q] = !g.accumulate ? v4{} + g.bias[blk * MR + r]
                    : r < rows    ? load(g.out + (blk * MR + r) * g.out_stride + 4 * q)
                                  : v4{};
    const float* a = g.a + blk * k * MR;
    for (int64_t kk = 0; kk < k; ++kk, a += MR) {
      const float* row = g.in + (g.offsets ? g.offsets[kk] : kk * NR);
      v4 b[NV];
      for (int q = 0; q < NV; ++q) b[q] = load(row + 4 * q);
      for (int r = 0; r < MR; ++r)
        for (int q = 0; q < NV; ++q) acc[r][q] += a[r] * b[q];
    }
    alignas(16) float out[MR][NR];
    std::memcpy(out, acc, sizeof(out));
    if (g.leaky)
      for (int r = 0; r < MR; ++r)
        for (int j = 0; j < NR; ++j)
          if (out[r][j] < 0.f) out[r][j] = g.slope == 0.f ? 0.f : g.slope * out[r][j];
    for (int64_t r = 0; r < rows; ++r) store_row(g.out + (blk * MR + r) * g.out_stride, out[r], g.max_into_out);
  }
}

double fma_loop_generic(int64_t iterations, float* sink) {
  constexpr int kChains = 8;
  v4 acc[kChains];
  const v4 a = v4{} + 0.999999f, b = v4{} + 1e-7f;
  for (int c = 0; c < kChains; ++c) acc[c] = v4{} + float(c);
  for (int64_t i = 0; i < iterations; ++i)
    for (int c = 0; c < kChains; ++c) acc[c] = acc[c] * a + b;
  for (int c = 1; c < kChains; ++c) acc[0] += acc[c];
  sink[0] += acc[0][0];
  return 2.0 * double(iterations) * kChains * 4;
}

bool mix_rows_generic(const MixArgs& args) { return mix_rows_impl<16>(args); }

}  // namespace fastinv::cpu
