"""Level-2 results as a dkist.Inversion ASDF file, read back by the dkist package's own reader
(``dkist.load_dataset``): quantities, units, celestial coordinates, status mask, profiles."""

from __future__ import annotations

import astropy.units as u
import numpy as np
import pytest
from astropy.wcs import WCS
from fastinv.stokes.inversion.dkist_asdf import write_inversion_asdf
from fastinv.stokes.inversion.output import write_inversion_fits

dkist = pytest.importorskip("dkist")
ndcube = pytest.importorskip("ndcube")

UNITS = {"temperature": "K", "vlos": "km/s", "B": "G", "inclination": "deg", "azimuth": "deg"}
NAMES = {"temperature": "temperature", "vlos": "velocity", "B": "mag_strength"}
NAMES.update(inclination="mag_inclination", azimuth="mag_azimuth")


@pytest.fixture
def level2(tmp_path):
    rng = np.random.default_rng(3)
    nodes, ny, nx = np.array([-2.0, -1.0, 0.0]), 7, 5
    results = {q: rng.random((nodes.size, ny, nx)).astype(np.float32) * 100 for q in UNITS}
    status = np.zeros((ny, nx), np.uint8)
    status[2, 3] = 1
    w = WCS(naxis=2)
    w.wcs.ctype = ["HPLN-TAN", "HPLT-TAN"]
    w.wcs.cunit = ["arcsec", "arcsec"]
    w.wcs.cdelt = [0.3, 0.15]
    w.wcs.crpix = [3.0, 4.0]
    w.wcs.crval = [120.0, -340.0]
    path = write_inversion_fits(tmp_path / "l2.fits", results, status, nodes, UNITS, w)
    return path, results, status, nodes, w


# without profiles dkist's reader cannot convert the empty collection (it warns, and returns it
# as a dict): the quantities load, slicing the whole Inversion does not (module docstring)
@pytest.mark.filterwarnings("ignore:A node failed to convert")
def test_asdf_round_trips_through_dkist(level2, tmp_path):
    fits_path, results, status, nodes, w = level2
    out = write_inversion_asdf(tmp_path / "l2.asdf", fits_path)
    inv = dkist.load_dataset(out)
    assert type(inv).__name__ == "Inversion"
    assert set(inv.keys()) == set(NAMES.values()) | {"optical_depth"}
    for q, name in NAMES.items():
        cube = inv[name]
        assert np.array_equal(np.asarray(cube.data), results[q]) and cube.unit == u.Unit(UNITS[q])
        assert np.array_equal(np.asarray(cube.mask), np.broadcast_to(status != 0, results[q].shape))
    assert np.array_equal(np.asarray(inv["optical_depth"].data)[:, 4, 2], nodes)
    # celestial coordinates of pixel (x=4, y=6) as the input WCS has them
    world = inv["temperature"].wcs.pixel_to_world(4, 6, 0)
    sky = next(c for c in world if hasattr(c, "Tx"))
    want = w.pixel_to_world(4, 6)
    assert abs(sky.Tx - want.Tx) < 1e-6 * u.arcsec and abs(sky.Ty - want.Ty) < 1e-6 * u.arcsec
    assert inv.meta["inventory"]["level2_fits"] == "l2.fits" and "ORIGIN" in inv.meta["headers"].colnames


# dkist 1.18's reader turns the empty profiles collection into a dict (ProfilesConverter reads
# the aligned_axes an empty NDCollection does not write) and Inversion.__getitem__ asks every
# profile for its .wcs: the whole Inversion cannot be sliced, while each cube can. Null or
# absent profiles are no way out (the schema refuses null, InversionConverter reads
# node["profiles"]); the writer cannot make profiles up, so a file that slices needs
# observed= (test below). Strict: when dkist fixes this, this test fails and the note goes.
@pytest.mark.filterwarnings("ignore:A node failed to convert")
@pytest.mark.xfail(strict=True, raises=AttributeError, reason="dkist 1.18 cannot slice an Inversion without profiles")
def test_asdf_without_profiles_slices(level2, tmp_path):
    fits_path, results, *_ = level2
    inv = dkist.load_dataset(write_inversion_asdf(tmp_path / "l2.asdf", fits_path))
    assert np.array_equal(np.asarray(inv["temperature"][:, 2:5, 1:3].data), results["temperature"][:, 2:5, 1:3])
    sub = inv[:, 2:5, 1:3]
    assert np.array_equal(np.asarray(sub["temperature"].data), results["temperature"][:, 2:5, 1:3])


def test_asdf_with_profiles_slices(level2, tmp_path):
    fits_path, results, status, nodes, w = level2
    pw = WCS(naxis=4)
    pw.wcs.ctype = ["HPLN-TAN", "HPLT-TAN", "AWAV", "STOKES"]
    pw.wcs.cunit = ["arcsec", "arcsec", "Angstrom", ""]
    pw.wcs.cdelt, pw.wcs.crpix, pw.wcs.crval = [0.3, 0.15, 0.02, 1], [3, 4, 1, 1], [120, -340, 6301.0, 1]
    prof = ndcube.NDCube(np.random.default_rng(0).random((4, 11, 7, 5)), wcs=pw)
    out = write_inversion_asdf(tmp_path / "l2p.asdf", fits_path, profiles={"FeI630_orig": prof})
    inv = dkist.load_dataset(out)
    assert np.array_equal(np.asarray(inv.profiles["FeI630_orig"].data), prof.data)
    sub = inv[:, 2:5, 1:3]
    assert np.array_equal(np.asarray(sub["temperature"].data), results["temperature"][:, 2:5, 1:3])


