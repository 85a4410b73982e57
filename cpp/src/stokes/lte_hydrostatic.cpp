// Hydrostatic equilibrium on the log tau_500 scale: d ln P_g / d ln tau = g tau / (kappa_m P_g),
// with kappa_m = kappa_500 / rho the mass extinction at 5000 A. Integrated downward with the
// trapezoidal rule in ln tau on ln P_g (smooth, ~1 in the photosphere), each step iterated
// to convergence because kappa_m depends on P_g through the ionisation balance.
#include <cmath>
#include <limits>

#include "fastinv/error.hpp"
#include "fastinv/stokes/lte_eos.hpp"

namespace fastinv::stokes {
namespace {

double mass_kappa(const EosState& s, const ContinuumCoeffs& c) { return continuum_opacity(s, c).total() / s.rho; }

}  // namespace

bool hydrostatic_equilibrium(const LteEos& eos, const double* log_tau, const double* T, int n, double gravity,
                             EosState* states, double* kappa500, double pg_top) {
  if (n < 2) throw InvalidArgument("hydrostatic_equilibrium needs at least 2 depth points");
  if (!(gravity > 0)) throw InvalidArgument("gravity must be positive");
  for (int k = 1; k < n; ++k)
    if (!(log_tau[k] > log_tau[k - 1]))
      throw InvalidArgument("log_tau must increase strictly from the top of the atmosphere down");
  const double nan = std::numeric_limits<double>::quiet_NaN();
  auto fail = [&] {
    for (int k = 0; k < n; ++k) {
      states[k] = EosState{};
      states[k].Pg = nan;
      kappa500[k] = nan;
    }
    return false;
  };
  for (int k = 0; k < n; ++k)
    if (!(T[k] > 1000.0 && T[k] < 1e5) || !std::isfinite(log_tau[k])) return fail();

  try {
    // Top boundary: with kappa_m constant above the top point, P_g = g tau_0 / kappa_m(P_g);
    // kappa_m grows ~ P_g^{1/2} (H- ~ P_e), so a geometric-mean fixed point converges fast.
    const double tau0 = std::pow(10.0, log_tau[0]);
    double pg = pg_top > 0 ? pg_top : 1e3;
    SahaCache cache = eos.saha_cache(T[0]);
    ContinuumCoeffs cc = continuum_coeffs(T[0], kLambda500);
    EosState s = eos.from_pg(cache, pg);
    if (!(pg_top > 0)) {
      for (int it = 0; it < 200; ++it) {
        double target = gravity * tau0 / mass_kappa(s, cc);
        double next = std::sqrt(pg * target);
        bool done = std::fabs(next / pg - 1.0) < 1e-10;
        pg = next;
        s = eos.from_pg(cache, pg, s.ne);
        if (done) break;
      }
    }
    states[0] = s;
    kappa500[0] = continuum_opacity(s, cc).total();
    const double ln10 = std::log(10.0);
    double F_prev = gravity * tau0 / (kappa500[0] / s.rho * s.Pg);
    for (int k = 1; k < n; ++k) {
      const double dlnt = (log_tau[k] - log_tau[k - 1]) * ln10;
      const double tau = std::pow(10.0, log_tau[k]);
      // Solve G(x) = x - ln P_{k-1} - dlnt (F_{k-1} + F_k(x)) / 2 = 0 for x = ln P_g,k by the
      // secant method (G is increasing: F falls as P_g rises), a few iterations in practice.
      const double base = std::log(states[k - 1].Pg);
      cache = eos.saha_cache(T[k]);
      cc = continuum_coeffs(T[k], kLambda500);
      double ne_guess = states[k - 1].ne;
      auto G = [&](double x) {
        EosState st = eos.from_pg(cache, std::exp(x), ne_guess);
        ne_guess = st.ne;
        return x - base - 0.5 * dlnt * (F_prev + gravity * tau / (mass_kappa(st, cc) * st.Pg));
      };
      double x0 = base + dlnt * F_prev;  // explicit Euler predictor
      double g0 = G(x0);
      double x1 = x0 - g0, g1 = G(x1);
      double lnpg = x1;
      bool converged = std::fabs(g1) < 1e-10;
      for (int it = 0; it < 60 && !converged; ++it) {
        if (g1 == g0) break;
        double x2 = x1 - g1 * (x1 - x0) / (g1 - g0);
        x0 = x1;
        g0 = g1;
        x1 = x2;
        g1 = G(x1);
        lnpg = x1;
        converged = std::fabs(g1) < 1e-10 || std::fabs(x1 - x0) < 1e-10;
      }
      if (!converged && !(std::fabs(g1) < 1e-7)) return fail();
      const EosState sk = eos.from_pg(cache, std::exp(lnpg), ne_guess);
      F_prev = gravity * tau / (mass_kappa(sk, cc) * sk.Pg);
      states[k] = sk;
      kappa500[k] = continuum_opacity(sk, cc).total();
      if (!std::isfinite(kappa500[k]) || !(kappa500[k] > 0)) return fail();
    }
  } catch (const InvalidArgument&) {
    return fail();
  }
  return true;
}

}  // namespace fastinv::stokes
