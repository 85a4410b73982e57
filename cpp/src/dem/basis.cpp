// Basis functions and the BP dictionary (SSW aia_sparse_em_init V1.001 conventions).
#include <cmath>
#include <string>

#include "fastinv/dem/basis_pursuit.hpp"
#include "fastinv/error.hpp"

namespace fastinv::dem {

std::vector<double> bp_basis(const std::vector<double>& logt, const std::vector<double>& widths, double cutoff) {
  const std::size_t nt = logt.size();
  if (nt == 0) throw InvalidArgument("bp_basis: the log T grid is empty");
  for (std::size_t j = 0; j < nt; ++j) {
    if (!std::isfinite(logt[j])) throw InvalidArgument("bp_basis: the log T grid has a NaN/inf");
    if (j > 0 && !(logt[j] > logt[j - 1]))
      throw InvalidArgument("bp_basis: the log T grid must be strictly increasing");
  }
  if (widths.empty()) throw InvalidArgument("bp_basis: give at least one width (0 = Dirac)");
  for (double w : widths)
    if (!std::isfinite(w) || w < 0.0)
      throw InvalidArgument("bp_basis: widths must be finite and >= 0 (0 = Dirac), got " + std::to_string(w));
  if (!std::isfinite(cutoff) || cutoff < 0.0 || cutoff >= 1.0)
    throw InvalidArgument("bp_basis: cutoff must be in [0, 1)");
  std::vector<double> B(widths.size() * nt * nt, 0.0);
  for (std::size_t b = 0; b < widths.size(); ++b) {
    for (std::size_t m = 0; m < nt; ++m) {
      double* row = &B[(b * nt + m) * nt];
      if (widths[b] == 0.0) {
        row[m] = 1.0;
        continue;
      }
      for (std::size_t j = 0; j < nt; ++j) {
        const double u = (logt[j] - logt[m]) / widths[b];
        const double v = std::exp(-u * u);
        // SSW: "bases(where(bases lt 0.04)) = 0" -> strictly-below values are cut.
        row[j] = (v < cutoff) ? 0.0 : v;
      }
    }
  }
  return B;
}

std::vector<double> bp_dictionary(const std::vector<double>& response, std::size_t nchan,
                                  const std::vector<double>& basis, std::size_t ncoef, double dictfac) {
  if (nchan == 0 || ncoef == 0) throw InvalidArgument("bp_dictionary: empty response or basis");
  if (response.size() % nchan != 0) throw InvalidArgument("bp_dictionary: response size is not a multiple of nchan");
  const std::size_t nt = response.size() / nchan;
  if (basis.size() != ncoef * nt)
    throw InvalidArgument("bp_dictionary: basis is not ncoef x nT with the response's nT (" + std::to_string(nt) + ")");
  if (!std::isfinite(dictfac) || !(dictfac > 0.0))
    throw InvalidArgument("bp_dictionary: dictfac must be finite and > 0");
  for (double v : response)
    if (!std::isfinite(v)) throw InvalidArgument("bp_dictionary: the response has a NaN/inf");
  for (double v : basis)
    if (!std::isfinite(v)) throw InvalidArgument("bp_dictionary: the basis has a NaN/inf");
  std::vector<double> D(nchan * ncoef, 0.0);
  for (std::size_t c = 0; c < nchan; ++c)
    for (std::size_t m = 0; m < ncoef; ++m) {
      double s = 0.0;
      for (std::size_t j = 0; j < nt; ++j) s += basis[m * nt + j] * response[c * nt + j];
      D[c * ncoef + m] = s * dictfac;
    }
  return D;
}

}  // namespace fastinv::dem
