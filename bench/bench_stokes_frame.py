"""Per-frame latency of Stokes inversion: fastinv's FrameInverter against PyTorch with the
same weights, side by side in one run.

Run (writes JSON with machine info and a markdown summary into bench/results/)::

    python bench/bench_stokes_frame.py

Cases (each timed with fastinv and with PyTorch on the same weights, read from the same file):

- ``visp-frame``: one DKIST ViSP raster step, 4 Stokes x 976 wavelengths x 2555 slit pixels
  (float32 counts: LTE profiles of random atmospheres x 12 000 counts) with the ViSP model:
  the shipped ``stokes_visp.safetensors`` when present, else the same architecture
  (``fastinv.train.stokes_nets.compact_cnn``: Conv1d 4->32 k5 stride 2, 32->32 k5 + pool,
  32->64 k5 + pool, dense 128) with random weights (the cost does not depend on them) on
  the model grid (172 wavelengths, 6300.6-6303.4 A).
- ``visp-frame-64``: the same step with the 64-channel CNN the issue sketches (3 x Conv1d
  64 k5 'same' + pool 2, Linear 256), random weights.
- ``hinode-slit``: one Hinode SP slit, 4 x 1024 x 112, the Hinode model (shipped or the same
  architecture, random weights); ``hinode-slit-muisca``: Agudelo's MUISCA (I, V; 21 nodes).

Implementations (same threads):

- ``fastinv``: ``FrameInverter.invert_frame`` -- resampling, quiet-Sun continuum of the
  frame, normalisation, network (fastinv engine, preallocated output), decoding.
- ``torch``: the same NumPy preprocessing and decoding (fastinv's code), the network in
  PyTorch (``torch.inference_mode``) -- what a user gets swapping only the engine.
- ``fastinv-net`` / ``torch-net``: the network alone on the prepared input (ViSP step).
- ``fastinv-bf16`` / ``fastinv-bf16-net``: the same with ``precision="bf16"`` (AVX512-BF16);
  ``torch-bf16-net``: PyTorch's network under bf16 autocast on the CPU.
"""

from __future__ import annotations

import json
import os
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import fastinv  # noqa: E402
from conftest import THREADS  # noqa: E402
from fastinv.stokes import FrameInverter, StokesNet  # noqa: E402
from fastinv.stokes.inversion.network import default_model_path  # noqa: E402
from summarize import Run, write_markdown  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests" / "stokes"))
from _stokes_models import make_card  # noqa: E402

torch.set_num_threads(THREADS)
warnings.filterwarnings("ignore", message=".*padding='same'.*")
N_SLIT_VISP, N_WL_VISP, N_SLIT_SP = 2555, 976, 1024


def issue_cnn(n_wl: int, n_out: int = 42, seed: int = 0, width: int = 64, kernels=(5, 5, 5), hidden: int = 256):
    """The CNN sketched in the issue/brief: 3 x (Conv1d width k 'same', ReLU, MaxPool 2), dense."""
    from torch import nn

    torch.manual_seed(seed)
    layers, c = [], 4
    for k in kernels:
        layers += [nn.Conv1d(c, width, k, padding=k // 2), nn.ReLU(), nn.MaxPool1d(2)]
        c = width
    length = n_wl // 2 // 2 // 2
    layers += [nn.Flatten(), nn.Linear(width * length, hidden), nn.ReLU(), nn.Linear(hidden, n_out)]
    return nn.Sequential(*layers).eval()


def _torch_from_file(path, card, module):
    """``module`` with the weights stored in the fastinv model file (same tensor names; valid
    for the sequential compact CNN, whose tensors the exporter stores as PyTorch has them)."""
    from fastinv.export.serialize import read_safetensors

    tensors, _ = read_safetensors(path)
    module.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in tensors.items()})
    return module.eval()


