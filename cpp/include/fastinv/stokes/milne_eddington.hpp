// Milne-Eddington Stokes synthesis: analytic Unno-Rachkovsky solution with magneto-optical
// effects (Landi Degl'Innocenti & Landolfi 2004, "LL04", section 9.8), several lines with
// full Zeeman patterns, filling factor, macroturbulence, instrument degradation.
//
// Parameters and conventions (one set per profile):
//   B [G] >= 0, inclination gamma [deg] (0: field pointing TOWARD the observer), azimuth
//   chi [deg] (from the +Q reference direction, counter-clockwise), vlos [km/s] (positive =
//   REDSHIFT, away from the observer: the solar convention; lightweaver's is the opposite),
//   doppler_width [mA] of the first line (others scaled by lambda0, i.e. the same velocity
//   width), damping a, eta0 = line-to-continuum opacity ratio of the first line (others
//   times strength_ratios), S0, S1 (source function S0 + S1 tau), filling_factor f in [0,1],
//   vmac [km/s] (Gaussian 1/e half-width).
//   Absorption matrix, with phi_j = sum_i S_i H(a, v - s_i v_B)/sqrt(pi) over the
//   components of group j (sigma_b, pi, sigma_r) and psi_j likewise with F:
//     eta_I = 1 + eta0/2 [phi_p sin^2 g + (phi_b + phi_r)/2 (1 + cos^2 g)]
//     eta_Q = eta0/2 [phi_p - (phi_b + phi_r)/2] sin^2 g cos 2chi,  eta_U: sin 2chi
//     eta_V = eta0/2 (phi_r - phi_b) cos g;  rho_* the same with psi.
//   Emergent Stokes (mu = cos theta): LL04 eqs. 9.110 (see milne_eddington.cpp).
//   Signs that follow (tested): B cos g > 0 gives V > 0 in the blue lobe; a transverse
//   field at chi = 0 gives Q < 0 at line centre (Q ~ -cos 2chi, U ~ -sin 2chi there) --
//   lightweaver's conventions.
//   Filling factor: I = f * I_magnetic + (1 - f) * I_B=0, where the unmagnetised part is
//   the same ME atmosphere with B = 0 (a local, non-magnetic stray-light component).
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "fastinv/stokes/lines.hpp"
#include "fastinv/stokes/spectral_operator.hpp"
#include "fastinv/stokes/zeeman.hpp"

namespace fastinv::stokes {

namespace detail {
struct MELineData;
struct MEWork;
struct MEDerivWork;
}  // namespace detail

// Number of parameters of one-profile calls (profile / profile_and_jacobian), in this order:
// B, inclination, azimuth, vlos, doppler_width, damping, eta0, S0, S1, filling_factor, vmac,
// in the units of MEParameterArrays. All are differentiated.
constexpr int kMeProfileParameters = 11;
constexpr int kMeDerivParameters = kMeProfileParameters;

// Per-thread scratch of the one-profile calls: one per thread, reused between calls
// (the MilneEddington object itself is never written to, so it may be shared by threads).
class MEScratch {
 public:
  MEScratch();
  MEScratch(MEScratch&&) noexcept;
  MEScratch& operator=(MEScratch&&) noexcept;
  ~MEScratch();

 private:
  friend class MilneEddington;
  std::unique_ptr<detail::MEWork> work_;
  std::unique_ptr<detail::MEDerivWork> deriv_;
  std::vector<double> fine_, fine_jac_, scratch_, kernel_;
};

// Per-profile parameter arrays (length n each). filling_factor and vmac may be null
// (then 1 and 0).
struct MEParameterArrays {
  int64_t n = 0;
  const double* B = nullptr;
  const double* inclination = nullptr;
  const double* azimuth = nullptr;
  const double* vlos = nullptr;
  const double* doppler_width = nullptr;
  const double* damping = nullptr;
  const double* eta0 = nullptr;
  const double* S0 = nullptr;
  const double* S1 = nullptr;
  const double* filling_factor = nullptr;
  const double* vmac = nullptr;
};

// Stored as uint8 per profile (the status output of synthesize); values may be added.
// non_finite_result: valid parameters whose profile overflowed (e.g. eta0 near 1e308).
enum class MeStatus : std::uint8_t { ok = 0, invalid_parameters = 1, non_finite_result = 2 };
// Arithmetic of MilneEddington::profile_and_jacobian's kernel (the inversion's Jacobian).
enum class MEPrecision : std::uint8_t { float64 = 0, float32 = 1 };

class MilneEddington {
 public:
  // wavelength: synthesis grid, air Angstrom, strictly increasing. strength_ratios: eta0 of
  // each line relative to the first; empty = default_strength_ratios(lines).
  MilneEddington(std::vector<SpectralLine> lines, std::vector<double> wavelength,
                 std::vector<double> strength_ratios = {});
  MilneEddington(MilneEddington&&) noexcept;
  MilneEddington& operator=(MilneEddington&&) noexcept;
  ~MilneEddington();

