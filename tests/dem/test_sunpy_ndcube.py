"""sunpy in, ndcube out: AIA input as sunpy Maps or a MapSequence reads as the FITS files do, and
``BPResult.to_ndcube()`` keeps the input's celestial coordinates (checked against sunpy's own
Map of the 171 A file), the log T grid, the Monte-Carlo errors and the status."""

from __future__ import annotations

import astropy.units as u
import numpy as np
import pytest
from fastinv import datasets
from fastinv.dem import BasisPursuit
from fastinv.dem.io import read_aia
from fastinv.dem.pipelines import run_bp, run_deepem

sunpy_map = pytest.importorskip("sunpy.map")
ndcube = pytest.importorskip("ndcube")

pytestmark = pytest.mark.filterwarnings("ignore::astropy.io.fits.verify.VerifyWarning")


@pytest.fixture(scope="module")
def files():
    return datasets.aia_flare_files()


def test_maps_and_map_sequence_read_as_files(files):
    ref = read_aia(files)
    maps = sunpy_map.Map([str(p) for p in files])
    for inputs in (maps[::-1], sunpy_map.Map([str(p) for p in files], sequence=True)):
        obs = read_aia(inputs)
        assert np.array_equal(obs.data, ref.data, equal_nan=True)
        assert np.array_equal(obs.exptime, ref.exptime)
        for key in ("CRPIX1", "CRPIX2", "CRVAL1", "CRVAL2", "CDELT1", "CDELT2", "CTYPE1", "T_OBS"):
            assert obs.header[key] == ref.header[key], key


def test_bp_result_to_ndcube(files, tmp_path):
    res = run_bp(files, tmp_path / "dem.fits", errors=4, seed=1, progress=False)
    cube = res.to_ndcube()
    assert isinstance(cube, ndcube.NDCube) and cube.unit == u.cm**-5
    failed = res.status != 0
    assert np.array_equal(cube.mask, np.broadcast_to(failed, res.em.shape))
    assert np.array_equal(cube.data[:, ~failed], res.em[:, ~failed]) and np.isnan(cube.data[:, failed]).all()
    assert np.array_equal(cube.uncertainty.array[:, ~failed], res.em_err[:, ~failed], equal_nan=True)
    assert type(cube.uncertainty).__name__ == "StdDevUncertainty"
    # celestial coordinates of a pixel: the cube's WCS and sunpy's Map of the 171 A image agree
    m171 = sunpy_map.Map(str(files[2]))
    x, y = 40, 12
    world = cube.wcs.pixel_to_world(x, y, 3)
    sky = next(w for w in world if hasattr(w, "Tx"))
    want = m171.pixel_to_world(x * u.pix, y * u.pix)
    assert abs(sky.Tx - want.Tx) < 1e-6 * u.arcsec and abs(sky.Ty - want.Ty) < 1e-6 * u.arcsec
    logt_axis = next(w for w in world if not hasattr(w, "Tx"))
    assert np.isclose(float(np.asarray(getattr(logt_axis, "value", logt_axis))), res.logt[3])
    temperature = cube.extra_coords["temperature"].wcs.pixel_to_world(np.arange(res.logt.size))
    assert u.allclose(temperature, 10**res.logt * u.K)
    # slicing (a sunpy user's first move) keeps the coordinates of the pixels kept
    sub = cube[2:5, 10:20, 30:45]
    sky_sub = next(w for w in sub.wcs.pixel_to_world(x - 30, y - 10, 1) if hasattr(w, "Tx"))
    assert abs(sky_sub.Tx - want.Tx) < 1e-6 * u.arcsec
    assert sub.uncertainty.array.shape == (3, 10, 15) and sub.mask.shape == (3, 10, 15)


def test_deepem_and_plain_results_to_ndcube(files, tmp_path):
    res, _ = run_deepem(files, tmp_path / "deepem.fits")
    cube = res.to_ndcube()
    assert cube.uncertainty is None and cube.data.shape == (res.logt.size, 67, 67)
    obs = read_aia(files)
    plain = BasisPursuit().solve(obs.data, exptime=obs.exptime)
    with pytest.raises(ValueError, match="no WCS header"):
        plain.to_ndcube()
    assert plain.to_ndcube(obs.header).data.shape == (21, 67, 67)
    bad = BasisPursuit(logt=[5.5, 5.6, 5.8, 6.1]).solve(obs.data[:, :2, :2], exptime=obs.exptime)
    with pytest.raises(ValueError, match="uniform log T grid"):
        bad.to_ndcube(obs.header)
