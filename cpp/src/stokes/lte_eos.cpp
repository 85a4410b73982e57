// Saha ionisation balance and partition functions (see fastinv/stokes/lte_eos.hpp).
#include <cmath>
#include <limits>
#include <string>

#include "fastinv/error.hpp"
#include "fastinv/stokes/lte_eos.hpp"
#include "stokes/lte_constants.hpp"
#include "stokes/lte_partition_data.hpp"

namespace fastinv::stokes {
namespace {

// Asplund, Grevesse, Sauval & Scott (2009, ARA&A 47, 481) photospheric log eps, and
// standard atomic masses [u]. Ne and Ar only add particles and mass (ionisation energies
// > 15 eV: no electrons in the photosphere).
struct ElementData {
  int Z;
  double log_eps;
  double mass;
  bool donor;
};
constexpr ElementData kElements[] = {
    {1, 12.00, 1.008, false}, {2, 10.93, 4.0026, true},  {6, 8.43, 12.011, true},  {7, 7.83, 14.007, true},
    {8, 8.69, 15.999, true},  {10, 7.93, 20.180, false}, {11, 6.24, 22.990, true}, {12, 7.60, 24.305, true},
    {13, 6.45, 26.982, true}, {14, 7.51, 28.085, true},  {16, 7.12, 32.06, true},  {18, 6.40, 39.948, false},
    {19, 5.03, 39.098, true}, {20, 6.34, 40.078, true},  {24, 5.64, 51.996, true}, {26, 7.50, 55.845, true},
    {28, 6.22, 58.693, true},
};
constexpr int kMaxDonors = 16;

// Index of the partition table by (Z, stage), built once (thread-safe static init).
constexpr int kMaxZ = 30, kMaxStage = 3;
const detail::PartitionEntry* find_entry(int Z, int stage) {
  struct Index {
    const detail::PartitionEntry* e[kMaxZ + 1][kMaxStage] = {};
    Index() {
      for (int i = 0; i < detail::kPartitionTableSize; ++i) {
        const auto& t = detail::kPartitionTable[i];
        if (t.Z <= kMaxZ && t.stage < kMaxStage) e[t.Z][t.stage] = &t;
      }
    }
  };
  static const Index index;
  if (Z < 0 || Z > kMaxZ || stage < 0 || stage >= kMaxStage) return nullptr;
  return index.e[Z][stage];
}

}  // namespace

namespace {
// Position of log10 T in the partition table: index and fraction (clamped to 3.3 ... 4.3).
struct TablePos {
  int i;
  double f;
};
TablePos table_pos(double T) {
  const double x = (std::log10(T) - detail::kPfLogT0) / detail::kPfDLogT;
  if (!(x > 0)) return {0, 0.0};
  if (x >= detail::kPfNT - 1) return {detail::kPfNT - 2, 1.0};
  const int i = static_cast<int>(x);
  return {i, x - i};
}

const detail::PartitionEntry& entry_or_throw(int Z, int stage) {
  const auto* e = find_entry(Z, stage);
  if (!e) throw InvalidArgument("no partition function for Z=" + std::to_string(Z) + " stage " + std::to_string(stage));
  return *e;
}

double log10_u(const detail::PartitionEntry& e, TablePos p) {
  return (1 - p.f) * e.log10U[p.i] + p.f * e.log10U[p.i + 1];
}
}  // namespace

double LteEos::partition(int Z, int stage, double T) {
  // Linear interpolation of log U in log T; clamped outside the table (3.3 ... 4.3).
  return std::pow(10.0, log10_u(entry_or_throw(Z, stage), table_pos(T)));
}

double LteEos::ionisation_eV(int Z, int stage) {
  const auto* e = find_entry(Z, stage);
  if (!e) throw InvalidArgument("no ionisation energy for Z=" + std::to_string(Z));
  return e->ion_eV;
}

double LteEos::saha_phi(int Z, int stage, double T) {
  const auto& e0 = entry_or_throw(Z, stage);
  const auto& e1 = entry_or_throw(Z, stage + 1);
  const TablePos p = table_pos(T);
  const double chi = e0.ion_eV * cgs::eV;
  // 2 U1/U0 (2 pi m k T/h^2)^{3/2} exp(-chi/kT), with the U ratio folded into one exp
  const double ln_ratio = (log10_u(e1, p) - log10_u(e0, p)) * 2.302585092994046;
  return 2.0 * cgs::kSahaC * T * std::sqrt(T) * std::exp(ln_ratio - chi / (cgs::kB * T));
}

double LteEos::hminus_factor(double T) {
  // n(H I) n_e / n(H-) = 2 U(H I)/U(H-) (2 pi m k T/h^2)^{3/2} exp(-0.754 eV/kT), U = 2, 1.
  constexpr double kChiHm = 0.754 * cgs::eV;
  return std::exp(kChiHm / (cgs::kB * T)) / (4.0 * cgs::kSahaC * T * std::sqrt(T));
}

LteEos::LteEos() {
  double mass = 0, nuclei = 0;
  for (const auto& el : kElements) {
    double a = std::pow(10.0, el.log_eps - 12.0);
    mass += a * el.mass * cgs::amu;
    nuclei += a;
    if (el.donor) donors_.push_back({el.Z, a});
  }
  mass_per_h_ = mass;
  nuclei_per_h_ = nuclei;
}

double LteEos::abundance(int Z) const {
  for (const auto& el : kElements)
    if (el.Z == Z) return std::pow(10.0, el.log_eps - 12.0);
  return 0.0;
}

double LteEos::electrons_per_h(double ne, double phiH, double hmf, const double* phi) const {
  double r1 = phiH / ne, rm = hmf * ne;
  double x = (r1 - rm) / (1.0 + r1 + rm);
  for (size_t i = 0; i < donors_.size(); ++i) {
    double r = phi[i] / ne;
    x += donors_[i].abund * r / (1.0 + r);
  }
  return x;
}

EosState LteEos::finish(double T, double nH, double ne, double phiH, double hmf) const {
  EosState s;
  s.T = T;
  s.ne = ne;
  s.nH = nH;
  double r1 = phiH / ne, rm = hmf * ne;
  s.nHI = nH / (1.0 + r1 + rm);
  s.nHII = s.nHI * r1;
  s.nHm = s.nHI * rm;
  s.Pe = ne * cgs::kB * T;
  s.Pg = (nH * nuclei_per_h_ + ne) * cgs::kB * T;
  s.rho = nH * mass_per_h_;
  return s;
}

namespace {
void check_T(double T) {
  if (!(T > 0) || !std::isfinite(T))
    throw InvalidArgument("temperature must be positive and finite, got " + std::to_string(T));
}

// Root of a function increasing in y = ln(ne) on [lo, hi] (f(lo) < 0 < f(hi)) by the
// Illinois variant of regula falsi: bracketed, so it cannot diverge.
template <class F>
double solve_increasing(F f, double lo, double hi) {
  double flo = f(lo), fhi = f(hi);
  if (flo >= 0) return lo;
  if (fhi <= 0) return hi;
  int side = 0;
  for (int it = 0; it < 200; ++it) {
    double y = (lo * fhi - hi * flo) / (fhi - flo);
    double fy = f(y);
    if (std::fabs(fy) < 1e-13 || hi - lo < 1e-13) return y;
    if (fy < 0) {
      lo = y;
      flo = fy;
      if (side == -1) fhi *= 0.5;
      side = -1;
    } else {
      hi = y;
      fhi = fy;
      if (side == 1) flo *= 0.5;
      side = 1;
    }
  }
  return 0.5 * (lo + hi);
}
}  // namespace

SahaCache LteEos::saha_cache(double T) const {
  check_T(T);
  SahaCache c;
  c.T = T;
  for (size_t i = 0; i < donors_.size(); ++i) c.phi[i] = saha_phi(donors_[i].Z, 0, T);
  c.phiH = saha_phi(1, 0, T);
  c.hmf = hminus_factor(T);
  return c;
}

EosState LteEos::from_pg(double T, double Pg) const { return from_pg(saha_cache(T), Pg); }

EosState LteEos::from_pg(const SahaCache& c, double Pg, double ne_guess) const {
  const double T = c.T;
  if (!(Pg > 0) || !std::isfinite(Pg)) throw InvalidArgument("gas pressure must be positive and finite");
  double ne = solve_ne_from_pg(T, Pg, c, ne_guess);
  double N = Pg / (cgs::kB * T);
  return finish(T, (N - ne) / nuclei_per_h_, ne, c.phiH, c.hmf);
}

double LteEos::solve_ne_from_pg(double T, double Pg, const SahaCache& c, double ne_guess) const {
  double N = Pg / (cgs::kB * T);  // all particles
  // f(y) = ln ne - ln(nH(ne) X(ne)), with nH = (N - ne)/nuclei_per_h: increasing in y.
  auto f = [&](double y) {
    double ne = std::exp(y);
    double nH = (N - ne) / nuclei_per_h_;
    double x = electrons_per_h(ne, c.phiH, c.hmf, c.phi);
    if (nH <= 0 || x <= 0) return 1.0;
    return y - std::log(nH * x);
  };
  const double ymax = std::log(N * (1 - 1e-12));
  if (ne_guess > 0 && ne_guess < N) {
    // Warm start (hydrostatic iterations change P_g a little): a narrow bracket if it holds.
    const double y = std::log(ne_guess), lo = y - 0.5, hi = std::min(y + 0.5, ymax);
    if (lo < hi && f(lo) < 0 && f(hi) > 0) return std::exp(solve_increasing(f, lo, hi));
  }
  return std::exp(solve_increasing(f, std::log(N) - 40.0, ymax));
}

EosState LteEos::from_nh(double T, double nH) const {
  check_T(T);
  if (!(nH > 0) || !std::isfinite(nH)) throw InvalidArgument("hydrogen density must be positive and finite");
  double phi[kMaxDonors];
  for (size_t i = 0; i < donors_.size(); ++i) phi[i] = saha_phi(donors_[i].Z, 0, T);
  double phiH = saha_phi(1, 0, T), hmf = hminus_factor(T);
  auto f = [&](double y) {
    double ne = std::exp(y);
    double x = electrons_per_h(ne, phiH, hmf, phi);
    if (x <= 0) return 1.0;
    return y - std::log(nH * x);
  };
  double y = solve_increasing(f, std::log(nH) - 40.0, std::log(nH * 2.0));
  return finish(T, nH, std::exp(y), phiH, hmf);
}

double LteEos::neutral_fraction(int Z, const EosState& s) const {
  if (Z == 1) return s.nHI / s.nH;
  double r = saha_phi(Z, 0, s.T) / s.ne;
  return 1.0 / (1.0 + r);
}

}  // namespace fastinv::stokes
