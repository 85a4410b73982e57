// AIA uncertainty model of SSW aia_bp_estimate_error.pro rev. 1.7 (Boerner 2015) with the
// V3 error table, for the six EUV channels in the order 94, 131, 171, 193, 211, 335. Only
// the terms the BP driver uses (no EVE/calibration/CHIANTI systematics); IDL read noise.
#include <algorithm>
#include <cmath>

#include "fastinv/dem/basis_pursuit.hpp"
#include "fastinv/error.hpp"

namespace fastinv::dem {

namespace {
constexpr double kDnPerPhot[6] = {1.975, 1.473, 1.122, 0.962, 0.880, 0.576};
constexpr double kCompress[6] = {26.196, 18.797, 14.400, 12.759, 11.670, 7.350};
constexpr double kDark = 0.18;       // DN, not reduced by summing (as in the IDL code)
constexpr double kRead = 1.15;       // DN
constexpr double kQuant = 0.288819;  // DN: 1/sqrt(12)
}  // namespace

void aia_bp_error(const double* counts_dn, std::size_t npix, double n_sample, double* sigma_dn) {
  if (!std::isfinite(n_sample) || n_sample < 1.0)
    throw InvalidArgument("aia_bp_error: n_sample must be >= 1 (number of summed pixels)");
  if (npix > 0 && (counts_dn == nullptr || sigma_dn == nullptr)) throw InvalidArgument("aia_bp_error: null array");
  const double rn = std::sqrt(n_sample);
  for (std::size_t c = 0; c < 6; ++c) {
    for (std::size_t i = 0; i < npix; ++i) {
      const double raw = counts_dn[c * npix + i];
      const double counts = std::isnan(raw) ? raw : std::max(raw, 0.0);
      const double shot = std::sqrt(counts * kDnPerPhot[c]) / rn;
      const double read = kRead / rn;
      const double quant = kQuant / rn;
      const double comp = (counts < 25.0) ? 0.0 : std::max(shot / kCompress[c], kQuant) / rn;
      sigma_dn[c * npix + i] = std::sqrt(shot * shot + kDark * kDark + read * read + quant * quant + comp * comp);
    }
  }
}

}  // namespace fastinv::dem
