// Row helpers compiled into each ISA's translation unit: vector code that the compiler
// emits with that unit's instructions. Internal linkage, so no unit ever calls
// another unit's copy (an inline function would be merged across ISAs by the linker).
#pragma once
#include <cstring>

#include "cpu/kernels.hpp"

namespace fastinv::cpu {
namespace {

// A row part in the unit's native vector width (Bytes: 64 AVX-512, 32 AVX2, 16
// portable); a 16-lane row is kTileWidth * 4 / Bytes parts. Native widths matter: a
// 64-byte vector on AVX2 left GCC spilling and comparing lane by lane.
template <int Bytes>
struct RowPart {
  typedef float V __attribute__((vector_size(Bytes)));
  static constexpr int kLanes = Bytes / int(sizeof(float));
  static V load(const float* p) {
    V v;
    std::memcpy(&v, p, sizeof(v));
    return v;
  }
};

// All outputs of a group at once, one native part of the row at a time: each input
// part is loaded once and the NIN-deep sums of different outputs interleave, so FMA
// latency is hidden.
template <int NIN, int Bytes>
inline bool mix_rows_fixed(const MixArgs& m) {
  using P = RowPart<Bytes>;
  using V = typename P::V;
  const V zero = V{} * 0.f;
  V probe = zero;  // becomes NaN when any sum is NaN or infinite (inf * 0)
  for (int64_t g = 0; g < m.groups; ++g) {
    const V start = zero + (m.bias ? m.bias[g] : 0.f);
    for (int64_t lane0 = g * kTileWidth; lane0 < (g + 1) * kTileWidth; lane0 += P::kLanes) {
      V acc[NIN];
#pragma GCC unroll 6
      for (int a = 0; a < NIN; ++a) acc[a] = start;
#pragma GCC unroll 6
      for (int i = 0; i < NIN; ++i) {
        const V x = P::load(m.in[i] + lane0);
#pragma GCC unroll 6
        for (int a = 0; a < NIN; ++a)
          if (a < m.nout) acc[a] += m.coef[a * NIN + i] * x;
      }
#pragma GCC unroll 6
      for (int a = 0; a < NIN; ++a) {
        if (a >= m.nout) continue;
        probe += acc[a] * 0.f;
        if (!m.out[a]) continue;
        V v = acc[a];
        if (m.leaky)  // slope 0 gives exactly 0 (ReLU), also for -inf
          v = v < zero ? (m.slope == 0.f ? zero : m.slope * v) : v;
        float* out = m.out[a] + lane0;
        if (m.max_into[a]) {  // NaN in either gives NaN (torch's max_pool1d)
          const V stored = P::load(out);
          v = (v > stored) | (v != v) ? v : stored;
        }
        std::memcpy(out, &v, sizeof(v));
      }
    }
  }
  for (int j = 0; j < P::kLanes; ++j)
    if (probe[j] != probe[j]) return false;
  return true;
}

// The Winograd transforms have 4 (k = 3) or 6 (k = 5) points; the plan builds no other.
template <int Bytes>
inline bool mix_rows_impl(const MixArgs& m) {
  return m.nin == 4 ? mix_rows_fixed<4, Bytes>(m) : mix_rows_fixed<6, Bytes>(m);
}

// Store one finished output row, or max it into the stored one (GemmArgs::max_into_out).
inline void store_row(float* out, const float* row, bool max_into_out) {
  for (int j = 0; j < kTileWidth; ++j) out[j] = !max_into_out || row[j] > out[j] || row[j] != row[j] ? row[j] : out[j];
}

}  // namespace
}  // namespace fastinv::cpu
