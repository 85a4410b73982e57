// Milne-Eddington profile AND its analytic derivatives (internal header), compiled once per
// instruction set like me_kernel.hpp (which must be included first) -- used by the
// Levenberg-Marquardt inversion (me_inversion.cpp).
//
// Derivatives (the formulation of Orozco Suarez & del Toro Iniesta 2007, A&A 462, 1137):
//   * Voigt/Faraday functions, w = H + iF at z = u + i a: w' = -2 z w + 2i/sqrt(pi), so
//     dH/du = -2(uH - aF), dF/du = -2(uF + aH) + 2/sqrt(pi), dH/da = -dF/du, dF/da = dH/du.
//   * u = (lambda - lambda0 (1 + v/c)) / dld - s vB with vB = kL lambda0^2 B / dld: du/dB =
//     -s kL lambda0^2 / dld, du/dv = -lambda0 / (c dld), du/dDoppler = -u / Doppler.
//   * Unno-Rachkovsky solution: the chain rule through the 7 propagation-matrix elements
//     (kI, kQ, kU, kV, fQ, fU, fV). X = c t N_X with t = mu / Delta: per point, the partials
//     dX/de = c t dN_X/de - (X / Delta) dDelta/de in plain arithmetic, contracted with the
//     elements' gradients, which are sparse -- the phi/psi sums carry B, v, Doppler width and
//     a, the geometry factors only inclination or azimuth, eta0/2 only eta0. (This replaced
//     forward-mode dual numbers with 7 slots per operation: the same derivatives to rounding,
//     6-14 % less kernel time in float32, 11 % in float64;
//     bench/results/me_deriv_chain_rule.md.) S0, S1 and the filling factor enter linearly.
// Parameter order of the derivative rows: B, inclination, azimuth, vlos, doppler_width,
// damping, eta0, S0, S1, filling_factor (kMeDerivs), internal units (rad, Angstrom).
//
// Precision R: double, or float for the inversion's single-precision Jacobian (twice the
// lanes per vector; the outputs are written in R too: the float rows go through the
// resampling in float, resample_kernel.hpp, with no widening to double here). In float, the points'
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

// The Unno-Rachkovsky block works on Lanes<R> consecutive wavelength points at once (one
// 64-byte vector: 8 doubles or 16 floats), as fixed-length loops over the lanes that the
// compiler turns into vector instructions.
template <typename R>
constexpr int kLanesOf = 64 / static_cast<int>(sizeof(R));
// GCC would otherwise keep the helper below as a call inside the vector loop.
#if defined(__GNUC__)
#define FASTINV_ME_INLINE inline __attribute__((always_inline))
#else
#define FASTINV_ME_INLINE inline
#endif

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

// G[.][l] = dX/d(kI, lin, rlin, kV, fV, chi) of one Stokes parameter X at lane l from its
// partials in the 7 elements, with (kQ, kU) = lin (c2x, s2x) and (fQ, fU) = rlin (c2x, s2x).
template <typename R, int L>
FASTINV_ME_INLINE void store_partials(R (*G)[L], int l, R xkI, R xkQ, R xkU, R xkV, R xfQ, R xfU, R xfV, R cx, R sx,
                                      R lin, R rlin) {
  G[0][l] = xkI;
  G[1][l] = xkQ * cx + xkU * sx;
  G[2][l] = xfQ * cx + xfU * sx;
  G[3][l] = xkV;
  G[4][l] = xfV;
  G[5][l] = R(2) * (lin * (xkU * cx - xkQ * sx) + rlin * (xfU * cx - xfQ * sx));
}

