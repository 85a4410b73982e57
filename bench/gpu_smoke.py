"""GPU smoke and parity driver for bench/gpu_check.sh (issue 19), one process, no pytest.

For each precision, the shipped DeepEM (fused kernel) on frames of 1 ... 10 087 pixels
(both sides of every tile edge), outputs pre-filled with NaN, chunks of 1 000 pixels so a
host frame uses all three streams; each result against

* the CPU emulation of the fused kernel at the same precision and tile
  (``_core._testing.cuda_emulate``): only the float32 summation order differs, bound predicted
  by tests/_rounding.py (fp32 ~1e-6);
* the CPU engine (float32): the precision's rounding error, bound predicted likewise.

tf32 and bf16 run three times: the default kernel and the opt-in variants ldmatrix and
pipeline (``FASTINV_CUDA_KERNEL=ldmatrix`` / ``pipeline``, each compared with the emulation
of that variant).

MUISCA (a 1D CNN: the per-op path, fp32) against the CPU engine; device arrays (CuPy
planar, CuPy strided; torch unless ``--no-torch``) against the host result.

``--quick`` (the compute-sanitizer runs): fewer sizes, small MUISCA batch, no torch CUDA
calls (torch is used on the CPU only, to export MUISCA). ``--device cpu`` (the dry run of
bench/gpu_check.sh on a machine without a GPU): the CPU model stands in for the device and
only fp32 is compared with the emulation (the stand-in computes in fp32).

Prints one line per check and ``SMOKE: n passed, m failed``; exit status 1 if any failed.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

os.environ.setdefault("FASTINV_CUDA_CHUNK", "1000")  # read when a model loads: 10 087 pixels = 11 chunks on 3 streams
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

import fastinv  # noqa: E402
from _rounding import FACTOR, rounding_vs_exact, same_precision_difference, same_precision_max  # noqa: E402
from fastinv import _core  # noqa: E402
from fastinv.dem.deepem import shipped_model_path  # noqa: E402

SIZES = [1, 2, 31, 32, 33, 63, 64, 65, 127, 128, 129, 1001, 4097, 10087]
QUICK_SIZES = [1, 33, 129, 1001]
DEEPEM_LAYERS, DEEPEM_KMAX = 3, 300  # 6 -> 300 -> 300 -> 18
VARIANTS = ("ldmatrix", "pipeline")  # the fused kernel's opt-in variants (FASTINV_CUDA_KERNEL)
FP32_TOL = 1e-5  # the fp32 bound (the CPU engine and the per-op path are fp32)


class Checks:
    """Records and prints each check; the exit status comes from the count of failures."""

    def __init__(self) -> None:
        self.passed = self.failed = 0

    def __call__(self, ok: bool, what: str) -> None:
        print(("ok   " if ok else "FAIL ") + what, flush=True)
        if ok:
            self.passed += 1
        else:
            self.failed += 1

    def guard(self, what: str, fn) -> None:
        """Run fn(); an exception is a failed check, and the driver goes on."""
        try:
            fn()
        except Exception as e:  # noqa: BLE001 -- every failure is reported, none stops the rest
            self(False, f"{what}: {type(e).__name__}: {str(e)[:300]}")


def rel_l2(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-300))


def tile_of(model) -> int:
    """The fused kernel's tile from model.info()['isa'] ('..., 128-pixel tiles')."""
    return int(model.info()["isa"].split("-pixel tiles")[0].rsplit(" ", 1)[1])


def deepem_input(rng, n: int) -> np.ndarray:
    return np.sqrt(rng.gamma(1.5, 80.0, (6, 1, n))).astype(np.float32)


def load_variant(path, device: str, precision: str, kernel: str):
    """The model with FASTINV_CUDA_KERNEL=kernel (read at load), the environment restored."""
    saved = os.environ.get("FASTINV_CUDA_KERNEL")
    os.environ["FASTINV_CUDA_KERNEL"] = kernel
    try:
        return fastinv.load(path, device=device, precision=precision)
    finally:
        if saved is None:
            del os.environ["FASTINV_CUDA_KERNEL"]
        else:
            os.environ["FASTINV_CUDA_KERNEL"] = saved


def check_deepem(check: Checks, device: str, precision: str, sizes: list[int], rng, kernel: str = "mma") -> None:
    path = shipped_model_path("deepem18")
    cpu = fastinv.load(path)
    model = load_variant(path, device, precision, kernel) if device != "cpu" else cpu
    isa = model.info()["isa"]
    tags = [v for v in VARIANTS if f"({v})" in isa]  # model.info()["isa"] names an opt-in variant
    fused = device == "cpu" or ("fused" in isa and tags == ([] if kernel == "mma" else [kernel]))
    check(fused, f"deepem {precision}: fused kernel, variant {kernel} ({isa})")
    precision_tag = precision if kernel == "mma" else f"{precision} {kernel}"
    tile = tile_of(model) if device != "cpu" else 0  # 0: the emulation picks as the backend does on an H100
    same_l2 = FACTOR * same_precision_difference(precision, DEEPEM_LAYERS, DEEPEM_KMAX)
    same_max = same_precision_max(precision, DEEPEM_LAYERS, DEEPEM_KMAX)
    vs_cpu = FP32_TOL if precision == "fp32" else FACTOR * rounding_vs_exact(precision, DEEPEM_LAYERS)
    for n in sizes:
        x = deepem_input(rng, n)
        y = np.full((18, 1, n), np.nan, np.float32)
        model(x, out=y)
        check(bool(np.isfinite(y).all()), f"deepem {precision_tag} n={n}: every output written (no NaN left)")
        emu, _, used_tile = _core._testing.cuda_emulate(
            str(path), precision, "fused", x.reshape(6, n), tile=tile, kernel=kernel
        )
        e = rel_l2(y.reshape(18, n), emu)
        worst = float(np.abs(y.reshape(18, n) - emu).max() / max(np.abs(emu).max(), 1e-30))
        check(
            e <= same_l2 and worst <= same_max,
            f"deepem {precision_tag} n={n} vs emulation (tile {used_tile}): rel L2 {e:.2e} <= {same_l2:.1e}, "
            f"max {worst:.2e} <= {same_max:.1e}",
        )
        e = rel_l2(y, cpu(x))
        check(e <= vs_cpu, f"deepem {precision_tag} n={n} vs CPU engine: rel L2 {e:.2e} <= {vs_cpu:.1e}")


