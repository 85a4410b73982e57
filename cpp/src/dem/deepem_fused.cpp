#include "fastinv/dem/deepem.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "backend.hpp"
#include "cpu/kernels.hpp"
#include "dem/deepem_refine.hpp"
#include "dem/deepem_errors.hpp"
#include "fastinv/dem/basis_pursuit.hpp"
#include "fastinv/error.hpp"
#include "fastinv/runtime.hpp"

namespace fastinv::dem {
namespace {

constexpr int kChannels = 6;
constexpr int kW = cpu::kTileWidth;

// model[c][j] = sum_t K[c][t] * em[t][j] in float64 over the tile's lanes: the one part of
// the post-processing with real arithmetic (6 x nT MACs per pixel), so it gets SIMD clones.
// The file is compiled with -ffp-contract=off: the same sums on every clone. ThreadSanitizer
// builds get the default clone only: the clones' ifunc resolver would run, instrumented,
// before the TSan runtime has started (a crash at load time).
#ifdef __SANITIZE_THREAD__
#define FASTINV_RESYNTHESIZE_CLONES
#else
#define FASTINV_RESYNTHESIZE_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#endif
FASTINV_RESYNTHESIZE_CLONES void resynthesize(const float* kernel, int64_t n_t, const float (*em)[kW],
                                              float (*model)[kW]) {
  double emd[64][kW];
  for (int64_t t = 0; t < n_t; ++t)
    for (int j = 0; j < kW; ++j) emd[t][j] = double(em[t][j]);
  for (int c = 0; c < kChannels; ++c) {
    double s[kW] = {};
    for (int64_t t = 0; t < n_t; ++t) {
      const double k = kernel[c * n_t + t];
      for (int j = 0; j < kW; ++j) s[j] += k * emd[t][j];
    }
    for (int j = 0; j < kW; ++j) model[c][j] = float(s[j]);
  }
}

class DeepEmHooks final : public TileHooks {
 public:
  DeepEmHooks(const float* kernel, int64_t n_t, const DeepEmInput& in, const DeepEmChi2& chi2, const DeepEmOutput& out,
              const DeepEmRefiner* refine, const DeepEmErrorModel* errors)
      : kernel_(kernel), n_t_(n_t), in_(in), chi2_(chi2), out_(out), refine_(refine), errors_(errors) {}

  // The error bars differentiate through the network's hidden layers: the engine keeps its
  // activations of layers 1 and 2 (graph nodes 1 and 3, DeepEmErrorModel::from_model checked the
  // graph 6 -> H -> H -> nT) for after(); a run without errors keeps nothing.
  std::vector<int> kept_values() const override { return errors_ ? std::vector<int>{1, 3} : std::vector<int>(); }

  // sqrt(max(I, 0)) in float32, as NumPy's maximum + sqrt (NaN stays NaN, -0 stays -0).
  void before(float* tile, int64_t, int) const noexcept override {
    for (int e = 0; e < kChannels * kW; ++e) {
      const float v = tile[e];
      tile[e] = std::sqrt(v < 0.f ? 0.f : v);
    }
  }

