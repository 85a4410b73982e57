// Milne-Eddington synthesis (see fastinv/stokes/milne_eddington.hpp for the conventions).
#include "fastinv/stokes/milne_eddington.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <type_traits>

#include "fastinv/error.hpp"
#include "parallel_errors.hpp"
#include "fastinv/runtime.hpp"
#include "fastinv/stokes/faddeeva.hpp"
#include "stokes/me_types.hpp"
#ifdef FASTINV_HAVE_OPENMP
#include <omp.h>
#endif

namespace fastinv::stokes {
namespace {

constexpr double kPi = 3.14159265358979323846;
constexpr double kInvSqrtPi = 0.56418958354775628695;
constexpr double kDeg = kPi / 180.0;
constexpr double kCkms = 299792.458;             // speed of light [km/s]
constexpr double kBoltzmannEv = 8.617333262e-5;  // [eV/K]
constexpr double kExcitationT = 5000.0;          // [K], for default_strength_ratios

bool finite_all(std::initializer_list<double> xs) {
  for (double x : xs)
    if (!std::isfinite(x)) return false;
  return true;
}

}  // namespace

std::vector<double> default_strength_ratios(const std::vector<SpectralLine>& lines) {
  std::vector<double> r;
  if (lines.empty()) return r;
  const SpectralLine& l0 = lines.front();
  for (const SpectralLine& l : lines)
    r.push_back(std::pow(10.0, l.log_gf - l0.log_gf) * (l.wavelength / l0.wavelength) *
                std::exp(-(l.chi_low - l0.chi_low) / (kBoltzmannEv * kExcitationT)));
  return r;
}

MilneEddington::MilneEddington(std::vector<SpectralLine> lines, std::vector<double> wavelength,
                               std::vector<double> strength_ratios)
    : wl_(std::move(wavelength)), smoother_(wl_) {
  if (lines.empty()) throw InvalidArgument("MilneEddington: give at least one spectral line");
  if (wl_.empty()) throw InvalidArgument("MilneEddington: the wavelength grid is empty");
  for (size_t i = 0; i < wl_.size(); ++i) {
    if (!std::isfinite(wl_[i]) || wl_[i] <= 0.0)
      throw InvalidArgument("MilneEddington: wavelengths must be positive finite Angstrom");
    if (i > 0 && !(wl_[i] > wl_[i - 1]))
      throw InvalidArgument("MilneEddington: the wavelength grid must be strictly increasing");
  }
  for (const SpectralLine& l : lines) validate_line(l);
  ratios_ = strength_ratios.empty() ? default_strength_ratios(lines) : std::move(strength_ratios);
  if (ratios_.size() != lines.size())
    throw InvalidArgument("MilneEddington: need one strength ratio per line (" + std::to_string(lines.size()) +
                          "), got " + std::to_string(ratios_.size()));
  for (double r : ratios_)
    if (!std::isfinite(r) || r < 0.0) throw InvalidArgument("MilneEddington: strength ratios must be finite and >= 0");
  for (size_t k = 0; k < lines.size(); ++k) {
    detail::MELineData L;
    L.lambda0 = lines[k].wavelength;
    L.scale = lines[k].wavelength / lines[0].wavelength;
    L.ratio = ratios_[k];
    for (const ZeemanComponent& c : zeeman_pattern(lines[k]).components)
      L.comps.push_back({static_cast<int>(c.type) + 1, c.shift, L.ratio * c.strength * kInvSqrtPi});
    max_components_ = std::max(max_components_, L.comps.size() + 1);  // + unmagnetised part
    lines_.push_back(std::move(L));
  }
}

MilneEddington::MilneEddington(MilneEddington&&) noexcept = default;
MilneEddington& MilneEddington::operator=(MilneEddington&&) noexcept = default;
MilneEddington::~MilneEddington() = default;

void MilneEddington::set_instrument(BandedOperator op) {
  op.validate();
  if (op.n_in != synthesis_size())
    throw InvalidArgument("MilneEddington: the instrument operator expects " + std::to_string(op.n_in) +
                          " synthesis wavelengths, the grid has " + std::to_string(synthesis_size()));
  instrument_ = std::move(op);
  has_instrument_ = true;
  gaussian_ = false;
}

void MilneEddington::set_gaussian_instrument(double sigma, int64_t first, int64_t stride, int64_t n_out) {
  if (!smoother_.uniform())
    throw InvalidArgument("MilneEddington: a Gaussian instrument needs a uniform synthesis grid");
  if (!(sigma > 0.0) || !std::isfinite(sigma)) throw InvalidArgument("MilneEddington: the LSF sigma must be positive");
  if (first < 0 || stride < 1 || n_out < 1 || first + (n_out - 1) * stride >= synthesis_size())
    throw InvalidArgument("MilneEddington: the instrument samples must lie on the synthesis grid");
  gaussian_ = true;
  has_instrument_ = false;
  g_sigma_ = sigma;
  g_first_ = first;
  g_stride_ = stride;
  g_n_out_ = n_out;
}

int64_t MilneEddington::output_size() const {
  if (gaussian_) return g_n_out_;
  return has_instrument_ ? instrument_.n_out : synthesis_size();
}

namespace {
// The per-ISA kernel, chosen once (CPU features, FASTINV_ISA).
detail::MEProfileFn me_kernel() {
  static const detail::MEProfileFn fn = detail::select_me_kernel();
  return fn;
}
}  // namespace

// One profile on the synthesis grid into prof (4 x n): the per-ISA kernel (me_kernel.hpp),
// then macroturbulence.
void MilneEddington::synthesize_one(const MEParameterArrays& p, int64_t i, double mu, detail::MEWork& work,
                                    double* prof, std::vector<double>& scratch, std::vector<double>& kernel) const {
  const detail::MEProfileFn fn = me_kernel();
  detail::MEProfileInput in;
  in.B = p.B[i];
  in.inclination = p.inclination[i] * kDeg;
  in.azimuth = p.azimuth[i] * kDeg;
  in.vlos = p.vlos[i];
  in.doppler_width = p.doppler_width[i] * 1e-3;
  in.damping = p.damping[i];
  in.eta0 = p.eta0[i];
  in.S0 = p.S0[i];
  in.S1 = p.S1[i];
  in.filling_factor = p.filling_factor ? p.filling_factor[i] : 1.0;
  in.mu = mu;
  fn(lines_, wl_.data(), synthesis_size(), in, work, prof);
  const double vmac = p.vmac ? p.vmac[i] : 0.0;
  if (vmac > 0.0 && !gaussian_) {  // (the Gaussian instrument folds vmac into its LSF)
    // Same velocity width for all lines: use the first line's wavelength.
    const double width = lines_.front().lambda0 * vmac / kCkms;
    smoother_.smooth(width, prof, 4, scratch, kernel);
  }
}

MEScratch::MEScratch() : work_(std::make_unique<detail::MEWork>()), deriv_(std::make_unique<detail::MEDerivWork>()) {}
MEScratch::MEScratch(MEScratch&&) noexcept = default;
MEScratch& MEScratch::operator=(MEScratch&&) noexcept = default;
MEScratch::~MEScratch() = default;

namespace {
// the per-ISA kernels, chosen once
detail::MEDerivFn me_deriv_kernel() {
  static const detail::MEDerivFn fn = detail::select_me_deriv_kernel();
  return fn;
}
detail::MEDeriv32Fn me_deriv32_kernel() {
  static const detail::MEDeriv32Fn fn = detail::select_me_deriv32_kernel();
  return fn;
}

detail::MEProfileInput profile_input(const double* q, double mu) {
  detail::MEProfileInput in;
  in.B = q[0];
  in.inclination = q[1] * kDeg;
  in.azimuth = q[2] * kDeg;
  in.vlos = q[3];
  in.doppler_width = q[4] * 1e-3;
  in.damping = q[5];
  in.eta0 = q[6];
  in.S0 = q[7];
  in.S1 = q[8];
  in.filling_factor = q[9];
  in.mu = mu;
  return in;
}
}  // namespace

// rows spectra on the synthesis grid (fine, modified in place) -> out (rows x output_size()):
// macroturbulence and the instrument, both linear, so derivative rows go the same way.
void MilneEddington::degrade(double* fine, int rows, double vmac, MEScratch& s, double* out) const {
  const int64_t n = synthesis_size();
  const double width = lines_.front().lambda0 * vmac / kCkms;
  if (gaussian_) {
    const double sigma = std::sqrt(g_sigma_ * g_sigma_ + 0.5 * width * width);
    gaussian_resample_rows(fine, rows, n, smoother_.step(), sigma, g_first_, g_stride_, g_n_out_, out, s.kernel_);
    return;
  }
  if (vmac > 0.0) smoother_.smooth(width, fine, rows, s.scratch_, s.kernel_);
  apply_instrument(fine, rows, out);
}

void MilneEddington::apply_instrument(const double* fine, int rows, double* out) const {
  const int64_t n = synthesis_size(), nout = output_size();
  if (has_instrument_) {
    for (int r = 0; r < rows; ++r) instrument_.apply(fine + r * n, out + r * nout);
  } else {
    std::copy(fine, fine + rows * n, out);
  }
}

void MilneEddington::profile(const double* params, double mu, MEScratch& s, double* out) const {
  const int64_t n = synthesis_size();
  s.work_->resize(n, max_components_);
  s.fine_.resize(static_cast<std::size_t>(4 * n));
  me_kernel()(lines_, wl_.data(), n, profile_input(params, mu), *s.work_, s.fine_.data());
  degrade(s.fine_.data(), 4, params[10], s, out);
}

void MilneEddington::profile_and_jacobian(const double* params, double mu, MEScratch& s, double* out, double* jac,
                                          const bool* need, MEPrecision precision) const {
  const int64_t n = synthesis_size(), nout = output_size();
  if (precision == MEPrecision::float32)
    s.deriv_->f32.resize(n);
  else
    s.deriv_->f64.resize(n);
  s.fine_.resize(static_cast<std::size_t>(4 * n));
  s.fine_jac_.resize(static_cast<std::size_t>(kMeDerivParameters * 4 * n));
  detail::MEProfileInput in = profile_input(params, mu);
  in.filling_derivative = !need || need[9];
  const int64_t plane = 4 * n;
  // The float32 precision's rows stay float from the kernel through the resampling with the
  // Gaussian instrument (half the memory traffic, no widening per point), the S1 row the
  // profile is built from too (resampled in float: ~2e-7 of it, the kernel's own float
  // rounding is ~1e-7). The descent's chi2 uses that profile; the reported fit and chi2 come
  // from the float64 profile (profile()).
  const bool f32 = precision == MEPrecision::float32;
  const bool rows32 = gaussian_ && f32;
  constexpr int kVmac = 10, kS0 = 7, kS1 = 8;
  float* jac32 = nullptr;
  if (f32) {
    std::vector<float>& o = s.deriv_->out32;
    o.resize(static_cast<std::size_t>((1 + detail::kMeDerivs) * plane));
    me_deriv32_kernel()(lines_, wl_.data(), n, in, *s.deriv_, o.data(), o.data() + plane);
    // with the Gaussian instrument the profile is formed from the S1 row below: its fine
    // version is needed only for a free vmac's row
    if (!rows32 || !need || need[kVmac]) std::copy(o.begin(), o.begin() + plane, s.fine_.begin());
    jac32 = o.data() + plane;
  } else {
    me_deriv_kernel()(lines_, wl_.data(), n, in, *s.deriv_, s.fine_.data(), s.fine_jac_.data());
  }
  // per unit of the public parameters: degrees and mA
  auto to_public_units = [plane](auto* J) {
    using T = std::remove_pointer_t<decltype(J)>;
    for (int k : {1, 2})
      for (int64_t j = 0; j < plane; ++j) J[k * plane + j] *= static_cast<T>(kDeg);
    for (int64_t j = 0; j < plane; ++j) J[4 * plane + j] *= static_cast<T>(1e-3);
  };
  if (rows32) {
    to_public_units(jac32);
  } else {
    if (f32) std::copy(jac32, jac32 + detail::kMeDerivs * plane, s.fine_jac_.begin());
    to_public_units(s.fine_jac_.data());
  }
  // With the (normalised) Gaussian instrument two rows need no resampling of their own: the
  // S0 row is 1 in I and 0 in Q, U, V before and after it, and the profile is S0 e_I + S1 x
  // the S1 row (I = S0 + S1 (f XI + (1 - f) mu / (1 + eta0 phi0)), Q = f S1 XQ, ...), both
  // linear in the instrument -- 32 resampled rows instead of 40 for the usual 9 free
  // parameters. (A user's banded operator need not preserve constants: resampled as is.)
  const bool shortcut = gaussian_;
  // w = lambda0 vmac / c, the smoothing's 1/e half-width
  const double dw = lines_.front().lambda0 / kCkms, width = dw * params[kVmac];
  double* vmac_row = (!need || need[kVmac]) ? jac + kVmac * 4 * nout : nullptr;
  if (vmac_row && gaussian_) {
    // sigma^2 = sigma_lsf^2 + w^2 / 2: dsigma/dvmac = w (lambda0 / c) / (2 sigma)
    const double sigma = std::sqrt(g_sigma_ * g_sigma_ + 0.5 * width * width);
    gaussian_resample_rows_dsigma(s.fine_.data(), 4, n, smoother_.step(), sigma, g_first_, g_stride_, g_n_out_,
                                  vmac_row, s.kernel_);
    const double ds = width * dw / (2.0 * sigma);
    for (int64_t j = 0; j < 4 * nout; ++j) vmac_row[j] *= ds;
  } else if (vmac_row) {
    // the separate smoothing pass, differentiated before it smooths the profile in place;
    // then the instrument, which is linear
    double* fine_row = s.fine_jac_.data() + kVmac * plane;
    smoother_.smooth_dwidth(width, s.fine_.data(), 4, fine_row, s.kernel_);
    for (int64_t j = 0; j < plane; ++j) fine_row[j] *= dw;
    apply_instrument(fine_row, 4, vmac_row);
  }
  if (!shortcut) degrade(s.fine_.data(), 4, params[10], s, out);
  const double sigma_all = std::sqrt(g_sigma_ * g_sigma_ + 0.5 * width * width);
  // runs of consecutive needed parameters go through the instrument together
  auto wanted = [&](int k) { return (!need || need[k]) && !(shortcut && (k == kS0 || k == kS1)); };
  for (int k = 0; k < kVmac;) {
    if (!wanted(k)) {
      ++k;
      continue;
    }
    int e = k + 1;
    while (e < kVmac && wanted(e)) ++e;
    if (rows32)
      detail::gaussian_resample_rows32(jac32 + k * plane, 4 * (e - k), n, smoother_.step(), sigma_all, g_first_,
                                       g_stride_, g_n_out_, jac + k * 4 * nout, s.kernel_);
    else
      degrade(s.fine_jac_.data() + k * plane, 4 * (e - k), params[10], s, jac + k * 4 * nout);
    k = e;
  }
  if (!shortcut) return;
  const int64_t pout = 4 * nout;
  double* j1 = (!need || need[kS1]) ? jac + kS1 * pout : out;  // out is overwritten below
  if (rows32)
    detail::gaussian_resample_rows32(jac32 + kS1 * plane, 4, n, smoother_.step(), sigma_all, g_first_, g_stride_,
                                     g_n_out_, j1, s.kernel_);
  else
    degrade(s.fine_jac_.data() + kS1 * plane, 4, params[10], s, j1);
  const double S0 = params[kS0], S1 = params[kS1];
  for (int64_t j = 0; j < pout; ++j) out[j] = (j < nout ? S0 : 0.0) + S1 * j1[j];
  if (!need || need[kS0]) {
    double* j0 = jac + kS0 * pout;
    std::fill(j0, j0 + nout, 1.0);
    std::fill(j0 + nout, j0 + pout, 0.0);
  }
}

void MilneEddington::synthesize(const MEParameterArrays& p, double mu, double* out, uint8_t* status,
                                int threads) const {
  if (!(mu > 0.0 && mu <= 1.0))
    throw InvalidArgument("MilneEddington: mu = cos(theta) must be in (0, 1], got " + std::to_string(mu));
  if (p.n < 0) throw InvalidArgument("MilneEddington: negative number of profiles");
  if (p.n > 0 && (!p.B || !p.inclination || !p.azimuth || !p.vlos || !p.doppler_width || !p.damping || !p.eta0 ||
                  !p.S0 || !p.S1 || !out || !status))
    throw InvalidArgument("MilneEddington: a required parameter array is missing");
  const int64_t n = synthesis_size();
  const int64_t nout = output_size();
  const int nthreads = resolve_threads(threads, p.n, "MilneEddington.synthesize");
  (void)nthreads;

  // Resolve the kernel before the parallel region: a bad FASTINV_ISA is then an exception
  // the caller sees, not one thrown inside OpenMP (which ends the process).
  me_kernel();
  ParallelErrors errors;
#ifdef FASTINV_HAVE_OPENMP
#pragma omp parallel num_threads(nthreads)
#endif
  {
    detail::MEWork work;
    std::vector<double> prof, scratch, kernel;
    errors.run([&] {  // per-thread buffers: allocation may throw
      work.resize(n, max_components_);
      prof.resize(static_cast<std::size_t>(4 * n));
    });
#ifdef FASTINV_HAVE_OPENMP
#pragma omp for schedule(dynamic, 64)
#endif
    for (int64_t i = 0; i < p.n; ++i) {
      if (errors.failed()) continue;
      double* o = out + i * 4 * nout;
      const double f = p.filling_factor ? p.filling_factor[i] : 1.0;
      const double vmac = p.vmac ? p.vmac[i] : 0.0;
      const bool ok = finite_all({p.B[i], p.inclination[i], p.azimuth[i], p.vlos[i], p.doppler_width[i], p.damping[i],
                                  p.eta0[i], p.S0[i], p.S1[i], f, vmac}) &&
                      p.B[i] >= 0.0 && p.doppler_width[i] > 0.0 && p.damping[i] >= 0.0 && p.eta0[i] >= 0.0 &&
                      f >= 0.0 && f <= 1.0 && vmac >= 0.0 && std::fabs(p.vlos[i]) < kCkms;
      if (!ok) {
        std::fill(o, o + 4 * nout, std::numeric_limits<double>::quiet_NaN());
        status[i] = static_cast<std::uint8_t>(MeStatus::invalid_parameters);
        continue;
      }
      // Without an instrument the profile is synthesised straight into the output.
      const bool direct = !gaussian_ && !has_instrument_;
      errors.run([&] {  // scratch and kernel grow on demand
        synthesize_one(p, i, mu, work, direct ? o : prof.data(), scratch, kernel);
        if (gaussian_) {
          const double w = lines_.front().lambda0 * vmac / kCkms;  // 1/e half-width [A]
          const double sigma = std::sqrt(g_sigma_ * g_sigma_ + 0.5 * w * w);
          for (int s = 0; s < 4; ++s)
            gaussian_resample(prof.data() + s * n, n, smoother_.step(), sigma, g_first_, g_stride_, g_n_out_,
                              o + s * nout, kernel);
        } else if (has_instrument_) {
          for (int s = 0; s < 4; ++s) instrument_.apply(prof.data() + s * n, o + s * nout);
        }
        // valid but extreme parameters can overflow: a NaN/inf profile is never "ok"
        if (std::all_of(o, o + 4 * nout, [](double v) { return std::isfinite(v); })) {
          status[i] = static_cast<std::uint8_t>(MeStatus::ok);
        } else {
          std::fill(o, o + 4 * nout, std::numeric_limits<double>::quiet_NaN());
          status[i] = static_cast<std::uint8_t>(MeStatus::non_finite_result);
        }
      });
    }
  }
  errors.rethrow();
}

}  // namespace fastinv::stokes
