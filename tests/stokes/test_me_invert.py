"""Milne-Eddington inversion of files and frames: ``fastinv stokes invert --method cnn|me|cnn+me``
(level-2 FITS with ``<name>_error``, chi2 and status extensions and the INV* configuration
keywords, read back with astropy) and ``FrameInverter(method="me" | "cnn+me")`` on simulated
ViSP steps. Reference: MEInversion run directly on the known profiles (the files' counts /
I_c, numpy.interp onto the ME grid)."""

from __future__ import annotations

import astropy.units as u
import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS

pytest.importorskip("dkist_data_simulator")

from fastinv.cli import main  # noqa: E402
from fastinv.stokes import FrameInverter, MEInversion  # noqa: E402
from fastinv.stokes.inversion.me_network import SHIPPED  # noqa: E402
from fastinv.stokes.inversion.network import default_model_path  # noqa: E402
from fastinv.stokes.synthesis.training_sets import instrument_by_name  # noqa: E402

pytest_plugins = ["_stokes_fixtures"]  # session fixture visp_raw

from _stokes_files import (  # noqa: E402
    copy_files,
    fill_visp,
    hinode_true_counts,
    visp_true_counts,
    visp_wavelength,
    write_hinode_map,
)

pytestmark = pytest.mark.filterwarnings("ignore::astropy.wcs.FITSFixedWarning")

ME_L2 = {"B": "mag_strength", "inclination": "mag_inclination", "azimuth": "mag_azimuth", "vlos": "velocity"}
N_STEPS, N_SLIT, IC_VISP = 3, 12, 12000.0


def _needs_networks():
    for name in SHIPPED.values():
        if not (default_model_path().parent / name).exists():
            pytest.skip(f"{name} is not shipped in this checkout")


def _reference(grid: str, init: str, profiles: np.ndarray):
    """profiles (n, 4, m_obs) in I_c on the observed grid, already interpolated by the caller."""
    inv = MEInversion(instrument=instrument_by_name(grid), init=init)
    return inv, inv.invert(profiles, threads=1)


def _agree(got: dict, ref, status, what: str) -> None:
    """Same fits as the direct inversion: within 2 % of the reported 1-sigma error for the
    pixels both call ok (the only difference is float32 resampling of the input)."""
    ok = (status == 0) & (ref.status == 0)
    assert ok.mean() > 0.6, what
    close = []
    for k in ME_L2:
        g, r, s = got[k][ok], ref.parameters[k].value[ok], ref.errors[k].value[ok]
        d = np.abs(g - r)
        if k == "azimuth":
            d = np.abs((g - r + 90) % 180 - 90)
        close.append(d <= 0.02 * s + 1e-6 * np.abs(r))
    # LM stops on a relative chi2 change; a rare pixel may take another path to the minimum
    assert np.mean(np.all(close, axis=0)) >= 0.9, what


