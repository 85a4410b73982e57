"""Hinode SP and DKIST ViSP level-1 readers: round trips through files in the real layouts
(the reader returns what was written, within the integer quantisation), and the errors."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits
from fastinv.stokes.io.hinode import read_hinode_slit, sort_slits
from fastinv.stokes.io.visp import group_visp_files, read_visp_header, read_visp_step

pytest.importorskip("dkist_data_simulator")

pytest_plugins = ["_stokes_fixtures"]  # session fixture visp_raw

from _stokes_files import (  # noqa: E402
    copy_files,
    fill_visp,
    hinode_true_counts,
    visp_true_counts,
    visp_wavelength,
    write_hinode_map,
)

N_STEPS, N_SLIT = 3, 12


@pytest.fixture(scope="module")
def visp_true():
    return visp_true_counts(N_STEPS, N_SLIT, ic=12000.0, seed=5)


# --------------------------------------------------------------------------------------
# Hinode SP


@pytest.mark.parametrize("spbshft, ic", [(0, 45000.0), (3, 90000.0), (1, 80000.0)])
def test_hinode_round_trip_wraparound_and_bitshift(tmp_path, spbshft, ic):
    true = hinode_true_counts(3, 10, ic, seed=spbshft)
    paths, expected = write_hinode_map(tmp_path, true, spbshft=spbshft)
    raw = fits.getdata(paths[0])
    assert raw.dtype.kind == "i" and raw.shape == (4, 10, 112)
    assert (raw[0] < 0).any()  # bright I is stored wrapped: the correction is exercised
    for x, p in enumerate(paths):
        slit = read_hinode_slit(p)
        assert slit.stokes.dtype == np.float32 and slit.stokes.shape == (4, 10, 112)
        np.testing.assert_array_equal(slit.stokes, expected[x].astype(np.float32))
        # within the quantisation of the stored integers (doubled parameters: 1 count)
        tol = np.where(
            np.arange(4) < 1,
            1.0 if spbshft >= 1 else 0.5,
            np.where(np.arange(4) == 3, 1.0 if spbshft >= 2 else 0.5, 1.0 if spbshft >= 3 else 0.5),
        )
        assert np.all(np.abs(slit.stokes - true[x]).max(axis=(1, 2)) <= tol + 1e-3)
        np.testing.assert_allclose(slit.wavelength, 6302.08 + (np.arange(112) - 55.5) * 0.0215, atol=1e-9)


def test_hinode_slits_sorted_by_slitindx_and_duplicates_rejected(tmp_path):
    true = hinode_true_counts(4, 3, 30000.0)
    paths, _ = write_hinode_map(tmp_path, true)
    headers = [fits.getheader(p) for p in paths]
    shuffled = [3, 0, 2, 1]
    order = sort_slits([headers[k] for k in shuffled], [paths[k] for k in shuffled])
    assert [shuffled[k] for k in order] == [0, 1, 2, 3]
    with pytest.raises(ValueError, match="same SLITINDX"):
        sort_slits([headers[0], headers[0]], [paths[0], paths[0]])


def test_hinode_errors(tmp_path, visp_raw):
    p = tmp_path / "bad.fits"
    fits.PrimaryHDU(
        np.zeros((3, 5, 112), np.int16),
        header=fits.Header({"INSTRUME": "SOT/SP", "CRVAL1": 6302.08, "CDELT1": 0.0215, "CRPIX1": 56.5}),
    ).writeto(p)
    with pytest.raises(ValueError, match=r"\(4, N_y, N_lambda\)"):
        read_hinode_slit(p)
    fits.PrimaryHDU(np.zeros((4, 5, 112), np.int16), header=fits.Header({"INSTRUME": "SOT/SP"})).writeto(
        p, overwrite=True
    )
    with pytest.raises(ValueError, match="no wavelength axis.*CRVAL1"):
        read_hinode_slit(p)
    with pytest.raises(ValueError, match="not Hinode SOT/SP.*--instrument visp"):
        read_hinode_slit(visp_raw[0])
    fits.PrimaryHDU(
        np.zeros((4, 5, 112), np.int16),
        header=fits.Header({"INSTRUME": "SOT/SP", "CTYPE1": "Solar-Y", "CRVAL1": 0.0, "CDELT1": 0.16, "CRPIX1": 1.0}),
    ).writeto(p, overwrite=True)
    with pytest.raises(ValueError, match="axis 1 is 'SOLAR-Y', expected the wavelength"):
        read_hinode_slit(p)


# --------------------------------------------------------------------------------------
# ViSP


@pytest.mark.parametrize("unit, base3, base4, stokes_key", [("nm", None, None, True), ("m", 7, 1, False)])
def test_visp_round_trip(tmp_path, visp_raw, visp_true, unit, base3, base4, stokes_key):
    paths = copy_files(visp_raw, tmp_path)
    which = fill_visp(paths, visp_true, unit=unit, dindex3_base=base3, dindex4_base=base4, keep_stokes_key=stokes_key)
    rng = np.random.default_rng(0)
    steps = group_visp_files(list(rng.permutation(paths)))  # order of the file list is irrelevant
    assert [s.step for s in steps] == [k + (base3 or 0) for k in range(N_STEPS)]
    for k, s in enumerate(steps):
        assert s.paths == [which[(k, st)] for st in range(4)]
        read_visp_step(s)
        assert s.stokes.shape == (4, 400, N_SLIT)
        np.testing.assert_array_equal(s.stokes, visp_true[k])  # float32 data: exact
        np.testing.assert_allclose(s.wavelength, visp_wavelength(), rtol=0, atol=1e-6)
    # a reused buffer is filled in place
    buf = np.empty((4, 400, N_SLIT), np.float32)
    assert read_visp_step(steps[1], out=buf).stokes is buf
    np.testing.assert_array_equal(buf, visp_true[1])


def test_visp_grouping_errors(tmp_path, visp_raw, visp_true):
    paths = copy_files(visp_raw, tmp_path)
    which = fill_visp(paths, visp_true)
    incomplete = [p for p in paths if p != which[(1, 2)]]
    with pytest.raises(ValueError, match="DINDEX3=1 has 3 Stokes files.*missing Stokes U"):
        group_visp_files(incomplete)
    dup = tmp_path / "dup"
    twice = copy_files([which[(0, 0)]], dup)
    with pytest.raises(ValueError, match="more than one map"):
        group_visp_files(paths + twice)
    with pytest.raises(ValueError, match="no ViSP files"):
        group_visp_files([])


def test_visp_header_errors(tmp_path, visp_raw, visp_true):
    paths = copy_files(visp_raw, tmp_path)
    fill_visp(paths, visp_true)
    with fits.open(paths[0], mode="update") as hdul:
        h = next(h for h in hdul if h.data is not None).header
        h["CTYPE2"] = "HPLN-TAN"
    with pytest.raises(ValueError, match="axis 2 is 'HPLN-TAN', expected the dispersion axis AWAV"):
        read_visp_header(paths[0])
    with fits.open(paths[1], mode="update") as hdul:
        h = next(h for h in hdul if h.data is not None).header
        del h["DINDEX4"]
    with pytest.raises(ValueError, match="no DINDEX4"):
        read_visp_header(paths[1])
    hin = tmp_path / "sp"
    hp, _ = write_hinode_map(hin, hinode_true_counts(1, 2, 30000.0))
    with pytest.raises(ValueError, match="not DKIST ViSP.*--instrument hinode"):
        read_visp_header(hp[0])
    # a STOKES key that contradicts the DINDEX4 order
    paths2 = copy_files(visp_raw, tmp_path / "b")
    which = fill_visp(paths2, visp_true)
    with fits.open(which[(0, 1)], mode="update") as hdul:
        next(h for h in hdul if h.data is not None).header["STOKES"] = "V"
    with pytest.raises(ValueError, match="STOKES keys"):
        group_visp_files(paths2)
