// Depth-stratified LTE synthesis of polarised line profiles (SIR-like).
//
// An atmosphere is given on a log10 tau_500 grid, top first (strictly increasing), with per
// depth: T [K], micro-turbulence [km/s], |B| [G], inclination [deg] (0 = toward the
// observer), azimuth [deg], v_LOS [km/s] (positive = away from the observer = red shift,
// the solar convention). For each atmosphere:
//   1. hydrostatic equilibrium + Saha EOS (lte_eos.hpp) -> P_g, P_e, n_H I, kappa_500;
//   2. continuum extinction at the line wavelengths, Planck source function B_lambda(T);
//   3. per line: Saha-Boltzmann lower-level population (Kurucz partition functions),
//      stimulated emission, Doppler width from T and v_mic, damping = radiative (classical)
//      + quadratic Stark (Traving/Lindholm, as in RH) + van der Waals (Anstee-Barklem-O'Mara),
//      Zeeman components (zeeman.hpp) with Voigt / Faraday-Voigt profiles (faddeeva.hpp);
//   4. the 4x4 propagation matrix (LL04 sign conventions, checked against lightweaver) and a
//      DELO-linear formal solution (Rees, Durrant & Murphy 1989) for the emergent Stokes
//      vector at mu = cos(theta), with the diffusion approximation at the bottom.
// Output: I, Q, U, V in erg s^-1 cm^-2 sr^-1 A^-1 (absolute).
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "fastinv/stokes/lines.hpp"
#include "fastinv/stokes/lte_eos.hpp"
#include "fastinv/stokes/zeeman.hpp"

namespace fastinv::stokes {

// Views of one atmosphere's per-depth arrays (length nd each; not owned).
struct AtmosphereView {
  const double* log_tau = nullptr;
  int nd = 0;
  const double* T = nullptr;
  const double* vmic = nullptr;         // km/s
  const double* B = nullptr;            // G
  const double* inclination = nullptr;  // deg
  const double* azimuth = nullptr;      // deg
  const double* vlos = nullptr;         // km/s, positive = red shift
};

// Per-atmosphere outcome (the others in a batch are unaffected).
enum class LteStatus : std::int8_t {
  ok = 0,
  invalid_input = 1,  // non-finite or out-of-range values (T outside 1000...1e5 K, B < 0, ...)
  hydrostatic_failed = 2,
};

// Propagation-matrix elements of one depth on the wavelength grid, absolute [cm^-1].
struct PropagationRows {
  std::vector<double> etaI, etaQ, etaU, etaV, rhoQ, rhoU, rhoV;
  void resize(std::size_t n);
};

// Line + derived constants used by the synthesis.
struct LteLine {
  SpectralLine line;
  ZeemanPattern pattern;
  int Z = 0;               // atomic number of the element
  int stage = 0;           // 0 = neutral
  double gamma_rad = 0;    // radiative damping [s^-1] (classical, 8 pi^2 e^2 / (3 m c lambda^2))
  double stark_coeff = 0;  // gamma_4 = stark_coeff * T^{1/6} * n_e
  double vdw_coeff = 0;    // gamma_6 = vdw_coeff * T^{(1-alpha)/2} * n_H I
  explicit LteLine(const SpectralLine& l);
};

// Adds one line's contribution to the propagation matrix at one depth.
// eta_line0: line-centre opacity per unit normalised profile [cm^-1] (kappa_L: the profile
// H/sqrt(pi) peaks at 1/sqrt(pi) for a = 0), i.e. eta_I(line) = kappa_L * phi / (Doppler units).
// x: wavelength grid in Doppler units relative to the shifted line centre, larmor the Zeeman
// splitting per unit g in Doppler units, damping a, angles in radians.
void add_line_propagation(const ZeemanPattern& pattern, double kappa_L, double a, const double* x, std::size_t n,
                          double larmor, double gamma, double chi, PropagationRows& rows, std::vector<double>& scratch);

// DELO-linear formal solution (Rees, Durrant & Murphy 1989) for nw wavelengths at once
// (SIMD over wavelength): the effective source S~ - K' I is taken linear in tau between
// depth points; diffusion approximation I = S + dS/dtau at the bottom. Every depth array is
// laid out [k * nw + i] (k = depth, top first); dtau[k * nw + i] is the ray optical depth
// (eta_I scale) between depths k and k+1; S the source function; out[r * nw + i] the
// emergent I, Q, U, V.
void delo_linear_batch(int nd, std::size_t nw, const double* dtau, const double* etaI, const double* etaQ,
                       const double* etaU, const double* etaV, const double* rhoQ, const double* rhoU,
                       const double* rhoV, const double* S, double* out);

class LteSynthesizer {
 public:
  // Throws InvalidArgument for an empty line list / wavelength grid, non-finite or
  // non-increasing wavelengths [Angstrom, air], or an element the EOS does not know.
  LteSynthesizer(const std::vector<SpectralLine>& lines, std::vector<double> wavelength);

  std::size_t n_wavelength() const { return wavelength_.size(); }

  // One atmosphere -> out[4 * n_wavelength] (I, Q, U, V rows). Never throws for bad
  // atmosphere values: returns a status and fills NaN.
  // with_lines = false gives the continuum alone (for normalisation).
  LteStatus synthesize(const AtmosphereView& atm, double mu, double* out, bool with_lines = true) const;

  // n atmospheres sharing log_tau (length nd); arrays (n, nd) row-major; out (n, 4, nλ);
  // status (n). OpenMP over atmospheres (threads <= 0: default).
  void synthesize_batch(int n, int nd, const double* log_tau, const double* T, const double* vmic, const double* B,
                        const double* inclination, const double* azimuth, const double* vlos, double mu, double* out,
                        std::int8_t* status, int threads, bool with_lines = true) const;

 private:
  std::vector<LteLine> lines_;
  std::vector<double> wavelength_;
  LteEos eos_;
};

}  // namespace fastinv::stokes
