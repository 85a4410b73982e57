// AiaBasisPursuit: the set-up and the per-call pre/post-processing of
// python/fastinv/dem/basis_pursuit.py, with the same operations in the same order (compiled
// without FMA contraction) so that its outputs equal the Python API's bitwise.
#include "fastinv/dem/aia_basis_pursuit.hpp"

#include <cmath>
#include <limits>

#include "fastinv/error.hpp"

namespace fastinv::dem {

namespace {

constexpr int kAia = 6;
constexpr double kDictfac = 1e26;

std::vector<double> checked_grid(const AiaBpConfig& c) {
  std::vector<double> g = c.logt;
  if (g.empty())  // np.round(5.5 + 0.1 * np.arange(21), 10)
    for (int k = 0; k < 21; ++k) g.push_back(std::nearbyint((5.5 + 0.1 * k) * 1e10) / 1e10);
  if (g.size() < 2) throw InvalidArgument("logt must be a 1-d grid with at least 2 bins");
  return g;
}

BasisPursuit make_solver(const AiaBpConfig& c, const std::vector<double>& grid, const std::vector<double>& k) {
  for (double w : c.widths)
    if (!std::isfinite(w) || w <= 0)
      throw InvalidArgument("widths must be finite and > 0 (the Dirac basis is always included)");
  if (!(std::isfinite(c.tolfac) && c.tolfac > 0)) throw InvalidArgument("tolfac must be finite and > 0");
  std::vector<double> widths{0.0};
  widths.insert(widths.end(), c.widths.begin(), c.widths.end());
  std::vector<double> basis = bp_basis(grid, widths, 0.04);
  const std::size_t ncoef = basis.size() / grid.size();
  BpOptions o;
  o.tolfacs =
      c.adaptive ? std::vector<double>{c.tolfac, c.tolfac * 1.5, c.tolfac * 2.25} : std::vector<double>{c.tolfac};
  o.max_iterations = c.max_iterations;
  o.warm_start = c.warm_start;
  BasisPursuit bp(bp_dictionary(k, kAia, basis, ncoef, kDictfac), kAia, ncoef, o);
  bp.set_basis(std::move(basis), grid.size(), kDictfac);
  return bp;
}

double load(const void* data, DType dtype, int64_t offset) {
  return dtype == DType::f32 ? double(static_cast<const float*>(data)[offset])
                             : static_cast<const double*>(data)[offset];
}

}  // namespace

AiaBasisPursuit::AiaBasisPursuit(const AiaBpConfig& config)
    : logt_(checked_grid(config)),
      response_([&] {
        const TemperatureResponse table = TemperatureResponse::load(config.response);
        if (table.nchan() != kAia)
          throw InvalidArgument("the response table '" + table.name + "' must have the 6 AIA channels");
        response_name_ = table.name;
        return table.at(logt_);
      }()),
      solver_(make_solver(config, logt_, response_)) {}

void AiaBasisPursuit::solve(const DeepEmInput& y, const DeepEmChi2& errors, const AiaBpOutput& out,
                            const AiaBpErrors& mc, int threads) const {
  if (y.npix < 0) throw InvalidArgument("Basis Pursuit: negative pixel count");
  if (y.dtype != DType::f32 && y.dtype != DType::f64) throw TypeMismatch("Basis Pursuit: y must be float32 or float64");
  if (mc.n_samples < 0) throw InvalidArgument("n_samples must be an integer >= 0");
  if (errors.mode == DeepEmErrors::none)
    throw InvalidArgument("give sigma (DN/s) or exptime (s) so the AIA error model can be used");
  if (errors.mode == DeepEmErrors::sigma && !errors.sigma) throw InvalidArgument("Basis Pursuit: null sigma");
  if (errors.mode == DeepEmErrors::aia) {
    for (double t : errors.exptime)
      if (!std::isfinite(t) || t <= 0) throw InvalidArgument("exptime must be finite and > 0 (seconds)");
    if (!std::isfinite(errors.n_sample) || errors.n_sample < 1.0)
      throw InvalidArgument("n_sample must be >= 1 (number of summed pixels)");
  }
  const std::size_t npix = std::size_t(y.npix);
  if (npix == 0) return;
  if (!y.data || !out.em || !out.status) throw InvalidArgument("Basis Pursuit: null y, em or status array");

  std::vector<double> y2(kAia * npix), s2(kAia * npix);
  for (int c = 0; c < kAia; ++c)
    for (std::size_t p = 0; p < npix; ++p)
      y2[c * npix + p] = load(y.data, y.dtype, c * y.stride_channel + int64_t(p) * y.stride_pixel);
  if (errors.mode == DeepEmErrors::sigma) {
    for (int c = 0; c < kAia; ++c)
      for (std::size_t p = 0; p < npix; ++p)
        s2[c * npix + p] = errors.sigma[c * errors.sigma_stride_channel + int64_t(p) * errors.sigma_stride_pixel];
  } else {  // sigma(where(finite(y), y, 0), exptime, n_sample), NaN where y is not finite
    std::vector<double> counts(kAia * npix);
    for (int c = 0; c < kAia; ++c)
      for (std::size_t p = 0; p < npix; ++p) {
        const double v = y2[c * npix + p];
        counts[c * npix + p] = (std::isfinite(v) ? v : 0.0) * errors.exptime[c];
      }
    aia_bp_error(counts.data(), npix, errors.n_sample, s2.data());
    for (int c = 0; c < kAia; ++c)
      for (std::size_t p = 0; p < npix; ++p) {
        double& s = s2[c * npix + p];
        s = std::isfinite(y2[c * npix + p]) ? s / errors.exptime[c] : std::numeric_limits<double>::quiet_NaN();
      }
  }

  // The solver's required outputs that the caller may leave out.
  std::vector<double> coeffs_s, tolfac_s, objective_s, model_s;
  auto need = [npix](double* given, std::vector<double>& scratch, std::size_t rows) {
    if (given) return given;
    scratch.resize(rows * npix);
    return scratch.data();
  };
  BpOutput bo;
  bo.coeffs = need(out.coeffs, coeffs_s, ncoef());
  bo.status = out.status;
  bo.tolfac = need(out.tolfac, tolfac_s, 1);
  bo.objective = need(out.objective, objective_s, 1);
  bo.iterations = out.iterations;
  bo.model = out.chi2 ? need(out.model, model_s, kAia) : out.model;
  bo.em = out.em;
  BpMonteCarlo bm;
  bm.n_samples = mc.n_samples;
  bm.seed = mc.seed;
  bm.first_pixel = mc.first_pixel;
  bm.logt = logt_.data();
  bm.em_std = mc.em_err;
  bm.logt_std = mc.logt_err;
  bm.total_em_std = mc.total_em_err;
  bm.feasible_fraction = mc.mc_feasible;
  solver_.solve(y2.data(), s2.data(), npix, bo, bm, threads);

  if (out.chi2) {
    for (std::size_t p = 0; p < npix; ++p) {
      double sum = 0.0;
      for (int c = 0; c < kAia; ++c) {
        const std::size_t i = c * npix + p;
        const double r = (bo.model[i] - std::fmax(y2[i], 0.0)) / s2[i];
        sum = c == 0 ? r * r : sum + r * r;
      }
      out.chi2[p] = out.status[p] == 0 ? sum : std::numeric_limits<double>::quiet_NaN();
    }
  }
}

}  // namespace fastinv::dem
