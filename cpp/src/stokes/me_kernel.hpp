// Per-profile Milne-Eddington kernel (internal header), compiled once per instruction set
// (me_kernel_generic.cpp / _avx2.cpp / _avx512.cpp define FASTINV_FADDEEVA_NS and include
// this file) so that the Faddeeva evaluation, the profile sums and the Unno-Rachkovsky
// solution are all vectorised for the CPU at hand; milne_eddington.cpp picks one.
//
// Structure (why): for a sorted wavelength grid the points of one Zeeman component that
// need Weideman's expansion (|v|^2 + a^2 < 49) form one contiguous range. The far points
// of every component are evaluated with the cheap rational and added straight into the
// profile sums; the near points of ALL components of a line are gathered into one long
// buffer and evaluated together (long, full SIMD loops instead of ~20-point remnants per
// component), evaluated by Taylor series from a per-profile node table (near_taylor), then
// added back range by range.
#pragma once
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "stokes/faddeeva_kernel.hpp"
#include "stokes/me_types.hpp"

namespace fastinv::stokes::detail {
namespace FASTINV_FADDEEVA_NS {

// Near region in the ME kernel: Taylor series about the nearest node x_k = k/4 of a
// per-profile table of w(x_k + i a) (|k| <= 24, from Weideman's expansion), with the
// coefficients from w's differential equation w' = -2 z w + 2i/sqrt(pi):
//   c_0 = w(z_k), c_1 = -2 z_k c_0 + 2i/sqrt(pi), c_{n+1} = -2 (z_k c_n + c_{n-1}) / (n+1).
// 10 terms, |delta| <= 1/8: 4e-13 complex, 1.3e-8 in H (H > 1e-9) relative to wofz on
// |z| < 6 -- a third of the work of Weideman's 38-term expansion at every point.
constexpr double kTaylorStep = 0.25;
constexpr int kTaylorHalf = 24;                 // nodes k = -24 .. 24 (|x_k| <= 6)
constexpr int kTaylorNodes = 2 * kTaylorHalf + 1;
constexpr int kTaylorTerms = 10;

inline void taylor_table(const FaddeevaTables& T, double a, double* tre, double* tim) {
  alignas(64) double nodes[kTaylorNodes];
  for (int k = 0; k < kTaylorNodes; ++k) nodes[k] = kTaylorStep * (k - kTaylorHalf);
  w_near_block(T, a, nodes, kTaylorNodes, tre, tim);
}

inline void near_taylor(const double* tre, const double* tim, double a, const double* v,
                        std::size_t m, double* H, double* F) {
#pragma omp simd
  for (std::size_t j = 0; j < m; ++j) {
    // nearest node index round(v / step) by the 1.5 * 2^52 trick (vectorises, unlike floor)
    const double kf = (v[j] * (1.0 / kTaylorStep) + 6755399441055744.0) - 6755399441055744.0;
    const int k = static_cast<int>(kf) + kTaylorHalf;
    const double zr = kTaylorStep * kf, zi = a;
    const double d = v[j] - zr;
    double c0r = tre[k], c0i = tim[k];
    double c1r = -2.0 * (zr * c0r - zi * c0i);
    double c1i = -2.0 * (zr * c0i + zi * c0r) + 2.0 * kInvSqrtPi;
    double sr = c0r + c1r * d, si = c0i + c1i * d, p = d;
#pragma GCC unroll 16
    for (int n = 1; n < kTaylorTerms; ++n) {
      const double f = -2.0 / (n + 1);  // a constant once the loop is unrolled
      const double nr = f * (zr * c1r - zi * c1i + c0r);
      const double ni = f * (zr * c1i + zi * c1r + c0i);
      p *= d;
      sr += nr * p;
      si += ni * p;
      c0r = c1r;
      c0i = c1i;
      c1r = nr;
      c1i = ni;
    }
    H[j] = sr;
    F[j] = si;
  }
}

inline void me_profile(const std::vector<MELineData>& lines, const double* wl, int64_t n,
                       const MEProfileInput& p, MEWork& w, double* prof) {
  const FaddeevaTables& T = faddeeva_tables();
  const double a = p.damping;
  double* x = w.x.data();
  double* sums = w.sums.data();  // phi_b, phi_p, phi_r, phi_0, psi_b, psi_p, psi_r, psi_0
  const bool stray = p.filling_factor < 1.0;
  const int ngroups = stray ? 4 : 3;
  for (int g = 0; g < ngroups; ++g) {
    double* s1 = sums + g * n;
    double* s2 = sums + (4 + g) * n;
#pragma omp simd
    for (int64_t j = 0; j < n; ++j) {
      s1[j] = 0.0;
      s2[j] = 0.0;
    }
  }
  const double lim = kFaddeevaInnerR2 - a * a;
  const double r = lim > 0.0 ? std::sqrt(lim) : 0.0;
  alignas(64) double tre[kTaylorNodes], tim[kTaylorNodes];
  if (lim > 0.0) taylor_table(T, a, tre, tim);

  for (const MELineData& L : lines) {
    const double dld = p.doppler_width * L.scale;
    const double centre = L.lambda0 * (1.0 + p.vlos * kInvCkms);  // positive vlos = redshift
    const double inv = 1.0 / dld;
#pragma omp simd
    for (int64_t j = 0; j < n; ++j) x[j] = (wl[j] - centre) * inv;
    const double vB = kLarmor * L.lambda0 * L.lambda0 * p.B * inv;

    std::size_t nnear = 0;
    w.segments.clear();
    const std::size_t ncomp = L.comps.size() + (stray ? 1 : 0);
    for (std::size_t c = 0; c < ncomp; ++c) {
      const bool is_stray = c == L.comps.size();
      const int g = is_stray ? 3 : L.comps[c].group;
      const double shift = is_stray ? 0.0 : L.comps[c].shift * vB;
      const double wt = is_stray ? L.ratio * kInvSqrtPi : L.comps[c].weight;
      double* ph = sums + g * n;
      double* ps = sums + (4 + g) * n;
      // near range [lo, hi): x sorted, so count the points left of -r and left of +r
      int64_t lo = 0, hi = 0;
      if (lim > 0.0) {
#pragma omp simd reduction(+ : lo, hi)
        for (int64_t j = 0; j < n; ++j) {
          const double v = x[j] - shift;
          lo += (v <= -r) ? 1 : 0;
          hi += (v < r) ? 1 : 0;
        }
      }
      // far points straight into the sums
#pragma omp simd
      for (int64_t j = 0; j < lo; ++j) {
        double h, f;
        w_far(x[j] - shift, a, T, h, f);
        ph[j] += wt * h;
        ps[j] += wt * f;
      }
#pragma omp simd
      for (int64_t j = hi; j < n; ++j) {
        double h, f;
        w_far(x[j] - shift, a, T, h, f);
        ph[j] += wt * h;
        ps[j] += wt * f;
      }
      if (hi > lo) {
        double* v = w.near_v.data() + nnear;
#pragma omp simd
        for (int64_t j = lo; j < hi; ++j) v[j - lo] = x[j] - shift;
        w.segments.push_back({g, wt, lo, hi, nnear});
        nnear += static_cast<std::size_t>(hi - lo);
      }
    }
    // all near points of this line at once
    near_taylor(tre, tim, a, w.near_v.data(), nnear, w.near_h.data(), w.near_f.data());
    for (const MESegment& sg : w.segments) {
      double* ph = sums + sg.group * n + sg.lo;
      double* ps = sums + (4 + sg.group) * n + sg.lo;
      const double* hh = w.near_h.data() + sg.offset;
      const double* ff = w.near_f.data() + sg.offset;
      const double wt = sg.weight;
      const int64_t m = sg.hi - sg.lo;
#pragma omp simd
      for (int64_t j = 0; j < m; ++j) {
        ph[j] += wt * hh[j];
        ps[j] += wt * ff[j];
      }
    }
  }

  // Propagation matrix and the Unno-Rachkovsky solution (LL04 eq. 9.110; the terms
  // arranged as in pyMilne).
  const double sg = std::sin(p.inclination), cg = std::cos(p.inclination);
  const double s2 = sg * sg, c2p1 = 0.5 * (1.0 + cg * cg);
  const double c2x = std::cos(2.0 * p.azimuth), s2x = std::sin(2.0 * p.azimuth);
  const double h = 0.5 * p.eta0;
  const double* pb = sums;
  const double* pp = sums + n;
  const double* pr = sums + 2 * n;
  const double* p0 = sums + 3 * n;
  const double* qb = sums + 4 * n;
  const double* qp = sums + 5 * n;
  const double* qr = sums + 6 * n;
  double* I = prof;
  double* Q = prof + n;
  double* U = prof + 2 * n;
  double* V = prof + 3 * n;
  const double muS1 = p.mu * p.S1, S0 = p.S0, f = p.filling_factor, e0 = p.eta0;
#pragma omp simd
  for (int64_t j = 0; j < n; ++j) {
    const double sb = pb[j] + pr[j], sr = qb[j] + qr[j];
    const double kI = 1.0 + h * (pp[j] * s2 + sb * c2p1);
    const double lin = h * (pp[j] - 0.5 * sb) * s2;
    const double kQ = lin * c2x, kU = lin * s2x, kV = h * (pr[j] - pb[j]) * cg;
    const double rlin = h * (qp[j] - 0.5 * sr) * s2;
    const double fQ = rlin * c2x, fU = rlin * s2x, fV = h * (qr[j] - qb[j]) * cg;
    const double ki2 = kI * kI;
    const double gp3 = ki2 + fQ * fQ + fU * fU + fV * fV;
    const double gp1 = gp3 - (kQ * kQ + kU * kU + kV * kV);
    const double gp2 = kQ * fQ + kU * fU + kV * fV;
    const double del = ki2 * gp1 - gp2 * gp2;
    const double s = muS1 / del;
    I[j] = S0 + s * kI * gp3;
    Q[j] = -s * (ki2 * kQ + kI * (kV * fU - kU * fV) + fQ * gp2);
    U[j] = -s * (ki2 * kU + kI * (kQ * fV - kV * fQ) + fU * gp2);
    V[j] = -s * (ki2 * kV + kI * (kU * fQ - kQ * fU) + fV * gp2);
  }
  if (stray) {
    // filling factor: f * magnetic + (1 - f) * the same atmosphere with B = 0
#pragma omp simd
    for (int64_t j = 0; j < n; ++j) {
      const double inm = S0 + muS1 / (1.0 + e0 * p0[j]);
      I[j] = f * I[j] + (1.0 - f) * inm;
      Q[j] *= f;
      U[j] *= f;
      V[j] *= f;
    }
  }
}

}  // namespace FASTINV_FADDEEVA_NS
}  // namespace fastinv::stokes::detail
