"""Network vs classical initialisation of the Milne-Eddington inversion, and one ViSP raster
step with ``FrameInverter(method="cnn+me")``.

Run (writes JSON with machine info and a markdown summary into bench/results/)::

    python bench/bench_me_init.py

Data: ME-synthetic profiles with 1e-3 I_c noise over the ME training ranges (f = 1, no vmac),
from a seed the networks were not trained on (``fastinv.train.stokes_me.me_set``, seed 2024):

- Hinode SP (112 points, both lines): 1000 pixels, 1 thread, the same pixels and options for
  both starts (9 free parameters, up to 3 deterministic restarts where reduced chi2 > 2); the
  network's time is included in its pixels/s.
- One DKIST ViSP raster step: 2 555 pixels on the 173-point ViSP window, as a (4, 173, 2555)
  frame in counts (I_c = 10^4), all threads: ``FrameInverter(method="cnn+me")`` (network
  guess + LM) and ``method="me"`` (classical guess + LM); and the inverter's construction
  (loading the ME network) once.

Median reduced chi2, median and mean iterations and the share of pixels that used restarts
come with each case. The machine is shared: the 1-minute load average is recorded.
"""

from __future__ import annotations

import os
import time

os.environ.setdefault("OMP_WAIT_POLICY", "passive")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from fastinv.stokes import FrameInverter, MEInversion  # noqa: E402
from fastinv.stokes.synthesis.training_sets import instrument_by_name  # noqa: E402
from fastinv.train.stokes_me import me_set  # noqa: E402
from profiles import CpuTimed  # noqa: E402
from summarize import Run, write_markdown  # noqa: E402

N_HINODE = 1000
N_VISP = 2555
IC = 1e4


@pytest.fixture(scope="module")
def hinode():
    inv = MEInversion(instrument=instrument_by_name("hinode"))
    return inv, me_set(N_HINODE, "hinode", seed=2024)["stokes"].astype(np.float64)


@pytest.fixture(scope="module")
def visp_frame():
    d = me_set(N_VISP, "visp", seed=2025)
    return (d["stokes"].astype(np.float64) * IC).transpose(1, 2, 0).copy(), d["wavelength"]


def _record(benchmark, n, timed, res, chi2, iterations, restarts, status) -> None:
    if benchmark.stats is None:
        return
    info = benchmark.extra_info
    info["loadavg_1min"] = os.getloadavg()[0]
    info["pixels"] = n
    info["pixels_per_s"] = n / benchmark.stats.stats.mean
    info["seconds"] = benchmark.stats.stats.mean
    if timed is not None and timed.calls:
        info["pixels_per_cpu_s"] = n * timed.calls / timed.cpu
    info["median_chi2"] = float(np.nanmedian(chi2))
    info["median_iterations"] = float(np.median(iterations))
    info["mean_iterations"] = float(np.mean(iterations))
    info["share_restarted"] = float(np.mean(restarts > 0))
    info["share_ok"] = float(np.mean(status == 0))


@pytest.mark.benchmark(group="me-init-hinode")
@pytest.mark.parametrize("init", ["classical", "network"])
def test_hinode_1core(benchmark, hinode, init):
    inv, obs = hinode
    timed = CpuTimed(inv.invert)
    r = benchmark.pedantic(timed, args=(obs,), kwargs={"threads": 1, "init": init}, rounds=3, iterations=1)
    _record(benchmark, N_HINODE, timed, r, r.chi2[:, 4], r.iterations, r.restarts, r.status)


@pytest.mark.benchmark(group="me-init-visp-step")
@pytest.mark.parametrize("method", ["me", "cnn+me", "cnn+me float64"])
def test_visp_step(benchmark, visp_frame, method):
    frame, wl = visp_frame
    # "float64": the float64 Jacobian kernel (the default before the float32 one), same run
    opts = {"precision": "float64"} if method.endswith("float64") else None
    inv = FrameInverter(None, "visp", continuum=IC, method=method.split()[0], me_options=opts)
    timed = CpuTimed(inv.invert_frame)
    r = benchmark.pedantic(timed, args=(frame,), kwargs={"wavelength": wl}, rounds=3, iterations=1)
    _record(benchmark, N_VISP, timed, r, r.me.chi2[:, 4], r.me.iterations, r.me.restarts, r.status)
    benchmark.extra_info["threads"] = os.cpu_count()


