// LTE synthesis driver: atmosphere -> hydrostatic equilibrium -> opacities -> formal solution.
#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include "fastinv/error.hpp"
#include "fastinv/runtime.hpp"
#include "fastinv/stokes/lte.hpp"
#include "stokes/lte_constants.hpp"
#ifdef FASTINV_HAVE_OPENMP
#include <omp.h>
#endif

namespace fastinv::stokes {
namespace {

int atomic_number(const std::string& symbol) {
  static const char* kSymbols[] = {"H", "He", "Li", "Be", "B", "C",  "N",  "O",  "F", "Ne", "Na", "Mg", "Al", "Si",
                                   "P", "S",  "Cl", "Ar", "K", "Ca", "Sc", "Ti", "V", "Cr", "Mn", "Fe", "Co", "Ni"};
  for (int i = 0; i < 28; ++i)
    if (symbol == kSymbols[i]) return i + 1;
  return 0;
}

constexpr double kBohrCm = 0.529177210903e-8;
constexpr double kInterpSpan = 30.0;     // A: wider grids get B_lambda, kappa_c at every point
constexpr double kHydrogenMass = 1.008;  // u

}  // namespace

LteLine::LteLine(const SpectralLine& l) : line(l) {
  validate_line(l);
  pattern = zeeman_pattern(l);
  Z = atomic_number(l.element);
  stage = l.ion - 1;
  if (Z == 0 || LteEos{}.abundance(Z) == 0.0)
    throw InvalidArgument("LTE synthesis: element '" + l.element + "' of line '" + l.name +
                          "' is not in the equation of state (H, He, C, N, O, Na, Mg, Al, Si, "
                          "S, K, Ca, Cr, Fe, Ni)");
  if (stage < 0 || stage > 1)
    throw InvalidArgument("LTE synthesis: line '" + l.name +
                          "': only neutral and singly "
                          "ionised species are supported");
  const double lam_cm = l.wavelength * 1e-8;
  // Classical radiative damping (Gray 2005 eq. 11.14): 8 pi^2 e^2 / (3 m_e c lambda^2).
  gamma_rad = 8.0 * cgs::pi * cgs::pi * cgs::e2 / (3.0 * cgs::me * cgs::c * lam_cm * lam_cm);

  // Quadratic Stark (Lindholm/Traving, Hubeny & Mihalas 2014 pp. 238-239, the recipe RH and
  // lightweaver use): C4 from effective quantum numbers of both levels, gamma_4 =
  // 11.37 C4^{2/3} <v>^{1/3} n_e with electrons and ions (mean mass 28 u) as perturbers.
  const double ion = LteEos::ionisation_eV(Z, stage);
  const double e_low = l.chi_low, e_up = l.chi_low + 12398.4198 / l.wavelength;  // eV (air ~)
  const double zc = stage + 1.0;
  const double ryd = 13.605693 / (1.0 + cgs::me / (l.mass_amu * cgs::amu));
  if (ion > e_up) {
    const double nl = zc * std::sqrt(ryd / (ion - e_low));
    const double nu = zc * std::sqrt(ryd / (ion - e_up));
    const double tl = nl * (5.0 * nl * nl + 1.0), tu = nu * (5.0 * nu * nu + 1.0);
    const double c4 = cgs::e2 * kBohrCm * (2.0 * cgs::pi * kBohrCm * kBohrCm / cgs::h) / (18.0 * std::pow(zc, 4)) *
                      std::fabs(tu * tu - tl * tl);
    const double w = l.mass_amu;
    const double cm = std::pow(1.0 + w / (cgs::me / cgs::amu), 1.0 / 6.0) + std::pow(1.0 + w / 28.0, 1.0 / 6.0);
    stark_coeff = 11.37 * std::pow(c4, 2.0 / 3.0) * std::pow(8.0 * cgs::kB / (cgs::pi * cgs::amu * w), 1.0 / 6.0) * cm;
  }
  // van der Waals, Anstee & O'Mara (1995) / Barklem & O'Mara (1998) eq. 3, full width:
  // gamma_6 = 2 (4/pi)^{alpha/2} Gamma(2 - alpha/2) v sigma(v) n_H, sigma(v) = sigma0 (v/v0)^-alpha,
  // v = sqrt(8 k T / (pi mu)), v0 = 10 km/s. Collisions with He are neglected (a few %).
  if (l.abo_sigma > 0) {
    const double alpha = l.abo_alpha;
    const double mu = cgs::amu / (1.0 / kHydrogenMass + 1.0 / l.mass_amu);
    const double v1 = std::sqrt(8.0 * cgs::kB / (cgs::pi * mu));  // at T = 1 K
    vdw_coeff = 2.0 * std::pow(4.0 / cgs::pi, 0.5 * alpha) * std::tgamma(2.0 - 0.5 * alpha) * l.abo_sigma *
                std::pow(v1, 1.0 - alpha) * std::pow(1e6, alpha);
  }
}

LteSynthesizer::LteSynthesizer(const std::vector<SpectralLine>& lines, std::vector<double> wavelength)
    : wavelength_(std::move(wavelength)) {
  if (lines.empty()) throw InvalidArgument("LTE synthesis needs at least one spectral line");
  if (wavelength_.size() < 2) throw InvalidArgument("LTE synthesis needs >= 2 wavelengths");
  for (std::size_t i = 0; i < wavelength_.size(); ++i) {
    if (!std::isfinite(wavelength_[i]) || wavelength_[i] < 3000.0 || wavelength_[i] > 20000.0)
      throw InvalidArgument(
          "wavelengths must be finite air wavelengths in Angstrom within "
          "3000 ... 20000");
    if (i && !(wavelength_[i] > wavelength_[i - 1])) throw InvalidArgument("wavelengths must increase strictly");
  }
  for (const auto& l : lines) lines_.emplace_back(l);
}

LteStatus LteSynthesizer::synthesize(const AtmosphereView& atm, double mu, double* out, bool with_lines) const {
  const int nd = atm.nd;
  const std::size_t nw = wavelength_.size();
  const double nan = std::numeric_limits<double>::quiet_NaN();
  std::fill(out, out + 4 * nw, nan);
  if (!(mu > 0.0 && mu <= 1.0)) throw InvalidArgument("mu must be in (0, 1]");
  if (nd < 3) throw InvalidArgument("an atmosphere needs at least 3 depth points");
  for (int k = 0; k < nd; ++k) {
    const bool ok = std::isfinite(atm.log_tau[k]) && atm.T[k] > 1000.0 && atm.T[k] < 1e5 && atm.vmic[k] >= 0.0 &&
                    atm.vmic[k] < 100.0 && atm.B[k] >= 0.0 && atm.B[k] < 1e5 && std::isfinite(atm.inclination[k]) &&
                    std::isfinite(atm.azimuth[k]) && std::fabs(atm.vlos[k]) < 1000.0;
    if (!ok) return LteStatus::invalid_input;
  }

  // 1. Hydrostatic equilibrium and EOS.
  std::vector<EosState> st(nd);
  std::vector<double> k500(nd);
  if (!hydrostatic_equilibrium(eos_, atm.log_tau, atm.T, nd, kSolarGravity, st.data(), k500.data()))
    return LteStatus::hydrostatic_failed;

  // 2.-3. Opacities per depth on the wavelength grid. On grids spanning <= 30 A the continuum
  // (smooth, ~lambda^1.5 for H-) is evaluated at the grid ends and interpolated linearly in
  // lambda (curvature error < 1e-6 relative); wider grids get it at every wavelength.
  const double lam0 = wavelength_.front(), lam1 = wavelength_.back();
  std::vector<double> etaI(nd * nw), etaQ(nd * nw), etaU(nd * nw), etaV(nd * nw), rhoQ(nd * nw), rhoU(nd * nw),
      rhoV(nd * nw), S(nd * nw);
  PropagationRows rows;
  rows.resize(nw);
  std::vector<double> x(nw), scratch;
  const double deg = cgs::pi / 180.0;
  for (int k = 0; k < nd; ++k) {
    const EosState& s = st[k];
    rows.resize(nw);
    if (lam1 - lam0 <= kInterpSpan) {
      const double kc0 = continuum_opacity(s, continuum_coeffs(s.T, lam0)).total();
      const double kc1 = continuum_opacity(s, continuum_coeffs(s.T, lam1)).total();
      for (std::size_t i = 0; i < nw; ++i) {
        const double f = (wavelength_[i] - lam0) / (lam1 - lam0);
        rows.etaI[i] = kc0 + f * (kc1 - kc0);
      }
    } else {
      for (std::size_t i = 0; i < nw; ++i)
        rows.etaI[i] = continuum_opacity(s, continuum_coeffs(s.T, wavelength_[i])).total();
    }
    double* Sk = S.data() + k * nw;
    if (lam1 - lam0 <= kInterpSpan) {
      // B_lambda(T) through three exact values, quadratic in lambda: the cubic term is
      // ~ (span/lambda)^3 x^3 / 6 < 1e-7 relative for spans <= 30 A (x = hc/lambda kT < 7).
      const double lm = 0.5 * (lam0 + lam1), h = 0.5 * (lam1 - lam0);
      const double b0 = planck_lambda(lam0, s.T), bm = planck_lambda(lm, s.T), b1 = planck_lambda(lam1, s.T);
      const double c1 = 0.5 * (b1 - b0) / h, c2 = 0.5 * (b1 - 2.0 * bm + b0) / (h * h);
      for (std::size_t i = 0; i < nw; ++i) {
        const double t = wavelength_[i] - lm;
        Sk[i] = bm + t * (c1 + t * c2);
      }
    } else {
      for (std::size_t i = 0; i < nw; ++i) Sk[i] = planck_lambda(wavelength_[i], s.T);
    }
    const double T = s.T;
    for (const LteLine& L : lines_) {
      if (!with_lines) break;
      const SpectralLine& l = L.line;
      const double phi = LteEos::saha_phi(L.Z, 0, T) / s.ne;  // n(II)/n(I)
      const double frac = L.stage == 0 ? 1.0 / (1.0 + phi) : phi / (1.0 + phi);
      const double n_stage = eos_.abundance(L.Z) * s.nH * frac;
      const double U = LteEos::partition(L.Z, L.stage, T);
      const double lam_cm = l.wavelength * 1e-8;
      const double stim = -std::expm1(-cgs::h * cgs::c / (lam_cm * cgs::kB * T));
      const double nlow_f = n_stage * std::pow(10.0, l.log_gf) * std::exp(-l.chi_low * cgs::eV / (cgs::kB * T)) / U;
      const double vth2 = 2.0 * cgs::kB * T / (l.mass_amu * cgs::amu);
      const double vmic = atm.vmic[k] * 1e5;
      const double dld = l.wavelength * std::sqrt(vth2 + vmic * vmic) / cgs::c;  // Angstrom
      // pi e^2/(m c^2) lambda^2 [cm^2] n f (1 - e^{-h nu/kT}) / Doppler width [cm]
      const double kappa_L =
          cgs::pi * cgs::e2 / (cgs::me * cgs::c * cgs::c) * lam_cm * lam_cm * nlow_f * stim / (dld * 1e-8);
      const double gamma = L.gamma_rad + L.stark_coeff * std::pow(T, 1.0 / 6.0) * s.ne +
                           L.vdw_coeff * std::pow(T, 0.5 * (1.0 - l.abo_alpha)) * s.nHI;
      const double dnu = cgs::c * (dld * 1e-8) / (lam_cm * lam_cm);
      const double a = gamma / (4.0 * cgs::pi * dnu);
      const double center = l.wavelength * (1.0 + atm.vlos[k] * 1e5 / cgs::c);
      for (std::size_t i = 0; i < nw; ++i) x[i] = (wavelength_[i] - center) / dld;
      const double larmor = kLarmorAngstromPerGaussA2 * l.wavelength * l.wavelength * atm.B[k] / dld;
      add_line_propagation(L.pattern, kappa_L, a, x.data(), nw, larmor, atm.inclination[k] * deg, atm.azimuth[k] * deg,
                           rows, scratch);
    }
    std::copy(rows.etaI.begin(), rows.etaI.end(), etaI.begin() + k * nw);
    std::copy(rows.etaQ.begin(), rows.etaQ.end(), etaQ.begin() + k * nw);
    std::copy(rows.etaU.begin(), rows.etaU.end(), etaU.begin() + k * nw);
    std::copy(rows.etaV.begin(), rows.etaV.end(), etaV.begin() + k * nw);
    std::copy(rows.rhoQ.begin(), rows.rhoQ.end(), rhoQ.begin() + k * nw);
    std::copy(rows.rhoU.begin(), rows.rhoU.end(), rhoU.begin() + k * nw);
    std::copy(rows.rhoV.begin(), rows.rhoV.end(), rhoV.begin() + k * nw);
  }

  // 4. Formal solution per wavelength. Ray optical depth between k and k+1:
  // dtau = (tau500_{k+1} - tau500_k) * (r_k tau_k + r_{k+1} tau_{k+1}) / (tau_k + tau_{k+1}) / mu,
  // r = eta_I / kappa_500: trapezoid in ln tau with the exact tau_500 increment (exact for
  // constant r).
  std::vector<double> tau(nd);
  for (int k = 0; k < nd; ++k) tau[k] = std::pow(10.0, atm.log_tau[k]);
  std::vector<double> dtau((nd - 1) * nw);
  for (int k = 0; k + 1 < nd; ++k) {
    const double tk = tau[k], tk1 = tau[k + 1];
    const double fa = tk / k500[k], fb = tk1 / k500[k + 1];
    const double scale = (tk1 - tk) / (tk + tk1) / mu;
    const double* ea = etaI.data() + k * nw;
    const double* eb = ea + nw;
    double* dt = dtau.data() + k * nw;
    for (std::size_t i = 0; i < nw; ++i) dt[i] = (ea[i] * fa + eb[i] * fb) * scale;
  }
  delo_linear_batch(nd, nw, dtau.data(), etaI.data(), etaQ.data(), etaU.data(), etaV.data(), rhoQ.data(), rhoU.data(),
                    rhoV.data(), S.data(), out);
  return LteStatus::ok;
}

void LteSynthesizer::synthesize_batch(int n, int nd, const double* log_tau, const double* T, const double* vmic,
                                      const double* B, const double* inclination, const double* azimuth,
                                      const double* vlos, double mu, double* out, std::int8_t* status, int threads,
                                      bool with_lines) const {
  if (n < 0) throw InvalidArgument("number of atmospheres must be >= 0");
  if (!(mu > 0.0 && mu <= 1.0)) throw InvalidArgument("mu must be in (0, 1]");
  if (nd < 3) throw InvalidArgument("an atmosphere needs at least 3 depth points");
  for (int k = 0; k < nd; ++k)
    if (!std::isfinite(log_tau[k]) || (k && !(log_tau[k] > log_tau[k - 1])))
      throw InvalidArgument("log_tau must be finite and increase strictly from the top down");
  const std::size_t nw = wavelength_.size();
  const int nt = resolve_threads(threads, n, "LteSynthesizer.synthesize");
  (void)nt;
#ifdef FASTINV_HAVE_OPENMP
#pragma omp parallel for schedule(dynamic, 4) num_threads(nt)
#endif
  for (int i = 0; i < n; ++i) {
    const std::size_t o = static_cast<std::size_t>(i) * nd;
    AtmosphereView v{log_tau, nd, T + o, vmic + o, B + o, inclination + o, azimuth + o, vlos + o};
    LteStatus s;
    try {
      s = synthesize(v, mu, out + static_cast<std::size_t>(i) * 4 * nw, with_lines);
    } catch (const std::exception&) {
      s = LteStatus::invalid_input;  // never let an exception escape an OpenMP region
    }
    status[i] = static_cast<std::int8_t>(s);
  }
}

}  // namespace fastinv::stokes
