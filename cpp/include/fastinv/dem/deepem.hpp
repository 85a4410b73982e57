// DeepEM (Wright et al. 2018) on fastinv's engine, with its pre/post-processing fused into the engine's tile loop:
// input transform sqrt(max(I, 0)), EM = 1e25 y^2 (0 where an input is not finite),
// re-synthesis K.EM, total EM, status and chi2 are computed per 16-pixel tile while the
// tile is in cache, instead of in several NumPy passes over 18 x npix arrays. A pixel whose
// EM, total EM or re-synthesis overflows float32 gets BpStatus::overflow and NaN products. The
// arithmetic is that of the NumPy path in python/fastinv/dem/deepem.py (float32 EM, float64
// chi2), so the EM, status and total EM are bitwise equal to it.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "fastinv/dem/basis_pursuit.hpp"
#include "fastinv/model.hpp"

namespace fastinv::dem {

struct DeepEmInput {
  const void* data = nullptr;  // (6, npix) DN/s, channels 94..335
  DType dtype = DType::f32;
  int64_t npix = 0;
  int64_t stride_channel = 0, stride_pixel = 0;  // elements
};

// How chi2 is formed: not at all (NaN), from given sigma, or from the AIA error model.
enum class DeepEmErrors { none, sigma, aia };

struct DeepEmChi2 {
  DeepEmErrors mode = DeepEmErrors::none;
  const double* sigma = nullptr;  // (6, npix) DN/s, any strides (0 broadcasts)
  int64_t sigma_stride_channel = 0, sigma_stride_pixel = 0;
  double exptime[6] = {0, 0, 0, 0, 0, 0};  // s, for the AIA error model
  double n_sample = 1.0;                   // summed pixels, for the AIA error model
};

struct DeepEmOutput {          // all C-contiguous, npix innermost
  float* em = nullptr;         // (nT, npix) cm^-5
  float* model = nullptr;      // (6, npix) DN/s
  int8_t* status = nullptr;    // (npix) BpStatus: ok, bad_input (non-finite input) or overflow
  double* chi2 = nullptr;      // (npix)
  float* objective = nullptr;  // (npix) total EM / 1e26
  double* tolfac = nullptr;    // (npix) NaN (DeepEM has no tolerance; BPResult's field); may be null
  // Calibrated 1-sigma errors (deepem_invert with a DeepEmErrorModel); all three or none.
  float* em_err = nullptr;        // (nT, npix) cm^-5
  float* logt_err = nullptr;      // (npix) dex, of the EM-weighted log T
  float* total_em_err = nullptr;  // (npix) cm^-5
};

// 1-sigma errors of DeepEM's EM per bin, EM-weighted log T and total EM (deepem_errors.cpp):
// the data's noise (the chi2 sigma: given, or the AIA error model) propagated through the
// network by its Jacobian (exact forward-mode through the three layers, per pixel), added in
// quadrature to the network's own error, which the model card's "errors" section tabulates
// from held-out synthetic DEMs with known truth (fastinv.train.deepem_errors).
struct DeepEmErrorsBf16;   // deepem_errors.hpp
struct DeepEmErrorsDelta;  // deepem_errors.hpp
// How the Jacobian is formed. fp32: in float32, from the card's reference patterns
// (errors.reference_inputs, deepem_errors_delta.cpp) where the card has them, else the dense
// chain; bf16: in bfloat16 on the AMX-BF16 / AVX512-BF16 kernels where the CPU has them
// (sigma within ~1 %), else as fp32; automatic: fp32 where the card has reference inputs
// (exact, and faster than bf16 where measured: AVX512-BF16 without AMX), else bf16
// (docs/deepem-errors.md).
enum class DeepEmErrorsPrecision { automatic, fp32, bf16 };
struct DeepEmErrorModel {
  // The network (dense 6 -> H1 -> H2 -> nT, LeakyReLU), weights row-major [out][in].
  int64_t n_h1 = 0, n_h2 = 0, n_t = 0;
  float slope1 = 0.f, slope2 = 0.f;
  std::vector<float> w1, b1, w2, b2, w3;
  std::vector<double> logt;  // bin centres
  // The model's own error. Cells: interior edges of log10(total EM / cm^-5) x EM-weighted log T
  // (row-major [total cell][log T cell]); per bin, interior edges of log10(EM_t / cm^-5).
  std::vector<double> total_edges, logt_edges, em_edges;
  std::vector<double> logt_sigma;       // dex
  std::vector<double> total_rel_sigma;  // fraction of the total EM
  std::vector<double> em_sigma;         // [bin][EM cell] cm^-5
  // For the per-bin lookup in float32 vectors, derived from the two above: the least float >=
  // 10^edge (a float EM x is >= it exactly when x >= 10^edge), and (float(em_sigma / 1e25))^2.
  std::vector<float> em_edge_floats, em_var;