  // Lane-parallel loops (SIMD over the tile's 16 pixels; each pixel's arithmetic is in
  // the same order as the scalar formula, so results do not depend on the vector width).
  void after(const float* tile, const float* const* kept, int64_t first, int lanes) const noexcept override {
    const int64_t npix = in_.npix;
    double y[kChannels][kW] = {};
    bool finite[kW];
    for (int j = 0; j < kW; ++j) finite[j] = j < lanes;
    for (int c = 0; c < kChannels; ++c)
      for (int j = 0; j < lanes; ++j) {
        y[c][j] = raw(c, first + j);
        // finiteness of the float32 value the network saw (a float64 1e39 overflows)
        finite[j] = finite[j] && std::isfinite(float(y[c][j]));
      }
    // The data's errors, once per lane for the refinement, the error bars and chi2.
    double sig[kChannels][kW] = {};
    if (chi2_.mode != DeepEmErrors::none)
      for (int j = 0; j < lanes; ++j) {
        double yj[kChannels], sj[kChannels];
        for (int c = 0; c < kChannels; ++c) yj[c] = y[c][j];
        sigma(yj, first + j, sj);
        for (int c = 0; c < kChannels; ++c) sig[c][j] = sj[c];
      }
    alignas(64) float em[64][kW];  // n_t <= 64 is validated
    alignas(64) float total[kW];
    for (int64_t t = 0; t < n_t_; ++t) {
      for (int j = 0; j < kW; ++j) {
        const float o = tile[t * kW + j];
        float v = o * o;  // np.square, then *= float32(1e25): two roundings as there
        v *= 1e25f;
        em[t][j] = finite[j] ? v : 0.f;
        total[j] = t == 0 ? em[t][j] : total[j] + em[t][j];  // em.sum(axis=0): sequential over bins
      }
      std::memcpy(out_.em + t * npix + first, em[t], size_t(lanes) * sizeof(float));
    }
    // Refinement (deepem_refine.cpp): em/total become the refined EM's, NaN where it failed.
    int8_t refined[kW] = {};
    double refined_tolfac[kW];
    if (refine_) {
      refine_->tile(y, sig, first, lanes, em, total, refined, refined_tolfac);
      for (int64_t t = 0; t < n_t_; ++t) std::memcpy(out_.em + t * npix + first, em[t], size_t(lanes) * sizeof(float));
    }
    alignas(64) float model[kChannels][kW];
    resynthesize(kernel_, n_t_, em, model);
    // An input near float32's limit squares to inf: such a pixel is a failure, not "ok".
    bool overflow[kW];
    for (int j = 0; j < kW; ++j) overflow[j] = !std::isfinite(total[j]);
    for (int c = 0; c < kChannels; ++c)
      for (int j = 0; j < kW; ++j) overflow[j] = overflow[j] || !std::isfinite(model[c][j]);
    constexpr float fnan = std::numeric_limits<float>::quiet_NaN();
    for (int j = 0; j < lanes; ++j) {
      out_.objective[first + j] = overflow[j] ? fnan : total[j] / 1e26f;
      out_.status[first + j] = static_cast<int8_t>(!finite[j]        ? BpStatus::bad_input
                                                   : refined[j] != 0 ? BpStatus(refined[j])
                                                   : overflow[j]     ? BpStatus::overflow
                                                                     : BpStatus::ok);
      if (out_.tolfac) out_.tolfac[first + j] = refine_ ? refined_tolfac[j] : std::numeric_limits<double>::quiet_NaN();
      if (overflow[j]) {
        for (int64_t t = 0; t < n_t_; ++t) out_.em[t * npix + first + j] = fnan;
        for (int c = 0; c < kChannels; ++c) model[c][j] = fnan;
      }
    }
    for (int c = 0; c < kChannels; ++c)
      std::memcpy(out_.model + c * npix + first, model[c], size_t(lanes) * sizeof(float));
    if (errors_) {  // NaN errors where the refinement failed, as for its other products
      bool usable[kW];
      for (int j = 0; j < kW; ++j) usable[j] = finite[j] && refined[j] == 0;
      tile_errors(tile, kept[0], kept[1], y, sig, em, usable, overflow, first, lanes);
    }
    if (chi2_.mode == DeepEmErrors::none) {
      for (int j = 0; j < lanes; ++j) out_.chi2[first + j] = std::numeric_limits<double>::quiet_NaN();
      return;
    }
    for (int j = 0; j < lanes; ++j) {
      if (overflow[j]) {
        out_.chi2[first + j] = std::numeric_limits<double>::quiet_NaN();
        continue;
      }
      double yj[kChannels], sj[kChannels];
      float mj[kChannels];
      for (int c = 0; c < kChannels; ++c) {
        yj[c] = y[c][j];
        sj[c] = sig[c][j];
        mj[c] = model[c][j];
      }
      out_.chi2[first + j] = finite[j] ? chi2(yj, sj, mj) : std::numeric_limits<double>::quiet_NaN();
    }
  }

 private:
  double raw(int c, int64_t p) const {
    const int64_t off = c * in_.stride_channel + p * in_.stride_pixel;
    return in_.dtype == DType::f32 ? double(static_cast<const float*>(in_.data)[off])
                                   : static_cast<const double*>(in_.data)[off];
  }

