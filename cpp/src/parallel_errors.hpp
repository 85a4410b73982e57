// Exceptions out of OpenMP parallel regions.
//
// An exception that leaves an OpenMP region ends the process (std::terminate), so code inside
// a region runs through ParallelErrors::run, which keeps the first exception any thread threw;
// the caller rethrows it once the region is over (as faiss does). Threads keep meeting the
// region's worksharing constructs after a failure (skipping their work), so no barrier hangs.
#pragma once
#include <atomic>
#include <exception>
#include <mutex>

namespace fastinv {

class ParallelErrors {
 public:
  // Runs f(); an exception it throws is kept (the first one only) instead of propagating.
  template <class F>
  void run(F&& f) noexcept {
    try {
      f();
    } catch (...) {
      std::lock_guard<std::mutex> lock(mutex_);
      if (!first_) first_ = std::current_exception();
      failed_.store(true, std::memory_order_relaxed);
    }
  }

  // True once any thread has failed: the others may skip the rest of their work.
  bool failed() const noexcept { return failed_.load(std::memory_order_relaxed); }

  // After the region: rethrows the first exception, if any.
  void rethrow() const {
    if (first_) std::rethrow_exception(first_);
  }

 private:
  std::mutex mutex_;
  std::exception_ptr first_;
  std::atomic<bool> failed_{false};
};

}  // namespace fastinv
