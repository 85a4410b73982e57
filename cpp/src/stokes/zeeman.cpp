// Zeeman patterns from J and g via Wigner 3j symbols.
#include "fastinv/stokes/zeeman.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <string>

#include "fastinv/error.hpp"

namespace fastinv::stokes {
namespace {

// 2*j as an integer; throws unless j is a (half-)integer of modest size.
int twice(double j, const char* what) {
  const double t = 2.0 * j;
  if (!std::isfinite(t) || std::fabs(t - std::round(t)) > 1e-9 || std::fabs(t) > 200.0)
    throw InvalidArgument(std::string("wigner_3j: ") + what +
                          " must be an integer or half-integer with |value| <= 100");
  return static_cast<int>(std::lround(t));
}

// n! as double for 0 <= n <= 170 (exact up to 22!, then correctly rounded products).
double factorial(int n) {
  static const std::array<double, 171> table = [] {
    std::array<double, 171> t{};
    t[0] = 1.0;
    for (int i = 1; i <= 170; ++i) t[i] = t[i - 1] * i;
    return t;
  }();
  return table[n];
}

}  // namespace

double wigner_3j(double j1, double j2, double j3, double m1, double m2, double m3) {
  const int J1 = twice(j1, "j1"), J2 = twice(j2, "j2"), J3 = twice(j3, "j3");
  const int M1 = twice(m1, "m1"), M2 = twice(m2, "m2"), M3 = twice(m3, "m3");
  if (J1 < 0 || J2 < 0 || J3 < 0) throw InvalidArgument("wigner_3j: j must be >= 0");
  // Selection rules (all in doubled units).
  if (M1 + M2 + M3 != 0) return 0.0;
  if (std::abs(M1) > J1 || std::abs(M2) > J2 || std::abs(M3) > J3) return 0.0;
  if ((J1 + M1) % 2 || (J2 + M2) % 2 || (J3 + M3) % 2) return 0.0;  // m must match j's parity
  if (J3 < std::abs(J1 - J2) || J3 > J1 + J2 || (J1 + J2 + J3) % 2) return 0.0;
  // Integer quantities of Racah's formula.
  const int a = (J1 + J2 - J3) / 2, b = (J1 - J2 + J3) / 2, c = (-J1 + J2 + J3) / 2;
  const int s = (J1 + J2 + J3) / 2;
  const double delta = factorial(a) * factorial(b) * factorial(c) / factorial(s + 1);
  const double pre = std::sqrt(delta * factorial((J1 + M1) / 2) * factorial((J1 - M1) / 2) * factorial((J2 + M2) / 2) *
                               factorial((J2 - M2) / 2) * factorial((J3 + M3) / 2) * factorial((J3 - M3) / 2));
  const int t1 = (J3 - J2 + M1) / 2, t2 = (J3 - J1 - M2) / 2;  // k + t >= 0
  const int t3 = a, t4 = (J1 - M1) / 2, t5 = (J2 + M2) / 2;    // t - k >= 0
  const int kmin = std::max({0, -t1, -t2});
  const int kmax = std::min({t3, t4, t5});
  double sum = 0.0;
  for (int k = kmin; k <= kmax; ++k) {
    const double term = 1.0 / (factorial(k) * factorial(t1 + k) * factorial(t2 + k) * factorial(t3 - k) *
                               factorial(t4 - k) * factorial(t5 - k));
    sum += (k % 2 ? -term : term);
  }
  const int phase = (J1 - J2 - M3) / 2;  // (-1)^(j1 - j2 - m3), an integer exponent
  return ((phase % 2 != 0) ? -1.0 : 1.0) * pre * sum;
}

ZeemanPattern zeeman_pattern(double j_low, double g_low, double j_up, double g_up) {
  const int Jl = twice(j_low, "j_low"), Ju = twice(j_up, "j_up");
  if (Jl < 0 || Ju < 0) throw InvalidArgument("zeeman_pattern: J must be >= 0");
  if (std::abs(Ju - Jl) > 2 || (Ju - Jl) % 2)
    throw InvalidArgument("zeeman_pattern: a dipole transition needs J_u - J_l in {-1, 0, 1}");
  if (Jl == 0 && Ju == 0) throw InvalidArgument("zeeman_pattern: J 0 -> 0 is forbidden");
  if (!std::isfinite(g_low) || !std::isfinite(g_up))
    throw InvalidArgument("zeeman_pattern: Lande factors must be finite");
  ZeemanPattern p;
  p.g_eff = 0.5 * (g_low + g_up) + 0.25 * (g_low - g_up) * (j_low * (j_low + 1.0) - j_up * (j_up + 1.0));
  for (int q = -1; q <= 1; ++q) {
    for (int Mu2 = -Ju; Mu2 <= Ju; Mu2 += 2) {
      const int Ml2 = Mu2 + 2 * q;  // q = M_l - M_u
      if (std::abs(Ml2) > Jl) continue;
      const double Mu = 0.5 * Mu2, Ml = 0.5 * Ml2;
      const double w3 = wigner_3j(j_up, j_low, 1.0, -Mu, Ml, -static_cast<double>(q));
      const double strength = 3.0 * w3 * w3;
      if (strength < 1e-14) continue;  // e.g. M 0 -> 0 for J_u = J_l
      ZeemanComponent c;
      c.type = static_cast<ZeemanType>(q);
      c.m_low = Ml;
      c.m_up = Mu;
      c.shift = g_low * Ml - g_up * Mu;
      c.strength = strength;
      p.components.push_back(c);
    }
  }
  return p;
}

ZeemanPattern zeeman_pattern(const SpectralLine& line) {
  return zeeman_pattern(line.j_low, line.g_low, line.j_up, line.g_up);
}

}  // namespace fastinv::stokes
