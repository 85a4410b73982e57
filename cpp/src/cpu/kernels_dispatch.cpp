#include <chrono>
#include <vector>

#include "cpu/kernels.hpp"
#include "fastinv/error.hpp"
#ifdef FASTINV_HAVE_OPENMP
#include <omp.h>
#endif

namespace fastinv::cpu {

const Kernels& kernels_for(Isa isa) {
  static const Kernels generic{Isa::generic, kMrGeneric, &gemm_generic, &mix_rows_generic, &fma_loop_generic};
#ifdef FASTINV_HAVE_AVX2_KERNELS
  static const Kernels avx2{Isa::avx2, kMrAvx2, &gemm_avx2, &mix_rows_avx2, &fma_loop_avx2};
  if (isa == Isa::avx2) return avx2;
#endif
#ifdef FASTINV_HAVE_AVX512_KERNELS
  static const Kernels avx512{Isa::avx512, kMrAvx512, &gemm_avx512, &mix_rows_avx512, &fma_loop_avx512};
  if (isa == Isa::avx512) return avx512;
#endif
  if (isa != Isa::generic) throw InvalidArgument(std::string("no kernels built for ISA ") + isa_name(isa));
  return generic;
}

double measure_fma_peak(Isa isa, int threads, double seconds) {
  return measure_loop_peak(kernels_for(isa).fma_loop, threads, seconds);
}

double measure_loop_peak(double (*loop)(int64_t iterations, float* sink), int threads, double seconds) {
  if (threads < 1) threads = 1;
  std::vector<float> sinks(size_t(threads) * 16, 0.f);
  std::vector<double> flops(size_t(threads), 0.0);
  const auto start = std::chrono::steady_clock::now();
  auto body = [&](int t) {
    loop(1 << 16, &sinks[size_t(t) * 16]);  // warm up clocks
    double done = 0;
    while (std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() < seconds)
      done += loop(1 << 20, &sinks[size_t(t) * 16]);
    flops[size_t(t)] = done;
  };
#ifdef FASTINV_HAVE_OPENMP
#pragma omp parallel num_threads(threads)
  body(omp_get_thread_num());
#else
  threads = 1;
  body(0);
#endif
  const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  double total = 0;
  for (double f : flops) total += f;
  return total / elapsed * 1e-9;
}

void pack_weights(const float* w, const float* bias, int64_t m, int64_t k, int mr, std::vector<float>& a,
                  std::vector<float>& b) {
  const int64_t blocks = (m + mr - 1) / mr;
  a.assign(size_t(blocks * k * mr), 0.f);
  b.assign(size_t(blocks * mr), 0.f);
  for (int64_t row = 0; row < m; ++row) {
    const int64_t blk = row / mr, r = row % mr;
    for (int64_t j = 0; j < k; ++j) a[size_t((blk * k + j) * mr + r)] = w[row * k + j];
    b[size_t(row)] = bias[row];
  }
}

}  // namespace fastinv::cpu
