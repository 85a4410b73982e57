// Built-in line list and the line registry.
#include "fastinv/stokes/lines.hpp"

#include <cmath>
#include <map>
#include <mutex>

#include "fastinv/error.hpp"

namespace fastinv::stokes {
namespace {

bool is_half_integer(double j) {
  const double twice = 2.0 * j;
  return std::isfinite(j) && j >= 0.0 && std::fabs(twice - std::round(twice)) < 1e-9;
}

// Fe I 630 nm pair. Wavelengths (air), chi_low and log gf: VALD, as listed in issue 5 and
// /reference stokes.md (SIR's LINES file has log gf -0.59/-1.16 and pyMilne -0.968 for
// 6302; only the ratio matters for ME). Terms (NIST): 6301.5 z5P°2 -> e5D2, 6302.5
// z5P°1 -> e5D0; Lande factors from LS coupling (1.8333/1.5 and 2.5/0 -> g_eff 1.667
// and 2.5; the table rounds 1.8333 to 1.83). ABO van der Waals alpha and sigma:
// SIR's default LINES file (BasilioRuiz/SIR-code), sigma in cm^2 as written there.
std::vector<SpectralLine> builtin_lines() {
  SpectralLine l6301;
  l6301.name = "FeI_6301";
  l6301.element = "Fe";
  l6301.ion = 1;
  l6301.mass_amu = 55.845;
  l6301.wavelength = 6301.5012;
  l6301.chi_low = 3.654;
  l6301.log_gf = -0.718;
  l6301.j_low = 2.0;
  l6301.j_up = 2.0;
  l6301.g_low = lande_g_ls(1.0, 2.0, 2.0);  // z5P°2
  l6301.g_up = lande_g_ls(2.0, 2.0, 2.0);   // e5D2
  l6301.abo_alpha = 0.243;
  l6301.abo_sigma = 2.352e-14;
  l6301.source = "VALD (lambda, chi, log gf); LS-coupling g of z5P2 -> e5D2; ABO from SIR LINES";

  SpectralLine l6302 = l6301;
  l6302.name = "FeI_6302";
  l6302.wavelength = 6302.4936;
  l6302.chi_low = 3.686;
  l6302.log_gf = -1.165;
  l6302.j_low = 1.0;
  l6302.j_up = 0.0;
  l6302.g_low = lande_g_ls(1.0, 2.0, 1.0);  // z5P°1
  l6302.g_up = 0.0;                         // e5D0: J = 0, no splitting
  l6302.abo_alpha = 0.240;
  l6302.abo_sigma = 2.398e-14;
  l6302.source = "VALD (lambda, chi, log gf); LS-coupling g of z5P1 -> e5D0; ABO from SIR LINES";

  // Fe I 6173.3, the HMI line, transition a5P1 -> y5D0 (J 1 -> 0, so g_eff = g(a5P1) = 2.5 in
  // LS coupling). Checked against public line tables (the quoted value of Norton et al. 2006,
  // Sol. Phys. 239, 69, could not be read here):
  //  - wavelength (air) 6173.3340 A and log gf -2.880 from VALD as tabulated by pyMilne
  //    (de la Cruz Rodriguez 2019, MilneEddington.py, "the rest from VALD"), also g 2.50, J 1 -> 0;
  //    the GRASS/NEID line list has 6173.3344 A. HMI's own code uses 6173.3433 A, 9 mA
  //    (0.43 km/s) redder: an earlier version here took that value; velocities on HMI's
  //    scale need that offset.
  //  - chi_low 2.223 eV: the a5P1 level at 17927.38 cm^-1 (Nave et al. 1994, ApJS 94, 221;
  //    NIST ASD) = 2.2227 eV.
  // No ABO van der Waals data here (abo_sigma = 0: the LTE synthesis then uses no van der
  // Waals broadening for it; ME does not need it).
  SpectralLine l6173 = l6301;
  l6173.name = "FeI_6173";
  l6173.wavelength = 6173.3340;
  l6173.chi_low = 2.223;
  l6173.log_gf = -2.880;
  l6173.j_low = 1.0;
  l6173.j_up = 0.0;
  l6173.g_low = lande_g_ls(1.0, 2.0, 1.0);  // 5P1
  l6173.g_up = 0.0;                         // 5D0: J = 0, no splitting
  l6173.abo_alpha = 0.0;
  l6173.abo_sigma = 0.0;
  l6173.source = "VALD via pyMilne's table (lambda, log gf); chi of a5P1 (Nave et al. 1994); LS-coupling g";
  return {l6301, l6302, l6173};
}

struct Registry {
  std::mutex mutex;
  std::map<std::string, SpectralLine> lines;
  Registry() {
    for (const SpectralLine& l : builtin_lines()) lines[l.name] = l;
  }
};

Registry& registry() {
  static Registry r;
  return r;
}

void require(bool ok, const SpectralLine& line, const std::string& what) {
  if (!ok) throw InvalidArgument("spectral line '" + line.name + "': " + what);
}

}  // namespace

double SpectralLine::g_eff() const {
  return 0.5 * (g_low + g_up) + 0.25 * (g_low - g_up) * (j_low * (j_low + 1.0) - j_up * (j_up + 1.0));
}

double lande_g_ls(double L, double S, double J) {
  if (!is_half_integer(L) || !is_half_integer(S) || !is_half_integer(J))
    throw InvalidArgument("lande_g_ls: L, S, J must be non-negative integers or half-integers");
  if (J == 0.0) return 0.0;
  return 1.0 + (J * (J + 1.0) + S * (S + 1.0) - L * (L + 1.0)) / (2.0 * J * (J + 1.0));
}

void validate_line(const SpectralLine& line) {
  if (line.name.empty()) throw InvalidArgument("spectral line: name must not be empty");
  require(!line.element.empty(), line, "element must not be empty");
  require(line.ion >= 1, line, "ion must be >= 1 (1 = neutral)");
  require(std::isfinite(line.mass_amu) && line.mass_amu > 0.0, line, "mass_amu must be > 0");
  require(std::isfinite(line.wavelength) && line.wavelength > 0.0, line,
          "wavelength must be a positive number of Angstrom");
  require(std::isfinite(line.chi_low) && line.chi_low >= 0.0, line, "chi_low must be >= 0 eV");
  require(std::isfinite(line.log_gf), line, "log_gf must be finite");
  require(is_half_integer(line.j_low) && is_half_integer(line.j_up), line,
          "j_low and j_up must be non-negative integers or half-integers");
  require(std::fabs(line.j_up - line.j_low) <= 1.0 + 1e-12, line,
          "|j_up - j_low| must be <= 1 for a dipole transition");
  require(!(line.j_up == 0.0 && line.j_low == 0.0), line, "J 0 -> 0 is forbidden");
  require(std::fabs(line.j_up - line.j_low - std::round(line.j_up - line.j_low)) < 1e-9, line,
          "j_up - j_low must be an integer");
  require(std::isfinite(line.g_low) && std::isfinite(line.g_up), line, "g factors must be finite");
  require(std::isfinite(line.abo_alpha) && line.abo_alpha >= 0.0, line, "abo_alpha must be >= 0");
  require(std::isfinite(line.abo_sigma) && line.abo_sigma >= 0.0, line, "abo_sigma must be >= 0");
}

SpectralLine get_line(const std::string& name) {
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  auto it = r.lines.find(name);
  if (it == r.lines.end()) {
    std::string known;
    for (const auto& kv : r.lines) known += (known.empty() ? "" : ", ") + kv.first;
    throw InvalidArgument("unknown spectral line '" + name + "'; known lines: " + known +
                          " (add more with register_line)");
  }
  return it->second;
}

bool has_line(const std::string& name) {
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  return r.lines.count(name) > 0;
}

std::vector<std::string> line_names() {
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  std::vector<std::string> names;
  for (const auto& kv : r.lines) names.push_back(kv.first);
  return names;
}

void register_line(const SpectralLine& line) {
  validate_line(line);
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  r.lines[line.name] = line;
}

}  // namespace fastinv::stokes
