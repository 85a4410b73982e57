// Propagation matrix assembly and the DELO-linear polarised formal solver.
#include <cmath>
#include <cstddef>

#include "fastinv/stokes/faddeeva.hpp"
#include "fastinv/stokes/lte.hpp"
#include "stokes/lte_constants.hpp"

namespace fastinv::stokes {

void PropagationRows::resize(std::size_t n) {
  for (auto* v : {&etaI, &etaQ, &etaU, &etaV, &rhoQ, &rhoU, &rhoV}) v->assign(n, 0.0);
}

void add_line_propagation(const ZeemanPattern& pattern, double kappa_L, double a, const double* x,
                          std::size_t n, double larmor, double gamma, double chi,
                          PropagationRows& rows, std::vector<double>& scratch) {
  // Group profile sums phi_q = sum_i S_i H(a, x - s_i larmor), psi_q likewise with F
  // (LL04 9.8; strengths normalised to 1 per group), q = sigma_b, pi, sigma_r.
  scratch.assign(6 * n, 0.0);
  double* Hb = scratch.data();
  double* Fb = Hb + n;
  double* Hp = Fb + n;
  double* Fp = Hp + n;
  double* Hr = Fp + n;
  double* Fr = Hr + n;
  const double norm = kappa_L / cgs::sqrt_pi;  // H / sqrt(pi) is the normalised profile
  if (larmor == 0.0) {
    // No field: every component sits at the line centre; one Voigt evaluation suffices.
    voigt_faraday_add(a, x, 0.0, 1.0, n, Hp, Fp);
    for (std::size_t i = 0; i < n; ++i) rows.etaI[i] += norm * Hp[i];
    return;
  }
  for (const ZeemanComponent& c : pattern.components) {
    double* H = c.type == ZeemanType::sigma_b ? Hb : (c.type == ZeemanType::pi ? Hp : Hr);
    double* F = H + n;
    voigt_faraday_add(a, x, c.shift * larmor, c.strength, n, H, F);
  }
  const double sg = std::sin(gamma), cg = std::cos(gamma);
  const double s2 = sg * sg, c2 = cg * cg;
  const double c2x = std::cos(2.0 * chi), s2x = std::sin(2.0 * chi);
  const double h = 0.5 * norm;
#pragma omp simd
  for (std::size_t i = 0; i < n; ++i) {
    const double sH = 0.5 * (Hb[i] + Hr[i]), sF = 0.5 * (Fb[i] + Fr[i]);
    const double lH = (Hp[i] - sH) * s2, lF = (Fp[i] - sF) * s2;
    rows.etaI[i] += h * (Hp[i] * s2 + sH * (1.0 + c2));
    rows.etaQ[i] += h * lH * c2x;
    rows.etaU[i] += h * lH * s2x;
    rows.etaV[i] += h * (Hr[i] - Hb[i]) * cg;
    rows.rhoQ[i] += h * lF * c2x;
    rows.rhoU[i] += h * lF * s2x;
    rows.rhoV[i] += h * (Fr[i] - Fb[i]) * cg;
  }
}

namespace {

// Solve the 4x4 system A x = b in place (Gaussian elimination, partial pivoting).
void solve4(double A[4][4], double b[4]) {
  for (int c = 0; c < 4; ++c) {
    int p = c;
    for (int r = c + 1; r < 4; ++r)
      if (std::fabs(A[r][c]) > std::fabs(A[p][c])) p = r;
    if (p != c) {
      for (int k = 0; k < 4; ++k) std::swap(A[c][k], A[p][k]);
      std::swap(b[c], b[p]);
    }
    const double inv = 1.0 / A[c][c];
    for (int r = c + 1; r < 4; ++r) {
      const double f = A[r][c] * inv;
      for (int k = c; k < 4; ++k) A[r][k] -= f * A[c][k];
      b[r] -= f * b[c];
    }
  }
  for (int r = 3; r >= 0; --r) {
    double s = b[r];
    for (int k = r + 1; k < 4; ++k) s -= A[r][k] * b[k];
    b[r] = s / A[r][r];
  }
}

// K' = K / eta_I - 1 (zero diagonal), LL04 eq. 8.14 sign conventions.
void kprime(double q, double u, double v, double rq, double ru, double rv, double M[4][4]) {
  M[0][0] = 0; M[0][1] = q;   M[0][2] = u;   M[0][3] = v;
  M[1][0] = q; M[1][1] = 0;   M[1][2] = rv;  M[1][3] = -ru;
  M[2][0] = u; M[2][1] = -rv; M[2][2] = 0;   M[2][3] = rq;
  M[3][0] = v; M[3][1] = ru;  M[3][2] = -rq; M[3][3] = 0;
}

}  // namespace

void delo_linear(int nd, const double* dtau, const double* etaI, const double* etaQ,
                 const double* etaU, const double* etaV, const double* rhoQ, const double* rhoU,
                 const double* rhoV, const double* S, double* out) {
  // Lower boundary: diffusion approximation I = S + dS/dtau (ray optical depth), unpolarised.
  const int N = nd - 1;
  double I[4] = {S[N] + (S[N] - S[N - 1]) / dtau[N - 1], 0.0, 0.0, 0.0};
  double Mu[4][4], Mc[4][4];
  auto load = [&](int k, double M[4][4], double St[4]) {
    const double inv = 1.0 / etaI[k];
    const double q = etaQ[k] * inv, u = etaU[k] * inv, v = etaV[k] * inv;
    kprime(q, u, v, rhoQ[k] * inv, rhoU[k] * inv, rhoV[k] * inv, M);
    St[0] = S[k]; St[1] = S[k] * q; St[2] = S[k] * u; St[3] = S[k] * v;
  };
  double Su[4], Sc[4];
  load(N, Mu, Su);
  for (int k = N - 1; k >= 0; --k) {
    load(k, Mc, Sc);
    // Effective source S_eff = S~ - K' I assumed linear in tau between k+1 (upwind) and k:
    // I_k = e^{-d} I_{k+1} + alpha S_eff,k + beta S_eff,k+1  (Rees et al. 1989).
    const double d = dtau[k];
    double e, w;  // e = exp(-d), w = (1 - e)/d; series for small d avoids cancellation
    if (d < 1e-4) {
      e = 1.0 - d + 0.5 * d * d;
      w = 1.0 - 0.5 * d + d * d / 6.0;
    } else {
      e = std::exp(-d);
      w = -std::expm1(-d) / d;
    }
    const double alpha = 1.0 - w, beta = w - e;
    double A[4][4], b[4];
    for (int r = 0; r < 4; ++r) {
      double acc = e * I[r] + alpha * Sc[r] + beta * Su[r];
      for (int c = 0; c < 4; ++c) {
        acc -= beta * Mu[r][c] * I[c];
        A[r][c] = (r == c ? 1.0 : 0.0) + alpha * Mc[r][c];
      }
      b[r] = acc;
    }
    solve4(A, b);
    for (int r = 0; r < 4; ++r) I[r] = b[r];
    for (int r = 0; r < 4; ++r) {
      Su[r] = Sc[r];
      for (int c = 0; c < 4; ++c) Mu[r][c] = Mc[r][c];
    }
  }
  for (int r = 0; r < 4; ++r) out[r] = I[r];
}

void delo_linear_batch(int nd, std::size_t nw, const double* dtau, const double* etaI,
                       const double* etaQ, const double* etaU, const double* etaV,
                       const double* rhoQ, const double* rhoU, const double* rhoV, const double* S,
                       double* out) {
  // Same scheme as delo_linear(), vectorised over wavelength. The 4x4 system
  // (1 + alpha K'_c) I_c = b is solved by Gaussian elimination WITHOUT pivoting: its symmetric
  // part 1 + alpha [[0,q,u,v],[q,0,0,0],[u,0,0,0],[v,0,0,0]] has eigenvalues
  // 1 +- alpha sqrt(q^2+u^2+v^2) >= 1 - alpha > 0 (eta_I >= |eta_QUV|, alpha < 1), so the
  // matrix is positive definite in the x^T A x sense and the pivots stay positive.
  const int N = nd - 1;
  double* I0 = out;
  double* I1 = out + nw;
  double* I2 = out + 2 * nw;
  double* I3 = out + 3 * nw;
  {
    const double* SN = S + N * nw;
    const double* SN1 = S + (N - 1) * nw;
    const double* dN = dtau + (N - 1) * nw;
    for (std::size_t i = 0; i < nw; ++i) {
      I0[i] = SN[i] + (SN[i] - SN1[i]) / dN[i];
      I1[i] = I2[i] = I3[i] = 0.0;
    }
  }
  for (int k = N - 1; k >= 0; --k) {
    const std::size_t c = static_cast<std::size_t>(k) * nw, u = c + nw;
#pragma omp simd
    for (std::size_t i = 0; i < nw; ++i) {
      // upwind point (k+1)
      const double iu = 1.0 / etaI[u + i];
      const double qu = etaQ[u + i] * iu, uu = etaU[u + i] * iu, vu = etaV[u + i] * iu;
      const double rqu = rhoQ[u + i] * iu, ruu = rhoU[u + i] * iu, rvu = rhoV[u + i] * iu;
      const double su = S[u + i];
      // current point (k)
      const double ic = 1.0 / etaI[c + i];
      const double q = etaQ[c + i] * ic, uc = etaU[c + i] * ic, v = etaV[c + i] * ic;
      const double rq = rhoQ[c + i] * ic, ru = rhoU[c + i] * ic, rv = rhoV[c + i] * ic;
      const double sc = S[c + i];
      const double d = dtau[c + i];
      double e, w;
      if (d < 1e-4) {
        e = 1.0 - d + 0.5 * d * d;
        w = 1.0 - 0.5 * d + d * d / 6.0;
      } else {
        e = std::exp(-d);
        w = (1.0 - e) / d;
      }
      const double al = 1.0 - w, be = w - e;
      const double x0 = I0[i], x1 = I1[i], x2 = I2[i], x3 = I3[i];
      // b = e I_u + alpha S~_c + beta (S~_u - K'_u I_u)
      double b0 = e * x0 + al * sc + be * (su - (qu * x1 + uu * x2 + vu * x3));
      double b1 = e * x1 + al * sc * q + be * (su * qu - (qu * x0 + rvu * x2 - ruu * x3));
      double b2 = e * x2 + al * sc * uc + be * (su * uu - (uu * x0 - rvu * x1 + rqu * x3));
      double b3 = e * x3 + al * sc * v + be * (su * vu - (vu * x0 + ruu * x1 - rqu * x2));
      // A = 1 + alpha K'_c
      const double aq = al * q, au = al * uc, av = al * v;
      const double arq = al * rq, aru = al * ru, arv = al * rv;
      double a00 = 1, a01 = aq, a02 = au, a03 = av;
      double a10 = aq, a11 = 1, a12 = arv, a13 = -aru;
      double a20 = au, a21 = -arv, a22 = 1, a23 = arq;
      double a30 = av, a31 = aru, a32 = -arq, a33 = 1;
      // eliminate column 0 (a00 = 1)
      a11 -= a10 * a01; a12 -= a10 * a02; a13 -= a10 * a03; b1 -= a10 * b0;
      a21 -= a20 * a01; a22 -= a20 * a02; a23 -= a20 * a03; b2 -= a20 * b0;
      a31 -= a30 * a01; a32 -= a30 * a02; a33 -= a30 * a03; b3 -= a30 * b0;
      // column 1
      const double f2 = a21 / a11, f3 = a31 / a11;
      a22 -= f2 * a12; a23 -= f2 * a13; b2 -= f2 * b1;
      a32 -= f3 * a12; a33 -= f3 * a13; b3 -= f3 * b1;
      // column 2
      const double g3 = a32 / a22;
      a33 -= g3 * a23; b3 -= g3 * b2;
      // back substitution
      const double y3 = b3 / a33;
      const double y2 = (b2 - a23 * y3) / a22;
      const double y1 = (b1 - a12 * y2 - a13 * y3) / a11;
      const double y0 = b0 - a01 * y1 - a02 * y2 - a03 * y3;
      I0[i] = y0; I1[i] = y1; I2[i] = y2; I3[i] = y3;
    }
  }
}

}  // namespace fastinv::stokes
