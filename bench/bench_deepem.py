"""DeepEM on a 4096x4096 six-channel AIA frame (the 2014-01-01 synoptic set tiled 4x4):
fastinv's engine against PyTorch (same weights, same threads, the Conv2d path users run,
in 512-row stripes so its 300-channel intermediates fit in memory) and against fastinv's
Basis Pursuit on the same frame, in one run. Records pixels/s and, for the networks,
GFLOP/s and the fraction of the measured FMA peak.

DeepEM.invert is measured twice: a fresh result per call (`fastinv`: ~1.8 GB of new output
memory, whose first-touch page faults this benchmark's VM makes expensive: free pages are
handed back to the hypervisor, so fresh memory costs ~2 CPU-s/GB of system time), and a
frame series reusing the previous result's buffers (`fastinv-out`, ``out=``). Each records
the system CPU time per call."""

from __future__ import annotations

import os

import numpy as np
import pytest

torch = pytest.importorskip("torch")
safetensors_numpy = pytest.importorskip("safetensors.numpy")

from conftest import THREADS  # noqa: E402
from fastinv import datasets  # noqa: E402
from fastinv.dem import DeepEM  # noqa: E402
from fastinv.dem.basis_pursuit import DEEPEM_LOGT, BasisPursuit  # noqa: E402
from fastinv.dem.deepem import shipped_model_path  # noqa: E402
from fastinv.dem.io import read_aia  # noqa: E402
from fastinv.train.deepem import deepem_network  # noqa: E402

torch.set_num_threads(THREADS)
STRIPE = 512


@pytest.fixture(scope="module")
def frame():
    obs = read_aia(datasets.aia_synoptic_files(), presummed=16)
    y = np.nan_to_num(np.tile(obs.data, (1, 4, 4)))  # (6, 4096, 4096) DN/s
    return {"y": y, "exptime": obs.exptime, "n_sample": obs.n_sample, "pixels": y.shape[1] * y.shape[2]}


@pytest.fixture(scope="module")
def torch_deepem():
    weights = safetensors_numpy.load_file(shipped_model_path())  # the default model (DeepEM.load())
    net = deepem_network(n_out=weights["4.bias"].shape[0]).eval()
    with torch.no_grad():
        for i in (0, 2, 4):
            net[i].weight.copy_(torch.from_numpy(weights[f"{i}.weight"])[:, :, None, None])
            net[i].bias.copy_(torch.from_numpy(weights[f"{i}.bias"]))
    return net


class _SysTime:
    """Wraps a callable; collects the process's system CPU seconds per call."""

    def __init__(self, fn):
        self.fn, self.sys = fn, []

    def __call__(self, *args, **kwargs):
        t0 = os.times()
        res = self.fn(*args, **kwargs)
        self.sys.append(os.times().system - t0.system)
        return res


def _record(benchmark, frame, machine, impl, flops_per_px=None, sys_s=None):
    if benchmark.stats is None:
        return
    if sys_s:
        benchmark.extra_info["system_cpu_s_per_call"] = sys_s
    benchmark.extra_info["load_avg_1min_after"] = os.getloadavg()[0]
    t = benchmark.stats.stats.median
    info = {
        "case": "deepem-4096x4096",
        "impl": impl,
        "threads": THREADS,
        "samples": frame["pixels"],
        "samples_per_s": frame["pixels"] / t,
        "isa": machine["isa"],
        "cpu": machine["cpu"],
        "fma_peak_gflops": machine["fma_peak_gflops"],
        "bf16_peak_gflops": machine["bf16_peak_gflops"],
    }
    if flops_per_px:
        gflops = flops_per_px * frame["pixels"] / t * 1e-9
        info.update(gflops=gflops, fraction_of_fma_peak=gflops / machine["fma_peak_gflops"])
        if "bf16" in impl and machine["bf16_peak_gflops"]:
            info["fraction_of_bf16_peak"] = gflops / machine["bf16_peak_gflops"]
    benchmark.extra_info.update(info)


def test_fastinv_deepem(benchmark, frame, machine, torch_deepem):
    benchmark.group = "deepem-4096x4096"
    net = DeepEM.load(threads=THREADS)
    run = _SysTime(net.invert)
    res = benchmark.pedantic(run, args=(frame["y"],), rounds=2, warmup_rounds=0)
    _check_corner(res, frame, torch_deepem)
    _record(benchmark, frame, machine, "fastinv", net.model.info()["flops_per_sample"], run.sys)


def test_fastinv_deepem_series(benchmark, frame, machine, torch_deepem):
    """A frame series: each call overwrites the previous result (out=), no fresh memory."""
    benchmark.group = "deepem-4096x4096"
    net = DeepEM.load(threads=THREADS)
    prev = net.invert(frame["y"])
    run = _SysTime(lambda: net.invert(frame["y"], out=prev))
    res = benchmark.pedantic(run, rounds=3, warmup_rounds=0)
    assert res.em is prev.em or np.shares_memory(res.em, prev.em)
    _check_corner(res, frame, torch_deepem)
    _record(benchmark, frame, machine, "fastinv-out", net.model.info()["flops_per_sample"], run.sys)


