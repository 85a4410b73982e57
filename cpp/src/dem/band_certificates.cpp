// Farkas certificates of empty bands (see band_certificates.hpp): the extreme rays of
// { lambda : lambda^T A >= 0 } on each orthant, enumerated from the constraints that define
// them, and their vectorised test against a tile of pixels' bounds.
#include "dem/band_certificates.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <mutex>
#include <utility>

namespace fastinv::dem {

namespace {

using Ray = std::array<double, BandCertificates::kMaxRows>;

// The null vector (L1-normalised) of the (m-1) x m matrix with rows rows[0..m-2], or false if
// their rank is below m-1. Gauss-Jordan with full pivoting; the rows have unit max norm, so
// the rank tolerance is absolute.
bool null_vector(const double* const* rows, int m, Ray& v) {
  double a[BandCertificates::kMaxRows][BandCertificates::kMaxRows];
  for (int i = 0; i < m - 1; ++i) std::memcpy(a[i], rows[i], sizeof(double) * m);
  bool pivot_col[BandCertificates::kMaxRows] = {};
  int pcol[BandCertificates::kMaxRows];
  for (int k = 0; k < m - 1; ++k) {
    int bi = -1, bj = -1;
    double best = 1e-9;
    for (int i = k; i < m - 1; ++i)
      for (int j = 0; j < m; ++j)
        if (!pivot_col[j] && std::fabs(a[i][j]) > best) best = std::fabs(a[i][j]), bi = i, bj = j;
    if (bi < 0) return false;
    std::swap(a[k], a[bi]);
    pivot_col[bj] = true;
    pcol[k] = bj;
    for (int i = 0; i < m - 1; ++i) {
      if (i == k || a[i][bj] == 0.0) continue;
      const double f = a[i][bj] / a[k][bj];
      for (int j = 0; j < m; ++j) a[i][j] -= f * a[k][j];
    }
  }
  int free_col = 0;
  while (pivot_col[free_col]) ++free_col;
  v.fill(0.0);
  v[free_col] = 1.0;
  for (int k = 0; k < m - 1; ++k) v[pcol[k]] = -a[k][free_col] / a[k][pcol[k]];
  double norm = 0.0;
  for (int c = 0; c < m; ++c) norm += std::fabs(v[c]);
  for (int c = 0; c < m; ++c) v[c] /= norm;
  return true;
}

// The columns (unit max) that the others' nonnegative combinations do not generate, each
// decided by a small LP on the dual simplex: is a_j = sum_{k != j} x_k a_k with x >= 0 feasible
// (to 1e-9)? Columns are dropped in order, so of two equal columns one stays.
std::vector<Ray> extreme_columns(const std::vector<Ray>& cols, int m) {
  std::vector<Ray> kept = cols;
  for (std::size_t j = 0; j < kept.size() && kept.size() > 1;) {
    const int n = int(kept.size()) - 1;
    std::vector<double> a(std::size_t(m) * n), cost(n, 1.0);
    for (int c = 0; c < m; ++c)
      for (int k = 0, col = 0; k <= n; ++k)
        if (std::size_t(k) != j) a[std::size_t(c) * n + col++] = kept[k][c];
    DualSimplex lp(a.data(), m, n, cost.data());
    const LpResult r = lp.solve(kept[j].data(), kept[j].data(), 400, 1e-9);
    if (r == LpResult::optimal)
      kept.erase(kept.begin() + std::ptrdiff_t(j));
    else
      ++j;  // infeasible (extreme), or not converged: kept, which only costs enumeration time
  }
  return kept;
}

}  // namespace

BandCertificates::BandCertificates(const double* A, int m, int n) : m_(m) {
  if (m < 2 || m > kMaxRows || n < 1 || !A) return;
  // Constraint normals: the nonzero columns of A (scaled to unit max) and the m unit vectors
  // (lambda_c = 0 bounds an orthant).
  std::vector<Ray> normals;
  for (int j = 0; j < n; ++j) {
    Ray col{};
    double peak = 0.0;
    for (int c = 0; c < m; ++c) {
      const double v = A[c * n + j];
      if (!std::isfinite(v) || v < 0.0) return;  // only A >= 0 is supported: no certificates
      col[c] = v;
      peak = std::max(peak, v);
    }
    if (peak == 0.0) continue;  // an empty column constrains nothing
    for (int c = 0; c < m; ++c) col[c] /= peak;
    normals.push_back(col);
  }
  const int ncols = int(normals.size());
  // Only the cone's extreme columns define its dual: drop, one at a time, every column the
  // others generate (BP's Gaussian columns are sums of its Dirac ones), which keeps the
  // enumeration below at C(extreme + m, m - 1) subsets.
  std::vector<Ray> gen = extreme_columns(normals, m);
  for (int c = 0; c < m; ++c) {
    Ray e{};
    e[c] = 1.0;
    gen.push_back(e);
  }
  const int total = int(gen.size());
  // C(total, m-1) subsets: ~80 000 for 21 bins and 6 channels (~40 ms, once per process). A
  // finer grid would take seconds to minutes: then no certificates (every tolfac is solved).
  double subsets = 1.0;
  for (int i = 0; i < m - 1; ++i) subsets = subsets * (total - i) / (i + 1);
  if (subsets > kMaxSubsets) return;
  // Every (m-1)-subset of the normals: a rank-(m-1) subset fixes a line; either direction is an
  // extreme ray of its orthant's cone if it satisfies every other constraint.
  std::vector<Ray> rays;
  std::vector<int> pick(m - 1);
  for (int i = 0; i < m - 1; ++i) pick[i] = i;
  const double* rows[kMaxRows];
  while (true) {
    for (int i = 0; i < m - 1; ++i) rows[i] = gen[pick[i]].data();
    Ray v;
    if (null_vector(rows, m, v)) {
      for (double sign : {1.0, -1.0}) {
        Ray r{};
        bool negative = false;
        for (int c = 0; c < m; ++c) {
          r[c] = std::fabs(v[c]) < 1e-12 ? 0.0 : sign * v[c];
          negative |= r[c] < 0.0;
        }
        if (!negative) continue;  // lambda >= 0 cannot prove a band with up >= 0 empty
        // The ray as tested, in float: lambda^T a_j >= 0 for every column up to a slack
        // sum_j max(-lambda^T a_j, 0) (unit-max columns), which moves g by at most that
        // fraction of max(up) (x_j <= max(up) / max(a_j) in the band): kept far below kMargin.
        double slack = 0.0, worst = 0.0;
        Ray rf{};
        for (int c = 0; c < m; ++c) rf[c] = double(float(r[c]));
        for (int j = 0; j < ncols; ++j) {
          double s = 0.0, sf = 0.0;
          for (int c = 0; c < m; ++c) s += r[c] * normals[j][c], sf += rf[c] * normals[j][c];
          worst = std::min(worst, s);
          slack += std::max(-sf, 0.0);
        }
        if (worst >= -1e-9 && slack <= 1e-6) rays.push_back(rf);
      }
    }
    int i = m - 2;  // next subset in lexicographic order
    while (i >= 0 && pick[i] == total - (m - 1) + i) --i;
    if (i < 0) break;
    ++pick[i];
    for (int k = i + 1; k < m - 1; ++k) pick[k] = pick[k - 1] + 1;
  }
  // The same ray arises from several subsets where more than m-1 constraints are active.
  std::sort(rays.begin(), rays.end());
  rays.erase(std::unique(rays.begin(), rays.end(),
                         [m](const Ray& a, const Ray& b) {
                           for (int c = 0; c < m; ++c)
                             if (std::fabs(a[c] - b[c]) > 1e-6) return false;
                           return true;
                         }),
             rays.end());
  // Grouped by sign pattern (a zero counts as +): within a group every ray reads the same
  // bound of each row, so the test keeps those rows in registers and needs no indexing.
  auto pattern = [m](const Ray& r) {
    unsigned p = 0;
    for (int c = 0; c < m; ++c) p |= unsigned(r[c] < 0.0) << c;
    return p;
  };
  std::stable_sort(rays.begin(), rays.end(), [&](const Ray& a, const Ray& b) { return pattern(a) < pattern(b); });
  count_ = int(rays.size());
  coef_.resize(std::size_t(count_) * m);
  for (int r = 0; r < count_; ++r) {
    for (int c = 0; c < m; ++c) coef_[r * m + c] = float(rays[r][c]);
    if (r == 0 || pattern(rays[r]) != pattern(rays[r - 1])) {
      Group g{r, r, {}};
      for (int c = 0; c < m; ++c) g.src[c] = std::uint8_t(rays[r][c] < 0.0 ? m + c : c);
      groups_.push_back(g);
    }
    groups_.back().end = r + 1;
  }
}

std::shared_ptr<const BandCertificates> BandCertificates::of(const double* A, int m, int n) {
  static std::mutex mutex;
  static std::vector<std::pair<std::vector<double>, std::shared_ptr<const BandCertificates>>> cache;
  std::vector<double> key(A, A + std::size_t(m) * n);
  key.push_back(m);
  const std::lock_guard<std::mutex> lock(mutex);
  for (const auto& [k, certs] : cache)
    if (k == key) return certs;
  auto certs = std::make_shared<const BandCertificates>(A, m, n);
  constexpr std::size_t kKeep = 8;  // responses in use at once: a few models and BP grids
  if (cache.size() == kKeep) cache.erase(cache.begin());
  cache.emplace_back(std::move(key), certs);
  return certs;
}

namespace {
typedef float v16 __attribute__((vector_size(64)));
typedef int32_t i16 __attribute__((vector_size(64)));

#ifdef __SANITIZE_THREAD__
#define FASTINV_CERTS_CLONES
#else
#define FASTINV_CERTS_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#endif

// hit[j] != 0 for the lanes where some ray's g < threshold[j]; bounds[c] = up_c,
// bounds[M + c] = lo_c, each a tile row. Tests the groups subset[0..count) (all `count` groups
// when subset is null), lists those with a ray that hit some lane in `fired` and returns their
// number. (Vectors in and out through memory: GCC 12 fails on vector arguments of a
// target_clones function.)
template <int M>
FASTINV_CERTS_CLONES int any_below(const float (*bounds)[BandCertificates::kW], const float* coef,
                                   const BandCertificates::Group* groups, const int* subset, int count,
                                   const float* threshold, int32_t* hit, int* fired) {
  v16 thr;
  std::memcpy(&thr, threshold, sizeof(v16));
  i16 any = {};
  int nfired = 0;
  for (int k = 0; k < count; ++k) {
    const int gi = subset ? subset[k] : k;
    const BandCertificates::Group& grp = groups[gi];
    v16 b[M];  // each row's bound this group's rays read
    for (int c = 0; c < M; ++c) std::memcpy(&b[c], bounds[grp.src[c]], sizeof(v16));
    i16 group_hit = {};
    for (int r = grp.begin; r < grp.end; ++r) {
      const float* w = coef + r * M;
      v16 g;
      if constexpr (M == 6) {  // a tree: one FMA chain per ray would bound the loop by latency
        g = (w[0] * b[0] + w[1] * b[1]) + (w[2] * b[2] + w[3] * b[3]) + (w[4] * b[4] + w[5] * b[5]);
      } else {
        g = w[0] * b[0];
        for (int c = 1; c < M; ++c) g += w[c] * b[c];
      }
      group_hit |= g < thr;
    }
    bool some = false;
    for (int j = 0; j < BandCertificates::kW; ++j) some |= group_hit[j] != 0;
    if (some) fired[nfired++] = gi;
    any |= group_hit;
  }
  std::memcpy(hit, &any, sizeof(any));
  return nfired;
}
}  // namespace

void BandCertificates::first_rungs(const double (*y)[kW], const double (*sig)[kW], const double* row_scale,
                                   const std::vector<double>& tolfacs, int lanes, int* rung, int* scratch) const {
  for (int j = 0; j < lanes; ++j) rung[j] = 0;
  if (count_ == 0) return;
  // Rows 0..m-1: up_c, rows m..2m-1: lo_c (Group::src). A lane no longer tested gets lo = 0,
  // up = 1, which no certificate proves empty; NaN bounds prove nothing either.
  float bounds[2 * kMaxRows][kW], threshold[kW];
  int32_t hit[kW];
  const int* last = nullptr;  // the groups that fired on the last band: the only ones to test next
  int nlast = int(groups_.size());
  for (std::size_t k = 0; k < tolfacs.size(); ++k) {
    const double tf = tolfacs[k];
    for (int j = 0; j < kW; ++j) {
      const bool test = j < lanes && rung[j] == int(k);
      float top = 0.0f;
      for (int c = 0; c < m_; ++c) {
        const double yc = test ? std::max(y[c][j], 0.0) : 0.0, sc = test ? sig[c][j] : 0.0;
        bounds[c][j] = test ? float((yc + tf * sc) / row_scale[c]) : 1.0f;
        bounds[m_ + c][j] = test ? float(std::max(yc - tf * sc, 0.0) / row_scale[c]) : 0.0f;
        top = std::max(top, bounds[c][j]);
      }
      threshold[j] = float(-kMargin) * top;
    }
    int* out = scratch + (k % 2) * groups_.size();
    switch (m_) {  // the AIA channels: 6; the others are there for other instruments' BP
#define FASTINV_CERTS_CASE(M)                                                                     \
  case M:                                                                                         \
    nlast = any_below<M>(bounds, coef_.data(), groups_.data(), last, nlast, threshold, hit, out); \
    break;
      FASTINV_CERTS_CASE(2)
      FASTINV_CERTS_CASE(3)
      FASTINV_CERTS_CASE(4)
      FASTINV_CERTS_CASE(5)
      FASTINV_CERTS_CASE(6)
      FASTINV_CERTS_CASE(7)
      FASTINV_CERTS_CASE(8)
#undef FASTINV_CERTS_CASE
    }
    last = out;
    bool any = false;
    for (int j = 0; j < lanes; ++j)
      if (hit[j] != 0) rung[j] = int(k) + 1, any = true;
    if (!any) return;
  }
}

}  // namespace fastinv::dem