def check_muisca(check: Checks, device: str, nprof: int, rng, tmp: Path) -> None:
    import torch
    from _netgen import MUISCA

    torch.manual_seed(0)
    x = rng.standard_normal((nprof, 2, 112)).astype(np.float32)
    path = fastinv.export(MUISCA().eval(), tmp / "muisca.safetensors", torch.from_numpy(x[:2]))
    ref = fastinv.load(path)(x)
    model = fastinv.load(path, device=device)
    check(device == "cpu" or "per-op" in model.info()["isa"], f"muisca: per-op path ({model.info()['isa']})")
    y = np.full(ref.shape, np.nan, np.float32)
    model(x, out=y)
    e = rel_l2(y, ref)
    check(bool(np.isfinite(y).all()) and e <= FP32_TOL, f"muisca {nprof} profiles vs CPU engine: rel L2 {e:.2e}")


def check_device_arrays(check: Checks, use_torch: bool, rng) -> None:
    """CuPy planar and strided inputs, torch tensors: same result as the host path."""
    path = shipped_model_path("deepem18")
    model = fastinv.load(path, device="cuda")
    x = deepem_input(rng, 10087)
    ref = model(x)
    try:
        import cupy
    except ImportError:
        print("skip CuPy arrays: cupy is not installed", flush=True)
    else:
        y = model(cupy.asarray(x))
        check(isinstance(y, cupy.ndarray), "cupy planar: result is a CuPy array")
        check(rel_l2(cupy.asnumpy(y), ref) <= 1e-6, f"cupy planar vs host: rel L2 {rel_l2(cupy.asnumpy(y), ref):.2e}")
        xi = np.full((6, 1, 2 * x.shape[2]), np.nan, np.float32)
        xi[:, :, ::2] = x
        xs = cupy.asarray(xi)[:, :, ::2]  # every other sample (NaN between): the gather path
        e = rel_l2(cupy.asnumpy(model(xs)), ref)
        check(e <= 1e-6, f"cupy strided vs host: rel L2 {e:.2e}")
    if use_torch:
        import torch

        xd = torch.as_tensor(x, device="cuda")
        out = torch.full((18, 1, 10087), float("nan"), device="cuda")
        s = torch.cuda.Stream()  # ordered after the input copy and the NaN fill
        s.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(s):
            model(xd, stream=s, out=out)
        s.synchronize()
        e = rel_l2(out.cpu().numpy(), ref)
        check(e <= 1e-6, f"torch tensor on a side stream vs host: rel L2 {e:.2e}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cuda", help="cuda, or cpu for a dry run (the CPU model stands in)")
    ap.add_argument("--quick", action="store_true", help="fewer sizes, no torch CUDA calls (sanitizers)")
    ap.add_argument("--no-torch", action="store_true", help="no torch CUDA calls")
    ap.add_argument("--tmp", default=os.environ.get("TMPDIR", "/tmp"), help="folder for the exported MUISCA")
    args = ap.parse_args(argv)
    print(f"fastinv {fastinv.__version__} from {fastinv.__file__}; info {fastinv.info()}", flush=True)
    check = Checks()
    rng = np.random.default_rng(19)
    precisions = ("fp32",) if args.device == "cpu" else ("fp32", "tf32", "bf16")
    sizes = QUICK_SIZES if args.quick else SIZES
    for p in precisions:
        check.guard(f"deepem {p}", lambda p=p: check_deepem(check, args.device, p, sizes, rng))
    for v in VARIANTS:  # the opt-in variants (tf32, bf16) on the quick sizes
        for p in precisions[1:]:
            check.guard(f"deepem {p} {v}", lambda p=p, v=v: check_deepem(check, args.device, p, QUICK_SIZES, rng, v))
    check.guard("muisca", lambda: check_muisca(check, args.device, 50 if args.quick else 2555, rng, Path(args.tmp)))
    if args.device != "cpu":
        use_torch = not (args.quick or args.no_torch)
        check.guard("device arrays", lambda: check_device_arrays(check, use_torch, rng))
    print(f"SMOKE: {check.passed} passed, {check.failed} failed", flush=True)
    return 1 if check.failed or not check.passed else 0


if __name__ == "__main__":
    sys.exit(main())
