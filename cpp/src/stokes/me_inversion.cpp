// Milne-Eddington inversion by Levenberg-Marquardt (see fastinv/stokes/me_inversion.hpp).
//
// Per pixel: residuals r_k = sqrt(w_s) (obs_k - model_k) / sigma_k, chi2 = sum r_k^2; each
// iteration solves (A + lambda diag A) delta = g with A = J^T J, g = J^T r (analytic J from
// MilneEddington::profile_and_jacobian) by Cholesky and clips it to kMaxStep; a step that
// lowers chi2 is kept and lambda divided by 10, otherwise lambda is multiplied by 10 and the
// step retried (the first trial after each new J evaluates the Jacobian too, retries only
// the profile). Marquardt's diag(A) scaling makes the steps independent of the parameters'
// units. A descent ends when an accepted step gains less than the tolerance or when the
// quadratic model promises less (newton_decrement).
// Pixels whose reduced chi2 stays above options.restart_chi2 are started again from
// deterministic variants of their initial guess (options.restarts of them; the best fit is
// kept). Geometry is folded after each step: (B < 0, gamma) is the same field as (-B, 180 - gamma);
// gamma and -gamma (or 360 - gamma) give the same profiles, and the azimuth is only defined
// modulo 180 deg -- so steps never stall on a box limit that is only a convention.
#include "fastinv/stokes/me_inversion.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "fastinv/error.hpp"
#include "fastinv/runtime.hpp"
#include "parallel_errors.hpp"
#include "stokes/me_types.hpp"