def _case(tmp_path_factory, instrument: str, arch: str = "shipped"):
    from fastinv.stokes import Instrument
    from fastinv.stokes.synthesis.training_sets import lte_training_set
    from fastinv.train.stokes_nets import build

    key = "visp" if instrument == "visp" else "hinode_sp"
    shipped = default_model_path(instrument)
    if arch == "shipped" and shipped.is_file():
        path, card = shipped, StokesNet.load(shipped).card
        label = "shipped model"
    else:
        if arch == "muisca":
            card = make_card(
                instrument=key,
                stokes=("I", "V"),
                outputs=["temperature", "vlos", "B_los"],
                architecture="muisca",
                nodes=[round(-2.0 + 0.1 * i, 1) for i in range(21)],
            )
        else:
            card = make_card(instrument=key, architecture="compact-cnn")
        c, n, k = len(card["input"]["stokes"]), len(card["wavelength"]), len(card["output_mean"])
        torch.manual_seed(0)
        net = issue_cnn(n, k) if arch == "issue-64" else build(card["architecture"], c, n, k).eval()
        path = tmp_path_factory.mktemp("bench") / f"{instrument}_{arch}.safetensors"
        fastinv.export(net, path, torch.zeros(1, c, n), metadata={"fastinv.card": json.dumps(card)})
        label = {"issue-64": "64-channel CNN of the issue", "muisca": "MUISCA"}.get(arch, "compact-cnn architecture")
        label += ", random weights"
        tnet = net
    if path == shipped:  # PyTorch with the shipped weights (the fastinv case checks they agree)
        c, n, k = len(card["input"]["stokes"]), len(card["wavelength"]), len(card["output_mean"])
        tnet = _torch_from_file(path, card, build(card["architecture"], c, n, k))
    c, n, k = len(card["input"]["stokes"]), len(card["wavelength"]), len(card["output_mean"])
    if instrument == "visp":
        inst, n_slit = Instrument.visp(n=N_WL_VISP), N_SLIT_VISP
    else:
        inst, n_slit = Instrument.hinode_sp(), N_SLIT_SP
    d = lte_training_set(256, instrument=inst, seed=1)
    rng = np.random.default_rng(0)
    prof = d["stokes"][rng.integers(0, 256, n_slit)] * 12000.0  # (n_slit, 4, nλ)
    frame = prof.transpose(1, 2, 0) if instrument == "visp" else prof.transpose(1, 0, 2)
    frame = np.ascontiguousarray(frame, dtype=np.float32)
    return {
        "path": path,
        "torch": tnet,
        "frame": frame,
        "wavelength": d["wavelength"],
        "n": n_slit,
        "flops": fastinv.load(path).info()["flops_per_sample"],
        "label": label,
        "outputs": k,
    }


@pytest.fixture(scope="module")
def visp(tmp_path_factory):
    return _case(tmp_path_factory, "visp")


@pytest.fixture(scope="module")
def visp64(tmp_path_factory):
    return _case(tmp_path_factory, "visp", "issue-64")


@pytest.fixture(scope="module")
def hinode(tmp_path_factory):
    return _case(tmp_path_factory, "hinode")


@pytest.fixture(scope="module")
def hinode_muisca(tmp_path_factory):
    return _case(tmp_path_factory, "hinode", "muisca")


def _record(benchmark, case, machine, impl, name):
    if benchmark.stats is None:
        return
    t = benchmark.stats.stats.median
    benchmark.extra_info.update(
        {
            "case": name,
            "impl": impl,
            "threads": THREADS,
            "pixels": case["n"],
            "latency_ms_median": t * 1e3,
            "latency_ms_min": benchmark.stats.stats.min * 1e3,
            "pixels_per_s": case["n"] / t,
            "flops_per_pixel": case["flops"],
            "model": case["label"],
            "loadavg_1min": os.getloadavg()[0],
            "isa": machine["isa"],
            "cpu": machine["cpu"],
            "fma_peak_gflops": machine["fma_peak_gflops"],
        }
    )


def _torch_frame(case, inv: FrameInverter):
    """Same preprocessing/decoding as FrameInverter, network in PyTorch."""
    net = inv.net
    res = inv._resampler_for(case["wavelength"])

    def run():
        frame = case["frame"]
        ic = inv.frame_continuum(frame)
        r = res(frame, axis=inv.wl_axis)
        prof = r.transpose(2, 0, 1) if inv.wl_axis == 1 else r.transpose(1, 0, 2)
        x = net.prepare(prof / np.float32(ic))
        with torch.inference_mode():
            y = case["torch"](torch.from_numpy(x)).numpy()
        return net.decode(y)

    return run


def _inverter(case, name, impl):
    """FrameInverter on the case's model, in bf16 for the *-bf16 implementations."""
    instrument = "hinode" if name.startswith("hinode") else "visp"
    if "bf16" not in impl:
        return FrameInverter(case["path"], instrument, threads=THREADS)
    if not fastinv.info()["bf16"]:
        pytest.skip("no AVX512-BF16 on this CPU")
    net = StokesNet.load(case["path"], instrument=instrument, threads=THREADS, precision="bf16")
    return FrameInverter(net, instrument, threads=THREADS)


def _frame_pair(benchmark, case, machine, impl, name):
    inv = _inverter(case, name, impl)
    if impl in ("fastinv", "fastinv-bf16"):
        out = benchmark.pedantic(inv.invert_frame, args=(case["frame"], case["wavelength"]), rounds=10, warmup_rounds=2)
        ref = _torch_frame(case, inv)()
        tol = 1e-3 if impl == "fastinv" else 3e-2  # bf16: weights and layer inputs rounded (2**-8)
        for q in ("temperature", "vlos"):
            np.testing.assert_allclose(out.results[q], ref[q].T, rtol=tol, atol=tol * np.abs(ref[q]).max())
    else:
        benchmark.pedantic(_torch_frame(case, inv), rounds=10, warmup_rounds=2)
    _record(benchmark, case, machine, impl, name)


