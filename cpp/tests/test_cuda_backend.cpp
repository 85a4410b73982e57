// The CUDA backend's host code (cuda/host/cuda_backend.cpp) run against the CPU mock of
// the CUDA runtime and kernels (cuda_mock.cpp), compared with the CPU backend on the
// same graph. Usage: test_cuda_backend <model.safetensors>... (written by
// tests/test_cpp_native.py from random architectures and DeepEM). Exercises: chunking
// over the three lanes (run with FASTINV_CUDA_CHUNK small), float64 input, strided
// host views, device-array views (contiguous, strided, and planar for the zero-copy
// fused path), outputs poisoned with NaN. GoogleTest.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "backend.hpp"
#include "fastinv/error.hpp"
#include "fastinv/model.hpp"
#include "host/pack.hpp"
#include "graph.hpp"
#include "safetensors.hpp"

namespace fastinv::cuda::mock {  // counters of cpp/tests/cuda_mock.cpp
int64_t launch_count();
int64_t stream_allocation_count();
}  // namespace fastinv::cuda::mock

namespace {

namespace mock = fastinv::cuda::mock;
using fastinv::DType;
using fastinv::InputView;
using fastinv::OutputView;
using fastinv::Strided;

std::vector<std::string> model_paths;  // from the command line, after GoogleTest's own flags

// A (C, L) sample layout with sample stride `sstride` and feature strides (fs0, fs1).
Strided view(int64_t n, const fastinv::Shape& s, int64_t sstride, int64_t fs0, int64_t fs1) {
  Strided v;
  v.sample_ndim = 1;
  v.sample_shape = {n, 1, 1};
  v.sample_strides = {sstride, 0, 0};
  v.feature_ndim = s.rank;
  v.feature_shape = {s.c, s.rank == 2 ? s.l : 1};
  v.feature_strides = {fs0, s.rank == 2 ? fs1 : 0};
  return v;
}

double rel_l2(const std::vector<float>& got, const std::vector<float>& ref, bool& finite) {
  double num = 0, den = 0;
  finite = true;
  for (size_t i = 0; i < ref.size(); ++i) {
    if (!std::isfinite(got[i])) finite = false;
    num += (double(got[i]) - ref[i]) * (double(got[i]) - ref[i]);
    den += double(ref[i]) * ref[i];
  }
  return den > 0 ? std::sqrt(num / den) : std::sqrt(num);
}

void run_model(const std::string& path) {
  auto graph = std::make_shared<const fastinv::Graph>(fastinv::parse_graph(fastinv::SafeTensors::read_file(path)));
  const fastinv::Shape in = graph->input, out = graph->shape_of(graph->output);
  const int64_t n = 301, isz = in.size(), osz = out.size();
  std::mt19937 rng(12345);
  std::normal_distribution<float> normal;
  std::vector<float> x(size_t(n * isz));
  for (float& v : x) v = normal(rng);
  // reference: the CPU backend (tested against torch in test_parity)
  auto cpu = fastinv::make_cpu_backend(graph);
  std::vector<float> ref(size_t(n * osz));
  const Strided cin = view(n, in, isz, in.l, 1), cout = view(n, out, osz, out.l, 1);
  cpu->run(InputView{x.data(), DType::f32, cin}, OutputView{ref.data(), cout}, 1);
  const auto layers = std::count_if(graph->nodes.begin(), graph->nodes.end(),
                                    [](const fastinv::Node& node) { return node.op == fastinv::OpKind::conv; });

  for (const char* pname : {"fp32", "tf32", "bf16"}) {
    const fastinv::cuda::Precision p = fastinv::cuda::precision_from_name(pname);
    // the error model of tests/_rounding.py (rounding_vs_exact x FACTOR 4): operand rounding
    // of unit u in each of the network's `layers` products, relative L2 4 u sqrt(2 layers / 3)
    const double u = p == fastinv::cuda::Precision::tf32 ? std::ldexp(1.0, -11) : std::ldexp(1.0, -8);
    const double tol = p == fastinv::cuda::Precision::fp32 ? 1e-5 : 4.0 * u * std::sqrt(2.0 * layers / 3.0);
    const std::string tag = path + " [" + pname + "]";
    std::unique_ptr<fastinv::Backend> gpu;
    try {
      gpu = fastinv::make_cuda_backend(graph, p, 0);
    } catch (const std::exception& e) {
      EXPECT_TRUE(false) << tag + ": backend construction threw " + e.what();
      continue;
    }
    auto compare = [&](const std::vector<float>& got, const std::string& what) {
      bool finite = false;
      const double err = rel_l2(got, ref, finite);
      EXPECT_TRUE(finite && err <= tol) << tag + " " + gpu->isa() + " " + what + ": rel L2 " + std::to_string(err) +
                                               (finite ? "" : " (non-finite: an element was not written)");
    };
    auto poisoned = [&](size_t size) { return std::vector<float>(size, std::nanf("")); };

    {  // host, contiguous float32
      std::vector<float> y = poisoned(ref.size());
      gpu->run(InputView{x.data(), DType::f32, cin}, OutputView{y.data(), cout}, 2);
      compare(y, "host f32 contiguous");
    }
    {  // host, float64
      std::vector<double> x64(x.begin(), x.end());
      std::vector<float> y = poisoned(ref.size());
      gpu->run(InputView{x64.data(), DType::f64, cin}, OutputView{y.data(), cout}, 1);
      compare(y, "host f64");
    }
    {  // host, strided: every other sample slot, features transposed ([l][c]) in and out
      std::vector<float> xs(size_t(2 * n * isz), std::nanf(""));
      for (int64_t s = 0; s < n; ++s)
        for (int64_t c = 0; c < in.c; ++c)
          for (int64_t l = 0; l < in.l; ++l) xs[size_t(2 * s * isz + l * in.c + c)] = x[size_t(s * isz + c * in.l + l)];
      std::vector<float> ys = poisoned(size_t(2 * n * osz)), y(ref.size());
      gpu->run(InputView{xs.data(), DType::f32, view(n, in, 2 * isz, 1, in.c)},
               OutputView{ys.data(), view(n, out, 2 * osz, 1, out.c)}, 2);
      for (int64_t s = 0; s < n; ++s)
        for (int64_t c = 0; c < out.c; ++c)
          for (int64_t l = 0; l < out.l; ++l)
            y[size_t(s * osz + c * out.l + l)] = ys[size_t(2 * s * osz + l * out.c + c)];
      compare(y, "host strided");
    }
    {  // device arrays (host memory in the mock), contiguous
      std::vector<float> y = poisoned(ref.size());
      gpu->run_device(InputView{x.data(), DType::f32, cin}, OutputView{y.data(), cout}, 0);
      compare(y, "device contiguous");
    }
    if (in.l == 1 && out.l == 1) {  // device planar (C, n) in and out: the fused path reads/writes in place
      std::vector<float> xp(size_t(n * isz)), yp = poisoned(ref.size()), y(ref.size());
      for (int64_t s = 0; s < n; ++s)
        for (int64_t c = 0; c < isz; ++c) xp[size_t(c * n + s)] = x[size_t(s * isz + c)];
      const int64_t launches0 = mock::launch_count(), allocs0 = mock::stream_allocation_count();
      gpu->run_device(InputView{xp.data(), DType::f32, view(n, in, 1, n, 0)},
                      OutputView{yp.data(), view(n, out, 1, n, 0)}, 0);
      if (gpu->isa().find("fused") != std::string::npos)  // one launch on the caller's planes, no scratch
        EXPECT_TRUE(mock::launch_count() - launches0 == 1 && mock::stream_allocation_count() == allocs0)
            << "device planar fused: " + std::to_string(mock::launch_count() - launches0) + " launches, " +
                   std::to_string(mock::stream_allocation_count() - allocs0) + " scratch allocations";
      for (int64_t s = 0; s < n; ++s)
        for (int64_t c = 0; c < osz; ++c) y[size_t(s * osz + c)] = yp[size_t(c * n + s)];
      compare(y, "device planar");
    }
  }
}

TEST(CudaBackendHost, MatchesTheCpuBackendOnEveryModel) {
  ASSERT_FALSE(model_paths.empty()) << "usage: test_cuda_backend [gtest flags] model.safetensors...";
  for (const std::string& path : model_paths) {
    SCOPED_TRACE(path);
    run_model(path);
  }
}

}  // namespace

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  model_paths.assign(argv + 1, argv + argc);
  return RUN_ALL_TESTS();
}
