// Zeeman pattern of a dipole transition in LS coupling (anomalous or normal), computed
// from J and g of both levels with Wigner 3j symbols (LL04 eqs. 3.57-3.58), never tabulated.
//
// Component of magnetic quantum numbers M_l (lower) -> M_u (upper), q = M_l - M_u:
//   wavelength shift   = (g_l M_l - g_u M_u) * dlambda_B,  dlambda_B = 4.6686e-13 lambda0^2 B
//                        [Angstrom; lambda0 in Angstrom, B in gauss] (per unit Lande factor)
//   strength           = 3 * ( J_u  J_l  1 ; -M_u  M_l  -q )^2, which sums to 1 over
//                        each group q.
//   group              = q = -1: sigma_b (shifted to the blue for a positive Lande factor),
//                        q =  0: pi,  q = +1: sigma_r.
// Components of zero strength (e.g. M 0 -> 0 when J_u = J_l) are left out, so Fe I 6301.5
// (J 2 -> 2) has 12 components and Fe I 6302.5 (J 1 -> 0) 3.
#pragma once
#include <vector>

#include "fastinv/stokes/lines.hpp"

namespace fastinv::stokes {

enum class ZeemanType : int { sigma_b = -1, pi = 0, sigma_r = 1 };

struct ZeemanComponent {
  ZeemanType type;
  double m_low, m_up;
  double shift;     // in units of dlambda_B (i.e. of the Larmor splitting for g = 1)
  double strength;  // normalised to 1 within its group
};

struct ZeemanPattern {
  std::vector<ZeemanComponent> components;  // ordered sigma_b, pi, sigma_r; by M_u within each
  double g_eff = 0.0;
};

// Wigner 3j symbol (j1 j2 j3; m1 m2 m3) for integer or half-integer arguments (Racah's
// formula). Returns 0 when the selection rules are not met. Throws InvalidArgument for
// arguments that are not (half-)integers.
double wigner_3j(double j1, double j2, double j3, double m1, double m2, double m3);

// Throws InvalidArgument unless |J_u - J_l| <= 1, J >= 0 (half-)integers, not 0 -> 0.
ZeemanPattern zeeman_pattern(double j_low, double g_low, double j_up, double g_up);
ZeemanPattern zeeman_pattern(const SpectralLine& line);

// Zeeman splitting per unit Lande factor [Angstrom] for lambda0 [Angstrom] and B [gauss]:
// e lambda0^2 B / (4 pi m_e c^2) in CGS (CODATA 2018 e, m_e, c) = 4.6686448e-13 lambda0^2 B.
constexpr double kLarmorAngstromPerGaussA2 = 4.6686448e-13;

}  // namespace fastinv::stokes
