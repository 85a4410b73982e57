// Where the AVX-512 float32 GEMM loses a third of the FMA peak on the Intel VM (issue 18):
// the engine's own microkernel (cpp/src/cpu/kernels_avx512.cpp) on one thread, timed per
// CPU-second (process time, so other jobs on the shared cores cancel), against its FMA peak
// loop in the same run, for operand placements that separate the suspects:
//   l2-weights   DeepEM's 300 x 300 layer: weights (365 KB) stream from L2 per 16-sample tile
//   l1-weights   16 x 300: the same reduction with the weights (19 KB) and rows in L1
//   l1-short-k   64 x 32: L1 again, a short reduction (more epilogue per FMA)
// and copies of the microkernel's loop: with a software prefetch of the weight panel 4 or 16
// steps ahead (and without, the control), and 8 rows with their weights in registers (one
// load per 8 FMAs: is it the load ports?).
// Build and run (prints JSON):
//   g++ -O3 -std=c++17 -mavx512f -mavx512bw -mavx512dq -mavx512vl -mfma -Icpp/src -Icpp/include \
//       bench/fp32_gemm_probe.cpp cpp/src/cpu/kernels_avx512.cpp -o /tmp/fp32_gemm_probe && /tmp/fp32_gemm_probe
#include <immintrin.h>
#include <time.h>

#include <cstdio>
#include <random>
#include <vector>

#include "cpu/kernels.hpp"

using fastinv::cpu::GemmArgs;
using fastinv::cpu::kTileWidth;

namespace {

double cpu_seconds() {
  timespec t;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return double(t.tv_sec) + 1e-9 * double(t.tv_nsec);
}

struct Case {
  const char* name;
  int64_t m, k;
  std::vector<float> a, bias, in, out;
};

Case make(const char* name, int64_t m, int64_t k) {
  Case c{name, m, k, {}, {}, {}, {}};
  std::mt19937 rng(1);
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  std::vector<float> w(size_t(m * k));
  std::vector<float> b(static_cast<size_t>(m));
  for (float& v : w) v = u(rng);
  for (float& v : b) v = u(rng);
  // the engine's packing (kernels_dispatch.cpp's pack_weights): [ceil(m/16)][k][16], zero-padded
  constexpr int64_t mr = fastinv::cpu::kMrAvx512;
  const int64_t blocks = (m + mr - 1) / mr;
  c.a.assign(size_t(blocks * k * mr), 0.f);
  c.bias.assign(size_t(blocks * mr), 0.f);
  for (int64_t row = 0; row < m; ++row) {
    c.bias[size_t(row)] = b[size_t(row)];
    for (int64_t kk = 0; kk < k; ++kk) c.a[size_t(((row / mr) * k + kk) * mr + row % mr)] = w[size_t(row * k + kk)];
  }
  c.in.resize(size_t(k * kTileWidth));
  for (float& v : c.in) v = u(rng);
  c.out.resize(size_t((m + 16) * kTileWidth));
  return c;
}

// GFLOP per CPU-second of `calls` GEMMs of case c (the same tile over and over).
double rate(Case& c, int64_t calls, void (*gemm)(const GemmArgs&) = &fastinv::cpu::gemm_avx512) {
  GemmArgs g;
  g.m = c.m;
  g.k = c.k;
  g.a = c.a.data();
  g.bias = c.bias.data();
  g.in = c.in.data();
  g.out = c.out.data();
  g.out_stride = kTileWidth;
  g.leaky = true;
  g.slope = 0.01f;
  const double t0 = cpu_seconds();
  for (int64_t i = 0; i < calls; ++i) gemm(g);
  const double dt = cpu_seconds() - t0;
  return 2.0 * double(c.m * c.k * kTileWidth) * double(calls) / dt * 1e-9;
}

// The microkernel's loop (kernels_avx512.cpp's block<16, true>), optionally prefetching the
// weight panel `ahead` steps (64-byte lines) ahead: does the L2 stream of the weights stall it?
template <int Ahead>
void gemm_prefetch(const GemmArgs& g) {
  constexpr int MR = fastinv::cpu::kMrAvx512;
  for (int64_t blk = 0; blk * MR < g.m; ++blk) {
    const float* a = g.a + blk * g.k * MR;
    __m512 c[MR];
    for (int r = 0; r < MR; ++r) c[r] = _mm512_set1_ps(g.bias[blk * MR + r]);
    for (int64_t kk = 0; kk < g.k; ++kk, a += MR) {
      if (Ahead > 0) _mm_prefetch(reinterpret_cast<const char*>(a + Ahead * MR), _MM_HINT_T0);
      const __m512 b = _mm512_loadu_ps(g.in + kk * kTileWidth);
#pragma GCC unroll 16
      for (int r = 0; r < MR; ++r) c[r] = _mm512_fmadd_ps(_mm512_set1_ps(a[r]), b, c[r]);
    }
    for (int r = 0; r < MR; ++r) _mm512_storeu_ps(g.out + (blk * MR + r) * g.out_stride, c[r]);
  }
}

// 8 rows whose weights stay in registers: one load (the row) per 8 FMAs instead of 17 per 16.
void gemm_registers(const GemmArgs& g) {
  __m512 w[8], c[8];
  for (int r = 0; r < 8; ++r) w[r] = _mm512_set1_ps(g.a[r]);
  for (int64_t blk = 0; blk * 8 < g.m; ++blk) {
    for (int r = 0; r < 8; ++r) c[r] = _mm512_set1_ps(g.bias[r]);
    for (int64_t kk = 0; kk < g.k; ++kk) {
      const __m512 b = _mm512_loadu_ps(g.in + kk * kTileWidth);
#pragma GCC unroll 8
      for (int r = 0; r < 8; ++r) c[r] = _mm512_fmadd_ps(w[r], b, c[r]);
    }
    for (int r = 0; r < 8; ++r) _mm512_storeu_ps(g.out + r * g.out_stride, c[r]);
  }
}

}  // namespace