// prof: 4 x n (I, Q, U, V); jac: kMeDerivs x 4 x n, both in R.
template <typename R>
inline void me_profile_deriv(const std::vector<MELineData>& lines, const double* wl, int64_t n, const MEProfileInput& p,
                             MEDerivBuffers<R>& w, R* prof, R* jac) {
  constexpr int kLanes = kLanesOf<R>;
  const FaddeevaTables& T = faddeeva_tables();
  const double a = p.damping;
  const R ar = static_cast<R>(a);
  R* x = w.x.data();
  R* u = w.u.data();
  R* H = w.h.data();
  R* F = w.f.data();
  // sums[(q * 4 + g) * n]: q = 0 phi, 1 psi, 2/3 d/dB, 4/5 d/dDoppler, 6/7 d/da (phi, psi
  // alternate); g = 0 sigma_b, 1 pi, 2 sigma_r, 3 unmagnetised. No d/dv rows: du/dv =
  // -lambda0 / (c dld) is the same for every line (dld scales with lambda0), so
  // d(phi, psi)/dv = du/dv (d psi/da, -d phi/da) -- the block forms them from the d/da sums.
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
  const R dudv = static_cast<R>(-lines.front().lambda0 * kInvCkms / (p.doppler_width * lines.front().scale));

  for (const MELineData& Ln : lines) {
    const double dld = p.doppler_width * Ln.scale;
    const double centre = Ln.lambda0 * (1.0 + p.vlos * kInvCkms);
    const double inv = 1.0 / dld;
#pragma omp simd
    for (int64_t j = 0; j < n; ++j) x[j] = static_cast<R>((wl[j] - centre) * inv);
    const double dvB_dB = kLarmor * Ln.lambda0 * Ln.lambda0 * inv;
    const double vB = dvB_dB * p.B;
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
      R* phw = sums + (16 + g) * n;
      R* psw = sums + (20 + g) * n;
      R* pha = sums + (24 + g) * n;
      R* psa = sums + (28 + g) * n;
      const R wt = static_cast<R>(wt_d);
      const R cB = static_cast<R>(-s * dvB_dB * wt_d), cw = static_cast<R>(-inv_dw * wt_d);
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
      for (int q = 0; q < 8; ++q) zero_rows(sums + (4 * q + g) * n, n, 1);

  const double sg = std::sin(p.inclination), cg = std::cos(p.inclination);
  const double c2x = std::cos(2.0 * p.azimuth), s2x = std::sin(2.0 * p.azimuth);
  const R s2 = R(sg * sg), c2p1 = R(0.5 * (1.0 + cg * cg)), cgr = R(cg), h = R(0.5 * p.eta0);
  const R cx = R(c2x), sx = R(s2x);
  // d/dgamma of s2, c2p1, cos(gamma); each element is h times a factor, d/deta0 = factor / 2
  const R ds2 = R(2.0 * sg * cg), dc2p1 = R(-cg * sg), dcg = R(-sg);
  const R mu = R(p.mu), S0 = R(p.S0), S1 = R(p.S1), f = R(p.filling_factor), e0 = R(p.eta0);
  const int64_t plane = 4 * n;
  const R fS1 = f * S1, g = R(1) - f;
  constexpr int kRows = 4 + 4 * kMeDerivs;
  R* base[kRows];  // the output rows
  for (int row = 0; row < kRows; ++row)
    base[row] = row < 4 ? prof + row * n : jac + ((row - 4) / 4) * plane + ((row - 4) % 4) * n;
  for (int64_t j0 = 0; j0 < n; j0 += kLanes) {
    const int lanes = static_cast<int>(std::min<int64_t>(kLanes, n - j0));
    // The block's outputs are written with a fixed-length lane loop (vector instructions; a
    // loop over a run-time lane count stays scalar): straight into prof and jac for a full
    // block, into o and then copied for the last, partial one. Rows: I, Q, U, V, then 4 per
    // derivative parameter (kMeDerivs of them).
    alignas(64) R o[kRows][kLanes];
    R* w[kRows];
    const bool full = lanes == kLanes;
    for (int row = 0; row < kRows; ++row) w[row] = full ? base[row] + j0 : o[row];
    const R* sm = sums + j0;  // the sums are padded: a partial block reads inside the buffer
    // Three fixed-length lane loops (each a run of vector instructions; one loop holding all
    // of it kept its per-lane arrays in memory and stayed scalar): the elements, the Stokes
    // vector X and its partials G; the elements' gradients E; their contraction.
    // G[st] = dX_st / (kI, lin, rlin, kV, fV, chi) with (kQ, kU) = lin (c2x, s2x),
    // (fQ, fU) = rlin (c2x, s2x); E[k] = d(kI, lin, rlin, kV, fV) / d(parameter k) for
    // k = B, v, Doppler width, a (the sums' slots), gamma, eta0.
    alignas(64) R G[4][6][kLanes], E[6][5][kLanes], X[4][kLanes];
#pragma omp simd
    for (int l = 0; l < kLanes; ++l) {
      const R pb = sm[l], pp = sm[n + l], pr = sm[2 * n + l];
      const R qb = sm[4 * n + l], qp = sm[5 * n + l], qr = sm[6 * n + l];
      // kI = 1 + h eI, lin = h eL s2, kV = h eV cg, rlin = h eR s2, fV = h eW cg
      const R eI = pp * s2 + (pb + pr) * c2p1, eL = pp - R(0.5) * (pb + pr), eV = pr - pb;
      const R eR = qp - R(0.5) * (qb + qr), eW = qr - qb;
      const R kI = R(1) + h * eI, lin = h * eL * s2, kV = h * eV * cgr;
      const R rlin = h * eR * s2, fV = h * eW * cgr;
      const R kQ = lin * cx, kU = lin * sx, fQ = rlin * cx, fU = rlin * sx;
      const R ki2 = kI * kI;
      const R gp3 = ki2 + fQ * fQ + fU * fU + fV * fV;
      const R gp1 = gp3 - (kQ * kQ + kU * kU + kV * kV);
      const R gp2 = kQ * fQ + kU * fU + kV * fV;
      const R idel = R(1) / (ki2 * gp1 - gp2 * gp2);
      const R t = mu * idel, m = -t;  // I = S0 + S1 t NI, Q = -S1 t NQ, ...
      const R aQ = kV * fU - kU * fV, aU = kQ * fV - kV * fQ, aV = kU * fQ - kQ * fU;
      const R XI = t * (kI * gp3);
      const R XQ = m * (ki2 * kQ + kI * aQ + fQ * gp2);
      const R XU = m * (ki2 * kU + kI * aU + fU * gp2);
      const R XV = m * (ki2 * kV + kI * aV + fV * gp2);
      X[0][l] = XI;
      X[1][l] = XQ;
      X[2][l] = XU;
      X[3][l] = XV;
      // dX/de = c t dN/de - (X / del) ddel/de (c = 1 for I, -1 for Q, U, V)
      const R dkI = R(2) * kI * (gp1 + ki2);
      const R dkQ = R(-2) * (ki2 * kQ + gp2 * fQ), dkU = R(-2) * (ki2 * kU + gp2 * fU);
      const R dkV = R(-2) * (ki2 * kV + gp2 * fV);
      const R dfQ = R(2) * (ki2 * fQ - gp2 * kQ), dfU = R(2) * (ki2 * fU - gp2 * kU);
      const R dfV = R(2) * (ki2 * fV - gp2 * kV);
      const R k2 = R(2) * kI;
      const R r0 = XI * idel, r1 = XQ * idel, r2 = XU * idel, r3 = XV * idel;
      // partials of X per Stokes parameter in kI, kQ, kU, kV, fQ, fU, fV
      store_partials(G[0], l, t * (gp3 + R(2) * ki2) - r0 * dkI, -r0 * dkQ, -r0 * dkU, -r0 * dkV,
                     t * k2 * fQ - r0 * dfQ, t * k2 * fU - r0 * dfU, t * k2 * fV - r0 * dfV, cx, sx, lin, rlin);
      store_partials(G[1], l, m * (k2 * kQ + aQ) - r1 * dkI, m * (ki2 + fQ * fQ) - r1 * dkQ,
                     m * (fQ * fU - kI * fV) - r1 * dkU, m * (kI * fU + fQ * fV) - r1 * dkV,
                     m * (gp2 + fQ * kQ) - r1 * dfQ, m * (kI * kV + fQ * kU) - r1 * dfU,
                     m * (fQ * kV - kI * kU) - r1 * dfV, cx, sx, lin, rlin);
      store_partials(G[2], l, m * (k2 * kU + aU) - r2 * dkI, m * (kI * fV + fU * fQ) - r2 * dkQ,
                     m * (ki2 + fU * fU) - r2 * dkU, m * (fU * fV - kI * fQ) - r2 * dkV,
                     m * (fU * kQ - kI * kV) - r2 * dfQ, m * (gp2 + fU * kU) - r2 * dfU,
                     m * (kI * kQ + fU * kV) - r2 * dfV, cx, sx, lin, rlin);
      store_partials(G[3], l, m * (k2 * kV + aV) - r3 * dkI, m * (fV * fQ - kI * fU) - r3 * dkQ,
                     m * (kI * fQ + fV * fU) - r3 * dkU, m * (ki2 + fV * fV) - r3 * dkV,
                     m * (kI * kU + fV * kQ) - r3 * dfQ, m * (fV * kU - kI * kQ) - r3 * dfU,
                     m * (gp2 + fV * kV) - r3 * dfV, cx, sx, lin, rlin);
      E[4][0][l] = h * (pp * ds2 + (pb + pr) * dc2p1);
      E[4][1][l] = h * eL * ds2;
      E[4][2][l] = h * eR * ds2;
      E[4][3][l] = h * eV * dcg;
      E[4][4][l] = h * eW * dcg;
      E[5][0][l] = R(0.5) * eI;
      E[5][1][l] = R(0.5) * eL * s2;
      E[5][2][l] = R(0.5) * eR * s2;
      E[5][3][l] = R(0.5) * eV * cgr;
      E[5][4][l] = R(0.5) * eW * cgr;
    }
    for (int k : {0, 2, 3}) {
      const R* d = sm + 8 * (k == 0 ? 1 : k) * n;  // d/dB, d/dDoppler, d/da: rows 8, 16, 24
#pragma omp simd
      for (int l = 0; l < kLanes; ++l) {
        const R db = d[l], dp = d[n + l], dr = d[2 * n + l];
        const R eb = d[4 * n + l], ep = d[5 * n + l], er = d[6 * n + l];
        E[k][0][l] = h * (dp * s2 + (db + dr) * c2p1);
        E[k][1][l] = h * s2 * (dp - R(0.5) * (db + dr));
        E[k][2][l] = h * s2 * (ep - R(0.5) * (eb + er));
        E[k][3][l] = h * cgr * (dr - db);
        E[k][4][l] = h * cgr * (er - eb);
      }
    }
    // d/dv from d/da: phi_v = dudv psi_a, psi_v = -dudv phi_a
    const R* da = sm + 28 * n;
#pragma omp simd
    for (int l = 0; l < kLanes; ++l) {
      E[1][0][l] = dudv * h * (da[n + l] * s2 + (da[l] + da[2 * n + l]) * c2p1);
      E[1][1][l] = dudv * E[3][2][l];
      E[1][2][l] = -dudv * E[3][1][l];
      E[1][3][l] = dudv * E[3][4][l];
      E[1][4][l] = -dudv * E[3][3][l];
    }
    constexpr int kSlot[6] = {0, 3, 4, 5, 1, 6};  // E's parameters as derivative rows
    for (int st = 0; st < 4; ++st) {
      const R(*gs)[kLanes] = G[st];
      for (int k = 0; k < 6; ++k) {
        const R(*ek)[kLanes] = E[k];
        R* y = w[4 + 4 * kSlot[k] + st];
#pragma omp simd
        for (int l = 0; l < kLanes; ++l)
          y[l] = fS1 * (gs[0][l] * ek[0][l] + gs[1][l] * ek[1][l] + gs[2][l] * ek[2][l] + gs[3][l] * ek[3][l] +
                        gs[4][l] * ek[4][l]);
      }
      R* yc = w[4 + 4 * 2 + st];
#pragma omp simd
      for (int l = 0; l < kLanes; ++l) yc[l] = fS1 * gs[5][l];
      if (st > 0) {
        const R* xv = X[st];
        R *y0 = w[st], *y7 = w[4 + 4 * 7 + st], *y8 = w[4 + 4 * 8 + st], *y9 = w[4 + 4 * 9 + st];
#pragma omp simd
        for (int l = 0; l < kLanes; ++l) {
          y0[l] = fS1 * xv[l];
          y7[l] = R(0);  // S0 (both parts)
          y8[l] = f * xv[l];
          y9[l] = S1 * xv[l];
        }
      }
    }
    const R* s24 = sums + (16 + 3) * n + j0;  // d phi_0 / dDoppler
    const R* s32 = sums + (24 + 3) * n + j0;  // d phi_0 / da
    const R* s28 = sums + (28 + 3) * n + j0;  // d psi_0 / da: d phi_0 / dv = dudv times it
    const R* p0v = sums + 3 * n + j0;
    R *yI = w[0], *y3 = w[4 + 4 * 3], *y4 = w[4 + 4 * 4], *y5 = w[4 + 4 * 5], *y6 = w[4 + 4 * 6];
    R *y7 = w[4 + 4 * 7], *y8 = w[4 + 4 * 8], *y9 = w[4 + 4 * 9];
    const R* XI = X[0];
#pragma omp simd
    for (int l = 0; l < kLanes; ++l) {
      // unmagnetised part: Inm = S0 + S1 mu / (1 + eta0 p0)
      const R den = R(1) / (R(1) + e0 * p0v[l]);
      const R m0 = mu * den;
      const R Inm = S0 + S1 * m0;
      const R magI = S0 + S1 * XI[l];
      yI[l] = f * magI + g * Inm;
      y7[l] = R(1);  // S0 (both parts)
      y8[l] = f * XI[l] + g * m0;
      y9[l] = magI - Inm;
      // its dependence on v, Doppler width, a, eta0 (zero when f = 1)
      const R dInm_dp0 = -S1 * mu * e0 * den * den;
      y3[l] += g * dInm_dp0 * dudv * s28[l];
      y4[l] += g * dInm_dp0 * s24[l];
      y5[l] += g * dInm_dp0 * s32[l];
      y6[l] += g * (-S1 * mu * p0v[l] * den * den);
    }
    if (!full)
      for (int row = 0; row < kRows; ++row)
        for (int l = 0; l < lanes; ++l) base[row][j0 + l] = o[row][l];
  }
}

}  // namespace FASTINV_FADDEEVA_NS
}  // namespace fastinv::stokes::detail
