// The bfloat16 microkernel interface (precision="bf16" on the CPU): the float32 GEMM of
// kernels.hpp with its operands rounded to bfloat16 and its products summed in float32
// by AVX512-BF16's vdpbf16ps, which multiplies two bf16 pairs per float32 lane.
//
// A pair is one 32-bit word: the even element of a reduction index pair in the low
// half, the odd one in the high half. Weights are packed once at load as
// [ceil(m/mr)][kp][mr] pairs; a layer's input rows are rounded (round-to-nearest-even)
// into "pair rows" when the layer starts: for position l and channel pair p, kTileWidth
// words holding channels 2p and 2p + 1 of each lane (an odd channel count pairs its last
// channel with 0). Everything else -- bias, epilogue, pools -- stays float32.
//
// precision="bf16x2" gives each weight two bf16 terms, hi = bf16(w) and lo = bf16(w - hi)
// (16 mantissa bits; the inputs stay one bf16 term): every pair row is multiplied by both,
// the two products summed into the same float32 accumulator. bf16 weights alone move
// DeepEM's per-bin EM by up to 9 %; two terms by < 1 % (bench/bf16_deepem_layers.py).
#pragma once
#include <cstdint>
#include <cstring>
#include <vector>

#include "cpu/kernels.hpp"

namespace fastinv::cpu {

struct GemmBf16Args {
  int64_t m = 0;                     // output rows
  int64_t kp = 0;                    // reduction length in pairs
  const uint32_t* a = nullptr;       // packed weight pairs [ceil(m/mr)][kp][mr]
  const float* bias = nullptr;       // [ceil(m/mr) * mr]
  const uint32_t* in = nullptr;      // pair rows the offsets index into
  const int32_t* offsets = nullptr;  // kp pair-row offsets (words); nullptr = rows 0..kp-1 contiguous
  float* out = nullptr;
  int64_t out_stride = 0;
  bool leaky = false;  // epilogue, max-pool and accumulate exactly as GemmArgs
  float slope = 0.f;
  bool max_into_out = false;
  bool accumulate = false;
  int terms = 1;  // 2: `a` holds each weight pair as hi and lo terms (pack_weights_bf16*'s terms)
  // Optional second pixel tile through the same weights and offsets (the AMX kernel loads
  // each weight tile once for both; the others run the two in turn). Each tile's sums are
  // the same as alone.
  const uint32_t* in2 = nullptr;
  float* out2 = nullptr;
};

// Whether this build has the bf16 kernels and this CPU runs them (AVX-512 F/BW/DQ/VL and BF16).
bool bf16_supported();

struct Bf16Kernels {
  const char* name;  // "amx_bf16" or "avx512_bf16"
  // true: weights packed by pack_weights_bf16_tiles (AMX), else by pack_weights_bf16
  bool tiles;
  void (*gemm)(const GemmBf16Args& args);
  void (*to_pair_rows)(const float* in, int64_t positions, int64_t channels, uint32_t* out);
};
// The bf16 kernels: AMX-BF16 tiles where the CPU and OS allow them (the environment
// variable FASTINV_BF16_KERNELS=avx512 picks vdpbf16ps instead), else AVX512-BF16's
// vdpbf16ps; throws fastinv::Error naming the missing CPU feature or build option.
const Bf16Kernels& bf16_kernels();

// Whether the AMX-BF16 kernel can run: built, CPU has AMX-TILE and AMX-BF16, and Linux
// granted this process the tile data state (asked once).
bool amx_usable();
// The AMX entry point (kernels_amx_bf16.cpp): m padded to blocks of 16 rows, kp in
// chunks of 16 pairs.
void gemm_amx_bf16(const GemmBf16Args& args);
// Independent TDPBF16PS chains (the AMX-BF16 peak); returns the FLOPs.
double tile_loop_amx_bf16(int64_t iterations, float* sink);

// The AVX512-BF16 entry points (kernels_avx512_bf16.cpp); call only when bf16_supported().
void gemm_avx512_bf16(const GemmBf16Args& args);
// Round `rows` float rows (position-major, `channels` per position, `positions` positions)
// into pair rows, followed by one zero pair row (what padding taps read).
void to_pair_rows_avx512_bf16(const float* in, int64_t positions, int64_t channels, uint32_t* out);
// Independent vdpbf16ps chains (the bf16 peak); returns the FLOPs (2 per multiply-add).
double dp_loop_avx512_bf16(int64_t iterations, float* sink);

// Float32 to bf16 bits, round-to-nearest-even (what vcvtne2ps2bf16 does for normal
// numbers); NaN stays a quiet NaN.
inline uint16_t bf16_bits(float x) {
  uint32_t u;
  std::memcpy(&u, &x, sizeof(u));
  if ((u & 0x7fffffffu) > 0x7f800000u) return uint16_t((u >> 16) | 0x40u);
  return uint16_t((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

// Pack a tap-major [m][taps][cin] weight array into [m/mr][taps * ceil(cin/2)][terms][mr]
// bf16 pairs (channel pairs within a tap, as the pair rows hold them; terms 2: hi then lo)
// and the bias into float32 [m/mr * mr], zero-padding m and an odd cin.
void pack_weights_bf16(const float* w, const float* bias, int64_t m, int64_t taps, int64_t cin, int mr,
                       std::vector<uint32_t>& a, std::vector<float>& b, int terms = 1);

// The same pairs for the AMX kernel: [ceil(m/16)][ceil(kp/16)][terms][16 rows][16 pairs].
void pack_weights_bf16_tiles(const float* w, const float* bias, int64_t m, int64_t taps, int64_t cin,
                             std::vector<uint32_t>& a, std::vector<float>& b, int terms = 1);

// Measured peak of the bf16 kernels in use (bf16_kernels(): TDPBF16PS or vdpbf16ps) in
// GFLOP/s over `threads` threads.
double measure_bf16_peak(int threads, double seconds);

}  // namespace fastinv::cpu
