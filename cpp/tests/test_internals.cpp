// C++ tests of internal helpers that the public API cannot reach. Run under ASan + UBSan in
// CI (tests/test_cpp_native.py runs them through ctest). GoogleTest.
#include <atomic>
#include <stdexcept>
#include <string>
#include <vector>

#include "check.hpp"
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

}  // namespace
