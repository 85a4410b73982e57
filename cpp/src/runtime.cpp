#include "fastinv/runtime.hpp"

#include <algorithm>
#include <cstdlib>
#include <mutex>
#include <string>
#include <thread>

#include "cpu/kernels.hpp"
#include "cpu/kernels_bf16.hpp"
#include "fastinv/error.hpp"
#ifdef FASTINV_HAVE_OPENMP
#include <omp.h>
#endif
#ifdef FASTINV_HAVE_CUDA
#include "cuda_device.hpp"
#endif

namespace fastinv {
namespace {

bool cpu_supports(Isa isa) {
#if defined(__x86_64__) || defined(_M_X64)
  __builtin_cpu_init();
  switch (isa) {
    case Isa::generic:
      return true;
    case Isa::avx2:
      return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case Isa::avx512:
      return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
             __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
  }
  return false;
#else
  return isa == Isa::generic;
#endif
}

bool built_with(Isa isa) {
  switch (isa) {
    case Isa::generic:
      return true;
    case Isa::avx2:
#ifdef FASTINV_HAVE_AVX2_KERNELS
      return true;
#else
      return false;
#endif
    case Isa::avx512:
#ifdef FASTINV_HAVE_AVX512_KERNELS
      return true;
#else
      return false;
#endif
  }
  return false;
}

std::mutex isa_mutex;
bool isa_initialised = false;
Isa current_isa = Isa::generic;

Isa initial_isa() {
  std::vector<Isa> available = available_isas();
  if (const char* env = std::getenv("FASTINV_ISA"); env && *env) {
    Isa wanted = isa_from_name(env);
    for (Isa isa : available)
      if (isa == wanted) return wanted;
    throw InvalidArgument(std::string("FASTINV_ISA=") + env + " is not available on this CPU/build; available: " +
                          isa_name(available.back()) + " and below");
  }
  return available.back();
}

}  // namespace

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::generic:
      return "generic";
    case Isa::avx2:
      return "avx2";
    case Isa::avx512:
      return "avx512";
  }
  return "unknown";
}

Isa isa_from_name(const std::string& name) {
  for (Isa isa : {Isa::generic, Isa::avx2, Isa::avx512})
    if (name == isa_name(isa)) return isa;
  throw InvalidArgument("unknown ISA '" + name + "'; expected generic, avx2 or avx512");
}

std::vector<Isa> available_isas() {
  std::vector<Isa> out;
  for (Isa isa : {Isa::generic, Isa::avx2, Isa::avx512})
    if (built_with(isa) && cpu_supports(isa)) out.push_back(isa);
  return out;
}

Isa active_isa() {
  std::lock_guard<std::mutex> lock(isa_mutex);
  if (!isa_initialised) {
    current_isa = initial_isa();
    isa_initialised = true;
  }
  return current_isa;
}

void set_active_isa(Isa isa) {
  for (Isa available : available_isas()) {
    if (available == isa) {
      std::lock_guard<std::mutex> lock(isa_mutex);
      current_isa = isa;
      isa_initialised = true;
      return;
    }
  }
  throw InvalidArgument(std::string("ISA '") + isa_name(isa) + "' is not available on this CPU or build");
}

int default_threads() {
#ifdef FASTINV_HAVE_OPENMP
  return std::min(omp_get_max_threads(), max_threads());
#else
  return 1;
#endif
}

int max_threads() {
  const unsigned hw = std::thread::hardware_concurrency();  // 0 when unknown
  return 4 * static_cast<int>(std::max(hw, 1u));
}

int resolve_threads(int threads, std::int64_t work_items, const char* who) {
  if (threads < 0)
    throw InvalidArgument(std::string(who) + ": threads must be >= 0 (0: the default), got " + std::to_string(threads));
  if (threads > max_threads())
    throw InvalidArgument(std::string(who) + ": threads = " + std::to_string(threads) + " is above the limit of " +
                          std::to_string(max_threads()) + " (4 x the " + std::to_string(max_threads() / 4) +
                          " hardware threads)");
  const int t = threads == 0 ? default_threads() : threads;
  return static_cast<int>(std::max<std::int64_t>(1, std::min<std::int64_t>(t, work_items)));
}

bool openmp_enabled() {
#ifdef FASTINV_HAVE_OPENMP
  return true;
#else
  return false;
#endif
}

bool cuda_compiled() {
#ifdef FASTINV_HAVE_CUDA
  return true;
#else
  return false;
#endif
}

int cuda_device_count() {
#ifdef FASTINV_HAVE_CUDA
  return cuda::device_count();
#else
  return 0;
#endif
}

double measure_fma_peak(Isa isa, int threads, double seconds) {
  if (threads < 1) throw InvalidArgument("measure_fma_peak: threads must be >= 1");
  resolve_threads(threads, threads, "measure_fma_peak");
  if (!(seconds > 0.0 && seconds <= 60.0)) throw InvalidArgument("measure_fma_peak: seconds must be in (0, 60]");
  return cpu::measure_fma_peak(isa, threads, seconds);
}

bool bf16_available() { return cpu::bf16_supported(); }

double measure_bf16_peak(int threads, double seconds) {
  if (threads < 1) throw InvalidArgument("measure_bf16_peak: threads must be >= 1");
  resolve_threads(threads, threads, "measure_bf16_peak");
  if (!(seconds > 0.0 && seconds <= 60.0)) throw InvalidArgument("measure_bf16_peak: seconds must be in (0, 60]");
  return cpu::measure_bf16_peak(threads, seconds);
}

}  // namespace fastinv
