// The CPU microkernel interface. Activations live in "tiles": kTileWidth samples
// side by side, one row of kTileWidth floats per (position, channel) -- row l*C + c,
// position-major, so a convolution window and a convolution output are contiguous
// blocks of rows -- so SIMD lanes run over samples and every layer is the same
// register-blocked GEMM:
//
//   out[m][lane] = act(bias[m] + sum_k A[m][k] * row_k[lane])
//
// where row_k is an input row found through a table of offsets (the im2col of a 1D
// convolution costs nothing: padding rows point at a zero row). Each ISA has its own
// translation unit compiled for that ISA only, chosen at run time.
#pragma once
#include <cstdint>
#include <vector>

#include "fastinv/runtime.hpp"

namespace fastinv::cpu {

constexpr int kTileWidth = 16;  // samples per tile (lanes)

struct GemmArgs {
  int64_t m = 0;                     // output rows (channels)
  int64_t k = 0;                     // reduction length (cin * kernel)
  const float* a = nullptr;          // packed weights [ceil(m/mr)][k][mr]
  const float* bias = nullptr;       // [ceil(m/mr) * mr]
  const float* in = nullptr;         // tile buffer the offsets index into
  const int32_t* offsets = nullptr;  // k row offsets (floats) into `in`; nullptr = rows 0..k-1 contiguous
  float* out = nullptr;              // output row 0
  int64_t out_stride = 0;            // floats between consecutive output rows
  // Fused epilogue: v < 0 ? slope * v : v, with slope 0 giving exactly 0 (ReLU, also
  // for -inf). NaN is never < 0, so it passes through untouched.
  bool leaky = false;
  float slope = 0.f;
  // A fused max-pool's later window positions: out = max(out, result) after the
  // epilogue, NaN in either giving NaN (torch's max_pool1d).
  bool max_into_out = false;
  // Continue sums already in `out` (a later chunk of k) instead of starting from bias.
  bool accumulate = false;
};

// Small fixed linear maps between rows (Winograd transforms), n = nin = 4 or 6 inputs:
//   out[a] = epilogue(bias + sum_i coef[a][i] * in[i]),  a < nout <= nin
// for `groups` independent groups: group g reads row in[i] + g * kTileWidth and writes
// row out[a] + g * kTileWidth (out[a] null: output a is not needed), storing it or,
// with max_into[a], maxing it into what is there as GemmArgs::max_into_out does.
// Returns false when any sum was NaN or infinite.
constexpr int kMaxMixRows = 6;

struct MixArgs {
  int nout = 0, nin = 0;
  const float* coef = nullptr;  // [nout][nin]
  const float* in[kMaxMixRows] = {};
  float* out[kMaxMixRows] = {};
  bool max_into[kMaxMixRows] = {};
  int64_t groups = 0;
  const float* bias = nullptr;  // [groups] or nullptr
  bool leaky = false;           // as GemmArgs
  float slope = 0.f;
};

struct Kernels {
  Isa isa;
  int mr;  // rows per register block
  void (*gemm)(const GemmArgs& args);
  bool (*mix_rows)(const MixArgs& args);
  // Independent FMA chains, enough to fill every FMA pipe: the hardware limit the
  // benchmarks report against. Returns the FLOPs performed (sink defeats dead-code
  // elimination).
  double (*fma_loop)(int64_t iterations, float* sink);
};

// Measured single-precision FMA peak of this machine with the given ISA's
// instructions, in GFLOP/s summed over `threads` threads.
double measure_fma_peak(Isa isa, int threads, double seconds);
// The same measurement for any loop of independent chains (fma_loop's contract).
double measure_loop_peak(double (*loop)(int64_t iterations, float* sink), int threads, double seconds);

const Kernels& kernels_for(Isa isa);

// Pack a [m][k] row-major weight matrix (and bias) into the [m/mr][k][mr] panel
// order the microkernel streams, zero-padding m up to a multiple of mr.
void pack_weights(const float* w, const float* bias, int64_t m, int64_t k, int mr, std::vector<float>& a,
                  std::vector<float>& b);

// Per-ISA entry points (defined in kernels_<isa>.cpp).
void gemm_generic(const GemmArgs& args);
void gemm_avx2(const GemmArgs& args);
void gemm_avx512(const GemmArgs& args);
bool mix_rows_generic(const MixArgs& args);
bool mix_rows_avx2(const MixArgs& args);
bool mix_rows_avx512(const MixArgs& args);
double fma_loop_generic(int64_t iterations, float* sink);
double fma_loop_avx2(int64_t iterations, float* sink);
double fma_loop_avx512(int64_t iterations, float* sink);
constexpr int kMrGeneric = 3;
constexpr int kMrAvx2 = 6;
constexpr int kMrAvx512 = 16;

}  // namespace fastinv::cpu
