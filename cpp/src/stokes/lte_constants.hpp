// Physical constants (CGS, CODATA 2018) shared by the LTE synthesis sources.
#pragma once

namespace fastinv::stokes::cgs {

constexpr double kB = 1.380649e-16;        // erg K^-1
constexpr double h = 6.62607015e-27;       // erg s
constexpr double c = 2.99792458e10;        // cm s^-1
constexpr double me = 9.1093837015e-28;    // g
constexpr double amu = 1.66053906660e-24;  // g
constexpr double eV = 1.602176634e-12;     // erg
constexpr double e2 = 2.307077552e-19;     // e^2 [erg cm] (e = 4.80320471e-10 esu)
constexpr double pi = 3.14159265358979323846;
constexpr double sqrt_pi = 1.77245385090551602730;
// (2 pi m_e k / h^2)^{3/2} [cm^-3 K^-3/2], the translational factor of the Saha equation.
constexpr double kSahaC = 2.41466e15;

}  // namespace fastinv::stokes::cgs