def test_fastinv_deepem_series_bf16(benchmark, frame, machine, torch_deepem):
    """The frame series (out=) with precision="bf16" (AVX512-BF16 kernels)."""
    if not machine["bf16_peak_gflops"]:
        pytest.skip("no AVX512-BF16 on this CPU")
    benchmark.group = "deepem-4096x4096"
    net = DeepEM.load(threads=THREADS, precision="bf16")
    prev = net.invert(frame["y"])
    run = _SysTime(lambda: net.invert(frame["y"], out=prev))
    res = benchmark.pedantic(run, rounds=3, warmup_rounds=0)
    _check_corner(res, frame, torch_deepem, atol=4e-2)  # EM = y^2: twice bf16's ~1 % of the output
    _record(benchmark, frame, machine, "fastinv-bf16-out", net.model.info()["flops_per_sample"], run.sys)


def test_fastinv_deepem_series_bf16x2(benchmark, frame, machine, torch_deepem):
    """The frame series (out=) with precision="bf16x2" (two bf16 terms per weight: per-bin
    EM within 1 % of fp32's agreement with BP, bench/results/bf16_science.json)."""
    if not machine["bf16_peak_gflops"]:
        pytest.skip("no AVX512-BF16 on this CPU")
    benchmark.group = "deepem-4096x4096"
    net = DeepEM.load(threads=THREADS, precision="bf16x2")
    prev = net.invert(frame["y"])
    run = _SysTime(lambda: net.invert(frame["y"], out=prev))
    res = benchmark.pedantic(run, rounds=3, warmup_rounds=0)
    _check_corner(res, frame, torch_deepem, atol=4e-2)  # the bf16 layer inputs: as bf16
    _record(benchmark, frame, machine, "fastinv-bf16x2-out", net.model.info()["flops_per_sample"], run.sys)


def _check_corner(res, frame, torch_deepem, atol=2e-5):
    with torch.no_grad():  # same numbers as torch on a corner of the frame
        x = torch.from_numpy(np.sqrt(np.maximum(frame["y"][:, :64, :64], 0)).astype(np.float32))[None]
        ref = 1e25 * torch_deepem(x)[0].double().numpy() ** 2
    np.testing.assert_allclose(res.em[:, :64, :64], ref, rtol=0, atol=atol * ref.max())


def test_torch_deepem(benchmark, frame, machine, torch_deepem):
    benchmark.group = "deepem-4096x4096"
    x = np.sqrt(np.maximum(frame["y"], 0)).astype(np.float32)

    def run():
        out = np.empty((torch_deepem[4].out_channels, *x.shape[1:]), np.float32)
        with torch.inference_mode():
            for r in range(0, x.shape[1], STRIPE):
                out[:, r : r + STRIPE] = torch_deepem(torch.from_numpy(x[None, :, r : r + STRIPE]))[0].numpy()
        return 1e25 * out.astype(np.float64) ** 2

    benchmark.pedantic(run, rounds=1, warmup_rounds=0)
    _record(benchmark, frame, machine, "torch", DeepEM.load().model.info()["flops_per_sample"])


def test_torch_deepem_bf16(benchmark, frame, machine, torch_deepem):
    """PyTorch with bf16 autocast on the CPU (its own bf16 path: oneDNN)."""
    benchmark.group = "deepem-4096x4096"
    x = np.sqrt(np.maximum(frame["y"], 0)).astype(np.float32)

    def run():
        out = np.empty((torch_deepem[4].out_channels, *x.shape[1:]), np.float32)
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
            for r in range(0, x.shape[1], STRIPE):
                out[:, r : r + STRIPE] = torch_deepem(torch.from_numpy(x[None, :, r : r + STRIPE]))[0].float().numpy()
        return 1e25 * out.astype(np.float64) ** 2

    benchmark.pedantic(run, rounds=1, warmup_rounds=0)
    _record(benchmark, frame, machine, "torch-bf16-autocast", DeepEM.load().model.info()["flops_per_sample"])


def test_fastinv_bp(benchmark, frame, machine):
    benchmark.group = "deepem-4096x4096"
    bp = BasisPursuit(logt=DEEPEM_LOGT)
    benchmark.pedantic(
        bp.solve,
        args=(frame["y"],),
        kwargs={"exptime": frame["exptime"], "n_sample": frame["n_sample"], "threads": THREADS},
        rounds=1,
        warmup_rounds=0,
    )
    _record(benchmark, frame, machine, "fastinv-bp")


@pytest.fixture(scope="module")
def synoptic():
    obs = read_aia(datasets.aia_synoptic_files(), presummed=16)
    y = np.nan_to_num(obs.data[:, 256:768, 256:768])  # (6, 512, 512) DN/s: the disk centre
    return {"y": y, "exptime": obs.exptime, "n_sample": obs.n_sample, "pixels": y.shape[1] * y.shape[2]}


@pytest.mark.parametrize("errors", [False, True], ids=["plain", "errors"])
def test_fastinv_deepem_errors_512(benchmark, synoptic, machine, errors):
    """DeepEM on the central 512x512 of the synoptic frame with and without its calibrated
    errors (the Jacobian propagation in the same tile loop): their cost is the ratio of the two."""
    benchmark.group = "deepem-512x512-errors"
    net = DeepEM.load(threads=THREADS)
    kw = {"exptime": synoptic["exptime"], "n_sample": synoptic["n_sample"], "errors": errors}
    res = benchmark.pedantic(net.invert, args=(synoptic["y"],), kwargs=kw, rounds=3, warmup_rounds=1)
    assert (res.em_err is not None) == errors
    info = {"case": "deepem-512x512", "impl": "fastinv-errors" if errors else "fastinv"}
    _record(benchmark, synoptic, machine, info["impl"], net.model.info()["flops_per_sample"])
    benchmark.extra_info["case"] = info["case"]
