"""``fastinv bench``'s measurement: a model file run by fastinv and by its installed peers,
side by side in one run, against a peak measured in the same run.

The steps, in order: load (``fastinv.load`` raises its own error for an unavailable device
or precision), build the peers (PyTorch from the file's graph, ONNX Runtime through an
ONNX export of that module; a missing package is a one-line note, not an error), check that
every peer computes what fastinv computes on the first samples (max error reported), then
time rounds in which every implementation runs once and the peak is measured once, so all
of them see the same share of a machine that others may be loading.
"""

from __future__ import annotations

import math
import os
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from ..model import load
from .machine import machine_info, measure_peak
from .report import median

__all__ = ["SHIPPED", "PEERS", "resolve_model", "benchmark_input", "run_benchmark"]

#: Names of the models that come with fastinv -> their files in fastinv/data.
SHIPPED = {
    "deepem": "deepem.safetensors",
    "stokes_hinode": "stokes_hinode.safetensors",
    "stokes_visp": "stokes_visp.safetensors",
}

#: Peers ``run_benchmark`` knows, and the package each needs.
PEERS = {"torch": "torch", "onnxruntime": "onnxruntime"}

#: Samples whose outputs are compared before timing.
PARITY_SAMPLES = 4096


def resolve_model(model: str | os.PathLike) -> Path:
    """The model file: a path to a ``.safetensors`` file, or a shipped model's name.

    Raises
    ------
    OSError
        Neither an existing file nor one of :data:`SHIPPED`.

    Examples
    --------
    >>> resolve_model("deepem").name
    'deepem.safetensors'
    >>> resolve_model("no_such_model")
    Traceback (most recent call last):
    ...
    FileNotFoundError: no_such_model: no such model file, and not a shipped model (deepem, stokes_hinode, stokes_visp)
    """
    if str(model) in SHIPPED:
        return Path(str(resources.files("fastinv") / "data" / SHIPPED[str(model)]))
    path = Path(model)
    if not path.is_file():
        raise FileNotFoundError(f"{model}: no such model file, and not a shipped model ({', '.join(SHIPPED)})")
    return path


