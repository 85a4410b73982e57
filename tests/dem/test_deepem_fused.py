"""DeepEM.invert's fused C++ path (pre/post-processing inside the engine's tile loop)
against the NumPy path it replaces (DeepEM._invert_numpy) and against formulas evaluated
here in float64 NumPy: the AIA error model chi2 and K @ EM re-synthesis."""

from __future__ import annotations

import json

import numpy as np
import pytest
from fastinv import datasets
from fastinv.dem import DeepEM, aia_error, load_response
from fastinv.dem.basis_pursuit import DEEPEM_LOGT
from fastinv.dem.io import read_aia

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def deepem(tmp_path_factory):
    import fastinv
    from fastinv.train.deepem import deepem_network

    torch.manual_seed(5)
    card = json.dumps(
        {
            "input": {"transform": "sqrt(max(I, 0))"},
            "output": {"transform": "EM = 1e25 * y**2", "logt": [round(float(v), 2) for v in DEEPEM_LOGT]},
            "labels": {"response": "aia_v10_eve"},
            "fastinv_version": "test",
        }
    )
    path = tmp_path_factory.mktemp("deepem_fused") / "random.safetensors"
    fastinv.export(deepem_network().eval(), path, torch.zeros(1, 6, 4, 4), metadata={"fastinv.card": card})
    return DeepEM.load(path)


@pytest.fixture(scope="module")
def frame():
    obs = read_aia(datasets.aia_flare_files())
    y = obs.data.astype(np.float64)[:, :61, :53].copy()  # 3233 pixels: a partial last tile
    y[:, 3, 5] = np.nan
    y[2, 7, 7] = np.inf
    y[4, 9, 1] = -np.inf
    y[:, 11, 11] = -3.0  # all negative: input 0
    y[1, 12, 12] = -0.0
    y[0, 13, 13] = 1e39  # finite in float64, inf in float32: a bad pixel for the network
    return y, obs.exptime, obs.n_sample


def _same(a, b):
    np.testing.assert_array_equal(a, b)
    assert a.dtype == b.dtype and a.shape == b.shape


@pytest.mark.filterwarnings("ignore:overflow encountered in cast")
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_fused_equals_numpy_path(deepem, frame, dtype):
    y, exptime, n_sample = frame
    y = y.astype(dtype)
    res = deepem.invert(y, exptime=exptime, n_sample=n_sample, threads=2)
    ref = deepem._invert_numpy(y, exptime, None, n_sample, 2)
    _same(res.em, ref.em)  # same float32 operations in the same order: bitwise
    _same(res.status, ref.status)
    _same(res.objective, ref.objective)
    assert np.count_nonzero(res.status) == 4  # NaN, +inf, -inf, 1e39 (inf in float32)
    # K @ EM: float64 sums rounded once against NumPy's float32 GEMM
    np.testing.assert_allclose(res.model, ref.model, rtol=2e-6, atol=1e-30)
    np.testing.assert_array_equal(np.isnan(res.chi2), res.status != 0)
    ok = res.status == 0
    np.testing.assert_allclose(res.chi2[ok], ref.chi2[ok], rtol=1e-4)
    # independent float64 evaluation of both formulas from the fused EM
    k = load_response("aia_v10_eve").at(DEEPEM_LOGT)
    model = np.einsum("ct,tyx->cyx", k, res.em.astype(np.float64))
    np.testing.assert_allclose(res.model, model, rtol=1e-6, atol=1e-30)
    yd = y.astype(np.float64)
    t = np.asarray(exptime, float).reshape(6, 1, 1)
    sigma = aia_error(np.maximum(np.nan_to_num(yd, posinf=0, neginf=0), 0) * t, n_sample) / t
    chi2 = np.sum(((res.model.astype(np.float64) - np.maximum(yd, 0)) / sigma) ** 2, axis=0)
    np.testing.assert_allclose(res.chi2[ok], chi2[ok], rtol=1e-12)


@pytest.mark.filterwarnings("ignore:overflow encountered in cast")
def test_fused_sigma_strided_input_and_no_errors(deepem, frame):
    y, _, _ = frame
    big = np.zeros((6, 2 * y.shape[1], y.shape[2]))
    big[:, ::2] = y
    view = big[:, ::2]  # non-contiguous input, no copy made
    sig = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])  # one sigma per channel, broadcast
    res = deepem.invert(view, sigma=sig.reshape(6, 1, 1) * np.ones((1, *y.shape[1:])), threads=1)
    ref = deepem._invert_numpy(y, None, sig.reshape(6, 1, 1) * np.ones((1, *y.shape[1:])), 1.0, 1)
    _same(res.em, ref.em)
    ok = res.status == 0
    np.testing.assert_allclose(res.chi2[ok], ref.chi2[ok], rtol=1e-4)
    res_b = deepem.invert(view, sigma=sig.reshape(6, 1), threads=2)  # (6, 1) broadcast over pixels
    np.testing.assert_array_equal(res_b.chi2, res.chi2)
    plain = deepem.invert(y)
    assert np.all(np.isnan(plain.chi2))
    _same(plain.em, res.em)


