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
// for kLanes consecutive wavelength points at once: every operation is a fixed-length loop
// over the lanes, which the compiler turns into one vector instruction per slot (a Dual per
// point, as a struct of 8 doubles, was left scalar by the vectoriser).
constexpr int kLanes = 8;
// GCC would otherwise keep some of these as calls (they are large once unrolled).
#if defined(__GNUC__)
#define FASTINV_DUAL_INLINE inline __attribute__((always_inline))
#else
#define FASTINV_DUAL_INLINE inline
#endif
struct Dual {
  double v[kLanes];
  double d[7][kLanes];
};
FASTINV_DUAL_INLINE Dual dconst(double v) {
  Dual r;
  for (int l = 0; l < kLanes; ++l) r.v[l] = v;
  for (int k = 0; k < 7; ++k)
    for (int l = 0; l < kLanes; ++l) r.d[k][l] = 0.0;
  return r;
}
FASTINV_DUAL_INLINE Dual operator+(const Dual& a, const Dual& b) {
  Dual r;
  for (int l = 0; l < kLanes; ++l) r.v[l] = a.v[l] + b.v[l];
  for (int k = 0; k < 7; ++k)
    for (int l = 0; l < kLanes; ++l) r.d[k][l] = a.d[k][l] + b.d[k][l];
  return r;
}
FASTINV_DUAL_INLINE Dual operator-(const Dual& a, const Dual& b) {
  Dual r;
  for (int l = 0; l < kLanes; ++l) r.v[l] = a.v[l] - b.v[l];
  for (int k = 0; k < 7; ++k)
    for (int l = 0; l < kLanes; ++l) r.d[k][l] = a.d[k][l] - b.d[k][l];
  return r;
}
FASTINV_DUAL_INLINE Dual operator-(const Dual& a) {
  Dual r;
  for (int l = 0; l < kLanes; ++l) r.v[l] = -a.v[l];
  for (int k = 0; k < 7; ++k)
    for (int l = 0; l < kLanes; ++l) r.d[k][l] = -a.d[k][l];
  return r;
}
FASTINV_DUAL_INLINE Dual operator*(const Dual& a, const Dual& b) {
  Dual r;
  for (int l = 0; l < kLanes; ++l) r.v[l] = a.v[l] * b.v[l];
  for (int k = 0; k < 7; ++k)
    for (int l = 0; l < kLanes; ++l) r.d[k][l] = a.d[k][l] * b.v[l] + a.v[l] * b.d[k][l];
  return r;
}
FASTINV_DUAL_INLINE Dual operator*(double s, const Dual& a) {
  Dual r;
  for (int l = 0; l < kLanes; ++l) r.v[l] = s * a.v[l];
  for (int k = 0; k < 7; ++k)
    for (int l = 0; l < kLanes; ++l) r.d[k][l] = s * a.d[k][l];
  return r;
}
FASTINV_DUAL_INLINE Dual inverse(const Dual& a) {
  Dual r;
  double m[kLanes];
  for (int l = 0; l < kLanes; ++l) {
    r.v[l] = 1.0 / a.v[l];
    m[l] = -r.v[l] * r.v[l];
  }
  for (int k = 0; k < 7; ++k)
    for (int l = 0; l < kLanes; ++l) r.d[k][l] = m[l] * a.d[k][l];
  return r;
}

