// Farkas certificates that a pixel's band LP has no solution, tested before solving it.
//
// Basis Pursuit and DeepEM's refinement ask, per pixel and tolfac, for some x >= 0 with
// lo <= A x <= up (A >= 0: the responses, rows scaled). By Farkas' lemma there is none iff
// some lambda with lambda^T A >= 0 (every column) has
//
//     g(lambda) = sum_c max(lambda_c, 0) up_c + sum_c min(lambda_c, 0) lo_c  <  0.
//
// On each orthant of lambda, g is linear and the lambdas form a polyhedral cone, so g < 0
// somewhere iff it is < 0 on one of the cone's extreme rays. Those rays depend on A alone:
// they are enumerated once per response and each pixel's band is tested in O(rays x rows),
// vectorised over a tile's 16 pixels. A proof is only accepted with a margin (kMargin of the
// band's top) far above the simplex's tolerances, so a rung it skips is one the simplex would
// have found infeasible: the outcome (status, tolfac, EM) is the same, only the work differs.
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "dem/dual_simplex.hpp"  // FASTINV_DEM_INTERNAL

namespace fastinv::dem {

class FASTINV_DEM_INTERNAL BandCertificates {
 public:
  static constexpr int kW = 16;            // lanes per test: the engine's tile width
  static constexpr int kMaxRows = 8;       // rows (channels) supported
  static constexpr double kMargin = 1e-5;  // a proof must hold by this fraction of max(up)
  // Enumeration budget (~0.6 us per subset): beyond it, e.g. more than 30 extreme columns with
  // 6 rows, no certificates are built.
  static constexpr double kMaxSubsets = 4e5;

  // A: m x n row-major, finite and >= 0, 2 <= m <= kMaxRows (otherwise, or beyond
  // kMaxSubsets, no certificates are built and nothing is ever proven).
  BandCertificates(const double* A, int m, int n);

  // The certificates of A, shared between all users of the same matrix in this process
  // (their enumeration costs ~40-90 ms for 21 bins; an inversion call builds its refiner and
  // BP its scaled dictionary each time).
  static std::shared_ptr<const BandCertificates> of(const double* A, int m, int n);

  // The adaptive-tolfac ladder on a tile: for lanes j < lanes with data y[c][j] (negative
  // values count as 0, as BP sets them) and errors sig[c][j], the index of the first tolfac
  // whose band max(y - tf sig, 0) / row_scale[c] <= (A x)_c <= (y + tf sig) / row_scale[c] is not
  // proven empty by more than kMargin * max_c up_c (tolfacs.size(): every one is). A wider band
  // is tested only with the groups of certificates that proved a narrower one empty for some
  // lane: g only grows as lo falls and up rises. scratch: 2 * groups() ints.
  void first_rungs(const double (*y)[kW], const double (*sig)[kW], const double* row_scale,
                   const std::vector<double>& tolfacs, int lanes, int* rung, int* scratch) const;

  int groups() const { return int(groups_.size()); }

  // Certificates [begin, end) with one sign pattern: row c's term is coef * bound src[c]
  // (c: up_c, m + c: lo_c).
  struct Group {
    int begin, end;
    std::uint8_t src[kMaxRows];
  };

 private:
  int m_ = 0, count_ = 0;
  std::vector<float> coef_;  // ray r's row c: coef_[r * m_ + c]
  std::vector<Group> groups_;
};

}  // namespace fastinv::dem
