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
N_CHI2 = 300


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


@pytest.fixture(scope="module")
def network_case():
    """Hinode SP profiles of training-like atmospheres (noise 1e-3) and the shipped network."""
    from fastinv.stokes import StokesNet
    from fastinv.stokes.synthesis.training_sets import lte_training_set

    data = lte_training_set(N_CHI2, instrument="hinode", seed=5, noise=1e-3)
    prof = data["stokes"][data["status"] == 0]
    net = StokesNet.load(instrument="hinode")
    return net, prof, net.predict(prof, threads=1)


@pytest.mark.benchmark(group="stokes-chi2-hinode")
def test_network_predict_1core(benchmark, network_case):
    net, prof, _ = network_case
    timed = CpuTimed(net.predict)
    benchmark.pedantic(timed, args=(prof,), kwargs={"threads": 1}, rounds=3, iterations=1)
    record_profiles(benchmark, len(prof), timed)


@pytest.mark.benchmark(group="stokes-chi2-hinode")
def test_resynthesis_chi2_1core(benchmark, network_case):
    """`stokes invert --chi2`: LTE re-synthesis of the network's atmospheres, v_mic fitted."""
    from fastinv.stokes.inversion.resynthesis import Resynthesis

    net, prof, pred = network_case
    rs = Resynthesis(net)
    timed = CpuTimed(rs.chi2)
    chi2 = benchmark.pedantic(timed, args=(prof, pred), kwargs={"threads": 1}, rounds=1, iterations=1)
    record_profiles(benchmark, len(prof), timed)
    benchmark.extra_info["median_chi2"] = float(np.nanmedian(chi2))


def write_summary(json_path: Path, md_path: Path) -> str:
    run = Run.load(json_path)

    def pps(name, key="profiles_per_s"):
        return run.extra(name, key)

    ours, lw, allt = pps("test_fastinv_1core"), pps("test_lightweaver_1core"), pps("test_fastinv_all_threads")
    ours_cpu = pps("test_fastinv_1core", "profiles_per_cpu_s")
    lw_cpu = pps("test_lightweaver_1core", "profiles_per_cpu_s")
    net_cpu = pps("test_network_predict_1core", "profiles_per_cpu_s")
    chi_cpu = pps("test_resynthesis_chi2_1core", "profiles_per_cpu_s")
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
            "## chi^2 of the Stokes network by LTE re-synthesis (`stokes invert --chi2`)",
            "",
            "Hinode SP network on LTE profiles of training-like atmospheres (noise 1e-3 I_c), one thread:",
            "",
            "| stage | pixels per CPU-second | CPU ms per pixel |",
            "| --- | --- | --- |",
            f"| network (`StokesNet.predict`) | {net_cpu:,.0f} | {1e3 / net_cpu:.3f} |",
            f"| re-synthesis chi^2, v_mic fitted (4 LTE syntheses) | {chi_cpu:,.0f} | {1e3 / chi_cpu:.2f} |",
            "",
            f"The chi^2 map costs {net_cpu / chi_cpu:,.0f}x the network; median chi^2 "
            f"{run.extra('test_resynthesis_chi2_1core', 'median_chi2'):.0f}.",
            "",
        ],
    )


if __name__ == "__main__":
    from run_script import run_and_summarize

    run_and_summarize(__file__, "lte", write_summary)
