// DeepEM's float32 Jacobian from a reference pattern of LeakyReLU slopes. The Jacobian is
// J = W3 D2 W2 D1 W1 with D1, D2 the pixel's slopes (1 or the negative slope). Splitting each
// D = B + E at the slopes B of a reference input (the card's errors.reference_input, run through
// the network once at load), E is nonzero only at the units whose slope differs from the
// reference's -- ~20 of 300 per layer on the synoptic frame, ~45-75 on the flare series -- and
//     J = P + sum_{j in E1} e1_j Q[:, j] W1[j, :]
//           + sum_{i in E2} e2_i W3[:, i] (R[i, :] + sum_{j in E1} e1_j W2[i, j] W1[j, :])
// with P = W3 B2 W2 B1 W1, Q = W3 B2 W2 and R = W2 B1 W1 formed once in float64. Exact (no
// term dropped), at ~1/10 of the dense chain's arithmetic (6 tangents through the 300 x 300
// layer). Each pixel's sums run over its units in increasing order, independent of its
// neighbours in the tile: bitwise identical for any tiling or thread count.
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

// LeakyReLU forward in float64 (the reference's pattern; exact ties are "inactive", as the
// engine's act > 0 test).
std::vector<double> leaky(const std::vector<double>& pre, double slope, std::vector<uint8_t>& on) {
  std::vector<double> out(pre.size());
  on.resize(pre.size());
  for (size_t k = 0; k < pre.size(); ++k) {
    on[k] = pre[k] > 0.0;
    out[k] = on[k] ? pre[k] : slope * pre[k];
  }
  return out;
}

}  // namespace

std::shared_ptr<const DeepEmErrorsDelta> pack_errors_delta(const DeepEmErrorModel& m, const double* reference) {
  const int64_t h1 = m.n_h1, h2 = m.n_h2, nt = m.n_t;
  auto d = std::make_shared<DeepEmErrorsDelta>();
  d->t_vectors = (nt + kW - 1) / kW;
  const int64_t tp = d->t_vectors * kW;
  // the reference's slopes: the network's forward pass on x = sqrt(max(y, 0))
  std::vector<double> pre1(size_t(h1), 0.0), pre2(size_t(h2), 0.0);
  for (int64_t k = 0; k < h1; ++k) {
    double s = m.b1[size_t(k)];
    for (int c = 0; c < kDirs; ++c) s += double(m.w1[size_t(k * kDirs + c)]) * std::sqrt(std::max(reference[c], 0.0));
    pre1[size_t(k)] = s;
  }
  const std::vector<double> act1 = leaky(pre1, m.slope1, d->on1);
  for (int64_t i = 0; i < h2; ++i) {
    double s = m.b2[size_t(i)];
    for (int64_t k = 0; k < h1; ++k) s += double(m.w2[size_t(i * h1 + k)]) * act1[size_t(k)];
    pre2[size_t(i)] = s;
  }
  leaky(pre2, m.slope2, d->on2);
  auto b1 = [&](int64_t k) { return d->on1[size_t(k)] ? 1.0 : double(m.slope1); };
  auto b2 = [&](int64_t i) { return d->on2[size_t(i)] ? 1.0 : double(m.slope2); };
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
  d->p.assign(size_t(kDirs * tp), 0.f);
  d->q.assign(size_t(h1 * tp), 0.f);
  d->w3.assign(size_t(h2 * tp), 0.f);
  d->r.assign(size_t(h2 * kRow), 0.f);
  d->w1.assign(size_t(h1 * kRow), 0.f);
  for (int64_t k = 0; k < h1; ++k)
    for (int c = 0; c < kDirs; ++c) d->w1[size_t(k * kRow + c)] = m.w1[size_t(k * kDirs + c)];
  for (int64_t t = 0; t < nt; ++t)
    for (int c = 0; c < kDirs; ++c) {
      double s = 0.0;
      for (int64_t k = 0; k < h1; ++k) s += q[size_t(t * h1 + k)] * b1(k) * double(m.w1[size_t(k * kDirs + c)]);
      d->p[size_t(c * tp + t)] = float(s);
    }
  for (int64_t k = 0; k < h1; ++k)
    for (int64_t t = 0; t < nt; ++t) d->q[size_t(k * tp + t)] = float(q[size_t(t * h1 + k)]);
  for (int64_t i = 0; i < h2; ++i) {
    for (int64_t t = 0; t < nt; ++t) d->w3[size_t(i * tp + t)] = m.w3[size_t(t * h2 + i)];
    for (int c = 0; c < kDirs; ++c) d->r[size_t(i * kRow + c)] = float(r[size_t(i * kDirs + c)]);
  }
  return d;
}