@pytest.mark.parametrize("method", ["cnn", "me", "cnn+me"])
def test_cli_hinode_each_method(tmp_path, method, capsys):
    if method != "cnn":
        _needs_networks()
    nx, ny, ic = 3, 6, 45000.0
    true = hinode_true_counts(nx, ny, ic, seed=31)
    paths, expected = write_hinode_map(tmp_path / "sp", true, spbshft=0)
    out = tmp_path / f"map_{method.replace('+', '_')}.fits"
    args = ["stokes", "invert", *paths, "--instrument", "hinode", "-o", str(out), "--continuum", str(ic), "-q"]
    rc = main([*args, "--method", method, "--threads", "1"])
    assert rc == 0, capsys.readouterr().err
    with fits.open(out) as hdul:
        names = [h.name.lower() for h in hdul]
        head = hdul[0].header
        if method == "cnn":  # the network's layout, no ME products
            assert "temperature" in names and "mag_strength_error" not in names
            return
        for name in [*ME_L2.values(), "doppler_width", "damping", "line_strength", "source_function"]:
            assert name in names and f"{name}_error" in names, name
            assert hdul[name].data.shape == (ny, nx)
        for name in ("chi2", "chi2_stokes", "iterations", "restarts", "status", "correlation"):
            assert name in names
        assert hdul["chi2_stokes"].data.shape == (4, ny, nx)
        assert hdul["correlation"].data.shape == (6, ny, nx)
        assert "filling_factor" not in names  # fixed: not written
        got = {k: hdul[v].data.astype(np.float64) for k, v in ME_L2.items()}
        err = hdul["mag_strength_error"].data
        status = hdul["status"].data
        chi2 = hdul["chi2"].data
        assert hdul["status"].header["STAT3"].startswith("bad input")
        assert hdul["mag_strength"].header["BUNIT"] == "G"
    # the configuration, as HMI's ME series record it
    assert head["INVMETH"] == method
    assert head["INVINIT"] == ("classical" if method == "me" else "network")
    assert head["INVFREE"] == "B,inclination,azimuth,vlos,doppler_width,damping,eta0,S0,S1"
    assert head["INVITERA"] == 100 and head["INVWGHTV"] == 1.0 and head["INVCHIST"] == "none"
    assert head["INVNLINE"] == 2 and head["INVLIN2"].startswith("FeI_6302 6302.4936")
    assert head["INVNLAM"] == 112 and head["INVNPRCS"] == nx * ny
    assert head["INVNCNVG"] == int(np.sum(status == 0))
    if method == "cnn+me":
        assert head["INVINITM"] == SHIPPED["hinode_sp"]
    # reference: the inversion on the counts the reader returns (/ I_c) on the same 112 points
    prof = expected.transpose(0, 2, 1, 3).reshape(nx * ny, 4, 112) / ic  # (x, y) order
    inv, ref = _reference("hinode", "classical" if method == "me" else "network", prof)
    col = lambda a: a.reshape(nx, ny).T  # noqa: E731
    _agree({k: v.ravel() for k, v in got.items()}, _ravel(ref, col), status.ravel(), method)
    assert np.all(np.isfinite(err[status == 0])) and np.all(err[status == 0] > 0)
    np.testing.assert_allclose(chi2[status == 0], col(ref.chi2[:, 4])[status == 0], rtol=0.02)


class _Flat:
    def __init__(self, parameters, errors, status):
        self.parameters, self.errors, self.status = parameters, errors, status


class _V:
    def __init__(self, v):
        self.value = v


def _ravel(ref, col):
    """ref in (x, y) pixel order -> the map's (y, x) order, flattened."""
    p = {k: _V(col(v.value).ravel()) for k, v in ref.parameters.items()}
    e = {k: _V(col(v.value).ravel()) for k, v in ref.errors.items()}
    return _Flat(p, e, col(ref.status).ravel())


@pytest.fixture(scope="module")
def visp_true():
    return visp_true_counts(N_STEPS, N_SLIT, ic=IC_VISP, seed=17)


def _visp_profiles(step: np.ndarray, grid: np.ndarray) -> np.ndarray:
    prof = step.astype(np.float64).transpose(2, 0, 1) / IC_VISP  # (n_slit, 4, n_wl)
    wl = visp_wavelength()
    return np.stack([[np.interp(grid, wl, s) for s in p] for p in prof])


