// Sparse DEM inversion by Basis Pursuit (Cheung et al. 2015, ApJ 807, 143), as in SSW
// aia_sparse_em_init / aia_sparse_em_solve V1.001. Per pixel it solves the LP
//
//     minimise sum_k x_k   subject to   max(y - eta, 0) <= D x <= y + eta,   x >= 0,
//
// with eta = tolfac * sigma, by fastinv's own dense bounded dual simplex (no LP library).
// D (nchan x ncoef) is the dictionary: D = K . B^T * dictfac, with K the temperature
// responses sampled on the log T grid and B the basis (ncoef x nT). With dictfac = 1e26,
// x is in units of 1e26 cm^-5 and the EM per log T bin is B^T x * 1e26 cm^-5.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

namespace fastinv::dem {

// Per-pixel status codes. 0/2/3/10/11 are those of the SSW code (IDL SIMPLEX + BP driver).
// Stored as int8 per pixel (BpResult::status); values may be added, never renumbered.
enum class BpStatus : std::int8_t {
  ok = 0,             // optimal solution found
  infeasible = 2,     // no x >= 0 reproduces y within the tolerance band
  not_converged = 3,  // iteration limit reached or numerical trouble
  rejected = 10,      // the solution had a negative coefficient; coefficients set to 0
  no_counts = 11,     // sum(y) < min_total: coefficients set to 0, not solved
  bad_input = 12,     // a NaN/inf in y, or a NaN/inf/negative sigma: not solved
  overflow = 13,      // DeepEM: the EM (or its re-synthesis) is not finite; products NaN
  refine_infeasible = 14,  // DeepEM refine: no EM >= 0 on the network's grid fits y at any tolfac
};

// Basis functions on a log T grid, row-major (ncoef x nT) with ncoef = widths.size() * nT.
// A width of 0 gives the Dirac (identity) block; a width w > 0 gives
// exp(-((logT - logT_m)/w)^2), peak 1 (not normalised), set to 0 where below `cutoff`.
// Throws InvalidArgument for an empty/non-increasing/non-finite grid or a negative width.
std::vector<double> bp_basis(const std::vector<double>& logt, const std::vector<double>& widths, double cutoff = 0.04);

// D[c, m] = sum_j basis[m, j] * response[c, j] * dictfac, row-major (nchan x ncoef).
// response: nchan x nT (DN cm^5 s^-1 pixel^-1 on the grid), basis: ncoef x nT.
std::vector<double> bp_dictionary(const std::vector<double>& response, std::size_t nchan,
                                  const std::vector<double>& basis, std::size_t ncoef, double dictfac = 1e26);

// AIA error model of aia_bp_estimate_error (Boerner 2015, V3 error table) for the six
// channels 94, 131, 171, 193, 211, 335 (in that order). counts_dn: (6, npix) row-major, in
// DN (not DN/s); negative counts count as 0. n_sample: number of summed/averaged pixels.
// Writes sigma in DN, (6, npix). Throws InvalidArgument if n_sample < 1.
void aia_bp_error(const double* counts_dn, std::size_t npix, double n_sample, double* sigma_dn);

struct BpOptions {
  // Tolerance factors tried in turn until a pixel succeeds (adaptive tolfac): SSW default
  // 1.4, then x1.5, then x1.5 again. Use a single value to switch adaptivity off.
  std::vector<double> tolfacs{1.4, 2.1, 3.15};
  double min_total = 0.01;   // sum(y) below this (DN/s) -> BpStatus::no_counts
  int max_iterations = 400;  // simplex iterations per LP before BpStatus::not_converged
  int threads = 0;           // 0: default_threads(); at most max_threads()
  // Start each pixel's simplex from the previous pixel's final basis (within blocks of 64
  // pixels, so results do not depend on the thread count). Same optima, fewer iterations
  // on images; off: every pixel starts from the all-logical basis.
  bool warm_start = true;
};

// Outputs of BasisPursuit::solve, all caller-owned. Arrays are pixel-last: coeffs is
// (ncoef, npix) row-major. `iterations` may be null.
struct BpOutput {
  double* coeffs = nullptr;            // (ncoef, npix), units of the dictionary (1e26 cm^-5)
  std::int8_t* status = nullptr;       // (npix) BpStatus
  double* tolfac = nullptr;            // (npix) tolfac of the last attempt (the successful one if ok)
  double* objective = nullptr;         // (npix) sum of coeffs (0 unless ok)
  std::int32_t* iterations = nullptr;  // (npix) simplex iterations over all attempts
  double* model = nullptr;             // optional (nchan, npix): D coeffs, the re-synthesised data
  double* em = nullptr;                // optional (nT, npix): basis^T coeffs * em_unit (set_basis)
};

// Monte-Carlo error estimate for BasisPursuit::solve. Every solved pixel is solved again
// n_samples times with its data perturbed by sigma * N(0, 1) (negative values set to 0, as
// for the data), at the tolfac that solved it, each draw warm-started from the last. The draws
// of pixel i come from a generator seeded by (seed, first_pixel + i) alone, so the estimate
// does not depend on the thread count, nor on how an image is split into calls (pass each
// call's offset as first_pixel); the pixel's own solution is unchanged. Statistics are over the feasible
// draws (sample standard deviation): NaN where fewer than two draws were feasible or where the
// pixel itself was not solved. Every output pointer may be null.
struct BpMonteCarlo {
  int n_samples = 0;  // 0: no estimate
  std::uint64_t seed = 0;
  std::uint64_t first_pixel = 0;        // index of pixel 0 of this call in the whole image
  const double* logt = nullptr;         // (nT) bin centres, for logt_std (needs set_basis)
  double* em_std = nullptr;             // (nT, npix), units of em (needs set_basis)
  double* logt_std = nullptr;           // (npix) of the EM-weighted mean log T
  double* total_em_std = nullptr;       // (npix) of the total EM, units of em
  double* feasible_fraction = nullptr;  // (npix) feasible draws / n_samples
};

class BasisPursuit {
 public:
  // dictionary: row-major (nchan x ncoef), finite. Throws InvalidArgument otherwise.
  BasisPursuit(std::vector<double> dictionary, std::size_t nchan, std::size_t ncoef, BpOptions options = {});