// H and F of one Zeeman component at u = x - shift for all n points: the near region by
// the Taylor table, the far wings by the FarPoly rational (the same methods as me_profile).
inline void hf_component(const FarPoly& fp, const double* tre, const double* tim, double a, double r, bool near,
                         const double* x, double shift, int64_t n, double* u, double* H, double* F) {
#pragma omp simd
  for (int64_t j = 0; j < n; ++j) {
    const double v = x[j] - shift, t = v * v;
    u[j] = v;
    const double dd = (((((t + fp.D[5]) * t + fp.D[4]) * t + fp.D[3]) * t + fp.D[2]) * t + fp.D[1]) * t + fp.D[0];
    const double aa = ((((fp.A[5] * t + fp.A[4]) * t + fp.A[3]) * t + fp.A[2]) * t + fp.A[1]) * t + fp.A[0];
    const double bb = ((((fp.B[5] * t + fp.B[4]) * t + fp.B[3]) * t + fp.B[2]) * t + fp.B[1]) * t + fp.B[0];
    const double id = 1.0 / dd;
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

// phi (q = 0) or psi (q = 1) of group g at points j .. j + kLanes - 1 with its gradient
// (slots B, v, Doppler width, a; the layout of the sums in me_profile_deriv; the sums are
// padded so that a last partial block reads inside the buffer)
FASTINV_DUAL_INLINE Dual load_sum(const double* sums, int64_t n, int q, int g, int64_t j) {
  const int r = q * 4 + g;
  Dual x = dconst(0.0);
  for (int l = 0; l < kLanes; ++l) {
    x.v[l] = sums[r * n + j + l];
    x.d[0][l] = sums[(8 + r) * n + j + l];
    x.d[3][l] = sums[(16 + r) * n + j + l];
    x.d[4][l] = sums[(24 + r) * n + j + l];
    x.d[5][l] = sums[(32 + r) * n + j + l];
  }
  return x;
}

// prof: 4 x n (I, Q, U, V); jac: kMeDerivs x 4 x n.
inline void me_profile_deriv(const std::vector<MELineData>& lines, const double* wl, int64_t n, const MEProfileInput& p,
                             MEDerivWork& w, double* prof, double* jac) {
  const FaddeevaTables& T = faddeeva_tables();
  const double a = p.damping;
  double* x = w.x.data();
  double* u = w.u.data();
  double* H = w.h.data();
  double* F = w.f.data();
  // sums[(q * 4 + g) * n]: q = 0 phi, 1 psi, 2/3 d/dB, 4/5 d/dv, 6/7 d/dDoppler, 8/9 d/da
  // (phi, psi alternate); g = 0 sigma_b, 1 pi, 2 sigma_r, 3 unmagnetised
  double* sums = w.sums.data();
  bool touched[4] = {false, false, false, false};
  const double lim = kFaddeevaInnerR2 - a * a;
  const double r = lim > 0.0 ? std::sqrt(lim) : 0.0;
  alignas(64) double tre[kTaylorNodes], tim[kTaylorNodes];
  if (lim > 0.0) taylor_table(T, a, tre, tim);
  FarPoly fp;
  far_poly(T, a, fp);
  const double two_isp = 2.0 * kInvSqrtPi;
  const double inv_dw = 1.0 / p.doppler_width;

  for (const MELineData& L : lines) {
    const double dld = p.doppler_width * L.scale;
    const double centre = L.lambda0 * (1.0 + p.vlos * kInvCkms);
    const double inv = 1.0 / dld;
#pragma omp simd
    for (int64_t j = 0; j < n; ++j) x[j] = (wl[j] - centre) * inv;
    const double dvB_dB = kLarmor * L.lambda0 * L.lambda0 * inv;
    const double vB = dvB_dB * p.B;
    const double du_dv = -L.lambda0 * kInvCkms * inv;
    const std::size_t ncomp = L.comps.size() + 1;
    for (std::size_t c = 0; c < ncomp; ++c) {
      const bool is_stray = c == L.comps.size();
      const int g = is_stray ? 3 : L.comps[c].group;
      const double s = is_stray ? 0.0 : L.comps[c].shift;
      const double wt = is_stray ? L.ratio * kInvSqrtPi : L.comps[c].weight;
      hf_component(fp, tre, tim, a, r, lim > 0.0, x, s * vB, n, u, H, F);
      double* ph = sums + (0 + g) * n;
      double* ps = sums + (4 + g) * n;
      double* phB = sums + (8 + g) * n;
      double* psB = sums + (12 + g) * n;
      double* phv = sums + (16 + g) * n;
      double* psv = sums + (20 + g) * n;
      double* phw = sums + (24 + g) * n;
      double* psw = sums + (28 + g) * n;
      double* pha = sums + (32 + g) * n;
      double* psa = sums + (36 + g) * n;
      const double cB = -s * dvB_dB * wt, cv = du_dv * wt, cw = -inv_dw * wt;
      // a group's first component stores, the others add (no zeroing pass over the sums)
      if (touched[g]) {
#pragma omp simd
        for (int64_t j = 0; j < n; ++j) {
          const double hu = -2.0 * (u[j] * H[j] - a * F[j]);
          const double fu = -2.0 * (u[j] * F[j] + a * H[j]) + two_isp;
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
          const double hu = -2.0 * (u[j] * H[j] - a * F[j]);
          const double fu = -2.0 * (u[j] * F[j] + a * H[j]) + two_isp;
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
  Dual s2 = dconst(sg * sg), c2p1 = dconst(0.5 * (1.0 + cg * cg)), dcg = dconst(cg);
  Dual dc2x = dconst(c2x), ds2x = dconst(s2x), h = dconst(0.5 * p.eta0);
  for (int l = 0; l < kLanes; ++l) {
    s2.d[1][l] = 2.0 * sg * cg;
    c2p1.d[1][l] = -cg * sg;
    dcg.d[1][l] = -sg;
    dc2x.d[2][l] = -2.0 * s2x;
    ds2x.d[2][l] = 2.0 * c2x;
    h.d[6][l] = 0.5;
  }
  const double mu = p.mu, S0 = p.S0, S1 = p.S1, f = p.filling_factor, e0 = p.eta0;
  const int64_t plane = 4 * n;
  // derivative rows of B, gamma, chi, v, Doppler, a, eta0 map to Dual slots 0..6
  // blocks of kLanes points (the Dual operations are the vector loops)
  const double* p0v = sums + 3 * n;
  const double fS1 = f * S1, g = 1.0 - f;
  constexpr int kRows = 4 + 4 * kMeDerivs;
  double* base[kRows];  // the output rows
  for (int row = 0; row < kRows; ++row)
    base[row] = row < 4 ? prof + row * n : jac + ((row - 4) / 4) * plane + ((row - 4) % 4) * n;
  for (int64_t j0 = 0; j0 < n; j0 += kLanes) {
    const Dual pb = load_sum(sums, n, 0, 0, j0), pp = load_sum(sums, n, 0, 1, j0), pr = load_sum(sums, n, 0, 2, j0);
    const Dual qb = load_sum(sums, n, 1, 0, j0), qp = load_sum(sums, n, 1, 1, j0), qr = load_sum(sums, n, 1, 2, j0);
    const Dual sb = pb + pr, sr = qb + qr;
    const Dual kI = dconst(1.0) + h * (pp * s2 + sb * c2p1);
    const Dual lin = h * (pp - 0.5 * sb) * s2;
    const Dual kQ = lin * dc2x, kU = lin * ds2x, kV = h * (pr - pb) * dcg;
    const Dual rlin = h * (qp - 0.5 * sr) * s2;
    const Dual fQ = rlin * dc2x, fU = rlin * ds2x, fV = h * (qr - qb) * dcg;
    const Dual ki2 = kI * kI;
    const Dual gp3 = ki2 + fQ * fQ + fU * fU + fV * fV;
    const Dual gp1 = gp3 - (kQ * kQ + kU * kU + kV * kV);
    const Dual gp2 = kQ * fQ + kU * fU + kV * fV;
    const Dual t = mu * inverse(ki2 * gp1 - gp2 * gp2);  // I = S0 + S1 t XI, Q = -S1 t XQ, ...
    const Dual XI = t * (kI * gp3);
    const Dual XQ = -(t * (ki2 * kQ + kI * (kV * fU - kU * fV) + fQ * gp2));
    const Dual XU = -(t * (ki2 * kU + kI * (kQ * fV - kV * fQ) + fU * gp2));
    const Dual XV = -(t * (ki2 * kV + kI * (kU * fQ - kQ * fU) + fV * gp2));
    const int lanes = static_cast<int>(std::min<int64_t>(kLanes, n - j0));
    // The block's outputs are written with fixed-length lane loops (vector instructions; a
    // loop over a run-time lane count stays scalar): straight into prof and jac for a full
    // block, into o and then copied for the last, partial one. Rows: I, Q, U, V, then 4 per
    // derivative parameter (kMeDerivs of them).
    alignas(64) double o[kRows][kLanes];
    double* w[kRows];
    const bool full = lanes == kLanes;
    for (int row = 0; row < kRows; ++row) w[row] = full ? base[row] + j0 : o[row];
    const Dual* X[4] = {&XI, &XQ, &XU, &XV};
    for (int st = 0; st < 4; ++st) {
      const double* xv = X[st]->v;
      for (int k = 0; k < 7; ++k) {
        const double* xd = X[st]->d[k];
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
    const double* s16 = sums + (16 + 3) * n + j0;
    const double* s24 = sums + (24 + 3) * n + j0;
    const double* s32 = sums + (32 + 3) * n + j0;
    double *yI = w[0], *y3 = w[4 + 4 * 3], *y4 = w[4 + 4 * 4], *y5 = w[4 + 4 * 5], *y6 = w[4 + 4 * 6];
    double *y7 = w[4 + 4 * 7], *y8 = w[4 + 4 * 8], *y9 = w[4 + 4 * 9];
#pragma omp simd
    for (int l = 0; l < kLanes; ++l) {
      // unmagnetised part: Inm = S0 + S1 mu / (1 + eta0 p0)
      const double p0 = p0v[j0 + l];
      const double den = 1.0 / (1.0 + e0 * p0);
      const double m0 = mu * den;
      const double Inm = S0 + S1 * m0;
      const double magI = S0 + S1 * XI.v[l];
      yI[l] = f * magI + g * Inm;
      // the unmagnetised part's dependence on v, Doppler width, a, eta0 (zero when f = 1)
      const double dInm_dp0 = -S1 * mu * e0 * den * den;
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
