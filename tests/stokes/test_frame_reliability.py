"""FrameInverter under hostile use: bad physical arguments on every call path, wavelength
grids that look alike, and one inverter shared by threads.

References: a fresh FrameInverter per frame (no cache, no sharing) and the single-threaded
result, compared bitwise.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from _stokes_files import hinode_true_counts, write_hinode_map  # noqa: E402
from _stokes_models import make_card, write_model  # noqa: E402
from fastinv.cli import main  # noqa: E402
from fastinv.stokes import FrameInverter, invert_files  # noqa: E402

pytest_plugins = ["_stokes_fixtures"]  # session fixture visp_raw

IC = 30000.0


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    d = tmp_path_factory.mktemp("models")
    write_model(d / "visp.safetensors", card=make_card(instrument="visp"), seed=12)
    write_model(d / "hinode.safetensors", seed=11)
    return d


@pytest.fixture(scope="module")
def frames():
    rng = np.random.default_rng(3)
    wl = 6302.0 + (np.arange(400) - 199.5) * 0.01625
    base = IC * (1 + 0.01 * rng.standard_normal((4, 400, 300)))
    base[1:] *= 0.01
    base[3] += 0.05 * IC * np.sin(np.arange(400) / 10)[:, None]  # structure the resampling sees
    return wl, [base * (1 + 0.1 * k) for k in range(8)]


BAD_CONTINUUM = [-5.0, 0.0, float("nan"), float("inf")]


@pytest.mark.parametrize("bad", BAD_CONTINUUM)
def test_continuum_is_validated_on_every_path(tmp_path, model, frames, bad, capsys):
    wl, fr = frames
    inv = FrameInverter(model / "visp.safetensors", "visp")
    with pytest.raises(ValueError, match="continuum must be a positive number"):
        FrameInverter(model / "visp.safetensors", "visp", continuum=bad)
    with pytest.raises(ValueError, match="continuum must be a positive number"):
        inv.invert_frame(fr[0], wavelength=wl, continuum=bad)
    paths, _ = write_hinode_map(tmp_path / "sp", hinode_true_counts(2, 3, IC))
    with pytest.raises(ValueError, match="continuum must be a positive number"):
        invert_files(paths, "hinode", model=model / "hinode.safetensors", continuum=bad)
    out = tmp_path / "map.fits"
    rc = main(
        ["stokes", "invert", *paths, "--instrument", "hinode", "-o", str(out), "--continuum", str(bad), "-q"]
        + ["--model", str(model / "hinode.safetensors")]
    )
    assert rc == 1 and "continuum must be a positive number" in capsys.readouterr().err
    assert not out.exists()
    with pytest.raises(TypeError, match="continuum must be a number"):
        inv.invert_frame(fr[0], wavelength=wl, continuum="bright")
    # a valid value given per call equals the same value given to the constructor
    a = inv.invert_frame(fr[0], wavelength=wl, continuum=IC)
    b = FrameInverter(model / "visp.safetensors", "visp", continuum=IC).invert_frame(fr[0], wavelength=wl)
    np.testing.assert_array_equal(a.results["temperature"], b.results["temperature"])


def test_watch_arguments_are_validated(tmp_path, model):
    inv = FrameInverter(model / "visp.safetensors", "visp")
    for kw, word in [
        (dict(poll=0), "poll"),
        (dict(poll=float("nan")), "poll"),
        (dict(timeout=-1), "timeout"),
        (dict(settle=-1), "settle"),
        (dict(max_frames=0), "max_frames"),
    ]:
        with pytest.raises(ValueError, match=word):
            next(iter(inv.watch(tmp_path, **kw)))


def test_resampler_cache_compares_grids_exactly(model, frames):
    wl, fr = frames
    # same length, end points and sum as wl, different inside
    other = wl.copy()
    other[150:200] += 0.004  # inside the model's window, on both sides of the line
    other[200:250] -= 0.004
    assert other.size == wl.size and other[0] == wl[0] and other[-1] == wl[-1] and other.sum() == wl.sum()
    inv = FrameInverter(model / "visp.safetensors", "visp", continuum=IC)
    inv.invert_frame(fr[0], wavelength=wl)
    got = inv.invert_frame(fr[1], wavelength=other)
    fresh = FrameInverter(model / "visp.safetensors", "visp", continuum=IC).invert_frame(fr[1], wavelength=other)
    for q in got.results:
        np.testing.assert_array_equal(got.results[q], fresh.results[q])


def test_shared_inverter_is_thread_safe(model, frames):
    wl, fr = frames
    shared = FrameInverter(model / "visp.safetensors", "visp")
    expected = [shared.invert_frame(f, wavelength=wl) for f in fr]
    results: dict = {}
    errors: list = []

    def work(t):
        try:
            for rep in range(10):
                k = (t + rep) % len(fr)
                results[(t, rep)] = (k, shared.invert_frame(fr[k], wavelength=wl))
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(results) == 80
    for k, r in results.values():
        assert r.continuum == expected[k].continuum
        np.testing.assert_array_equal(r.status, expected[k].status)
        for q in r.results:
            np.testing.assert_array_equal(r.results[q], expected[k].results[q])


def _refused(capsys, argv, words, files) -> None:
    import hashlib

    before = [hashlib.sha256(open(p, "rb").read()).hexdigest() for p in files]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert words in err, err
    assert [hashlib.sha256(open(p, "rb").read()).hexdigest() for p in files] == before


def test_stokes_commands_refuse_to_destroy_files(tmp_path, capsys):
    paths, _ = write_hinode_map(tmp_path / "sp", hinode_true_counts(2, 3, 30000.0))
    base = ["stokes", "invert", *paths, "--instrument", "hinode", "-q"]
    _refused(capsys, [*base, "-o", paths[1]], "also an input", paths)
    _refused(capsys, [*base, "-o", str(tmp_path / "m.fits"), "--png", paths[0]], "also an input", paths)
    _refused(capsys, [*base[:2], str(tmp_path / "sp"), *base[-3:], "-o", paths[0]], "also an input", paths)
    existing = tmp_path / "set.h5"
    existing.write_bytes(b"x")
    rc = main(["stokes", "synth", "--n", "2", "--model", "me", "-o", str(existing), "--quiet"])
    assert rc == 1 and "exists" in capsys.readouterr().err and existing.read_bytes() == b"x"


def test_missing_hinode_slit_leaves_a_flagged_column(tmp_path, model):
    from astropy.io import fits
    from fastinv._warnings import FastinvUserWarning

    true = hinode_true_counts(5, 4, IC, seed=4)
    paths, _ = write_hinode_map(tmp_path / "sp", true)
    full = invert_files(paths, "hinode", model=model / "hinode.safetensors", continuum=IC)
    with pytest.warns(FastinvUserWarning, match="1 of 5 slit positions have no file"):
        gap = invert_files(paths[:2] + paths[3:], "hinode", model=model / "hinode.safetensors", continuum=IC)
    assert gap.status.shape == full.status.shape == (4, 5)
    assert (gap.status[:, 2] == 3).all() and (gap.status[:, [0, 1, 3, 4]] == 0).all()
    for q in full.results:
        assert np.isnan(gap.results[q][:, :, 2]).all()
        np.testing.assert_array_equal(gap.results[q][:, :, [0, 1, 3, 4]], full.results[q][:, :, [0, 1, 3, 4]])
    # the WCS of the gapped map puts every column where the complete map has it
    x = np.arange(5.0)
    for a, b in zip(gap.wcs.pixel_to_world_values(x, x * 0 + 1), full.wcs.pixel_to_world_values(x, x * 0 + 1)):
        np.testing.assert_allclose(a, b, atol=1e-9)
    # and the same from XCEN/XSCALE alone
    for p in paths:
        with fits.open(p, mode="update") as hdul:
            del hdul[0].header["SLITINDX"]
    with pytest.warns(FastinvUserWarning, match="no file"):
        gap2 = invert_files(paths[:2] + paths[3:], "hinode", model=model / "hinode.safetensors", continuum=IC)
    np.testing.assert_array_equal(gap2.status, gap.status)


@pytest.mark.parametrize(
    "key, value, words",
    [
        ("SPBSHFT", 64, "outside the allowed range"),
        ("SPBSHFT", 2**31, "outside the allowed range"),
        ("SPBSHFT", -1e308, "outside the allowed range"),
        ("SPBSHFT", True, "is not a number"),
        ("SPBSHFT", "2", "is not a number"),
        ("CDELT1", "0.02", "is not a number"),
        ("SLITINDX", 1.5, "is not a whole number"),
    ],
)
def test_hinode_keywords_are_checked(tmp_path, model, key, value, words):
    from astropy.io import fits
    from fastinv.stokes.io.hinode import read_hinode_slit

    paths, _ = write_hinode_map(tmp_path / "sp", hinode_true_counts(2, 3, IC))
    with fits.open(paths[1], mode="update") as hdul:
        hdul[0].header[key] = value
    with pytest.raises(ValueError, match=words) as exc:
        read_hinode_slit(paths[1]) if key != "SLITINDX" else invert_files(paths, "hinode", continuum=IC)
    assert paths[1] in str(exc.value) and key in str(exc.value)


def test_watch_survives_bad_files_and_records_them(tmp_path, model, visp_raw):
    import os
    import shutil
    import warnings

    from _stokes_files import copy_files, fill_visp, visp_true_counts
    from astropy.io import fits

    pytest.importorskip("dkist_data_simulator")
    true = visp_true_counts(3, 12, ic=IC, seed=7)
    true[1] = np.nan  # an all-NaN step: inverted (status 1 everywhere), written, not fatal
    which = fill_visp(copy_files(visp_raw, tmp_path / "src"), true)
    incoming, out = tmp_path / "incoming", tmp_path / "out"
    incoming.mkdir()
    for (step, st), p in which.items():
        if step < 2 or st > 0:  # step 2 lacks its Stokes I file ...
            shutil.copy(p, incoming / os.path.basename(p))
    raw = open(which[(2, 0)], "rb").read()
    (incoming / "step2_I_cut.fits").write_bytes(raw[: len(raw) // 2])  # ... which arrives truncated for good
    shutil.copy(which[(0, 3)], incoming / "duplicate.fits")
    fits.PrimaryHDU(np.zeros((2, 2)), header=fits.Header({"INSTRUME": "SOT/SP"})).writeto(incoming / "foreign.fits")
    inv = FrameInverter(model / "visp.safetensors", "visp")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = list(inv.watch(incoming, timeout=1.5, poll=0.02, settle=0.3, output_dir=out))
    assert [r.step for r in got] == [0, 1], [f["reason"][:150] for f in inv.watch_failures]
    assert (got[1].status == 1).all() and np.isnan(got[1].continuum)
    assert sorted(os.listdir(out)) == ["step_00000.fits", "step_00001.fits"]
    reasons = {os.path.basename(f["paths"][0]): f["reason"] for f in inv.watch_failures}
    assert set(reasons) == {"step2_I_cut.fits", "duplicate.fits", "foreign.fits"}, reasons
    assert "not a readable FITS file" in reasons["step2_I_cut.fits"] and "truncated" in reasons["step2_I_cut.fits"]
    assert "same raster step and Stokes" in reasons["duplicate.fits"]
    assert "not DKIST ViSP" in reasons["foreign.fits"]
    assert sum("skipped" in str(w.message) for w in caught) == 3


def test_watch_removed_directory_is_an_error(tmp_path, model):
    import shutil

    d = tmp_path / "incoming"
    d.mkdir()
    inv = FrameInverter(model / "visp.safetensors", "visp")
    with pytest.raises(FileNotFoundError, match="was removed"):
        list(inv.watch(d, timeout=30, poll=0.01, stop=lambda: bool(shutil.rmtree(d))))
