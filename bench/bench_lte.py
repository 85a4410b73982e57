"""LTE Stokes synthesis throughput: fastinv's C++ vs lightweaver, same atmospheres, one run.

Run (writes JSON with machine info and a markdown summary into bench/results/)::

    python bench/bench_lte.py

or as plain pytest-benchmark: ``pytest bench/bench_lte.py --benchmark-json out.json``.

Case: the Fe I 6301.5 + 6302.5 pair, full Stokes, at Hinode SP's 112 wavelengths, on random
atmospheres (fastinv.stokes.synthesis.atmospheres.random, seed 0: perturbed HSRA / FAL-C, 55 depth
points, B up to 3 kG at nodes). Both codes do the whole job per profile: hydrostatic
equilibrium + EOS from T(log tau_500), opacities, LTE populations, polarised formal solution.
lightweaver: strictly LTE (J = Planck) as in fastinv/stokes/lightweaver_reference.py, one
thread, after a warm-up (numba compilation excluded); its wavelength grid also holds its own
line quadrature points (how it is run). Profiles/s are per core: fastinv with threads=1.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from fastinv.stokes import LTE, atmospheres
from profiles import CpuTimed, record_profiles
from summarize import Run, write_markdown

N_FAST = 2000
N_LW = 6


@pytest.fixture(scope="module")
def atmos():
    return atmospheres.random(N_FAST, seed=0)


@pytest.fixture(scope="module")
def lte():
    return LTE()  # Hinode SP grid, 112 wavelengths, no instrument


@pytest.mark.benchmark(group="lte-fe630-112")
def test_fastinv_1core(benchmark, lte, atmos):
    timed = CpuTimed(lte.synthesize)
    out, status = benchmark(timed, atmos, threads=1, return_status=True)
    record_profiles(benchmark, len(atmos), timed)
    benchmark.extra_info["ok_fraction"] = float(np.mean(status == 0))


@pytest.mark.benchmark(group="lte-fe630-112")
def test_fastinv_all_threads(benchmark, lte, atmos):
    benchmark(lte.synthesize, atmos)
    record_profiles(benchmark, len(atmos))
    benchmark.extra_info["threads"] = os.cpu_count()


@pytest.mark.benchmark(group="lte-fe630-112")
def test_lightweaver_1core(benchmark, lte, atmos):
    pytest.importorskip("lightweaver")
    from fastinv.stokes.synthesis.lightweaver_reference import lightweaver_stokes

    sub = atmos[:N_LW]

    def run():
        for i in range(N_LW):
            lightweaver_stokes(
                sub.log_tau,
                sub.temperature[i],
                sub.vmic[i],
                sub.B[i],
                sub.inclination[i],
                sub.azimuth[i],
                sub.vlos[i],
                lte.wavelength,
            )

    run()  # warm-up: numba compilation of lightweaver's Python parts
    timed = CpuTimed(run)
    benchmark.pedantic(timed, rounds=2, iterations=1)
    record_profiles(benchmark, N_LW, timed)


def write_summary(json_path: Path, md_path: Path) -> str:
    run = Run.load(json_path)

    def pps(name, key="profiles_per_s"):
        return run.extra(name, key)

    ours, lw, allt = pps("test_fastinv_1core"), pps("test_lightweaver_1core"), pps("test_fastinv_all_threads")
    ours_cpu = pps("test_fastinv_1core", "profiles_per_cpu_s")
    lw_cpu = pps("test_lightweaver_1core", "profiles_per_cpu_s")
    return write_markdown(
        md_path,
        [
            "# LTE Stokes synthesis benchmark (fastinv vs lightweaver)",
            "",
            run.machine_line(),
            "- case: Fe I 6301.5 + 6302.5, full Stokes, 112 wavelengths (Hinode SP grid), random "
            "atmospheres on 55 log tau_500 points (hydrostatic equilibrium included in both codes)",
            "",
            "| implementation | profiles/s (wall) | profiles per CPU-second | ratio wall / CPU |",
            "| --- | --- | --- | --- |",
            f"| fastinv, 1 thread | {ours:,.0f} | {ours_cpu:,.0f} | {ours / lw:,.0f}x / "
            f"{ours_cpu / lw_cpu:,.0f}x lightweaver |",
            f"| fastinv, all threads ({os.cpu_count()}) | {allt:,.0f} | | |",
            f"| lightweaver 0.17 (strict LTE), 1 thread | {lw:,.2f} | {lw_cpu:,.2f} | 1 |",
            "",
        ],
    )


if __name__ == "__main__":
    from run_script import run_and_summarize

    run_and_summarize(__file__, "lte", write_summary)
