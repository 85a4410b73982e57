// DeepEM refinement (fastinv::dem::DeepEmRefine): the LP set-up and per-pixel solve shared by
// the fused tile loop (deepem_fused.cpp) and the stand-alone deepem_refine().
#pragma once
#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

#include "cpu/kernels.hpp"
#include "dem/band_certificates.hpp"
#include "dem/dual_simplex.hpp"
#include "fastinv/dem/deepem.hpp"

namespace fastinv::dem {

// Internal to libfastinv like the DualSimplex it holds (hidden visibility, dual_simplex.hpp).
class FASTINV_DEM_INTERNAL DeepEmRefiner {
 public:
  static constexpr int kW = cpu::kTileWidth;

  // Validates the options (InvalidArgument); kernel (6, n_t) float32 is copied.
  DeepEmRefiner(const float* kernel, int64_t n_t, const DeepEmChi2& errors, const DeepEmRefine& options);

  // One thread's simplex and buffers.
  class Workspace {
   public:
    explicit Workspace(const DeepEmRefiner& r);

   private:
    friend class DeepEmRefiner;
    std::vector<double> cost_, upper_;
    std::vector<int> fired_;  // first_rungs(): two lists of certificates
    DualSimplex lp_;          // after cost_: it keeps a pointer to it
  };

  // The 1-sigma errors (DN/s) of pixel p with raw data y (6 values).
  void sigma(const double* y, int64_t p, double* sig) const;

  // Per lane j < lanes of a tile of raw data y[c][j] and errors sig[c][j]: the index of the first
  // tolfac whose band the Farkas certificates do not prove empty (tolfacs.size(): all are).
  void first_rungs(Workspace& w, const double (*y)[kW], const double (*sig)[kW], int lanes, int* rung) const;

  // One pixel: y and sig (6 each), the network's EM `net` (n_t) -> `em` (n_t, NaN unless ok).
  // The tolfacs before first_rung (first_rungs()) are taken as infeasible without a solve.
  BpStatus pixel(Workspace& w, const double* y, const double* sig, const float* net, float* em, double* tolfac,
                 int32_t* iterations, int first_rung) const;

  // The fused loop's tile: y[c][j] raw data, sig[c][j] its errors (sigma() of the lane, which
  // the loop computes once for the refinement, the error bars and chi2), em[t][j] the network's
  // EM, refined in place, and total[j] its sum over bins (float32, sequential, as the loop forms
  // it); status and tolfac per lane. Pixels first..first+lanes-1 of the frame. Cannot throw (no
  // memory: not_converged).
  void tile(const double (*y)[kW], const double (*sig)[kW], int64_t first, int lanes, float (*em)[kW], float* total,
            int8_t* status, double* tolfac) const noexcept;

  int64_t n_t() const { return n_t_; }

 private:
  int64_t n_t_;
  DeepEmChi2 errors_;
  DeepEmRefine opts_;
  std::vector<double> k_;                          // (6, n_t) response in float64
  std::vector<double> row_scale_;                  // per channel: the row's peak, so that rows of A peak at 1
  std::vector<double> a_;                          // (6, 2 n_t): [K, -K] / row_scale
  std::shared_ptr<const BandCertificates> certs_;  // of K / row_scale
  uint64_t id_;                                    // serial number: tile()'s per-thread workspace is this one's
  static std::atomic<uint64_t> next_id_;
};

}  // namespace fastinv::dem
