// Run-time facts about the machine and the build: which SIMD kernels are in use,
// how many threads, whether the CUDA backend was compiled.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace fastinv {

enum class Isa { generic, avx2, avx512 };

const char* isa_name(Isa isa);
Isa isa_from_name(const std::string& name);  // throws InvalidArgument

// ISAs this build has kernels for AND this CPU can run, best last.
std::vector<Isa> available_isas();

// The ISA the CPU kernels use. Defaults to the best available one; the environment
// variable FASTINV_ISA=generic|avx2|avx512 or set_active_isa() can lower it.
Isa active_isa();
void set_active_isa(Isa isa);  // throws InvalidArgument if not available

// Threads used when a call passes threads = 0: OpenMP's default (OMP_NUM_THREADS), capped at
// max_threads().
int default_threads();

// The most threads any call accepts: 4 x the hardware threads. More is a mistake, not a
// tuning choice (libgomp fails or crashes creating tens of thousands of threads).
int max_threads();

// The threads a parallel loop over `work_items` items runs on for a call's `threads`
// argument: 0 -> default_threads(), 1..max_threads() as given, and never more than
// work_items (at least 1). Throws InvalidArgument naming `who` and the limit for a negative
// count or one above max_threads().
int resolve_threads(int threads, std::int64_t work_items, const char* who);
bool openmp_enabled();

// True when the CUDA backend was compiled into this build.
bool cuda_compiled();

// Usable CUDA devices; 0 without the CUDA backend, a driver or a device.
int cuda_device_count();

// Measured float32 FMA rate in GFLOP/s with `isa`'s instructions on `threads` threads for
// about `seconds` (the hardware limit the benchmarks report fractions of).
double measure_fma_peak(Isa isa, int threads = 1, double seconds = 0.5);

// Whether precision="bf16" can run on this CPU: the build has the AVX512-BF16 kernels and
// the CPU has AVX512-BF16 (vdpbf16ps).
bool bf16_available();

// Measured bf16 dot-product rate (vdpbf16ps, 2 FLOPs per multiply-add) in GFLOP/s, as
// measure_fma_peak; throws fastinv::Error where bf16_available() is false.
double measure_bf16_peak(int threads = 1, double seconds = 0.5);

}  // namespace fastinv
