// Per-pixel Basis Pursuit driver: input checks, scaling, adaptive tolfac retries, OpenMP.
#include "fastinv/dem/basis_pursuit.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "dem/band_certificates.hpp"
#include "dem/dual_simplex.hpp"
#include "dem/pixel_normals.hpp"
#include "fastinv/error.hpp"
#include "fastinv/runtime.hpp"
#include "parallel_errors.hpp"

#ifdef FASTINV_HAVE_OPENMP
#include <omp.h>
#endif

namespace fastinv::dem {

namespace {
// Primal feasibility tolerance on the scaled problem (every row of D peaks at 1 and the
// largest upper bound is 1), i.e. relative to the pixel's brightest band edge.
constexpr double kFeasTol = 1e-10;
// Warm-start from the previous pixel only if every channel differs by less than this
// fraction of the pair's sum (i.e. a ratio within ~2): measured on the flare cutouts and on
// random synthetic pixels, it keeps the gain on images and avoids the loss on unrelated data.
constexpr double kSimilar = 0.35;
}  // namespace

BasisPursuit::BasisPursuit(std::vector<double> dictionary, std::size_t nchan, std::size_t ncoef, BpOptions options)
    : dict_(std::move(dictionary)), nchan_(nchan), ncoef_(ncoef), opts_(std::move(options)) {
  if (nchan_ == 0 || ncoef_ == 0) throw InvalidArgument("BasisPursuit: empty dictionary");
  if (nchan_ > 16) throw InvalidArgument("BasisPursuit: at most 16 channels are supported");
  if (dict_.size() != nchan_ * ncoef_) throw InvalidArgument("BasisPursuit: dictionary size is not nchan x ncoef");
  for (double v : dict_)
    if (!std::isfinite(v)) throw InvalidArgument("BasisPursuit: the dictionary has a NaN/inf");
  if (opts_.tolfacs.empty()) throw InvalidArgument("BasisPursuit: tolfacs is empty");
  for (double t : opts_.tolfacs)
    if (!std::isfinite(t) || !(t > 0.0)) throw InvalidArgument("BasisPursuit: every tolfac must be finite and > 0");
  if (!std::isfinite(opts_.min_total) || opts_.min_total < 0.0)
    throw InvalidArgument("BasisPursuit: min_total must be finite and >= 0");
  if (opts_.max_iterations < 1) throw InvalidArgument("BasisPursuit: max_iterations must be >= 1");
  resolve_threads(opts_.threads, 1, "BasisPursuit");  // validates the count
  row_scale_.assign(nchan_, 1.0);
  for (std::size_t c = 0; c < nchan_; ++c) {
    double s = 0.0;
    for (std::size_t k = 0; k < ncoef_; ++k) s = std::max(s, std::fabs(dict_[c * ncoef_ + k]));
    if (s > 0.0) row_scale_[c] = s;
  }
}

void BasisPursuit::set_basis(std::vector<double> basis, std::size_t nt, double em_unit) {
  if (nt == 0 || nt > static_cast<std::size_t>(kMaxBins))
    throw InvalidArgument("BasisPursuit::set_basis: nT must be 1.." + std::to_string(kMaxBins));
  if (basis.size() != ncoef_ * nt) throw InvalidArgument("BasisPursuit::set_basis: basis is not ncoef x nT");
  for (double v : basis)
    if (!std::isfinite(v)) throw InvalidArgument("BasisPursuit::set_basis: NaN/inf in the basis");
  if (!std::isfinite(em_unit) || !(em_unit > 0.0))
    throw InvalidArgument("BasisPursuit::set_basis: em_unit must be finite and > 0");
  basis_ = std::move(basis);
  nt_ = nt;
  em_unit_ = em_unit;
}

void BasisPursuit::solve(const double* y, const double* sigma, std::size_t npix, const BpOutput& out,
                         const BpMonteCarlo& mc, int n_threads) const {
  if (npix == 0) return;
  if (!y || !sigma || !out.coeffs || !out.status || !out.tolfac || !out.objective)
    throw InvalidArgument("BasisPursuit::solve: null input or output array");
  if (out.em && basis_.empty())
    throw InvalidArgument("BasisPursuit::solve: EM output requested but no basis set (set_basis)");
  const int m = static_cast<int>(nchan_), n = static_cast<int>(ncoef_);
  const bool mc_on = mc.n_samples > 0;
  if (mc.n_samples < 0) throw InvalidArgument("BasisPursuit::solve: n_samples must be >= 0");
  if (mc_on && (mc.em_std || mc.logt_std) && basis_.empty())
    throw InvalidArgument("BasisPursuit::solve: Monte-Carlo EM errors need a basis (set_basis)");
  if (mc_on && mc.logt_std && !mc.logt)
    throw InvalidArgument("BasisPursuit::solve: logt_std needs the log T grid (BpMonteCarlo::logt)");

  // The scaled dictionary every thread shares: row c divided by its peak.
  std::vector<double> A(dict_.size());
  for (int c = 0; c < m; ++c)
    for (int k = 0; k < n; ++k) A[c * n + k] = dict_[c * n + k] / row_scale_[c];
  const std::vector<double> cost(n, 1.0);
  // Farkas certificates (band_certificates.hpp): a tolfac whose band they prove empty is not
  // solved; status and tolfac are the same as from its solve.
  const std::shared_ptr<const BandCertificates> certs =
      m <= BandCertificates::kMaxRows ? BandCertificates::of(A.data(), m, n) : nullptr;
  constexpr int kW = BandCertificates::kW;
  const long long np = static_cast<long long>(npix);
  const long long kChunk = 64;
  const long long nchunks = (np + kChunk - 1) / kChunk;
  // Bounds of the scaled LP at tolfac tf: rows by the dictionary's row peaks, then the whole
  // pixel so that max(up) = 1; returns that last scale g (coefficients are x * g).
  auto set_bounds = [&](const double* yc, const double* sc, double tf, double* lo, double* up) {
    double g = 0.0;
    for (int c = 0; c < m; ++c) {
      lo[c] = std::max(yc[c] - tf * sc[c], 0.0) / row_scale_[c];
      up[c] = (yc[c] + tf * sc[c]) / row_scale_[c];
      g = std::max(g, up[c]);
    }
    for (int c = 0; c < m; ++c) {
      lo[c] /= g;
      up[c] /= g;
    }
    return g;
  };
  auto negative_solution = [&](const DualSimplex& lp) {
    const double* x = lp.x();
    for (int k = 0; k < n; ++k)
      if (x[k] < -10.0 * kFeasTol) return true;
    return false;
  };
  const double nan = std::numeric_limits<double>::quiet_NaN();
  auto mc_missing = [&](std::size_t i) {
    if (mc.em_std)
      for (std::size_t j = 0; j < nt_; ++j) mc.em_std[j * npix + i] = nan;
    if (mc.logt_std) mc.logt_std[i] = nan;
    if (mc.total_em_std) mc.total_em_std[i] = nan;
    if (mc.feasible_fraction) mc.feasible_fraction[i] = nan;
  };
  // The Monte-Carlo draws of solved pixel i (see BpMonteCarlo) on `draw`. The first draw starts
  // from the all-logical basis and each next one from the last: the result then depends on the
  // pixel's data and draws alone, not on which pixel was solved before it (a warm start from
  // the pixel's own solution could pick another of several degenerate optima). mean/m2 are
  // Welford accumulators (nT + 2 values each).
  auto monte_carlo = [&](std::size_t i, DualSimplex& draw, const double* sc, double tf, std::vector<double>& mean,
                         std::vector<double>& m2) {
    const std::size_t nq = nt_ + 2;  // EM per bin, total EM, EM-weighted log T
    std::fill(mean.begin(), mean.begin() + nq, 0.0);
    std::fill(m2.begin(), m2.begin() + nq, 0.0);
    PixelNormals normals(mc.seed, mc.first_pixel + i);
    double ys[16], lo[16], up[16], q[kMaxBins + 2];
    int feasible = 0;
    draw.reset();
    for (int s = 0; s < mc.n_samples; ++s) {
      for (int c = 0; c < m; ++c)
        ys[c] = std::max(y[static_cast<std::size_t>(c) * npix + i] + sc[c] * normals.next(), 0.0);
      const double g = set_bounds(ys, sc, tf, lo, up);
      const LpResult r = draw.solve(lo, up, opts_.max_iterations, kFeasTol);
      if (r != LpResult::optimal || negative_solution(draw)) {
        if (r == LpResult::not_converged) draw.reset();  // don't warm-start from a bad basis
        continue;
      }
      ++feasible;
      std::fill(q, q + nq, 0.0);
      const double* x = draw.x();
      for (int k = 0; k < n && !basis_.empty(); ++k) {
        const double v = std::max(x[k], 0.0) * g * em_unit_;
        if (v == 0.0) continue;
        const double* b = &basis_[static_cast<std::size_t>(k) * nt_];
        for (std::size_t j = 0; j < nt_; ++j) q[j] += b[j] * v;
      }
      double weighted = 0.0;
      for (std::size_t j = 0; j < nt_; ++j) {
        q[nt_] += q[j];
        if (mc.logt) weighted += mc.logt[j] * q[j];
      }
      q[nt_ + 1] = q[nt_] > 0.0 ? weighted / q[nt_] : nan;
      for (std::size_t k = 0; k < nq; ++k) {  // Welford: a numerically stable running variance
        const double d = q[k] - mean[k];
        mean[k] += d / feasible;
        m2[k] += d * (q[k] - mean[k]);
      }
    }
    auto sd = [&](std::size_t k) { return feasible >= 2 ? std::sqrt(m2[k] / (feasible - 1)) : nan; };
    if (mc.em_std)
      for (std::size_t j = 0; j < nt_; ++j) mc.em_std[j * npix + i] = sd(j);
    if (mc.total_em_std) mc.total_em_std[i] = sd(nt_);
    if (mc.logt_std) mc.logt_std[i] = sd(nt_ + 1);
    if (mc.feasible_fraction) mc.feasible_fraction[i] = double(feasible) / mc.n_samples;
  };

  // one thread per chunk at most: every thread builds its own simplex tableaux
  const int threads = resolve_threads(n_threads > 0 ? n_threads : opts_.threads, nchunks, "BasisPursuit.solve");
  (void)threads;
  ParallelErrors errors;
#ifdef FASTINV_HAVE_OPENMP
#pragma omp parallel num_threads(threads)
#endif
  {
    std::optional<DualSimplex> lp, draw;  // per thread; allocation may throw
    std::vector<double> mc_mean, mc_m2;
    std::vector<int> fired;  // the certificates' scratch
    errors.run([&] {
      if (certs) fired.resize(2 * std::size_t(certs->groups()));
      lp.emplace(A.data(), m, n, cost.data());
      if (mc_on) {
        draw.emplace(A.data(), m, n, cost.data());
        mc_mean.resize(nt_ + 2);
        mc_m2.resize(nt_ + 2);
      }
    });
    double yc[16], sc[16], lo[16], up[16], yprev[16];
#ifdef FASTINV_HAVE_OPENMP
#pragma omp for schedule(dynamic, 1)
#endif
    for (long long chunk = 0; chunk < nchunks; ++chunk) {
      if (!lp || errors.failed()) continue;
      errors.run([&] {
        // Each chunk starts from the all-logical basis, so results do not depend on threads.
        lp->reset();
        bool have_prev = false;
        const long long i_end = std::min(np, (chunk + 1) * kChunk);
        int rung[kW];  // per pixel of the current block of kW: the first rung not proven empty
        for (long long i = chunk * kChunk; i < i_end; ++i) {
          const int lane = int((i - chunk * kChunk) % kW);
          if (lane == 0) {
            const int lanes = int(std::min<long long>(kW, i_end - i));
            std::fill(rung, rung + kW, 0);
            if (certs) {
              double yt[BandCertificates::kMaxRows][kW], st[BandCertificates::kMaxRows][kW];
              for (int c = 0; c < m; ++c)
                for (int j = 0; j < lanes; ++j) {
                  yt[c][j] = y[static_cast<std::size_t>(c) * npix + i + j];
                  st[c][j] = sigma[static_cast<std::size_t>(c) * npix + i + j];
                }
              certs->first_rungs(yt, st, row_scale_.data(), opts_.tolfacs, lanes, rung, fired.data());
            }
          }
          auto set_zero = [&]() {
            for (int k = 0; k < n; ++k) out.coeffs[static_cast<std::size_t>(k) * npix + i] = 0.0;
            if (out.em)
              for (std::size_t j = 0; j < nt_; ++j) out.em[j * npix + i] = 0.0;
            if (out.model)
              for (int c = 0; c < m; ++c) out.model[static_cast<std::size_t>(c) * npix + i] = 0.0;
            out.objective[i] = 0.0;
            if (mc_on) mc_missing(static_cast<std::size_t>(i));
          };
          bool bad = false;
          double total = 0.0;
          for (int c = 0; c < m; ++c) {
            const double yv = y[static_cast<std::size_t>(c) * npix + i];
            const double sv = sigma[static_cast<std::size_t>(c) * npix + i];
            if (!std::isfinite(yv) || !std::isfinite(sv) || sv < 0.0) bad = true;
            yc[c] = std::max(yv, 0.0);  // SSW: negative data are set to 0
            sc[c] = sv;
            total += yc[c];
          }
          if (out.iterations) out.iterations[i] = 0;
          out.tolfac[i] = opts_.tolfacs.front();
          if (bad) {
            out.status[i] = static_cast<std::int8_t>(BpStatus::bad_input);
            set_zero();
            continue;
          }
          if (total < opts_.min_total) {
            out.status[i] = static_cast<std::int8_t>(BpStatus::no_counts);
            set_zero();
            continue;
          }
          // Warm start: the previous pixel's final basis is dual feasible for this pixel too
          // (only the bounds differ). It pays when the two pixels look alike (neighbours in an
          // image usually share their support); from an unrelated pixel a cold start is faster.
          bool similar = opts_.warm_start && have_prev;
          for (int c = 0; c < m && similar; ++c) similar = std::fabs(yc[c] - yprev[c]) <= kSimilar * (yc[c] + yprev[c]);
          if (!similar) lp->reset();
          have_prev = true;
          std::copy(yc, yc + m, yprev);
          BpStatus st = BpStatus::not_converged;
          int iters = 0;
          double g = 1.0;
          for (std::size_t k = 0; k < opts_.tolfacs.size(); ++k) {
            const double tf = opts_.tolfacs[k];
            out.tolfac[i] = tf;
            if (int(k) < rung[lane]) {  // proven infeasible by a certificate
              st = BpStatus::infeasible;
              continue;
            }
            g = set_bounds(yc, sc, tf, lo, up);
            const LpResult r = lp->solve(lo, up, opts_.max_iterations, kFeasTol);
            iters += lp->iterations();
            if (r == LpResult::optimal) {
              st = negative_solution(*lp) ? BpStatus::rejected : BpStatus::ok;
            } else {
              st = (r == LpResult::infeasible) ? BpStatus::infeasible : BpStatus::not_converged;
              if (r == LpResult::not_converged) lp->reset();  // don't warm-start from a bad basis
            }
            if (st == BpStatus::ok) break;
          }
          if (out.iterations) out.iterations[i] = iters;
          out.status[i] = static_cast<std::int8_t>(st);
          if (st != BpStatus::ok) {
            set_zero();
            continue;
          }
          const double* x = lp->x();
          double obj = 0.0, model[16] = {0.0}, em[kMaxBins];
          const bool want_em = out.em != nullptr;
          if (want_em) std::fill(em, em + nt_, 0.0);
          for (int k = 0; k < n; ++k) {
            const double v = std::max(x[k], 0.0) * g;  // clip round-off negatives (> -10 tol)
            out.coeffs[static_cast<std::size_t>(k) * npix + i] = v;
            if (v == 0.0) continue;  // at most nchan coefficients are nonzero (basic)
            obj += v;
            for (int c = 0; c < m; ++c) model[c] += dict_[c * n + k] * v;
            if (want_em) {
              const double* b = &basis_[static_cast<std::size_t>(k) * nt_];
              for (std::size_t j = 0; j < nt_; ++j) em[j] += b[j] * v;
            }
          }
          out.objective[i] = obj;
          if (out.model)
            for (int c = 0; c < m; ++c) out.model[static_cast<std::size_t>(c) * npix + i] = model[c];
          if (want_em)
            for (std::size_t j = 0; j < nt_; ++j) out.em[j * npix + i] = em[j] * em_unit_;
          if (mc_on) monte_carlo(static_cast<std::size_t>(i), *draw, sc, out.tolfac[i], mc_mean, mc_m2);
        }
      });
    }
  }
  errors.rethrow();
}

}  // namespace fastinv::dem
