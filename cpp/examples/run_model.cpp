// Embedding fastinv in a C++ pipeline: load a model file written by fastinv.export
// and run it on a batch. Usage: run_model MODEL.safetensors N
// Feeds N samples whose every value is 0.5 and prints the first sample's outputs.
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "fastinv/fastinv.hpp"

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s MODEL.safetensors N\n", argv[0]);
    return 2;
  }
  try {
    const fastinv::Model model = fastinv::Model::load(argv[1]);
    const int64_t n = std::atoll(argv[2]);
    std::vector<float> input(size_t(n * model.input_size()), 0.5f);
    std::vector<float> output(size_t(n * model.output_size()));
    model.run(input.data(), output.data(), n);  // all threads, best SIMD kernels
    std::printf("isa %s, %lld samples, %lld outputs each\n", fastinv::isa_name(fastinv::active_isa()),
                static_cast<long long>(n), static_cast<long long>(model.output_size()));
    for (int64_t i = 0; i < model.output_size(); ++i) std::printf("%.9g\n", double(output[size_t(i)]));
  } catch (const fastinv::Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
