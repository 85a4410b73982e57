"""Basis Pursuit DEM throughput: fastinv's C++ dual simplex vs SciPy's HiGHS, same pixels.

Run (writes JSON with machine info and a markdown summary into bench/results/)::

    python bench/bench_bp.py

or as plain pytest-benchmark: ``pytest bench/bench_bp.py --benchmark-json out.json``.

Both solvers get the same LPs (6 x 84 dictionary, eta = 1.4 sigma, adaptive tolfac for
fastinv; HiGHS solves tolfac 1.4 only, i.e. fewer LPs, which favours HiGHS). LP/s are per
core: fastinv with threads=1, HiGHS single-threaded from a Python loop (how SciPy ports of
BP call it).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from fastinv import datasets
from fastinv.dem import BasisPursuit
from fastinv.dem.io import read_aia
from summarize import Run, write_markdown

EXPTIME = np.array([2.9, 2.9, 2.0, 2.0, 2.9, 2.9])
N_SYNTH = 20000
N_HIGHS = 400


def synthetic(bp: BasisPursuit, n: int, seed: int = 0):
    """Log-normal / Gaussian-in-T DEMs with Poisson noise (as tests/dem/dem_helpers.py)."""
    rng = np.random.default_rng(seed)
    lt = bp.logt[:, None]
    tc, w = rng.uniform(5.8, 6.8, n), rng.uniform(0.05, 0.5, n)
    em0 = 10 ** rng.uniform(26.5, 28.5, n)
    t, t0 = 10.0**lt, 10.0**tc
    dem = np.where(
        np.arange(n) % 2 == 0,
        np.exp(-0.5 * ((lt - tc) / w) ** 2),
        np.exp(-0.5 * ((t - t0) / (t0 * np.log(10) * w)) ** 2) * t,
    )
    dem = dem / dem.sum(axis=0) * em0
    y = rng.poisson((bp.response_on_grid @ dem) * EXPTIME[:, None]) / EXPTIME[:, None]
    return y, bp.sigma(y, EXPTIME)


def highs_loop(D, y, sigma, tolfac=1.4):
    from scipy.optimize import linprog

    c = np.ones(D.shape[1])
    A = np.vstack([D, -D])
    n_ok = 0
    for i in range(y.shape[1]):
        yc = np.maximum(y[:, i], 0)
        eta = tolfac * sigma[:, i]
        r = linprog(
            c, A_ub=A, b_ub=np.concatenate([yc + eta, -np.maximum(yc - eta, 0)]), bounds=(0, None), method="highs"
        )
        n_ok += r.status == 0
    return n_ok


@pytest.fixture(scope="module")
def bp():
    return BasisPursuit()


@pytest.fixture(scope="module")
def synth(bp):
    return synthetic(bp, N_SYNTH)


@pytest.fixture(scope="module")
def flare(bp):
    obs = read_aia(datasets.aia_flare_files())
    y = obs.data.reshape(6, -1)
    return y, bp.sigma(y, obs.exptime)


def _lp_per_s(benchmark, n):
    if benchmark.stats is None:  # --benchmark-disable: a smoke run, nothing timed
        return
    benchmark.extra_info["loadavg_1min"] = os.getloadavg()[0]
    benchmark.extra_info["pixels"] = n
    benchmark.extra_info["lp_per_s"] = n / benchmark.stats.stats.mean


@pytest.mark.benchmark(group="bp-synthetic")
def test_synthetic_fastinv_1core(benchmark, bp, synth):
    y, s = synth
    out = benchmark(bp._solver.solve, y, s, 1)
    _lp_per_s(benchmark, y.shape[1])
    benchmark.extra_info["solved_fraction"] = float(np.mean(out[1] == 0))
    benchmark.extra_info["mean_iterations"] = float(np.mean(out[4]))


@pytest.mark.benchmark(group="bp-synthetic")
def test_synthetic_highs_1core(benchmark, bp, synth):
    y, s = synth[0][:, :N_HIGHS], synth[1][:, :N_HIGHS]
    benchmark.pedantic(highs_loop, args=(bp.dictionary, y, s), rounds=3, iterations=1)
    _lp_per_s(benchmark, N_HIGHS)


@pytest.mark.benchmark(group="bp-flare-cutout")
def test_flare_fastinv_1core(benchmark, bp, flare):
    y, s = flare
    out = benchmark(bp._solver.solve, y, s, 1)
    _lp_per_s(benchmark, y.shape[1])
    benchmark.extra_info["solved_fraction"] = float(np.mean(out[1] == 0))


@pytest.mark.benchmark(group="bp-flare-cutout")
def test_flare_highs_1core(benchmark, bp, flare):
    y, s = flare[0][:, :N_HIGHS], flare[1][:, :N_HIGHS]
    benchmark.pedantic(highs_loop, args=(bp.dictionary, y, s), rounds=3, iterations=1)
    _lp_per_s(benchmark, N_HIGHS)


@pytest.mark.benchmark(group="bp-synoptic-1024")
def test_synoptic_full_disk_2threads(benchmark, bp):
    """The 1024^2 six-channel synoptic set of 2014-01-01 (values are 4x4 means: n = 16)."""
    try:
        obs = read_aia(datasets.aia_synoptic_files(), presummed=16)
    except OSError as exc:
        pytest.skip(f"synoptic data not obtainable: {exc}")
    y = obs.data
    res = benchmark.pedantic(
        bp.solve, args=(y,), kwargs=dict(exptime=obs.exptime, threads=2, n_sample=obs.n_sample), rounds=1, iterations=1
    )
    benchmark.extra_info["pixels"] = int(y[0].size)
    if benchmark.stats is not None:
        benchmark.extra_info["wall_s"] = benchmark.stats.stats.mean
    codes, counts = np.unique(res.status, return_counts=True)
    benchmark.extra_info["status_counts"] = {int(c): int(n) for c, n in zip(codes, counts)}


def write_summary(json_path: Path, md_path: Path) -> str:
    run = Run.load(json_path)

    def lps(name):
        return run.extra(name, "lp_per_s")

    lines = [
        "# Basis Pursuit DEM benchmark (fastinv vs SciPy HiGHS)",
        "",
        run.machine_line(),
        "- LP: 6 x 84 dictionary (V10 EVE responses, log T 5.5-7.5, widths 0/0.1/0.2/0.6), "
        "eta = 1.4 sigma (AIA error model), fastinv with adaptive tolfac (1.4, 2.1, 3.15), "
        "HiGHS at 1.4 only.",
        "",
        "fastinv's figure is pixels (DEMs) per second: each pixel is 1-3 LPs (adaptive "
        "tolfac), so per LP it is higher still; HiGHS solves exactly one LP per pixel.",
        "",
        "| pixels | fastinv pixels/s (1 core) | HiGHS LP/s (1 core) | ratio |",
        "| --- | --- | --- | --- |",
    ]
    for label, a, b in [
        ("synthetic (Poisson noise)", "test_synthetic_fastinv_1core", "test_synthetic_highs_1core"),
        ("flare cutout 2011-02-15 01:48 (67x67)", "test_flare_fastinv_1core", "test_flare_highs_1core"),
    ]:
        lines.append(f"| {label} | {lps(a):,.0f} | {lps(b):,.0f} | {lps(a) / lps(b):,.0f}x |")
    syn = run.benchmarks.get("test_synoptic_full_disk_2threads")
    if syn:
        info = syn["extra_info"]
        lines += [
            "",
            f"- full-disk synoptic 1024x1024 (2014-01-01), 2 threads: "
            f"{info['wall_s']:.2f} s wall for {info['pixels']:,} pixels "
            f"(status counts {info['status_counts']}).",
        ]
    return write_markdown(md_path, lines)


if __name__ == "__main__":
    from run_script import run_and_summarize

    run_and_summarize(__file__, "bp", write_summary)
