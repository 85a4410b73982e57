// Banded degradation operator and Gaussian (macroturbulence) smoothing.
#include "fastinv/stokes/spectral_operator.hpp"

#include <algorithm>
#include <cmath>
#include <string>
#include <utility>

#include "fastinv/error.hpp"
#include "fastinv/runtime.hpp"
#include "stokes/me_types.hpp"

namespace fastinv::stokes {

void BandedOperator::validate() const {
  if (n_in <= 0 || n_out <= 0 || width <= 0)
    throw InvalidArgument("instrument operator: n_in, n_out and width must be positive");
  if (static_cast<int64_t>(start.size()) != n_out || static_cast<int64_t>(weights.size()) != n_out * width)
    throw InvalidArgument("instrument operator: start must have n_out entries and weights n_out*width");
  for (int64_t k = 0; k < n_out; ++k)
    if (start[k] < 0 || start[k] + width > n_in)
      throw InvalidArgument("instrument operator: row " + std::to_string(k) + " reaches outside the synthesis grid");
  for (double w : weights)
    if (!std::isfinite(w)) throw InvalidArgument("instrument operator: non-finite weight");
}

void BandedOperator::apply(const double* in, double* out) const {
  for (int64_t k = 0; k < n_out; ++k) {
    const double* w = &weights[k * width];
    const double* x = in + start[k];
    double acc = 0.0;
#pragma omp simd reduction(+ : acc)
    for (int64_t m = 0; m < width; ++m) acc += w[m] * x[m];
    out[k] = acc;
  }
}

void BandedOperator::apply_rows(const double* in, double* out, int64_t rows, int threads) const {
  const int nthreads = resolve_threads(threads, rows, "BandedOperator.apply_rows");
  (void)nthreads;
#ifdef FASTINV_HAVE_OPENMP
#pragma omp parallel for schedule(static) num_threads(nthreads)
#endif
  for (int64_t r = 0; r < rows; ++r) apply(in + r * n_in, out + r * n_out);
}

GaussianSmoother::GaussianSmoother(std::vector<double> wavelength) : wl_(std::move(wavelength)) {
  const size_t n = wl_.size();
  if (n < 2) return;
  step_ = (wl_[n - 1] - wl_[0]) / static_cast<double>(n - 1);
  uniform_ = true;
  for (size_t i = 1; i < n; ++i)
    if (std::fabs((wl_[i] - wl_[i - 1]) - step_) > 1e-6 * step_) uniform_ = false;
}

namespace {

// Variance (in steps^2) of the normalised discrete kernel exp(-j^2 / w^2), j = -J..J, and its
// derivative in w.
std::pair<double, double> discrete_variance(double w, int64_t J) {
  double num = 0.0, den = 1.0, dnum = 0.0, dden = 0.0;
  for (int64_t j = 1; j <= J; ++j) {
    const double jj = static_cast<double>(j * j);
    const double e = std::exp(-jj / (w * w)), de = e * 2.0 * jj / (w * w * w);
    num += 2.0 * e * jj;
    den += 2.0 * e;
    dnum += 2.0 * de * jj;
    dden += 2.0 * de;
  }
  return {num / den, (dnum * den - num * dden) / (den * den)};
}

// y (length n) convolved with the symmetric kernel k[0..2J] into out; beyond the ends the
// spectrum is continued by point reflection about the end sample (y(-j) = 2 y(0) - y(j)):
// exact for a linear trend, so a sloping line wing at the edge of the window is not biased.
void convolve_reflected(const double* y, int64_t n, const double* k, int64_t J, double* out) {
  for (int64_t i = 0; i < n; ++i) {
    double acc = 0.0;
    if (i >= J && i + J < n) {
      const double* yy = y + i - J;
#pragma omp simd reduction(+ : acc)
      for (int64_t j = 0; j <= 2 * J; ++j) acc += k[j] * yy[j];
    } else {
      for (int64_t j = -J; j <= J; ++j) {
        const int64_t m = i + j;
        const double v = m < 0 ? 2.0 * y[0] - y[-m] : m >= n ? 2.0 * y[n - 1] - y[2 * (n - 1) - m] : y[m];
        acc += k[j + J] * v;
      }
    }
    out[i] = acc;
  }
}

}  // namespace

int64_t GaussianSmoother::uniform_kernel(double width, bool derivative, std::vector<double>& kernel) const {
  const int64_t n = static_cast<int64_t>(wl_.size());
  // Same kernel for every point: exp(-(j h / w_eff)^2), j = -J..J, with w_eff chosen so that
  // the DISCRETE kernel has the continuous kernel's variance width^2 / 2. For width >= 2
  // steps w_eff = width; for narrower kernels (small vmac on a coarse grid) the plain sampled
  // Gaussian would smooth far too little, while the variance-matched one reproduces the
  // leading (width^2/4) I'' effect.
  const double target = 0.5 * width * width / (step_ * step_);  // variance in steps^2
  double weff = width / step_;                                  // in steps
  double dweff = 1.0 / step_;                                   // d w_eff / d width
  int64_t J = std::min<int64_t>(n - 1, static_cast<int64_t>(5.0 * weff) + 1);
  if (weff < 2.0) {
    // A sampled Gaussian's variance is exact up to ~30 exp(-pi^2 w^2) relative (Poisson
    // summation): below 2 steps bisect w_eff (on a 25-point kernel) to match it; its
    // derivative follows from variance(w_eff) = target (implicit function).
    J = std::min<int64_t>(n - 1, 12);
    double lo = 1e-3, hi = 3.0;
    for (int it = 0; it < 45; ++it) {
      const double mid = 0.5 * (lo + hi);
      (discrete_variance(mid, J).first < target ? lo : hi) = mid;
    }
    weff = 0.5 * (lo + hi);
    dweff = (width / (step_ * step_)) / discrete_variance(weff, J).second;
  }
  kernel.resize(2 * J + 1);
  double norm = 0.0, dnorm = 0.0;
  for (int64_t j = -J; j <= J; ++j) {
    const double jj = static_cast<double>(j * j);
    norm += (kernel[j + J] = std::exp(-jj / (weff * weff)));
    dnorm += kernel[j + J] * 2.0 * jj / (weff * weff * weff);
  }
  for (int64_t j = -J; j <= J; ++j) {
    const double g = kernel[j + J] / norm;
    // d/d width of the normalised kernel, J held fixed (as between its integer steps)
    const double jj = static_cast<double>(j * j);
    kernel[j + J] = derivative ? g * (2.0 * jj / (weff * weff * weff) - dnorm / norm) * dweff : g;
  }
  return J;
}

void GaussianSmoother::nonuniform(double width, bool derivative, const double* y, double* out) const {
  const int64_t n = static_cast<int64_t>(wl_.size());
  const double inv_w2 = 1.0 / (width * width);
  const double reach = 5.0 * width;  // exp(-25): negligible
  // Trapezoid weights times the Gaussian at the actual offsets, renormalised inside the grid.
  int64_t lo = 0;
  for (int64_t i = 0; i < n; ++i) {
    while (wl_[lo] < wl_[i] - reach) ++lo;
    double acc = 0.0, norm = 0.0, dacc = 0.0, dnorm = 0.0;
    for (int64_t j = lo; j < n && wl_[j] <= wl_[i] + reach; ++j) {
      const double dl = wl_[j] - wl_[i];
      const double left = j > 0 ? wl_[j] - wl_[j - 1] : 0.0;
      const double right = j + 1 < n ? wl_[j + 1] - wl_[j] : 0.0;
      const double w = std::exp(-dl * dl * inv_w2) * 0.5 * (left + right);
      const double dw = w * 2.0 * dl * dl * inv_w2 / width;
      acc += w * y[j];
      norm += w;
      dacc += dw * y[j];
      dnorm += dw;
    }
    out[i] = derivative ? (dacc - acc / norm * dnorm) / norm : acc / norm;
  }
}

void GaussianSmoother::smooth(double width, double* spectra, int n_spectra, std::vector<double>& scratch,
                              std::vector<double>& kernel) const {
  const int64_t n = static_cast<int64_t>(wl_.size());
  if (n < 2 || !(width > 1e-3 * step_)) return;  // negligible: identity
  scratch.resize(n);
  const int64_t J = uniform_ ? uniform_kernel(width, false, kernel) : 0;
  for (int s = 0; s < n_spectra; ++s) {
    double* y = spectra + s * n;
    if (uniform_)
      convolve_reflected(y, n, kernel.data(), J, scratch.data());
    else
      nonuniform(width, false, y, scratch.data());
    std::copy(scratch.begin(), scratch.end(), y);
  }
}

void GaussianSmoother::smooth_dwidth(double width, const double* spectra, int n_spectra, double* out,
                                     std::vector<double>& kernel) const {
  const int64_t n = static_cast<int64_t>(wl_.size());
  if (n < 2 || !(width > 1e-3 * step_)) {  // the identity's neighbourhood: the smoothing is even in width
    std::fill(out, out + n_spectra * n, 0.0);
    return;
  }
  const int64_t J = uniform_ ? uniform_kernel(width, true, kernel) : 0;
  for (int s = 0; s < n_spectra; ++s) {
    if (uniform_)
      convolve_reflected(spectra + s * n, n, kernel.data(), J, out + s * n);
    else
      nonuniform(width, true, spectra + s * n, out + s * n);
  }
}

namespace {
// The normalised Gaussian g[-M..M] into kernel[0..2M], with `extra` more doubles after it; M.
int64_t gaussian_taps(double h, double sigma, int64_t extra, std::vector<double>& kernel) {
  const int64_t M = std::max<int64_t>(1, static_cast<int64_t>(5.0 * sigma / h + 1e-9));
  kernel.resize(static_cast<std::size_t>(2 * M + 1 + extra));
  const double c = -0.5 * h * h / (sigma * sigma);
  double total = 0.0;
  for (int64_t m = -M; m <= M; ++m) total += (kernel[m + M] = std::exp(c * m * m));
  for (int64_t m = 0; m <= 2 * M; ++m) kernel[m] /= total;
  return M;
}
}  // namespace

void gaussian_resample_rows(const double* in, int64_t rows, int64_t n, double h, double sigma, int64_t first,
                            int64_t stride, int64_t n_out, double* out, std::vector<double>& kernel) {
  // the per-ISA kernel, chosen once (the Faddeeva kernel's choice: CPU features, FASTINV_ISA)
  static const detail::ResampleFn fn = detail::select_resample_kernel();
  const int64_t M = gaussian_taps(h, sigma, detail::resample_scratch(n, stride), kernel);
  fn(in, rows, n, kernel.data() + M, M, first, stride, n_out, out, kernel.data() + 2 * M + 1);
}

void detail::gaussian_resample_rows32(const float* in, int64_t rows, int64_t n, double h, double sigma, int64_t first,
                                      int64_t stride, int64_t n_out, double* out, std::vector<double>& kernel) {
  static const detail::Resample32Fn fn = detail::select_resample32_kernel();
  const int64_t M = gaussian_taps(h, sigma, 0, kernel);
  // per thread: MEScratch (public header) holds doubles only; grows on demand like it
  thread_local std::vector<float> f32;
  f32.resize(static_cast<std::size_t>(2 * M + 1 + detail::resample_scratch(n, stride)));
  for (int64_t m = 0; m <= 2 * M; ++m) f32[m] = static_cast<float>(kernel[m]);
  fn(in, rows, n, kernel.data() + M, f32.data() + M, M, first, stride, n_out, out, f32.data() + 2 * M + 1);
}

void gaussian_resample_rows_dsigma(const double* in, int64_t rows, int64_t n, double h, double sigma, int64_t first,
                                   int64_t stride, int64_t n_out, double* out, std::vector<double>& kernel) {
  const int64_t M = std::max<int64_t>(1, static_cast<int64_t>(5.0 * sigma / h + 1e-9));
  kernel.resize(2 * (2 * M + 1));
  double* g = kernel.data() + M;
  double* dg = kernel.data() + (2 * M + 1) + M;
  const double c = -0.5 * h * h / (sigma * sigma), d = h * h / (sigma * sigma * sigma);
  double total = 0.0, dtotal = 0.0;
  for (int64_t m = -M; m <= M; ++m) {
    g[m] = std::exp(c * m * m);
    dg[m] = g[m] * d * static_cast<double>(m * m);
    total += g[m];
    dtotal += dg[m];
  }
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t k = 0; k < n_out; ++k) {
      const int64_t centre = first + k * stride;
      const int64_t lo = std::max<int64_t>(-M, -centre), hi = std::min<int64_t>(M, n - 1 - centre);
      const double* x = in + r * n + centre;
      double acc = 0.0, dacc = 0.0;
#pragma omp simd reduction(+ : acc, dacc)
      for (int64_t m = lo; m <= hi; ++m) {
        acc += g[m] * x[m];
        dacc += dg[m] * x[m];
      }
      double norm = total, dnorm = dtotal;
      if (lo != -M || hi != M) {
        norm = 0.0;
        dnorm = 0.0;
        for (int64_t m = lo; m <= hi; ++m) {
          norm += g[m];
          dnorm += dg[m];
        }
      }
      out[r * n_out + k] = (dacc - acc / norm * dnorm) / norm;
    }
  }
}

void gaussian_resample(const double* in, int64_t n, double h, double sigma, int64_t first, int64_t stride,
                       int64_t n_out, double* out, std::vector<double>& kernel) {
  gaussian_resample_rows(in, 1, n, h, sigma, first, stride, n_out, out, kernel);
}

}  // namespace fastinv::stokes
