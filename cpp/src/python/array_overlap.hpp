// Whether two NumPy arrays share memory: out= arrays must not overlap the inputs the
// kernels are still reading.
#pragma once
#include <pybind11/numpy.h>

#include <cstdint>
#include <utility>

namespace fastinv::python {

// [lowest, highest) byte address an array touches (any strides, negative ones included).
inline std::pair<uintptr_t, uintptr_t> byte_extent(const pybind11::array& a) {
  auto lo = reinterpret_cast<uintptr_t>(a.data()), hi = lo;
  for (pybind11::ssize_t d = 0; d < a.ndim(); ++d) {
    if (a.shape(d) == 0) return {lo, lo};
    const auto reach = static_cast<intptr_t>(a.strides(d)) * static_cast<intptr_t>(a.shape(d) - 1);
    if (reach < 0)
      lo -= uintptr_t(-reach);
    else
      hi += uintptr_t(reach);
  }
  return {lo, hi + uintptr_t(a.itemsize())};
}

inline bool byte_extents_overlap(const pybind11::array& a, const pybind11::array& b) {
  const auto ea = byte_extent(a), eb = byte_extent(b);
  return ea.first < ea.second && eb.first < eb.second && ea.first < eb.second && eb.first < ea.second;
}

}  // namespace fastinv::python
