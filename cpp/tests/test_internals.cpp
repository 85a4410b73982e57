// C++ tests of internal helpers that the public API cannot reach. Run under ASan + UBSan in
// CI (tests/test_cpp_native.py runs them through ctest). GoogleTest.
#include <atomic>
#include <cmath>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "backend.hpp"
#include "check.hpp"
#include "cpu/cpu_plan.hpp"
#include "fastinv/error.hpp"
#include "fastinv/runtime.hpp"
#include "graph.hpp"
#include "parallel_errors.hpp"
#ifdef FASTINV_HAVE_OPENMP
#include <omp.h>
#endif

namespace {

using namespace fastinv_test;

// An OpenMP region in which item `bad` throws: without ParallelErrors this ends the process.
int run_region(int items, int bad, int threads, fastinv::ParallelErrors& errors, std::vector<int>& done) {
  std::atomic<int> skipped{0};
#ifdef FASTINV_HAVE_OPENMP
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads)
#endif
  for (int i = 0; i < items; ++i) {
    if (errors.failed()) {
      ++skipped;
      continue;
    }
    errors.run([&] {
      if (i == bad) throw std::runtime_error("item " + std::to_string(i) + " failed");
      done[size_t(i)] = 1;
    });
  }
  (void)threads;
  return skipped.load();
}

TEST(ParallelErrors, RethrowsOnceAfterTheRegion) {
  for (int threads : {1, 2, 4}) {
    const std::string t = " (" + std::to_string(threads) + " threads)";
    fastinv::ParallelErrors ok;
    std::vector<int> done(1000, 0);
    run_region(1000, -1, threads, ok, done);
    EXPECT_TRUE(!ok.failed()) << "no failure recorded when nothing throws" + t;
    int all = 0;
    for (int d : done) all += d;
    EXPECT_TRUE(all == 1000) << "every item ran" + t;
    bool threw = false;
    try {
      ok.rethrow();
    } catch (...) {
      threw = true;
    }
    EXPECT_TRUE(!threw) << "rethrow after success is a no-op" + t;

    fastinv::ParallelErrors errors;
    std::vector<int> done2(1000, 0);
    run_region(1000, 37, threads, errors, done2);
    EXPECT_TRUE(errors.failed()) << "the failure is recorded" + t;
    EXPECT_TRUE(done2[37] == 0) << "the failing item did not complete" + t;
    EXPECT_TRUE(throws_with<std::runtime_error>([&] { errors.rethrow(); }, "item 37 failed"))
        << "the item's exception is rethrown" + t;
  }
}

// A dense network in -> h -> h -> out with LeakyReLU(0.01), random weights; with h = 600 its
// middle layer (1.4 MB) outgrows cpu::kTailWeightBytes, so the CPU backend runs it as a
// grouped tail (cpu::Tail), the one path where a kept value must be copied out of the arena.
fastinv::Graph dense_net(std::mt19937& rng, int64_t in, int64_t h, int64_t out) {
  using namespace fastinv;
  Graph g;
  g.layout = "nc";
  g.input.c = in;
  auto dense = [&](int from, int64_t cin, int64_t cout) {
    Node n;
    n.op = OpKind::conv;
    n.linear = true;
    n.inputs = {from};
    n.cin = cin;
    n.cout = cout;
    n.shape.c = cout;
    std::uniform_real_distribution<float> u(-1.f / std::sqrt(float(cin)), 1.f / std::sqrt(float(cin)));
    for (int64_t i = 0; i < cin * cout; ++i) n.weight.push_back(u(rng));
    for (int64_t i = 0; i < cout; ++i) n.bias.push_back(u(rng));
    return n;
  };
  auto leaky = [&](int from, int64_t c) {
    Node n;
    n.op = OpKind::act;
    n.inputs = {from};
    n.act.kind = ActKind::leaky_relu;
    n.act.alpha = 0.01f;
    n.shape.c = c;
    return n;
  };
  g.nodes = {dense(-1, in, h), leaky(0, h), dense(1, h, h), leaky(2, h), dense(3, h, out)};
  g.output = 4;
  return g;
}

