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
