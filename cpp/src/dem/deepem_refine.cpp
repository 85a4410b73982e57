// DeepEM refinement: the EM closest to the network's that satisfies Basis Pursuit's
// constraints (see DeepEmRefine in fastinv/dem/deepem.hpp for the LP).
#include "dem/deepem_refine.hpp"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>
#include <memory>
#include <optional>
#include <string>

#include "fastinv/error.hpp"
#include "fastinv/runtime.hpp"
#include "parallel_errors.hpp"

#ifdef FASTINV_HAVE_OPENMP
#include <omp.h>
#endif

namespace fastinv::dem {

std::atomic<uint64_t> DeepEmRefiner::next_id_{0};

namespace {
constexpr int kChannels = 6;
// BP's primal feasibility tolerance on the same scaling (rows peak at 1, max(up) = 1 before
// the network's re-synthesis is subtracted).
constexpr double kFeasTol = 1e-10;
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
}  // namespace

DeepEmRefiner::DeepEmRefiner(const float* kernel, int64_t n_t, const DeepEmChi2& errors, const DeepEmRefine& options)
    : n_t_(n_t), errors_(errors), opts_(options), id_(next_id_.fetch_add(1) + 1) {
  if (n_t < 1 || n_t > 64) throw InvalidArgument("DeepEM refine: 1 to 64 temperature bins");
  if (!kernel) throw InvalidArgument("DeepEM refine: null response");
  if (errors.mode == DeepEmErrors::none)
    throw InvalidArgument("DeepEM refine needs the data's errors: give sigma (DN/s) or exptime (s)");
  if (errors.mode == DeepEmErrors::sigma && !errors.sigma) throw InvalidArgument("DeepEM refine: null sigma");
  if (errors.mode == DeepEmErrors::aia) {
    if (!std::isfinite(errors.n_sample) || errors.n_sample < 1.0)
      throw InvalidArgument("n_sample must be >= 1 (number of summed pixels)");
    for (double t : errors.exptime)
      if (!std::isfinite(t) || t <= 0.0) throw InvalidArgument("exptime must be finite and > 0 s in every channel");
  }
  if (opts_.tolfacs.empty()) throw InvalidArgument("DeepEM refine: tolfacs is empty");
  for (double t : opts_.tolfacs)
    if (!std::isfinite(t) || !(t > 0.0)) throw InvalidArgument("DeepEM refine: every tolfac must be finite and > 0");
  if (!std::isfinite(opts_.floor) || !(opts_.floor > 0.0))
    throw InvalidArgument("DeepEM refine: the weight floor must be finite and > 0");
  if (!std::isfinite(opts_.min_total) || opts_.min_total < 0.0)
    throw InvalidArgument("DeepEM refine: min_total must be finite and >= 0");
  if (opts_.max_iterations < 1) throw InvalidArgument("DeepEM refine: max_iterations must be >= 1");
  const int64_t n = 2 * n_t;
  k_.assign(kernel, kernel + kChannels * n_t);
  for (double v : k_)
    if (!std::isfinite(v)) throw InvalidArgument("DeepEM refine: the response has a NaN/inf");
  row_scale_.assign(kChannels, 1.0);
  a_.assign(kChannels * n, 0.0);
  for (int c = 0; c < kChannels; ++c) {
    double s = 0.0;
    for (int64_t t = 0; t < n_t; ++t) s = std::max(s, std::fabs(k_[c * n_t + t]));
    if (s > 0.0) row_scale_[c] = s;
    for (int64_t t = 0; t < n_t; ++t) {
      a_[c * n + t] = k_[c * n_t + t] / row_scale_[c];
      a_[c * n + n_t + t] = -a_[c * n + t];
    }
  }
  std::vector<double> scaled(kChannels * n_t);
  for (int c = 0; c < kChannels; ++c)
    for (int64_t t = 0; t < n_t; ++t) scaled[c * n_t + t] = a_[c * n + t];
  certs_ = BandCertificates::of(scaled.data(), kChannels, int(n_t));
}

static_assert(BandCertificates::kW == DeepEmRefiner::kW, "the certificates test one engine tile at a time");

void DeepEmRefiner::first_rungs(Workspace& w, const double (*y)[kW], const double (*sig)[kW], int lanes,
                                int* rung) const {
  certs_->first_rungs(y, sig, row_scale_.data(), opts_.tolfacs, lanes, rung, w.fired_.data());
}

DeepEmRefiner::Workspace::Workspace(const DeepEmRefiner& r)
    : cost_(2 * r.n_t_, 1.0),
      upper_(2 * r.n_t_, std::numeric_limits<double>::infinity()),
      fired_(2 * std::size_t(r.certs_->groups())),
      lp_(r.a_.data(), kChannels, int(2 * r.n_t_), cost_.data()) {}

void DeepEmRefiner::sigma(const double* y, int64_t p, double* sig) const {
  if (errors_.mode == DeepEmErrors::sigma) {
    for (int c = 0; c < kChannels; ++c)
      sig[c] = errors_.sigma[c * errors_.sigma_stride_channel + p * errors_.sigma_stride_pixel];
    return;
  }
  double counts[kChannels];  // BP's: the AIA error model on max(y, 0) * exptime
  for (int c = 0; c < kChannels; ++c) counts[c] = std::max(y[c], 0.0) * errors_.exptime[c];
  aia_bp_error(counts, 1, errors_.n_sample, sig);  // n_sample validated: cannot throw
  for (int c = 0; c < kChannels; ++c) sig[c] /= errors_.exptime[c];
}

BpStatus DeepEmRefiner::pixel(Workspace& w, const double* yraw, const double* sig, const float* net, float* em,
                              double* tolfac, int32_t* iterations, int first_rung) const {
  const int64_t nt = n_t_;
  std::fill(em, em + nt, std::numeric_limits<float>::quiet_NaN());
  *tolfac = kNaN;
  *iterations = 0;
  double y[kChannels], total = 0.0;
  for (int c = 0; c < kChannels; ++c) {
    if (!std::isfinite(yraw[c]) || !std::isfinite(sig[c]) || sig[c] < 0.0) return BpStatus::bad_input;
    y[c] = std::max(yraw[c], 0.0);  // BP: negative data are set to 0
    total += y[c];
  }
  double n[64], nmax = 0.0;
  for (int64_t t = 0; t < nt; ++t) {
    n[t] = double(net[t]);
    if (!std::isfinite(n[t])) return BpStatus::overflow;
    nmax = std::max(nmax, n[t]);
  }
  if (total < opts_.min_total) return BpStatus::no_counts;
  double kn[kChannels];  // the network's re-synthesis, per row scale
  for (int c = 0; c < kChannels; ++c) {
    double s = 0.0;
    for (int64_t t = 0; t < nt; ++t) s += k_[c * nt + t] * n[t];
    kn[c] = s / row_scale_[c];
  }
  // Weights 1 / (n_t + floor * nmax), scaled so that the largest bin's is 1 (costs >= 1).
  const double fl = nmax > 0.0 ? opts_.floor * nmax : 1.0;
  for (int64_t t = 0; t < nt; ++t) w.cost_[t] = w.cost_[nt + t] = (nmax + fl) / (n[t] + fl);
  w.lp_.reset();
  BpStatus st = BpStatus::not_converged;
  int32_t iters = 0;
  // A wider band restarts from the network's EM (the all-logical basis), not from the basis
  // that proved the narrower one infeasible. Measured on a 262k-pixel crop of the synoptic
  // frame: 5.0 / 5.6 µs per pixel refined at 2.1 / 3.15 against 5.7 / 6.8 from the old basis
  // (a few more iterations, but no refactorisation at the start), 4.4 against 3.9 for the
  // infeasible ones; for these three classes together 2.13 against 2.37 µs per crop pixel.
  for (std::size_t k = 0; k < opts_.tolfacs.size(); ++k) {
    const double tf = opts_.tolfacs[k];
    *tolfac = tf;
    if (int(k) < first_rung) {  // proven infeasible by a Farkas certificate (first_rungs)
      st = BpStatus::refine_infeasible;
      continue;
    }
    double lo[kChannels], up[kChannels], g = 0.0;
    for (int c = 0; c < kChannels; ++c) g = std::max(g, (y[c] + tf * sig[c]) / row_scale_[c]);
    if (!(g > 0.0)) return BpStatus::no_counts;  // y = 0 and sigma = 0: nothing to fit
    for (int c = 0; c < kChannels; ++c) {
      lo[c] = (std::max(y[c] - tf * sig[c], 0.0) / row_scale_[c] - kn[c]) / g;
      up[c] = ((y[c] + tf * sig[c]) / row_scale_[c] - kn[c]) / g;
    }
    for (int64_t t = 0; t < nt; ++t) w.upper_[nt + t] = n[t] / g;  // EM = n + p - q >= 0
    w.lp_.set_upper(w.upper_.data());
    // The narrower band's infeasibility proof, re-tested against this band: if it still holds
    // (by a margin far above the solver's tolerances) this tolfac is infeasible too, without
    // a solve (rare on the synoptic frame: the proof is made for the narrow band).
    if (w.lp_.still_infeasible(lo, up)) continue;
    if (tf != opts_.tolfacs.front()) w.lp_.reset();
    const LpResult r = w.lp_.solve(lo, up, opts_.max_iterations, kFeasTol);
    iters += w.lp_.iterations();
    if (r == LpResult::optimal) {
      const double* x = w.lp_.x();
      for (int64_t t = 0; t < nt; ++t) {
        const double d = x[t] - x[nt + t];
        em[t] = float(d == 0.0 ? n[t] : std::max(n[t] + d * g, 0.0));
      }
      *iterations = iters;
      return BpStatus::ok;
    }
    if (r == LpResult::not_converged) {
      st = BpStatus::not_converged;
      w.lp_.reset();  // don't warm-start from a bad basis
    } else {
      st = BpStatus::refine_infeasible;
    }
  }
  *iterations = iters;
  return st;
}

void DeepEmRefiner::tile(const double (*y)[kW], const double (*sig)[kW], int64_t first, int lanes, float (*em)[kW],
                         float* total, int8_t* status, double* tolfac) const noexcept {
  try {
    // One workspace per thread and refiner, kept across tiles (the fused loop calls this per
    // 16 pixels; allocating the simplex each time cost more than a pixel's set-up). pixel()
    // resets everything it reads, so reuse does not change a result. Refiners are told apart
    // by a serial number, never by address (a new one may reuse a freed one's).
    thread_local uint64_t cached_id = 0;
    thread_local std::unique_ptr<Workspace> cached;
    if (cached_id != id_ || !cached) {
      cached.reset();
      cached_id = 0;
      cached = std::make_unique<Workspace>(*this);
      cached_id = id_;
    }
    Workspace& w = *cached;
    int rung[kW];
    first_rungs(w, y, sig, lanes, rung);
    for (int j = 0; j < lanes; ++j) {
      double yj[kChannels], sj[kChannels];
      float net[64], out[64];
      for (int c = 0; c < kChannels; ++c) {
        yj[c] = y[c][j];
        sj[c] = sig[c][j];
      }
      for (int64_t t = 0; t < n_t_; ++t) net[t] = em[t][j];
      int32_t iters = 0;
      status[j] = int8_t(pixel(w, yj, sj, net, out, &tolfac[j], &iters, rung[j]));
      if (opts_.iterations) opts_.iterations[first + j] = iters;
      for (int64_t t = 0; t < n_t_; ++t) {
        em[t][j] = out[t];
        total[j] = t == 0 ? out[t] : total[j] + out[t];  // as the loop's em.sum(axis=0)
      }
    }
  } catch (...) {  // the workspace could not be allocated
    constexpr float fnan = std::numeric_limits<float>::quiet_NaN();
    for (int j = 0; j < lanes; ++j) {
      status[j] = int8_t(BpStatus::not_converged);
      tolfac[j] = kNaN;
      total[j] = fnan;
      for (int64_t t = 0; t < n_t_; ++t) em[t][j] = fnan;
    }
  }
}

void deepem_refine(const float* kernel, int64_t n_t, const DeepEmInput& y, const DeepEmChi2& errors,
                   const DeepEmRefine& refine, float* em, int8_t* status, double* tolfac, int threads) {
  const DeepEmRefiner refiner(kernel, n_t, errors, refine);
  if (y.npix < 0) throw InvalidArgument("DeepEM refine: negative pixel count");
  if (y.dtype != DType::f32 && y.dtype != DType::f64) throw TypeMismatch("DeepEM refine: y must be float32 or float64");
  if (y.npix == 0) return;
  if (!y.data || !em || !status || !tolfac) throw InvalidArgument("DeepEM refine: null array");
  threads = resolve_threads(threads, y.npix, "DeepEM refine");
  (void)threads;
  const int64_t npix = y.npix;
  constexpr int kW = DeepEmRefiner::kW;
  const int64_t nblocks = (npix + kW - 1) / kW;
  ParallelErrors errs;
#ifdef FASTINV_HAVE_OPENMP
#pragma omp parallel num_threads(threads)
#endif
  {
    std::optional<DeepEmRefiner::Workspace> w;
    errs.run([&] { w.emplace(refiner); });
#ifdef FASTINV_HAVE_OPENMP
#pragma omp for schedule(dynamic, 4)
#endif
    for (int64_t b = 0; b < nblocks; ++b) {
      if (!w) continue;
      // Blocks of a tile's width, so that the certificates are tested as in the fused loop.
      const int64_t p0 = b * kW;
      const int lanes = int(std::min<int64_t>(kW, npix - p0));
      double yt[kChannels][kW], st[kChannels][kW];
      for (int j = 0; j < lanes; ++j) {
        double yj[kChannels], sig[kChannels];
        for (int c = 0; c < kChannels; ++c) {
          const int64_t off = c * y.stride_channel + (p0 + j) * y.stride_pixel;
          yj[c] = y.dtype == DType::f32 ? double(static_cast<const float*>(y.data)[off])
                                        : static_cast<const double*>(y.data)[off];
        }
        refiner.sigma(yj, p0 + j, sig);
        for (int c = 0; c < kChannels; ++c) yt[c][j] = yj[c], st[c][j] = sig[c];
      }
      int rung[kW];
      refiner.first_rungs(*w, yt, st, lanes, rung);
      for (int j = 0; j < lanes; ++j) {
        const int64_t p = p0 + j;
        double yj[kChannels], sig[kChannels];
        float net[64], out[64];
        for (int c = 0; c < kChannels; ++c) yj[c] = yt[c][j], sig[c] = st[c][j];
        for (int64_t t = 0; t < n_t; ++t) net[t] = em[t * npix + p];
        int32_t iters = 0;
        status[p] = int8_t(refiner.pixel(*w, yj, sig, net, out, &tolfac[p], &iters, rung[j]));
        if (refine.iterations) refine.iterations[p] = iters;
        for (int64_t t = 0; t < n_t; ++t) em[t * npix + p] = out[t];
      }
    }
  }
  errs.rethrow();
}

}  // namespace fastinv::dem
