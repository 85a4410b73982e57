"""Milne-Eddington inversion throughput: fastinv's C++ Levenberg-Marquardt vs
scipy.optimize.least_squares on the same pixels, the same forward model and the same start.

Run (writes JSON with machine info and a markdown summary into bench/results/)::

    python bench/bench_me_inversion.py

Data: Hinode SP-like profiles (Fe I 6301.5 + 6302.5, Hinode's LSF and 112 samples),
synthesised by fastinv's ME model from random parameters over the ME training sets' ranges
(``sampling.ME_RANGES``: B 0-4 kG, isotropic inclination, eta0 log-uniform 1-60, ...; f = 1)
plus 1e-3 I_c Gaussian noise; 9 free parameters, the classical initial guess (fastinv: up to 3
deterministic restarts for pixels left with reduced chi2 > 2; scipy: one start).

- fastinv, 1 thread and all threads: analytic derivatives (me_deriv_kernel.hpp).
- scipy.optimize.least_squares (trust-region reflective, bounds, 2-point finite-difference
  Jacobian) on fastinv's C++ forward model: the same model cost per evaluation, so the
  ratio measures the optimiser and the derivatives.
- pyMilne (de la Cruz Rodriguez; C++/OpenMP LM) is timed only when ``import pyMilne``
  works (build it outside this repository); otherwise that case is skipped and says so.

Pixels/s are per core (threads=1) unless marked; pixels per CPU-second are recorded too
(the machine is shared). Median reduced chi2, median iterations and the share of pixels
with status ok come with each case.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "passive")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from fastinv import _core  # noqa: E402
from fastinv.stokes import ME_FIT_PARAMETERS, Instrument, MEInversion  # noqa: E402
from fastinv.stokes.synthesis.sampling import sample_me_parameters  # noqa: E402
from profiles import CpuTimed  # noqa: E402
from summarize import Run, write_markdown  # noqa: E402

N_FAST = 1000
N_SCIPY = 30
NOISE = 1e-3


def _truth(n: int, seed: int = 11) -> np.ndarray:
    """(n, 10) parameters over the ME training sets' ranges (f = 1), in ME_FIT_PARAMETERS order."""
    p = sample_me_parameters(n, seed, ranges={"filling_factor": (1, 1, "uniform")})
    return np.column_stack([p[k] for k in ME_FIT_PARAMETERS])


@pytest.fixture(scope="module")
def data():
    inv = MEInversion(instrument=Instrument.hinode_sp(), init="classical")  # network start: bench_me_init.py
    truth = _truth(N_FAST)
    clean = inv.model.synthesize({k: truth[:, i] for i, k in enumerate(ME_FIT_PARAMETERS)}, add_noise=False)
    ic = truth[:, 7] + truth[:, 8]
    rng = np.random.default_rng(12)
    obs = clean + NOISE * ic[:, None, None] * rng.standard_normal(clean.shape)
    sigma = NOISE * ic
    return inv, obs, sigma


def _record(benchmark, n, timed, chi2, iterations, ok, restarted=None) -> None:
    if benchmark.stats is None:
        return
    benchmark.extra_info["loadavg_1min"] = os.getloadavg()[0]
    benchmark.extra_info["pixels"] = n
    benchmark.extra_info["pixels_per_s"] = n / benchmark.stats.stats.mean
    if timed is not None and timed.calls:
        benchmark.extra_info["pixels_per_cpu_s"] = n * timed.calls / timed.cpu
    benchmark.extra_info["median_chi2"] = float(np.nanmedian(chi2))
    benchmark.extra_info["median_iterations"] = float(np.median(iterations))
    benchmark.extra_info["share_ok"] = float(np.mean(ok))
    if restarted is not None:
        benchmark.extra_info["share_restarted"] = float(np.mean(restarted))


@pytest.mark.benchmark(group="me-inversion-hinode")
def test_fastinv_1core(benchmark, data):
    inv, obs, sigma = data
    timed = CpuTimed(inv.invert)
    r = benchmark.pedantic(timed, args=(obs, sigma), kwargs={"threads": 1}, rounds=3, iterations=1)
    _record(benchmark, N_FAST, timed, r.chi2[:, 4], r.iterations, r.status == 0, r.restarts > 0)
    benchmark.extra_info["isa"] = _core.stokes.faddeeva_isa()


@pytest.mark.benchmark(group="me-inversion-hinode")
def test_fastinv_all_threads(benchmark, data):
    inv, obs, sigma = data
    r = benchmark.pedantic(inv.invert, args=(obs, sigma), rounds=3, iterations=1)
    _record(benchmark, N_FAST, None, r.chi2[:, 4], r.iterations, r.status == 0, r.restarts > 0)
    benchmark.extra_info["threads"] = os.cpu_count()


