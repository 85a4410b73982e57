"""CPU engine against PyTorch and ONNX Runtime with the same weights, same threads.

Cases (issue 'Foundation'; fastinv also in bf16 and bf16x2 where the CPU has AVX512-BF16):
  (a) DeepEM 6->300->300->18 on one 1024x1024 six-channel image;
  (b) a Hinode-like 1D CNN (4x112; conv 64 k9/k5/k3 with max-pool 2; dense 256; 30 out)
      on 100 000 profiles;
  (c) the same CNN shape on one DKIST ViSP slit frame (2 555 profiles x 4 x 980).
Each benchmark records samples/s, GFLOP/s of the layers as written (the same count for
every implementation, so rates compare like with like) and the fraction of the measured
FMA peak (fastinv-bf16: also of the measured vdpbf16ps peak) that the FLOPs really
executed reach: fastinv's engine reports its own count
(Winograd convolutions and pool-skipped positions execute fewer); the peers' are taken
as written. The peak is measured before every timed round (pytest-benchmark's untimed
setup), so the fraction divides by the peak the machine gave in the same minutes: on a
machine shared with other jobs a peak measured once at the start is not the limit the
benchmark later ran against. bench/summarize.py turns the JSON into ratios.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

torch = pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")

import fastinv  # noqa: E402
from conftest import THREADS  # noqa: E402
from fastinv.benchmarking import measure_peak  # noqa: E402
from fastinv.benchmarking.report import median  # noqa: E402

torch.set_num_threads(THREADS)


def deepem() -> torch.nn.Module:
    return torch.nn.Sequential(
        torch.nn.Conv2d(6, 300, 1),
        torch.nn.LeakyReLU(0.01),
        torch.nn.Conv2d(300, 300, 1),
        torch.nn.LeakyReLU(0.01),
        torch.nn.Conv2d(300, 18, 1),
    ).eval()


def stokes_cnn(nlambda: int) -> torch.nn.Module:
    conv = [
        torch.nn.Conv1d(4, 64, 9, padding=4),
        torch.nn.ReLU(),
        torch.nn.MaxPool1d(2),
        torch.nn.Conv1d(64, 64, 5, padding=2),
        torch.nn.ReLU(),
        torch.nn.MaxPool1d(2),
        torch.nn.Conv1d(64, 64, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.MaxPool1d(2),
    ]
    length = nlambda // 2 // 2 // 2
    return torch.nn.Sequential(
        *conv, torch.nn.Flatten(), torch.nn.Linear(64 * length, 256), torch.nn.ReLU(), torch.nn.Linear(256, 30)
    ).eval()


CASES = {
    "deepem-1024x1024": (deepem, lambda: np.random.default_rng(0).random((1, 6, 1024, 1024), np.float32)),
    "cnn-hinode-100k": (
        lambda: stokes_cnn(112),
        lambda: np.random.default_rng(0).random((100_000, 4, 112), np.float32),
    ),
    "cnn-visp-frame": (lambda: stokes_cnn(980), lambda: np.random.default_rng(0).random((2555, 4, 980), np.float32)),
}


@pytest.fixture(scope="module", params=list(CASES))
def case(request, tmp_path_factory):
    torch.manual_seed(0)
    make_net, make_x = CASES[request.param]
    net = make_net()
    x = make_x()
    d = tmp_path_factory.mktemp(request.param)
    path = d / "model.safetensors"
    fastinv.export(net, path, torch.from_numpy(x[:2]))
    onnx_path = d / "model.onnx"
    torch.onnx.export(
        net,
        torch.from_numpy(x[:2]),
        str(onnx_path),
        input_names=["x"],
        output_names=["y"],
        dynamic_axes={"x": {0: "n"}, "y": {0: "n"}},
        dynamo=False,
    )
    model = fastinv.load(path, threads=THREADS)
    precisions = ("bf16", "bf16x2") if fastinv.info()["bf16"] else ()
    low = {p: fastinv.load(path, threads=THREADS, precision=p) for p in precisions}
    samples = x.shape[0] * (x.shape[2] * x.shape[3] if x.ndim == 4 else 1)
    info = model.info()
    return {
        "name": request.param,
        "net": net,
        "x": x,
        "model": model,
        "bf16_models": low,
        "onnx": str(onnx_path),
        "samples": samples,
        "flops": info["flops_per_sample"],
        "executed_flops": {
            "fastinv": info["executed_flops_per_sample"],
            **{f"fastinv-{p}": m.info()["executed_flops_per_sample"] for p, m in low.items()},
        },
    }


def _timed(benchmark, case, fn, *args):
    """benchmark.pedantic with the FMA peak measured (untimed) before every round; returns
    fn's last result and the peaks."""
    peaks: list[float] = []

    def setup():
        peaks.append(measure_peak(THREADS, seconds=0.2))
        return args, {}

    return benchmark.pedantic(fn, setup=setup, rounds=_rounds(case), warmup_rounds=1), peaks


