"""The 21-bin DeepEM (BP's grid, log T 5.5..7.5, trained with hot synthetic pixels), the
synthetic hot DEMs and the shipped-model evaluation metrics.

References: PyTorch (the shipped weights read with the ``safetensors`` package, evaluated
by torch), the fused path's NumPy twin, zlib's CRC-32, the synthetic DEMs' known truth,
and the evaluation metrics recomputed here with plain per-pixel NumPy loops."""

from __future__ import annotations

import json
import zlib
from types import SimpleNamespace

import numpy as np
import pytest
from fastinv import datasets
from fastinv.dem import DeepEM
from fastinv.dem.basis_pursuit import DEEPEM_LOGT, DEFAULT_LOGT
from fastinv.dem.deepem import SHIPPED_MODELS, shipped_model_path
from fastinv.dem.evaluate import compare, hot_synthetic_logt_error
from fastinv.dem.io import read_aia
from fastinv.dem.synthetic import FINE_LOGT, hot_dems, rebin

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def deepem21():
    return DeepEM.load("deepem21")


@pytest.fixture(scope="module")
def flare():
    return read_aia(datasets.aia_flare_files())


def test_models_load_by_name(deepem21):
    np.testing.assert_allclose(deepem21.logt, DEFAULT_LOGT)
    np.testing.assert_allclose(DeepEM.load("deepem18").logt, DEEPEM_LOGT)
    assert DeepEM.load("deepem18").model.path == DeepEM.load(shipped_model_path("deepem18")).model.path
    assert deepem21.fits_cards()["FI_METH"][1].endswith("-21")
    with pytest.raises(ValueError, match="unknown DeepEM model 'deepem99'"):
        shipped_model_path("deepem99")
    card = deepem21.card
    assert (
        card["training"]["command"].startswith("fastinv train deepem ") and "--bins 21" in card["training"]["command"]
    )
    assert card["data"]["synthetic"] > 0 and card["training"]["seed"] == 0


def test_shipped_files_carry_their_checksum():
    for name in SHIPPED_MODELS:
        raw = shipped_model_path(name).read_bytes()
        n = int.from_bytes(raw[:8], "little")
        header = json.loads(raw[8 : 8 + n])
        assert header["__metadata__"]["fastinv.crc32"] == f"{zlib.crc32(raw[8 + n :]):08x}", name
        # the .json beside the file is the card inside it
        card = json.loads(shipped_model_path(name).with_suffix(".safetensors.json").read_text())
        assert card == json.loads(header["__metadata__"]["fastinv.card"]), name


def test_deepem21_matches_torch_and_its_numpy_twin(deepem21, flare):
    from fastinv.train.deepem import network_from_file

    net = network_from_file(shipped_model_path("deepem21"))
    y = flare.data
    res = deepem21.invert(y, exptime=flare.exptime, n_sample=flare.n_sample, threads=2)
    with torch.no_grad():
        x = torch.from_numpy(np.sqrt(np.maximum(y, 0.0)).astype(np.float32))[None]
        ref = 1e25 * net(x)[0].double().numpy() ** 2
    assert res.em.shape == (21, *y.shape[1:])
    # EM = 1e25 y^2: relative error 2 x the network's 1e-5
    np.testing.assert_allclose(res.em, ref, rtol=0, atol=2e-5 * np.abs(ref).max())
    twin = deepem21._invert_numpy(y, flare.exptime, None, flare.n_sample, 2)
    np.testing.assert_array_equal(res.em, twin.em)  # the fused loop handles 21 bins bit for bit
    np.testing.assert_allclose(res.model, twin.model, rtol=2e-6)


def test_hot_synthetic_pixels():
    s = hot_dems(4000, seed=3, hot_centre=(7.1, 7.2), hot_width=(0.05, 0.06), background=False)
    # rebinning keeps the EM inside the coarse grid (5.45..7.55): all but the Gaussian tails
    # beyond 7.55, > 5.8 widths from the centre (< 1e-7 of the total)
    np.testing.assert_allclose(s.em_on(DEFAULT_LOGT).sum(axis=0), s.total_em, rtol=1e-7)
    assert np.all(np.abs(s.logt_em - 7.15) < 0.06)
    # noise: chi2 per channel of y against the noiseless intensities is 1 within 5 %
    chi2 = np.mean(((s.y - s.y_true) / s.sigma) ** 2, axis=1)
    assert np.all(np.abs(chi2 - 1) < 0.05), chi2
    # the rebin edges: fine centres 5.45 <= logT < 5.55 go to the 5.5 bin
    em = np.zeros((FINE_LOGT.size, 1))
    em[np.isclose(FINE_LOGT, 5.45)] = 1.0
    em[np.isclose(FINE_LOGT, 5.55)] = 2.0
    np.testing.assert_array_equal(rebin(em, DEFAULT_LOGT)[:2, 0], [1.0, 2.0])


