// Standard normal draws for one pixel's Monte-Carlo error estimate, from a generator seeded by
// (seed, pixel) alone: each pixel gets the same draws whatever the thread count or the order
// in which pixels are solved. SplitMix64 (Steele, Lea & Flood 2014) for uniform bits,
// Box-Muller for normals.
#pragma once
#include <cmath>
#include <cstdint>

namespace fastinv::dem {

class PixelNormals {
 public:
  // The state is a hash of (seed, pixel): neighbouring pixels' sequences must not be shifted
  // copies of each other, as they would be with a plain seed + pixel * increment.
  PixelNormals(std::uint64_t seed, std::uint64_t pixel) : state_(mix(seed + mix(pixel + kGolden))) {}

  double next() {
    if (have_spare_) {
      have_spare_ = false;
      return spare_;
    }
    // u1 in (0, 1]: log(u1) is finite
    const double u1 = (static_cast<double>(bits() >> 11) + 1.0) * 0x1.0p-53;
    const double u2 = static_cast<double>(bits() >> 11) * 0x1.0p-53;
    const double r = std::sqrt(-2.0 * std::log(u1));
    const double a = 6.283185307179586 * u2;
    spare_ = r * std::sin(a);
    have_spare_ = true;
    return r * std::cos(a);
  }

 private:
  static constexpr std::uint64_t kGolden = 0x9E3779B97F4A7C15ull;

  static std::uint64_t mix(std::uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }

  std::uint64_t bits() { return mix(state_ += kGolden); }

  std::uint64_t state_;
  double spare_ = 0.0;
  bool have_spare_ = false;
};

}  // namespace fastinv::dem
