// C API: Milne-Eddington inversion (fastinv::stokes::MEInversion). The synthesis grid of a
// Gaussian LSF is built as the Python Instrument builds it (uniform, the data's step /
// oversample, padded by the LSF's reach with vmac_max folded in), so that C and Python fit
// the same model.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "capi_common.hpp"
#include "capi_handles.hpp"
#include "fastinv/stokes/lines.hpp"

using namespace fastinv::capi;
using fastinv::InvalidArgument;
namespace st = fastinv::stokes;

namespace {

constexpr double kCkms = 299792.458;
constexpr double kStepPerSigma = 0.85;  // the Python MEInversion's default synthesis step / LSF sigma
// fastinv_me_options before API level 4 appended its precision
constexpr std::size_t kMeOptionsLevel3Size = offsetof(fastinv_me_options, precision);

std::vector<st::SpectralLine> parse_lines(const char* names) {
  const std::string all = names ? names : "FeI_6301,FeI_6302";
  std::vector<st::SpectralLine> lines;
  std::size_t pos = 0;
  while (pos <= all.size()) {
    const std::size_t end = std::min(all.find(',', pos), all.size());
    const std::string name = all.substr(pos, end - pos);
    if (name.empty()) throw InvalidArgument("fastinv_me_create: empty line name in \"" + all + "\"");
    lines.push_back(st::get_line(name));
    pos = end + 1;
  }
  return lines;
}

std::shared_ptr<st::MilneEddington> make_model(const fastinv_me_options& o) {
  const char* fn = "fastinv_me_create";
  require_at_least(o.n_wavelength, 1, fn, "n_wavelength");
  const double* w = require(o.wavelength, fn, "options->wavelength");
  std::vector<double> wl(w, w + o.n_wavelength);
  auto lines = parse_lines(o.lines);
  if (!(o.lsf_fwhm > 0.0)) {
    if (o.lsf_fwhm != 0.0) throw InvalidArgument(std::string(fn) + ": lsf_fwhm must be >= 0 (mA)");
    return std::make_shared<st::MilneEddington>(std::move(lines), std::move(wl));
  }
  if (!std::isfinite(o.lsf_fwhm)) throw InvalidArgument(std::string(fn) + ": lsf_fwhm must be finite");
  if (wl.size() < 2) throw InvalidArgument(std::string(fn) + ": an LSF needs at least 2 wavelengths");
  const double mean_step = (wl.back() - wl.front()) / static_cast<double>(wl.size() - 1);
  for (std::size_t i = 1; i < wl.size(); ++i)
    if (!(std::fabs((wl[i] - wl[i - 1]) - mean_step) <= 1e-9 * mean_step))
      throw InvalidArgument(std::string(fn) + ": an LSF needs a uniform, increasing wavelength grid");
  if (o.oversample < 0 || o.oversample > 1000) throw InvalidArgument(std::string(fn) + ": oversample out of range");
  if (!(o.vmac_max >= 0.0 && std::isfinite(o.vmac_max)))
    throw InvalidArgument(std::string(fn) + ": vmac_max must be finite and >= 0");
  double data_step = mean_step;
  for (std::size_t i = 1; i < wl.size(); ++i) data_step = std::min(data_step, wl[i] - wl[i - 1]);
  const double fwhm_to_sigma = 1.0 / (2.0 * std::sqrt(2.0 * std::log(2.0)));  // as the Python Instrument
  const double sigma = o.lsf_fwhm * 1e-3 * fwhm_to_sigma;
  // the Python MEInversion's default: the fewest points per data step giving a step <= 0.85 sigma
  const int64_t over =
      o.oversample > 0
          ? o.oversample
          : std::max<int64_t>(1, static_cast<int64_t>(std::ceil(data_step / (kStepPerSigma * sigma) - 1e-9)));
  const double step = data_step / static_cast<double>(over);
  double mean_wl = 0.0;
  for (double x : wl) mean_wl += x;
  mean_wl /= static_cast<double>(wl.size());
  const double vw = mean_wl * o.vmac_max / kCkms;
  const double padding = std::max(5.0 * sigma, 5.0 * std::sqrt(sigma * sigma + 0.5 * vw * vw));
  const int64_t pad = static_cast<int64_t>(std::ceil(padding / step)) + 1;
  const int64_t span = static_cast<int64_t>(std::ceil((wl.back() - wl.front()) / step - 1e-9));
  std::vector<double> grid(static_cast<std::size_t>(span + 2 * pad + 1));
  for (std::size_t i = 0; i < grid.size(); ++i) grid[i] = wl.front() + step * (static_cast<double>(i) - pad);
  auto me = std::make_shared<st::MilneEddington>(std::move(lines), std::move(grid));
  me->set_gaussian_instrument(sigma, pad, over, static_cast<int64_t>(wl.size()));
  return me;
}

}  // namespace