def _record(benchmark, case, machine, impl, peaks):
    if benchmark.stats is None:  # --benchmark-disable: a smoke run, nothing timed
        return
    t = benchmark.stats.stats.median
    peak = median(peaks)
    gflops = case["flops"] * case["samples"] / t * 1e-9
    executed = case["executed_flops"].get(impl, case["flops"])
    executed *= case["samples"] / t * 1e-9
    if "bf16" in impl and machine["bf16_peak_gflops"]:  # against the limit of the instructions it runs
        benchmark.extra_info["fraction_of_bf16_peak"] = executed / machine["bf16_peak_gflops"]
        benchmark.extra_info["bf16_peak_gflops"] = machine["bf16_peak_gflops"]
    benchmark.extra_info["load_avg_1min_after"] = os.getloadavg()[0]
    benchmark.extra_info.update(
        {
            "case": case["name"],
            "impl": impl,
            "threads": THREADS,
            "samples": case["samples"],
            "samples_per_s": case["samples"] / t,
            "gflops": gflops,
            "executed_gflops": executed,
            "fraction_of_fma_peak": executed / peak,
            "fma_peak_gflops": peak,
            "fma_peak_gflops_rounds": peaks,
            "fma_peak_gflops_session_start": machine["fma_peak_gflops"],
            "loadavg_1min": os.getloadavg()[0],
            "isa": machine["isa"],
            "cpu": machine["cpu"],
        }
    )


def _rounds(case):
    return 3 if case["samples"] > 50_000 else 20


def test_fastinv(benchmark, case, machine):
    benchmark.group = case["name"]
    y, peaks = _timed(benchmark, case, case["model"], case["x"])
    ref = case["net"](torch.from_numpy(case["x"][:64])).detach().numpy()
    np.testing.assert_allclose(y[:64], ref, atol=1e-5 * np.abs(ref).max(), rtol=0)
    _record(benchmark, case, machine, "fastinv", peaks)


@pytest.mark.parametrize("precision, bound", [("bf16", 2e-2), ("bf16x2", 1e-2)])
def test_fastinv_bf16(benchmark, case, machine, precision, bound):
    """AVX512-BF16 kernels, float32 sums: ``bf16`` rounds weights and layer inputs to bf16
    (tests/test_bf16.py bounds it); ``bf16x2`` keeps each weight as two bf16 terms (twice the
    products), so only the layer inputs are rounded (tests/test_bf16x2.py)."""
    if precision not in case["bf16_models"]:
        pytest.skip("no AVX512-BF16 on this CPU")
    benchmark.group = case["name"]
    y, peaks = _timed(benchmark, case, case["bf16_models"][precision], case["x"])
    ref = case["net"](torch.from_numpy(case["x"][:64])).detach().numpy()
    err = np.linalg.norm(y[:64] - ref) / np.linalg.norm(ref)
    assert err < bound, err
    benchmark.extra_info["relative_l2_error_vs_torch"] = float(err)
    _record(benchmark, case, machine, f"fastinv-{precision}", peaks)


def test_torch(benchmark, case, machine):
    benchmark.group = case["name"]
    xt = torch.from_numpy(case["x"])

    def run():
        with torch.inference_mode():
            return case["net"](xt)

    _, peaks = _timed(benchmark, case, run)
    _record(benchmark, case, machine, "torch", peaks)


def test_torch_bf16(benchmark, case, machine):
    """PyTorch with bf16 autocast on the CPU."""
    benchmark.group = case["name"]
    xt = torch.from_numpy(case["x"])

    def run():
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
            return case["net"](xt)

    _, peaks = _timed(benchmark, case, run)
    _record(benchmark, case, machine, "torch-bf16-autocast", peaks)


def test_onnxruntime(benchmark, case, machine):
    benchmark.group = case["name"]
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = THREADS
    opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(case["onnx"], opts, providers=["CPUExecutionProvider"])
    _, peaks = _timed(benchmark, case, sess.run, None, {"x": case["x"]})
    _record(benchmark, case, machine, "onnxruntime", peaks)