  std::size_t nchan() const { return nchan_; }
  std::size_t ncoef() const { return ncoef_; }
  const std::vector<double>& dictionary() const { return dict_; }
  const BpOptions& options() const { return opts_; }

  // Basis (ncoef x nT, row-major, nT <= kMaxBins) and unit (e.g. 1e26 cm^-5) so that solve()
  // can also write the EM per bin (BpOutput::em) from the few nonzero coefficients.
  static constexpr int kMaxBins = 256;
  void set_basis(std::vector<double> basis, std::size_t nt, double em_unit);
  const std::vector<double>& basis() const { return basis_; }
  std::size_t nt() const { return nt_; }
  double em_unit() const { return em_unit_; }

  // y, sigma: (nchan, npix) row-major in DN s^-1 (sigma is the 1-sigma error, eta =
  // tolfac*sigma). Negative y are set to 0; non-finite y/sigma or negative sigma give
  // BpStatus::bad_input for that pixel only. Thread-safe; parallel over pixels with OpenMP.
  // With `mc` (n_samples > 0), also the Monte-Carlo error estimate (see BpMonteCarlo).
  // threads > 0 overrides options().threads for this call.
  void solve(const double* y, const double* sigma, std::size_t npix, const BpOutput& out, const BpMonteCarlo& mc = {},
             int threads = 0) const;

 private:
  std::vector<double> dict_;
  std::size_t nchan_, ncoef_;
  BpOptions opts_;
  std::vector<double> row_scale_;  // per-channel scale so that every row of D peaks at 1
  std::vector<double> basis_;      // optional, for BpOutput::em
  std::size_t nt_ = 0;
  double em_unit_ = 1.0;
};

}  // namespace fastinv::dem