@pytest.mark.benchmark(group="me-inversion-hinode")
def test_fastinv_same_pixels_as_scipy(benchmark, data):
    inv, obs, sigma = data
    timed = CpuTimed(inv.invert)
    r = benchmark.pedantic(timed, args=(obs[:N_SCIPY], sigma[:N_SCIPY]), kwargs={"threads": 1}, rounds=3)
    _record(benchmark, N_SCIPY, timed, r.chi2[:, 4], r.iterations, r.status == 0, r.restarts > 0)


def _scipy_invert(inv: MEInversion, obs: np.ndarray, sigma: np.ndarray):
    from scipy.optimize import least_squares

    free = list(range(9))
    lo = np.array([inv.bounds[k][0] for k in ME_FIT_PARAMETERS])[free]
    hi = np.array([inv.bounds[k][1] for k in ME_FIT_PARAMETERS])[free]
    guess = inv.initial_guess(obs)
    names = (*ME_FIT_PARAMETERS, "vmac")
    chi2, nfev = [], []
    for i in range(obs.shape[0]):
        base = np.append(guess[i], 0.0)

        def residual(x, i=i, base=base):
            q = base.copy()
            q[free] = x
            prof = inv.model._me.synthesize({k: q[j : j + 1] for j, k in enumerate(names)}, 1.0, 1)[0][0]
            return ((obs[i] - prof) / sigma[i]).ravel()

        x0 = np.clip(guess[i, free], lo, hi)
        r = least_squares(residual, x0, bounds=(lo, hi), x_scale="jac")
        chi2.append(2 * r.cost / (obs[i].size - len(free)))
        nfev.append(r.nfev)
    return np.array(chi2), np.array(nfev)


@pytest.mark.benchmark(group="me-inversion-hinode")
def test_scipy_least_squares_1core(benchmark, data):
    pytest.importorskip("scipy")
    inv, obs, sigma = data
    timed = CpuTimed(_scipy_invert)
    chi2, nfev = benchmark.pedantic(timed, args=(inv, obs[:N_SCIPY], sigma[:N_SCIPY]), rounds=1, iterations=1)
    _record(benchmark, N_SCIPY, timed, chi2, nfev, chi2 < 1.5)


@pytest.mark.benchmark(group="me-inversion-hinode")
def test_pymilne_1core(benchmark, data):
    pytest.importorskip("pyMilne", reason="pyMilne is not installed (build it outside the repository to compare)")
    pytest.skip("pyMilne found, but its driver is not written yet: see docs/stokes-me-inversion.md")


def write_summary(json_path, md_path) -> str:
    run = Run.load(json_path)

    def get(name, key):
        try:
            return run.extra(name, key)
        except KeyError:
            return float("nan")

    rows = [
        ("fastinv, 1 thread", "test_fastinv_1core"),
        (f"fastinv, all threads ({os.cpu_count()})", "test_fastinv_all_threads"),
        ("fastinv, 1 thread, the scipy pixels", "test_fastinv_same_pixels_as_scipy"),
        ("scipy least_squares (TRF, FD Jacobian), 1 thread", "test_scipy_least_squares_1core"),
    ]
    lines = [
        "# Milne-Eddington inversion benchmark (fastinv LM vs scipy least_squares)",
        "",
        run.machine_line(f"ME kernel ISA {get('test_fastinv_1core', 'isa')}"),
        "- Hinode SP-like data: Fe I 6301.5 + 6302.5, Hinode LSF, 112 samples, 1e-3 I_c noise, 9 free "
        "parameters, classical initial guess, up to 3 deterministic restarts where reduced chi2 > 2 "
        "(scipy: one start)",
        "",
        "| implementation | pixels | pixels/s (wall) | pixels per CPU-s | median reduced chi2 | "
        "median iterations (scipy: evaluations) | share ok | share restarted |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for label, name in rows:
        lines.append(
            f"| {label} | {get(name, 'pixels'):.0f} | {get(name, 'pixels_per_s'):,.1f} | "
            f"{get(name, 'pixels_per_cpu_s'):,.1f} | {get(name, 'median_chi2'):.3f} | "
            f"{get(name, 'median_iterations'):.0f} | {get(name, 'share_ok'):.3f} | "
            f"{get(name, 'share_restarted'):.3f} |"
        )
    lines += ["", "pyMilne: not installed on this machine (case skipped).", ""]
    return write_markdown(md_path, lines)


if __name__ == "__main__":
    from run_script import run_and_summarize

    run_and_summarize(__file__, "me_inversion", write_summary)
