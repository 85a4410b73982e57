"""DeepEM with refinement (``invert(..., refine=True)``) against plain DeepEM and fastinv's Basis
Pursuit on the same pixels, same threads, in one run: the 1024x1024 six-channel AIA synoptic
frame of 2014-01-01 (n_sample 16). BP runs on the network's 18-bin grid (the refinement's LP
has the same constraints) and on its default 21-bin grid. Records pixels/s, the refinement's
status counts and iterations, the 1-minute load average (the machine is shared) and the
process CPU seconds per call (user + system: on a loaded machine a fairer comparison than
wall time, as every implementation uses the same threads)."""

from __future__ import annotations

import os

import numpy as np
import pytest
from conftest import THREADS  # noqa: E402
from fastinv import datasets  # noqa: E402
from fastinv.dem import DeepEM  # noqa: E402
from fastinv.dem.basis_pursuit import DEEPEM_LOGT, BasisPursuit  # noqa: E402
from fastinv.dem.io import read_aia  # noqa: E402

GROUP = "deepem-refine-1024x1024"


@pytest.fixture(scope="module")
def frame():
    obs = read_aia(datasets.aia_synoptic_files(), presummed=16)
    y = np.nan_to_num(obs.data)  # (6, 1024, 1024) DN/s
    return {"y": y, "exptime": obs.exptime, "n_sample": obs.n_sample, "pixels": y.shape[1] * y.shape[2]}


class _CpuTime:
    """Wraps a callable; collects the process's CPU seconds (user + system) per call."""

    def __init__(self, fn):
        self.fn, self.cpu = fn, []

    def __call__(self, *args, **kwargs):
        t0 = os.times()
        res = self.fn(*args, **kwargs)
        t1 = os.times()
        self.cpu.append(t1.user + t1.system - t0.user - t0.system)
        return res


def _record(benchmark, frame, machine, impl, res=None, cpu=None):
    if benchmark.stats is None:
        return
    t = benchmark.stats.stats.median
    info = {
        "case": GROUP,
        "impl": impl,
        "threads": THREADS,
        "samples": frame["pixels"],
        "samples_per_s": frame["pixels"] / t,
        "isa": machine["isa"],
        "cpu": machine["cpu"],
        "load_avg_1min_after": os.getloadavg()[0],
    }
    if cpu:
        info["cpu_s_per_call"] = cpu
        info["pixels_per_cpu_s"] = frame["pixels"] / min(cpu)
    if res is not None:
        codes, counts = np.unique(res.status, return_counts=True)
        info["status_counts"] = {str(int(c)): int(n) for c, n in zip(codes, counts)}
        ok = res.status == 0
        if ok.any() and res.iterations.any():
            info["iterations_median_p99"] = [float(np.percentile(res.iterations[ok], q)) for q in (50, 99)]
    benchmark.extra_info.update(info)


def _deepem(frame, refine):
    net = DeepEM.load(threads=THREADS)
    return lambda: net.invert(frame["y"], exptime=frame["exptime"], n_sample=frame["n_sample"], refine=refine)


def test_deepem(benchmark, frame, machine):
    benchmark.group = GROUP
    run = _CpuTime(_deepem(frame, False))
    res = benchmark.pedantic(run, rounds=2, warmup_rounds=0)
    _record(benchmark, frame, machine, "deepem", res, run.cpu)


def test_deepem_refine(benchmark, frame, machine):
    benchmark.group = GROUP
    run = _CpuTime(_deepem(frame, True))
    res = benchmark.pedantic(run, rounds=2, warmup_rounds=0)
    assert (res.status == 0).mean() > 0.9  # the synoptic frame is mostly feasible
    _record(benchmark, frame, machine, "deepem+refine", res, run.cpu)


@pytest.mark.parametrize("grid", ["18bin", "21bin"])
def test_bp(benchmark, frame, machine, grid):
    benchmark.group = GROUP
    bp = BasisPursuit(logt=DEEPEM_LOGT) if grid == "18bin" else BasisPursuit()
    run = _CpuTime(bp.solve)
    res = benchmark.pedantic(
        run,
        args=(frame["y"],),
        kwargs={"exptime": frame["exptime"], "n_sample": frame["n_sample"], "threads": THREADS},
        rounds=1,
        warmup_rounds=0,
    )
    _record(benchmark, frame, machine, f"bp-{grid}", res, run.cpu)