def test_fused_thread_count_invariance(deepem, frame):
    y, exptime, n_sample = frame
    one = deepem.invert(y, exptime=exptime, n_sample=n_sample, threads=1)
    two = deepem.invert(y, exptime=exptime, n_sample=n_sample, threads=2)
    for name in ("em", "model", "status", "chi2", "objective"):
        np.testing.assert_array_equal(getattr(one, name), getattr(two, name))


def test_fused_validates(deepem, frame):
    y, exptime, _ = frame
    with pytest.raises(ValueError, match="exptime"):
        deepem.invert(y, exptime=0.0)
    with pytest.raises(ValueError, match="n_sample"):
        deepem.invert(y, exptime=exptime, n_sample=0.5)
    with pytest.raises(ValueError, match="sigma"):
        deepem.invert(y, sigma=np.ones((6, 7)))
    with pytest.raises(ValueError, match="exptime"):
        deepem.invert(y, exptime=np.ones(5))
    empty = deepem.invert(np.zeros((6, 0)))
    assert empty.em.shape == (18, 0) and empty.status.shape == (0,)


def test_fused_out_reuses_buffers(deepem, frame):
    y, exptime, n_sample = frame
    first = deepem.invert(y, exptime=exptime, n_sample=n_sample)
    keep = {k: getattr(first, k).copy() for k in ("em", "model", "status", "chi2", "objective", "tolfac")}
    other = deepem.invert(np.nan_to_num(y)[:, ::-1], exptime=exptime, n_sample=n_sample)
    again = deepem.invert(y, exptime=exptime, n_sample=n_sample, out=other)
    for k, ref in keep.items():
        got = getattr(again, k)
        assert np.shares_memory(got, getattr(other, k))
        np.testing.assert_array_equal(got, ref)
    assert np.all(np.isnan(again.tolfac))
    with pytest.raises(ValueError, match="wrong shape"):
        deepem.invert(y[:, :10], out=first)
    first.em = first.em[:, ::2]  # a strided array cannot be reused
    with pytest.raises(ValueError, match="without a copy"):
        deepem.invert(y, out=first)


@pytest.mark.parametrize("path", ["fused", "numpy"])
def test_em_overflow_is_a_failure_with_nan_products(path):
    # The shipped network maps bright inputs to outputs whose 1e25 y^2 exceeds float32's
    # range. Reference: the network output from Model itself, squared in float64.
    net = DeepEM.load()
    y = np.full((6, 1, 6), 50.0)
    y[:, 0, 1] = 3e38
    y[:, 0, 2] = 1e20
    y[:, 0, 3] = 1e3
    y[0, 0, 4] = np.inf  # bad input keeps its own code
    exptime = np.ones(6)
    if path == "fused":
        res = net.invert(y, exptime=exptime)
    else:
        res = net._invert_numpy(y, exptime, None, 1.0, None)
    x = np.sqrt(np.maximum(y.reshape(6, -1), 0)).astype(np.float32)[:, None, :]
    with np.errstate(over="ignore", invalid="ignore"):
        out = net.model(x)[:, 0, :].astype(np.float64)
    em64 = 1e25 * out**2
    overflow = ~(np.isfinite(em64) & (em64 <= np.finfo(np.float32).max)).all(axis=0)
    with np.errstate(over="ignore"):
        overflow |= ~np.isfinite(em64.sum(axis=0, dtype=np.float32))
    bad = ~np.isfinite(y.reshape(6, -1).astype(np.float32)).all(axis=0)
    expected = np.where(bad, 12, np.where(overflow, 13, 0))
    assert overflow[1] and overflow[2] and not overflow[0]  # the case this test is about
    np.testing.assert_array_equal(res.status.ravel(), expected)
    failed = res.status.ravel() == 13
    for name in ("objective", "chi2"):
        v = getattr(res, name).ravel()
        assert np.isnan(v[failed]).all() and np.isfinite(v[expected == 0]).all(), name
    for name in ("em", "model"):
        v = getattr(res, name).reshape(getattr(res, name).shape[0], -1)
        assert np.isnan(v[:, failed]).all() and np.isfinite(v[:, expected == 0]).all(), name
