// Run-time facts about the machine and the build: which SIMD kernels are in use,
// how many threads, whether the CUDA backend was compiled.
#pragma once
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

// Threads used when a call passes threads <= 0 (OpenMP's default, i.e. OMP_NUM_THREADS).
int default_threads();
bool openmp_enabled();

// True when the CUDA backend was compiled into this build.
bool cuda_compiled();

// Usable CUDA devices; 0 without the CUDA backend, a driver or a device.
int cuda_device_count();

// Measured float32 FMA rate in GFLOP/s with `isa`'s instructions on `threads` threads for
// about `seconds` (the hardware limit the benchmarks report fractions of).
double measure_fma_peak(Isa isa, int threads = 1, double seconds = 0.5);

}  // namespace fastinv
