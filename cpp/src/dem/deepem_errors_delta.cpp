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
typedef uint32_t u16 __attribute__((vector_size(64)));
// The helpers passing these vectors by value are file-local (never cross a translation unit),
// so GCC's note that their ABI differs without AVX-512 does not apply.
#pragma GCC diagnostic ignored "-Wpsabi"

#ifdef __SANITIZE_THREAD__
#define FASTINV_DELTA_CLONES
#else
#define FASTINV_DELTA_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
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

// One pixel's J (transposed, [channel][output]) from reference ref: P plus the corrections of
// its differing units dev1 (n1) and dev2 (n2), for TV vectors of 16 outputs. A compile-time TV
// keeps J in registers (with a run-time count it lived on the stack: a load and a store per
// multiply-add). w1e: scratch for e1_j W1[j, :].
template <int TV>
inline __attribute__((always_inline)) void pixel_jacobian(const DeepEmErrorModel& m,
                                                          const DeepEmErrorsDelta::Reference& ref, const uint64_t* on1,
                                                          const uint64_t* on2, const int* dev1, int n1, const int* dev2,
                                                          int n2, v8* w1e, float (*jt)[4 * kW]) {
  const DeepEmErrorsDelta& d = *m.delta;
  constexpr int64_t tp = TV * kW;
  const int64_t h1 = m.n_h1;
  // e = (pixel's slope) - (reference's slope)
  const float e1_on = m.slope1 - 1.f, e2_on = m.slope2 - 1.f;
  v16 J[kDirs][TV];
  for (int c = 0; c < kDirs; ++c)
    for (int v = 0; v < TV; ++v) J[c][v] = load(ref.p.data() + c * tp + v * kW);
  for (int a = 0; a < n1; ++a) {
    const int k = dev1[a];
    const float e = bit(on1, k) ? e1_on : -e1_on;
    w1e[a] = e * load8(d.w1.data() + k * kRow);
    const float* q = ref.q.data() + k * tp;
    for (int c = 0; c < kDirs; ++c)
      for (int v = 0; v < TV; ++v) J[c][v] += w1e[a][c] * load(q + v * kW);
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
      for (int v = 0; v < TV; ++v) J[c][v] += u[c] * load(w3 + v * kW);
  }
  for (int c = 0; c < kDirs; ++c) std::memcpy(jt[c], J[c], sizeof(J[c]));
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
  // per lane, the pixel's active units (act > 0) as bits: three vector operations per unit and
  // no branch (a per-lane loop over the differing lanes mispredicted on every unit)
  uint32_t on[2][2 * kWords][kW];  // [layer][32-unit word][lane]
  auto active = [](const float* act, int64_t n, uint32_t (*x)[kW]) {
    const v16 zero = {};
    for (int w = 0; w < 2 * kWords; ++w) {
      u16 bits = {};
      for (int64_t k = 32 * w; k < std::min<int64_t>(n, 32 * (w + 1)); ++k)
        bits |= u16(load(act + k * kW) > zero) & (uint32_t(1) << (k % 32));
      std::memcpy(x[w], &bits, sizeof(bits));
    }
  };
  active(a1, h1, on[0]);
  active(a2, h2, on[1]);
  int dev1[kMaxErrorHidden], dev2[kMaxErrorHidden];
  alignas(32) v8 w1e[kMaxErrorHidden];  // e1_j W1[j, :] of the pixel's differing layer-1 units
  for (int j = 0; j < kW; ++j) {
    uint64_t x1[kWords], x2[kWords];
    for (int w = 0; w < kWords; ++w) {
      x1[w] = on[0][2 * w][j] | uint64_t(on[0][2 * w + 1][j]) << 32;
      x2[w] = on[1][2 * w][j] | uint64_t(on[1][2 * w + 1][j]) << 32;
    }
    // the reference needing the fewest multiply-adds (ties: the first); the differing units
    // are the pixel's pattern xor the reference's
    int best = 0;
    int64_t best_cost = 0;
    for (int r = 0; r < nref; ++r) {
      int n1 = 0, n2 = 0;
      for (int w = 0; w < kWords; ++w) {
        n1 += __builtin_popcountll(x1[w] ^ d.on1[size_t(r * kWords + w)]);
        n2 += __builtin_popcountll(x2[w] ^ d.on2[size_t(r * kWords + w)]);
      }
      const int64_t cost = 12 * n1 + int64_t(n2) * (n1 + 12);
      const bool better = r == 0 || cost < best_cost;
      best = better ? r : best;
      best_cost = better ? cost : best_cost;
    }
    uint64_t best1[kWords], best2[kWords];
    for (int w = 0; w < kWords; ++w) {
      best1[w] = x1[w] ^ d.on1[size_t(best * kWords + w)];
      best2[w] = x2[w] ^ d.on2[size_t(best * kWords + w)];
    }
    const DeepEmErrorsDelta::Reference& ref = d.refs[size_t(best)];
    const uint64_t* on1 = &d.on1[size_t(best * kWords)];
    const uint64_t* on2 = &d.on2[size_t(best * kWords)];
    const int n1 = units_of(best1, dev1), n2 = units_of(best2, dev2);
    alignas(64) float jt[kDirs][4 * kW];  // n_t <= 64
    switch (tv) {
      case 1:
        pixel_jacobian<1>(m, ref, on1, on2, dev1, n1, dev2, n2, w1e, jt);
        break;
      case 2:
        pixel_jacobian<2>(m, ref, on1, on2, dev1, n1, dev2, n2, w1e, jt);
        break;
      case 3:
        pixel_jacobian<3>(m, ref, on1, on2, dev1, n1, dev2, n2, w1e, jt);
        break;
      default:
        pixel_jacobian<4>(m, ref, on1, on2, dev1, n1, dev2, n2, w1e, jt);
        break;
    }
    for (int c = 0; c < kDirs; ++c)
      for (int64_t t = 0; t < nt; ++t) jy[c][t][j] = jt[c][t] * s[c][j];
  }
}

}  // namespace fastinv::dem