def test_not_a_level2_file(tmp_path):
    from astropy.io import fits

    bad = tmp_path / "x.fits"
    fits.PrimaryHDU(np.zeros((2, 2))).writeto(bad)
    with pytest.raises(ValueError, match="x.fits: not a fastinv level-2 file"):
        write_inversion_asdf(tmp_path / "x.asdf", bad)


def test_asdf_with_me_fits_round_trips(level2, tmp_path):
    """The ME inversion's fitted profiles (MEResult.fit) as <line>_fit next to the observed
    <line>_orig: read back by dkist equal to what was written, the fits equal to the forward
    model re-run on the fitted parameters, the spectral axis the instrument's grid."""
    from fastinv.stokes import ME_PARAMETERS, Instrument, MEInversion

    fits_path, results, status, nodes, w = level2
    ny, nx = status.shape
    inst = Instrument.hinode_sp()
    inv = MEInversion(instrument=inst)
    rng = np.random.default_rng(5)
    truth = dict(
        B=rng.uniform(100, 2500, (ny, nx)),
        inclination=rng.uniform(10, 170, (ny, nx)),
        azimuth=rng.uniform(0, 180, (ny, nx)),
        vlos=rng.uniform(-2, 2, (ny, nx)),
        doppler_width=np.full((ny, nx), 30.0),
        damping=np.full((ny, nx), 0.2),
        eta0=np.full((ny, nx), 10.0),
        S0=np.full((ny, nx), 0.2),
        S1=np.full((ny, nx), 0.8),
    )
    clean = inv.model.synthesize({k: v.ravel() for k, v in truth.items()}, add_noise=False).reshape(ny, nx, 4, -1)
    observed = clean + 1e-3 * rng.standard_normal(clean.shape)
    res = inv.invert(observed, sigma=1e-3, fit=True, threads=1)
    assert res.fit.shape == observed.shape
    # independent check of the fit: the forward model on the fitted parameters
    again = inv.model.synthesize({k: res.parameters[k].value.ravel() for k in ME_PARAMETERS}, add_noise=False).reshape(
        observed.shape
    )
    np.testing.assert_allclose(res.fit, again, rtol=0, atol=1e-6)
    assert np.sqrt(np.mean((res.fit - observed) ** 2)) < 1.5e-3  # residuals at the noise

    out = write_inversion_asdf(
        tmp_path / "me.asdf", fits_path, observed=observed, fit=res.fit, wavelength=inv.wavelength, line="FeI630"
    )
    back = dkist.load_dataset(out)
    assert set(back.profiles.keys()) == {"FeI630_orig", "FeI630_fit"}
    orig, fit = back.profiles["FeI630_orig"], back.profiles["FeI630_fit"]
    assert np.array_equal(np.asarray(orig.data), observed.transpose(0, 1, 3, 2))
    assert np.array_equal(np.asarray(fit.data), res.fit.transpose(0, 1, 3, 2))
    assert np.array_equal(np.asarray(fit.mask)[:, :, 0, 0], status != 0)
    # world coordinates of pixel (y=6, x=4, wavelength 17, Stokes V)
    world = fit.wcs.pixel_to_world(3, 17, 4, 6)
    spec = next(c for c in world if getattr(c, "unit", None) is not None and c.unit.physical_type == "length")
    assert abs(spec.to_value(u.AA) - inv.wavelength[17]) < 1e-6
    sky = next(c for c in world if hasattr(c, "Tx"))
    want = w.pixel_to_world(4, 6)
    assert abs(sky.Tx - want.Tx) < 1e-6 * u.arcsec and abs(sky.Ty - want.Ty) < 1e-6 * u.arcsec
    sub = back[:, 2:5, 1:3]  # the Inversion slices with its profiles attached
    assert np.array_equal(np.asarray(sub["temperature"].data), results["temperature"][:, 2:5, 1:3])


def test_asdf_profile_errors(level2, tmp_path):
    fits_path, results, status, nodes, w = level2
    wl = 6301.0 + 0.02 * np.arange(11)
    prof = np.zeros((7, 5, 4, 11))
    with pytest.raises(ValueError, match="need the observed profiles too"):
        write_inversion_asdf(tmp_path / "a.asdf", fits_path, fit=prof, wavelength=wl)
    with pytest.raises(ValueError, match=r"needs \(ny, nx, 4, n_wavelength\) = \(7, 5, 4, 11\)"):
        write_inversion_asdf(tmp_path / "a.asdf", fits_path, observed=prof[:, :4], wavelength=wl)
    with pytest.raises(ValueError, match="evenly spaced"):
        write_inversion_asdf(tmp_path / "a.asdf", fits_path, observed=prof, wavelength=wl**1.5)
    assert not (tmp_path / "a.asdf").exists()
