// The portable half of the bf16 path: weight packing, and which bf16 kernels (AMX tiles
// or AVX512-BF16's vdpbf16ps) may run here.
#include "cpu/kernels_bf16.hpp"

#include <cstdlib>
#include <string>

#include "fastinv/error.hpp"
#if defined(__linux__) && (defined(__x86_64__) || defined(_M_X64))
#include <cpuid.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

namespace fastinv::cpu {
namespace {

// Term `term` of a weight: 0 the nearest bf16, 1 the nearest bf16 to what term 0 leaves.
uint32_t weight_term(float x, int term) {
  const uint16_t hi = bf16_bits(x);
  const uint32_t u = uint32_t(hi) << 16;
  if (term == 0) return hi;
  if ((u & 0x7f800000u) == 0x7f800000u) return 0u;  // inf or NaN: hi says it all
  float h;
  std::memcpy(&h, &u, sizeof(h));
  return bf16_bits(x - h);  // exact in float32 (Sterbenz), rounded once
}

// [m][taps * ceil(cin/2)][terms] pairs, channel pairs within a tap.
std::vector<uint32_t> pair_matrix(const float* w, int64_t m, int64_t taps, int64_t cin, int terms) {
  if (terms != 1 && terms != 2) throw InvalidArgument("bf16 weights: terms must be 1 or 2");
  const int64_t pairs = (cin + 1) / 2, kp = taps * pairs;
  std::vector<uint32_t> out(size_t(m * kp * terms));
  for (int64_t row = 0; row < m; ++row)
    for (int64_t t = 0; t < taps; ++t)
      for (int64_t p = 0; p < pairs; ++p)
        for (int term = 0; term < terms; ++term) {
          const float* tap = w + (row * taps + t) * cin;
          const uint32_t even = weight_term(tap[2 * p], term);
          const uint32_t odd = 2 * p + 1 < cin ? weight_term(tap[2 * p + 1], term) : 0u;
          out[size_t((row * kp + t * pairs + p) * terms + term)] = even | odd << 16;
        }
  return out;
}

void pad_bias(const float* bias, int64_t m, int64_t padded, std::vector<float>& b) {
  b.assign(size_t(padded), 0.f);
  for (int64_t row = 0; row < m; ++row) b[size_t(row)] = bias[row];
}

}  // namespace

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

bool amx_usable() {
#if defined(FASTINV_HAVE_AMX_KERNELS) && defined(__linux__) && (defined(__x86_64__) || defined(_M_X64))
  static const bool usable = [] {
    unsigned a, b, c, d;
    if (!bf16_supported() || !__get_cpuid_count(7, 0, &a, &b, &c, &d)) return false;
    if (!(d & (1u << 22)) || !(d & (1u << 24))) return false;  // AMX-BF16, AMX-TILE
    unsigned lo, hi;
    __asm__("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));  // XCR0: the OS saves tile state
    if ((lo & (3u << 17)) != (3u << 17)) return false;
    constexpr long kArchReqXcompPerm = 0x1023, kXfeatureXtiledata = 18;  // Linux >= 5.16
    return syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) == 0;
  }();
  return usable;
#else
  return false;
#endif
}

const Bf16Kernels& bf16_kernels() {
#ifdef FASTINV_HAVE_BF16_KERNELS
  static const Bf16Kernels dp{"avx512_bf16", false, &gemm_avx512_bf16, &to_pair_rows_avx512_bf16};
  if (!bf16_supported())
    throw Error(
        "precision='bf16' / 'bf16x2' on the CPU needs AVX512-BF16 (the vdpbf16ps instruction: Intel Cooper Lake, "
        "Sapphire "
        "Rapids or later, AMD Zen 4 or later), which this CPU lacks; load with precision='fp32'");
#ifdef FASTINV_HAVE_AMX_KERNELS
  static const Bf16Kernels tiles{"amx_bf16", true, &gemm_amx_bf16, &to_pair_rows_avx512_bf16};
  const char* env = std::getenv("FASTINV_BF16_KERNELS");
  const std::string wanted = env ? env : "";
  if (!wanted.empty() && wanted != "avx512" && wanted != "amx")
    throw InvalidArgument("FASTINV_BF16_KERNELS=" + wanted + ": expected avx512 or amx");
  if (wanted == "amx" && !amx_usable())
    throw Error("FASTINV_BF16_KERNELS=amx: this CPU, OS or build has no usable AMX-BF16");
  if (wanted != "avx512" && amx_usable()) return tiles;
#endif
  return dp;
#else
  throw Error(
      "precision='bf16' / 'bf16x2' on the CPU needs the AVX512-BF16 kernels, which this build lacks (its compiler has "
      "no "
      "-mavx512bf16); load with precision='fp32'");
#endif
}

void pack_weights_bf16(const float* w, const float* bias, int64_t m, int64_t taps, int64_t cin, int mr,
                       std::vector<uint32_t>& a, std::vector<float>& b, int terms) {
  const int64_t blocks = (m + mr - 1) / mr, kp = taps * ((cin + 1) / 2);
  const std::vector<uint32_t> pairs = pair_matrix(w, m, taps, cin, terms);
  a.assign(size_t(blocks * kp * terms * mr), 0u);
  for (int64_t row = 0; row < m; ++row)
    for (int64_t kk = 0; kk < kp; ++kk)
      for (int term = 0; term < terms; ++term)
        a[size_t((((row / mr) * kp + kk) * terms + term) * mr + row % mr)] =
            pairs[size_t((row * kp + kk) * terms + term)];
  pad_bias(bias, m, blocks * mr, b);
}

void pack_weights_bf16_tiles(const float* w, const float* bias, int64_t m, int64_t taps, int64_t cin,
                             std::vector<uint32_t>& a, std::vector<float>& b, int terms) {
  constexpr int64_t R = 16, P = 16;  // rows and pairs of an A tile
  const int64_t blocks = (m + R - 1) / R, kp = taps * ((cin + 1) / 2), chunks = (kp + P - 1) / P;
  const std::vector<uint32_t> pairs = pair_matrix(w, m, taps, cin, terms);
  a.assign(size_t(blocks * chunks * terms * R * P), 0u);
  for (int64_t row = 0; row < m; ++row)
    for (int64_t kk = 0; kk < kp; ++kk)
      for (int term = 0; term < terms; ++term)
        a[size_t(((((row / R) * chunks + kk / P) * terms + term) * R + row % R) * P + kk % P)] =
            pairs[size_t((row * kp + kk) * terms + term)];
  pad_bias(bias, m, blocks * R, b);
}

double measure_bf16_peak(int threads, double seconds) {
  const Bf16Kernels& kernels = bf16_kernels();  // throws where the CPU or build lacks AVX512-BF16
#ifdef FASTINV_HAVE_AMX_KERNELS
  // (iterations of the tile loop are 16x longer than of the vector loops: fewer per call)
  if (kernels.tiles)
    return measure_loop_peak([](int64_t n, float* sink) { return tile_loop_amx_bf16(n / 16, sink); }, threads, seconds);
#endif
#ifdef FASTINV_HAVE_BF16_KERNELS
  (void)kernels;
  return measure_loop_peak(&dp_loop_avx512_bf16, threads, seconds);
#else
  (void)threads;
  (void)seconds;
  return 0.0;
#endif
}

}  // namespace fastinv::cpu