@pytest.mark.parametrize("method", ["me", "cnn+me"])
def test_frame_inverter_me_on_visp_steps(method, visp_true, tmp_path):
    _needs_networks()
    inv = FrameInverter(None, "visp", continuum=IC_VISP, method=method, threads=1)
    assert inv.me.init_method == ("classical" if method == "me" else "network")
    wl = visp_wavelength()
    frame = visp_true[0].copy()
    frame[1, 200, 5] = np.nan  # Q of slit pixel 5, inside the line window
    frame[:, :, 7] = 0.0  # no signal
    r = inv.invert_frame(frame, wavelength=wl)
    # pixel 5: NaN input (3); pixel 7: no light, too dark (4), not bad input from a zero default sigma
    assert r.status[5] == 3 and r.status[7] == 4
    assert np.isnan(r.results["B"][[5, 7]]).all()
    grid = inv.me.wavelength
    assert grid.size == 173
    _, ref = _reference("visp_lines", inv.me.init_method, _visp_profiles(visp_true[0], grid))
    keep = np.array([j for j in range(N_SLIT) if j not in (5, 7)])
    sub = _Flat(
        {k: _V(v.value[keep]) for k, v in ref.parameters.items()},
        {k: _V(v.value[keep]) for k, v in ref.errors.items()},
        ref.status[keep],
    )
    _agree({k: v[keep] for k, v in r.results.items()}, sub, r.status[keep], method)
    assert r.me.chi2.shape == (N_SLIT, 5) and r.latency > 0
    # one step written as a file: ME layout, nx = 1
    path = inv.write_frame(tmp_path / "step.fits", r)
    with fits.open(path) as hdul:
        assert hdul["mag_strength_error"].data.shape == (N_SLIT, 1)
        assert hdul["status"].data[5, 0] == 3 and hdul[0].header["INVMETH"] == method


def test_cli_visp_me_map(tmp_path, visp_raw, visp_true, capsys):
    _needs_networks()
    paths = copy_files(visp_raw, tmp_path / "in")
    fill_visp(paths, visp_true, unit="nm")
    out = tmp_path / "visp_me.fits"
    rc = main(
        ["stokes", "invert", str(tmp_path / "in"), "--instrument", "visp", "-o", str(out)]
        + ["--method", "cnn+me", "--continuum", str(IC_VISP), "-q", "--threads", "1"]
    )
    assert rc == 0, capsys.readouterr().err
    assert "cnn+me, init network" in capsys.readouterr().out
    with fits.open(out) as hdul:
        assert hdul["mag_strength"].data.shape == (N_SLIT, N_STEPS)
        assert hdul[0].header["INVINSTR"] == "visp" and hdul[0].header["INVNLAM"] == 173
        assert np.isfinite(hdul["chi2"].data).all()


def test_bad_arguments(tmp_path, capsys):
    with pytest.raises(ValueError, match="method must be one of"):
        FrameInverter(None, "visp", method="milne")
    true = hinode_true_counts(1, 2, 45000.0, seed=3)
    paths, _ = write_hinode_map(tmp_path / "sp", true)
    base = ["stokes", "invert", *paths, "--instrument", "hinode", "-o", str(tmp_path / "o.fits"), "-q"]
    assert main([*base, "--method", "me", "--png", str(tmp_path / "o.png")]) == 2
    assert "--png is for --method cnn only" in capsys.readouterr().err
    assert main([*base, "--method", "me", "--model", str(default_model_path("hinode"))]) == 2
    with pytest.raises(SystemExit):  # argparse: invalid choice
        main([*base, "--method", "pca"])


