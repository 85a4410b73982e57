// A trained network loaded from a fastinv model file (.safetensors written by
// fastinv.export) and run by fastinv's own kernels.
//
//   fastinv::Model model = fastinv::Model::load("deepem.safetensors");
//   std::vector<float> out(n * model.output_size());
//   model.run(input.data(), out.data(), n);   // input: n samples x model.input_size()
#pragma once
#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace fastinv {

// A strided view of a batch of samples. The sample index runs over up to three
// dimensions (e.g. N, H, W of an NCHW image whose pixels are independent samples);
// each sample has one (C) or two (C, L) feature dimensions. Strides are in elements.
struct Strided {
  int sample_ndim = 1;
  std::array<int64_t, 3> sample_shape{0, 1, 1};
  std::array<int64_t, 3> sample_strides{0, 0, 0};
  int feature_ndim = 1;
  std::array<int64_t, 2> feature_shape{0, 1};
  std::array<int64_t, 2> feature_strides{1, 0};

  int64_t samples() const { return sample_shape[0] * sample_shape[1] * sample_shape[2]; }
  // C-contiguous batch of n samples with the given per-sample shape.
  static Strided contiguous(int64_t n, const std::vector<int64_t>& feature_shape);
};

enum class DType { f32, f64 };

struct InputView {
  const void* data = nullptr;
  DType dtype = DType::f32;
  Strided layout;
};

struct OutputView {
  float* data = nullptr;
  Strided layout;
};

struct LayerInfo {
  std::string name;
  std::string op;                     // "conv1d", "linear", "act:<kind>", "maxpool1d", ...
  std::vector<int64_t> output_shape;  // per sample
  int64_t parameters = 0;
  int64_t flops = 0;  // per sample, multiply-add counted as 2
};

struct ModelInfo {
  std::vector<LayerInfo> layers;
  int64_t parameters = 0;
  int64_t flops_per_sample = 0;
  // What the backend really computes per sample: fewer where the CPU runs Winograd
  // convolutions or skips conv positions that a fused max-pool never reads.
  int64_t executed_flops_per_sample = 0;
  std::vector<int64_t> input_shape;   // per sample
  std::vector<int64_t> output_shape;  // per sample
  std::string input_layout;           // "nchw" (per-pixel network), "nc" or "ncl"
  std::string device;
  std::string isa;
};

struct LoadOptions {
  std::string device = "cpu";  // "cpu", "cuda" or "cuda:N"
  // CUDA: "fp32" (exact), "tf32" or "bf16" (tensor cores); CPU: "fp32", "bf16" (AVX512-BF16:
  // bf16 weights and layer inputs, float32 sums; fastinv::Error where the CPU lacks it) or
  // "bf16x2" (CPU only: as bf16, each weight as two bf16 terms hi + lo, twice the products)
  std::string precision = "fp32";
};

class Backend;

class Model {
 public:
  // Read and validate a model file. Throws IoError if it cannot be read and
  // InvalidArgument if its content is malformed in any way.
  static Model load(const std::string& path, const LoadOptions& options = {});
  static Model from_memory(const uint8_t* data, size_t size, const LoadOptions& options = {});

  Model(Model&&) noexcept;
  Model& operator=(Model&&) noexcept;
  ~Model();

  const std::vector<int64_t>& input_shape() const;   // per sample
  const std::vector<int64_t>& output_shape() const;  // per sample
  int64_t input_size() const;                        // product of input_shape
  int64_t output_size() const;
  const std::string& input_layout() const;
  const std::map<std::string, std::string>& metadata() const;  // the file's __metadata__
  ModelInfo info() const;

  // Run on any strided batch. Samples are independent: a NaN in one sample only
  // reaches that sample's outputs. Results are bitwise identical for any thread
  // count. threads <= 0 uses default_threads().
  void run(const InputView& input, const OutputView& output, int threads = 0) const;
  // Contiguous convenience form: n samples of input_size() floats each.
  void run(const float* input, float* output, int64_t n, int threads = 0) const;
  // CUDA models only: input and output are DEVICE memory of the model's device; the
  // work is enqueued on `stream` (a cudaStream_t, 0 = the legacy default stream) and
  // this returns without waiting for it.
  void run_device(const InputView& input, const OutputView& output, std::uintptr_t stream = 0) const;

  struct Impl;  // opaque: defined in model.cpp
  explicit Model(std::unique_ptr<Impl> impl);

 private:
  friend struct ModelAccess;  // fused per-tile transforms for built-in applications (backend.hpp)
  std::unique_ptr<Impl> impl_;
};

}  // namespace fastinv
