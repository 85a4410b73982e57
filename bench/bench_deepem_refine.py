"""DeepEM's stages side by side with fastinv's Basis Pursuit on the same pixels, same threads,
in one run: plain DeepEM, + errors (``errors=True``: bf16 noise propagation where the CPU has
AVX512-BF16/AMX), + refinement (``refine=True``), + both, and BP on the network's grid (the default model's
21 bins, BP's default grid). Frames: the 1024x1024 six-channel AIA synoptic frame of 2014-01-01
(n_sample 16) and the 4096x4096 frame (the same tiled 4x4, as bench_deepem.py; select with
``-k 4096``: minutes of CPU). Records pixels/s, the process CPU seconds per call (user +
system: on a loaded machine a fairer comparison than wall time, as every implementation uses
the same threads), the refinement's status counts and iterations, and the 1-minute load
average (the machine is shared). ``test_ratios_interleaved`` (1024^2) times the stages the
issue's two ratios compare in rounds, back to back, and records each ratio's median over the
rounds: the figure to quote for them."""

from __future__ import annotations

import os

import numpy as np
import pytest
from conftest import THREADS  # noqa: E402
from fastinv import datasets  # noqa: E402
from fastinv.dem import DeepEM  # noqa: E402
from fastinv.dem.basis_pursuit import BasisPursuit  # noqa: E402
from fastinv.dem.io import read_aia  # noqa: E402

STAGES = {
    "deepem": {},
    "deepem+errors": {"errors": True},
    "deepem+refine": {"refine": True},
    "deepem+errors+refine": {"errors": True, "refine": True},
}


@pytest.fixture(scope="module", params=["1024", "4096"])
def frame(request):
    obs = read_aia(datasets.aia_synoptic_files(), presummed=16)
    y = np.nan_to_num(obs.data)  # (6, 1024, 1024) DN/s
    if request.param == "4096":
        y = np.tile(y, (1, 4, 4))
    return {
        "y": y,
        "exptime": obs.exptime,
        "n_sample": obs.n_sample,
        "pixels": y.shape[1] * y.shape[2],
        "group": f"deepem-stages-{request.param}x{request.param}",
        "rounds": 2 if request.param == "1024" else 1,
    }


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


def _run_info(frame, machine, impl) -> dict:
    return {
        "case": frame["group"],
        "impl": impl,
        "threads": THREADS,
        "samples": frame["pixels"],
        "isa": machine["isa"],
        "cpu": machine["cpu"],
        "load_avg_1min_after": os.getloadavg()[0],
    }


def _record(benchmark, frame, machine, impl, res=None, cpu=None):
    if benchmark.stats is None:
        return
    info = _run_info(frame, machine, impl)
    info["samples_per_s"] = frame["pixels"] / benchmark.stats.stats.median
    if cpu:
        info["cpu_s_per_call"] = cpu
        info["pixels_per_cpu_s"] = frame["pixels"] / min(cpu)
    if res is not None:
        codes, counts = np.unique(res.status, return_counts=True)
        info["status_counts"] = {str(int(c)): int(n) for c, n in zip(codes, counts)}
        ok = res.status == 0
        if ok.any() and res.iterations.any():
            info["iterations_mean_median_p99"] = [float(res.iterations[ok].mean())] + [
                float(np.percentile(res.iterations[ok], q)) for q in (50, 99)
            ]
    benchmark.extra_info.update(info)


@pytest.mark.parametrize("stage", list(STAGES), ids=["plain", "errors", "refine", "errors_refine"])
def test_deepem(benchmark, frame, machine, stage):
    benchmark.group = frame["group"]
    net = DeepEM.load(threads=THREADS)
    kw = {"exptime": frame["exptime"], "n_sample": frame["n_sample"], **STAGES[stage]}
    run = _CpuTime(lambda: net.invert(frame["y"], **kw))
    res = benchmark.pedantic(run, rounds=frame["rounds"], warmup_rounds=0)
    if "refine" in stage:
        assert (res.status == 0).mean() > 0.8  # the synoptic frame is mostly feasible
    _record(benchmark, frame, machine, stage, res, run.cpu)


def test_bp(benchmark, frame, machine):
    """BP on the network's grid (the default model's 21 bins = BP's default grid)."""
    benchmark.group = frame["group"]
    bp = BasisPursuit(logt=DeepEM.load().logt)
    run = _CpuTime(bp.solve)
    res = benchmark.pedantic(
        run,
        args=(frame["y"],),
        kwargs={"exptime": frame["exptime"], "n_sample": frame["n_sample"], "threads": THREADS},
        rounds=1,
        warmup_rounds=0,
    )
    _record(benchmark, frame, machine, "bp", res, run.cpu)


def test_ratios_interleaved(benchmark, frame, machine):
    """The issue's two ratios with the machine's drift taken out: rounds of plain DeepEM,
    + errors, + errors + refinement and BP back to back, each ratio taken within its round
    (CPU seconds), the median over the rounds recorded. The stages above run one after the
    other and their ratios moved 1.25-1.40x between runs of the same build."""
    if frame["pixels"] > 1024 * 1024:
        pytest.skip("1024^2 only: four stages a round at 4096^2 take minutes each")
    benchmark.group = frame["group"]
    net = DeepEM.load(threads=THREADS)
    bp = BasisPursuit(logt=net.logt)
    kw = {"exptime": frame["exptime"], "n_sample": frame["n_sample"]}
    calls = {
        "deepem": lambda: net.invert(frame["y"], **kw),
        "deepem+errors": lambda: net.invert(frame["y"], errors=True, **kw),
        "deepem+errors+refine": lambda: net.invert(frame["y"], errors=True, refine=True, **kw),
        "bp": lambda: bp.solve(frame["y"], threads=THREADS, **kw),
    }
    # first-call costs (the error model, the certificates) out of the rounds
    net.invert(frame["y"][:, :16, :16], errors=True, refine=True, **kw)
    bp.solve(frame["y"][:, :16, :16], **kw)
    cpu = {name: [] for name in calls}

    def one_round():
        for name, fn in calls.items():
            t0 = os.times()
            fn()
            t1 = os.times()
            cpu[name].append(t1.user + t1.system - t0.user - t0.system)

    benchmark.pedantic(one_round, rounds=3, warmup_rounds=0)
    errors_ratio = [e / p for e, p in zip(cpu["deepem+errors"], cpu["deepem"])]
    bp_ratio = [b / r for b, r in zip(cpu["bp"], cpu["deepem+errors+refine"])]
    benchmark.extra_info.update(
        {
            **_run_info(frame, machine, "interleaved"),
            "cpu_s_per_round": cpu,
            "errors_over_plain_per_round": errors_ratio,
            "errors_over_plain_median": float(np.median(errors_ratio)),
            "refined_over_bp_px_per_s_per_round": bp_ratio,
            "refined_over_bp_px_per_s_median": float(np.median(bp_ratio)),
        }
    )
