// The checks the C++ test programs share. Each program ends with check_summary(), which
// prints the "N passed, N failed" line that CI reads and returns the exit code.
// (GoogleTest and Catch2 are Debian packages only: the README's test command cannot install
// them, so the programs stay self-contained.)
#pragma once
#include <cstdio>
#include <exception>
#include <functional>
#include <string>

namespace fastinv_test {

inline int passed = 0, failed = 0;

inline void check(bool ok, const std::string& what) {
  if (ok) {
    ++passed;
  } else {
    ++failed;
    std::printf("FAIL: %s\n", what.c_str());
  }
}

// f must throw E whose message contains `needle` (so it failed for the right reason).
template <typename E>
void check_throws(const std::function<void()>& f, const std::string& what, const std::string& needle = "") {
  try {
    f();
    check(false, what + " (no exception)");
  } catch (const E& e) {
    check(std::string(e.what()).find(needle) != std::string::npos, what + " (message: " + e.what() + ")");
  } catch (const std::exception& e) {
    check(false, what + " (wrong exception: " + e.what() + ")");
  }
}

inline int check_summary() {
  std::printf("%d passed, %d failed\n", passed, failed);
  return failed ? 1 : 0;
}

}  // namespace fastinv_test
