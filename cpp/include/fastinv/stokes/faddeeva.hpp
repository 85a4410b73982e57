// The Faddeeva function w(z) = exp(-z^2) erfc(-i z) and the Voigt / Faraday-Voigt
// line profiles built from it, with fastinv's own implementation (no third-party code).
//
// Conventions (used by every Stokes code in fastinv):
//   w(v + i a) = H(a, v) + i F(a, v),   a >= 0 the damping, v the reduced wavelength.
//   H is the Voigt function (H(0, v) = exp(-v^2)); the normalised absorption profile is
//   H / sqrt(pi). F is the Faraday-Voigt (dispersion) function; the normalised
//   magneto-optical profile is F / sqrt(pi). Some texts (LL04, del Toro Iniesta) write
//   w = H + 2 i F' with F' = F / 2 and a dispersion profile 2 F' / sqrt(pi): the same numbers.
//
// Algorithm (why: cheap, vectorisable, accurate to ~1e-9):
//   |z| >= 6: the 6-node Gauss-Hermite quadrature of w(z) = (i/pi) Int exp(-t^2)/(z - t) dt,
//             folded into one rational function of u = z^2 (3 poles).
//   |z| <  6: Weideman's rational expansion (SIAM J. Numer. Anal. 31, 1497, 1994) with
//             N = 38 terms; its coefficients are computed here at first use by a DFT.
// Accuracy (tests/test_stokes_faddeeva.py, vs scipy.special.wofz, on x in [-1e4, 1e4],
// y in {0} U [1e-8, 1e3]): |w - w_ref| / |w_ref| <= 1e-6 everywhere, and H and F each to
// <= 1e-6 relative wherever they exceed 1e-9 (measured ~3e-7 and ~1e-8); below 1e-9
// the absolute error is <= 1e-12 (line profiles peak at 1).
// Lower half-plane: w(z) = 2 exp(-z^2) - w(-z) (faddeeva() only; the profile routines
// need a >= 0). Non-finite input gives NaN (never a crash).
#pragma once
#include <complex>
#include <cstddef>

namespace fastinv::stokes {

// w(z) for any complex z (reflection formula below the real axis).
std::complex<double> faddeeva(std::complex<double> z);

// H(a, v_i) and F(a, v_i) for n reduced wavelengths v sharing one damping a >= 0.
// H and F may be the same length-n buffers the caller reuses; v may not alias them.
// Vectorised (the hot loop of the ME and LTE syntheses). Throws InvalidArgument if a < 0
// or a is not finite.
void voigt_faraday(double a, const double* v, std::size_t n, double* H, double* F);

// Hsum_i += weight * H(a, x_i - shift), Fsum_i += weight * F(a, x_i - shift): one Zeeman
// component (or line) added into a profile sum without a temporary array. x is the
// wavelength grid in Doppler units, shift the component's position in the same units.
void voigt_faraday_add(double a, const double* x, double shift, double weight, std::size_t n, double* Hsum,
                       double* Fsum);

// Instruction set of the vectorised kernel in use ("generic", "avx2", "avx512"): the best
// this build and CPU have, lowered by the environment variable FASTINV_ISA.
const char* faddeeva_isa();

}  // namespace fastinv::stokes
