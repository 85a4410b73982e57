// The interface every compute backend (CPU now, CUDA beside it) implements behind
// fastinv::Model. A backend receives a validated graph and validated views.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "fastinv/model.hpp"
#include "graph.hpp"

namespace fastinv {

// Per-tile transforms fused into a CPU run, so an application's pre- and post-processing
// (DeepEM's input normalisation, EM scaling, re-synthesis) happens while the tile is in
// cache instead of in extra passes over full-frame arrays. Tiles are the backend's
// position-major rows of cpu::kTileWidth lanes; `first` is the tile's first sample and
// only `lanes` lanes are real. Both are called on the thread that runs the tile, so
// they must be thread-safe and must not throw (validate everything beforehand).
struct TileHooks {
  virtual ~TileHooks() = default;
  // Graph values (node indices, at most cpu::kMaxKept) whose tiles after() also receives, e.g.
  // the hidden activations DeepEM's error bars differentiate through. The backend keeps their
  // buffers alive to the end of the tile; empty (the default): the plain plan, nothing kept.
  virtual std::vector<int> kept_values() const { return {}; }
  virtual void before(float* input_tile, int64_t first, int lanes) const noexcept = 0;
  // Replaces the scatter into an output array. kept[i]: the tile of kept_values()[i].
  virtual void after(const float* output_tile, const float* const* kept, int64_t first, int lanes) const noexcept = 0;
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual void run(const InputView& input, const OutputView& output, int threads) const = 0;
  // CPU only (the default throws): run with fused per-tile transforms and no output array.
  virtual void run_fused(const InputView& input, const TileHooks& hooks, int threads) const;
  // Input and output in device memory, work enqueued on `stream` (a cudaStream_t).
  virtual void run_device(const InputView& input, const OutputView& output, std::uintptr_t stream) const;
  virtual std::string device() const = 0;
  virtual std::string isa() const = 0;
  // FLOPs per sample the backend's algorithms avoid against the layers as written.
  virtual int64_t flops_saved_per_sample() const { return 0; }
};

// Internal access to a Model's backend and graph-checked fused runs (model.cpp).
struct ModelAccess {
  // Validates `input` against the model and runs it with `hooks` (CPU models only).
  static void run_fused(const Model& model, const InputView& input, const TileHooks& hooks, int threads);
  // The validated graph (its weights), for applications that differentiate the network.
  static const Graph& graph(const Model& model);
};

// bf16_terms 1 (precision "bf16") or 2 ("bf16x2"): the AVX512-BF16 kernels with one or two
// bf16 terms per weight (cpu/kernels_bf16.hpp); throws fastinv::Error where the CPU or
// build lacks them. 0: float32.
std::unique_ptr<Backend> make_cpu_backend(std::shared_ptr<const Graph> graph, int bf16_terms = 0);

namespace cuda {
enum class Precision;
}
// CUDA backend (cuda/host/cuda_backend.cpp, only in builds with FASTINV_HAVE_CUDA). Throws
// fastinv::Error naming the cause when the device cannot be used.
std::unique_ptr<Backend> make_cuda_backend(std::shared_ptr<const Graph> graph, cuda::Precision precision, int ordinal);

}  // namespace fastinv