int main() {
  Case cases[] = {make("l2-weights", 300, 300), make("l1-weights", 16, 300), make("l1-short-k", 64, 32)};
  const double flops_per_case = 4e9;  // ~1-2 s per case per round at this CPU's rate
  float sink = 0.f;
  std::printf("{\"rounds\": [\n");
  for (int round = 0; round < 5; ++round) {
    const double t0 = cpu_seconds();
    const double f = fastinv::cpu::fma_loop_avx512(int64_t(2e7), &sink);
    const double peak = f / (cpu_seconds() - t0) * 1e-9;
    std::printf("  {\"fma_peak_gflops_per_cpu_s\": %.1f", peak);
    for (Case& c : cases) {
      const int64_t calls = int64_t(flops_per_case / (2.0 * double(c.m * c.k * kTileWidth)));
      const double r = rate(c, calls);
      std::printf(", \"%s\": %.3f", c.name, r / peak);
    }
    Case& l2 = cases[0];
    const int64_t calls = int64_t(flops_per_case / (2.0 * double(l2.m * l2.k * kTileWidth)));
    std::printf(", \"l2-weights-prefetch4\": %.3f", rate(l2, calls, &gemm_prefetch<4>) / peak);
    std::printf(", \"l2-weights-prefetch16\": %.3f", rate(l2, calls, &gemm_prefetch<16>) / peak);
    std::printf(", \"l2-weights-copy-no-prefetch\": %.3f", rate(l2, calls, &gemm_prefetch<0>) / peak);
    std::printf(", \"registers-8-rows\": %.3f", rate(l2, calls, &gemm_registers) / peak);
    std::printf("}%s\n", round < 4 ? "," : "");
  }
  std::printf("], \"sink\": %g}\n", double(sink));
  return 0;
}
