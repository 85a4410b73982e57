#include "dem/dual_simplex.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

namespace fastinv::dem {

namespace {
constexpr double kInf = std::numeric_limits<double>::infinity();
// Dual feasibility slack of the Harris ratio test, and what we still accept as optimal
// after the final refactorisation (costs are O(1): the objective error is ~ this * sum x).
constexpr double kDualTol = 1e-9;
constexpr double kDualAccept = 1e-7;
constexpr int kRefactorEvery = 24;  // bound the drift of the product-form B^-1 updates
constexpr int kDegenerateRun = 16;  // degenerate pivots in a row before Bland's rule
// Boxed problems (DeepEM's refinement) take a verdict on the product-form values, without the
// refactorisation, when no drift could change it: an infeasibility this large (on a problem
// scaled to max(up) = 1; the few updates since the last factorisation drift by ~1e-15), or an
// optimum whose values are all inside their bounds/signs by a wide margin (settled()).
constexpr double kDecisive = 1e-8;
}  // namespace

DualSimplex::DualSimplex(const double* A, int m, int n, const double* c)
    : A_(A),
      m_(m),
      n_(n),
      c_(c),
      lb_(n + m, 0.0),
      ub_(n + m, kInf),
      val_(n + m, 0.0),
      d_(n + m, 0.0),
      binv_(static_cast<size_t>(m) * m, 0.0),
      alpha_row_(n + m, 0.0),
      alpha_col_(m, 0.0),
      work_(static_cast<size_t>(m) * 2 * m, 0.0),
      dir_(n + m, 0.0),
      head_(m, 0),
      cand_(n + m, 0),
      ratio_(n + m, 0.0),
      harris_(n + m, 0.0),
      tval_(n + m, 0.0),
      state_(n + m, kLower) {
  mirrored_ = n > 0 && n % 2 == 0;
  for (int i = 0; i < m && mirrored_; ++i)
    for (int j = 0; j < n / 2; ++j) mirrored_ = mirrored_ && A[i * n + n / 2 + j] == -A[i * n + j];
  reset();
}

void DualSimplex::reset() {
  for (int j = 0; j < n_; ++j) {
    set_state(j, kLower);
    val_[j] = 0.0;
  }
  for (int i = 0; i < m_; ++i) {
    head_[i] = n_ + i;
    set_state(n_ + i, kBasic);
  }
  // B = -I exactly, y = 0, d = c: the state a fresh factorisation would give.
  std::fill(binv_.begin(), binv_.end(), 0.0);
  for (int i = 0; i < m_; ++i) binv_[i * m_ + i] = -1.0;
  for (int j = 0; j < n_; ++j) d_[j] = c_[j];
  for (int i = 0; i < m_; ++i) d_[n_ + i] = 0.0;
  pristine_ = true;
  factored_ = false;
  cert_leave_ = -1;
}

void DualSimplex::set_upper(const double* u) {
  for (int j = 0; j < n_; ++j) {
    ub_[j] = u[j];
    if (state_[j] == kUpper) {
      if (std::isfinite(u[j])) {
        val_[j] = u[j];
      } else {
        state_[j] = kLower;
        val_[j] = 0.0;
      }
    }
    set_state(j, state_[j]);  // a structural may have become fixed (u = 0) or free again
    if (std::isfinite(u[j])) boxed_ = true;
  }
}

double DualSimplex::objective() const {
  double s = 0.0;
  for (int j = 0; j < n_; ++j) s += c_[j] * val_[j];
  return s;
}

template <int M>
bool DualSimplex::refactor() {
  // Gauss-Jordan on [B | I] with partial pivoting; m is tiny, so this is cheap and exact
  // enough to be the ground truth every verdict is checked against.
  const int m = M > 0 ? M : m_, w = 2 * m;
  factored_ = false;
  double* T = work_.data();
  std::fill(work_.begin(), work_.end(), 0.0);
  for (int p = 0; p < m; ++p) {
    const int j = head_[p];
    for (int i = 0; i < m; ++i) T[i * w + p] = (j < n_) ? A_[i * n_ + j] : (j - n_ == i ? -1.0 : 0.0);
  }
  for (int i = 0; i < m; ++i) T[i * w + m + i] = 1.0;
  for (int k = 0; k < m; ++k) {
    int piv = k;
    for (int i = k + 1; i < m; ++i)
      if (std::fabs(T[i * w + k]) > std::fabs(T[piv * w + k])) piv = i;
    const double pv = T[piv * w + k];
    if (!(std::fabs(pv) > 1e-13)) return false;
    if (piv != k)
      for (int c = 0; c < w; ++c) std::swap(T[k * w + c], T[piv * w + c]);
    const double inv = 1.0 / pv;
    for (int c = 0; c < w; ++c) T[k * w + c] *= inv;
    for (int i = 0; i < m; ++i) {
      if (i == k) continue;
      const double f = T[i * w + k];
      if (f == 0.0) continue;
      for (int c = 0; c < w; ++c) T[i * w + c] -= f * T[k * w + c];
    }
  }
  for (int i = 0; i < m; ++i)
    for (int c = 0; c < m; ++c) binv_[i * m + c] = T[i * w + m + c];
  factored_ = true;
  return true;
}

template <int M>
void DualSimplex::compute_primal() {
  const int m = M > 0 ? M : m_;
  // A x - r = 0 with nonbasic structurals at 0  =>  B x_B = v, v_i = r_i if r_i nonbasic.
  for (int i = 0; i < m; ++i) alpha_col_[i] = (state_[n_ + i] != kBasic) ? val_[n_ + i] : 0.0;
  // ... less the columns of structurals held at a (finite) upper bound
  if (boxed_)
    for (int j = 0; j < n_; ++j)
      if (state_[j] == kUpper)
        for (int i = 0; i < m; ++i) alpha_col_[i] -= A_[i * n_ + j] * val_[j];
  for (int p = 0; p < m; ++p) {
    double s = 0.0;
    for (int i = 0; i < m; ++i) s += binv_[p * m + i] * alpha_col_[i];
    val_[head_[p]] = s;
  }
}

template <int M>
void DualSimplex::compute_duals() {
  const int m = M > 0 ? M : m_;
  double y[16];
  double* yv = (m <= 16) ? y : work_.data();  // m <= 16 in practice; work_ has 2m*m >= m
  for (int i = 0; i < m; ++i) {
    double s = 0.0;
    for (int p = 0; p < m; ++p) {
      const int j = head_[p];
      if (j < n_) s += c_[j] * binv_[p * m + i];
    }
    yv[i] = s;
  }
  // d_j = c_j - y_0 A_0j - y_1 A_1j - ...: row by row, so that the loop over j vectorises
  // (each d_j's terms in the same order as a column-wise sum).
  double* d = d_.data();
  for (int j = 0; j < n_; ++j) d[j] = c_[j];
  for (int i = 0; i < m; ++i) {
    const double yi = yv[i];
    const double* Ai = A_ + static_cast<size_t>(i) * n_;
    for (int j = 0; j < n_; ++j) d[j] -= yi * Ai[j];
  }
  for (int i = 0; i < m; ++i) d_[n_ + i] = yv[i];
  for (int p = 0; p < m; ++p) d_[head_[p]] = 0.0;
  // A boxed variable stays dual feasible by sitting at the bound its reduced cost asks for.
  if (boxed_)
    for (int j = 0; j < n_; ++j) {
      if (state_[j] == kLower && d_[j] < 0.0 && std::isfinite(ub_[j])) {
        set_state(j, kUpper);
        val_[j] = ub_[j];
      } else if (state_[j] == kUpper && d_[j] > 0.0) {
        set_state(j, kLower);
        val_[j] = lb_[j];
      }
    }
  for (int i = 0; i < m; ++i) {
    const int j = n_ + i;
    if (state_[j] == kLower && d_[j] < 0.0) {
      set_state(j, kUpper);
      val_[j] = ub_[j];
    } else if (state_[j] == kUpper && d_[j] > 0.0) {
      set_state(j, kLower);
      val_[j] = lb_[j];
    }
  }
}

template <int M>
void DualSimplex::column(int j, double* out) const {
  const int m = M > 0 ? M : m_;
  if (j < n_) {
    for (int p = 0; p < m; ++p) {
      double s = 0.0;
      for (int i = 0; i < m; ++i) s += binv_[p * m + i] * A_[i * n_ + j];
      out[p] = s;
    }
  } else {
    const int i = j - n_;
    for (int p = 0; p < m; ++p) out[p] = -binv_[p * m + i];
  }
}

bool DualSimplex::settled(double feas_tol) const {
  // Optimal with a margin no drift can cross: every basic value within its bounds to 1 % of
  // the tolerance the fresh verdict allows, every reduced cost's sign right to half of it.
  const double tol = 0.01 * feas_tol;
  for (int r = 0; r < m_; ++r) {
    const int j = head_[r];
    if (!(val_[j] >= lb_[j] - tol && val_[j] <= ub_[j] + tol)) return false;
  }
  for (int j = 0; j < n_; ++j)
    if (dir_[j] * d_[j] < -0.5 * kDualAccept) return false;
  return true;
}

double DualSimplex::remaining(double infeasibility, int nkeep) const {
  for (int c = 0; c < nkeep; ++c) {
    const int j = cand_[c];
    infeasibility -= tval_[c] * (ub_[j] - lb_[j]);
  }
  return infeasibility;
}

int DualSimplex::long_step(double infeasibility, int nkeep) {
  // Breakpoints ratio_ in increasing order (ties by index), selected one at a time: usually
  // only a few flip before one must enter. cand_ (and its ratio_, harris_, tval_) ends with
  // the flipping ones first.
  // All candidates flip when even their total step leaves x_leave infeasible (the verdict
  // "infeasible" of every narrower tolfac): one pass then decides what the selection below would
  // find after nkeep scans. The steps are positive, so the selection's last test is the binding
  // one; the margin covers the summation order, and anything closer takes the selection.
  double total = 0.0;
  bool bounded = true;
  for (int c = 0; c < nkeep; ++c) {
    const int j = cand_[c];
    const double range = ub_[j] - lb_[j];
    bounded = bounded && std::isfinite(range);
    total += tval_[c] * range;
  }
  if (bounded && infeasibility - total > 1e-12 * (infeasibility + total)) return nkeep;
  int nflip = 0;
  for (; nflip < nkeep; ++nflip) {
    // The smallest (ratio, index), branch-free: the comparisons' outcomes are data-dependent.
    int best = nflip, best_j = cand_[nflip];
    double best_r = ratio_[nflip];
    for (int c = nflip + 1; c < nkeep; ++c) {
      const double r = ratio_[c];
      const int jc = cand_[c];
      const bool less = (r < best_r) | ((r == best_r) & (jc < best_j));
      best = less ? c : best;
      best_j = less ? jc : best_j;
      best_r = less ? r : best_r;
    }
    const int j = cand_[best];
    const double range = ub_[j] - lb_[j];
    if (!std::isfinite(range)) break;
    const double step = tval_[best] * range;
    if (!(infeasibility - step > 0.0)) break;
    infeasibility -= step;
    std::swap(cand_[nflip], cand_[best]);
    std::swap(ratio_[nflip], ratio_[best]);
    std::swap(harris_[nflip], harris_[best]);
    std::swap(tval_[nflip], tval_[best]);
  }
  return nflip;
}

template <int M>
void DualSimplex::flip(int nflip) {
  const int m = M > 0 ? M : m_;
  // cand_[0..nflip) go to their other bound; the basic values follow: x_B -= B^-1 sum a_j dx_j.
  double v[16] = {};
  double* vv = (m <= 16) ? v : work_.data();
  if (m > 16) std::fill(vv, vv + m, 0.0);
  for (int c = 0; c < nflip; ++c) {
    const int j = cand_[c];
    const bool to_upper = state_[j] == kLower;
    const double dx = (to_upper ? ub_[j] : lb_[j]) - val_[j];
    val_[j] += dx;
    set_state(j, to_upper ? kUpper : kLower);
    if (j < n_)
      for (int i = 0; i < m; ++i) vv[i] += A_[i * n_ + j] * dx;
    else
      vv[j - n_] -= dx;
  }
  for (int r = 0; r < m; ++r) {
    double s = 0.0;
    for (int i = 0; i < m; ++i) s += binv_[r * m + i] * vv[i];
    val_[head_[r]] -= s;
  }
}

template <int M>
LpResult DualSimplex::solve_m(const double* lo, const double* up, int max_iter, double feas_tol) {
  const int m = M > 0 ? M : m_, n = n_, nt = n_ + m;
  for (int i = 0; i < m; ++i) {
    lb_[n + i] = lo[i];
    ub_[n + i] = up[i];
    if (state_[n + i] == kLower) val_[n + i] = lo[i];
    if (state_[n + i] == kUpper) val_[n + i] = up[i];
    set_state(n + i, state_[n + i]);  // a logical may have become fixed (lo = up) or free
  }
  iterations_ = 0;
  cert_leave_ = -1;
  if (pristine_) {
    for (int i = 0; i < m; ++i) val_[n + i] = 0.0;  // r = A x = 0
  } else {
    // The last verdict's factorisation is still exact (a wider tolfac's retry): reuse it.
    if (!factored_ && !refactor<M>()) {
      reset();
      if (!refactor<M>()) return LpResult::not_converged;
    }
    compute_duals<M>();
    compute_primal<M>();
  }
  pristine_ = false;
  bool fresh = true;  // values were just recomputed from a fresh factorisation
  int since_refactor = 0, degenerate = 0;
  bool bland = false;

  auto refresh = [&]() -> bool {
    if (!refactor<M>()) return false;
    compute_duals<M>();
    compute_primal<M>();
    fresh = true;
    since_refactor = 0;
    return true;
  };

  while (true) {
    // --- pricing: the most infeasible basic variable by dual steepest edge ---------------
    int p = -1;
    double best = 0.0;
    for (int r = 0; r < m; ++r) {
      const int j = head_[r];
      double delta = 0.0;
      if (val_[j] < lb_[j] - feas_tol)
        delta = lb_[j] - val_[j];
      else if (val_[j] > ub_[j] + feas_tol)
        delta = val_[j] - ub_[j];
      if (delta == 0.0) continue;
      if (bland) {
        if (p < 0 || j < head_[p]) p = r;
        continue;
      }
      double w = 0.0;
      for (int i = 0; i < m; ++i) w += binv_[r * m + i] * binv_[r * m + i];
      const double score = delta * delta / w;
      if (score > best) {
        best = score;
        p = r;
      }
    }
    if (p < 0) {
      if (!fresh && !(boxed_ && settled(feas_tol))) {
        if (!refresh()) return LpResult::not_converged;
        continue;
      }
      for (int j = 0; j < n; ++j)
        if (dir_[j] * d_[j] < -kDualAccept) return LpResult::not_converged;  // 0 if basic or fixed
      return LpResult::optimal;
    }
    if (iterations_ >= max_iter) return LpResult::not_converged;

    // --- pivot row alpha_j = (e_p^T B^-1) a_j ----------------------------------------------
    const double* rho = &binv_[p * m];
    double* arow = alpha_row_.data();
    // A = [K, -K] (DeepEM's split variables): the second half is the first negated, exactly
    // (rounding is symmetric; only an exact 0 could differ, in its sign, which no test reads).
    const int nsum = mirrored_ ? n / 2 : n;
    std::fill(arow, arow + nsum, 0.0);
    for (int i = 0; i < m; ++i) {
      const double ri = rho[i];
      const double* Ai = A_ + static_cast<size_t>(i) * n;
      for (int j = 0; j < nsum; ++j) arow[j] += ri * Ai[j];
    }
    for (int j = nsum; j < n; ++j) arow[j] = -arow[j - nsum];
    for (int i = 0; i < m; ++i) arow[n + i] = -rho[i];
    // --- ratio test ----------------------------------------------------------------------
    // Entering candidates move x_leave towards its violated bound without breaking dual
    // feasibility: (at lower, alpha < 0) or (at upper, alpha > 0) when below, mirrored above.
    // With dir_j = +1 at lower, -1 at upper, 0 basic/fixed and sgn = -1 below, +1 above,
    // that is t_j = sgn * dir_j * alpha_j > ptol, and the dual slack is max(dir_j d_j, 0).
    const int leave = head_[p];
    const bool below = val_[leave] < lb_[leave];
    const double sgn = below ? -1.0 : 1.0;
    // Branch-free: which candidates pass is data-dependent and mispredicts; four running
    // maxima instead of one chain (max is exact, so the order does not matter).
    double amax4[4] = {0.0, 0.0, 0.0, 0.0};
    int ncand = 0;
    int* cand = cand_.data();
    const double* dir = dir_.data();
    for (int j = 0; j < nt; ++j) {
      const double a = dir[j] * arow[j];
      amax4[j & 3] = std::max(amax4[j & 3], std::fabs(a));
      cand[ncand] = j;
      ncand += sgn * a > 1e-11;
    }
    const double amax = std::max(std::max(amax4[0], amax4[1]), std::max(amax4[2], amax4[3]));
    const double ptol = std::max(1e-11, 1e-9 * amax);
    // Pass 1 (Harris): the largest step that keeps every d within kDualTol. Under Bland's
    // rule the exact minimum ratio instead (ties only), so its no-cycling argument holds.
    const double slack_tol = bland ? 0.0 : kDualTol;
    double theta_max = kInf;
    int nkeep = 0;
    // Each candidate's pivot t, breakpoint (ratio_) and Harris bound, computed once here for
    // the bound flipping and pass 2.
    for (int c = 0; c < ncand; ++c) {
      const int j = cand_[c];
      const double t = sgn * dir_[j] * arow[j];
      if (t <= ptol) continue;
      const double slack = std::max(dir_[j] * d_[j], 0.0);
      cand_[nkeep] = j;
      tval_[nkeep] = t;
      ratio_[nkeep] = slack / t;
      harris_[nkeep] = (slack + slack_tol) / t;
      theta_max = std::min(theta_max, harris_[nkeep]);
      ++nkeep;
    }
    if (bland) theta_max = theta_max * (1.0 + 1e-12) + 1e-300;
    if (nkeep == 0) {
      // No entering candidate: x_leave cannot reach its bound, i.e. the LP is infeasible.
      // Only believe it on freshly factorised values, or (boxed) when it is decisive.
      if (!fresh && !(boxed_ && (below ? lb_[leave] - val_[leave] : val_[leave] - ub_[leave]) > kDecisive)) {
        if (!refresh()) return LpResult::not_converged;
        continue;
      }
      cert_leave_ = leave;
      cert_below_ = below;
      return LpResult::infeasible;
    }
    // Bound flipping (boxed problems, not under Bland): the candidates whose breakpoints come
    // first and whose other bound is finite may jump to it instead of entering, as long as
    // x_leave stays infeasible: fewer, longer steps (DeepEM's refinement on the synoptic
    // frame: 6.6 iterations per pixel instead of 20.8).
    if (boxed_ && !bland) {
      const int nflip = long_step(below ? lb_[leave] - val_[leave] : val_[leave] - ub_[leave], nkeep);
      if (nflip == nkeep) {  // every candidate flips and x_leave is still infeasible
        if (!fresh && !(remaining(below ? lb_[leave] - val_[leave] : val_[leave] - ub_[leave], nkeep) > kDecisive)) {
          if (!refresh()) return LpResult::not_converged;
          continue;
        }
        cert_leave_ = leave;
        cert_below_ = below;
        return LpResult::infeasible;
      }
      if (nflip > 0) {
        theta_max = kInf;  // Harris again over the candidates left
        for (int c = nflip; c < nkeep; ++c) theta_max = std::min(theta_max, harris_[c]);
        flip<M>(nflip);
        std::copy(cand_.begin() + nflip, cand_.begin() + nkeep, cand_.begin());
        std::copy(ratio_.begin() + nflip, ratio_.begin() + nkeep, ratio_.begin());
        std::copy(tval_.begin() + nflip, tval_.begin() + nkeep, tval_.begin());
        nkeep -= nflip;
      }
    }
    // Pass 2: within that step, the largest pivot (or the smallest index under Bland).
    int q = -1;
    double qa = 0.0;
    for (int c = 0; c < nkeep; ++c) {
      const int j = cand_[c];
      const double t = tval_[c];
      if (ratio_[c] > theta_max) continue;
      if (bland) {
        if (q < 0) q = j;  // candidates are in ascending j: the first is the smallest index
      } else if (t > qa) {
        qa = t;
        q = j;
      }
    }

    // --- pivot column and consistency check ------------------------------------------------
    double* acol = alpha_col_.data();
    column<M>(q, acol);
    const double apq = acol[p];
    if (std::fabs(apq - arow[q]) > 1e-8 * (1.0 + std::fabs(apq)) || std::fabs(apq) <= ptol * 0.5) {
      if (!fresh) {
        if (!refresh()) return LpResult::not_converged;
        continue;
      }
      return LpResult::not_converged;
    }

    // --- dual update: d_j -= theta_d * alpha_j; the leaving variable gets -theta_d ----------
    double dq = d_[q];
    if (state_[q] == kLower ? dq < 0.0 : dq > 0.0) dq = 0.0;  // Harris slack: clamp to 0
    const double theta_d = dq / arow[q];
    // Basic d_j are never read (dir_ = 0) and are reset on refactorisation: update all.
    if (theta_d != 0.0)
      for (int j = 0; j < nt; ++j) d_[j] -= theta_d * arow[j];
    d_[q] = 0.0;
    d_[leave] = -theta_d;
    degenerate = (std::fabs(theta_d) <= 1e-12) ? degenerate + 1 : 0;
    if (degenerate > kDegenerateRun) bland = true;

    // --- primal update: x_leave goes to its violated bound ---------------------------------
    const double bound = below ? lb_[leave] : ub_[leave];
    const double theta_p = (val_[leave] - bound) / apq;
    for (int r = 0; r < m; ++r) val_[head_[r]] -= theta_p * acol[r];
    val_[q] += theta_p;
    val_[leave] = bound;
    set_state(leave, below ? kLower : kUpper);
    set_state(q, kBasic);
    head_[p] = q;

    // --- B^-1 update (one Gauss-Jordan step on the entering column) ------------------------
    factored_ = false;
    double* bp = &binv_[p * m];
    const double inv = 1.0 / apq;
    for (int i = 0; i < m; ++i) bp[i] *= inv;
    for (int r = 0; r < m; ++r) {
      if (r == p) continue;
      const double f = acol[r];
      if (f == 0.0) continue;
      double* br = &binv_[r * m];
      for (int i = 0; i < m; ++i) br[i] -= f * bp[i];
    }

    ++iterations_;
    fresh = false;
    if (++since_refactor >= kRefactorEvery && !refresh()) return LpResult::not_converged;
  }
}

bool DualSimplex::still_infeasible(const double* lo, const double* up) const {
  if (cert_leave_ < 0) return false;
  // Row p of the tableau: x_leave = -sum_j alpha_j z_j over the nonbasic z_j (the other basic
  // variables' alpha are 0). Its most favourable value over the nonbasics' boxes, new bounds:
  // the certificate holds if even that misses x_leave's violated bound.
  const int n = n_, nt = n_ + m_;
  auto lower = [&](int j) { return j < n ? lb_[j] : lo[j - n]; };
  auto upper = [&](int j) { return j < n ? ub_[j] : up[j - n]; };
  const double toward = cert_below_ ? 1.0 : -1.0;  // the direction x_leave must move
  double best = 0.0, scale = 0.0;
  for (int j = 0; j < nt; ++j) {
    if (state_[j] == kBasic) continue;
    const double a = -alpha_row_[j];  // d x_leave / d z_j
    if (a == 0.0) continue;
    const double b = (toward * a > 0.0) ? upper(j) : lower(j);
    if (!std::isfinite(b)) return false;  // unbounded that way: no proof
    best += a * b;
    scale += std::fabs(a * b);
  }
  const int l = cert_leave_;
  const double bound = cert_below_ ? lower(l) : upper(l);
  // Far above the solver's tolerances (feas_tol ~1e-10 on a problem scaled to max(up) = 1)
  // and the rounding of the sum: a pixel this close to feasible is solved, as before.
  const double margin = 1e-8 * (1.0 + scale + std::fabs(bound));
  return cert_below_ ? best < bound - margin : best > bound + margin;
}

LpResult DualSimplex::solve(const double* lo, const double* up, int max_iter, double feas_tol) {
  // The 6 AIA channels: with m a constant the loops over rows unroll (same operations, same order).
  if (m_ == 6) return solve_m<6>(lo, up, max_iter, feas_tol);
  return solve_m<0>(lo, up, max_iter, feas_tol);
}

}  // namespace fastinv::dem
