// A dense bounded dual simplex for small LPs of the form
//
//     minimise c^T x   subject to   lo <= A x <= up,   0 <= x <= u,   with c >= 0,
//
// (u = +inf unless set_upper() gives finite upper bounds, as DeepEM's refinement does for its
// split variables),
// with few rows (m, here the 6 AIA channels) and a few dozen to hundreds of columns.
// It works on A x - r = 0 with the row activities r as boxed logical variables. Because
// c >= 0, the all-logical basis (x = 0) is dual feasible from the start, so no phase 1 is
// needed, and a pixel's retry with a wider band (adaptive tolfac) restarts from the last
// basis, which stays dual feasible because only the bounds change.
//
// The basis inverse (m x m) is kept explicitly and refactorised from scratch (Gauss-Jordan,
// partial pivoting) every few iterations and before any verdict, so verdicts never rest on
// drifted values. Pricing is exact dual steepest edge (the weights are the squared row
// norms of B^-1, which we have), the ratio test is a two-pass (tie window + largest pivot),
// and after a run of degenerate pivots the solver switches to Bland's smallest-index rule,
// which cannot cycle.
#pragma once
#include <cstdint>
#include <vector>

namespace fastinv::dem {

enum class LpResult { optimal, infeasible, not_converged };

// Hidden: an internal class of libfastinv, so that -fPIC does not make its small member
// functions interposable (that kept set_state and friends out of line: a PLT call per use).
#if defined(__GNUC__)
#define FASTINV_DEM_INTERNAL __attribute__((visibility("hidden")))
#else
#define FASTINV_DEM_INTERNAL
#endif

class FASTINV_DEM_INTERNAL DualSimplex {
 public:
  // A: row-major m x n, referenced (must outlive this object). c: n costs, all >= 0.
  DualSimplex(const double* A, int m, int n, const double* c);

  // Forget any previous basis (start from the all-logical basis).
  void reset();

  // Upper bounds of the structurals (n values, >= 0, +inf allowed; 0 fixes a variable at 0),
  // used from the next solve on. A nonbasic structural at an upper bound that becomes +inf
  // moves to 0. Without a call every upper bound is +inf.
  void set_upper(const double* u);

  // Solve with row bounds lo <= A x <= up (lo <= up, finite). Starts from the current
  // basis (the last solve's, or the all-logical one after reset()). Tolerances are absolute
  // and meant for a problem scaled so that max(up) ~ 1.
  LpResult solve(const double* lo, const double* up, int max_iter, double feas_tol);

  // After a solve that returned infeasible: whether its infeasibility certificate (the
  // tableau row of the basic variable that could not reach its bound) still proves the LP
  // infeasible with the row bounds lo/up and the structurals' current upper bounds (set_upper),
  // by more than a margin far above the solver's tolerances. It costs O(n + m) instead of a
  // solve; false (no proof, solve it) whenever the last solve was not infeasible.
  bool still_infeasible(const double* lo, const double* up) const;

  // Structural solution x (n values) and objective c^T x of the last solve.
  const double* x() const { return val_.data(); }
  double objective() const;
  int iterations() const { return iterations_; }

 private:
  enum : std::int8_t { kLower = 0, kUpper = 1, kBasic = 2 };

  // M: the number of rows as a compile-time constant (0: m_ at run time).
  template <int M>
  LpResult solve_m(const double* lo, const double* up, int max_iter, double feas_tol);
  template <int M>
  bool refactor();  // B^-1 from the basis columns; false if singular
  template <int M>
  void compute_primal();  // basic values from nonbasic ones
  template <int M>
  void compute_duals();  // reduced costs from B^-1 and c
  template <int M>
  void column(int j, double* out) const;   // B^-1 a_j
  void set_state(int j, std::int8_t st) {  // keeps dir_ in step with state_
    state_[j] = st;
    dir_[j] = (st == kBasic || lb_[j] == ub_[j]) ? 0.0 : (st == kLower ? 1.0 : -1.0);
  }
  // The bound-flipping ratio test: moves to the front of cand_, in breakpoint order, the
  // candidates that can flip while x_leave stays infeasible, and returns how many (nkeep:
  // all can, the LP is infeasible).
  int long_step(double infeasibility, int nkeep);
  template <int M>
  void flip(int nflip);  // moves cand_[0..nflip) to their other bounds
  // Whether the current values are optimal by a margin no drift of B^-1 could cross.
  bool settled(double feas_tol) const;
  // x_leave's infeasibility left after all nkeep candidates flipped.
  double remaining(double infeasibility, int nkeep) const;

  const double* A_;
  int m_, n_;
  const double* c_;
  std::vector<double> lb_, ub_, val_, d_, binv_, alpha_row_, alpha_col_, work_;
  // Ratio-test direction of each variable: +1 nonbasic at lower, -1 at upper, 0 basic/fixed.
  std::vector<double> dir_;
  std::vector<int> head_, cand_;
  // Per entering candidate (in cand_'s order): breakpoint max(dir d, 0) / t, Harris bound
  // (max(dir d, 0) + tol) / t, and pivot t = sgn dir alpha.
  std::vector<double> ratio_, harris_, tval_;
  std::vector<std::int8_t> state_;
  int iterations_ = 0;
  bool mirrored_ = false;  // A = [K, -K]: the pivot row's second half is its first negated
  bool pristine_ = false;  // all-logical basis with B^-1 = -I, d = c, x = 0: no refactor needed
  bool boxed_ = false;     // some structural has a finite upper bound (set_upper)
  // binv_ is exactly what refactor() gives for head_ (no pivot since the last one): a retry
  // with new bounds (the next tolfac) need not refactorise again.
  bool factored_ = false;
  // The last infeasible verdict's certificate: alpha_row_ (untouched since), the leaving
  // variable and its violated side; cert_leave_ < 0 if there is none.
  int cert_leave_ = -1;
  bool cert_below_ = false;
};

}  // namespace fastinv::dem