def benchmark_input(input_shape: Sequence[int], layout: str, samples: int, seed: int = 0) -> np.ndarray:
    """A batch of about ``samples`` standard-normal float32 samples in the model's layout.

    Per-pixel (``nchw``) models get one image of ``samples`` pixels as close to square as
    the count allows; the others ``samples`` rows.

    Examples
    --------
    >>> benchmark_input([6], "nchw", 1000).shape
    (1, 6, 31, 33)
    >>> benchmark_input([4, 112], "ncl", 10).shape
    (10, 4, 112)
    """
    rng = np.random.default_rng(seed)
    if layout == "nchw":
        h = max(1, math.isqrt(samples))
        shape = (1, int(input_shape[0]), h, -(-samples // h))
    else:
        shape = (samples, *map(int, input_shape))
    return rng.standard_normal(shape, dtype=np.float32)


def _samples(x: np.ndarray, layout: str) -> int:
    return x.shape[0] * x.shape[2] * x.shape[3] if layout == "nchw" else x.shape[0]


def _head(x: np.ndarray, layout: str, n: int) -> np.ndarray:
    """The first ``n`` samples (a strip of the image for per-pixel models)."""
    if layout == "nchw":
        rows = max(1, n // x.shape[3])
        return np.ascontiguousarray(x[:1, :, :rows])
    return np.ascontiguousarray(x[:n])


def _torch_prepare(torch: Any, net: Any, device: str, autocast: bool) -> Callable[[np.ndarray], Callable[[], Any]]:
    net = net.to(device)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)

    def prepare(batch: np.ndarray) -> Callable[[], Any]:
        # NumPy in, NumPy out, as for fastinv: on CUDA the copies are timed for both
        # (on the CPU from_numpy and .numpy() share memory and cost nothing).
        def run() -> Any:
            with torch.inference_mode(), torch.autocast(device, dtype=torch.bfloat16, enabled=autocast):
                y = net(torch.from_numpy(batch).to(device))
            sync()
            return y.float().cpu().numpy()

        return run

    return prepare


def _onnx_session(torch: Any, ort: Any, net: Any, x: np.ndarray, layout: str, threads: int, device: str, folder: str):
    path = os.path.join(folder, "model.onnx")
    axes = {0: "n", 2: "h", 3: "w"} if layout == "nchw" else {0: "n"}
    out_axes = {0: "n", 2: "h", 3: "w"} if layout == "nchw" else {0: "n"}
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's deprecation and constant-folding chatter
        torch.onnx.export(
            net,
            torch.from_numpy(_head(x, layout, 2)),
            path,
            input_names=["x"],
            output_names=["y"],
            dynamic_axes={"x": axes, "y": out_axes},
            dynamo=False,
        )
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    providers = ["CUDAExecutionProvider"] if device == "cuda" else ["CPUExecutionProvider"]
    if providers[0] not in ort.get_available_providers():
        raise RuntimeError(f"onnxruntime here has no {providers[0]}")
    return ort.InferenceSession(path, opts, providers=providers)


def _peers(
    compare: Sequence[str],
    path: Path,
    x: np.ndarray,
    layout: str,
    threads: int,
    device: str,
    precision: str,
    folder: str,
) -> tuple[dict[str, Callable[[np.ndarray], Callable[[], Any]]], dict[str, str]]:
    """Per available peer, a function that takes a batch and returns the call to time
    (NumPy in and out); and a note per peer that cannot run here."""
    from .._optional import require
    from .torch_graph import torch_module

    runs: dict[str, Callable[[np.ndarray], Callable[[], Any]]] = {}
    notes: dict[str, str] = {}
    try:
        torch = require("torch")
    except ImportError:
        for peer in compare:  # ONNX Runtime gets its model through torch's ONNX export
            notes[peer] = 'needs torch, which is not installed: pip install "fastinv[bench]"'
        return runs, notes
    torch.set_num_threads(threads)
    net = torch_module(path)
    if device == "cuda" and not torch.cuda.is_available():
        notes["torch"] = "torch here has no CUDA device"
    elif "torch" in compare:
        runs["torch"] = _torch_prepare(torch, net, device, autocast=False)
        if precision in ("bf16", "bf16x2"):
            runs["torch-bf16-autocast"] = _torch_prepare(torch, net, device, autocast=True)
    if "onnxruntime" in compare:
        try:
            ort = require("onnxruntime", "the ONNX Runtime peer of fastinv bench")
            sess = _onnx_session(torch, ort, torch_module(path), x, layout, threads, device, folder)
            runs["onnxruntime"] = lambda batch: lambda: sess.run(None, {"x": batch})[0]
        except (ImportError, RuntimeError) as exc:
            notes["onnxruntime"] = str(exc)
    return runs, notes


def run_benchmark(
    model: str | os.PathLike,
    samples: int = 1 << 20,
    threads: int | None = None,
    device: str = "cpu",
    precision: str = "fp32",
    compare: Sequence[str] = ("torch", "onnxruntime"),
    rounds: int = 5,
    peak_seconds: float = 0.2,
) -> dict[str, Any]:
    """Time a model file with fastinv and its installed peers in one run.

    Parameters
    ----------
    model : str or os.PathLike
        A ``.safetensors`` file from :func:`fastinv.export`, or a shipped model's name
        (:data:`SHIPPED`).
    samples : int
        Samples per call (pixels for per-pixel networks, profiles for 1D CNNs).
    threads : int, optional
        Threads for every implementation; default: fastinv's default.
    device : {"cpu", "cuda"}
    precision : {"fp32", "bf16", "bf16x2", "tf32"}
        Passed to :func:`fastinv.load` (which refuses what this machine cannot run).
    compare : sequence of str
        Peers from :data:`PEERS`; those not installed are skipped with a note.
    rounds : int
        Timed rounds; each runs every implementation once and measures the peak once.
    peak_seconds : float
        Length of each peak measurement.

    Returns
    -------
    dict
        ``results`` (per implementation: median time, samples/s, GFLOP/s as written and
        executed, fraction of the peak, fastinv's speed-up), ``parity`` (each peer's max
        error against fastinv), ``skipped`` (notes), ``peak``, ``machine`` and the run's settings.

    Examples
    --------
    >>> r = run_benchmark("deepem", samples=256, threads=1, compare=(), rounds=1, peak_seconds=0.01)
    >>> r["results"][0]["impl"], r["samples"]
    ('fastinv', 256)
    """
    unknown = [p for p in compare if p not in PEERS]
    if unknown:
        raise ValueError(f"unknown peer(s) {', '.join(unknown)}; fastinv bench compares with {', '.join(PEERS)}")
    if samples < 1 or rounds < 1:
        raise ValueError(f"samples and rounds must be at least 1, got {samples} and {rounds}")
    path = resolve_model(model)
    fast = load(path, device=device, threads=threads, precision=precision)
    nthreads = threads or _default_threads()
    cpu = device == "cpu"
    if cpu:
        measure_peak(nthreads, precision, 0.01)  # fails early, before the peers are built
    info = fast.info()
    x = benchmark_input(fast.input_shape, fast.layout, samples)
    head = _head(x, fast.layout, PARITY_SAMPLES)
    load_before = os.getloadavg()[0]

    with tempfile.TemporaryDirectory(prefix="fastinv-bench-") as folder:
        peers, notes = _peers(compare, path, x, fast.layout, nthreads, device, precision, folder)
        prepare = {"fastinv": lambda batch: lambda: fast(batch), **peers}
        reference = np.asarray(fast(head), dtype=np.float64)
        parity = {}
        for name, prep in peers.items():
            y = np.asarray(prep(head)(), dtype=np.float64)
            err = float(np.max(np.abs(y - reference))) if y.size else 0.0
            scale = float(np.max(np.abs(y))) if y.size else 0.0
            parity[name] = {
                "samples": _samples(head, fast.layout),
                "max_abs_error": err,
                "max_error_of_output_scale": err / scale if scale > 0 else err,
            }
        impls = {name: prep(x) for name, prep in prepare.items()}
        times: dict[str, list[float]] = {name: [] for name in impls}
        peaks: list[float] = []
        for run in impls.values():  # warm-up: first-call allocations and caches
            run()
        names = list(impls)
        for r in range(rounds):
            if cpu:
                peaks.append(measure_peak(nthreads, precision, peak_seconds))
            for name in names[r % len(names) :] + names[: r % len(names)]:  # each goes first in turn
                t = time.perf_counter()
                impls[name]()
                times[name].append(time.perf_counter() - t)

    n = _samples(x, fast.layout)
    peak = median(peaks) if peaks else None
    fastinv_median = median(times["fastinv"])
    results = []
    for name, ts in times.items():
        t = median(ts)
        executed = info["executed_flops_per_sample"] if name == "fastinv" else info["flops_per_sample"]
        executed_gflops = executed * n / t * 1e-9
        results.append(
            {
                "impl": name,
                "median_s": t,
                "times_s": ts,
                "samples_per_s": n / t,
                "gflops": info["flops_per_sample"] * n / t * 1e-9,
                "executed_gflops": executed_gflops,
                "fraction_of_peak": executed_gflops / peak if peak else None,
                "fastinv_speedup": t / fastinv_median,
            }
        )
    # the kernels the model runs: amx_bf16 / avx512_bf16 for bf16 models, not the float32 ISA
    machine = machine_info(nthreads, isa=info["isa"] if cpu else None)
    machine["loadavg_1min_before"] = load_before
    return {
        "model": str(path),
        "device": device,
        "precision": precision,
        "threads": nthreads,
        "samples": n,
        "batch_shape": list(x.shape),
        "rounds": rounds,
        "flops_per_sample": info["flops_per_sample"],
        "executed_flops_per_sample": info["executed_flops_per_sample"],
        "peak": {
            "what": ("bf16 (the bf16 kernels' instructions)" if precision.startswith("bf16") else "float32 FMA")
            + f" peak, {nthreads} thread(s)",
            "isa": info["isa"],
            "gflops": peak,
            "measurements_gflops": peaks,
        }
        if cpu
        else None,
        "parity": parity,
        "results": results,
        "skipped": notes,
        "machine": machine,
    }


def _default_threads() -> int:
    from .. import info

    return int(info()["threads"])
