"""AIA pipeline on the bundled real cutouts: reading, binning, FITS/PNG output, CLI, errors."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from astropy.io import fits
from fastinv import datasets
from fastinv.cli import main
from fastinv.dem import BasisPursuit
from fastinv.dem.io import read_aia
from fastinv.dem.pipelines import run_bp

# our own test files copy AIA headers (BLANK on float data): astropy's warning is expected
pytestmark = pytest.mark.filterwarnings("ignore::astropy.io.fits.verify.VerifyWarning")

CHANNELS = (94, 131, 171, 193, 211, 335)


@pytest.fixture(scope="module")
def files():
    return datasets.aia_flare_files()


def _raw(path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with fits.open(path) as h:
            return h[0].data.astype(np.float64), h[0].header.copy()


def test_read_any_order_and_normalise(files):
    obs = read_aia(list(reversed(files)))
    assert obs.data.shape == (6, 67, 67)
    for c, (chan, f) in enumerate(zip(CHANNELS, files)):
        data, hdr = _raw(f)
        assert hdr["WAVELNTH"] == chan
        np.testing.assert_allclose(obs.data[c], data / hdr["EXPTIME"], rtol=1e-15)
        assert obs.exptime[c] == hdr["EXPTIME"]
    assert obs.header["CTYPE1"] == "HPLN-TAN"


def test_binning(files):
    obs = read_aia(files, bin=4)
    full = read_aia(files)
    assert obs.data.shape == (6, 16, 16) and obs.n_sample == 16.0
    assert read_aia(files, bin=2, presummed=16).n_sample == 64.0
    np.testing.assert_allclose(obs.data[2, 1, 2], full.data[2, 4:8, 8:12].mean(), rtol=1e-14)
    assert obs.header["CDELT1"] == pytest.approx(4 * full.header["CDELT1"])
    # the world coordinate of a binned pixel centre is that of its 4x4 block's centre
    from astropy.wcs import WCS

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        w1, w4 = WCS(full.header), WCS(obs.header)
    a = w4.pixel_to_world_values(2, 1)
    b = w1.pixel_to_world_values(9.5, 5.5)
    np.testing.assert_allclose(a, b, atol=1e-9)


def test_input_errors(files, tmp_path):
    with pytest.raises(ValueError, match="missing"):
        read_aia(files[:5])
    with pytest.raises(ValueError, match="twice"):
        read_aia(files + [files[0]])
    data, hdr = _raw(files[0])
    bad = tmp_path / "zero_exp.fits"
    h = hdr.copy()
    h["EXPTIME"] = 0.0
    fits.writeto(bad, data.astype(np.float32), h)
    with pytest.raises(ValueError, match="EXPTIME"):
        read_aia([bad] + files[1:])
    small = tmp_path / "small.fits"
    fits.writeto(small, data[:10, :10].astype(np.float32), hdr)
    with pytest.raises(ValueError, match="same shape"):
        read_aia([small] + files[1:])
    other = tmp_path / "hmi.fits"
    h = hdr.copy()
    h["TELESCOP"] = "SDO/HMI"
    h["INSTRUME"] = "HMI_FRONT2"
    fits.writeto(other, data.astype(np.float32), h)
    with pytest.raises(ValueError, match="not SDO/AIA"):
        read_aia([other] + files[1:])
    with pytest.raises(FileNotFoundError):
        read_aia(["/nonexistent.fits"] + files[1:])


def test_rice_compressed_and_nan_pixels(files, tmp_path):
    out = []
    for f in files:
        data, hdr = _raw(f)
        if hdr["WAVELNTH"] == 193:
            data[5, 7] = np.nan
        p = tmp_path / f"rice_{hdr['WAVELNTH']}.fits"
        fits.HDUList(
            [
                fits.PrimaryHDU(),
                fits.CompImageHDU(data.astype(np.float32), hdr, compression_type="RICE_1", quantize_level=-0.01),
            ]
        ).writeto(p)
        out.append(p)
    obs = read_aia(out)
    assert np.isnan(obs.data[3, 5, 7])
    r = BasisPursuit().solve(obs.data, exptime=obs.exptime)
    assert r.status[5, 7] == 12
    assert np.sum(r.status == 12) == 1


def test_map_like_inputs(files):
    """sunpy Maps (anything with .data and .meta) are read like files."""

    class FakeMap:
        def __init__(self, path):
            self.data, hdr = _raw(path)
            self.meta = dict(hdr)
            self.name = str(path)

    obs_maps = read_aia([FakeMap(f) for f in files])
    obs_files = read_aia(files)
    np.testing.assert_array_equal(obs_maps.data, obs_files.data)
    np.testing.assert_array_equal(obs_maps.exptime, obs_files.exptime)


def test_pipeline_fits_png_and_cli(files, tmp_path):
    out = tmp_path / "dem.fits"
    png = tmp_path / "dem.png"
    res = run_bp(files, out, png=png, progress=False, chunk_rows=10, keep_coeffs=True)
    direct = BasisPursuit().solve(read_aia(files).data, exptime=read_aia(files).exptime)
    # solving in row chunks = one call (same optima; warm-start paths differ, so the
    # coefficients of degenerate optima may too)
    np.testing.assert_array_equal(res.status, direct.status)
    np.testing.assert_allclose(res.objective, direct.objective, rtol=1e-9)
    assert res.coeffs.shape == direct.coeffs.shape and res.em.dtype == np.float32
    with fits.open(out) as h:
        em = h[0].data
        hdr = h[0].header
        assert em.shape == (21, 67, 67) and hdr["BUNIT"] == "cm-5"
        assert hdr["CTYPE3"] == "LOG10T" and hdr["CRVAL3"] == 5.5 and hdr["CDELT3"] == 0.1
        assert hdr["FI_RESP"] == "aia_v10_eve" and hdr["FI_WIDTH"] == "0.1,0.2,0.6"
        assert hdr["FI_TOLF"] == 1.4
        np.testing.assert_array_equal(h["STATUS"].data, res.status)
        ok = res.status == 0
        assert 0 < np.count_nonzero(~ok)  # this frame has failed pixels: the NaN rule is exercised
        np.testing.assert_allclose(em[:, ok], res.em[:, ok].astype(np.float32))
        # missing data never looks like physics: every product of a failed pixel is NaN
        for name, arr in (
            ("EM", em),
            ("EM_TOTAL", h["EM_TOTAL"].data),
            ("LOGT_EM", h["LOGT_EM"].data),
            ("CHI2", h["CHI2"].data),
        ):
            assert np.isnan(arr[..., ~ok]).all(), name
            if name != "LOGT_EM":  # (undefined for a solved pixel whose EM is all zero)
                assert np.isfinite(arr[..., ok]).all(), name
        np.testing.assert_allclose(h["EM_TOTAL"].data[ok], res.total_em[ok], rtol=1e-6)
        assert any("NaN (undefined) where STATUS != 0" in str(c) for c in hdr["COMMENT"])
        np.testing.assert_allclose(h["LOGT"].data, res.logt)
        _, ref = _raw(files[2])
        for k in ("CTYPE1", "CRPIX1", "CDELT2", "CRVAL2", "DATE-OBS"):
            assert hdr[k] == ref[k]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp files left
    # fraction solved on this flare frame (adaptive tolfac)
    assert np.mean(res.status == 0) > 0.95
    # the CLI gives the same result
    out2 = tmp_path / "cli.fits"
    assert main(["dem", "bp", *map(str, files), "-o", str(out2), "--bin", "1", "--threads", "1", "-q"]) == 0
    with fits.open(out2) as h:
        np.testing.assert_array_equal(h[0].data, em)  # NaN where failed in both
    assert main(["dem", "bp", *map(str, files[:3]), "-o", str(out2), "-q"]) == 1


def test_datasets_verify(tmp_path, monkeypatch):
    assert [int(p.name[-8:-5]) for p in datasets.aia_flare_files()] == list(CHANNELS)
    with pytest.raises(ValueError, match="unknown slot"):
        datasets.aia_flare_files("2011-02-15T03-00")
    with pytest.raises(ValueError, match="pinned"):
        datasets.demregpy_file("demregpy/__init__.py")
    # a corrupted cached file is detected and re-extracted from the verified wheel
    try:
        path = datasets.demregpy_file("demregpy/data/aia_tresp_en.dat")
    except OSError as exc:
        pytest.skip(f"demregpy wheel not obtainable: {exc}")
    good = path.read_bytes()
    path.write_bytes(b"corrupt")
    assert datasets.demregpy_file("demregpy/data/aia_tresp_en.dat").read_bytes() == good


def test_datasets_download_fallback_to_pip(tmp_path, monkeypatch):
    """With direct HTTPS blocked, the wheel comes through `pip download`, then is verified."""
    import urllib.request

    def blocked(*args, **kwargs):
        raise OSError("blocked for this test")

    monkeypatch.setenv("FASTINV_DATA_DIR", str(tmp_path))
    monkeypatch.setattr(urllib.request, "urlopen", blocked)
    try:
        wheel = datasets.demregpy_wheel()
    except OSError as exc:
        pytest.skip(f"no network: {exc}")
    assert wheel.parent == tmp_path
    assert datasets._sha256(wheel) == datasets.DEMREGPY_WHEEL_SHA256
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".part")]
