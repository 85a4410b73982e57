// Per-profile Milne-Eddington kernel (internal header), compiled once per instruction set
// (me_kernel_generic.cpp / _avx2.cpp / _avx512.cpp define FASTINV_FADDEEVA_NS and include
// this file) so that the Faddeeva evaluation, the profile sums and the Unno-Rachkovsky
// solution are all vectorised for the CPU at hand; milne_eddington.cpp picks one.
//
// Structure (why): for a sorted wavelength grid the points of one Zeeman component that
// need the near-region method (|v|^2 + a^2 < 36) form one contiguous range. The far points
// of every component are evaluated with the cheap rational (as real polynomials in v^2
// with per-profile coefficients, far_poly) and added straight into the profile sums; the
// near points of ALL components of a line are gathered into one long buffer and evaluated
// together (long, full SIMD loops instead of ~20-point remnants per component), by Taylor
// series from a per-profile node table (near_taylor), then added back range by range.
#pragma once
#include <cmath>
#include <complex>
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
// 9 terms, |delta| <= 1/8: 7.6e-12 complex (absolute), 2.3e-7 in H (H > 1e-9) relative
// to wofz on |z| < 6 (10 terms: 4e-13, 1.3e-8; the far-wing rational beyond |z| = 6 is
// 1e-8 complex relative, ~1e-9 absolute, so the 10th term bought nothing in the profiles)
// -- under a third of the work of Weideman's 38-term expansion at every point.
constexpr double kTaylorStep = 0.25;
constexpr int kTaylorHalf = 24;  // nodes k = -24 .. 24 (|x_k| <= 6)
constexpr int kTaylorNodes = 2 * kTaylorHalf + 1;
constexpr int kTaylorTerms = 9;

// Only x_k >= 0 is evaluated: w(-x + i a) = conj(w(x + i a)). The count is padded to a
// multiple of 8 (nodes beyond |x| = 6 are valid, just unused) so that the Horner loops of
// w_near_block have no scalar remainder.
constexpr int kTaylorHalfPadded = (kTaylorHalf + 1 + 7) / 8 * 8;

inline void taylor_table(const FaddeevaTables& T, double a, double* tre, double* tim) {
  alignas(64) double nodes[kTaylorHalfPadded], re[kTaylorHalfPadded], im[kTaylorHalfPadded];
  for (int k = 0; k < kTaylorHalfPadded; ++k) nodes[k] = kTaylorStep * k;
  w_near_block(T, a, nodes, kTaylorHalfPadded, re, im);
  for (int k = 0; k <= kTaylorHalf; ++k) {
    tre[kTaylorHalf + k] = re[k];
    tim[kTaylorHalf + k] = im[k];
    tre[kTaylorHalf - k] = re[k];
    tim[kTaylorHalf - k] = -im[k];
  }
}

// R = double, or float for the inversion's single-precision Jacobian (me_deriv_kernel.hpp:
// the same series; its 9 terms are far below float rounding).
template <typename R>
constexpr R kRoundMagic = R(6755399441055744.0);  // 1.5 * 2^52
template <>
constexpr float kRoundMagic<float> = 12582912.0f;  // 1.5 * 2^23

