#include "host/pack.hpp"

#include <cmath>
#include <cstring>

#include "fastinv/error.hpp"

namespace fastinv::cuda {

Precision precision_from_name(const std::string& name) {
  if (name == "fp32") return Precision::fp32;
  if (name == "tf32") return Precision::tf32;
  if (name == "bf16") return Precision::bf16;
  throw InvalidArgument("unknown precision '" + name +
                        "'; expected 'fp32' (exact float32, the default), 'tf32' or 'bf16' (tensor cores)");
}

const char* precision_name(Precision p) {
  switch (p) {
    case Precision::fp32:
      return "fp32";
    case Precision::tf32:
      return "tf32";
    case Precision::bf16:
      return "bf16";
  }
  return "unknown";
}

uint16_t bf16_bits(float x) {
  uint32_t u;
  std::memcpy(&u, &x, 4);
  if (std::isnan(x)) return uint16_t((u >> 16) | 0x0040u);  // keep sign, force quiet
  u += 0x7FFFu + ((u >> 16) & 1u);                          // round to nearest even
  return uint16_t(u >> 16);
}

float bf16_value(uint16_t bits) {
  const uint32_t u = uint32_t(bits) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

float tf32_round(float x) {
  if (!std::isfinite(x)) return x;
  uint32_t u;
  std::memcpy(&u, &x, 4);
  u = (u + 0x1000u) & 0xFFFFE000u;  // ties away from zero on the magnitude bits
  float r;
  std::memcpy(&r, &u, 4);
  return r;
}

std::vector<uint32_t> pack_fused_weights(const float* w, int64_t m, int64_t k, Precision p) {
  if (m <= 0 || k <= 0 || !w) throw InvalidArgument("pack_fused_weights: empty weight matrix");
  const int64_t mpad = round_up(m, kChunkRows), kpad = round_up(k, kChunkDepth);
  const int64_t nkc = kpad / kChunkDepth;
  auto at = [&](int64_t r, int64_t c) { return r < m && c < k ? w[r * k + c] : 0.f; };
  auto bits = [](float f) {
    uint32_t u;
    std::memcpy(&u, &f, 4);
    return u;
  };
  std::vector<uint32_t> out(size_t(mpad / kChunkRows * nkc * chunk_words(p)), 0u);
  for (int64_t mc = 0; mc < mpad / kChunkRows; ++mc)
    for (int64_t kc = 0; kc < nkc; ++kc) {
      uint32_t* chunk = out.data() + (mc * nkc + kc) * chunk_words(p);
      const int64_t r0 = mc * kChunkRows, c0 = kc * kChunkDepth;
      if (p == Precision::fp32) {
        for (int64_t d = 0; d < kChunkDepth; ++d)
          for (int64_t r = 0; r < kChunkRows; ++r) chunk[d * kChunkRows + r] = bits(at(r0 + r, c0 + d));
      } else if (p == Precision::tf32) {
        for (int mt = 0; mt < 4; ++mt)
          for (int kt = 0; kt < 4; ++kt)
            for (int lane = 0; lane < 32; ++lane) {
              const int g = lane >> 2, t = lane & 3;
              const int64_t r = r0 + mt * 16 + g, c = c0 + kt * 8 + t;
              uint32_t* f = chunk + ((mt * 4 + kt) * 32 + lane) * 4;
              f[0] = bits(tf32_round(at(r, c)));
              f[1] = bits(tf32_round(at(r + 8, c)));
              f[2] = bits(tf32_round(at(r, c + 4)));
              f[3] = bits(tf32_round(at(r + 8, c + 4)));
            }
      } else {
        auto pair = [&](int64_t r, int64_t c) {
          return uint32_t(bf16_bits(at(r, c))) | (uint32_t(bf16_bits(at(r, c + 1))) << 16);
        };
        for (int mt = 0; mt < 4; ++mt)
          for (int kt = 0; kt < 2; ++kt)
            for (int lane = 0; lane < 32; ++lane) {
              const int g = lane >> 2, t = lane & 3;
              const int64_t r = r0 + mt * 16 + g, c = c0 + kt * 16 + 2 * t;
              uint32_t* f = chunk + ((mt * 2 + kt) * 32 + lane) * 4;
              f[0] = pair(r, c);
              f[1] = pair(r + 8, c);
              f[2] = pair(r, c + 8);
              f[3] = pair(r + 8, c + 8);
            }
      }
    }
  return out;
}

int64_t fused_smem_bytes(Precision p, int tile, int rows, FusedKernel kernel) {
  const int64_t buf_words = int64_t(p == Precision::bf16 ? rows / 2 : rows) * (tile + 8);
  const int stages = kernel == FusedKernel::pipeline && p != Precision::fp32 ? kFusedStages : 2;
  return 4 * (2 * buf_words + stages * chunk_words(p));
}

int fused_pick_tile(Precision p, int rows, int64_t smem_optin, FusedKernel kernel) {
  for (int tile : {128, 64, 32})
    if (fused_smem_bytes(p, tile, rows, kernel) <= smem_optin) return tile;
  return 0;
}

int fused_threads(Precision p, int tile, FusedKernel kernel) {
  return kernel == FusedKernel::pipeline && p != Precision::fp32 ? tile : 256;
}

}  // namespace fastinv::cuda