# no profiles: dkist's reader warns on the empty collection (dkist_asdf's module docstring)
@pytest.mark.filterwarnings("ignore:A node failed to convert")
def test_cli_me_asdf_round_trips(tmp_path, capsys):
    """--method me --asdf: every ME map of the level-2 FITS, read back by dkist's own reader
    (dkist.load_dataset) as a 2-D cube equal to the FITS HDU (astropy), masked where the status
    is not 0, with the map's celestial coordinates; correlation / chi2_stokes planes by name."""
    dkist = pytest.importorskip("dkist")
    true = hinode_true_counts(3, 5, 45000.0, seed=8)
    paths, _ = write_hinode_map(tmp_path / "sp", true, spbshft=0)
    out, asdf = tmp_path / "me.fits", tmp_path / "me.asdf"
    args = ["stokes", "invert", *paths, "--instrument", "hinode", "-o", str(out), "--asdf", str(asdf)]
    rc = main([*args, "--method", "me", "--continuum", "45000", "-q", "--threads", "1"])
    assert rc == 0, capsys.readouterr().err
    assert f"and {asdf}" in capsys.readouterr().out
    inv = dkist.load_dataset(asdf)
    with fits.open(out) as hdul:
        status = hdul["status"].data
        two_d = [h.name.lower() for h in hdul[1:] if h.data.ndim == 2]
        assert {"mag_strength", "mag_strength_error", "chi2", "status"} <= set(two_d)
        assert set(inv.keys()) == set(two_d) | {f"chi2_stokes_{s}" for s in "iquv"} | {
            "correlation_b_inclination",
            "correlation_b_azimuth",
            "correlation_b_vlos",
            "correlation_inclination_azimuth",
            "correlation_inclination_vlos",
            "correlation_azimuth_vlos",
        }
        for name in two_d:
            cube = inv[name]
            np.testing.assert_array_equal(np.asarray(cube.data), hdul[name].data, err_msg=name)
            assert cube.unit == u.Unit(hdul[name].header.get("BUNIT", ""))
            if name != "status":
                np.testing.assert_array_equal(np.asarray(cube.mask), status != 0)
        for k, s in enumerate("iquv"):
            np.testing.assert_array_equal(np.asarray(inv[f"chi2_stokes_{s}"].data), hdul["chi2_stokes"].data[k])
        np.testing.assert_array_equal(
            np.asarray(inv["correlation_b_vlos"].data), hdul["correlation"].data[2]
        )  # CORR3 = B-vlos
        assert hdul["correlation"].header["CORR3"] == "B-vlos"
        want = WCS(hdul["mag_strength"].header).pixel_to_world(2, 4)
    got = inv["mag_strength"].wcs.pixel_to_world(2, 4)
    assert abs(got.Tx - want.Tx).to_value("arcsec") < 1e-9 and abs(got.Ty - want.Ty).to_value("arcsec") < 1e-9
    assert inv.meta["inventory"]["level2_fits"] == "me.fits"


def test_cli_watch_me_steps_equal_the_map(tmp_path, visp_raw, visp_true, capsys):
    """stokes watch --method cnn+me: each step's file is the ME layout and its pixels are bitwise
    the map inversion's (stokes invert --method cnn+me) column of that step."""
    _needs_networks()
    paths = copy_files(visp_raw, tmp_path / "in")
    fill_visp(paths, visp_true, unit="nm")
    out = tmp_path / "watched"
    common = ["--continuum", str(IC_VISP), "--threads", "1", "--method", "cnn+me"]
    rc = main(["stokes", "watch", str(tmp_path / "in"), "-o", str(out), "--timeout", "0.5", "--poll", "0.02", *common])
    text = capsys.readouterr()
    assert rc == 0 and f"{N_STEPS} steps written" in text.out, text.err
    assert "method cnn+me" in text.err
    steps = sorted(out.glob("step_*.fits"))
    assert len(steps) == N_STEPS
    m = tmp_path / "map.fits"
    assert main(["stokes", "invert", str(tmp_path / "in"), "--instrument", "visp", "-o", str(m), "-q", *common]) == 0
    with fits.open(m) as ref:
        for k, path in enumerate(steps):
            with fits.open(path) as got:
                assert got[0].header["INVMETH"] == "cnn+me"
                for name in ("mag_strength", "mag_strength_error", "velocity", "chi2", "status"):
                    np.testing.assert_array_equal(got[name].data[:, 0], ref[name].data[:, k], err_msg=name)
    assert main(["stokes", "watch", str(tmp_path / "in"), "-o", str(out), "--method", "me", "--model", "x"]) == 2
    assert "--model/--device cuda are for --method cnn" in capsys.readouterr().err
