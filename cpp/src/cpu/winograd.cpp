#include "cpu/winograd.hpp"

#include <cmath>
#include <utility>

#include "fastinv/error.hpp"

namespace fastinv::cpu {
namespace {

// Evaluation of a polynomial with k coefficients at each point, and at infinity (its
// leading coefficient): [points + 1][k].
std::vector<double> evaluation(const std::vector<double>& points, int k) {
  std::vector<double> e;
  for (double p : points)
    for (int j = 0; j < k; ++j) e.push_back(std::pow(p, j));
  for (int j = 0; j < k; ++j) e.push_back(j == k - 1 ? 1.0 : 0.0);
  return e;
}

// Inverse of an n x n matrix by Gauss-Jordan with partial pivoting (n <= 6 here).
std::vector<double> inverse(std::vector<double> a, int n) {
  std::vector<double> inv(size_t(n * n), 0.0);
  for (int i = 0; i < n; ++i) inv[size_t(i * n + i)] = 1.0;
  for (int col = 0; col < n; ++col) {
    int pivot = col;
    for (int row = col + 1; row < n; ++row)
      if (std::abs(a[size_t(row * n + col)]) > std::abs(a[size_t(pivot * n + col)])) pivot = row;
    for (int j = 0; j < n; ++j) {
      std::swap(a[size_t(col * n + j)], a[size_t(pivot * n + j)]);
      std::swap(inv[size_t(col * n + j)], inv[size_t(pivot * n + j)]);
    }
    const double d = a[size_t(col * n + col)];
    for (int j = 0; j < n; ++j) {
      a[size_t(col * n + j)] /= d;
      inv[size_t(col * n + j)] /= d;
    }
    for (int row = 0; row < n; ++row) {
      const double f = a[size_t(row * n + col)];
      if (row == col || f == 0.0) continue;
      for (int j = 0; j < n; ++j) {
        a[size_t(row * n + j)] -= f * a[size_t(col * n + j)];
        inv[size_t(row * n + j)] -= f * inv[size_t(col * n + j)];
      }
    }
  }
  return inv;
}

}  // namespace

bool winograd_applies(const Node& conv) {
  return conv.op == OpKind::conv && !conv.linear && conv.stride == 1 && conv.dilation == 1 &&
         (conv.kernel == 3 || conv.kernel == 5) && conv.cin >= 16 && conv.cout >= 16;
}

// A correlation y_i = sum_j g_j d_(i+j) is the transpose of the linear convolution
// s = g * h = E_n^-1 [(E_r g) . (E_2 h)], so AT = E_2^T, G = E_r and BT = (E_n^-1)^T.
WinogradMatrices winograd_matrices(int r) {
  std::vector<double> points;
  if (r == 3)
    points = {0.0, 1.0, -1.0};
  else if (r == 5)
    points = {0.0, 1.0, -1.0, 0.5, -0.5};
  else
    throw InvalidArgument("Winograd F(2, r) is built for r = 3 and 5 only");
  WinogradMatrices w;
  w.r = r;
  w.n = r + 1;
  const int n = w.n;
  const std::vector<double> e2 = evaluation(points, 2);
  w.at.resize(size_t(2 * n));
  for (int i = 0; i < 2; ++i)
    for (int a = 0; a < n; ++a) w.at[size_t(i * n + a)] = e2[size_t(a * 2 + i)];
  w.g = evaluation(points, r);
  const std::vector<double> c = inverse(evaluation(points, n), n);
  w.bt.resize(size_t(n * n));
  for (int a = 0; a < n; ++a)
    for (int i = 0; i < n; ++i) w.bt[size_t(a * n + i)] = c[size_t(i * n + a)];
  return w;
}

}  // namespace fastinv::cpu
