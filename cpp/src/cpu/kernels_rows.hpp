// Row helpers compiled into each ISA's translation unit: 16-lane vector code that the
// compiler emits with that unit's instructions. Internal linkage, so no unit ever calls
// another unit's copy (an inline function would be merged across ISAs by the linker).
#pragma once
#include <cstring>

#include "cpu/kernels.hpp"

namespace fastinv::cpu {
namespace {

// One 16-lane row as a GCC/Clang vector: one zmm, two ymm or four xmm registers as the
// unit's ISA allows (plain loops over float[16] were left scalar by GCC).
typedef float Row __attribute__((vector_size(kTileWidth * sizeof(float))));

inline Row load_row(const float* p) {
  Row r;
  std::memcpy(&r, p, sizeof(r));
  return r;
}

// All outputs of a group at once: each input row is loaded once and the NIN-deep sums
// of different outputs interleave, so FMA latency is hidden.
template <int NIN>
inline bool mix_rows_fixed(const MixArgs& m) {
  const Row zero = Row{} * 0.f;
  Row probe = zero;  // becomes NaN when any sum is NaN or infinite (inf * 0)
  for (int64_t g = 0; g < m.groups; ++g) {
    const int64_t lane0 = g * kTileWidth;
    const Row start = zero + (m.bias ? m.bias[g] : 0.f);
    Row acc[NIN];
#pragma GCC unroll 6
    for (int a = 0; a < NIN; ++a) acc[a] = start;
#pragma GCC unroll 6
    for (int i = 0; i < NIN; ++i) {
      const Row x = load_row(m.in[i] + lane0);
#pragma GCC unroll 6
      for (int a = 0; a < NIN; ++a)
        if (a < m.nout) acc[a] += m.coef[a * NIN + i] * x;
    }
#pragma GCC unroll 6
    for (int a = 0; a < NIN; ++a) {
      if (a >= m.nout) continue;
      probe += acc[a] * 0.f;
      if (!m.out[a]) continue;
      Row v = acc[a];
      if (m.leaky)  // slope 0 gives exactly 0 (ReLU), also for -inf
        v = v < zero ? (m.slope == 0.f ? zero : m.slope * v) : v;
      float* out = m.out[a] + lane0;
      if (m.max_into[a]) {  // NaN in either gives NaN (torch's max_pool1d)
        const Row stored = load_row(out);
        v = (v > stored) | (v != v) ? v : stored;
      }
      std::memcpy(out, &v, sizeof(v));
    }
  }
  for (int j = 0; j < kTileWidth; ++j)
    if (probe[j] != probe[j]) return false;
  return true;
}

// The Winograd transforms have 4 (k = 3) or 6 (k = 5) points; the plan builds no other.
inline bool mix_rows_impl(const MixArgs& m) { return m.nin == 4 ? mix_rows_fixed<4>(m) : mix_rows_fixed<6>(m); }

// Store one finished output row, or max it into the stored one (GemmArgs::max_into_out).
inline void store_row(float* out, const float* row, bool max_into_out) {
  for (int j = 0; j < kTileWidth; ++j)
    out[j] = !max_into_out || row[j] > out[j] || row[j] != row[j] ? row[j] : out[j];
}

}  // namespace
}  // namespace fastinv::cpu
