// The portable half of the bf16 path: weight packing, and whether the AVX512-BF16
// unit (kernels_avx512_bf16.cpp) may run here.
#include "cpu/kernels_bf16.hpp"

#include "fastinv/error.hpp"

namespace fastinv::cpu {

bool bf16_supported() {
#if defined(FASTINV_HAVE_BF16_KERNELS) && (defined(__x86_64__) || defined(_M_X64))
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl") &&
         __builtin_cpu_supports("avx512bf16");
#else
  return false;
#endif
}

const Bf16Kernels& bf16_kernels() {
#ifdef FASTINV_HAVE_BF16_KERNELS
  static const Bf16Kernels kernels{&gemm_avx512_bf16, &to_pair_rows_avx512_bf16};
  if (bf16_supported()) return kernels;
  throw Error(
      "precision='bf16' on the CPU needs AVX512-BF16 (the vdpbf16ps instruction: Intel Cooper Lake, Sapphire Rapids "
      "or later, AMD Zen 4 or later), which this CPU lacks; load with precision='fp32'");
#else
  throw Error(
      "precision='bf16' on the CPU needs the AVX512-BF16 kernels, which this build lacks (its compiler has no "
      "-mavx512bf16); load with precision='fp32'");
#endif
}

void pack_weights_bf16(const float* w, const float* bias, int64_t m, int64_t taps, int64_t cin, int mr,
                       std::vector<uint32_t>& a, std::vector<float>& b) {
  const int64_t blocks = (m + mr - 1) / mr, pairs = (cin + 1) / 2, kp = taps * pairs;
  a.assign(size_t(blocks * kp * mr), 0u);
  b.assign(size_t(blocks * mr), 0.f);
  for (int64_t row = 0; row < m; ++row) {
    const int64_t blk = row / mr, r = row % mr;
    for (int64_t t = 0; t < taps; ++t)
      for (int64_t p = 0; p < pairs; ++p) {
        const float* tap = w + (row * taps + t) * cin;
        const uint32_t even = bf16_bits(tap[2 * p]);
        const uint32_t odd = 2 * p + 1 < cin ? bf16_bits(tap[2 * p + 1]) : 0u;
        a[size_t((blk * kp + t * pairs + p) * mr + r)] = even | odd << 16;
      }
    b[size_t(row)] = bias[row];
  }
}

double measure_bf16_peak(int threads, double seconds) {
  bf16_kernels();  // throws where the CPU or build lacks AVX512-BF16
#ifdef FASTINV_HAVE_BF16_KERNELS
  return measure_loop_peak(&dp_loop_avx512_bf16, threads, seconds);
#else
  (void)threads;
  (void)seconds;
  return 0.0;
#endif
}

}  // namespace fastinv::cpu
