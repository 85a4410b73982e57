// DeepEM's noise propagation in bfloat16: the tangent of the six noise directions and the
// forward pass that decides the LeakyReLU slopes, through the 300 x 300 layer on the engine's
// AMX-BF16 tiles (or AVX512-BF16's vdpbf16ps). The float32 Jacobian (deepem_errors.cpp) costs
// 6.5 network passes of arithmetic; error bars need ~1 % accuracy, which bf16 operands with
// float32 sums give (measured in tests/dem/test_deepem_errors.py and docs/deepem-errors.md).
#include <algorithm>
#include <cstring>

#include "dem/deepem_errors.hpp"

namespace fastinv::dem {
namespace {

constexpr int kW = cpu::kTileWidth;
constexpr int kDirs = kErrorDirections;
// whole 16-pair chunks, and the zero pair row to_pair_rows appends
constexpr int64_t kMaxPairs = kMaxErrorHidden / 2 + 16;

int64_t chunks(int64_t n) { return ((n + 1) / 2 + 15) / 16; }  // 16-pair chunks of n inputs
int64_t blocks(int64_t m) { return (m + 15) / 16; }            // 16-row blocks

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

#ifdef __SANITIZE_THREAD__
#define FASTINV_ERRORS_BF16_CLONES
#else
#define FASTINV_ERRORS_BF16_CLONES __attribute__((target_clones("avx512f", "default")))
#endif
typedef uint32_t u16x __attribute__((vector_size(64)));

// Layer 1's activation split into a bfloat16 head and the float32 rest (h[0], h[1]: the
// forward pass through layer 2 is Whi.head + Whi.rest + Wlo.head, ~2^-16 relative, so its
// signs, which pick the LeakyReLU slopes, agree with float32's but where float32's are
// themselves a rounding away from the kink), and the scaled input directions through it,
// h[2 + c][k] = act1'(k) W1[k][c] s[c].
FASTINV_ERRORS_BF16_CLONES void layer1(const DeepEmErrorModel& m, const float (*x)[kW], const float (*s)[kW],
                                       v16 (*h)[kMaxErrorHidden]) {
  v16 xv[kDirs], sv[kDirs];
  for (int c = 0; c < kDirs; ++c) {
    std::memcpy(&xv[c], x[c], sizeof(v16));
    std::memcpy(&sv[c], s[c], sizeof(v16));
  }
  const v16 zero = {}, one = zero + 1.f, slope = zero + m.slope1;
  for (int64_t k = 0; k < m.n_h1; ++k) {
    const float* w = m.w1.data() + k * kDirs;
    v16 pre = zero + m.b1[size_t(k)];
    for (int c = 0; c < kDirs; ++c) pre += w[c] * xv[c];
    const v16 d = pre > zero ? one : slope;
    const v16 act = d * pre;
    u16x u;
    std::memcpy(&u, &act, sizeof(u));
    u = (u + 0x7fffu + ((u >> 16) & 1u)) & 0xffff0000u;  // round to nearest even (finite values)
    v16 head;
    std::memcpy(&head, &u, sizeof(u));
    h[0][k] = head;
    h[1][k] = act - head;
    for (int c = 0; c < kDirs; ++c) h[2 + c][k] = d * w[c] * sv[c];
  }
}

// Layer 2's slopes applied to its six tangents t, in place: t[c][i] *= act2'(pre[i]), the
// pre-activation summed from its three parts and the bias.
FASTINV_ERRORS_BF16_CLONES void slopes2(const DeepEmErrorModel& m, const v16* head, const v16* rest, const v16* low,
                                        v16 (*t)[kMaxErrorHidden]) {
  const v16 zero = {}, one = zero + 1.f, slope = zero + m.slope2;
  for (int64_t i = 0; i < m.n_h2; ++i) {
    const v16 pre = head[i] + rest[i] + low[i] + m.b2[size_t(i)];
    const v16 d = pre > zero ? one : slope;
    for (int c = 0; c < kDirs; ++c) t[c][i] *= d;
  }
}

}  // namespace

std::shared_ptr<const DeepEmErrorsBf16> pack_errors_bf16(const DeepEmErrorModel& m) {
  if (!cpu::bf16_supported()) return nullptr;
  auto p = std::make_shared<DeepEmErrorsBf16>();
  p->kernels = &cpu::bf16_kernels();
#ifdef FASTINV_HAVE_DEEPEM_ERRORS_AMX
  p->amx = p->kernels->tiles;
#endif
  std::vector<float> low(m.w2.size());  // W2 - bf16(W2)
  for (size_t i = 0; i < low.size(); ++i) {
    const uint32_t u = uint32_t(cpu::bf16_bits(m.w2[i])) << 16;
    float head;
    std::memcpy(&head, &u, sizeof(head));
    low[i] = m.w2[i] - head;
  }
  const std::vector<float> zeros(size_t(std::max(m.n_h2, m.n_t)), 0.f);
  pack(*p, m.w2, zeros.data(), m.n_h2, m.n_h1, p->w2, p->zero2);
  pack(*p, low, zeros.data(), m.n_h2, m.n_h1, p->w2_low, p->zero2);
  pack(*p, m.w3, zeros.data(), m.n_t, m.n_h2, p->w3, p->zero3);
  return p;
}

void jacobian_bf16(const DeepEmErrorModel& m, const float (*x)[kW], const float (*s)[kW],
                   float (*jy)[kDirs][kW]) noexcept {
  const DeepEmErrorsBf16& p = *m.bf16;
  const cpu::Bf16Kernels& k = *p.kernels;
  constexpr int kIn = 2 + kDirs;                // head, rest, the six tangents
  alignas(64) v16 h[kIn + 1][kMaxErrorHidden];  // layer 1's, then layer 2's outputs (+ Wlo.head)
  alignas(64) uint32_t pairs[kIn][kMaxPairs][kW];
  layer1(m, x, s, h);
  const int64_t kp1 = (m.n_h1 + 1) / 2, kp2 = (m.n_h2 + 1) / 2;
  if (p.amx) {  // the AMX kernel reads whole chunks: zero past the layers' pairs
    const int64_t from = std::min(kp1, kp2);
    for (int r = 0; r < kIn; ++r) std::memset(pairs[r][from], 0, size_t(kMaxPairs - from) * sizeof(pairs[r][0]));
  }
  for (int r = 0; r < kIn; ++r) k.to_pair_rows(reinterpret_cast<const float*>(h[r]), 1, m.n_h1, pairs[r][0]);
  constexpr int64_t kPairStride = kMaxPairs * kW, kHiddenStride = kMaxErrorHidden * kW;
  float* const low = reinterpret_cast<float*>(h[kIn]);
  if (p.amx) {
    gemm_directions_amx(p.w2.data(), blocks(m.n_h2), chunks(m.n_h1), pairs[0][0], kPairStride, kIn,
                        reinterpret_cast<float*>(h[0]), kHiddenStride);
    gemm_directions_amx(p.w2_low.data(), blocks(m.n_h2), chunks(m.n_h1), pairs[0][0], kPairStride, 1, low,
                        kHiddenStride);
  } else {
    for (int r = 0; r < kIn; ++r) gemm(k, p.w2, p.zero2, m.n_h2, kp1, pairs[r][0], reinterpret_cast<float*>(h[r]));
    gemm(k, p.w2_low, p.zero2, m.n_h2, kp1, pairs[0][0], low);
  }
  slopes2(m, h[0], h[1], h[kIn], h + 2);
  for (int c = 0; c < kDirs; ++c) k.to_pair_rows(reinterpret_cast<const float*>(h[2 + c]), 1, m.n_h2, pairs[c][0]);
  alignas(64) float out[kDirs][64][kW];  // n_t <= 64
  if (p.amx) {
    gemm_directions_amx(p.w3.data(), blocks(m.n_t), chunks(m.n_h2), pairs[0][0], kPairStride, kDirs, out[0][0],
                        64 * kW);
  } else {
    for (int c = 0; c < kDirs; ++c) gemm(k, p.w3, p.zero3, m.n_t, kp2, pairs[c][0], out[c][0]);
  }
  for (int64_t t = 0; t < m.n_t; ++t)
    for (int c = 0; c < kDirs; ++c) std::memcpy(jy[t][c], out[c][t], sizeof(out[c][t]));
}

}  // namespace fastinv::dem
