// The interface every compute backend (CPU now, CUDA beside it) implements behind
// fastinv::Model. A backend receives a validated graph and validated views.
#pragma once
#include <memory>
#include <string>

#include "fastinv/model.hpp"
#include "graph.hpp"

namespace fastinv {

class Backend {
 public:
  virtual ~Backend() = default;
  virtual void run(const InputView& input, const OutputView& output, int threads) const = 0;
  virtual std::string device() const = 0;
  virtual std::string isa() const = 0;
};

std::unique_ptr<Backend> make_cpu_backend(std::shared_ptr<const Graph> graph);

}  // namespace fastinv
