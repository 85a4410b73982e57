"""Scale-out on this machine: 1 vs 2 dask.distributed worker processes (one thread each).

``python bench/bench_dask.py`` measures, in one run,

- the per-task overhead of the cluster: the wall time per empty task (200 of them) and per
  empty series step (the series machinery around a step that does nothing);
- the bundled flare series (10 steps of 67x67, BP and DeepEM) through ``run_series``;
- the 1024x1024 synoptic frame (2014-01-01) through dask arrays (``BasisPursuit.solve`` and
  ``DeepEM.invert`` on a ``dask.array``), next to one NumPy call on 1 and 2 threads.

Efficiency = t(1 worker) / (2 * t(2 workers)). Writes bench/results/dask_<host>_<time>.json
and bench/results/dask_summary.md. The efficiency is only meaningful on an idle machine (on
a shared one two workers measure the contention); the load average is recorded with every
run.

``python bench/bench_dask.py --overhead`` measures only the per-task overheads (an empty
task; an empty series step: submit, validate, write, log rewrite), which a loaded machine
inflates but does not make meaningless; it writes dask_overhead_<host>_<time>.json and
dask_overhead_summary.md.

A wall-clock benchmark of whole runs, repeated ``REPEATS`` times (the best is kept), not a
pytest-benchmark file: a cluster's start-up is not part of a round.
"""

from __future__ import annotations

import functools
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import dask.array as da
import distributed
import numpy as np
from fastinv import datasets
from fastinv._series import Step
from fastinv.dem import BasisPursuit, DeepEM
from fastinv.dem.io import read_aia
from fastinv.dem.series import SeriesOptions, run_series

RESULTS = Path(__file__).resolve().parent / "results"
REPEATS = 3


def _best(fn) -> float:
    times = []
    for _ in range(REPEATS):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def _noop(i):
    return i


def _empty_step(step: Step) -> dict:
    step.output.write_bytes(b"")
    return {}


def _machine() -> dict:
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "dask": distributed.__version__,
        "load_before": os.getloadavg(),
    }


def _overheads(client, n: int, runs: dict) -> None:
    """Per-task costs of the cluster and of the series machinery with ``n`` workers."""
    from fastinv import _series

    client.run(lambda: __import__("fastinv.dem"))  # imports are not part of a round
    runs[f"empty_task_{n}w"] = _best(lambda: client.gather(client.map(_noop, range(200), pure=False))) / 200
    with tempfile.TemporaryDirectory() as d:
        steps = [Step(f"s{i}", Path(d) / f"s{i}") for i in range(50)]

        def empty_series():
            for s in steps:
                s.output.unlink(missing_ok=True)
            _series.run_steps(steps, _empty_step, lambda s: "redo", client, Path(d) / "log.json", progress=False)

        runs[f"empty_step_{n}w"] = _best(empty_series) / len(steps)


def overhead_main() -> None:
    """``--overhead``: the per-task overheads on 1 and 2 worker processes, with the load."""
    out: dict = {"machine": _machine(), "runs": {}}
    for n in (1, 2):
        with (
            distributed.LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=":0") as cl,
            distributed.Client(cl) as client,
        ):
            _overheads(client, n, out["runs"])
    out["machine"]["load_after"] = os.getloadavg()
    RESULTS.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%S")
    (RESULTS / f"dask_overhead_{platform.node() or 'host'}_{stamp}.json").write_text(json.dumps(out, indent=1) + "\n")
    r, m = out["runs"], out["machine"]
    text = "\n".join(
        [
            "# Dask per-task overhead (bench/bench_dask.py --overhead)",
            "",
            f"- run {stamp}: {m['cpus']} logical CPUs (shared), Python {m['python']}, dask {m['dask']}; "
            f"1-min load average {m['load_before'][0]:.1f} before, {m['load_after'][0]:.1f} after "
            "(other jobs share the CPUs: these are upper bounds). Best of 3; workers are processes "
            "with one thread.",
            "",
            "| overhead | 1 worker | 2 workers |",
            "| --- | --- | --- |",
            f"| empty task (submit, run, gather; 200 tasks) | {r['empty_task_1w'] * 1e3:.2f} ms "
            f"| {r['empty_task_2w'] * 1e3:.2f} ms |",
            f"| empty series step (submit, validate, write, log rewrite; 50 steps) | "
            f"{r['empty_step_1w'] * 1e3:.2f} ms | {r['empty_step_2w'] * 1e3:.2f} ms |",
            "",
        ]
    )
    (RESULTS / "dask_overhead_summary.md").write_text(text)
    print(text)


