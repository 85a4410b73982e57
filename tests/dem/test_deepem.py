"""DeepEM inference, pipeline, training and the shipped model.

References: PyTorch (the same network evaluated by torch), the Basis Pursuit solver on the
same pixels, the AIA error model formula, and the FITS header geometry."""

from __future__ import annotations

import json

import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS
from fastinv import datasets
from fastinv.dem import DeepEM, aia_error, load_response
from fastinv.dem.basis_pursuit import DEEPEM_LOGT, BasisPursuit
from fastinv.dem.deepem import shipped_model_path
from fastinv.dem.evaluate import compare
from fastinv.dem.io import read_aia

torch = pytest.importorskip("torch")


def _card(response: str) -> str:
    return json.dumps(
        {
            "input": {"transform": "sqrt(max(I, 0))"},
            "output": {"transform": "EM = 1e25 * y**2", "logt": [round(float(v), 2) for v in DEEPEM_LOGT]},
            "labels": {"response": response},
            "fastinv_version": "test",
        }
    )


@pytest.fixture(scope="module")
def random_deepem(tmp_path_factory):
    import fastinv
    from fastinv.train.deepem import deepem_network

    torch.manual_seed(3)
    net = deepem_network().eval()
    path = tmp_path_factory.mktemp("deepem") / "random.safetensors"
    fastinv.export(net, path, torch.zeros(1, 6, 4, 4), metadata={"fastinv.card": _card("aia_v10_eve")})
    return net, path


@pytest.fixture(scope="module")
def flare():
    return read_aia(datasets.aia_flare_files())


def test_invert_matches_torch_and_physics(random_deepem, flare):
    net, path = random_deepem
    dl = DeepEM.load(path)
    y = flare.data.copy()
    y[:, 3, 5] = np.nan  # one bad pixel
    res = dl.invert(y, exptime=flare.exptime, n_sample=flare.n_sample)
    with torch.no_grad():
        x = torch.from_numpy(np.sqrt(np.maximum(np.nan_to_num(y), 0.0)).astype(np.float32))[None]
        ref = 1e25 * net(x)[0].double().numpy() ** 2
    ref[:, 3, 5] = 0.0
    # EM = 1e25 y^2: relative error 2 x the network's 1e-5
    np.testing.assert_allclose(res.em, ref, rtol=0, atol=2e-5 * np.abs(ref).max())
    assert res.status[3, 5] == 12 and np.all(res.em[:, 3, 5] == 0) and np.isnan(res.chi2[3, 5])
    assert np.count_nonzero(res.status) == 1
    # re-synthesis with the response table on the same grid, chi2 with the AIA error model
    k = load_response("aia_v10_eve").at(DEEPEM_LOGT)
    model = np.einsum("ct,tyx->cyx", k, res.em)
    np.testing.assert_allclose(res.model, model, rtol=1e-5)  # float32 sums of 18 terms
    t = flare.exptime.reshape(6, 1, 1)
    sigma = aia_error(np.maximum(np.nan_to_num(y), 0) * t, flare.n_sample) / t
    chi2 = np.sum(((model - np.maximum(y, 0)) / sigma) ** 2, axis=0)
    ok = res.status == 0
    np.testing.assert_allclose(res.chi2[ok], chi2[ok], rtol=1e-4)


def test_invert_rejects_bad_shapes(random_deepem):
    dl = DeepEM.load(random_deepem[1])
    with pytest.raises(ValueError, match=r"shape \(6, \.\.\.\)"):
        dl.invert(np.ones((5, 4, 4)))


def test_model_without_card_is_refused(tmp_path):
    import fastinv
    from fastinv.train.deepem import deepem_network

    path = tmp_path / "plain.safetensors"
    fastinv.export(deepem_network().eval(), path, torch.zeros(1, 6, 2, 2))
    with pytest.raises(ValueError, match="not a DeepEM model"):
        DeepEM.load(path)


