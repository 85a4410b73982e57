// The assertion the C++ tests share that GoogleTest lacks: f throws E and the message
// contains `needle`, so the call failed for the right reason.
#pragma once
#include <gtest/gtest.h>

#include <exception>
#include <functional>
#include <string>

namespace fastinv_test {

template <typename E>
::testing::AssertionResult throws_with(const std::function<void()>& f, const std::string& needle) {
  try {
    f();
  } catch (const E& e) {
    if (std::string(e.what()).find(needle) != std::string::npos) return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure() << "message lacks \"" << needle << "\": " << e.what();
  } catch (const std::exception& e) {
    return ::testing::AssertionFailure() << "wrong exception type: " << e.what();
  }
  return ::testing::AssertionFailure() << "no exception";
}

}  // namespace fastinv_test