  // Degrade every synthesised profile with `op` (n_in must equal the synthesis grid size);
  // output profiles then have op.n_out points.
  void set_instrument(BandedOperator op);
  // Faster alternative for a Gaussian LSF (sigma [A]) whose output samples are synthesis
  // grid points first + k * stride (k < n_out) of a uniform grid: the LSF and the
  // per-profile macroturbulence become one Gaussian (gaussian_resample), no smoothing pass.
  void set_gaussian_instrument(double sigma, int64_t first, int64_t stride, int64_t n_out);

  int64_t synthesis_size() const { return static_cast<int64_t>(wl_.size()); }
  int64_t output_size() const;
  const std::vector<double>& strength_ratios() const { return ratios_; }
  // out: n x 4 x output_size() (I, Q, U, V), status: n. Invalid parameter sets (non-finite,
  // B < 0, doppler_width <= 0, damping < 0, eta0 < 0, f outside [0,1], vmac < 0) give NaN
  // profiles and status me_invalid_parameters; the others are unaffected. Throws
  // InvalidArgument for a bad mu (must be in (0, 1]) or null required arrays.
  // threads <= 0: default_threads().
  void synthesize(const MEParameterArrays& p, double mu, double* out, uint8_t* status, int threads = 0) const;

  // One profile (4 x output_size()) for params[kMeProfileParameters], which the caller has
  // validated (finite, in range); the same arithmetic as synthesize().
  void profile(const double* params, double mu, MEScratch& scratch, double* out) const;
  // The same profile computed together with its analytic derivatives (me_deriv_kernel.hpp):
  // jac is kMeDerivParameters x 4 x output_size(), d(profile)/d(parameter) per unit of each
  // parameter (G, deg, km/s, mA, ...), through the instrument and macroturbulence (with a
  // Gaussian instrument vmac widens the LSF, gaussian_resample_rows_dsigma; otherwise the
  // separate smoothing pass is differentiated, GaussianSmoother::smooth_dwidth. The vmac row
  // is 0 at vmac = 0, where the profile is even in vmac, so a fit of vmac must start above 0). The
  // profile agrees with profile() to rounding (its far wings are summed in another order).
  // need (optional, kMeDerivParameters flags): rows of parameters not needed are not computed
  // (the instrument pass is the costly part of a row): left unwritten, or, for the filling
  // factor at f = 1, meaningless (its Voigt functions are skipped).
  // precision: the arithmetic of the profile+derivative kernel (float32: twice the SIMD lanes,
  // profiles to ~1e-6 relative; the instrument pass and the outputs stay double).
  void profile_and_jacobian(const double* params, double mu, MEScratch& scratch, double* out, double* jac,
                            const bool* need = nullptr, MEPrecision precision = MEPrecision::float64) const;

 private:
  void degrade(double* fine, int rows, double vmac, MEScratch& s, double* out) const;
  void apply_instrument(const double* fine, int rows, double* out) const;  // rows x n -> rows x nout
  void synthesize_one(const MEParameterArrays& p, int64_t i, double mu, detail::MEWork& work, double* prof,
                      std::vector<double>& scratch, std::vector<double>& kernel) const;

  std::vector<detail::MELineData> lines_;  // Zeeman components, weights (me_types.hpp)
  std::size_t max_components_ = 0;
  std::vector<double> wl_;
  std::vector<double> ratios_;
  GaussianSmoother smoother_;
  bool has_instrument_ = false;
  BandedOperator instrument_;
  bool gaussian_ = false;
  double g_sigma_ = 0.0;
  int64_t g_first_ = 0, g_stride_ = 1, g_n_out_ = 0;
};

// eta0 of each line relative to the first: (gf lambda)_k / (gf lambda)_0 *
// exp(-(chi_k - chi_0) / (k_B 5000 K)) -- the LTE line-opacity ratio at a typical
// photospheric excitation temperature (0.332 for 6302.5 / 6301.5).
std::vector<double> default_strength_ratios(const std::vector<SpectralLine>& lines);

}  // namespace fastinv::stokes