namespace fastinv::stokes {
namespace {

constexpr int kP = kMeInvParameters;
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
// restarts' initial damping (options.lambda_start: the first descent's); measured from the
// classical start: 1e-2 and 1 cost ~14 % more CPU on Hinode data
constexpr double kLambdaStart = 0.1;
constexpr double kLambdaMax = 1e10;
// Largest change of B [G], inclination and azimuth [deg] and v_LOS [km/s] in one step (0: no
// limit); each component of a step is clipped to it. Where the field is nearly longitudinal
// or weak the curvature in the angles is tiny, Marquardt's diag(A) damping of them too, and
// undamped steps swing the angles by 100s of degrees and are rejected one after another.
// Measured on 1000 Hinode SP pixels (classical start, 1e-3 noise): mean trials 18.0 -> 12.9,
// restarts 3.1 % -> 0.3 % of the pixels, median reduced chi2 1.0015 -> 0.9991; halving or
// increasing the limits by half changed the mean by < 0.7 trials.
constexpr double kMaxStep[kP] = {1000.0, 30.0, 30.0, 3.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0};

// Cholesky factorisation in place (lower triangle of the m x m row-major a); false if not
// positive definite. The column below each pivot is scaled by its reciprocal: one division
// per column, not per element (the factorisations are ~5 % of a fit).
bool cholesky(double* a, int m) {
  for (int j = 0; j < m; ++j) {
    double d = a[j * m + j];
    for (int k = 0; k < j; ++k) d -= a[j * m + k] * a[j * m + k];
    if (!(d > 0.0) || !std::isfinite(d)) return false;
    d = std::sqrt(d);
    a[j * m + j] = d;
    const double inv = 1.0 / d;
    for (int i = j + 1; i < m; ++i) {
      double s = a[i * m + j];
      for (int k = 0; k < j; ++k) s -= a[i * m + k] * a[j * m + k];
      a[i * m + j] = s * inv;
    }
  }
  return true;
}

// Solves L L^T x = b (x overwrites b) with the factor from cholesky(). The pivots'
// reciprocals come first, off the substitutions' dependency chains.
void cholesky_solve(const double* l, int m, double* b) {
  double inv[kP];
  for (int i = 0; i < m; ++i) inv[i] = 1.0 / l[i * m + i];
  for (int i = 0; i < m; ++i) {
    double s = b[i];
    for (int k = 0; k < i; ++k) s -= l[i * m + k] * b[k];
    b[i] = s * inv[i];
  }
  for (int i = m - 1; i >= 0; --i) {
    double s = b[i];
    for (int k = i + 1; k < m; ++k) s -= l[k * m + i] * b[k];
    b[i] = s * inv[i];
  }
}

// The per-ISA normal equations and chi2 (normal_kernel.hpp), chosen once.
const detail::NormalKernels& normal_kernels() {
  static const detail::NormalKernels k = detail::select_normal_kernels();
  return k;
}

// Equivalent geometry first, then the box.
void fold_and_clamp(double* p, const MEInversionOptions& o) {
  if (p[0] < 0.0) {
    p[0] = -p[0];
    p[1] = 180.0 - p[1];
  }
  double g = std::fmod(p[1], 360.0);
  if (g < 0.0) g += 360.0;
  if (g > 180.0) g = 360.0 - g;
  p[1] = g;
  double c = std::fmod(p[2], 180.0);
  if (c < 0.0) c += 180.0;
  p[2] = c;
  for (int k = 0; k < kP; ++k) p[k] = std::min(std::max(p[k], o.lower[k]), o.upper[k]);
}

}  // namespace

void MEInversionOptions::validate() const {
  for (int k = 0; k < kP; ++k)
    if (!std::isfinite(lower[k]) || !std::isfinite(upper[k]) || lower[k] > upper[k])
      throw InvalidArgument("MEInversion: parameter " + std::to_string(k) + " has bad box limits [" +
                            std::to_string(lower[k]) + ", " + std::to_string(upper[k]) + "]");
  if (lower[4] <= 0.0) throw InvalidArgument("MEInversion: the Doppler width's lower limit must be > 0");
  if (lower[0] < 0.0 || lower[5] < 0.0 || lower[6] < 0.0 || lower[kMeVmac] < 0.0)
    throw InvalidArgument("MEInversion: the limits of B, damping, eta0 and vmac must be >= 0");
  if (lower[9] < 0.0 || upper[9] > 1.0 || lower[kMeStrayLight] < 0.0 || upper[kMeStrayLight] > 1.0)
    throw InvalidArgument("MEInversion: the filling factor's and the stray-light fraction's limits must be in [0, 1]");
  double wsum = 0.0;
  for (double w : weights) {
    if (!std::isfinite(w) || w < 0.0) throw InvalidArgument("MEInversion: Stokes weights must be finite and >= 0");
    wsum += w;
  }
  if (!(wsum > 0.0)) throw InvalidArgument("MEInversion: at least one Stokes weight must be > 0");
  if (!(mu > 0.0 && mu <= 1.0)) throw InvalidArgument("MEInversion: mu must be in (0, 1]");
  if (max_iterations < 1) throw InvalidArgument("MEInversion: max_iterations must be >= 1");
  if (!(tolerance > 0.0 && tolerance < 1.0)) throw InvalidArgument("MEInversion: tolerance must be in (0, 1)");
  if (restarts < 0 || restarts > 100) throw InvalidArgument("MEInversion: restarts must be in [0, 100]");
  if (!(restart_chi2 > 0.0)) throw InvalidArgument("MEInversion: restart_chi2 must be > 0");
  if (!(lambda_start > 0.0 && lambda_start <= 1.0))
    throw InvalidArgument("MEInversion: lambda_start must be in (0, 1]");
  if (!(chi2_threshold > 0.0)) throw InvalidArgument("MEInversion: chi2_threshold must be > 0");
  if (!std::isfinite(dark_threshold)) throw InvalidArgument("MEInversion: dark_threshold must be finite");
  int nfree = 0;
  for (bool f : free) nfree += f ? 1 : 0;
  if (nfree == 0) throw InvalidArgument("MEInversion: no free parameter");
}

MEInversion::MEInversion(std::shared_ptr<const MilneEddington> model, MEInversionOptions options)
    : model_(std::move(model)), options_(options) {
  if (!model_) throw InvalidArgument("MEInversion: no Milne-Eddington model");
  options_.validate();
  int nfree = 0;
  for (bool f : options_.free) nfree += f ? 1 : 0;
  int used = 0;
  for (double w : options_.weights) used += w > 0.0 ? 1 : 0;
  if (used * model_->output_size() <= nfree)
    throw InvalidArgument("MEInversion: fewer weighted data points than free parameters");
}

void MEInversion::invert(int64_t n, const double* stokes, const double* sigma, bool sigma_per_pixel, const double* init,
                         const MEInversionOutputs& out, int threads, const double* stray, bool stray_per_pixel) const {
  if (n < 0) throw InvalidArgument("MEInversion: negative number of pixels");
  if (n == 0) return;
  if (!stokes || !sigma || !init || !out.parameters || !out.errors || !out.correlations || !out.chi2 ||
      !out.iterations || !out.status)
    throw InvalidArgument("MEInversion: a required input or output array is missing");
  if (options_.free[kMeStrayLight] && !stray)
    throw InvalidArgument("MEInversion: a free stray-light fraction needs a stray-light profile");
  const int64_t plane = 4 * model_->output_size();
  const int nthreads = threads > 0 ? threads : default_threads();
  (void)nthreads;
  // First calls choose the per-ISA kernels outside the parallel region (a bad FASTINV_ISA
  // is then an exception here).
  normal_kernels();
  {
    MEScratch s;
    std::vector<double> prof(plane), jac(kMeDerivParameters * plane);
    double q[kMeProfileParameters] = {0, 0, 0, 0, 30, 0.1, 1, 0.5, 0.5, 1, 0};
    model_->profile(q, 1.0, s, prof.data());
    model_->profile_and_jacobian(q, 1.0, s, prof.data(), jac.data(), nullptr, options_.jacobian_precision);
  }
  ParallelErrors errors;
#ifdef FASTINV_HAVE_OPENMP
#pragma omp parallel num_threads(nthreads)
#endif
  {
    MEScratch scratch;
    std::vector<double> work;
    errors.run([&] { work.resize(static_cast<std::size_t>((kP + 4) * plane)); });
#ifdef FASTINV_HAVE_OPENMP
#pragma omp for schedule(dynamic, 16)
#endif
    for (int64_t i = 0; i < n; ++i) {
      if (errors.failed()) continue;
      errors.run([&] {
        const double* st = stray ? stray + (stray_per_pixel ? i * plane : 0) : nullptr;
        invert_pixel(stokes + i * plane, sigma + (sigma_per_pixel ? i * plane : 0), init + i * kP, st, scratch,
                     work.data(), out, i);
      });
    }
  }
  errors.rethrow();
}

void MEInversion::invert_pixel(const double* obs, const double* sigma, const double* init, const double* stray,
                               MEScratch& scratch, double* work, const MEInversionOutputs& out, int64_t i) const {
  const MEInversionOptions& o = options_;
  const int64_t m = model_->output_size(), plane = 4 * m;
  double* prof = work;
  double* trial = work + plane;
  double* iw = work + 2 * plane;   // sqrt(weight) / sigma
  double* res = work + 3 * plane;  // weighted residuals
  double* jac = work + 4 * plane;
  double* par = out.parameters + i * kP;
  double* err = out.errors + i * kP;
  double* cor = out.correlations + i * kMeCorrelated * kMeCorrelated;
  double* chi = out.chi2 + i * 5;
  double* fit = out.fit ? out.fit + i * plane : nullptr;

  auto fail = [&](MeInversionStatus st) {
    std::fill(par, par + kP, kNaN);
    std::fill(err, err + kP, kNaN);
    std::fill(cor, cor + kMeCorrelated * kMeCorrelated, kNaN);
    std::fill(chi, chi + 5, kNaN);
    if (fit) std::fill(fit, fit + plane, kNaN);
    out.iterations[i] = 0;
    if (out.restarts) out.restarts[i] = 0;
    out.status[i] = static_cast<int8_t>(st);
  };
  bool ok = true;
  double mean_i = 0.0;
  for (int64_t k = 0; k < plane; ++k) ok = ok && std::isfinite(obs[k]) && std::isfinite(sigma[k]) && sigma[k] > 0.0;
  for (int k = 0; k < kP; ++k) ok = ok && std::isfinite(init[k]);
  if (stray)
    for (int64_t k = 0; k < plane; ++k) ok = ok && std::isfinite(stray[k]);
  if (!ok) return fail(MeInversionStatus::bad_input);
  for (int64_t k = 0; k < m; ++k) mean_i += obs[k];
  if (!(mean_i / static_cast<double>(m) > o.dark_threshold)) return fail(MeInversionStatus::too_dark);

  int idx[kP], nf = 0;
  for (int k = 0; k < kP; ++k)
    if (o.free[k]) idx[nf++] = k;
  int64_t used = 0;
  for (int s = 0; s < 4; ++s) {
    const double w = std::sqrt(o.weights[s]);
    used += o.weights[s] > 0.0 ? m : 0;
    for (int64_t k = 0; k < m; ++k) iw[s * m + k] = w / sigma[s * m + k];
  }
  const detail::NormalKernels& kern = normal_kernels();
  auto chi2_of = [&](const double* model) { return kern.weighted_chi2(obs, model, iw, plane, res); };
  double p[kP], q[kP];
  // the starting point; without a stray-light profile alpha is 0
  auto start = [&]() {
    std::copy(init, init + kP, p);
    if (!stray) p[kMeStrayLight] = 0.0;
    // the profile is even in vmac (zero derivative at 0): a free vmac starts above 0
    if (o.free[kMeVmac] && !(p[kMeVmac] > 0.0)) p[kMeVmac] = std::min(1.0, o.upper[kMeVmac]);
  };
  start();
  fold_and_clamp(p, o);
  if (!stray) p[kMeStrayLight] = 0.0;
  // The model: (1 - alpha) ME + alpha stray, and its Jacobian (the ME rows scaled by
  // 1 - alpha, the alpha row = stray - ME).
  auto model = [&](const double* par, double* m_out) {
    model_->profile(par, o.mu, scratch, m_out);
    if (!stray) return;
    const double a = par[kMeStrayLight], b = 1.0 - a;
    for (int64_t k = 0; k < plane; ++k) m_out[k] = b * m_out[k] + a * stray[k];
  };
  auto model_jac = [&](const double* par) {
    model_->profile_and_jacobian(par, o.mu, scratch, prof, jac, o.free.data(), o.jacobian_precision);
    if (!stray) return;
    const double a = par[kMeStrayLight], b = 1.0 - a;
    double* ja = jac + kMeStrayLight * plane;
    for (int64_t k = 0; k < plane; ++k) ja[k] = stray[k] - prof[k];
    for (int c = 0; c < kMeDerivParameters; ++c)
      if (o.free[c])
        for (int64_t k = 0; k < plane; ++k) jac[c * plane + k] *= b;
    for (int64_t k = 0; k < plane; ++k) prof[k] = b * prof[k] + a * stray[k];
  };

  double A[kP * kP], L[kP * kP], g[kP], d[kP];
  // A = J^T J and g = J^T r over the free parameters at the current p (prof, jac)
  auto normal_equations = [&]() { kern.normal_equations(obs, prof, iw, jac, plane, idx, nf, res, A, g); };

  // g^T A^-1 g: the chi2 decrease the local quadratic model promises for the undamped
  // (Gauss-Newton) step -- near a minimum, the most any step can gain. Parameters held at a
  // box limit by a gradient pointing out of the box are left out (no step moves them; B,
  // inclination and azimuth fold instead of stopping). Below the tolerance the descent stops
  // without another trial: otherwise, at the minimum, every rejected trial only raises lambda
  // (up to 22 of them from the smallest lambda to kLambdaMax). Infinite when A is singular.
  auto newton_decrement = [&]() {
    int act[kP], na = 0;
    for (int a = 0; a < nf; ++a) {
      const int k = idx[a];
      const bool blocked = k > 2 && ((p[k] <= o.lower[k] && g[a] < 0.0) || (p[k] >= o.upper[k] && g[a] > 0.0));
      if (!blocked) act[na++] = a;
    }
    if (na == 0) return 0.0;
    for (int a = 0; a < na; ++a) {
      for (int b = 0; b < na; ++b) L[a * na + b] = A[act[a] * nf + act[b]];
      d[a] = g[act[a]];
    }
    if (!cholesky(L, na)) return std::numeric_limits<double>::infinity();
    cholesky_solve(L, na, d);
    double dec = 0.0;
    for (int a = 0; a < na; ++a) dec += g[act[a]] * d[a];
    return dec;
  };

  // One Levenberg-Marquardt descent from p (in place); returns chi2 at the end.
  int iter = 0;
  auto descend = [&](bool& converged, double lambda) {
    model_jac(p);
    double chi2 = chi2_of(prof);
    bool stale = false;  // prof/jac hold a rejected trial's, not p's
    const int limit = iter + o.max_iterations;
    converged = false;
    while (iter < limit && !converged) {
      normal_equations();
      bool first = true;
      if (newton_decrement() < o.tolerance * std::max(chi2, static_cast<double>(used))) {
        converged = true;
        break;
      }
      while (iter < limit) {
        ++iter;
        std::copy(A, A + nf * nf, L);
        for (int a = 0; a < nf; ++a) {
          const double dg = A[a * nf + a] > 0.0 ? A[a * nf + a] : 1e-30;
          L[a * nf + a] += lambda * dg;
        }
        if (cholesky(L, nf)) {
          std::copy(g, g + nf, d);
          cholesky_solve(L, nf, d);
          std::copy(p, p + kP, q);
          for (int a = 0; a < nf; ++a) {
            const double cap = kMaxStep[idx[a]];
            q[idx[a]] += cap > 0.0 ? std::max(-cap, std::min(cap, d[a])) : d[a];
          }
          fold_and_clamp(q, o);
          // The first trial after a new J is usually accepted (75 % of them from the
          // classical start, 92 % from the network's on ViSP), so it computes the Jacobian
          // with the profile, which an accepted step needs next; retries after a rejection
          // compute the profile alone. Measured: model evaluations on a ViSP step from the
          // network's guess 52 656 profiles + 56 115 Jacobians -> 4 221 + 59 598 (Jacobian
          // ~4x a profile: ~15 % less work); from the classical start on Hinode about even.
          const bool with_jac = first;
          first = false;
          double c2;
          if (with_jac) {
            model_jac(q);  // prof and jac now belong to q
            c2 = chi2_of(prof);
            stale = true;
          } else {
            model(q, trial);
            c2 = chi2_of(trial);
          }
          if (std::isfinite(c2) && c2 < chi2) {
            // relative to chi2, or to the number of data points once chi2 is far below it
            // (noise-free data)
            const bool small = chi2 - c2 < o.tolerance * std::max(chi2, static_cast<double>(used));
            std::copy(q, q + kP, p);
            lambda = std::max(lambda * 0.1, 1e-12);
            if (!with_jac) model_jac(p);
            chi2 = with_jac ? c2 : chi2_of(prof);
            stale = false;
            converged = small;
            break;
          }
        }
        lambda *= 10.0;
        if (lambda > kLambdaMax) {  // no step lowers chi2: at the minimum (to rounding)
          converged = true;
          break;
        }
      }
    }
    if (stale) {  // the last Jacobian was a rejected trial's: back to p's
      model_jac(p);
      chi2 = chi2_of(prof);
    }
    return chi2;
  };

  const double dof = static_cast<double>(used - nf);
  bool converged = false;
  double chi2 = descend(converged, o.lambda_start);
  // Restarts (deterministic: no random numbers) for pixels left above restart_chi2: the
  // usual ME local minima are the other field polarity and the azimuth 90 deg away, and a
  // weak-field start for a strong field.
  int restarts = 0;
  if (o.restarts > 0 && chi2 / dof > o.restart_chi2) {
    double best[kP];
    std::copy(p, p + kP, best);
    double best_chi2 = chi2;
    bool best_conv = converged;
    for (int r = 0; r < o.restarts && best_chi2 / dof > o.restart_chi2; ++r) {
      start();
      const int kind = r % 4;
      if (kind == 0 || kind == 2) p[1] = 180.0 - p[1];
      if (kind == 1 || kind == 2) p[2] += 90.0;
      if (kind == 3) {
        p[0] = std::max(3.0 * p[0], 1000.0);
        p[6] *= 0.3;
      }
      fold_and_clamp(p, o);
      if (!stray) p[kMeStrayLight] = 0.0;
      bool conv = false;
      const double c = descend(conv, kLambdaStart);
      ++restarts;
      if (c < best_chi2) {
        std::copy(p, p + kP, best);
        best_chi2 = c;
        best_conv = conv;
      }
    }
    std::copy(best, best + kP, p);
    converged = best_conv;
    model_jac(p);
    chi2 = chi2_of(prof);
  }
  if (out.restarts) out.restarts[i] = static_cast<int8_t>(restarts);
  // With the float32 kernel the reported fit and chi2 come from the float64 profile at the
  // solution (the model synthesize() gives; one profile costs about half a float32 Jacobian);
  // the covariance keeps the float32 Jacobian (within 1e-5 of the float64 one).
  if (o.jacobian_precision == MEPrecision::float32) {
    model(p, prof);
    chi2 = chi2_of(prof);
  }

  // Covariance: (J^T J)^-1 scaled by the reduced chi2.
  normal_equations();
  const double red = chi2 / dof;
  std::copy(p, p + kP, par);
  std::fill(err, err + kP, kNaN);
  std::fill(cor, cor + kMeCorrelated * kMeCorrelated, kNaN);
  // A free parameter the profile does not depend on at the solution (a free vmac stopped at
  // 0, where the profile is even in it) has no error: it is left out of the covariance so
  // that the others keep theirs, and its error stays NaN.
  int keep[kP];
  int nk = 0;
  for (int a = 0; a < nf; ++a)
    if (A[a * nf + a] > 0.0) keep[nk++] = a;
  for (int a = 0; a < nk; ++a)
    for (int b = 0; b < nk; ++b) L[a * nk + b] = A[keep[a] * nf + keep[b]];
  if (nk > 0 && cholesky(L, nk)) {
    double cov[kP * kP];
    for (int b = 0; b < nk; ++b) {
      double e[kP] = {};
      e[b] = 1.0;
      cholesky_solve(L, nk, e);
      for (int a = 0; a < nk; ++a) cov[a * nk + b] = e[a] * red;
    }
    int pos[kP];
    std::fill(pos, pos + kP, -1);
    for (int a = 0; a < nk; ++a) {
      pos[idx[keep[a]]] = a;
      err[idx[keep[a]]] = std::sqrt(cov[a * nk + a]);
    }
    const int corr_of[kMeCorrelated] = {0, 1, 2, 3, 9};
    for (int a = 0; a < kMeCorrelated; ++a)
      for (int b = 0; b < kMeCorrelated; ++b) {
        const int pa = pos[corr_of[a]], pb = pos[corr_of[b]];
        if (pa >= 0 && pb >= 0)
          cor[a * kMeCorrelated + b] = cov[pa * nk + pb] / std::sqrt(cov[pa * nk + pa] * cov[pb * nk + pb]);
      }
  }
  for (int s = 0; s < 4; ++s) {
    double c = 0.0;
    for (int64_t k = s * m; k < (s + 1) * m; ++k) {
      const double r = (obs[k] - prof[k]) / sigma[k];
      c += r * r;
    }
    chi[s] = c / static_cast<double>(m);
  }
  chi[4] = red;
  if (fit) std::copy(prof, prof + plane, fit);
  out.iterations[i] = iter;
  MeInversionStatus st = MeInversionStatus::ok;
  if (!converged)
    st = MeInversionStatus::max_iterations;
  else if (red > o.chi2_threshold)
    st = MeInversionStatus::chi2_above_threshold;
  out.status[i] = static_cast<int8_t>(st);
}

}  // namespace fastinv::stokes
