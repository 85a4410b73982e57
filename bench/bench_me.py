"""Milne-Eddington synthesis throughput: fastinv's C++ vs the NumPy/SciPy ME reference
(tests/stokes/reference/me_numpy.py, closed-form Unno-Rachkovsky with scipy.special.wofz), same
parameter sets, one run.

Run (writes JSON with machine info and a markdown summary into bench/results/)::

    python bench/bench_me.py

or as plain pytest-benchmark: ``pytest bench/bench_me.py --benchmark-json out.json``.

Cases (Fe I 6301.5 + 6302.5, full Stokes, both lines' full Zeeman patterns: 12 + 3
components):

- ``me-112``: 112 wavelengths (Hinode SP grid), no instrument, pure ME (f = 1, no vmac) --
  the issue's target case. Parameters: B 0-4 kG, isotropic inclination, random azimuth,
  vlos +-5 km/s, Doppler width 20-60 mA, damping 0-0.8, eta0 1-60.
- ``me-hinode-full``: the training-set path: random parameters of
  fastinv.stokes.synthesis.sampling (filling factor and macroturbulence included), synthesised on the
  Hinode instrument's fine grid, LSF-convolved and resampled to 112 samples (no noise).

Profiles/s are per core (threads=1); profiles per CPU-second are also recorded because the
benchmark machine is shared (wall-clock figures then depend on the load, the ratio much less).
"""

from __future__ import annotations

import os

# Idle OpenMP workers must not spin while the 1-thread cases run: their CPU time would be
# billed to "profiles per CPU-second" (set before fastinv loads libgomp).
os.environ.setdefault("OMP_WAIT_POLICY", "passive")

import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from fastinv import _core  # noqa: E402
from fastinv.stokes import Instrument, MilneEddington  # noqa: E402
from fastinv.stokes.synthesis.sampling import sample_me_parameters  # noqa: E402
from profiles import CpuTimed, record_profiles  # noqa: E402
from summarize import Run, write_markdown  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests" / "stokes"))

N_FAST = 20000
N_NUMPY = 500


def pure_me_params(n: int, seed: int = 0) -> dict:
    p = sample_me_parameters(n, seed=seed)
    p.pop("filling_factor")
    p.pop("vmac")
    return p


@pytest.fixture(scope="module")
def params():
    return pure_me_params(N_FAST)


@pytest.mark.benchmark(group="me-112")
def test_fastinv_1core(benchmark, params):
    me = MilneEddington()
    timed = CpuTimed(me.synthesize)
    out = benchmark(timed, params, threads=1)
    assert np.isfinite(out).all()
    record_profiles(benchmark, N_FAST, timed, faddeeva_isa=_core.stokes.faddeeva_isa())


@pytest.mark.benchmark(group="me-112")
def test_fastinv_all_threads(benchmark, params):
    me = MilneEddington()
    benchmark(me.synthesize, params)
    record_profiles(benchmark, N_FAST, faddeeva_isa=_core.stokes.faddeeva_isa())
    benchmark.extra_info["threads"] = os.cpu_count()


@pytest.mark.benchmark(group="me-112")
def test_numpy_1core(benchmark, params):
    pytest.importorskip("scipy")
    pytest.importorskip("sympy")
    from reference import me_numpy

    wl = MilneEddington().wavelength
    sub = {k: v[:N_NUMPY] for k, v in params.items()}
    timed = CpuTimed(me_numpy.synthesize)
    benchmark.pedantic(timed, args=(sub, wl), rounds=3, iterations=1, warmup_rounds=1)
    record_profiles(benchmark, N_NUMPY, timed, faddeeva_isa=_core.stokes.faddeeva_isa())


@pytest.mark.benchmark(group="me-hinode-full")
def test_fastinv_hinode_training_path(benchmark):
    me = MilneEddington(instrument=Instrument.hinode_sp())
    p = sample_me_parameters(N_FAST // 4, seed=1)
    timed = CpuTimed(me.synthesize)
    benchmark(timed, p, threads=1, add_noise=False)
    record_profiles(benchmark, N_FAST // 4, timed, faddeeva_isa=_core.stokes.faddeeva_isa())
    benchmark.extra_info["synthesis_points"] = int(me.synthesis_wavelength.size)


def write_summary(json_path: Path, md_path: Path) -> str:
    run = Run.load(json_path)

    def get(name, key="profiles_per_s"):
        return run.extra(name, key)

    ours, npy = get("test_fastinv_1core"), get("test_numpy_1core")
    ours_cpu, npy_cpu = get("test_fastinv_1core", "profiles_per_cpu_s"), get("test_numpy_1core", "profiles_per_cpu_s")
    allt = get("test_fastinv_all_threads")
    hin, hin_cpu = (
        get("test_fastinv_hinode_training_path"),
        get("test_fastinv_hinode_training_path", "profiles_per_cpu_s"),
    )
    isa = get("test_fastinv_1core", "faddeeva_isa")
    return write_markdown(
        md_path,
        [
            "# Milne-Eddington synthesis benchmark (fastinv vs NumPy/SciPy reference)",
            "",
            run.machine_line(f"Faddeeva kernel ISA {isa}"),
            "- case me-112: Fe I 6301.5 + 6302.5, full Stokes, 12 + 3 Zeeman components, 112 "
            "wavelengths (Hinode SP grid), random parameters, no instrument",
            "",
            "| implementation | profiles/s (wall) | profiles per CPU-second | ratio wall / CPU |",
            "| --- | --- | --- | --- |",
            f"| fastinv, 1 thread | {ours:,.0f} | {ours_cpu:,.0f} | {ours / npy:,.0f}x / "
            f"{ours_cpu / npy_cpu:,.0f}x NumPy |",
            f"| fastinv, all threads ({os.cpu_count()}) | {allt:,.0f} | | |",
            f"| NumPy/SciPy reference (closed form, wofz), 1 thread | {npy:,.0f} | {npy_cpu:,.0f} | 1 |",
            "",
            f"- training-set path (sampler with filling factor + vmac, Hinode instrument: "
            f"{get('test_fastinv_hinode_training_path', 'synthesis_points')} synthesis points, "
            f"LSF, resampling to 112): {hin:,.0f} profiles/s wall, {hin_cpu:,.0f} per CPU-second, "
            "1 thread",
            "",
        ],
    )


if __name__ == "__main__":
    from run_script import run_and_summarize

    run_and_summarize(__file__, "me", write_summary)
