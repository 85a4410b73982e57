// Milne-Eddington profile AND its analytic derivatives (internal header), compiled once per
// instruction set like me_kernel.hpp (which must be included first) -- used by the
// Levenberg-Marquardt inversion (me_inversion.cpp).
//
// Derivatives (the formulation of Orozco Suarez & del Toro Iniesta 2007, A&A 462, 1137):
//   * Voigt/Faraday functions, w = H + iF at z = u + i a: w' = -2 z w + 2i/sqrt(pi), so
//     dH/du = -2(uH - aF), dF/du = -2(uF + aH) + 2/sqrt(pi), dH/da = -dF/du, dF/da = dH/du.
//   * u = (lambda - lambda0 (1 + v/c)) / dld - s vB with vB = kL lambda0^2 B / dld: du/dB =
//     -s kL lambda0^2 / dld, du/dv = -lambda0 / (c dld), du/dDoppler = -u / Doppler.
//   * Propagation-matrix elements and the Unno-Rachkovsky solution: exact forward-mode
//     differentiation (Dual below) in the 7 parameters that enter the matrix (B, gamma, chi,
//     v, Doppler width, a, eta0); S0, S1 and the filling factor enter linearly.
// Parameter order of the derivative rows: B, inclination, azimuth, vlos, doppler_width,
// damping, eta0, S0, S1, filling_factor (kMeDerivs), internal units (rad, Angstrom).
//
// Precision R: double, or float for the inversion's single-precision Jacobian (twice the
// lanes per vector; the outputs are written in double either way). In float, the points'
// offsets from the line centre are formed in double and then rounded (6302 A minus 6302 A
// in float would lose the profile), the Taylor table and the far-wing polynomial are
// computed in double and rounded; the rest is float arithmetic.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "stokes/me_kernel.hpp"

