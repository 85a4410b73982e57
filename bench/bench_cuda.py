"""CUDA backend against PyTorch CUDA on the same GPU, same weights, one run (issue 6).

Cases:
  * DeepEM 6->300->300->18 on a 4096x4096 six-channel frame;
  * the issue-A 1D CNN (bench_engine.stokes_cnn: conv 64 k9/k5/k3 + max-pool 2, dense 256,
    30 out) on one DKIST ViSP frame (2 555 profiles x 4 x 980) and on 10^6 Hinode
    profiles (4 x 112).
Implementations: fastinv fp32 / tf32 / bf16; PyTorch eager in true fp32 (TF32 off), eager
with PyTorch's defaults (cuDNN convolutions in TF32), eager under bf16 autocast, and
torch.compile (default mode) in fp32-default and bf16 autocast. Device-resident (inputs
and outputs already on the GPU) and host-to-host (NumPy in, NumPy out) are separate rows.

Timing: CUDA events around the region on the current stream, after warm-up, median of
the repetitions (p10/p90 kept); device-resident inputs rotate among 3 input sets when
they would fit in L2. Inputs are fresh random numbers, never zeros. The measured
ceilings (bf16 and tf32 matrix products 8192^3 through torch.matmul, a device-to-device
copy) are recorded in the same run; each row carries TFLOP/s and its fraction of the
measured bf16 ceiling, and each fastinv row its ratio to the PyTorch row of equal
precision. This file does not use pytest-benchmark's host timer: CUDA events are the
device timer; the JSON (bench/results/cuda_<host>_<time>.json) keeps the same role.

Run on a GPU machine:  python bench/bench_cuda.py          (all cases, writes results)
                       FASTINV_BENCH_QUICK=1 python bench/bench_cuda.py   (smaller sizes)
                       FASTINV_BENCH_QUICK=2 ...   (tiny sizes: checks the script, times nothing useful)
                       FASTINV_BENCH_CASES=deepem,visp,hinode   (a subset of the cases)
                       FASTINV_BENCH_NO_COMPILE=1   (no torch.compile rows: each compiles for ~1 min)
                       FASTINV_BENCH_RESULTS=<folder>   (instead of bench/results)
Without a usable CUDA device every case skips.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import fastinv  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_engine import deepem, stokes_cnn  # noqa: E402

RESULTS = Path(os.environ.get("FASTINV_BENCH_RESULTS") or Path(__file__).resolve().parent / "results")
CASES = set(filter(None, os.environ.get("FASTINV_BENCH_CASES", "deepem,visp,hinode").split(",")))
if CASES - {"deepem", "visp", "hinode"}:
    raise ValueError(
        f"FASTINV_BENCH_CASES: unknown {sorted(CASES - {'deepem', 'visp', 'hinode'})}; use deepem,visp,hinode"
    )
NO_COMPILE = os.environ.get("FASTINV_BENCH_NO_COMPILE", "0") not in ("", "0")
QUICK = int(os.environ.get("FASTINV_BENCH_QUICK", "0") or 0)  # 1: smaller sizes; 2: tiny (a dry run of the logic)
HAVE_GPU = fastinv.info()["cuda_devices"] > 0 and torch.cuda.is_available()
pytestmark = pytest.mark.skipif(
    not HAVE_GPU, reason="no usable CUDA device (fastinv.info()['cuda_devices'] == 0 or torch without CUDA)"
)
ROWS: list[dict] = []
CEILING: dict = {}


# ---- timing
def cuda_times_ms(fn, warmup: int = 3, reps: int = 10) -> np.ndarray:
    """Per-repetition times (ms) of fn() measured with CUDA events on the current stream."""
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        stop.record()
        stop.synchronize()
        times.append(start.elapsed_time(stop))
    return np.asarray(times)


def record(
    case: str, impl: str, precision: str, mode: str, times_ms: np.ndarray, samples: int, flops_per_sample: int, **extra
) -> dict:
    t = float(np.median(times_ms)) * 1e-3
    row = {
        "case": case,
        "impl": impl,
        "precision": precision,
        "mode": mode,
        "median_ms": t * 1e3,
        "p10_ms": float(np.percentile(times_ms, 10)),
        "p90_ms": float(np.percentile(times_ms, 90)),
        "reps": int(len(times_ms)),
        "samples": samples,
        "samples_per_s": samples / t,
        "tflops": flops_per_sample * samples / t * 1e-12,
    }
    if CEILING.get("bf16_matmul_tflops"):
        row["fraction_of_bf16_ceiling"] = row["tflops"] / CEILING["bf16_matmul_tflops"]
    row.update(extra)
    ROWS.append(row)
    return row


@pytest.fixture(scope="module", autouse=True)
def _write_results():
    yield
    if not ROWS:
        return
    RESULTS.mkdir(parents=True, exist_ok=True)
    p = torch.cuda.get_device_properties(0)
    dev = fastinv._core.cuda_device_info(0)
    doc = {
        "device": {
            "name": p.name,
            "compute_capability": f"{p.major}.{p.minor}",
            "multiprocessors": p.multi_processor_count,
            "memory_gib": p.total_memory / 2**30,
            "shared_memory_per_block_optin": dev["shared_memory_per_block_optin"],
            "torch": torch.__version__,
            "cuda_runtime_torch": torch.version.cuda,
        },
        "host": {"node": platform.node(), "python": platform.python_version(), "cpu_count": os.cpu_count()},
        "fastinv": fastinv.__version__,
        "quick": QUICK,
        "ceiling": CEILING,
        "rows": ROWS,
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    # ratios: fastinv over the PyTorch eager row of equal precision and mode
    peer = {"fp32": "torch-eager-fp32", "tf32": "torch-eager-default(tf32)", "bf16": "torch-eager-bf16-autocast"}
    for r in ROWS:
        if r["impl"] in ("fastinv", "fastinv-ldmatrix", "fastinv-pipeline") and "median_ms" in r:
            for q in ROWS:
                if (
                    q["case"] == r["case"]
                    and q.get("mode") == r["mode"]
                    and q["impl"] == peer[r["precision"]]
                    and "median_ms" in q
                ):
                    r["speedup_vs_torch_eager_same_precision"] = q["median_ms"] / r["median_ms"]
    stem = f"cuda_{platform.node() or 'host'}_{time.strftime('%Y%m%dT%H%M%S')}"
    (RESULTS / f"{stem}.json").write_text(json.dumps(doc, indent=1))
    lines = [
        f"# CUDA backend benchmark ({p.name}, {doc['date']})",
        "",
        f"Measured ceilings: bf16 matmul {CEILING.get('bf16_matmul_tflops', float('nan')):.0f} TFLOP/s, "
        f"tf32 matmul {CEILING.get('tf32_matmul_tflops', float('nan')):.0f} TFLOP/s, "
        f"device copy {CEILING.get('copy_gbps', float('nan')):.0f} GB/s.",
        "",
        "| case | impl | precision | mode | median ms | samples/s | TFLOP/s | of bf16 ceiling | vs torch eager |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in ROWS:
        if "median_ms" not in r:
            lines.append(f"| {r['case']} | {r['impl']} | {r['precision']} | - | failed: {r['error'][:80]} | | | | |")
            continue
        sp = r.get("speedup_vs_torch_eager_same_precision")
        lines.append(
            f"| {r['case']} | {r['impl']} | {r['precision']} | {r['mode']} | {r['median_ms']:.3f} | "
            f"{r['samples_per_s']:.3g} | {r['tflops']:.1f} | {r.get('fraction_of_bf16_ceiling', 0):.0%} | "
            f"{f'{sp:.2f}x' if sp else '-'} |"
        )
    (RESULTS / f"{stem}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


# ---- ceilings (measured first: rows use them)
def test_ceilings():
    n = {0: 8192, 1: 4096}.get(QUICK, 256)
    g = torch.Generator(device="cuda").manual_seed(0)
    for name, dtype, tf32 in (("bf16", torch.bfloat16, False), ("tf32", torch.float32, True)):
        a = torch.randn(n, n, device="cuda", generator=g).to(dtype)
        b = torch.randn(n, n, device="cuda", generator=g).to(dtype)
        prev = torch.backends.cuda.matmul.allow_tf32
        torch.backends.cuda.matmul.allow_tf32 = tf32
        try:
            t = cuda_times_ms(lambda: torch.matmul(a, b), warmup=5, reps=20)
        finally:
            torch.backends.cuda.matmul.allow_tf32 = prev
        CEILING[f"{name}_matmul_tflops"] = 2 * n**3 / (np.median(t) * 1e-3) * 1e-12
    src = torch.rand(1 << (28 if QUICK < 2 else 16), device="cuda", generator=g)  # 1 GiB
    dst = torch.empty_like(src)
    t = cuda_times_ms(lambda: dst.copy_(src), warmup=3, reps=20)
    CEILING["copy_gbps"] = 2 * src.numel() * 4 / (np.median(t) * 1e-3) * 1e-9  # read + write
    assert CEILING["bf16_matmul_tflops"] > 0


# ---- helpers
def _export(net, x_example, tmp_path) -> Path:
    return fastinv.export(net, tmp_path / "model.safetensors", torch.as_tensor(x_example))


class TorchPeer:
    """PyTorch in the modes the issue names; `stripe` splits the input (image rows, or
    profiles) so the intermediates fit in memory (DeepEM's 300 channels x 16.7 M pixels
    would be 20 GB each), written into a preallocated output."""

    def __init__(self, net, mode: str, stripe: int | None = None):
        self.mode, self.stripe = mode, stripe
        self.net = net.cuda().eval()
        self.fn = torch.compile(self.net) if mode.startswith("torch-compile") else self.net

    def __call__(self, x, out):
        fp32 = self.mode == "torch-eager-fp32"
        prev = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
        torch.backends.cudnn.allow_tf32 = not fp32  # PyTorch's default: cuDNN convolutions in TF32
        torch.backends.cuda.matmul.allow_tf32 = False
        try:
            with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16, enabled="bf16" in self.mode):
                if self.stripe is None:
                    out.copy_(self.fn(x))
                elif x.ndim == 4:  # image rows
                    for r0 in range(0, x.shape[2], self.stripe):
                        out[:, :, r0 : r0 + self.stripe] = self.fn(x[:, :, r0 : r0 + self.stripe])
                else:  # batches of profiles
                    for r0 in range(0, x.shape[0], self.stripe):
                        out[r0 : r0 + self.stripe] = self.fn(x[r0 : r0 + self.stripe])
        finally:
            torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = prev
        return out


TORCH_MODES = [
    ("torch-eager-fp32", "fp32"),
    ("torch-eager-default(tf32)", "tf32"),
    ("torch-eager-bf16-autocast", "bf16"),
    ("torch-compile-default(tf32)", "tf32"),
    ("torch-compile-bf16-autocast", "bf16"),
]
if NO_COMPILE:
    TORCH_MODES = [m for m in TORCH_MODES if not m[0].startswith("torch-compile")]


def _case(name: str) -> None:
    """Skip the case unless FASTINV_BENCH_CASES names it."""
    if name not in CASES:
        pytest.skip(f"FASTINV_BENCH_CASES={','.join(sorted(CASES))} leaves out {name}")


def _rel_l2(a, b) -> float:
    a, b = a.double(), b.double()
    return float(torch.linalg.norm(a - b) / torch.linalg.norm(b))


def _bench_case(case, net, make_x, nsets, tmp_path, stripe=None, reps=10):
    x_host = [make_x(i) for i in range(nsets)]
    path = _export(net, x_host[0][:2] if x_host[0].ndim == 3 else x_host[0][:, :, :4, :4], tmp_path)
    flops = fastinv.load(path).info()["flops_per_sample"]
    samples = x_host[0].shape[0] * (x_host[0].shape[2] * x_host[0].shape[3] if x_host[0].ndim == 4 else 1)
    x0 = x_host[0]
    with torch.no_grad():  # output shape from the CPU network on one sample
        y1 = net.eval()(torch.from_numpy(x0[:1, :, :1, :1] if x0.ndim == 4 else x0[:1]))
    full_out = (x0.shape[0], y1.shape[1], *x0.shape[2:]) if x0.ndim == 4 else (x0.shape[0], *y1.shape[1:])
    x_dev = [torch.from_numpy(x).cuda() for x in x_host]
    ref_out = torch.empty(full_out, device="cuda")
    TorchPeer(net, "torch-eager-fp32", stripe)(x_dev[0], ref_out)
    k = iter(range(1 << 30))

    # the opt-in variants (FASTINV_CUDA_KERNEL, read at load) beside the default kernel
    variants = [("fp32", "mma"), ("tf32", "mma"), ("bf16", "mma")]
    variants += [(p, v) for v in ("ldmatrix", "pipeline") for p in ("tf32", "bf16")]
    for precision, variant in variants:
        impl = "fastinv" if variant == "mma" else f"fastinv-{variant}"
        saved = os.environ.get("FASTINV_CUDA_KERNEL")
        os.environ["FASTINV_CUDA_KERNEL"] = variant
        try:
            model = fastinv.load(path, device="cuda", precision=precision)
        finally:
            if saved is None:
                del os.environ["FASTINV_CUDA_KERNEL"]
            else:
                os.environ["FASTINV_CUDA_KERNEL"] = saved
        out = torch.full(full_out, float("nan"), device="cuda")
        model(x_dev[0], out=out)
        err = _rel_l2(out, ref_out)
        t = cuda_times_ms(lambda: model(x_dev[next(k) % nsets], out=out), reps=reps)
        record(
            case,
            impl,
            precision,
            "device-resident",
            t,
            samples,
            flops,
            rel_l2_vs_torch_fp32=err,
            kernel=model.info()["isa"],
        )
        if variant == "mma":  # the host path adds the same transfers to either variant
            t = cuda_times_ms(lambda: model(x_host[next(k) % nsets]), warmup=2, reps=max(3, reps // 2))
            record(case, impl, precision, "host-to-host", t, samples, flops, kernel=model.info()["isa"])
    for mode, precision in TORCH_MODES:
        peer = TorchPeer(net, mode, stripe)
        out = torch.empty(full_out, device="cuda")
        try:
            peer(x_dev[0], out)  # torch.compile may be unavailable (no triton / C compiler): keep the other rows
        except Exception as e:  # noqa: BLE001
            ROWS.append({"case": case, "impl": mode, "precision": precision, "error": repr(e)[:300]})
            continue
        err = _rel_l2(out, ref_out)
        t = cuda_times_ms(lambda: peer(x_dev[next(k) % nsets], out), reps=reps)
        record(case, mode, precision, "device-resident", t, samples, flops, rel_l2_vs_torch_fp32=err)
        if mode.startswith("torch-eager"):

            def h2h():
                xd = torch.from_numpy(x_host[next(k) % nsets]).cuda()
                return peer(xd, out).cpu().numpy()

            t = cuda_times_ms(h2h, warmup=2, reps=max(3, reps // 2))
            record(case, mode, precision, "host-to-host", t, samples, flops)


def test_deepem_4096(tmp_path):
    _case("deepem")
    torch.manual_seed(0)
    side = {0: 4096, 1: 1024}.get(QUICK, 64)
    rng = np.random.default_rng(1)
    make = lambda i: np.sqrt(rng.gamma(1.5, 80.0, (1, 6, side, side))).astype(np.float32)  # noqa: E731
    _bench_case(f"deepem-{side}x{side}", deepem(), make, 1, tmp_path, stripe=1024, reps=10)


def test_cnn_visp_frame(tmp_path):
    _case("visp")
    torch.manual_seed(0)
    rng = np.random.default_rng(2)
    make = lambda i: rng.random((2555 if QUICK < 2 else 50, 4, 980), np.float32)  # noqa: E731
    _bench_case("cnn-visp-frame", stokes_cnn(980), make, 3, tmp_path, reps=30)


def test_cnn_hinode_1e6(tmp_path):
    _case("hinode")
    torch.manual_seed(0)
    n = {0: 1_000_000, 1: 100_000}.get(QUICK, 1000)
    rng = np.random.default_rng(3)
    make = lambda i: rng.random((n, 4, 112), np.float32)  # noqa: E731
    _bench_case(f"cnn-hinode-{n}", stokes_cnn(112), make, 1, tmp_path, stripe=100_000, reps=5)


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q", "-s", "-p", "no:cacheprovider"]))