template <typename R>
inline void near_taylor(const R* tre, const R* tim, R a, const R* v, std::size_t m, R* H, R* F) {
  constexpr R magic = kRoundMagic<R>;
#pragma omp simd
  for (std::size_t j = 0; j < m; ++j) {
    // nearest node index round(v / step) by the 1.5 * 2^52 (float: 2^23) trick (vectorises,
    // unlike floor)
    const R kf = (v[j] * R(1.0 / kTaylorStep) + magic) - magic;
    const int k = static_cast<int>(kf) + kTaylorHalf;
    const R zr = R(kTaylorStep) * kf, zi = a;
    const R d = v[j] - zr;
    R c0r = tre[k], c0i = tim[k];
    R c1r = R(-2.0) * (zr * c0r - zi * c0i);
    R c1i = R(-2.0) * (zr * c0i + zi * c0r) + R(2.0 * kInvSqrtPi);
    R sr = c0r + c1r * d, si = c0i + c1i * d, p = d;
#pragma GCC unroll 16
    for (int n = 1; n < kTaylorTerms; ++n) {
      const R f = R(-2.0 / (n + 1));  // a constant once the loop is unrolled
      const R nr = f * (zr * c1r - zi * c1i + c0r);
      const R ni = f * (zr * c1i + zi * c1r + c0i);
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

// Far wing, |z| >= 6: the same 6-node Gauss-Hermite rational as w_far, rewritten for the
// profile's fixed damping a as real polynomials in t = v^2 (v = x - shift):
//   w(v + i a) = (A(t) + i v B(t)) / D(t),
// D = |Q(u)|^2 (degree 6, monic), A + i v B = (2 i z / pi) P(u) conj(Q(u)), u = z^2
// (H even and F odd in v: the other powers vanish). The coefficients cost a few hundred
// flops per profile; per point this is 17 FMAs and one division instead of the complex
// products and division of w_far (the far wing is most of the points of most components).
// Same values as w_far to 4e-15 relative over |z| >= 6, 0 <= a <= 12: no cancellation
// there, as t - tau_k >= 30 for the Gauss-Hermite nodes tau_k = t_k^2 <= 5.6.
struct FarPoly {
  double D[7], A[6], B[6];
};

inline void far_poly(const FaddeevaTables& T, double a, FarPoly& fp) {
  using C = std::complex<double>;
  // polynomials in x, lowest power first
  auto mul = [](const C* p, int np, const C* q, int nq, C* out) {
    for (int k = 0; k < np + nq - 1; ++k) out[k] = 0.0;
    for (int i = 0; i < np; ++i)
      for (int j = 0; j < nq; ++j) out[i + j] += p[i] * q[j];
  };
  // r(u(x)) for r(u) = sum_k c_k u^k (real c_k, degree deg), u(x) quadratic in x
  auto compose = [&](const double* c, int deg, const C* u, C* out) {
    C acc[7], tmp[7];
    int na = 1;
    acc[0] = c[deg];
    for (int k = deg - 1; k >= 0; --k) {
      mul(acc, na, u, 3, tmp);
      na += 2;
      for (int i = 0; i < na; ++i) acc[i] = tmp[i];
      acc[0] += c[k];
    }
    for (int i = 0; i < na; ++i) out[i] = acc[i];
  };
  const C u[3] = {C(-a * a, 0.0), C(0.0, 2.0 * a), C(1.0, 0.0)};    // (x + i a)^2
  const C uc[3] = {C(-a * a, 0.0), C(0.0, -2.0 * a), C(1.0, 0.0)};  // (x - i a)^2
  const double q[4] = {T.q[0], T.q[1], T.q[2], 1.0};
  C pu[5], qu[7], qc[7], zp[6], n[12], d[13];
  compose(T.p.data(), 2, u, pu);
  compose(q, 3, u, qu);
  compose(q, 3, uc, qc);
  const C z2[2] = {C(-2.0 * a * kInvPi, 0.0), C(0.0, 2.0 * kInvPi)};  // 2 i z / pi
  mul(z2, 2, pu, 5, zp);
  mul(zp, 6, qc, 7, n);
  mul(qu, 7, qc, 7, d);
  for (int k = 0; k < 7; ++k) fp.D[k] = d[2 * k].real();
  for (int k = 0; k < 6; ++k) {
    fp.A[k] = n[2 * k].real();
    fp.B[k] = n[2 * k + 1].imag();
  }
}

// ph += wt H, ps += wt F at v = x_j - shift, j in [j0, j1), by FarPoly.
inline void far_add(const FarPoly& fp, const double* x, double shift, double wt, int64_t j0, int64_t j1, double* ph,
                    double* ps) {
  const double d0 = fp.D[0], d1 = fp.D[1], d2 = fp.D[2], d3 = fp.D[3], d4 = fp.D[4], d5 = fp.D[5];
  const double a0 = fp.A[0], a1 = fp.A[1], a2 = fp.A[2], a3 = fp.A[3], a4 = fp.A[4], a5 = fp.A[5];
  const double b0 = fp.B[0], b1 = fp.B[1], b2 = fp.B[2], b3 = fp.B[3], b4 = fp.B[4], b5 = fp.B[5];
#pragma omp simd
  for (int64_t j = j0; j < j1; ++j) {
    const double v = x[j] - shift, t = v * v;
    const double dd = (((((t + d5) * t + d4) * t + d3) * t + d2) * t + d1) * t + d0;
    const double aa = ((((a5 * t + a4) * t + a3) * t + a2) * t + a1) * t + a0;
    const double bb = ((((b5 * t + b4) * t + b3) * t + b2) * t + b1) * t + b0;
    const double sc = wt / dd;
    ph[j] += aa * sc;
    ps[j] += bb * v * sc;
  }
}

// rows * n zeros from p on. Kept a plain vector loop: GCC otherwise turns it into memset
// calls (rep stos), whose start-up cost per ~1 kB row was ~2.5% of a profile.
template <typename R>
#if defined(__GNUC__) && !defined(__clang__)
__attribute__((optimize("no-tree-loop-distribute-patterns")))
#endif
inline void zero_rows(R* p, int64_t n, int rows) {
  const int64_t m = n * rows;
#pragma omp simd
  for (int64_t j = 0; j < m; ++j) p[j] = R(0);
}

inline void me_profile(const std::vector<MELineData>& lines, const double* wl, int64_t n, const MEProfileInput& p,
                       MEWork& w, double* prof) {
  const FaddeevaTables& T = faddeeva_tables();
  const double a = p.damping;
  double* x = w.x.data();
  double* sums = w.sums.data();  // phi_b, phi_p, phi_r, phi_0, psi_b, psi_p, psi_r, psi_0
  const bool stray = p.filling_factor < 1.0;
  const int ngroups = stray ? 4 : 3;
  zero_rows(sums, n, ngroups);
  zero_rows(sums + 4 * n, n, ngroups);
  const double lim = kFaddeevaInnerR2 - a * a;
  const double r = lim > 0.0 ? std::sqrt(lim) : 0.0;
  alignas(64) double tre[kTaylorNodes], tim[kTaylorNodes];
  if (lim > 0.0) taylor_table(T, a, tre, tim);
  FarPoly fp;
  far_poly(T, a, fp);

  for (const MELineData& L : lines) {
    const double dld = p.doppler_width * L.scale;
    const double centre = L.lambda0 * (1.0 + p.vlos * kInvCkms);  // positive vlos = redshift
    const double inv = 1.0 / dld;
#pragma omp simd
    for (int64_t j = 0; j < n; ++j) x[j] = (wl[j] - centre) * inv;
    const double vB = kLarmor * L.lambda0 * L.lambda0 * p.B * inv;

    std::size_t nnear = 0, nsegments = 0;
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
      far_add(fp, x, shift, wt, 0, lo, ph, ps);
      far_add(fp, x, shift, wt, hi, n, ph, ps);
      if (hi > lo) {
        double* v = w.near_v.data() + nnear;
#pragma omp simd
        for (int64_t j = lo; j < hi; ++j) v[j - lo] = x[j] - shift;
        w.segments[nsegments++] = {g, wt, lo, hi, nnear};
        nnear += static_cast<std::size_t>(hi - lo);
      }
    }
    // all near points of this line at once
    near_taylor(tre, tim, a, w.near_v.data(), nnear, w.near_h.data(), w.near_f.data());
    for (std::size_t k = 0; k < nsegments; ++k) {
      const MESegment& sg = w.segments[k];
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
