// Atomic data of the spectral lines fastinv synthesises, and a registry to look them up
// by name. Built in: Fe I 6301.5 and 6302.5 (the Hinode SP / DKIST ViSP pair) and Fe I 6173.3
// (HMI); more lines
// are added as data with register_line() (Python: fastinv.stokes.lines.register_line).
#pragma once
#include <string>
#include <vector>

namespace fastinv::stokes {

struct SpectralLine {
  std::string name;                // registry key, e.g. "FeI_6301"
  std::string element;             // chemical symbol, e.g. "Fe"
  int ion = 1;                     // 1 = neutral, 2 = singly ionised, ...
  double mass_amu = 0.0;           // atomic mass [u] (thermal Doppler width)
  double wavelength = 0.0;         // line centre, AIR [Angstrom]
  double chi_low = 0.0;            // excitation potential of the lower level [eV]
  double log_gf = 0.0;             // log10 (g_low f)
  double j_low = 0.0, j_up = 0.0;  // total angular momenta (integer or half-integer)
  double g_low = 0.0, g_up = 0.0;  // Lande factors of the lower / upper level
  double abo_alpha = 0.0;          // Anstee-Barklem-O'Mara velocity exponent alpha
  double abo_sigma = 0.0;          // ABO cross-section at 10 km/s [cm^2] (as in SIR's LINES file)
  std::string source;              // where the numbers come from

  // Effective Lande factor of the line (LL04 eq. 3.44):
  // g_eff = (g_l + g_u)/2 + (g_l - g_u)(J_l(J_l+1) - J_u(J_u+1))/4.
  double g_eff() const;
};

// Lande factor of a level in LS coupling: 1 + [J(J+1) + S(S+1) - L(L+1)] / [2J(J+1)]
// (0 for J = 0, where it is undefined and irrelevant).
double lande_g_ls(double L, double S, double J);

// Checks a line's fields (finite, positive wavelength, valid J, |J_u - J_l| <= 1 and not
// 0 -> 0, ...). Throws InvalidArgument naming the bad field.
void validate_line(const SpectralLine& line);

// Registry (thread-safe). Lookups return copies.
SpectralLine get_line(const std::string& name);  // throws InvalidArgument if unknown
bool has_line(const std::string& name);
std::vector<std::string> line_names();
// Adds or replaces a line (validated first).
void register_line(const SpectralLine& line);

}  // namespace fastinv::stokes
