"""DeepEM's error bars with the network in bf16 / bf16x2 (DeepEM.load(precision=...)): the
LeakyReLU slopes of the noise propagation are those of the forward pass that ran, read from the
engine's own activations of each tile (TileHooks::kept_values).

Reference: a NumPy float64 Jacobian whose slopes come from a NumPy emulation of the bf16 forward
pass (layer inputs rounded to bf16, weights to one or two bf16 terms, float64 sums), chain rule
to EM, total EM and log T written out here as in test_deepem_errors.py."""

from __future__ import annotations

import shutil
from pathlib import Path

import fastinv
import numpy as np
import pytest
from fastinv.dem import DeepEM
from fastinv.dem.deepem import shipped_model_path
from fastinv.dem.synthetic import synthetic_aia
from fastinv.export import update_card
from fastinv.train.deepem_errors import SEED_HELD_OUT, _zero_tables

pytestmark = pytest.mark.skipif(not fastinv.info()["bf16"], reason="this CPU has no AVX512-BF16")


def _bf16(x: np.ndarray) -> np.ndarray:
    """float32 rounded to bfloat16, nearest even (finite values), as float64."""
    u = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    u = ((u + 0x7FFF + ((u >> 16) & 1)) & 0xFFFF0000).astype(np.uint32)
    return u.view(np.float32).astype(np.float64)


def _reference(w: dict, x: np.ndarray, sx: np.ndarray, logt: np.ndarray, terms: int, slope_terms: int):
    """sigma(EM), sigma(total EM), sigma(log T_EM) of the noise term, float64: the output of the
    forward pass with `terms` bf16 terms per weight, the slopes of the one with `slope_terms`
    (0: float32 weights and inputs); x, sx: the network's inputs and their noise (6, P)."""
    W = [w[f"{i}.weight"].reshape(w[f"{i}.weight"].shape[0], -1).astype(np.float64) for i in (0, 2, 4)]
    b = [w[f"{i}.bias"].astype(np.float64) for i in (0, 2, 4)]

    def forward(terms):
        def weights(m):
            hi = _bf16(m)
            return m if terms == 0 else hi if terms == 1 else hi + _bf16(m - hi)

        h, slopes = x, []
        for i in range(3):
            pre = weights(W[i]) @ (h.astype(np.float64) if terms == 0 else _bf16(h)) + b[i][:, None]
            if i < 2:
                slopes.append(np.where(pre > 0, 1.0, 0.01))  # LeakyReLU(0.01)
                h = (pre * slopes[-1]).astype(np.float32)
        return pre.astype(np.float32).astype(np.float64), slopes

    out, _ = forward(terms)  # the network's output, (nT, P)
    _, slopes = forward(slope_terms)
    a = slopes[0][:, :, None] * (W[0][None] * sx.T[:, None, :]).transpose(1, 0, 2)  # (H1, P, 6)
    t2 = slopes[1][:, :, None] * np.einsum("ik,kpc->ipc", W[1], a)
    jy = np.einsum("ti,ipc->tpc", W[2], t2)  # (nT, P, 6)
    em = 1e25 * out**2
    dem = 2e25 * out[:, :, None] * jy
    tot = em.sum(axis=0)
    mean = (logt[:, None] * em).sum(axis=0) / tot
    s_em = np.sqrt((dem**2).sum(axis=2))
    s_tot = np.sqrt((dem.sum(axis=0) ** 2).sum(axis=1))
    s_lt = np.sqrt(((((logt[:, None] - mean) / tot)[:, :, None] * dem).sum(axis=0) ** 2).sum(axis=1))
    return s_em, s_tot, s_lt


@pytest.mark.parametrize("kernels", ["amx", "avx512"])
@pytest.mark.parametrize("precision", ["bf16", "bf16x2"])
def test_errors_take_the_slopes_of_the_precision_that_ran(precision, kernels, monkeypatch, tmp_path):
    """errors="fp32" (the float32 Jacobian, no bf16 rounding of its own) on a bf16 network
    matches the float64 Jacobian with that network's slopes to 1e-3 in >= 95 % of the pixels
    (measured 98-99.7 %; the rest: a pre-activation on a kink, where the engine's float32 sums
    and float64 take different sides); with the float32 network's slopes 30-38 % of the pixels
    differ (asserted > 3x, so the test tells the two apart). Bitwise the same for 1 and 2 threads (the AMX engine runs
    pixel tiles in pairs, each with its own kept activations)."""
    monkeypatch.setenv("FASTINV_BF16_KERNELS", kernels)
    safetensors_numpy = pytest.importorskip("safetensors.numpy")
    path = Path(tmp_path) / "deepem.safetensors"
    shutil.copyfile(shipped_model_path(), path)
    logt = DeepEM.load().logt
    update_card(path, {"errors": _zero_tables(len(logt))})  # the noise term alone
    try:
        nets = {t: DeepEM.load(path, threads=t, precision=precision) for t in (1, 2)}
    except RuntimeError as exc:  # FASTINV_BF16_KERNELS=amx where the CPU or OS has no AMX
        pytest.skip(str(exc))
    s = synthetic_aia(1000, seed=SEED_HELD_OUT + 3, logt=logt)
    res = nets[1].invert(s["y"], sigma=s["sigma"], errors="fp32")
    res2 = nets[2].invert(s["y"], sigma=s["sigma"], errors="fp32")
    for key in ("em", "em_err", "logt_err", "total_em_err"):
        assert np.array_equal(getattr(res, key), getattr(res2, key), equal_nan=True), key
    w = safetensors_numpy.load_file(shipped_model_path())
    y = np.maximum(s["y"], 0.0)
    x = np.sqrt(y.astype(np.float32)).astype(np.float64)
    sx = s["sigma"] / (2 * np.sqrt(np.maximum(y, s["sigma"])))
    ok = res.status == 0
    terms = 1 if precision == "bf16" else 2

    def mismatch(ref):
        s_em, s_tot, s_lt = (r[..., ok] for r in ref)
        big = s_em > 1e-3 * s_em.max(axis=0)
        bad = np.abs(res.total_em_err[ok] / s_tot - 1) > 1e-3
        bad |= np.abs(res.logt_err[ok] / s_lt - 1) > 1e-3
        bad |= (np.abs(np.where(big, res.em_err[:, ok] / s_em - 1, 0)) > 1e-3).any(axis=0)
        return bad.mean()

    own = mismatch(_reference(w, x, sx, logt, terms, slope_terms=terms))
    assert ok.sum() > 950 and own < 0.05, own
    # the float32 network's slopes instead: the test tells the two apart
    float32_slopes = mismatch(_reference(w, x, sx, logt, terms, slope_terms=0))
    assert float32_slopes > 3 * max(own, 0.01), (own, float32_slopes)