  void tile_errors(const float* tile, const float* a1, const float* a2, const double (*y)[kW], const double (*sig)[kW],
                   const float (*em)[kW], const bool* finite, const bool* overflow, int64_t first,
                   int lanes) const noexcept {
    bool ok[kW];
    for (int j = 0; j < kW; ++j) ok[j] = finite[j] && !overflow[j];
    deepem_tile_errors(*errors_, y, sig, tile, a1, a2, em, ok, lanes, first, in_.npix, out_);
  }

  // The data's 1-sigma errors (DN/s): given, or the AIA error model of max(y, 0).
  void sigma(const double* y, int64_t p, double* sig) const noexcept {
    if (chi2_.mode == DeepEmErrors::sigma) {
      for (int c = 0; c < kChannels; ++c)
        sig[c] = chi2_.sigma[c * chi2_.sigma_stride_channel + p * chi2_.sigma_stride_pixel];
    } else {
      double counts[kChannels];
      for (int c = 0; c < kChannels; ++c) counts[c] = std::max(y[c], 0.0) * chi2_.exptime[c];
      aia_bp_error(counts, 1, chi2_.n_sample, sig);  // n_sample validated: cannot throw
      for (int c = 0; c < kChannels; ++c) sig[c] /= chi2_.exptime[c];
    }
  }

  // sum over channels of ((model - max(y, 0)) / sigma)^2, the NumPy path's float64 formula.
  static double chi2(const double* y, const double* sig, const float* model) {
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
  const DeepEmRefiner* refine_;  // null: no refinement
  const DeepEmErrorModel* errors_;
};

}  // namespace

void deepem_invert(const Model& model, const float* kernel, int64_t n_t, const DeepEmInput& input,
                   const DeepEmChi2& chi2, const DeepEmOutput& output, int threads, const DeepEmRefine& refine,
                   const DeepEmErrorModel* errors) {
  threads = resolve_threads(threads, input.npix, "DeepEM");
  if (model.input_layout() != "nchw" || model.input_shape() != std::vector<int64_t>{kChannels})
    throw InvalidArgument("DeepEM needs a per-pixel network with 6 inputs (the AIA channels 94..335)");
  if (model.output_shape() != std::vector<int64_t>{n_t})
    throw InvalidArgument("DeepEM: the network has " + std::to_string(model.output_size()) +
                          " outputs but the response has " + std::to_string(n_t) + " temperature bins");
  if (n_t < 1 || n_t > 64) throw InvalidArgument("DeepEM: 1 to 64 temperature bins");
  if (!kernel) throw InvalidArgument("DeepEM: null response");
  if (input.npix < 0) throw InvalidArgument("DeepEM: negative pixel count");
  if (input.npix == 0) return;
  if (!input.data || !output.em || !output.model || !output.status || !output.chi2 || !output.objective)
    throw InvalidArgument("DeepEM: null array");
  if (chi2.mode == DeepEmErrors::sigma && !chi2.sigma) throw InvalidArgument("DeepEM: null sigma");
  if (errors) {
    if (chi2.mode == DeepEmErrors::none)
      throw InvalidArgument("DeepEM errors need the data's noise: give sigma or the exposure times (AIA error model)");
    if (!output.em_err || !output.logt_err || !output.total_em_err)
      throw InvalidArgument("DeepEM errors: null em_err, logt_err or total_em_err");
    if (errors->n_t != n_t) throw InvalidArgument("DeepEM errors: the error model has another number of bins");
    // the hooks read the engine's hidden activations as graph nodes 1 and 3
    const Graph& g = ModelAccess::graph(model);
    if (g.nodes.size() != 5 || g.nodes[1].op != OpKind::act || g.nodes[3].op != OpKind::act ||
        g.nodes[1].shape.c != errors->n_h1 || g.nodes[3].shape.c != errors->n_h2)
      throw InvalidArgument("DeepEM errors: the error model was made for a network of another shape");
  }
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
  std::optional<DeepEmRefiner> refiner;
  if (refine.enabled) refiner.emplace(kernel, n_t, chi2, refine);
  const DeepEmHooks hooks(kernel, n_t, input, chi2, output, refiner ? &*refiner : nullptr, errors);
  ModelAccess::run_fused(model, view, hooks, threads);
}

}  // namespace fastinv::dem