def test_on_disk_mask_and_region_split():
    from fastinv.train.deepem import BLOCK, on_disk_mask, region_split

    h = fits.getheader(datasets.aia_synoptic_files()[2], 0)
    mask = on_disk_mask(h, (1024, 1024))
    yy, xx = np.mgrid[0:1024, 0:1024]
    r = np.hypot((xx + 1 - h["CRPIX1"]) * h["CDELT1"], (yy + 1 - h["CRPIX2"]) * h["CDELT2"])
    linear = r < h["RSUN_OBS"]  # plate scale geometry, no projection
    assert np.mean(mask != linear) < 1e-3
    assert abs(mask.sum() / (np.pi * (h["RSUN_OBS"] / h["CDELT1"]) ** 2) - 1) < 0.01
    val = region_split((1024, 1024))
    assert 0.18 < val.mean() < 0.22
    blocks = val.reshape(1024 // BLOCK, BLOCK, 1024 // BLOCK, BLOCK)
    assert np.all(blocks.min(axis=(1, 3)) == blocks.max(axis=(1, 3)))  # whole blocks, not pixels


@pytest.mark.slow
def test_training_is_reproducible(tmp_path):
    from fastinv.train.deepem import synoptic_training_set, train

    data = synoptic_training_set(progress=False)
    assert data.counts["used"] == data.x.shape[0] and data.x.shape[1] == 6 and data.t.shape[1] == 18
    cards = []
    for i in range(2):
        cards.append(
            train(
                tmp_path / f"m{i}.safetensors", epochs=1, seed=7, data=data, max_pixels=20000, progress=False, threads=1
            )
        )
    from safetensors.numpy import load_file

    a, b = (load_file(tmp_path / f"m{i}.safetensors") for i in range(2))
    assert a.keys() == b.keys()
    for k in a:  # the same seed gives the same weights, bit for bit (the card records timings)
        assert np.array_equal(a[k], b[k]), k
    assert cards[0]["metrics"]["history"] == cards[1]["metrics"]["history"]
    assert json.loads((tmp_path / "m0.safetensors.json").read_text())["training"]["seed"] == 7
    assert DeepEM.load(tmp_path / "m0.safetensors").invert(np.ones((6, 2))).em.shape == (18, 2)


@pytest.fixture(scope="module")
def shipped():
    if not shipped_model_path("deepem18").exists():
        pytest.fail("the DeepEM model is not shipped in fastinv/data")
    return DeepEM.load("deepem18")  # the paper's 18-bin grid (deepem21: test_deepem21.py)


def test_shipped_model_card(shipped):
    card = shipped.card
    assert card["training"]["epochs"] >= 10
    assert card["data"]["validation_pixels"] > 50_000
    assert card["labels"]["keep_failed"] is False
    np.testing.assert_allclose(shipped.logt, DEEPEM_LOGT)


def test_shipped_model_agrees_with_bp_on_held_out_flare(shipped, flare):
    """Regression guard on data never used in training, against BP on the same grid.
    Bounds sit well outside the measured values (see the model card / README)."""
    bp = BasisPursuit(logt=DEEPEM_LOGT).solve(flare.data, exptime=flare.exptime, n_sample=flare.n_sample)
    dl = shipped.invert(flare.data, exptime=flare.exptime, n_sample=flare.n_sample)
    t = flare.exptime.reshape(6, 1, 1)
    sigma = aia_error(np.maximum(flare.data, 0) * t, flare.n_sample) / t
    m = compare(bp, dl, flare.data, sigma)
    assert m["logt_em"]["median_abs_diff"] < 0.1
    assert 0.7 < m["total_em_ratio"]["median"] < 1.4


def test_cli_deepem_writes_fits_and_pngs(tmp_path, flare):
    pytest.importorskip("matplotlib")
    from fastinv.cli import main

    out = tmp_path / "dem.fits"
    files = [str(f) for f in datasets.aia_flare_files()]
    assert (
        main(
            [
                "dem",
                "deepem",
                *files,
                "-o",
                str(out),
                "--png",
                str(tmp_path / "q.png"),
                "--compare-bp",
                str(tmp_path / "cmp.png"),
            ]
        )
        == 0
    )
    with fits.open(out) as h:
        assert h[0].data.shape == (DeepEM.load().logt.size, 67, 67) and h[0].header["CTYPE3"] == "LOG10T"
        assert h[0].header["FI_METH"] == "deepem"
        assert {"STATUS", "CHI2", "LOGT_EM", "EM_TOTAL", "LOGT"} <= {x.name for x in h}
        w_out, w_in = WCS(h[0].header).celestial, WCS(flare.header).celestial
        np.testing.assert_allclose(w_out.wcs_pix2world([[10, 20]], 0), w_in.wcs_pix2world([[10, 20]], 0))
    for png in ("q.png", "cmp.png"):
        assert (tmp_path / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(tmp_path.glob(".*"))  # no temp files left behind


def test_demo_writes_its_outputs(tmp_path):
    pytest.importorskip("matplotlib")
    from fastinv.demo import run_demo

    lines = []
    result = run_demo(tmp_path / "demo", echo=lines.append)
    for name in ("dem_bp.fits", "dem_deepem.fits", "dem_bp.png", "dem_deepem.png", "bp_vs_deepem.png"):
        assert (tmp_path / "demo" / name).stat().st_size > 0
    assert result["pixels"] == 67 * 67 and any("DeepEM vs Basis Pursuit" in ln for ln in lines)
