// Basis Pursuit DEMs of AIA data as an application: response table -> grid -> basis ->
// dictionary, the AIA error model, EM in cm^-5, re-synthesis, chi2 and the Monte-Carlo
// errors, with the defaults and arithmetic of python/fastinv/dem/basis_pursuit.py
// (BasisPursuit(...).solve). Immutable once built: any number of threads may call solve()
// at once, each with its own buffers.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "fastinv/dem/basis_pursuit.hpp"
#include "fastinv/dem/deepem.hpp"
#include "fastinv/dem/response.hpp"

namespace fastinv::dem {

struct AiaBpConfig {
  std::string response = "aia_v10_eve";       // shipped table name or CSV path (TemperatureResponse::load)
  std::vector<double> logt;                   // bin centres; empty: 5.5 ... 7.5 step 0.1 (21 bins)
  std::vector<double> widths{0.1, 0.2, 0.6};  // Gaussian widths besides the Dirac basis, > 0
  double tolfac = 1.4;
  bool adaptive = true;  // retry failed pixels at tolfac x1.5 and x2.25
  int max_iterations = 400;
  bool warm_start = true;
};

// Caller-owned outputs, C-contiguous with npix innermost. em and status are required; every
// other pointer may be null.
struct AiaBpOutput {
  double* em = nullptr;                // (nT, npix) cm^-5 per bin, 0 where status != 0
  std::int8_t* status = nullptr;       // (npix) BpStatus
  double* chi2 = nullptr;              // (npix) sum_c ((model - max(y, 0)) / sigma)^2, NaN where status != 0
  double* model = nullptr;             // (6, npix) re-synthesised DN/s
  double* tolfac = nullptr;            // (npix)
  double* objective = nullptr;         // (npix) sum of coefficients, 1e26 cm^-5
  double* coeffs = nullptr;            // (ncoef, npix) 1e26 cm^-5
  std::int32_t* iterations = nullptr;  // (npix)
};

// Monte-Carlo errors (BpMonteCarlo without the grid, which the solver knows).
struct AiaBpErrors {
  int n_samples = 0;  // 0: none
  std::uint64_t seed = 0;
  std::uint64_t first_pixel = 0;
  double* em_err = nullptr;        // (nT, npix) cm^-5
  double* logt_err = nullptr;      // (npix) dex
  double* total_em_err = nullptr;  // (npix) cm^-5
  double* mc_feasible = nullptr;   // (npix)
};

class AiaBasisPursuit {
 public:
  // Throws InvalidArgument / IoError for a bad grid, widths, tolfac or response table.
  explicit AiaBasisPursuit(const AiaBpConfig& config = {});

  std::size_t nchan() const { return solver_.nchan(); }
  std::size_t ncoef() const { return solver_.ncoef(); }
  std::size_t nt() const { return logt_.size(); }
  const std::vector<double>& logt() const { return logt_; }
  const std::vector<double>& response_on_grid() const { return response_; }  // (6, nT)
  const std::string& response_name() const { return response_name_; }
  const BasisPursuit& solver() const { return solver_; }

  // y: (6, npix) DN/s, any strides, float32 or float64. Errors: errors.mode == sigma (DN/s,
  // strided, 0 broadcasts) or aia (exptime per channel, n_sample); `none` is an error (the LP
  // needs sigma). threads <= 0: OpenMP default. Validates everything before any work.
  void solve(const DeepEmInput& y, const DeepEmChi2& errors, const AiaBpOutput& out, const AiaBpErrors& mc = {},
             int threads = 0) const;

 private:
  std::vector<double> logt_;
  std::string response_name_;  // before response_: its initialiser sets the name
  std::vector<double> response_;
  BasisPursuit solver_;
};

}  // namespace fastinv::dem