FASTINV_DELTA_CLONES void jacobian_delta(const DeepEmErrorModel& m, const float* a1, const float* a2,
                                         const float (*s)[kW], float (*jy)[64][kW]) noexcept {
  const DeepEmErrorsDelta& d = *m.delta;
  const int64_t h1 = m.n_h1, h2 = m.n_h2, nt = m.n_t;
  const int tv = int(d.t_vectors);
  const int64_t tp = d.t_vectors * kW;
  // per lane, its units whose slope differs from the reference's, in increasing order
  int dev1[kW][kMaxErrorHidden], dev2[kW][kMaxErrorHidden], n1[kW] = {}, n2[kW] = {};
  auto differing = [](const float* act, const std::vector<uint8_t>& on, int64_t n, int (*dev)[kMaxErrorHidden],
                      int* count) {
    for (int64_t k = 0; k < n; ++k) {
      uint32_t bits = 0;
      for (int j = 0; j < kW; ++j) bits |= uint32_t(act[k * kW + j] > 0.f) << j;
      if (on[size_t(k)]) bits = ~bits & 0xffffu;
      for (; bits; bits &= bits - 1) {
        const int j = __builtin_ctz(bits);
        dev[j][count[j]++] = int(k);
      }
    }
  };
  differing(a1, d.on1, h1, dev1, n1);
  differing(a2, d.on2, h2, dev2, n2);
  // e = (pixel's slope) - (reference's slope)
  const float e1_on = m.slope1 - 1.f, e2_on = m.slope2 - 1.f;
  alignas(32) v8 w1e[kMaxErrorHidden];  // e1_j W1[j, :] of the pixel's differing layer-1 units
  for (int j = 0; j < kW; ++j) {
    v16 J[kDirs][4];  // n_t <= 64
    for (int c = 0; c < kDirs; ++c)
      for (int v = 0; v < tv; ++v) J[c][v] = load(d.p.data() + c * tp + v * kW);
    for (int a = 0; a < n1[j]; ++a) {
      const int k = dev1[j][a];
      const float e = d.on1[size_t(k)] ? e1_on : -e1_on;
      w1e[a] = e * load8(d.w1.data() + k * kRow);
      const float* q = d.q.data() + k * tp;
      for (int c = 0; c < kDirs; ++c)
        for (int v = 0; v < tv; ++v) J[c][v] += w1e[a][c] * load(q + v * kW);
    }
    for (int b = 0; b < n2[j]; ++b) {
      const int i = dev2[j][b];
      const float e = d.on2[size_t(i)] ? e2_on : -e2_on;
      const float* w2 = m.w2.data() + int64_t(i) * h1;
      // four independent sums: one chain of additions would wait on the adder's latency
      v8 acc[4] = {load8(d.r.data() + i * kRow)};
      const int* dj = dev1[j];
      int a = 0;
      for (; a + 4 <= n1[j]; a += 4)
        for (int l = 0; l < 4; ++l) acc[l] += w2[dj[a + l]] * w1e[a + l];
      for (; a < n1[j]; ++a) acc[0] += w2[dj[a]] * w1e[a];
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