extern "C" {

void fastinv_me_options_init_sized(fastinv_me_options* options, size_t size) {
  fastinv_me_options o{};
  const st::MEInversionOptions d;
  for (int k = 0; k < FASTINV_ME_PARAMETERS; ++k) {
    o.free[k] = d.free[k] ? 1 : 0;
    o.lower[k] = d.lower[k];
    o.upper[k] = d.upper[k];
  }
  for (int s = 0; s < 4; ++s) o.weights[s] = d.weights[s];
  o.vmac_max = 3.0;
  o.mu = d.mu;
  o.max_iterations = d.max_iterations;
  o.tolerance = d.tolerance;
  o.chi2_threshold = d.chi2_threshold;
  o.dark_threshold = d.dark_threshold;
  o.restarts = 3;
  o.restart_chi2 = d.restart_chi2;
  init_sized(options, size, o);
}

void(fastinv_me_options_init)(fastinv_me_options* options) {
  fastinv_me_options_init_sized(options, kMeOptionsLevel3Size);
}

void fastinv_me_input_init_sized(fastinv_me_input* input, size_t size) { init_sized(input, size, fastinv_me_input{}); }

void(fastinv_me_input_init)(fastinv_me_input* input) { fastinv_me_input_init_sized(input, sizeof(fastinv_me_input)); }

void fastinv_me_output_init_sized(fastinv_me_output* output, size_t size) {
  init_sized(output, size, fastinv_me_output{});
}

void(fastinv_me_output_init)(fastinv_me_output* output) {
  fastinv_me_output_init_sized(output, sizeof(fastinv_me_output));
}

fastinv_status fastinv_me_create(const fastinv_me_options* options, fastinv_me** me) {
  static_assert(FASTINV_ME_PARAMETERS == st::kMeInvParameters, "C and C++ parameter counts differ");
  static_assert(FASTINV_ME_CORRELATED == st::kMeCorrelated, "C and C++ correlation counts differ");
  return guard([&] {
    const char* fn = "fastinv_me_create";
    require(me, fn, "me");
    *me = nullptr;
    const fastinv_me_options& o = require_struct(options, kMeOptionsLevel3Size, fn, "options");
    st::MEInversionOptions c;
    for (int k = 0; k < FASTINV_ME_PARAMETERS; ++k) {
      c.free[k] = o.free[k] != 0;
      c.lower[k] = o.lower[k];
      c.upper[k] = o.upper[k];
    }
    for (int s = 0; s < 4; ++s) c.weights[s] = o.weights[s];
    c.mu = o.mu;
    c.max_iterations = o.max_iterations;
    c.tolerance = o.tolerance;
    c.chi2_threshold = o.chi2_threshold;
    c.dark_threshold = o.dark_threshold;
    c.restarts = o.restarts;
    c.restart_chi2 = o.restart_chi2;
    const char* precision =
        has_field(o, offsetof(fastinv_me_options, precision), sizeof(const char*)) ? o.precision : nullptr;
    if (precision && std::strcmp(precision, "float64") == 0)
      c.jacobian_precision = st::MEPrecision::float64;
    else if (precision && std::strcmp(precision, "float32") != 0)
      throw InvalidArgument(std::string(fn) + ": options->precision \"" + precision +
                            "\" is not \"float32\" or \"float64\" (or NULL: float32)");
    *me = std::make_unique<fastinv_me>(fastinv_me{st::MEInversion(make_model(o), c)}).release();
  });
}

void fastinv_me_destroy(fastinv_me* me) { std::unique_ptr<fastinv_me> owned(me); }

fastinv_status fastinv_me_sizes(const fastinv_me* me, int64_t* n_wavelength, int64_t* n_synthesis) {
  return guard([&] {
    const char* fn = "fastinv_me_sizes";
    require(me, fn, "me");
    if (n_wavelength) *n_wavelength = me->inv.n_wavelength();
    if (n_synthesis) *n_synthesis = me->inv.model().synthesis_size();
  });
}

fastinv_status fastinv_me_invert(const fastinv_me* me, const fastinv_me_input* input, const fastinv_me_output* output,
                                 int threads) {
  return guard([&] {
    const char* fn = "fastinv_me_invert";
    require(me, fn, "me");
    const fastinv_me_input& in = require_struct(input, sizeof(fastinv_me_input), fn, "input");
    const fastinv_me_output& out = require_struct(output, sizeof(fastinv_me_output), fn, "output");
    require_at_least(in.n, 0, fn, "input->n");
    if (in.n == 0) return;
    require(in.stokes, fn, "input->stokes");
    require(in.sigma, fn, "input->sigma");
    require(in.init, fn, "input->init");
    require(out.parameters, fn, "output->parameters");
    require(out.status, fn, "output->status");
    // optional outputs go to scratch
    const int64_t n = in.n, P = st::kMeInvParameters, C = st::kMeCorrelated;
    std::vector<double> errors, correlations, chi2;
    std::vector<int32_t> iterations;
    st::MEInversionOutputs o;
    o.parameters = out.parameters;
    o.status = out.status;
    o.restarts = out.restarts;
    o.fit = out.fit;
    auto or_scratch = [n](auto* p, auto& v, int64_t per) {
      if (p) return p;
      v.resize(static_cast<std::size_t>(n * per));
      return v.data();
    };
    o.errors = or_scratch(out.errors, errors, P);
    o.correlations = or_scratch(out.correlations, correlations, C * C);
    o.chi2 = or_scratch(out.chi2, chi2, 5);
    o.iterations = or_scratch(out.iterations, iterations, 1);
    me->inv.invert(n, in.stokes, in.sigma, in.sigma_per_pixel != 0, in.init, o, threads, in.stray,
                   in.stray_per_pixel != 0);
  });
}

}  // extern "C"