def test_deepem21_beats_deepem18_on_hot_synthetic_dems(deepem21):
    """Measured (seed 1, 2000 pixels, components at log T 7.0-7.4): see the model card /
    README; the 18-bin model cannot place EM above 7.2, the 21-bin one must do better."""
    e21 = hot_synthetic_logt_error(deepem21, n=2000, seed=1)
    e18 = hot_synthetic_logt_error(DeepEM.load("deepem18"), n=2000, seed=1)
    assert e21["median"] < 0.75 * e18["median"], (e21, e18)
    assert e21["p90"] < e18["p90"], (e21, e18)


def _reference_metrics(grid, em_bp, status, em_dl, dl_grid, y, sigma, model):
    """compare()'s metrics, one pixel at a time with plain NumPy."""
    nt, npix = em_bp.shape
    full = np.zeros((nt, npix))
    for i, v in enumerate(grid):
        for j, w in enumerate(dl_grid):
            if abs(v - w) < 1e-9:
                full[i] = em_dl[j]
    rel = [[] for _ in range(nt)]
    dlt, ratio, inband = [], [], []
    for p in range(npix):
        if status[p] != 0:
            continue
        inband.append(all(abs(model[c, p] - max(y[c, p], 0.0)) <= 1.4 * sigma[c, p] * (1 + 1e-9) for c in range(6)))
        if not np.isfinite(em_dl[:, p]).all():
            continue
        peak = em_bp[:, p].max()
        for i in range(nt):
            if peak > 0 and em_bp[i, p] > 0.01 * peak:
                rel[i].append(abs(full[i, p] - em_bp[i, p]) / em_bp[i, p])
        tb, td = em_bp[:, p].sum(), full[:, p].sum()
        if tb > 0 and td > 0:
            dlt.append(abs(np.dot(grid, full[:, p]) / td - np.dot(grid, em_bp[:, p]) / tb))
            ratio.append(td / tb)
    return rel, dlt, ratio, float(np.mean(inband))


def test_compare_matches_a_pixel_by_pixel_reference():
    rng = np.random.default_rng(11)
    npix = 300
    em_bp = np.where(rng.random((21, npix)) < 0.3, 10 ** rng.uniform(25, 28, (21, npix)), 0.0)
    em_dl = 10 ** rng.uniform(25, 28, (18, npix))
    status = np.where(rng.random(npix) < 0.1, 2, 0).astype(np.int8)
    status[5] = 0  # BP-ok, DeepEM NaN (below)
    em_bp[:, status != 0] = 0.0
    em_dl[:, 5] = np.nan  # DeepEM without EM there (e.g. refinement infeasible)
    y = rng.uniform(-5, 500, (6, npix))
    sigma = rng.uniform(1, 20, (6, npix))
    model = y + sigma * rng.uniform(-2, 2, (6, npix))
    model[:, ::3] = y[:, ::3] + 0.5 * sigma[:, ::3]  # some pixels surely in the band
    model[:, 5] = np.nan
    bp = SimpleNamespace(em=em_bp, status=status, model=y.copy(), logt=DEFAULT_LOGT)
    dl = SimpleNamespace(em=em_dl, model=model, logt=DEEPEM_LOGT)
    m = compare(bp, dl, y, sigma)
    rel, dlt, ratio, inband = _reference_metrics(DEFAULT_LOGT, em_bp, status, em_dl, DEEPEM_LOGT, y, sigma, model)
    assert m["bp_ok"] == int((status == 0).sum()) and m["dl_nan_on_bp_ok"] == 1
    for i in range(21):
        assert m["rel_err_per_bin"][i] == pytest.approx(np.median(rel[i]), rel=1e-12)
    for i in (18, 19, 20):  # bins the 18-bin model lacks: EM 0 there, relative error 1
        assert m["rel_err_per_bin"][i] == 1.0
    assert m["logt_em"]["median_abs_diff"] == pytest.approx(np.median(dlt), rel=1e-12)
    assert m["logt_em"]["p90_abs_diff"] == pytest.approx(np.percentile(dlt, 90), rel=1e-12)
    assert m["total_em_ratio"]["median"] == pytest.approx(np.median(ratio), rel=1e-12)
    assert m["total_em_ratio"]["p10"] == pytest.approx(np.percentile(ratio, 10), rel=1e-12)
    assert m["within_tolerance"] == pytest.approx(inband, rel=1e-12) and 0.2 < inband < 1
    assert "coverage" not in m
    # with error bars: coverage is the fraction of |d log T_EM| (|d total EM|) <= sigma
    lt_err = rng.uniform(0, 0.3, npix)
    tot_err = rng.uniform(0, 1, npix) * em_dl.sum(axis=0)
    dl.logt_err, dl.total_em_err = lt_err, tot_err
    m = compare(bp, dl, y, sigma)
    ok = [p for p in range(npix) if status[p] == 0 and p != 5]
    cov_t = np.mean([abs(_lt(DEFAULT_LOGT, em_bp[:, p]) - _lt(DEEPEM_LOGT, em_dl[:, p])) <= lt_err[p] for p in ok])
    cov_e = np.mean([abs(em_dl[:18, p].sum() - em_bp[:, p].sum()) <= tot_err[p] for p in ok])
    assert m["coverage"]["logt_em"] == pytest.approx(cov_t, rel=1e-12)
    assert m["coverage"]["total_em"] == pytest.approx(cov_e, rel=1e-12)


