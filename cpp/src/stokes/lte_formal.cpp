// Propagation matrix assembly and the DELO-linear polarised formal solver.
#include <cmath>
#include <cstddef>
#include <utility>
#include <vector>

#include "fastinv/stokes/faddeeva.hpp"
#include "fastinv/stokes/lte.hpp"
#include "stokes/lte_constants.hpp"

namespace fastinv::stokes {

void PropagationRows::resize(std::size_t n) {
  for (auto* v : {&etaI, &etaQ, &etaU, &etaV, &rhoQ, &rhoU, &rhoV}) v->assign(n, 0.0);
}

void add_line_propagation(const ZeemanPattern& pattern, double kappa_L, double a, const double* x, std::size_t n,
                          double larmor, double gamma, double chi, PropagationRows& rows,
                          std::vector<double>& scratch) {
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

void delo_linear_batch(int nd, std::size_t nw, const double* dtau, const double* etaI, const double* etaQ,
                       const double* etaU, const double* etaV, const double* rhoQ, const double* rhoU,
                       const double* rhoV, const double* S, double* out) {
  // Between depth k+1 (upwind) and k, with S_eff = S~ - K' I linear in tau (Rees et al.
  // 1989): I_k = e^{-d} I_{k+1} + alpha S_eff,k + beta S_eff,k+1, alpha = 1 - (1-e^{-d})/d,
  // beta = (1-e^{-d})/d - e^{-d}; K' = K / eta_I - 1, S~ = S (1, q, u, v). The 4x4 system
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
  // Rolling buffers: K'/S~ of the upwind and current depth (each depth is normalised once),
  // and the exponential weights (exp is kept out of the main loop so that it vectorises).
  std::vector<double> buf(16 * nw);
  double* nu_ = buf.data();    // upwind: q u v rq ru rv s (7 rows)
  double* nc_ = nu_ + 7 * nw;  // current
  double* ew = nc_ + 7 * nw;   // e, w
  auto normalise = [&](int k, double* dst) {
    const std::size_t o = static_cast<std::size_t>(k) * nw;
#pragma omp simd
    for (std::size_t i = 0; i < nw; ++i) {
      const double inv = 1.0 / etaI[o + i];
      dst[i] = etaQ[o + i] * inv;
      dst[nw + i] = etaU[o + i] * inv;
      dst[2 * nw + i] = etaV[o + i] * inv;
      dst[3 * nw + i] = rhoQ[o + i] * inv;
      dst[4 * nw + i] = rhoU[o + i] * inv;
      dst[5 * nw + i] = rhoV[o + i] * inv;
      dst[6 * nw + i] = S[o + i];
    }
  };
  normalise(N, nu_);
  for (int k = N - 1; k >= 0; --k) {
    const std::size_t c = static_cast<std::size_t>(k) * nw;
    normalise(k, nc_);
    for (std::size_t i = 0; i < nw; ++i) {
      const double d = dtau[c + i];
      if (d < 1e-4) {  // series: avoids the cancellation in (1 - e^{-d}) / d
        ew[i] = 1.0 - d + 0.5 * d * d;
        ew[nw + i] = 1.0 - 0.5 * d + d * d / 6.0;
      } else {
        const double e = std::exp(-d);
        ew[i] = e;
        ew[nw + i] = (1.0 - e) / d;
      }
    }
    const double* qU = nu_;
    const double* uU = nu_ + nw;
    const double* vU = nu_ + 2 * nw;
    const double* rqU = nu_ + 3 * nw;
    const double* ruU = nu_ + 4 * nw;
    const double* rvU = nu_ + 5 * nw;
    const double* sU = nu_ + 6 * nw;
    const double* qC = nc_;
    const double* uC = nc_ + nw;
    const double* vC = nc_ + 2 * nw;
    const double* rqC = nc_ + 3 * nw;
    const double* ruC = nc_ + 4 * nw;
    const double* rvC = nc_ + 5 * nw;
    const double* sC = nc_ + 6 * nw;
#pragma omp simd
    for (std::size_t i = 0; i < nw; ++i) {
      const double qu = qU[i], uu = uU[i], vu = vU[i];
      const double rqu = rqU[i], ruu = ruU[i], rvu = rvU[i], su = sU[i];
      const double q = qC[i], uc = uC[i], v = vC[i];
      const double rq = rqC[i], ru = ruC[i], rv = rvC[i], sc = sC[i];
      const double e = ew[i], w = ew[nw + i];
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
      const double a01 = aq, a02 = au, a03 = av;  // a00 = 1
      double a10 = aq, a11 = 1, a12 = arv, a13 = -aru;
      double a20 = au, a21 = -arv, a22 = 1, a23 = arq;
      double a30 = av, a31 = aru, a32 = -arq, a33 = 1;
      // eliminate column 0 (a00 = 1)
      a11 -= a10 * a01;
      a12 -= a10 * a02;
      a13 -= a10 * a03;
      b1 -= a10 * b0;
      a21 -= a20 * a01;
      a22 -= a20 * a02;
      a23 -= a20 * a03;
      b2 -= a20 * b0;
      a31 -= a30 * a01;
      a32 -= a30 * a02;
      a33 -= a30 * a03;
      b3 -= a30 * b0;
      // column 1
      const double f2 = a21 / a11, f3 = a31 / a11;
      a22 -= f2 * a12;
      a23 -= f2 * a13;
      b2 -= f2 * b1;
      a32 -= f3 * a12;
      a33 -= f3 * a13;
      b3 -= f3 * b1;
      // column 2
      const double g3 = a32 / a22;
      a33 -= g3 * a23;
      b3 -= g3 * b2;
      // back substitution
      const double y3 = b3 / a33;
      const double y2 = (b2 - a23 * y3) / a22;
      const double y1 = (b1 - a12 * y2 - a13 * y3) / a11;
      const double y0 = b0 - a01 * y1 - a02 * y2 - a03 * y3;
      I0[i] = y0;
      I1[i] = y1;
      I2[i] = y2;
      I3[i] = y3;
    }
    std::swap(nu_, nc_);  // the current depth is the next step's upwind depth
  }
}

}  // namespace fastinv::stokes
