// Equation of state, continuum opacity and hydrostatic equilibrium for LTE synthesis of
// photospheric lines (all CGS). Textbook physics, sources cited at each piece:
//  - Saha ionisation (two stages per element, H also H-) over the main electron donors
//    H, He, C, N, O, Na, Mg, Al, Si, S, K, Ca, Cr, Fe, Ni (+ Ne, Ar as inert particles),
//    solar abundances of Asplund, Grevesse, Sauval & Scott (2009, ARA&A 47, 481);
//  - partition functions: Kurucz (via RH / lightweaver, see lte_partition_data.cpp);
//  - continuum: H- bound-free and free-free (John 1988, A&A 193, 189), H I bound-free
//    (Kramers, Gaunt factor 1, levels n >= threshold) and free-free, Thomson scattering,
//    Rayleigh scattering on H I (Dalgarno, as in Gray 2005, eq. 8.20);
//  - hydrostatic equilibrium dP_g/dtau_500 = g / kappa_500 (mass opacity), gas pressure only.
#pragma once
#include <array>
#include <vector>

namespace fastinv::stokes {

// Thermodynamic state at one depth. Number densities in cm^-3, pressures in dyn cm^-2.
struct EosState {
  double T = 0;     // temperature [K]
  double Pg = 0;    // gas pressure
  double Pe = 0;    // electron pressure
  double ne = 0;    // electron density
  double nH = 0;    // total hydrogen nuclei density (all forms)
  double nHI = 0;   // neutral hydrogen atoms
  double nHII = 0;  // protons
  double nHm = 0;   // H- ions
  double rho = 0;   // mass density [g cm^-3]
};

// Contributions to the continuum extinction coefficient [cm^-1] at one wavelength.
struct ContinuumParts {
  double hminus_bf = 0, hminus_ff = 0, h_bf = 0, h_ff = 0, thomson = 0, rayleigh = 0;
  double total() const { return hminus_bf + hminus_ff + h_bf + h_ff + thomson + rayleigh; }
};

// Temperature-dependent Saha factors at one T, reused while the pressure varies.
struct SahaCache {
  double T = 0;
  double phiH = 0;      // n(H II) n_e / n(H I)
  double hmf = 0;       // n(H-) / (n(H I) n_e)
  double phi[16] = {};  // n(II) n_e / n(I) of each electron donor (LteEos order)
};

// Continuum coefficients at one (T, lambda): multiply by the densities to get cm^-1.
struct ContinuumCoeffs {
  double hm_bf = 0, hm_ff = 0;  // per n(H I) per P_e
  double h_bf = 0;              // per n(H I)
  double h_ff = 0;              // per n_e n(H II)
  double thomson = 0;           // per n_e
  double rayleigh = 0;          // per n(H I)
};

class LteEos {
 public:
  LteEos();  // Asplund et al. (2009) abundances

  // Partition function U(T) of element Z in ionisation stage `stage` (0 = neutral).
  // T is clamped to the tabulated 10^3.3 ... 10^4.3 K. Throws InvalidArgument for a species
  // not in the table.
  static double partition(int Z, int stage, double T);
  static double ionisation_eV(int Z, int stage);

  // Saha factor Phi(T) = n_{stage+1} n_e / n_stage [cm^-3] for element Z.
  static double saha_phi(int Z, int stage, double T);
  // n(H-)/ (n(H I) n_e) [cm^3] (H- binding 0.754 eV, U(H-) = 1).
  static double hminus_factor(double T);

  // Number abundance of Z relative to H (0 if the EOS does not carry it).
  double abundance(int Z) const;
  double mass_per_H() const { return mass_per_h_; }         // [g] per H nucleus
  double particles_per_H() const { return nuclei_per_h_; }  // nuclei per H nucleus

  // Solve the ionisation balance for given T and gas pressure. Throws InvalidArgument for
  // non-positive or non-finite inputs.
  EosState from_pg(double T, double Pg) const;
  SahaCache saha_cache(double T) const;
  // ne_guess > 0: a nearby electron density to start from (faster; same result).
  EosState from_pg(const SahaCache& cache, double Pg, double ne_guess = -1.0) const;
  // Same for a given total hydrogen density (used by tests and the Pe-given path).
  EosState from_nh(double T, double nH) const;

  // Fraction of element Z in the neutral stage at the state's T, ne.
  double neutral_fraction(int Z, const EosState& s) const;

 private:
  struct Donor {
    int Z;
    double abund;
  };
  std::vector<Donor> donors_;  // elements that give electrons (not H)
  double mass_per_h_ = 0;
  double nuclei_per_h_ = 0;
  // Electrons per H nucleus for given T-dependent Saha factors and n_e.
  double electrons_per_h(double ne, double phiH, double hmf, const double* phi) const;
  double solve_ne_from_pg(double T, double Pg, const SahaCache& c, double ne_guess) const;
  EosState finish(double T, double nH, double ne, double phiH, double hmf) const;
};

// Continuum extinction [cm^-1] at air wavelength lambda_A [Angstrom] (absorption with
// stimulated emission, plus scattering).
ContinuumParts continuum_opacity(const EosState& s, double lambda_A);
ContinuumCoeffs continuum_coeffs(double T, double lambda_A);
ContinuumParts continuum_opacity(const EosState& s, const ContinuumCoeffs& c);

// Planck function B_lambda(T) [erg s^-1 cm^-2 sr^-1 A^-1] at lambda_A [Angstrom].
double planck_lambda(double lambda_A, double T);

constexpr double kSolarGravity = 2.7398e4;  // cm s^-2 (GM_sun / R_sun^2)
constexpr double kLambda500 = 5000.0;       // reference wavelength of tau_500 [A]

// Hydrostatic equilibrium on a log10 tau_500 grid ordered from the top (most negative)
// downward (strictly increasing). Fills states[k] and kappa500[k] (extinction at 5000 A,
// cm^-1). Returns false (and leaves NaNs) if the integration fails for this atmosphere (a
// per-atmosphere failure, not an exception). Throws InvalidArgument on malformed input.
bool hydrostatic_equilibrium(const LteEos& eos, const double* log_tau, const double* T, int n, double gravity,
                             EosState* states, double* kappa500, double pg_top = -1.0);

}  // namespace fastinv::stokes
