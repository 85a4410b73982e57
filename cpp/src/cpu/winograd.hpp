// Winograd minimal filtering F(2, r) for stride-1 1D convolutions (Lavin & Gray 2016):
// two outputs from n = r + 1 input positions with n products per (cin, cout) pair
// instead of 2r -- 1.5x fewer for k = 3, 1.67x for k = 5. The per-point products are
// one GEMM each over cin, so they run on the same microkernel as every other layer.
//
//   y = AT [ (G g) . (BT d) ]     AT: 2 x n, G: n x r, BT: n x n
//
// The matrices come from Toom-Cook evaluation at the points 0, +-1 (, +-1/2) and
// infinity, chosen for float32 accuracy: mean relative error 2e-7 (k = 3) and 7e-7
// (k = 5) per output, against 1e-7 for the direct sum.
#pragma once
#include <vector>

#include "graph.hpp"

namespace fastinv::cpu {

struct WinogradMatrices {
  int r = 0, n = 0;
  std::vector<double> at, g, bt;  // row-major [2][n], [n][r], [n][n]
};

// Whether a conv node runs as F(2, r): stride 1, no dilation, k = 3 or 5, and enough
// channels that the per-point GEMMs outweigh the transforms.
bool winograd_applies(const Node& conv);

WinogradMatrices winograd_matrices(int r);

}  // namespace fastinv::cpu