def main() -> None:

    flare_dir = Path(tempfile.mkdtemp(prefix="fastinv_bench_flare_"))
    for slot in datasets.aia_flare_slots():
        for p in datasets.aia_flare_files(slot):
            os.symlink(p, flare_dir / p.name)
    syn = read_aia(datasets.aia_synoptic_files(), presummed=16)
    y = np.nan_to_num(syn.data)
    bp, net = BasisPursuit(), DeepEM.load()
    out: dict = {"machine": _machine(), "runs": {}}
    runs = out["runs"]
    # NumPy references on this process (threads = cores used)
    for t in (1, 2):
        runs[f"synoptic_bp_numpy_{t}thr"] = _best(lambda: bp.solve(y, exptime=syn.exptime, n_sample=16, threads=t))
        runs[f"synoptic_deepem_numpy_{t}thr"] = _best(lambda: net.invert(y, exptime=syn.exptime, threads=t))
    for n in (1, 2):
        with (
            distributed.LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=":0") as cl,
            distributed.Client(cl) as client,
        ):
            _overheads(client, n, runs)
            for method in ("bp", "deepem"):

                def series():
                    with tempfile.TemporaryDirectory() as d:
                        run_series(str(flare_dir / "*.fits"), d, SeriesOptions(method), client=client, progress=False)

                runs[f"flare_series_{method}_{n}w"] = _best(series)
            ydask = da.from_array(y, chunks=(6, 256, 1024))
            solve = functools.partial(bp.solve, exptime=syn.exptime, n_sample=16)
            runs[f"synoptic_bp_dask_{n}w"] = _best(lambda: client.compute(solve(ydask).em).result())
            runs[f"synoptic_deepem_dask_{n}w"] = _best(
                lambda: client.compute(net.invert(ydask, exptime=syn.exptime).em).result()
            )
    out["machine"]["load_after"] = os.getloadavg()
    RESULTS.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%S")
    (RESULTS / f"dask_{platform.node() or 'host'}_{stamp}.json").write_text(json.dumps(out, indent=1) + "\n")
    (RESULTS / "dask_summary.md").write_text(summary(out, stamp))
    print(summary(out, stamp))


def summary(out: dict, stamp: str) -> str:
    r = out["runs"]
    m = out["machine"]
    lines = [
        "# Dask scale-out benchmark (bench/bench_dask.py)",
        "",
        f"- run {stamp}: {m['cpus']} logical CPUs (shared), Python {m['python']}, dask {m['dask']}; "
        f"1-min load average {m['load_before'][0]:.1f} before, {m['load_after'][0]:.1f} after "
        "(other jobs share the CPUs). Best of 3 per figure; workers are processes with one thread.",
        "",
        "| work | 1 worker | 2 workers | efficiency t1/(2 t2) |",
        "| --- | --- | --- | --- |",
    ]
    for label, key, unit, scale in (
        ("empty task (overhead per task)", "empty_task", "ms", 1e3),
        ("empty series step (overhead per step)", "empty_step", "ms", 1e3),
        ("flare series, BP, 10 steps of 67x67", "flare_series_bp", "s", 1),
        ("flare series, DeepEM, 10 steps of 67x67", "flare_series_deepem", "s", 1),
        ("synoptic 1024x1024, BP (dask array)", "synoptic_bp_dask", "s", 1),
        ("synoptic 1024x1024, DeepEM (dask array)", "synoptic_deepem_dask", "s", 1),
    ):
        t1, t2 = r[f"{key}_1w"], r[f"{key}_2w"]
        lines.append(f"| {label} | {t1 * scale:.3g} {unit} | {t2 * scale:.3g} {unit} | {t1 / (2 * t2):.2f} |")
    lines += [
        "",
        "NumPy, one call in this process (reference for the dask rows):",
        "",
        "| work | 1 thread | 2 threads |",
        "| --- | --- | --- |",
        f"| synoptic BP | {r['synoptic_bp_numpy_1thr']:.3g} s | {r['synoptic_bp_numpy_2thr']:.3g} s |",
        f"| synoptic DeepEM | {r['synoptic_deepem_numpy_1thr']:.3g} s | {r['synoptic_deepem_numpy_2thr']:.3g} s |",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    import sys

    overhead_main() if "--overhead" in sys.argv[1:] else main()