@pytest.mark.benchmark(group="me-init-visp-step")
def test_visp_load(benchmark):
    def load():
        from fastinv.stokes.inversion import me_network

        me_network._CACHE.clear()  # a cold start: read and check the model file
        return FrameInverter(None, "visp", method="cnn+me")

    t0 = time.perf_counter()
    benchmark.pedantic(load, rounds=3, iterations=1)
    benchmark.extra_info["seconds"] = benchmark.stats.stats.mean if benchmark.stats else time.perf_counter() - t0
    benchmark.extra_info["loadavg_1min"] = os.getloadavg()[0]


def write_summary(json_path, md_path) -> str:
    run = Run.load(json_path)

    def get(name, key):
        try:
            return run.extra(name, key)
        except KeyError:
            return float("nan")

    rows = [
        ("Hinode SP, classical guess, 1 thread", "test_hinode_1core[classical]"),
        ("Hinode SP, network guess, 1 thread", "test_hinode_1core[network]"),
        (f"ViSP step, method me (classical), {os.cpu_count()} threads", "test_visp_step[me]"),
        (f"ViSP step, method cnn+me (network), {os.cpu_count()} threads", "test_visp_step[cnn+me]"),
        (
            f"ViSP step, method cnn+me, float64 Jacobian (former default), {os.cpu_count()} threads",
            "test_visp_step[cnn+me float64]",
        ),
    ]
    lines = [
        "# Milne-Eddington inversion: network vs classical initial guess",
        "",
        run.machine_line(),
        "- ME-synthetic pixels, 1e-3 I_c noise, ME training ranges (f = 1), seed 2024/2025 (not a "
        "training seed); 9 free parameters, up to 3 deterministic restarts where reduced chi2 > 2",
        "",
        "| case | pixels | seconds | pixels/s (wall) | pixels per CPU-s | median reduced chi2 | "
        "median iterations | mean iterations | share restarted | share ok |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for label, name in rows:
        lines.append(
            f"| {label} | {get(name, 'pixels'):.0f} | {get(name, 'seconds'):.3f} | "
            f"{get(name, 'pixels_per_s'):,.1f} | {get(name, 'pixels_per_cpu_s'):,.1f} | "
            f"{get(name, 'median_chi2'):.3f} | {get(name, 'median_iterations'):.0f} | "
            f"{get(name, 'mean_iterations'):.1f} | {get(name, 'share_restarted'):.3f} | {get(name, 'share_ok'):.3f} |"
        )
    for method in ("me", "cnn+me", "cnn+me float64"):
        ppcs = get(f"test_visp_step[{method}]", "pixels_per_cpu_s")
        lines.append(
            f"- ViSP step, {method}: {N_VISP / (2 * ppcs):.2f} s projected on 2 idle cores "
            f"({ppcs:,.0f} pixels per CPU-s; target 0.5 s)"
        )
    f32, f64 = (get(f"test_visp_step[{m}]", "pixels_per_cpu_s") for m in ("cnn+me", "cnn+me float64"))
    lines.append(f"- ViSP step, cnn+me: float32 / float64 Jacobian kernel, same run: {f32 / f64:.2f}x per CPU-s")
    lines += [
        "",
        f"Loading the ViSP ME network (FrameInverter construction): {get('test_visp_load', 'seconds'):.3f} s",
        "",
    ]
    return write_markdown(md_path, lines)


if __name__ == "__main__":
    from run_script import run_and_summarize

    run_and_summarize(__file__, "me_init", write_summary)