def _net_pair(benchmark, case, machine, impl, name):
    inv = _inverter(case, name, impl)
    x = np.ascontiguousarray(
        np.random.default_rng(0).normal(size=(case["n"], inv.net._channels.size, inv.net._wl.size)), np.float32
    )
    if impl.startswith("fastinv"):
        y = np.empty((case["n"], case["outputs"]), np.float32)
        benchmark.pedantic(lambda: inv.net.run(x, out=y, threads=THREADS), rounds=10, warmup_rounds=2)
    else:
        xt = torch.from_numpy(x)

        def run():
            with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled="bf16" in impl):
                return case["torch"](xt).float().numpy()

        benchmark.pedantic(run, rounds=10, warmup_rounds=2)
    _record(benchmark, case, machine, impl, name)


@pytest.mark.parametrize("impl", ["fastinv", "fastinv-bf16", "torch"])
def test_visp_frame(benchmark, visp, machine, impl):
    benchmark.group = "visp-frame"
    _frame_pair(benchmark, visp, machine, impl, "visp-frame")


@pytest.mark.parametrize("impl", ["fastinv-net", "fastinv-bf16-net", "torch-net", "torch-bf16-net"])
def test_visp_network(benchmark, visp, machine, impl):
    benchmark.group = "visp-frame"
    _net_pair(benchmark, visp, machine, impl, "visp-frame")


@pytest.mark.parametrize("impl", ["fastinv", "torch"])
def test_visp_frame_64(benchmark, visp64, machine, impl):
    benchmark.group = "visp-frame-64"
    _frame_pair(benchmark, visp64, machine, impl, "visp-frame-64")


@pytest.mark.parametrize("impl", ["fastinv", "torch"])
def test_hinode_slit(benchmark, hinode, machine, impl):
    benchmark.group = "hinode-slit"
    _frame_pair(benchmark, hinode, machine, impl, "hinode-slit")


@pytest.mark.parametrize("impl", ["fastinv", "torch"])
def test_hinode_slit_muisca(benchmark, hinode_muisca, machine, impl):
    benchmark.group = "hinode-slit-muisca"
    _frame_pair(benchmark, hinode_muisca, machine, impl, "hinode-slit-muisca")


def write_summary(json_path: Path, md_path: Path) -> str:
    run = Run.load(json_path)
    rows = {}
    for b in run.data["benchmarks"]:
        e = b["extra_info"]
        if e:
            rows[(e["case"], e["impl"])] = e
    lines = [
        "# Stokes frame inversion latency (fastinv FrameInverter vs PyTorch, same weights)",
        "",
        run.machine_line(f"{THREADS} threads", f"torch {torch.__version__}"),
        "",
    ]
    for case, what in (
        ("visp-frame", f"ViSP raster step 4 x {N_WL_VISP} x {N_SLIT_VISP} -> 172 model wavelengths"),
        ("visp-frame-64", "the same step, the 64-channel CNN of the issue"),
        ("hinode-slit", f"Hinode SP slit 4 x {N_SLIT_SP} x 112"),
        ("hinode-slit-muisca", "Hinode SP slit, MUISCA (I, V; 21 nodes)"),
    ):
        lines += [
            f"## {case}: {what}",
            "",
            "| implementation | latency median [ms] | min [ms] | pixels/s | speed-up |",
            "| --- | --- | --- | --- | --- |",
        ]
        # each implementation once, with its speed-up over the one it replaces
        against = {"fastinv": "torch", "fastinv-bf16": "fastinv", "torch": None, "fastinv-net": "torch-net"}
        against.update({"fastinv-bf16-net": "fastinv-net", "torch-net": None, "torch-bf16-net": "torch-net"})
        for impl, base in against.items():
            e = rows.get((case, impl))
            if e is None:
                continue
            ratio = ""
            if base and (case, base) in rows:
                ratio = f"{rows[(case, base)]['latency_ms_median'] / e['latency_ms_median']:.2f}x over {base}"
            lines.append(
                f"| {impl} | {e['latency_ms_median']:.1f} | {e['latency_ms_min']:.1f} | "
                f"{e['pixels_per_s']:,.0f} | {ratio} |"
            )
        e = rows.get((case, "fastinv"))
        if e:
            lines.append(f"\nmodel: {e['model']}, {e['flops_per_pixel'] / 1e6:.2f} MFLOP/pixel")
        lines.append("")
    return write_markdown(md_path, lines)


if __name__ == "__main__":
    from run_script import run_and_summarize

    run_and_summarize(__file__, "stokes_frame", write_summary)
