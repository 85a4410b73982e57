// DeepEM's noise propagation in bfloat16: the tangents of the six noise directions through the
// 300 x 300 layer on the engine's AMX-BF16 tiles (or AVX512-BF16's vdpbf16ps). The float32
// Jacobian (deepem_errors.cpp) costs 6 network passes of arithmetic; error bars need ~1 %
// accuracy, which bf16 operands with float32 sums give (measured in
// tests/dem/test_deepem_errors.py and docs/deepem-errors.md). The LeakyReLU slopes are those
// of the engine's own forward pass of the tile (its activations' signs), so no forward pass is
// recomputed here and no slope can differ from the network that was run.
#include <algorithm>

#include "dem/deepem_errors.hpp"

namespace fastinv::dem {
namespace {

constexpr int kW = cpu::kTileWidth;
constexpr int kDirs = kErrorDirections;

#ifdef FASTINV_HAVE_DEEPEM_ERRORS_BF16

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
#endif

}  // namespace

// Without the AVX512-BF16 tangents (deepem_errors_pairs.cpp) the build has no bf16 kernels
// either: pack_errors_bf16 gives null and jacobian_bf16 never runs.
std::shared_ptr<const DeepEmErrorsBf16> pack_errors_bf16(const DeepEmErrorModel& m) {
#ifdef FASTINV_HAVE_DEEPEM_ERRORS_BF16
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
#else
  (void)m;
  return nullptr;
#endif
}

void jacobian_bf16(const DeepEmErrorModel& m, const float* a1, const float* a2, const float (*s)[kW],
                   float (*jy)[64][kW]) noexcept {
#ifdef FASTINV_HAVE_DEEPEM_ERRORS_BF16
  const DeepEmErrorsBf16& p = *m.bf16;
  const cpu::Bf16Kernels& k = *p.kernels;
  alignas(64) uint32_t pairs[2][kDirs][kMaxPairs][kW];  // layer 1's tangents, layer 2's
  constexpr int64_t kPairStride = kMaxPairs * kW, kHiddenStride = kMaxErrorHidden * kW;
  layer1_pairs(m, a1, s, pairs[0][0][0], kPairStride);
  const int64_t kp1 = (m.n_h1 + 1) / 2, kp2 = (m.n_h2 + 1) / 2;
  if (p.amx) {  // layer 2's slopes applied per block while it is in L1
    gemm_directions_amx_pairs(p.w2.data(), blocks(m.n_h2), chunks(m.n_h1), pairs[0][0][0], kPairStride, kDirs, a2,
                              m.n_h2, m.slope2, pairs[1][0][0], kPairStride);
    for (int c = 0; c < kDirs; ++c) {  // the AMX kernel reads whole chunks
      uint32_t* rows = pairs[1][c][0];
      std::fill(rows + blocks(m.n_h2) * 8 * kW, rows + chunks(m.n_h2) * 16 * kW, 0u);
    }
  } else {
    alignas(64) float t[kDirs][kMaxErrorHidden][kW];  // layer 2's tangents before its slopes
    for (int c = 0; c < kDirs; ++c) gemm(k, p.w2, p.zero2, m.n_h2, kp1, pairs[0][c][0], t[c][0]);
    layer2_pairs(m, a2, t[0][0], kHiddenStride, pairs[1][0][0], kPairStride);
  }
  if (p.amx) {
    gemm_directions_amx(p.w3.data(), blocks(m.n_t), chunks(m.n_h2), pairs[1][0][0], kPairStride, kDirs, jy[0][0],
                        64 * kW);
  } else {
    for (int c = 0; c < kDirs; ++c) gemm(k, p.w3, p.zero3, m.n_t, kp2, pairs[1][c][0], jy[c][0]);
  }
#else
  (void)m, (void)a1, (void)a2, (void)s, (void)jy;
#endif
}

}  // namespace fastinv::dem