// Records the output and the kept values of every sample, [sample][row].
struct Recorder final : fastinv::TileHooks {
  std::vector<int> keep;
  std::vector<int64_t> rows;                          // per kept value, and the output's last
  std::vector<std::vector<float>>* values = nullptr;  // per kept value, then the output
  std::vector<int> kept_values() const override { return keep; }
  void before(float*, int64_t, int) const noexcept override {}
  void after(const float* out, const float* const* kept, int64_t first, int lanes) const noexcept override {
    for (size_t v = 0; v <= keep.size(); ++v) {
      const float* tile = v < keep.size() ? kept[v] : out;
      for (int j = 0; j < lanes; ++j)
        for (int64_t r = 0; r < rows[v]; ++r)
          (*values)[v][size_t((first + j) * rows[v] + r)] = tile[r * fastinv::cpu::kTileWidth + j];
    }
  }
};

TEST(KeptValues, HoldTheHiddenLayersOfEveryTileAndLeaveTheOutputBitwise) {
  using namespace fastinv;
  std::mt19937 rng(11);
  const int64_t in = 8, h = 600, out = 4, n = 200;  // 13 tiles: a full and a partial group of 8
  auto graph = std::make_shared<const Graph>(dense_net(rng, in, h, out));
  const cpu::Plan grouped = cpu::compile_plan(*graph, active_isa(), 0, {1, 3});
  EXPECT_TRUE(grouped.tail.begin < grouped.steps.size()) << "the test network runs a grouped tail";
  EXPECT_TRUE(throws_with<InvalidArgument>([&] { cpu::compile_plan(*graph, active_isa(), 0, {0}); }, "cannot be kept"))
      << "a conv whose activation is fused into it holds the activation, not its own value";
  std::vector<float> x(size_t(n * in));
  std::normal_distribution<float> normal;
  for (float& v : x) v = normal(rng);
  InputView view;
  view.data = x.data();
  view.layout = Strided::contiguous(n, {in});
  std::vector<float> plain(size_t(n * out));
  OutputView o;
  o.data = plain.data();
  o.layout = Strided::contiguous(n, {out});
  const auto backend = make_cpu_backend(graph);
  backend->run(view, o, 1);
  // float64 reference of the hidden layers (the kept values are post-activation)
  std::vector<double> h1(size_t(n * h)), h2(size_t(n * h));
  const Node &l1 = graph->nodes[0], &l2 = graph->nodes[2];
  for (int64_t p = 0; p < n; ++p) {
    for (int64_t k = 0; k < h; ++k) {
      double s = l1.bias[size_t(k)];
      for (int64_t c = 0; c < in; ++c) s += double(l1.weight[size_t(k * in + c)]) * x[size_t(p * in + c)];
      h1[size_t(p * h + k)] = s > 0 ? s : 0.01 * s;
    }
    for (int64_t k = 0; k < h; ++k) {
      double s = l2.bias[size_t(k)];
      for (int64_t c = 0; c < h; ++c) s += double(l2.weight[size_t(k * h + c)]) * h1[size_t(p * h + c)];
      h2[size_t(p * h + k)] = s > 0 ? s : 0.01 * s;
    }
  }
  for (int threads : {1, 2}) {
    std::vector<std::vector<float>> values{std::vector<float>(size_t(n * h)), std::vector<float>(size_t(n * h)),
                                           std::vector<float>(size_t(n * out))};
    Recorder rec;
    rec.keep = {1, 3};
    rec.rows = {h, h, out};
    rec.values = &values;
    backend->run_fused(view, rec, threads);
    EXPECT_TRUE(values[2] == plain) << "kept values leave the output bitwise (" << threads << " threads)";
    double worst = 0;
    for (size_t i = 0; i < h1.size(); ++i) {
      worst = std::max(worst, std::abs(values[0][i] - h1[i]));
      worst = std::max(worst, std::abs(values[1][i] - h2[i]));
    }
    // float32 sums of 600 O(1) terms against float64: ~1e-5
    EXPECT_TRUE(worst < 1e-4) << "kept layers 1 and 2 match float64 within 1e-4, worst " << worst;
  }
}

}  // namespace
