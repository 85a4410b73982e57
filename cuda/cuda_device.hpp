// Host-side interface of the CUDA backend. Plain C++ (no CUDA headers), so the core
// library and the Python module compile with any C++ compiler.
#pragma once
#include <cstdint>
#include <string>

namespace fastinv::cuda {

// Number of usable CUDA devices; 0 when there is no driver or no device.
int device_count();
std::string device_name(int device);

// Reference (SIMT, exact fp32) planar dense layer followed by LeakyReLU:
//   y[o][p] = act(b[o] + sum_i w[o][i] * x[i][p]),  act(v) = v >= 0 ? v : slope * v
// for host arrays x [cin][npix], w [cout][cin], b [cout], y [cout][npix]. Copies to and
// from the current device. slope = 1 gives a purely linear layer. Throws
// fastinv::Error with the CUDA error string on any failure.
void linear_planar_reference(const float* w, const float* b, const float* x, float* y, int cin, int cout, int64_t npix,
                             float slope);

}  // namespace fastinv::cuda
