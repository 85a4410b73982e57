// Linear operators on spectra: instrument degradation (LSF convolution + resampling onto
// the instrument's wavelength grid, as one banded matrix) and macroturbulent smoothing.
#pragma once
#include <cstdint>
#include <vector>

namespace fastinv::stokes {

// out[k] = sum_{m < width} weights[k * width + m] * in[start[k] + m]. Built by the Python
// Instrument (fastinv.stokes.Instrument) from its line-spread function; applied in C++.
struct BandedOperator {
  int64_t n_in = 0, n_out = 0, width = 0;
  std::vector<int64_t> start;   // n_out
  std::vector<double> weights;  // n_out * width
  // Throws InvalidArgument unless sizes agree, 0 <= start[k], start[k] + width <= n_in and
  // every weight is finite.
  void validate() const;
  void apply(const double* in, double* out) const;  // in: n_in, out: n_out
  // `rows` spectra back to back (OpenMP over rows; threads <= 0: default_threads()).
  void apply_rows(const double* in, double* out, int64_t rows, int threads = 0) const;
};

// Gaussian smoothing exp(-(dlambda / width)^2) of `n_spectra` spectra of length n laid
// out back to back, on a wavelength grid (Angstrom, strictly increasing). Used for
// macroturbulence: width = lambda0 * v_mac / c (the 1/e half-width, as in SIR). A width
// below 1e-3 of the grid step leaves the spectra unchanged.
// Uniform grids: the discrete kernel exp(-(j h / w_eff)^2) has w_eff set so that its
// variance equals the continuous width^2 / 2 (matters when width < ~2 steps); beyond the
// grid ends spectra are continued by point reflection (2 y_end - y_mirror, exact for a
// linear trend). Needs J = 5 width / step + 1 < n.
// Non-uniform grids: trapezoid weights times the Gaussian, renormalised inside the grid
// (needs width >~ 2 steps).
class GaussianSmoother {
 public:
  explicit GaussianSmoother(std::vector<double> wavelength);
  bool uniform() const { return uniform_; }
  double step() const { return step_; }
  void smooth(double width, double* spectra, int n_spectra, std::vector<double>& scratch,
              std::vector<double>& kernel) const;
  // d(smooth)/d(width) of the unsmoothed `spectra` into out (n_spectra x n): the exact
  // derivative of the discrete operator above (the kernel's half-width J held fixed, as it is
  // between its integer steps); 0 where smooth() is the identity (width below 1e-3 step).
  void smooth_dwidth(double width, const double* spectra, int n_spectra, double* out,
                     std::vector<double>& kernel) const;

 private:
  // The uniform grid's normalised kernel (derivative: its d/d width) in kernel[0..2J]; returns J.
  int64_t uniform_kernel(double width, bool derivative, std::vector<double>& kernel) const;
  void nonuniform(double width, bool derivative, const double* y, double* out) const;
  std::vector<double> wl_;
  bool uniform_ = false;
  double step_ = 0.0;
};

// Gaussian LSF convolution + resampling in one step, for a uniform input grid of step h:
// out[k] = sum_m g_m in[first + k*stride + m] / sum_m g_m, g_m = exp(-(m h)^2 / (2 sigma^2)),
// |m h| <= 5 sigma (rows near the grid ends use the part of the kernel inside the grid).
// A Gaussian macroturbulence of 1/e half-width w folds in exactly as
// sigma^2 = sigma_lsf^2 + w^2 / 2 -- which is why this exists: no separate smoothing pass.
// `kernel` is scratch.
void gaussian_resample(const double* in, int64_t n, double h, double sigma, int64_t first, int64_t stride,
                       int64_t n_out, double* out, std::vector<double>& kernel);
// The same for `rows` spectra back to back (in: rows x n, out: rows x n_out), the kernel
// computed once; each row's result is bitwise that of gaussian_resample.
void gaussian_resample_rows(const double* in, int64_t rows, int64_t n, double h, double sigma, int64_t first,
                            int64_t stride, int64_t n_out, double* out, std::vector<double>& kernel);
// d(gaussian_resample_rows)/d(sigma): the exact derivative of the discrete, renormalised
// formula above (the kernel's half-width M held fixed, as it is between its integer steps),
// out = (sum_m g'_m x_m - y sum_m g'_m) / sum_m g_m with g'_m = g_m (m h)^2 / sigma^3.
void gaussian_resample_rows_dsigma(const double* in, int64_t rows, int64_t n, double h, double sigma, int64_t first,
                                   int64_t stride, int64_t n_out, double* out, std::vector<double>& kernel);

}  // namespace fastinv::stokes