namespace fastinv::stokes::detail {
namespace FASTINV_FADDEEVA_NS {

// Value + gradient in the 7 matrix parameters (forward-mode automatic differentiation),
// for Lanes<R> consecutive wavelength points at once (one 64-byte vector: 8 doubles or 16
// floats): every operation is a fixed-length loop over the lanes, which the compiler turns
// into one vector instruction per slot (a Dual per point, as a struct of 8 doubles, was left
// scalar by the vectoriser).
template <typename R>
constexpr int kLanesOf = 64 / static_cast<int>(sizeof(R));
// GCC would otherwise keep some of these as calls (they are large once unrolled).
#if defined(__GNUC__)
#define FASTINV_DUAL_INLINE inline __attribute__((always_inline))
#else
#define FASTINV_DUAL_INLINE inline
#endif
template <typename R>
struct Dual {
  static constexpr int L = kLanesOf<R>;
  R v[L];
  R d[7][L];
};
template <typename R>
FASTINV_DUAL_INLINE Dual<R> dconst(R v) {
  constexpr int L = kLanesOf<R>;
  Dual<R> r;
  for (int l = 0; l < L; ++l) r.v[l] = v;
  for (int k = 0; k < 7; ++k)
    for (int l = 0; l < L; ++l) r.d[k][l] = R(0);
  return r;
}
template <typename R>
FASTINV_DUAL_INLINE Dual<R> operator+(const Dual<R>& a, const Dual<R>& b) {
  constexpr int L = kLanesOf<R>;
  Dual<R> r;
  for (int l = 0; l < L; ++l) r.v[l] = a.v[l] + b.v[l];
  for (int k = 0; k < 7; ++k)
    for (int l = 0; l < L; ++l) r.d[k][l] = a.d[k][l] + b.d[k][l];
  return r;
}
template <typename R>
FASTINV_DUAL_INLINE Dual<R> operator-(const Dual<R>& a, const Dual<R>& b) {
  constexpr int L = kLanesOf<R>;
  Dual<R> r;
  for (int l = 0; l < L; ++l) r.v[l] = a.v[l] - b.v[l];
  for (int k = 0; k < 7; ++k)
    for (int l = 0; l < L; ++l) r.d[k][l] = a.d[k][l] - b.d[k][l];
  return r;
}
template <typename R>
FASTINV_DUAL_INLINE Dual<R> operator-(const Dual<R>& a) {
  constexpr int L = kLanesOf<R>;
  Dual<R> r;
  for (int l = 0; l < L; ++l) r.v[l] = -a.v[l];
  for (int k = 0; k < 7; ++k)
    for (int l = 0; l < L; ++l) r.d[k][l] = -a.d[k][l];
  return r;
}
template <typename R>
FASTINV_DUAL_INLINE Dual<R> operator*(const Dual<R>& a, const Dual<R>& b) {
  constexpr int L = kLanesOf<R>;
  Dual<R> r;
  for (int l = 0; l < L; ++l) r.v[l] = a.v[l] * b.v[l];
  for (int k = 0; k < 7; ++k)
    for (int l = 0; l < L; ++l) r.d[k][l] = a.d[k][l] * b.v[l] + a.v[l] * b.d[k][l];
  return r;
}
template <typename R>
FASTINV_DUAL_INLINE Dual<R> operator*(R s, const Dual<R>& a) {
  constexpr int L = kLanesOf<R>;
  Dual<R> r;
  for (int l = 0; l < L; ++l) r.v[l] = s * a.v[l];
  for (int k = 0; k < 7; ++k)
    for (int l = 0; l < L; ++l) r.d[k][l] = s * a.d[k][l];
  return r;
}
template <typename R>
FASTINV_DUAL_INLINE Dual<R> inverse(const Dual<R>& a) {
  constexpr int L = kLanesOf<R>;
  Dual<R> r;
  R m[L];
  for (int l = 0; l < L; ++l) {
    r.v[l] = R(1) / a.v[l];
    m[l] = -r.v[l] * r.v[l];
  }
  for (int k = 0; k < 7; ++k)
    for (int l = 0; l < L; ++l) r.d[k][l] = m[l] * a.d[k][l];
  return r;
}

// FarPoly's coefficients rounded to R.
template <typename R>
struct FarPolyR {
  R D[7], A[6], B[6];
  explicit FarPolyR(const FarPoly& fp) {
    for (int k = 0; k < 7; ++k) D[k] = static_cast<R>(fp.D[k]);
    for (int k = 0; k < 6; ++k) {
      A[k] = static_cast<R>(fp.A[k]);
      B[k] = static_cast<R>(fp.B[k]);
    }
  }
};

// H and F of one Zeeman component at u = x - shift for all n points: the near region by
// the Taylor table, the far wings by the FarPoly rational (the same methods as me_profile).
template <typename R>
inline void hf_component(const FarPolyR<R>& fp, const R* tre, const R* tim, R a, R r, bool near, const R* x, R shift,
                         int64_t n, R* u, R* H, R* F) {
#pragma omp simd
  for (int64_t j = 0; j < n; ++j) {
    const R v = x[j] - shift, t = v * v;
    u[j] = v;
    const R dd = (((((t + fp.D[5]) * t + fp.D[4]) * t + fp.D[3]) * t + fp.D[2]) * t + fp.D[1]) * t + fp.D[0];
    const R aa = ((((fp.A[5] * t + fp.A[4]) * t + fp.A[3]) * t + fp.A[2]) * t + fp.A[1]) * t + fp.A[0];
    const R bb = ((((fp.B[5] * t + fp.B[4]) * t + fp.B[3]) * t + fp.B[2]) * t + fp.B[1]) * t + fp.B[0];
    const R id = R(1) / dd;
    H[j] = aa * id;
    F[j] = bb * v * id;
  }
  if (!near) return;
  int64_t lo = 0, hi = 0;
#pragma omp simd reduction(+ : lo, hi)
  for (int64_t j = 0; j < n; ++j) {
    lo += (u[j] <= -r) ? 1 : 0;
    hi += (u[j] < r) ? 1 : 0;
  }
  if (hi > lo) near_taylor(tre, tim, a, u + lo, static_cast<std::size_t>(hi - lo), H + lo, F + lo);
}

// phi (q = 0) or psi (q = 1) of group g at points j .. j + L - 1 with its gradient (slots
// B, v, Doppler width, a; the layout of the sums in me_profile_deriv; the sums are padded so
// that a last partial block reads inside the buffer)
template <typename R>
FASTINV_DUAL_INLINE Dual<R> load_sum(const R* sums, int64_t n, int q, int g, int64_t j) {
  constexpr int L = kLanesOf<R>;
  const int r = q * 4 + g;
  Dual<R> x = dconst(R(0));
  for (int l = 0; l < L; ++l) {
    x.v[l] = sums[r * n + j + l];
    x.d[0][l] = sums[(8 + r) * n + j + l];
    x.d[3][l] = sums[(16 + r) * n + j + l];
    x.d[4][l] = sums[(24 + r) * n + j + l];
    x.d[5][l] = sums[(32 + r) * n + j + l];
  }
  return x;
}

// prof: 4 x n (I, Q, U, V); jac: kMeDerivs x 4 x n, in double for either R.
template <typename R>
inline void me_profile_deriv(const std::vector<MELineData>& lines, const double* wl, int64_t n, const MEProfileInput& p,
                             MEDerivBuffers<R>& w, double* prof, double* jac) {
  constexpr int kLanes = kLanesOf<R>;
  const FaddeevaTables& T = faddeeva_tables();
  const double a = p.damping;
  const R ar = static_cast<R>(a);
  R* x = w.x.data();
  R* u = w.u.data();
  R* H = w.h.data();
  R* F = w.f.data();
  // sums[(q * 4 + g) * n]: q = 0 phi, 1 psi, 2/3 d/dB, 4/5 d/dv, 6/7 d/dDoppler, 8/9 d/da
  // (phi, psi alternate); g = 0 sigma_b, 1 pi, 2 sigma_r, 3 unmagnetised
  R* sums = w.sums.data();
  bool touched[4] = {false, false, false, false};
  const double lim = kFaddeevaInnerR2 - a * a;
  const R r = static_cast<R>(lim > 0.0 ? std::sqrt(lim) : 0.0);
  alignas(64) double tre[kTaylorNodes], tim[kTaylorNodes];
  alignas(64) R tre_r[kTaylorNodes], tim_r[kTaylorNodes];
  if (lim > 0.0) {
    taylor_table(T, a, tre, tim);
    for (int k = 0; k < kTaylorNodes; ++k) {
      tre_r[k] = static_cast<R>(tre[k]);
      tim_r[k] = static_cast<R>(tim[k]);
    }
  }
  FarPoly fp64;
  far_poly(T, a, fp64);
  const FarPolyR<R> fp(fp64);
  const R two_isp = R(2.0 * kInvSqrtPi);
  const double inv_dw = 1.0 / p.doppler_width;

  for (const MELineData& Ln : lines) {
    const double dld = p.doppler_width * Ln.scale;
    const double centre = Ln.lambda0 * (1.0 + p.vlos * kInvCkms);
    const double inv = 1.0 / dld;
#pragma omp simd
    for (int64_t j = 0; j < n; ++j) x[j] = static_cast<R>((wl[j] - centre) * inv);
    const double dvB_dB = kLarmor * Ln.lambda0 * Ln.lambda0 * inv;
    const double vB = dvB_dB * p.B;
    const double du_dv = -Ln.lambda0 * kInvCkms * inv;
    // the unmagnetised component (last): only where f < 1 or d/df is asked for
    const std::size_t ncomp = Ln.comps.size() + (p.filling_factor < 1.0 || p.filling_derivative ? 1 : 0);
    for (std::size_t c = 0; c < ncomp; ++c) {
      const bool is_stray = c == Ln.comps.size();
      const int g = is_stray ? 3 : Ln.comps[c].group;
      const double s = is_stray ? 0.0 : Ln.comps[c].shift;
      const double wt_d = is_stray ? Ln.ratio * kInvSqrtPi : Ln.comps[c].weight;
      hf_component(fp, tre_r, tim_r, ar, r, lim > 0.0, x, static_cast<R>(s * vB), n, u, H, F);
      R* ph = sums + (0 + g) * n;
      R* ps = sums + (4 + g) * n;
      R* phB = sums + (8 + g) * n;
      R* psB = sums + (12 + g) * n;
      R* phv = sums + (16 + g) * n;
      R* psv = sums + (20 + g) * n;
      R* phw = sums + (24 + g) * n;
      R* psw = sums + (28 + g) * n;
      R* pha = sums + (32 + g) * n;
      R* psa = sums + (36 + g) * n;
      const R wt = static_cast<R>(wt_d);
      const R cB = static_cast<R>(-s * dvB_dB * wt_d), cv = static_cast<R>(du_dv * wt_d),
              cw = static_cast<R>(-inv_dw * wt_d);
      // a group's first component stores, the others add (no zeroing pass over the sums)
      if (touched[g]) {
#pragma omp simd
        for (int64_t j = 0; j < n; ++j) {
          const R hu = R(-2) * (u[j] * H[j] - ar * F[j]);
          const R fu = R(-2) * (u[j] * F[j] + ar * H[j]) + two_isp;
          ph[j] += wt * H[j];
          ps[j] += wt * F[j];
          phB[j] += cB * hu;
          psB[j] += cB * fu;
          phv[j] += cv * hu;
          psv[j] += cv * fu;
          phw[j] += cw * u[j] * hu;
          psw[j] += cw * u[j] * fu;
          pha[j] -= wt * fu;
          psa[j] += wt * hu;
        }
      } else {
#pragma omp simd
        for (int64_t j = 0; j < n; ++j) {
          const R hu = R(-2) * (u[j] * H[j] - ar * F[j]);
          const R fu = R(-2) * (u[j] * F[j] + ar * H[j]) + two_isp;
          ph[j] = wt * H[j];
          ps[j] = wt * F[j];
          phB[j] = cB * hu;
          psB[j] = cB * fu;
          phv[j] = cv * hu;
          psv[j] = cv * fu;
          phw[j] = cw * u[j] * hu;
          psw[j] = cw * u[j] * fu;
          pha[j] = -(wt * fu);
          psa[j] = wt * hu;
        }
        touched[g] = true;
      }
    }
  }
  for (int g = 0; g < 4; ++g)
    if (!touched[g])
      for (int q = 0; q < 10; ++q) zero_rows(sums + (4 * q + g) * n, n, 1);

  const double sg = std::sin(p.inclination), cg = std::cos(p.inclination);
  const double c2x = std::cos(2.0 * p.azimuth), s2x = std::sin(2.0 * p.azimuth);
  Dual<R> s2 = dconst(R(sg * sg)), c2p1 = dconst(R(0.5 * (1.0 + cg * cg))), dcg = dconst(R(cg));
  Dual<R> dc2x = dconst(R(c2x)), ds2x = dconst(R(s2x)), h = dconst(R(0.5 * p.eta0));
  for (int l = 0; l < kLanes; ++l) {
    s2.d[1][l] = R(2.0 * sg * cg);
    c2p1.d[1][l] = R(-cg * sg);
    dcg.d[1][l] = R(-sg);
    dc2x.d[2][l] = R(-2.0 * s2x);
    ds2x.d[2][l] = R(2.0 * c2x);
    h.d[6][l] = R(0.5);
  }
  const R mu = R(p.mu), S0 = R(p.S0), S1 = R(p.S1), f = R(p.filling_factor), e0 = R(p.eta0);
  const int64_t plane = 4 * n;
  // derivative rows of B, gamma, chi, v, Doppler, a, eta0 map to Dual slots 0..6
  // blocks of kLanes points (the Dual operations are the vector loops)
  const R* p0v = sums + 3 * n;
  const R fS1 = f * S1, g = R(1) - f;
  constexpr int kRows = 4 + 4 * kMeDerivs;
  double* base[kRows];  // the output rows
  for (int row = 0; row < kRows; ++row)
    base[row] = row < 4 ? prof + row * n : jac + ((row - 4) / 4) * plane + ((row - 4) % 4) * n;
  for (int64_t j0 = 0; j0 < n; j0 += kLanes) {
    const Dual<R> pb = load_sum(sums, n, 0, 0, j0), pp = load_sum(sums, n, 0, 1, j0), pr = load_sum(sums, n, 0, 2, j0);
    const Dual<R> qb = load_sum(sums, n, 1, 0, j0), qp = load_sum(sums, n, 1, 1, j0), qr = load_sum(sums, n, 1, 2, j0);
    const Dual<R> sb = pb + pr, sr = qb + qr;
    const Dual<R> kI = dconst(R(1)) + h * (pp * s2 + sb * c2p1);
    const Dual<R> lin = h * (pp - R(0.5) * sb) * s2;
    const Dual<R> kQ = lin * dc2x, kU = lin * ds2x, kV = h * (pr - pb) * dcg;
    const Dual<R> rlin = h * (qp - R(0.5) * sr) * s2;
    const Dual<R> fQ = rlin * dc2x, fU = rlin * ds2x, fV = h * (qr - qb) * dcg;
    const Dual<R> ki2 = kI * kI;
    const Dual<R> gp3 = ki2 + fQ * fQ + fU * fU + fV * fV;
    const Dual<R> gp1 = gp3 - (kQ * kQ + kU * kU + kV * kV);
    const Dual<R> gp2 = kQ * fQ + kU * fU + kV * fV;
    const Dual<R> t = mu * inverse(ki2 * gp1 - gp2 * gp2);  // I = S0 + S1 t XI, Q = -S1 t XQ, ...
    const Dual<R> XI = t * (kI * gp3);
    const Dual<R> XQ = -(t * (ki2 * kQ + kI * (kV * fU - kU * fV) + fQ * gp2));
    const Dual<R> XU = -(t * (ki2 * kU + kI * (kQ * fV - kV * fQ) + fU * gp2));
    const Dual<R> XV = -(t * (ki2 * kV + kI * (kU * fQ - kQ * fU) + fV * gp2));
    const int lanes = static_cast<int>(std::min<int64_t>(kLanes, n - j0));
    // The block's outputs are written with fixed-length lane loops (vector instructions; a
    // loop over a run-time lane count stays scalar): straight into prof and jac for a full
    // block, into o and then copied for the last, partial one. Rows: I, Q, U, V, then 4 per
    // derivative parameter (kMeDerivs of them).
    alignas(64) double o[kRows][kLanes];
    double* w[kRows];
    const bool full = lanes == kLanes;
    for (int row = 0; row < kRows; ++row) w[row] = full ? base[row] + j0 : o[row];
    const Dual<R>* X[4] = {&XI, &XQ, &XU, &XV};
    for (int st = 0; st < 4; ++st) {
      const R* xv = X[st]->v;
      for (int k = 0; k < 7; ++k) {
        const R* xd = X[st]->d[k];
        double* y = w[4 + 4 * k + st];
#pragma omp simd
        for (int l = 0; l < kLanes; ++l) y[l] = fS1 * xd[l];
      }
      if (st > 0) {
        double *y0 = w[st], *y7 = w[4 + 4 * 7 + st], *y8 = w[4 + 4 * 8 + st], *y9 = w[4 + 4 * 9 + st];
#pragma omp simd
        for (int l = 0; l < kLanes; ++l) {
          y0[l] = fS1 * xv[l];
          y7[l] = 0.0;  // S0 (both parts)
          y8[l] = f * xv[l];
          y9[l] = S1 * xv[l];
        }
      }
    }
    const R* s16 = sums + (16 + 3) * n + j0;
    const R* s24 = sums + (24 + 3) * n + j0;
    const R* s32 = sums + (32 + 3) * n + j0;
    double *yI = w[0], *y3 = w[4 + 4 * 3], *y4 = w[4 + 4 * 4], *y5 = w[4 + 4 * 5], *y6 = w[4 + 4 * 6];
    double *y7 = w[4 + 4 * 7], *y8 = w[4 + 4 * 8], *y9 = w[4 + 4 * 9];
#pragma omp simd
    for (int l = 0; l < kLanes; ++l) {
      // unmagnetised part: Inm = S0 + S1 mu / (1 + eta0 p0)
      const R p0 = p0v[j0 + l];
      const R den = R(1) / (R(1) + e0 * p0);
      const R m0 = mu * den;
      const R Inm = S0 + S1 * m0;
      const R magI = S0 + S1 * XI.v[l];
      yI[l] = f * magI + g * Inm;
      // the unmagnetised part's dependence on v, Doppler width, a, eta0 (zero when f = 1)
      const R dInm_dp0 = -S1 * mu * e0 * den * den;
      y3[l] += g * dInm_dp0 * s16[l];
      y4[l] += g * dInm_dp0 * s24[l];
      y5[l] += g * dInm_dp0 * s32[l];
      y6[l] += g * (-S1 * mu * p0 * den * den);
      y7[l] = 1.0;  // S0 (both parts)
      y8[l] = f * XI.v[l] + g * m0;
      y9[l] = magI - Inm;
    }
    if (!full)
      for (int row = 0; row < kRows; ++row)
        for (int l = 0; l < lanes; ++l) base[row][j0 + l] = o[row][l];
  }
}

}  // namespace FASTINV_FADDEEVA_NS
}  // namespace fastinv::stokes::detail
