#include "dem/deepem_fused.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "backend.hpp"
#include "cpu/kernels.hpp"
#include "fastinv/basis_pursuit.hpp"
#include "fastinv/error.hpp"

namespace fastinv::dem {
namespace {

constexpr int kChannels = 6;
constexpr int kW = cpu::kTileWidth;

class DeepEmHooks final : public TileHooks {
 public:
  DeepEmHooks(const float* kernel, int64_t n_t, const DeepEmInput& in, const DeepEmChi2& chi2,
              const DeepEmOutput& out)
      : kernel_(kernel), n_t_(n_t), in_(in), chi2_(chi2), out_(out) {}

  // sqrt(max(I, 0)) in float32, as NumPy's maximum + sqrt (NaN stays NaN, -0 stays -0).
  void before(float* tile, int64_t, int) const noexcept override {
    for (int e = 0; e < kChannels * kW; ++e) {
      const float v = tile[e];
      tile[e] = std::sqrt(v < 0.f ? 0.f : v);
    }
  }

  void after(const float* tile, int64_t first, int lanes) const noexcept override {
    const int64_t npix = in_.npix;
    for (int j = 0; j < lanes; ++j) {
      const int64_t p = first + j;
      double y[kChannels];
      bool finite = true;
      for (int c = 0; c < kChannels; ++c) {
        y[c] = raw(c, p);
        // finiteness of the float32 value the network saw (a float64 1e39 overflows)
        finite = finite && std::isfinite(float(y[c]));
      }
      float em[64];  // n_t <= 64 is validated
      float total = 0.f;
      for (int64_t t = 0; t < n_t_; ++t) {
        const float o = tile[t * kW + j];
        float v = o * o;       // np.square, then *= float32(1e25): two roundings as there
        v *= 1e25f;
        em[t] = finite ? v : 0.f;
        total = t == 0 ? em[t] : total + em[t];  // em.sum(axis=0): sequential over bins
        out_.em[t * npix + p] = em[t];
      }
      out_.objective[p] = total / 1e26f;
      out_.status[p] = finite ? kDeepEmOk : kDeepEmBadInput;
      float model[kChannels];
      for (int c = 0; c < kChannels; ++c) {
        double s = 0.0;
        for (int64_t t = 0; t < n_t_; ++t) s += double(kernel_[c * n_t_ + t]) * double(em[t]);
        model[c] = float(s);
        out_.model[c * npix + p] = model[c];
      }
      out_.chi2[p] = finite ? chi2(y, model, p) : std::numeric_limits<double>::quiet_NaN();
      out_.tolfac[p] = std::numeric_limits<double>::quiet_NaN();
    }
  }

 private:
  double raw(int c, int64_t p) const {
    const int64_t off = c * in_.stride_channel + p * in_.stride_pixel;
    return in_.dtype == DType::f32 ? double(static_cast<const float*>(in_.data)[off])
                                   : static_cast<const double*>(in_.data)[off];
  }

  // sum over channels of ((model - max(y, 0)) / sigma)^2, the NumPy path's float64 formula.
  double chi2(const double* y, const float* model, int64_t p) const {
    if (chi2_.mode == DeepEmErrors::none) return std::numeric_limits<double>::quiet_NaN();
    double sig[kChannels];
    if (chi2_.mode == DeepEmErrors::sigma) {
      for (int c = 0; c < kChannels; ++c)
        sig[c] = chi2_.sigma[c * chi2_.sigma_stride_channel + p * chi2_.sigma_stride_pixel];
    } else {
      double counts[kChannels];
      for (int c = 0; c < kChannels; ++c) counts[c] = std::max(y[c], 0.0) * chi2_.exptime[c];
      aia_bp_error(counts, 1, chi2_.n_sample, sig);  // n_sample validated: cannot throw
      for (int c = 0; c < kChannels; ++c) sig[c] /= chi2_.exptime[c];
    }
    double s = 0.0;
    for (int c = 0; c < kChannels; ++c) {
      const double r = (double(model[c]) - std::max(y[c], 0.0)) / sig[c];
      s = c == 0 ? r * r : s + r * r;
    }
    return s;
  }

  const float* kernel_;
  int64_t n_t_;
  DeepEmInput in_;
  DeepEmChi2 chi2_;
  DeepEmOutput out_;
};

}  // namespace

void deepem_invert(const Model& model, const float* kernel, int64_t n_t, const DeepEmInput& input,
                   const DeepEmChi2& chi2, const DeepEmOutput& output, int threads) {
  if (model.input_layout() != "nchw" || model.input_shape() != std::vector<int64_t>{kChannels})
    throw InvalidArgument("DeepEM needs a per-pixel network with 6 inputs (the AIA channels 94..335)");
  if (model.output_shape() != std::vector<int64_t>{n_t})
    throw InvalidArgument("DeepEM: the network has " + std::to_string(model.output_size()) +
                          " outputs but the response has " + std::to_string(n_t) + " temperature bins");
  if (n_t < 1 || n_t > 64) throw InvalidArgument("DeepEM: 1 to 64 temperature bins");
  if (!kernel) throw InvalidArgument("DeepEM: null response");
  if (input.npix < 0) throw InvalidArgument("DeepEM: negative pixel count");
  if (input.npix == 0) return;
  if (!input.data || !output.em || !output.model || !output.status || !output.chi2 || !output.objective ||
      !output.tolfac)
    throw InvalidArgument("DeepEM: null array");
  if (chi2.mode == DeepEmErrors::sigma && !chi2.sigma) throw InvalidArgument("DeepEM: null sigma");
  if (chi2.mode == DeepEmErrors::aia) {
    if (!std::isfinite(chi2.n_sample) || chi2.n_sample < 1.0)
      throw InvalidArgument("n_sample must be >= 1 (number of summed pixels)");
    for (double t : chi2.exptime)
      if (!std::isfinite(t) || t <= 0.0) throw InvalidArgument("exptime must be finite and > 0 s in every channel");
  }
  InputView view;
  view.data = input.data;
  view.dtype = input.dtype;
  view.layout.sample_ndim = 1;
  view.layout.sample_shape = {input.npix, 1, 1};
  view.layout.sample_strides = {input.stride_pixel, 0, 0};
  view.layout.feature_ndim = 1;
  view.layout.feature_shape = {kChannels, 1};
  view.layout.feature_strides = {input.stride_channel, 0};
  const DeepEmHooks hooks(kernel, n_t, input, chi2, output);
  ModelAccess::run_fused(model, view, hooks, threads);
}

}  // namespace fastinv::dem