  // The network's weights and the card's "errors" section. Throws InvalidArgument for a
  // network of another shape or a card without (or with a malformed) "errors" section.
  static DeepEmErrorModel from_model(const Model& model, const std::vector<double>& logt,
                                     DeepEmErrorsPrecision precision = DeepEmErrorsPrecision::fp32);
  std::shared_ptr<const DeepEmErrorsBf16> bf16;    // the packed bf16 weights; null: float32
  std::shared_ptr<const DeepEmErrorsDelta> delta;  // float32 from reference patterns; null: dense
};

// Refinement of the network's EM so that it fits the data (deepem_refine.cpp). Per pixel, the
// EM on the network's own grid closest to the network's EM n in the weighted L1 distance
//     sum_t w_t |EM_t - n_t|,   w_t = 1 / (n_t + floor * max_s n_s)   (uniform if n = 0),
// subject to Basis Pursuit's constraints max(y - tolfac sigma, 0) <= K EM <= y + tolfac sigma,
// EM >= 0, with BP's adaptive tolfac (the first of `tolfacs` that is feasible) and sigma from
// DeepEmChi2 (given, or the AIA error model: BP's). An LP in split variables EM = n + p - q,
// 0 <= q <= n, solved by BP's dual simplex started at p = q = 0, i.e. at the network's EM (a
// pixel the network already fits keeps its EM bitwise). A pixel with no such EM at any tolfac
// gets BpStatus::refine_infeasible; no_counts (sum max(y, 0) < min_total), not_converged and
// bad_input (NaN/inf y or sigma, sigma < 0) as BP; every pixel that is not ok has NaN products.
// Each pixel is solved from scratch: bitwise identical for any thread count.
struct DeepEmRefine {
  bool enabled = false;
  std::vector<double> tolfacs{1.4, 2.1, 3.15};  // BP's adaptive tolfac (AiaBpConfig)
  double floor = 0.01;                          // weight floor, relative to the largest bin
  double min_total = 0.01;                      // DN/s, BP's
  int max_iterations = 400;
  int32_t* iterations = nullptr;  // optional output (npix): simplex iterations over all tolfacs
};

// kernel: (6, nT) float32 response, row-major. Validates everything (InvalidArgument) before
// any work; the run itself cannot throw. Bitwise identical for any thread count. With
// refine.enabled (needs chi2 errors: sigma or the AIA model), em/model/chi2/objective are the
// refined EM's and tolfac the one that was used.
// errors: fill output.em_err/logt_err/total_em_err (needs chi2.mode sigma or aia: the data's
// noise); NaN wherever the status is not ok. With refinement too, they are the network's
// errors (its Jacobian) with the model-error cells looked up at the refined EM.
void deepem_invert(const Model& model, const float* kernel, int64_t n_t, const DeepEmInput& input,
                   const DeepEmChi2& chi2, const DeepEmOutput& output, int threads, const DeepEmRefine& refine = {},
                   const DeepEmErrorModel* errors = nullptr);

// The refinement alone, for an EM from elsewhere (a GPU run of the network, tests): em
// (nT, npix) float32 C-contiguous, overwritten with the refined EM (NaN where status != ok);
// status (npix) BpStatus, tolfac (npix), refine.iterations optional. y and errors as for
// deepem_invert (errors.mode must not be none). Bitwise equal to deepem_invert's refinement.
void deepem_refine(const float* kernel, int64_t n_t, const DeepEmInput& y, const DeepEmChi2& errors,
                   const DeepEmRefine& refine, float* em, int8_t* status, double* tolfac, int threads);

// A DeepEM model with its card's normalisation and response: the application python's
// fastinv.dem.DeepEM is (CPU models), for C++ and C programs. Immutable once loaded: any
// number of threads may call invert() at once, each with its own buffers.
//
//   const auto deepem = fastinv::dem::DeepEm::load();          // the default shipped model
//   deepem.invert({y, DType::f64, npix, npix, 1}, {}, out);    // y: (6, npix)
class DeepEm {
 public:
  // path "": the default shipped model, "deepem21" (as Python's DeepEM.load()); "deepem18" or
  // "deepem21": that shipped model (data_dir()); else a file. Throws IoError / InvalidArgument
  // for a missing file, a model that is not DeepEM (card transforms, 6 -> nT per-pixel
  // network) or a response table the card names that cannot be loaded.
  static DeepEm load(const std::string& path = "", const LoadOptions& options = {});
  // The file of a shipped model by name ("" the default, "deepem21"; "deepem18").
  static std::string shipped_path(const std::string& name = "");
  explicit DeepEm(Model model);

  const Model& model() const { return model_; }
  int64_t n_bins() const { return int64_t(logt_.size()); }
  const std::vector<double>& logt() const { return logt_; }     // bin centres, log10 K
  const std::vector<float>& kernel() const { return kernel_; }  // (6, n_bins) response on logt
  const std::string& response_name() const { return response_; }
  // The card's calibrated errors, or null when the card has no "errors" section.
  const DeepEmErrorModel* errors() const { return errors_.get(); }

  // EM (n_bins, npix) in cm^-5, re-synthesis, status, chi2, total EM: see deepem_invert; the
  // errors too when output.em_err is set (InvalidArgument if the card has none).
  void invert(const DeepEmInput& input, const DeepEmChi2& chi2, const DeepEmOutput& output, int threads = 0,
              const DeepEmRefine& refine = {}) const;

 private:
  Model model_;
  std::vector<double> logt_;
  std::vector<float> kernel_;
  std::string response_;
  std::shared_ptr<const DeepEmErrorModel> errors_;
};

}  // namespace fastinv::dem
