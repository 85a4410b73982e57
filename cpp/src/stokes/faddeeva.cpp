// Faddeeva function: Gauss-Hermite rational far from the origin, Weideman (1994) near it.
// See fastinv/stokes/faddeeva.hpp for conventions and the tested accuracy.
#include "fastinv/stokes/faddeeva.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <string>

#include "fastinv/error.hpp"

namespace fastinv::stokes {
namespace {

constexpr double kPi = 3.14159265358979323846;
constexpr double kInvSqrtPi = 0.56418958354775628695;

// |z|^2 below which Weideman's expansion is used. 7^2: the 6-node rational is then
// accurate to ~1e-8 (H) / 1e-9 (F) relative, measured against scipy's wofz.
constexpr double kInnerR2 = 49.0;

// Number of terms of Weideman's expansion: N = 40 keeps H within 1e-7 relative down to
// H = 1e-9 near the real axis (N = 32 only reaches 3e-5 there).
constexpr int kWeidemanN = 40;

struct Weideman {
  double L = 0.0;                          // sqrt(N / sqrt 2)
  std::array<double, kWeidemanN> c{};      // p(Z) = sum_n c[n] Z^n
};

// Weideman's coefficients a_n: the DFT of f(t) = exp(-t^2) (L^2 + t^2) sampled at
// t = L tan(theta / 2), theta = k pi / M (his MATLAB listing, done here with a direct DFT).
Weideman make_weideman() {
  Weideman w;
  const int N = kWeidemanN;
  const int M = 2 * N;
  const int M2 = 2 * M;
  w.L = std::sqrt(N / std::sqrt(2.0));
  // f has length 2M: f[0] = 0, f[1 + (k + M - 1)] for k = -M+1 .. M-1.
  std::array<double, 2 * 2 * kWeidemanN> f{};
  for (int k = -M + 1; k <= M - 1; ++k) {
    const double theta = k * kPi / M;
    const double t = w.L * std::tan(theta / 2.0);
    f[1 + (k + M - 1)] = std::exp(-t * t) * (w.L * w.L + t * t);
  }
  // fftshift (length 2M, even): g[j] = f[(j + M) mod 2M]; A[m] = Re sum_j g[j] e^{-2 pi i jm/2M}.
  for (int n = 0; n < N; ++n) {
    const int m = n + 1;
    long double acc = 0.0L;
    for (int j = 0; j < 2 * M; ++j) {
      const long double g = f[(j + M) % (2 * M)];
      acc += g * std::cos(2.0L * static_cast<long double>(kPi) * j * m / (2 * M));
    }
    w.c[n] = static_cast<double>(acc / M2);
  }
  return w;
}

const Weideman& weideman() {
  static const Weideman w = make_weideman();  // thread-safe one-time init (C++11)
  return w;
}

// 6-node Gauss-Hermite quadrature, positive nodes and weights (Abramowitz & Stegun
// Table 25.10). w(z) ~ (i/pi) sum_k w_k 2z / (z^2 - t_k^2) = (2 i z / pi) P(u) / Q(u).
struct Rational {
  std::array<double, 3> p{};  // P(u) = p[0] + p[1] u + p[2] u^2
  std::array<double, 3> q{};  // Q(u) = q[0] + q[1] u + q[2] u^2 + u^3
};

Rational make_rational() {
  const double t[3] = {0.436077411927616508679, 1.335849074013696949715, 2.350604973674492222834};
  const double wt[3] = {0.724629595224392524092, 0.157067320322856643916, 0.00453000990550884564086};
  const double tau[3] = {t[0] * t[0], t[1] * t[1], t[2] * t[2]};
  Rational r;
  // Q = (u - tau0)(u - tau1)(u - tau2)
  r.q[2] = -(tau[0] + tau[1] + tau[2]);
  r.q[1] = tau[0] * tau[1] + tau[0] * tau[2] + tau[1] * tau[2];
  r.q[0] = -tau[0] * tau[1] * tau[2];
  // P = sum_k w_k prod_{j != k} (u - tau_j)
  for (int k = 0; k < 3; ++k) {
    const double a = tau[(k + 1) % 3], b = tau[(k + 2) % 3];
    r.p[2] += wt[k];
    r.p[1] += -wt[k] * (a + b);
    r.p[0] += wt[k] * a * b;
  }
  return r;
}

const Rational& rational() {
  static const Rational r = make_rational();
  return r;
}

// Far region, written in real arithmetic so the loop vectorises.
inline void w_far(double x, double y, const Rational& r, double& re, double& im) {
  const double ur = x * x - y * y, ui = 2.0 * x * y;
  // P(u)
  double pr = r.p[2], pi = 0.0;
  {
    double tr = pr * ur - pi * ui + r.p[1], ti = pr * ui + pi * ur;
    pr = tr * ur - ti * ui + r.p[0];
    pi = tr * ui + ti * ur;
  }
  // Q(u)
  double qr = 1.0, qi = 0.0;
  {
    double tr = qr * ur - qi * ui + r.q[2], ti = qr * ui + qi * ur;
    double sr = tr * ur - ti * ui + r.q[1], si = tr * ui + ti * ur;
    qr = sr * ur - si * ui + r.q[0];
    qi = sr * ui + si * ur;
  }
  // (2 i z / pi) P / Q, with 2 i z = 2(-y + i x)
  const double inv = 1.0 / (qr * qr + qi * qi);
  const double dr = (pr * qr + pi * qi) * inv, di = (pi * qr - pr * qi) * inv;
  const double zr = -2.0 * y / kPi, zi = 2.0 * x / kPi;
  re = zr * dr - zi * di;
  im = zr * di + zi * dr;
}

// Near region (Weideman), y >= 0.
inline void w_near(double x, double y, const Weideman& wd, double& re, double& im) {
  const double L = wd.L;
  const double lpy = L + y;
  const double d2 = lpy * lpy + x * x;  // |L - i z|^2
  const double inv_d2 = 1.0 / d2;
  // Z = (L + i z) / (L - i z)
  const double Zr = (L * L - y * y - x * x) * inv_d2, Zi = 2.0 * L * x * inv_d2;
  double pr = wd.c[kWeidemanN - 1], pi = 0.0;
  for (int n = kWeidemanN - 2; n >= 0; --n) {
    const double tr = pr * Zr - pi * Zi + wd.c[n];
    pi = pr * Zi + pi * Zr;
    pr = tr;
  }
  // 1 / (L - i z) = ((L + y) + i x) / d2
  const double er = lpy * inv_d2, ei = x * inv_d2;
  const double e2r = er * er - ei * ei, e2i = 2.0 * er * ei;
  re = 2.0 * (pr * e2r - pi * e2i) + kInvSqrtPi * er;
  im = 2.0 * (pr * e2i + pi * e2r) + kInvSqrtPi * ei;
}

constexpr std::size_t kChunk = 128;

// H, F for one chunk of m <= kChunk points x_i - shift, then combined with the output
// by `emit` (store or accumulate). Far formula everywhere (vectorised), then the near
// points are gathered into a compact buffer, evaluated (vectorised) and scattered back.
template <typename Emit>
void chunk(double a, const double* x, double shift, std::size_t m, Emit emit) {
  const Rational& r = rational();
  const Weideman& wd = weideman();
  alignas(64) double H[kChunk], F[kChunk], v[kChunk];
  alignas(64) double nx[kChunk], nre[kChunk], nim[kChunk];
  int idx[kChunk];
#pragma omp simd
  for (std::size_t i = 0; i < m; ++i) {
    v[i] = x[i] - shift;
    w_far(v[i], a, r, H[i], F[i]);
  }
  std::size_t k = 0;
  const double a2 = a * a;
  for (std::size_t i = 0; i < m; ++i) {
    if (v[i] * v[i] + a2 < kInnerR2) {
      idx[k] = static_cast<int>(i);
      nx[k++] = v[i];
    }
  }
#pragma omp simd
  for (std::size_t j = 0; j < k; ++j) w_near(nx[j], a, wd, nre[j], nim[j]);
  for (std::size_t j = 0; j < k; ++j) {
    H[idx[j]] = nre[j];
    F[idx[j]] = nim[j];
  }
  emit(H, F, m);
}

void check_damping(double a) {
  if (!(a >= 0.0) || !std::isfinite(a))
    throw InvalidArgument("Voigt damping a must be finite and >= 0, got " + std::to_string(a));
}

}  // namespace

std::complex<double> faddeeva(std::complex<double> z) {
  double x = z.real(), y = z.imag();
  if (!std::isfinite(x) || !std::isfinite(y))
    return {std::nan(""), std::nan("")};
  const bool lower = y < 0.0;
  if (lower) {
    x = -x;
    y = -y;
  }
  double re, im;
  if (x * x + y * y < kInnerR2)
    w_near(x, y, weideman(), re, im);
  else
    w_far(x, y, rational(), re, im);
  std::complex<double> w(re, im);
  if (lower) return 2.0 * std::exp(-z * z) - w;  // w(-z') with z' = -z in the upper half plane
  return w;
}

void voigt_faraday(double a, const double* v, std::size_t n, double* H, double* F) {
  check_damping(a);
  for (std::size_t s = 0; s < n; s += kChunk) {
    const std::size_t m = std::min(kChunk, n - s);
    chunk(a, v + s, 0.0, m, [&](const double* h, const double* f, std::size_t mm) {
      for (std::size_t i = 0; i < mm; ++i) {
        H[s + i] = h[i];
        F[s + i] = f[i];
      }
    });
  }
}

void voigt_faraday_add(double a, const double* x, double shift, double weight, std::size_t n,
                       double* Hsum, double* Fsum) {
  check_damping(a);
  for (std::size_t s = 0; s < n; s += kChunk) {
    const std::size_t m = std::min(kChunk, n - s);
    chunk(a, x + s, shift, m, [&](const double* h, const double* f, std::size_t mm) {
#pragma omp simd
      for (std::size_t i = 0; i < mm; ++i) {
        Hsum[s + i] += weight * h[i];
        Fsum[s + i] += weight * f[i];
      }
    });
  }
}

}  // namespace fastinv::stokes
