// DeepEM's noise propagation in bfloat16: the tangents of the six noise directions through the
// 300 x 300 layer on the engine's AMX-BF16 tiles (or AVX512-BF16's vdpbf16ps). The float32
// Jacobian (deepem_errors.cpp) costs 6 network passes of arithmetic; error bars need ~1 %
// accuracy, which bf16 operands with float32 sums give (measured in
// tests/dem/test_deepem_errors.py and docs/deepem-errors.md). The LeakyReLU slopes are those
// of the engine's own forward pass of the tile (its activations' signs), so no forward pass is
// recomputed here and no slope can differ from the network that was run.
#include <algorithm>
#include <cstring>

#include "dem/deepem_errors.hpp"

namespace fastinv::dem {
namespace {

constexpr int kW = cpu::kTileWidth;
constexpr int kDirs = kErrorDirections;

int64_t chunks(int64_t n) { return ((n + 1) / 2 + 15) / 16; }  // 16-pair chunks of n inputs
int64_t blocks(int64_t m) { return (m + 15) / 16; }            // 16-row blocks
// whole 16-pair chunks of the widest layer (the AMX kernel reads whole chunks)
constexpr int64_t kMaxPairs = (kMaxErrorHidden / 2 + 15) / 16 * 16;

void pack(const DeepEmErrorsBf16& p, const std::vector<float>& w, const float* bias, int64_t m, int64_t cin,
          std::vector<uint32_t>& a, std::vector<float>& b) {
  if (p.amx || p.kernels->tiles)
    cpu::pack_weights_bf16_tiles(w.data(), bias, m, 1, cin, a, b);
  else
    cpu::pack_weights_bf16(w.data(), bias, m, 1, cin, cpu::kMrAvx512, a, b);
}

// One [m x kp] x [kp x 16 lanes] product on the bf16 kernels, out[m][lane].
void gemm(const cpu::Bf16Kernels& k, const std::vector<uint32_t>& a, const std::vector<float>& bias, int64_t m,
          int64_t kp, const uint32_t* in, float* out) {
  cpu::GemmBf16Args g;
  g.m = m;
  g.kp = kp;
  g.a = a.data();
  g.bias = bias.data();
  g.in = in;
  g.out = out;
  g.out_stride = kW;
  k.gemm(g);
}

typedef float v16 __attribute__((vector_size(64)));
typedef uint32_t u16x __attribute__((vector_size(64)));

#ifdef __SANITIZE_THREAD__
#define FASTINV_ERRORS_BF16_CLONES
#else
#define FASTINV_ERRORS_BF16_CLONES __attribute__((target_clones("avx512f", "default")))
#endif

v16 load(const float* row) {
  v16 v;
  std::memcpy(&v, row, sizeof(v));
  return v;
}

// Two rows rounded to bf16 (nearest even; the tangents are finite) into one pair row, the
// even row in the low halves: what the kernels' to_pair_rows writes, without a float32 copy.
u16x pair_row(v16 even, v16 odd) {
  u16x e, o;
  std::memcpy(&e, &even, sizeof(e));
  std::memcpy(&o, &odd, sizeof(o));
  e = (e + 0x7fffu + ((e >> 16) & 1u)) >> 16;
  o = (o + 0x7fffu + ((o >> 16) & 1u)) & 0xffff0000u;
  return e | o;
}

// act'(pre) from the activation's sign (slope >= 0: act > 0 exactly where pre > 0).
v16 slope_of(const float* act_row, float slope) {
  const v16 zero = {};
  return load(act_row) > zero ? zero + 1.f : zero + slope;
}

// Layer 1's tangents as pair rows, t[c][k] = act1'(k) W1[k][c] s[c], and zero pair rows up to
// the chunk's end for the AMX kernel.
FASTINV_ERRORS_BF16_CLONES void layer1_pairs(const DeepEmErrorModel& m, const float* a1, const float (*s)[kW],
                                             u16x (*pairs)[kMaxPairs]) {
  v16 sv[kDirs];
  for (int c = 0; c < kDirs; ++c) sv[c] = load(s[c]);
  const v16 zero = {};
  const int64_t n = m.n_h1, kp = (n + 1) / 2;
  for (int64_t p = 0; p < kp; ++p) {
    const int64_t k0 = 2 * p, k1 = k0 + 1;
    const v16 d0 = slope_of(a1 + k0 * kW, m.slope1), d1 = k1 < n ? slope_of(a1 + k1 * kW, m.slope1) : zero;
    const float* w0 = m.w1.data() + k0 * kDirs;
    const float* w1 = k1 < n ? w0 + kDirs : w0;  // (times d1 = 0 past the layer)
    for (int c = 0; c < kDirs; ++c) pairs[c][p] = pair_row(d0 * w0[c] * sv[c], d1 * w1[c] * sv[c]);
  }
  const u16x none = {};
  for (int c = 0; c < kDirs; ++c)
    for (int64_t p = kp; p < chunks(n) * 16; ++p) pairs[c][p] = none;
}

// Layer 2's tangents t times its slopes, as pair rows (zero to the chunk's end).
FASTINV_ERRORS_BF16_CLONES void layer2_pairs(const DeepEmErrorModel& m, const float* a2,
                                             const v16 (*t)[kMaxErrorHidden], u16x (*pairs)[kMaxPairs]) {
  const v16 zero = {};
  const int64_t n = m.n_h2, kp = (n + 1) / 2;
  for (int64_t p = 0; p < kp; ++p) {
    const int64_t k0 = 2 * p, k1 = k0 + 1;
    const v16 d0 = slope_of(a2 + k0 * kW, m.slope2), d1 = k1 < n ? slope_of(a2 + k1 * kW, m.slope2) : zero;
    for (int c = 0; c < kDirs; ++c) pairs[c][p] = pair_row(d0 * t[c][k0], k1 < n ? d1 * t[c][k1] : zero);
  }
  const u16x none = {};
  for (int c = 0; c < kDirs; ++c)
    for (int64_t p = kp; p < chunks(n) * 16; ++p) pairs[c][p] = none;
}

}  // namespace

std::shared_ptr<const DeepEmErrorsBf16> pack_errors_bf16(const DeepEmErrorModel& m) {
  if (!cpu::bf16_supported()) return nullptr;
  auto p = std::make_shared<DeepEmErrorsBf16>();
  p->kernels = &cpu::bf16_kernels();
#ifdef FASTINV_HAVE_DEEPEM_ERRORS_AMX
  p->amx = p->kernels->tiles;
#endif
  const std::vector<float> zeros(size_t(std::max(m.n_h2, m.n_t)), 0.f);
  pack(*p, m.w2, zeros.data(), m.n_h2, m.n_h1, p->w2, p->zero2);
  pack(*p, m.w3, zeros.data(), m.n_t, m.n_h2, p->w3, p->zero3);
  return p;
}

void jacobian_bf16(const DeepEmErrorModel& m, const float* a1, const float* a2, const float (*s)[kW],
                   float (*jy)[64][kW]) noexcept {
  const DeepEmErrorsBf16& p = *m.bf16;
  const cpu::Bf16Kernels& k = *p.kernels;
  alignas(64) u16x pairs[kDirs][kMaxPairs];
  alignas(64) v16 t[kDirs][kMaxErrorHidden];  // layer 2's tangents before its slopes
  layer1_pairs(m, a1, s, pairs);
  constexpr int64_t kPairStride = kMaxPairs * kW, kHiddenStride = kMaxErrorHidden * kW;
  uint32_t* const in = reinterpret_cast<uint32_t*>(pairs[0]);
  const int64_t kp1 = (m.n_h1 + 1) / 2, kp2 = (m.n_h2 + 1) / 2;
  if (p.amx) {
    gemm_directions_amx(p.w2.data(), blocks(m.n_h2), chunks(m.n_h1), in, kPairStride, kDirs,
                        reinterpret_cast<float*>(t[0]), kHiddenStride);
  } else {
    for (int c = 0; c < kDirs; ++c)
      gemm(k, p.w2, p.zero2, m.n_h2, kp1, in + c * kPairStride, reinterpret_cast<float*>(t[c]));
  }
  layer2_pairs(m, a2, t, pairs);
  if (p.amx) {
    gemm_directions_amx(p.w3.data(), blocks(m.n_t), chunks(m.n_h2), in, kPairStride, kDirs, jy[0][0], 64 * kW);
  } else {
    for (int c = 0; c < kDirs; ++c) gemm(k, p.w3, p.zero3, m.n_t, kp2, in + c * kPairStride, jy[c][0]);
  }
}

}  // namespace fastinv::dem
