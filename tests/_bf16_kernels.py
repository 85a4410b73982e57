"""Both CPU bf16 kernels (AMX tiles and AVX512-BF16 vdpbf16ps) against a NumPy emulation of
one precision's arithmetic, one layer at a time, in a subprocess per kernel (the engine reads
FASTINV_BF16_KERNELS when it loads). The layers cover row counts 18 to 300 (the AMX kernel's
groups of 1 to 4 row blocks of 16), reductions with and without a short last chunk, padded
and strided windows (gathered pair rows), a folded max-pool and a dense head."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

_LAYERS = """[
    (torch.nn.Conv1d(7, 37, 5, padding=2), torch.randn(50, 7, 41)),
    (torch.nn.Conv1d(36, 20, 3, stride=2), torch.randn(19, 36, 33)),
    (torch.nn.Linear(300, 300), torch.rand(40, 300)),
    (torch.nn.Linear(6, 300), torch.rand(33, 6)),
    (torch.nn.Linear(300, 21), torch.rand(17, 300)),
    (torch.nn.Linear(1000, 18), torch.randn(17, 1000)),
    (torch.nn.Linear(40, 70), torch.randn(21, 40)),
    (torch.nn.Sequential(torch.nn.Conv1d(32, 64, 5, padding=2), torch.nn.ReLU(), torch.nn.MaxPool1d(2)),
     torch.randn(23, 32, 43)),
]"""
_N_LAYERS = 8


def check_each_kernel(kernels: str, precision: str, emulate: str, tmp_path: Path) -> None:
    """Fail unless every layer, run with ``precision`` on ``kernels`` ("amx" or "avx512"),
    is within 1e-5 of its output scale of ``emulate`` ("module:function" in tests/, taking
    the model path and the input). Skips where AMX was asked for and cannot run."""
    module, function = emulate.split(":")
    code = f"""
import sys, numpy as np, torch, fastinv
sys.path.insert(0, {str(Path(__file__).parent)!r})
from {module} import {function} as emulate
torch.manual_seed(0)
for i, (net, x) in enumerate({_LAYERS}):
    path = fastinv.export(net.eval(), {str(tmp_path)!r} + f"/m{{i}}.safetensors", x)
    model = fastinv.load(path, precision={precision!r})
    got, ref = model(x.numpy()).astype(np.float64), emulate(path, x.numpy())
    print("layer", model.info()["isa"], np.abs(got - ref).max() / np.abs(ref).max())
"""
    env = dict(os.environ, FASTINV_BF16_KERNELS=kernels)
    run = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    if kernels == "amx" and "no usable AMX-BF16" in run.stderr:
        pytest.skip("no usable AMX-BF16 here")
    assert run.returncode == 0, run.stderr
    lines = [line.split()[1:] for line in run.stdout.splitlines() if line.startswith("layer ")]
    assert len(lines) == _N_LAYERS, run.stdout
    for isa, err in lines:
        assert isa == f"{kernels}_bf16" and float(err) <= 1e-5, run.stdout
