// The interface every compute backend (CPU now, CUDA beside it) implements behind
// fastinv::Model. A backend receives a validated graph and validated views.
#pragma once
#include <cstdint>
#include <memory>
#include <string>

#include "fastinv/model.hpp"
#include "graph.hpp"

namespace fastinv {

class Backend {
 public:
  virtual ~Backend() = default;
  virtual void run(const InputView& input, const OutputView& output, int threads) const = 0;
  // Input and output in device memory, work enqueued on `stream` (a cudaStream_t).
  virtual void run_device(const InputView& input, const OutputView& output, std::uintptr_t stream) const;
  virtual std::string device() const = 0;
  virtual std::string isa() const = 0;
};

std::unique_ptr<Backend> make_cpu_backend(std::shared_ptr<const Graph> graph);

namespace gpu {
enum class Precision;
}
// CUDA backend (cpp/src/cuda_backend.cpp, only in builds with FASTINV_HAVE_CUDA). Throws
// fastinv::Error naming the cause when the device cannot be used.
std::unique_ptr<Backend> make_cuda_backend(std::shared_ptr<const Graph> graph, gpu::Precision precision, int ordinal);

}  // namespace fastinv
