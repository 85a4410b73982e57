"""StokesNet (model card, preparation, decoding) against an independent float64 torch/NumPy
reference of the card's definition; Model(out=); the resampler against numpy.interp; the
quiet-Sun continuum rule against known levels."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import fastinv  # noqa: E402
from _stokes_models import HINODE_WL, VISP_WL, make_card, reference_predict, write_model  # noqa: E402
from fastinv.stokes import StokesNet, resample_to  # noqa: E402
from fastinv.stokes.inversion import network as network_mod  # noqa: E402
from fastinv.stokes.inversion.continuum import continuum_levels, continuum_wavelengths, quiet_sun_level  # noqa: E402
from fastinv.stokes.inversion.network import Resampler  # noqa: E402
from fastinv.stokes.synthesis.training_sets import lte_training_set  # noqa: E402


@pytest.fixture(scope="module")
def hinode_profiles():
    return lte_training_set(64, instrument="hinode", seed=3)


@pytest.fixture(scope="module")
def hinode_model(tmp_path_factory):
    path = tmp_path_factory.mktemp("m") / "stokes_hinode.safetensors"
    net, card = write_model(path, seed=1)
    return path, net, card


# --------------------------------------------------------------------------------------
# Model(out=)


def test_model_out_argument_writes_into_the_buffer(hinode_model, hinode_profiles):
    path, net, card = hinode_model
    m = fastinv.load(path)
    x = np.ascontiguousarray(hinode_profiles["stokes"][:, :, :], dtype=np.float32)
    with torch.no_grad():
        ref = net(torch.from_numpy(x)).numpy()
    y = np.full((x.shape[0], m.output_shape[0]), np.nan, dtype=np.float32)
    assert m(x, out=y) is y
    np.testing.assert_allclose(y, ref, rtol=1e-4, atol=1e-4 * np.abs(ref).max())
    # a strided (Fortran-order) buffer works too and gives the same numbers
    yf = np.asfortranarray(np.zeros_like(y))
    m(x, out=yf)
    np.testing.assert_array_equal(yf, y)
    np.testing.assert_array_equal(m(x), y)


def test_model_out_argument_is_validated(hinode_model):
    m = fastinv.load(hinode_model[0])
    x = np.zeros((3, 4, 112), np.float32)
    with pytest.raises(ValueError, match="shape"):
        m(x, out=np.zeros((3, 41), np.float32))
    with pytest.raises(TypeError, match="float32"):
        m(x, out=np.zeros((3, 42), np.float64))
    ro = np.zeros((3, 42), np.float32)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        m(x, out=ro)
    big = np.zeros(3 * 4 * 112 + 3 * 42, np.float32)
    xin, yout = big[: 3 * 4 * 112].reshape(3, 4, 112), big[3 * 4 * 112 - 10 :][:126].reshape(3, 42)
    with pytest.raises(ValueError, match="share memory"):
        m(xin, out=yout)
    with pytest.raises(TypeError):
        m(x, out=[[0.0] * 42] * 3)


# --------------------------------------------------------------------------------------
# StokesNet


def test_predict_matches_the_card_definition(hinode_model, hinode_profiles):
    path, net, card = hinode_model
    sn = StokesNet.load(path, instrument="hinode")
    prof = hinode_profiles["stokes"]
    got = sn.predict(prof)
    ref = reference_predict(net, card, prof)
    assert set(got) == set(ref) == {"temperature", "vlos", "B", "inclination", "azimuth"}
    assert sn.quantities == ("temperature", "vlos", "B", "inclination", "azimuth")
    for q, r in ref.items():
        g = got[q].value
        assert g.shape == (64, 7)
        assert str(got[q].unit) == {"temperature": "K", "vlos": "km / s", "B": "G"}.get(q, "deg")
        if q == "azimuth":  # compare on the circle of period 180 deg
            d = np.abs((g - r + 90) % 180 - 90)
            assert d.max() < 0.05
        else:
            np.testing.assert_allclose(g, r, rtol=1e-4, atol=1e-4 * _STD_SCALE[q])
    assert np.all((got["azimuth"].value >= 0) & (got["azimuth"].value < 180))
    assert np.all((got["inclination"].value >= 0) & (got["inclination"].value <= 180))
    assert np.all(got["B"].value >= 0)


_STD_SCALE = {"temperature": 800.0, "vlos": 2.0, "B": 500.0, "inclination": 40.0, "azimuth": 90.0, "B_los": 300.0}


def test_muisca_style_card_iv_only_blos(tmp_path, hinode_profiles):
    card = make_card(
        stokes=("I", "V"),
        outputs=["temperature", "vlos", "B_los"],
        architecture="muisca",
        nodes=list(np.round(np.arange(-2.0, 0.05, 0.1), 1)),
    )
    net, card = write_model(tmp_path / "m.safetensors", card=card, seed=2)
    sn = StokesNet.load(tmp_path / "m.safetensors")
    assert sn.input_stokes == ("I", "V") and sn.quantities == ("temperature", "vlos", "B_los")
    got = sn.predict(hinode_profiles["stokes"])
    ref = reference_predict(net, card, hinode_profiles["stokes"])
    for q in ref:
        np.testing.assert_allclose(got[q].value, ref[q], rtol=1e-4, atol=1e-4 * _STD_SCALE[q])
    assert got["B_los"].value.shape == (64, 21) and np.any(got["B_los"].value < 0)  # signed, not clipped


def test_prepare_into_buffer_and_properties(hinode_model, hinode_profiles):
    sn = StokesNet.load(hinode_model[0])
    prof = hinode_profiles["stokes"][:5]
    buf = np.empty((5, 4, 112), np.float32)
    assert sn.prepare(prof, out=buf) is buf
    np.testing.assert_allclose(buf[:, 0], prof[:, 0] - 1.0, atol=1e-7)
    np.testing.assert_allclose(buf[:, 3], prof[:, 3] * 10.0, rtol=1e-6)
    np.testing.assert_allclose(sn.wavelength.to_value("nm"), HINODE_WL / 10)
    assert list(sn.nodes) == [0.0, -0.5, -1.0, -1.5, -2.0, -2.5, -3.0]
    with pytest.raises(ValueError, match=r"\(N, 4, 112\)"):
        sn.prepare(prof[:, :, :100])


def test_nan_profile_is_flagged_not_fatal(hinode_model, hinode_profiles):
    sn = StokesNet.load(hinode_model[0])
    prof = hinode_profiles["stokes"][:6].copy()
    clean = sn.predict(prof)
    prof[2, 3, 50] = np.nan
    got, status = sn.predict(prof, return_status=True)
    assert list(status) == [0, 0, 1, 0, 0, 0]
    assert np.all(np.isnan(got["temperature"].value[2]))
    ok = [0, 1, 3, 4, 5]
    np.testing.assert_array_equal(got["temperature"].value[ok], clean["temperature"].value[ok])


@pytest.mark.parametrize(
    "mutate, match",
    [
        (lambda c: c.update(kind="fastinv.deepem"), "kind"),
        (lambda c: c.pop("nodes"), "nodes"),
        (lambda c: c.update(nodes=c["nodes"][:6]), "quantities x 6 nodes"),
        (lambda c: c.update(wavelength=c["wavelength"][:100]), r"\(4, 100\)"),
        (lambda c: c["input"].update(stokes=["I", "Q", "U", "X"]), "distinct names"),
        (
            lambda c: c.update(outputs=["temperature", "vlos", "B", "inclination", "azimuth_sin2", "vmic"]),
            "azimuth_cos2",
        ),
        (lambda c: c.update(output_std=[1.0] * 41), "output_std"),
        (lambda c: c.update(instrument="gris"), "unknown instrument"),
    ],
)
def test_bad_cards_are_clear_value_errors(tmp_path, mutate, match):
    card = make_card()
    net, _ = write_model(tmp_path / "ok.safetensors", card=card)
    bad = json.loads(json.dumps(card))
    mutate(bad)
    m = fastinv.load(tmp_path / "ok.safetensors")
    with pytest.raises(ValueError, match=match):
        StokesNet(m, bad, "bad.safetensors")


def test_load_errors(tmp_path, hinode_model, monkeypatch):
    import torch as t

    fastinv.export(t.nn.Sequential(t.nn.Conv1d(4, 2, 3)), tmp_path / "nocard.safetensors", t.zeros(1, 4, 10))
    with pytest.raises(ValueError, match="fastinv.card"):
        StokesNet.load(tmp_path / "nocard.safetensors")
    with pytest.raises(ValueError, match="not visp"):
        StokesNet.load(hinode_model[0], instrument="visp")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        StokesNet.load(tmp_path / "missing.safetensors")
    monkeypatch.setitem(network_mod._SHIPPED, "visp", "no_such_model.safetensors")
    with pytest.raises(FileNotFoundError, match="no Stokes model for visp is shipped"):
        StokesNet.load(instrument="visp")


# --------------------------------------------------------------------------------------
# resampling


def test_resampler_equals_numpy_interp():
    rng = np.random.default_rng(0)
    wl = 6300.0 + np.cumsum(rng.uniform(0.01, 0.03, 300))  # non-uniform observed grid
    model = np.linspace(wl[3] - 0.001, wl[-5], 150)
    spectra = rng.normal(size=(7, 4, wl.size)).astype(np.float32)
    got = resample_to(spectra, wl, model)
    ref = np.stack([[np.interp(model, wl, s) for s in p] for p in spectra])
    np.testing.assert_allclose(got, ref, rtol=0, atol=2e-6)
    # decreasing observed grid, spectral axis in the middle (ViSP frame layout), nm Quantity
    import astropy.units as u

    frame = np.ascontiguousarray(spectra.transpose(1, 2, 0)[:, ::-1])  # (4, nλ reversed, 7)
    got2 = resample_to(frame, (wl[::-1] / 10) * u.nm, model * u.AA, axis=1)
    np.testing.assert_allclose(got2, ref.transpose(1, 2, 0), rtol=0, atol=2e-6)
    r = Resampler(wl, wl)
    assert r.identity and np.array_equal(r(spectra), spectra)


def test_resampler_coverage_check():
    wl = np.arange(6302.4, 6318.3, 0.01625)  # a real ViSP window that misses 6301.5
    with pytest.raises(ValueError, match="covers 6302.400-.* model needs 6300.6"):
        Resampler(wl, VISP_WL)
    with pytest.raises(ValueError, match="strictly"):
        Resampler([6301.0, 6302.0, 6302.0, 6303.0], [6302.0, 6302.5])
    # half a step of slack at the ends is accepted (edge value used)
    wl = np.arange(6300.0, 6305.0, 0.1)
    r = Resampler(wl, [wl[0] - 0.04, wl[-1] + 0.04])
    assert np.allclose(r(wl), [wl[0], wl[-1]]) and r.extrapolated == (0.0, 0.0)


def test_resampler_required_window_and_edge_extrapolation(hinode_model):
    sn = StokesNet.load(hinode_model[0])
    lo, hi = sn.required_window  # the Fe I lines +- 0.4 A
    assert abs(lo - (6301.5012 - 0.4)) < 1e-9 and abs(hi - (6302.4936 + 0.4)) < 1e-9
    # an observed grid 4 pixels bluer than the model's (e.g. CRVAL1 = 6302.0 at CRPIX1 = 57)
    wl = 6302.0 + (np.arange(112) + 1 - 57) * 0.0215
    r = sn.resampler(wl)
    assert r.extrapolated[0] == 0.0 and abs(r.extrapolated[1] - (HINODE_WL[-1] - wl[-1] - 0.01075)) < 1e-9
    spectra = np.random.default_rng(2).normal(size=(3, 4, 112))
    ref = np.stack([[np.interp(HINODE_WL, wl, s) for s in p] for p in spectra])  # clamps at the edges
    np.testing.assert_allclose(r(spectra), ref, atol=2e-6)
    # but the lines themselves must be observed
    with pytest.raises(ValueError, match="needs at least 6301.101-6302.894 A"):
        sn.resampler(wl[wl < 6302.7])


# --------------------------------------------------------------------------------------
# quiet-Sun continuum


def test_quiet_sun_level_ignores_a_large_spot():
    rng = np.random.default_rng(1)
    qs = rng.normal(1000.0, 80.0, 5000)  # granulation, 8 % rms
    umbra = rng.normal(300.0, 40.0, 2500)
    penumbra = rng.normal(700.0, 60.0, 2500)
    levels = np.concatenate([qs, umbra, penumbra, [np.nan, -5.0]])
    got = quiet_sun_level(levels)
    assert abs(got - np.median(qs)) / 1000 < 0.01  # the plain median is 38 % low
    assert abs(np.nanmedian(levels) - 1000) > 100
    with pytest.raises(ValueError, match="finite, positive"):
        quiet_sun_level([np.nan, 0.0])


def test_continuum_wavelengths_avoid_the_lines(hinode_profiles):
    i = hinode_profiles["stokes"][:, 0]
    idx = continuum_wavelengths(i)
    wl = HINODE_WL[idx]
    # Fe I 6301.50, 6302.49 and the telluric O2 lines are not in the synthesis; the chosen
    # points are at least 0.25 A from the iron lines
    assert len(idx) == 17
    assert np.min(np.abs(wl[:, None] - np.array([6301.5012, 6302.4936])[None])) > 0.25
    lev = continuum_levels(i * 2500.0, idx)
    np.testing.assert_allclose(lev, 2500.0 * i[:, idx].mean(axis=1), rtol=1e-6)
