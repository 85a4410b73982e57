// Continuum extinction at optical wavelengths (see fastinv/stokes/lte_eos.hpp for sources).
#include <cmath>

#include "fastinv/stokes/lte_eos.hpp"
#include "stokes/lte_constants.hpp"

namespace fastinv::stokes {
namespace {

// John (1988, A&A 193, 189), H- bound-free: photodetachment cross-section fit (eq. 5) valid
// 0.125 um < lambda < 1.6419 um; returns kappa per H I atom per unit P_e [cm^4 dyn^-1],
// stimulated emission included.
double hminus_bf(double lam_um, double T) {
  constexpr double kLam0 = 1.6419;    // um
  constexpr double kAlpha = 1.439e4;  // hc/k [um K]
  constexpr double C[6] = {152.519, 49.534, -118.858, 92.536, -34.194, 4.982};
  if (lam_um <= 0.125 || lam_um >= kLam0) return 0.0;
  double x = 1.0 / lam_um - 1.0 / kLam0;
  double sx = std::sqrt(x), p = 1.0, f = 0.0;
  for (double cn : C) {
    f += cn * p;
    p *= sx;
  }
  double sigma = 1e-18 * lam_um * lam_um * lam_um * x * sx * f;  // cm^2
  return 0.750 * std::pow(T, -2.5) * std::exp(kAlpha / (kLam0 * T)) * (-std::expm1(-kAlpha / (lam_um * T))) * sigma;
}

// John (1988) H- free-free for lambda > 0.3645 um (Table 3a); kappa per H I per unit P_e
// [cm^4 dyn^-1], stimulated emission included.
double hminus_ff(double lam_um, double T) {
  constexpr double A[6] = {0.0, 2483.3460, -3449.8890, 2200.0400, -696.2710, 88.2830};
  constexpr double B[6] = {0.0, 285.8270, -1158.3820, 2427.7190, -1841.4000, 444.5170};
  constexpr double C[6] = {0.0, -2054.2910, 8746.5230, -13651.1050, 8624.9700, -1863.8640};
  constexpr double D[6] = {0.0, 2827.7760, -11485.6320, 16755.5240, -10051.5300, 2095.2880};
  constexpr double E[6] = {0.0, -1341.5370, 5303.6090, -7510.4940, 4400.0670, -901.7880};
  constexpr double F[6] = {0.0, 208.9520, -812.9390, 1132.7380, -655.0200, 132.9850};
  if (lam_um <= 0.3645) return 0.0;  // the short-wavelength branch is not needed here
  double theta = 5040.0 / T, l = lam_um, il = 1.0 / l;
  double sum = 0.0, tp = theta, sq = std::sqrt(theta);  // theta^{(n+1)/2}, n = 1..6
  for (int n = 0; n < 6; ++n, tp *= sq) {
    sum += tp * (l * l * A[n] + B[n] + il * (C[n] + il * (D[n] + il * (E[n] + il * F[n]))));
  }
  return 1e-29 * sum;
}

}  // namespace

double planck_lambda(double lambda_A, double T) {
  double lam = lambda_A * 1e-8;  // cm
  double x = cgs::h * cgs::c / (lam * cgs::kB * T);
  // erg s^-1 cm^-2 sr^-1 cm^-1 -> per Angstrom
  return 2.0 * cgs::h * cgs::c * cgs::c / std::pow(lam, 5) / std::expm1(x) * 1e-8;
}

ContinuumCoeffs continuum_coeffs(double T, double lambda_A) {
  ContinuumCoeffs c;
  const double lam_um = lambda_A * 1e-4;
  const double nu = cgs::c / (lambda_A * 1e-8);
  const double hnu_kT = cgs::h * nu / (cgs::kB * T);
  const double stim = -std::expm1(-hnu_kT);
  c.hm_bf = hminus_bf(lam_um, T);
  c.hm_ff = hminus_ff(lam_um, T);
  // H I bound-free from levels n whose threshold lies beyond lambda (Kramers cross-section
  // sigma_n = 2.815e29 / (n^5 nu^3) cm^2, Gaunt factor 1; Gray 2005 eq. 8.4), LTE level
  // populations n_n = n(H I) 2 n^2 / U(H I) exp(-chi_n / kT), U(H I) = 2.
  constexpr double kRydEV = 13.5984;
  const double kT_eV = cgs::kB * T / cgs::eV;
  const double hnu_eV = cgs::h * nu / cgs::eV;
  double hbf = 0.0;
  for (int n = 1; n <= 20; ++n) {
    const double ion_n = kRydEV / (n * n);  // binding energy of level n
    if (ion_n > hnu_eV) continue;           // photon cannot ionise this level
    const double n2 = double(n) * n;
    hbf += n2 * std::exp(-(kRydEV - ion_n) / kT_eV) * 2.815e29 / (n2 * n2 * n * nu * nu * nu);
  }
  c.h_bf = hbf * stim;
  // H I free-free (Gray 2005 eq. 8.6 with g_ff = 1): 3.69e8 / (nu^3 sqrt T) n_e n_p.
  c.h_ff = 3.69e8 / (nu * nu * nu * std::sqrt(T)) * stim;
  c.thomson = 6.6524587e-25;
  // Rayleigh scattering on H I (Dalgarno; Gray 2005 eq. 8.20), lambda in Angstrom.
  const double l2 = 1.0 / (lambda_A * lambda_A);
  c.rayleigh = 5.799e-13 * l2 * l2 + 1.422e-6 * l2 * l2 * l2 + 2.784 * l2 * l2 * l2 * l2;
  return c;
}

ContinuumParts continuum_opacity(const EosState& s, const ContinuumCoeffs& c) {
  ContinuumParts p;
  p.hminus_bf = s.nHI * s.Pe * c.hm_bf;
  p.hminus_ff = s.nHI * s.Pe * c.hm_ff;
  p.h_bf = s.nHI * c.h_bf;
  p.h_ff = s.ne * s.nHII * c.h_ff;
  p.thomson = s.ne * c.thomson;
  p.rayleigh = s.nHI * c.rayleigh;
  return p;
}

ContinuumParts continuum_opacity(const EosState& s, double lambda_A) {
  return continuum_opacity(s, continuum_coeffs(s.T, lambda_A));
}

}  // namespace fastinv::stokes
