// DeepEM's float32 Jacobian from reference patterns of LeakyReLU slopes. The Jacobian is
// J = W3 D2 W2 D1 W1 with D1, D2 the pixel's slopes (1 or the negative slope). Splitting each
// D = B + E at the slopes B of a reference input (the card's errors.reference_inputs, each run
// through the network once at load), E is nonzero only at the units whose slope differs from
// the reference's, and
//     J = P + sum_{j in E1} e1_j Q[:, j] W1[j, :]
//           + sum_{i in E2} e2_i W3[:, i] (R[i, :] + sum_{j in E1} e1_j W2[i, j] W1[j, :])
// with P = W3 B2 W2 B1 W1, Q = W3 B2 W2 and R = W2 B1 W1 formed once per reference in float64.
// Exact (no term dropped) for any reference; each pixel takes the reference that needs the
// fewest multiply-adds (its pattern against each reference's: popcounts), which sets only the
// cost and the float32 rounding. Each pixel's sums run over its units in increasing order,
// independent of its neighbours in the tile: bitwise identical for any tiling or thread count.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "dem/deepem_errors.hpp"

namespace fastinv::dem {
namespace {

constexpr int kW = cpu::kTileWidth;
constexpr int kDirs = kErrorDirections;
constexpr int kRow = 8;  // R's rows padded to 8 floats

typedef float v16 __attribute__((vector_size(64)));
typedef float v8 __attribute__((vector_size(32)));
typedef int32_t i16 __attribute__((vector_size(64)));
typedef int32_t i8 __attribute__((vector_size(32)));
typedef int32_t i4 __attribute__((vector_size(16)));

#ifdef __SANITIZE_THREAD__
#define FASTINV_DELTA_CLONES
#else
#define FASTINV_DELTA_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#endif

inline v16 load(const float* p) {
  v16 v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}

inline v8 load8(const float* p) {
  v8 v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}

// LeakyReLU forward in float64 (a reference's pattern; exact ties are "inactive", as the
// engine's act > 0 test), the active units as bits.
std::vector<double> leaky(const std::vector<double>& pre, double slope, uint64_t* on) {
  std::vector<double> out(pre.size());
  for (size_t k = 0; k < pre.size(); ++k) {
    const bool active = pre[k] > 0.0;
    if (active) on[k / 64] |= uint64_t(1) << (k % 64);
    out[k] = active ? pre[k] : slope * pre[k];
  }
  return out;
}

bool bit(const uint64_t* set, int64_t k) { return set[k / 64] >> (k % 64) & 1u; }

// One reference's slopes (on1, on2: kWords each) and P, Q, R.
void pack_reference(const DeepEmErrorModel& m, const double* y, int64_t tp, uint64_t* on1, uint64_t* on2,
                    DeepEmErrorsDelta::Reference& ref) {
  const int64_t h1 = m.n_h1, h2 = m.n_h2, nt = m.n_t;
  // the network's forward pass on x = sqrt(max(y, 0))
  std::vector<double> pre1(size_t(h1), 0.0), pre2(size_t(h2), 0.0);
  for (int64_t k = 0; k < h1; ++k) {
    double s = m.b1[size_t(k)];
    for (int c = 0; c < kDirs; ++c) s += double(m.w1[size_t(k * kDirs + c)]) * std::sqrt(std::max(y[c], 0.0));
    pre1[size_t(k)] = s;
  }
  const std::vector<double> act1 = leaky(pre1, m.slope1, on1);
  for (int64_t i = 0; i < h2; ++i) {
    double s = m.b2[size_t(i)];
    for (int64_t k = 0; k < h1; ++k) s += double(m.w2[size_t(i * h1 + k)]) * act1[size_t(k)];
    pre2[size_t(i)] = s;
  }
  leaky(pre2, m.slope2, on2);
  auto b1 = [&](int64_t k) { return bit(on1, k) ? 1.0 : double(m.slope1); };
  auto b2 = [&](int64_t i) { return bit(on2, i) ? 1.0 : double(m.slope2); };
  // R = W2 B1 W1 (h2 x 6), Q = W3 B2 W2 (nT x h1), P = Q B1 W1 (nT x 6), in float64
  std::vector<double> r(size_t(h2 * kDirs), 0.0), q(size_t(nt * h1), 0.0);
  for (int64_t i = 0; i < h2; ++i)
    for (int64_t k = 0; k < h1; ++k) {
      const double w = double(m.w2[size_t(i * h1 + k)]) * b1(k);
      for (int c = 0; c < kDirs; ++c) r[size_t(i * kDirs + c)] += w * double(m.w1[size_t(k * kDirs + c)]);
    }
  for (int64_t t = 0; t < nt; ++t)
    for (int64_t i = 0; i < h2; ++i) {
      const double w = double(m.w3[size_t(t * h2 + i)]) * b2(i);
      for (int64_t k = 0; k < h1; ++k) q[size_t(t * h1 + k)] += w * double(m.w2[size_t(i * h1 + k)]);
    }
  ref.p.assign(size_t(kDirs * tp), 0.f);
  ref.q.assign(size_t(h1 * tp), 0.f);
  ref.r.assign(size_t(h2 * kRow), 0.f);
  for (int64_t t = 0; t < nt; ++t)
    for (int c = 0; c < kDirs; ++c) {
      double s = 0.0;
      for (int64_t k = 0; k < h1; ++k) s += q[size_t(t * h1 + k)] * b1(k) * double(m.w1[size_t(k * kDirs + c)]);
      ref.p[size_t(c * tp + t)] = float(s);
    }
  for (int64_t k = 0; k < h1; ++k)
    for (int64_t t = 0; t < nt; ++t) ref.q[size_t(k * tp + t)] = float(q[size_t(t * h1 + k)]);
  for (int64_t i = 0; i < h2; ++i)
    for (int c = 0; c < kDirs; ++c) ref.r[size_t(i * kRow + c)] = float(r[size_t(i * kDirs + c)]);
}

// The units of one layer set in bits (words of 64), in increasing order; returns their number.
int units_of(const uint64_t* bits, int* out) {
  int n = 0;
  for (int w = 0; w < DeepEmErrorsDelta::kWords; ++w)
    for (uint64_t b = bits[w]; b; b &= b - 1) out[n++] = w * 64 + __builtin_ctzll(b);
  return n;
}

}  // namespace

std::shared_ptr<const DeepEmErrorsDelta> pack_errors_delta(const DeepEmErrorModel& m, const double* references,
                                                           int count) {
  constexpr int kWords = DeepEmErrorsDelta::kWords;
  const int64_t h1 = m.n_h1, h2 = m.n_h2, nt = m.n_t;
  auto d = std::make_shared<DeepEmErrorsDelta>();
  d->t_vectors = (nt + kW - 1) / kW;
  const int64_t tp = d->t_vectors * kW;
  d->refs.resize(size_t(count));
  d->on1.assign(size_t(count * kWords), 0);
  d->on2.assign(size_t(count * kWords), 0);
  for (int r = 0; r < count; ++r)
    pack_reference(m, references + r * kDirs, tp, &d->on1[size_t(r * kWords)], &d->on2[size_t(r * kWords)],
                   d->refs[size_t(r)]);
  d->w3.assign(size_t(h2 * tp), 0.f);
  d->w1.assign(size_t(h1 * kRow), 0.f);
  for (int64_t k = 0; k < h1; ++k)
    for (int c = 0; c < kDirs; ++c) d->w1[size_t(k * kRow + c)] = m.w1[size_t(k * kDirs + c)];
  for (int64_t i = 0; i < h2; ++i)
    for (int64_t t = 0; t < nt; ++t) d->w3[size_t(i * tp + t)] = m.w3[size_t(t * h2 + i)];
  return d;
}

FASTINV_DELTA_CLONES void jacobian_delta(const DeepEmErrorModel& m, const float* a1, const float* a2,
                                         const float (*s)[kW], float (*jy)[64][kW]) noexcept {
  constexpr int kWords = DeepEmErrorsDelta::kWords;
  const DeepEmErrorsDelta& d = *m.delta;
  const int64_t h1 = m.n_h1, h2 = m.n_h2, nt = m.n_t;
  const int tv = int(d.t_vectors), nref = int(d.refs.size());
  const int64_t tp = d.t_vectors * kW;
  // per lane, the pixel's pattern as the units whose slope differs from reference 0's
  uint64_t x1[kW][kWords] = {}, x2[kW][kWords] = {};
  auto differing = [](const float* act, const uint64_t* on, int64_t n, uint64_t (*x)[kWords]) {
    const v16 zero = {};
    const i16 lane_bit = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768};
    for (int64_t k = 0; k < n; ++k) {
      // the 16 lanes' act > 0 as bits: one vector compare, then an OR-reduction
      const i16 b = (load(act + k * kW) > zero) & lane_bit;
      const i8 b8 = __builtin_shufflevector(b, b, 0, 1, 2, 3, 4, 5, 6, 7) |
                    __builtin_shufflevector(b, b, 8, 9, 10, 11, 12, 13, 14, 15);
      const i4 b4 = __builtin_shufflevector(b8, b8, 0, 1, 2, 3) | __builtin_shufflevector(b8, b8, 4, 5, 6, 7);
      uint32_t lanes = uint32_t((b4[0] | b4[1]) | (b4[2] | b4[3]));
      if (bit(on, k)) lanes = ~lanes & 0xffffu;
      for (; lanes; lanes &= lanes - 1) x[__builtin_ctz(lanes)][k / 64] |= uint64_t(1) << (k % 64);
    }
  };
  differing(a1, d.on1.data(), h1, x1);
  differing(a2, d.on2.data(), h2, x2);
  // e = (pixel's slope) - (reference's slope)
  const float e1_on = m.slope1 - 1.f, e2_on = m.slope2 - 1.f;
  int dev1[kMaxErrorHidden], dev2[kMaxErrorHidden];
  alignas(32) v8 w1e[kMaxErrorHidden];  // e1_j W1[j, :] of the pixel's differing layer-1 units
  for (int j = 0; j < kW; ++j) {
    // the reference needing the fewest multiply-adds (ties: the first); its differing units
    // are the pixel's pattern xor the reference's, relative to reference 0
    int best = 0;
    uint64_t best1[kWords], best2[kWords];
    int64_t best_cost = -1;
    for (int r = 0; r < nref; ++r) {
      uint64_t y1[kWords], y2[kWords];
      int n1 = 0, n2 = 0;
      for (int w = 0; w < kWords; ++w) {
        y1[w] = x1[j][w] ^ d.on1[size_t(r * kWords + w)] ^ d.on1[size_t(w)];
        y2[w] = x2[j][w] ^ d.on2[size_t(r * kWords + w)] ^ d.on2[size_t(w)];
        n1 += __builtin_popcountll(y1[w]);
        n2 += __builtin_popcountll(y2[w]);
      }
      const int64_t cost = 12 * n1 + int64_t(n2) * (n1 + 12);
      if (best_cost < 0 || cost < best_cost) {
        best = r;
        best_cost = cost;
        std::memcpy(best1, y1, sizeof(y1));
        std::memcpy(best2, y2, sizeof(y2));
      }
    }
    const DeepEmErrorsDelta::Reference& ref = d.refs[size_t(best)];
    const uint64_t* on1 = &d.on1[size_t(best * kWords)];
    const uint64_t* on2 = &d.on2[size_t(best * kWords)];
    const int n1 = units_of(best1, dev1), n2 = units_of(best2, dev2);
    v16 J[kDirs][4];  // n_t <= 64
    for (int c = 0; c < kDirs; ++c)
      for (int v = 0; v < tv; ++v) J[c][v] = load(ref.p.data() + c * tp + v * kW);
    for (int a = 0; a < n1; ++a) {
      const int k = dev1[a];
      const float e = bit(on1, k) ? e1_on : -e1_on;
      w1e[a] = e * load8(d.w1.data() + k * kRow);
      const float* q = ref.q.data() + k * tp;
      for (int c = 0; c < kDirs; ++c)
        for (int v = 0; v < tv; ++v) J[c][v] += w1e[a][c] * load(q + v * kW);
    }
    for (int b = 0; b < n2; ++b) {
      const int i = dev2[b];
      const float e = bit(on2, i) ? e2_on : -e2_on;
      const float* w2 = m.w2.data() + int64_t(i) * h1;
      // four independent sums: one chain of additions would wait on the adder's latency
      v8 acc[4] = {load8(ref.r.data() + i * kRow)};
      int a = 0;
      for (; a + 4 <= n1; a += 4)
        for (int l = 0; l < 4; ++l) acc[l] += w2[dev1[a + l]] * w1e[a + l];
      for (; a < n1; ++a) acc[0] += w2[dev1[a]] * w1e[a];
      const v8 u = e * ((acc[0] + acc[1]) + (acc[2] + acc[3]));
      const float* w3 = d.w3.data() + int64_t(i) * tp;
      for (int c = 0; c < kDirs; ++c)
        for (int v = 0; v < tv; ++v) J[c][v] += u[c] * load(w3 + v * kW);
    }
    for (int c = 0; c < kDirs; ++c) {
      alignas(64) float row[4 * kW];
      std::memcpy(row, J[c], sizeof(v16) * size_t(tv));
      for (int64_t t = 0; t < nt; ++t) jy[c][t][j] = row[t] * s[c][j];
    }
  }
}

}  // namespace fastinv::dem