def _lt(grid, em):
    return float(np.dot(grid, em) / em.sum())


def test_init_from_copies_the_shared_bins(tmp_path):
    from fastinv.train.deepem import _init_from, deepem_network, network_from_file

    torch.manual_seed(0)
    net = deepem_network(21)
    _init_from(net, shipped_model_path("deepem18"), DEFAULT_LOGT)
    src = network_from_file(shipped_model_path("deepem18"))
    x = torch.rand(1, 6, 5, 5) * 30
    with torch.no_grad():
        np.testing.assert_array_equal(net.eval()(x)[0, :18].numpy(), src(x)[0].numpy())


def test_cli_evaluate_deepem_table_and_json(tmp_path, capsys):
    from fastinv.cli import main

    out = tmp_path / "m.json"
    assert main(["evaluate", "deepem", "--model", "deepem18", "--threads", "2", "-o", str(out)]) == 0
    table = capsys.readouterr().out
    m = json.loads(out.read_text())
    raw = m["models"]["deepem18"]["raw"]
    assert f"{100 * raw['within_tolerance']:.1f} %" in table and "|d log T_EM| median" in table
    assert m["models"]["deepem18"]["grid"] == [5.5, 7.2, 18]
    assert raw["pixels"] == 10 * 67 * 67 and 0 < m["bp_feasible"]["21_bins"] <= 1
    assert raw["rel_err_per_bin"][-1] == 1.0  # no EM at log T 7.5 in an 18-bin model
    # without refine=/errors= in DeepEM.invert the columns are absent and the notes say so
    if "refined" not in m["models"]["deepem18"]:
        assert any(n.startswith("refined: not measured") for n in m["notes"])


def test_hot_training_is_seeded_and_reproducible(tmp_path):
    """The 21-bin recipe (synthetic hot pixels with BP labels, init from deepem18) twice
    with the same seed: the same weights bit for bit; the labels are BP's on the 21 bins."""
    from fastinv.train.deepem import synthetic_training_set, train
    from safetensors.numpy import load_file

    data = synthetic_training_set(600, DEFAULT_LOGT, seed=4, threads=1)
    assert data.t.shape[1] == 21 and data.counts["synthetic_bp_ok"] == data.x.shape[0]
    assert 0.15 < data.validation.mean() < 0.25
    for i in range(2):
        train(
            tmp_path / f"m{i}.safetensors",
            epochs=1,
            seed=4,
            data=data,
            logt=DEFAULT_LOGT,
            init=shipped_model_path("deepem18"),
            progress=False,
            threads=1,
            command="test",
        )
    a, b = (load_file(tmp_path / f"m{i}.safetensors") for i in range(2))
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    net = DeepEM.load(tmp_path / "m0.safetensors")
    np.testing.assert_allclose(net.logt, DEFAULT_LOGT)
    assert net.card["training"]["init"] == "deepem.safetensors" and net.card["training"]["command"] == "test"


def test_compare_without_logt_takes_the_shipped_grid_of_that_size():
    """A result with no logt: 21 bins mean BP's default grid, 18 the paper's (the same metrics
    as with logt given); another count is a ValueError naming the fix."""
    rng = np.random.default_rng(3)
    npix = 50
    y = rng.uniform(1, 500, (6, npix))
    sigma = rng.uniform(1, 20, (6, npix))
    bp = SimpleNamespace(em=10 ** rng.uniform(25, 28, (21, npix)), status=np.zeros(npix, np.int8), model=y, logt=None)
    dl = SimpleNamespace(em=10 ** rng.uniform(25, 28, (18, npix)), model=y)
    with_grids = compare(
        SimpleNamespace(**{**vars(bp), "logt": DEFAULT_LOGT}),
        SimpleNamespace(**{**vars(dl), "logt": DEEPEM_LOGT}),
        y,
        sigma,
    )
    assert compare(bp, dl, y, sigma) == with_grids
    with pytest.raises(ValueError, match="19 temperature bins and no logt"):
        compare(bp, SimpleNamespace(em=np.ones((19, npix)), model=y), y, sigma)
