// Milne-Eddington inversion: Levenberg-Marquardt per pixel on the ME forward model
// (milne_eddington.hpp) with analytic derivatives, 1-sigma errors from the covariance,
// OpenMP over pixels. See docs/stokes-me-inversion.md.
//
// Parameters (kMeInvParameters): those of MilneEddington::profile_and_jacobian -- B [G],
// inclination [deg], azimuth [deg], vlos [km/s], doppler_width [mA], damping, eta0, S0, S1,
// filling_factor, vmac [km/s] -- then the stray-light fraction alpha: the fitted profile is
// (1 - alpha) ME + alpha S for a given stray-light profile S (per pixel or shared; none:
// alpha = 0). vmac and alpha are fixed at their initial values unless freed.
//
// Thread safety: invert() is const and writes only to its outputs; one MEInversion may be
// used from many threads at once. Each pixel's fit depends only on that pixel's data and
// initial guess (no random numbers; restarts are fixed variants of the guess), so results
// are bitwise identical for any thread count.
#pragma once
#include <array>
#include <cstdint>
#include <memory>

#include "fastinv/stokes/milne_eddington.hpp"

namespace fastinv::stokes {

// Per-pixel status (Python table: fastinv.status.ME_INVERSION_STATUS).
enum class MeInversionStatus : int8_t {
  ok = 0,
  max_iterations = 1,        // stopped at options.max_iterations before converging
  chi2_above_threshold = 2,  // converged, but reduced chi2 > options.chi2_threshold
  bad_input = 3,             // non-finite profile, sigma <= 0 or bad initial guess: NaN products
  too_dark = 4,              // mean Stokes I <= options.dark_threshold: NaN products
};

constexpr int kMeCorrelated = 5;  // correlations among B, inclination, azimuth, vlos, filling_factor

constexpr int kMeInvParameters = kMeDerivParameters + 1;  // + the stray-light fraction
constexpr int kMeVmac = 10, kMeStrayLight = 11;           // their indices

struct MEInversionOptions {
  // Which parameters are fitted (the others stay at their initial values). A free vmac
  // starts at 1 km/s where its initial value is 0 (the
  // profile is even in vmac); a free stray-light fraction needs a stray-light profile.
  std::array<bool, kMeInvParameters> free{true, true, true, true, true, true, true, true, true, false, false, false};
  // Box limits (inclination and azimuth are folded into [0, 180] first, see me_inversion.cpp).
  std::array<double, kMeInvParameters> lower{0.0, 0.0, 0.0, -20.0, 5.0, 1e-4, 1e-2, 0.0, 0.0, 0.0, 0.0, 0.0};
  std::array<double, kMeInvParameters> upper{6000.0, 180.0, 180.0, 20.0, 150.0, 5.0, 500.0, 10.0, 10.0, 1.0, 10.0, 1.0};
  std::array<double, 4> weights{1.0, 1.0, 1.0, 1.0};  // chi2 weight of I, Q, U, V
  double mu = 1.0;
  int max_iterations = 100;       // LM steps tried (accepted or not)
  double tolerance = 1e-6;        // converged when an accepted step lowers chi2 by less than this fraction
  double chi2_threshold = 1e300;  // reduced chi2 above it: status chi2_above_threshold
  double dark_threshold = 0.0;    // mean Stokes I at or below it: status too_dark
  int restarts = 0;               // extra starts for pixels whose reduced chi2 > restart_chi2
  double restart_chi2 = 2.0;
  // Levenberg-Marquardt's initial damping of a pixel's first descent (its restarts start at
  // 0.1). 0.1 suits guesses far from the minimum (the classical one); a close guess (the
  // network's) converges in fewer steps from a smaller one (docs/stokes-me-inversion.md).
  double lambda_start = 0.1;
  // Arithmetic of the profile+Jacobian kernel (normal equations, chi2 and the reported fit
  // stay double; the C API uses this default);
  // the measurements behind the default: docs/stokes-me-inversion.md, "Float32 Jacobian kernel".
  MEPrecision jacobian_precision = MEPrecision::float32;
  // Throws InvalidArgument on inconsistent values (lower > upper, weights < 0, ...).
  void validate() const;
};

// Outputs of invert(), caller-allocated (n pixels); fit may be null.
struct MEInversionOutputs {
  double* parameters = nullptr;    // n x kMeInvParameters
  double* errors = nullptr;        // n x kMeInvParameters (NaN for fixed parameters)
  double* correlations = nullptr;  // n x kMeCorrelated x kMeCorrelated (NaN where not free)
  double* chi2 = nullptr;          // n x 5: I, Q, U, V (mean of squared normalised residuals), total reduced
  int32_t* iterations = nullptr;   // n (all starts together)
  int8_t* restarts = nullptr;      // n, optional: extra starts used
  int8_t* status = nullptr;        // n (MeInversionStatus)
  double* fit = nullptr;           // n x 4 x n_wavelength, optional
};

class MEInversion {
 public:
  MEInversion(std::shared_ptr<const MilneEddington> model, MEInversionOptions options);

  int64_t n_wavelength() const { return model_->output_size(); }
  const MEInversionOptions& options() const { return options_; }
  const MilneEddington& model() const { return *model_; }

  // stokes: n x 4 x n_wavelength. sigma: n x 4 x n_wavelength when sigma_per_pixel, else
  // 4 x n_wavelength shared by all pixels. init: n x kMeInvParameters initial guesses (vmac
  // and the stray-light fraction included). stray (optional): the stray-light profile, n x 4
  // x n_wavelength when stray_per_pixel, else 4 x n_wavelength; null: alpha = 0 (output 0).
  // threads <= 0: default_threads().
  void invert(int64_t n, const double* stokes, const double* sigma, bool sigma_per_pixel, const double* init,
              const MEInversionOutputs& out, int threads = 0, const double* stray = nullptr,
              bool stray_per_pixel = false) const;

 private:
  void invert_pixel(const double* obs, const double* sigma, const double* init, const double* stray, MEScratch& scratch,
                    double* work, const MEInversionOutputs& out, int64_t i) const;

  std::shared_ptr<const MilneEddington> model_;
  MEInversionOptions options_;
};

}  // namespace fastinv::stokes
