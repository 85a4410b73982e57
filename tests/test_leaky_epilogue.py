"""The GEMM epilogue's leaky ReLU (and ReLU) is torch's value for value, bit for bit, under
every ISA: slopes inside [0, 1] take the two-instruction max(slope * v, v) form of the AVX2
kernel, slopes outside it the compare-and-blend form; NaN, +-inf, +-0 and tiny values
included. A 1 -> 1 Linear of weight 1 and bias 0 passes its input through exactly, so the
comparison isolates the activation."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import fastinv  # noqa: E402

VALUES = [np.nan, np.inf, -np.inf, -3.5, -1.0, -1e-30, -1e-42, -0.0, 0.0, 1e-42, 1e-30, 2.0, 7.25e30, -7.25e30]


# (A negative slope differs from torch in the sign of a zero: torch computes 0 * slope = -0
# for x = +0, the engine keeps +0; not covered here.)
@pytest.mark.parametrize("slope", [0.0, 0.01, 0.2, 1.0, 2.5])
def test_leaky_epilogue_matches_torch_bitwise(tmp_path, slope):
    lin = torch.nn.Linear(1, 1)
    with torch.no_grad():
        lin.weight.fill_(1.0)
        lin.bias.zero_()
    net = torch.nn.Sequential(lin, torch.nn.ReLU() if slope == 0.0 else torch.nn.LeakyReLU(slope)).eval()
    x = torch.tensor(VALUES * 3, dtype=torch.float32)[:, None]  # > one 16-sample tile
    with torch.no_grad():
        want = net(x).numpy()
    model = fastinv.load(fastinv.export(net, tmp_path / "leaky.safetensors", x[:2]), threads=1)
    before = fastinv.info()["isa"]
    try:
        for isa in fastinv.info()["available_isas"]:
            fastinv._core.set_active_isa(isa)
            got = model(x.numpy())
            assert got.view(np.uint32).tolist() == want.view(np.uint32).tolist() or (
                np.array_equal(np.isnan(got), np.isnan(want))
                and np.array_equal(got[~np.isnan(got)].view(np.uint32), want[~np.isnan(want)].view(np.uint32))
            ), f"{isa}, slope {slope}: {got.ravel()} != {want.ravel()}"
    finally:
        fastinv._core.set_active_isa(before)
