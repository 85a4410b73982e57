"""End to end: synthetic Hinode SP / ViSP files -> `fastinv stokes invert` / FrameInverter /
watch() -> FITS, each compared with an independent reference (files' known counts / I_c,
numpy.interp onto the model grid, the float64 torch network and NumPy decoding)."""

from __future__ import annotations

import os
import shutil
import threading
import time
import warnings

import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS

torch = pytest.importorskip("torch")
pytest.importorskip("dkist_data_simulator")

from fastinv.cli import main  # noqa: E402
from fastinv.stokes import FrameInverter, StokesNet  # noqa: E402
from fastinv.stokes.io.visp import group_visp_files, read_visp_step  # noqa: E402

pytest_plugins = ["_stokes_fixtures"]  # session fixture visp_raw

from _stokes_files import (  # noqa: E402
    copy_files,
    fill_visp,
    hinode_true_counts,
    visp_true_counts,
    visp_wavelength,
    write_hinode_map,
)
from _stokes_models import make_card, reference_predict, write_model  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::astropy.wcs.FITSFixedWarning")

STD = {"temperature": 800.0, "vlos": 2.0, "B": 500.0, "inclination": 40.0, "azimuth": 90.0}
L2 = {
    "temperature": "temperature",
    "vlos": "velocity",
    "B": "mag_strength",
    "inclination": "mag_inclination",
    "azimuth": "mag_azimuth",
}
N_STEPS, N_SLIT, IC_VISP = 3, 12, 12000.0


def _compare(got: dict, ref: dict, what=""):
    for q, r in ref.items():
        g = np.asarray(got[q], dtype=np.float64)
        assert g.shape == r.shape, (q, g.shape, r.shape)
        if q == "azimuth":
            assert np.abs((g - r + 90) % 180 - 90).max() < 0.1, what
        else:
            np.testing.assert_allclose(g, r, rtol=1e-4, atol=2e-4 * STD[q], err_msg=f"{what} {q}")


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    d = tmp_path_factory.mktemp("models")
    hin = write_model(d / "hinode.safetensors", seed=11)
    visp = write_model(d / "visp.safetensors", card=make_card(instrument="visp"), seed=12)
    return {"hinode": (d / "hinode.safetensors", *hin), "visp": (d / "visp.safetensors", *visp)}


@pytest.fixture(scope="module")
def visp_true():
    return visp_true_counts(N_STEPS, N_SLIT, ic=IC_VISP, seed=7)


@pytest.fixture()
def visp_files(tmp_path, visp_raw, visp_true):
    paths = copy_files(visp_raw, tmp_path / "in")
    which = fill_visp(paths, visp_true, unit="nm", dindex3_base=4, dindex4_base=1, keep_stokes_key=False)
    return paths, which


def _visp_reference(net, card, true_step: np.ndarray, ic: float) -> dict:
    """true_step (4, nλ, n_slit) counts -> reference quantities (n_nodes, n_slit)."""
    prof = true_step.astype(np.float64).transpose(2, 0, 1) / ic  # (n_slit, 4, nλ)
    wl, mw = visp_wavelength(), np.asarray(card["wavelength"])
    prof = np.stack([[np.interp(mw, wl, s) for s in p] for p in prof])
    return {k: v.T for k, v in reference_predict(net, card, prof).items()}


# --------------------------------------------------------------------------------------
# CLI


def test_cli_hinode_map_with_png(tmp_path, models, capsys):
    path, net, card = models["hinode"]
    nx, ny, ic = 4, 8, 45000.0
    true = hinode_true_counts(nx, ny, ic, seed=21)
    paths, expected = write_hinode_map(tmp_path / "sp", true, spbshft=0)
    out = tmp_path / "out" / "map.fits"
    out.parent.mkdir()
    rc = main(
        [
            "stokes",
            "invert",
            *paths,
            "--instrument",
            "hinode",
            "-o",
            str(out),
            "--png",
            str(out.with_suffix(".png")),
            "--model",
            str(path),
            "--continuum",
            str(ic),
            "-q",
        ]
    )
    assert rc == 0, capsys.readouterr().err
    assert "wrote" in capsys.readouterr().out
    with fits.open(out) as hdul:
        names = [h.name.lower() for h in hdul]
        assert names == [
            "primary",
            "temperature",
            "velocity",
            "mag_strength",
            "mag_inclination",
            "mag_azimuth",
            "optical_depth",
            "status",
        ]
        assert hdul["temperature"].data.shape == (7, ny, nx)
        assert hdul["temperature"].header["BUNIT"] == "K"
        assert list(hdul["optical_depth"].data) == [0.0, -0.5, -1.0, -1.5, -2.0, -2.5, -3.0]
        assert hdul[0].header["INVINST"] == "hinode_sp" and hdul[0].header["ICONT"] == ic
        assert not hdul["status"].data.any()
        got = {q: hdul[L2[q]].data for q in L2}
        w = WCS(hdul["temperature"].header).celestial
    for x in range(nx):  # slit x of the map = the file with SLITINDX x
        prof = expected[x].transpose(1, 0, 2) / ic  # (ny, 4, 112)
        ref = reference_predict(net, card, prof)
        _compare({q: v[:, :, x].T for q, v in got.items()}, ref, f"slit {x}")
    # the celestial WCS puts slit x at XCEN_x and the slit centre at YCEN
    lon, lat = w.pixel_to_world_values(2, (ny - 1) / 2)
    assert abs(lon * 3600 - (-120.0 + 2 * 0.1476)) < 1e-3 and abs(lat * 3600 - 35.0) < 1e-3
    assert (
        abs((w.pixel_to_world_values(0, ny - 1)[1] - w.pixel_to_world_values(0, 0)[1]) * 3600 - 0.16 * (ny - 1)) < 1e-3
    )
    png = out.with_suffix(".png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert not [f for f in os.listdir(out.parent) if f.startswith(".")]  # no temp files left


def test_cli_visp_map_matches_reference_and_input_wcs(tmp_path, models, visp_files, visp_true, capsys):
    path, net, card = models["visp"]
    paths, which = visp_files
    out = tmp_path / "visp.fits"
    rc = main(
        [
            "stokes",
            "invert",
            str(tmp_path / "in"),
            "--instrument",
            "visp",
            "-o",
            str(out),
            "--model",
            str(path),
            "--continuum",
            str(IC_VISP),
            "-q",
        ]
    )
    assert rc == 0, capsys.readouterr().err
    with fits.open(out) as hdul:
        got = {q: hdul[L2[q]].data for q in L2}
        assert got["temperature"].shape == (7, N_SLIT, N_STEPS)
        w = WCS(hdul["temperature"].header).celestial
    for k in range(N_STEPS):
        _compare(
            {q: v[:, :, k] for q, v in got.items()}, _visp_reference(net, card, visp_true[k], IC_VISP), f"step {k}"
        )
        # map pixel (x = step k, y = slit pixel j) is where frame k's pixel j is on the sky
        fw = WCS(
            fits.getheader(which[(k, 0)], ext=0)
            if fits.getdata(which[(k, 0)], ext=0) is not None
            else fits.getheader(which[(k, 0)], ext=1),
            naxis=3,
        )
        for j in (0, N_SLIT - 1):
            lat_f, _, lon_f = fw.pixel_to_world_values(j, 0, 0)
            lon_m, lat_m = w.pixel_to_world_values(k, j)
            assert abs(lon_m - lon_f) * 3600 < 1e-6 and abs(lat_m - lat_f) * 3600 < 1e-6


def test_cli_map_continuum_found_from_the_data(tmp_path, models, visp_files, capsys):
    path = models["visp"][0]
    out = tmp_path / "auto.fits"
    assert (
        main(
            [
                "stokes",
                "invert",
                str(tmp_path / "in"),
                "--instrument",
                "visp",
                "-o",
                str(out),
                "--model",
                str(path),
                "-q",
            ]
        )
        == 0
    )
    ic = fits.getheader(out)["ICONT"]
    # the synthetic profiles are normalised to the HSRA quiet-Sun continuum x 12000 counts; the
    # random atmospheres' continua scatter around it (cool umbra-like ones are clipped away)
    assert 0.9 * IC_VISP < ic < 1.15 * IC_VISP


def test_cli_errors(tmp_path, models, visp_files, capsys):
    hp, _ = write_hinode_map(tmp_path / "sp", hinode_true_counts(2, 3, 30000.0))
    rc = main(
        [
            "stokes",
            "invert",
            *hp,
            "--instrument",
            "visp",
            "-o",
            str(tmp_path / "x.fits"),
            "--model",
            str(models["visp"][0]),
            "-q",
        ]
    )
    assert rc == 1 and "not DKIST ViSP" in capsys.readouterr().err
    rc = main(
        [
            "stokes",
            "invert",
            *hp,
            "--instrument",
            "hinode",
            "-o",
            str(tmp_path / "x.fits"),
            "--model",
            str(models["visp"][0]),
            "-q",
        ]
    )
    assert rc == 1 and "model for visp, not hinode_sp" in capsys.readouterr().err
    # a ViSP window that misses the model's lines
    paths, which = visp_files
    for p in paths:
        with fits.open(p, mode="update") as hdul:
            next(h for h in hdul if h.data is not None).header["CRVAL2"] = 631.0
    rc = main(
        [
            "stokes",
            "invert",
            *paths,
            "--instrument",
            "visp",
            "-o",
            str(tmp_path / "x.fits"),
            "--model",
            str(models["visp"][0]),
            "-q",
        ]
    )
    err = capsys.readouterr().err
    assert rc == 1 and "covers 6306.758-6313.242 A" in err and "model needs at least 6301.101" in err
    assert not (tmp_path / "x.fits").exists()
    with pytest.raises(SystemExit):
        main(["stokes", "invert", "--help"])
    assert "DINDEX3" in capsys.readouterr().out


# --------------------------------------------------------------------------------------
# FrameInverter and watch()


def test_frame_inverter_reuses_buffers_and_flags_nan(models, visp_true):
    path, net, card = models["visp"]
    inv = FrameInverter(path, "visp", continuum=IC_VISP)
    wl = visp_wavelength()
    r0 = inv.invert_frame(visp_true[0], wavelength=wl)
    buf = inv._y
    r1 = inv.invert_frame(visp_true[1], wavelength=wl)
    assert inv._y is buf  # no new output buffer
    _compare(r0.results, _visp_reference(net, card, visp_true[0], IC_VISP), "frame 0")
    _compare(r1.results, _visp_reference(net, card, visp_true[1], IC_VISP), "frame 1")
    assert r1.latency > 0 and r1.continuum == IC_VISP
    frame = visp_true[2].copy()
    frame[1, 200, 5] = np.nan  # Q of slit pixel 5, inside the model window
    frame[:, :, 7] = 0.0  # a pixel without signal
    r = inv.invert_frame(frame, wavelength=wl)
    assert r.status[5] == 1 and r.status[7] == 2 and r.status.sum() == 3
    assert np.isnan(r.results["temperature"][:, [5, 7]]).all()
    ok = [j for j in range(N_SLIT) if j not in (5, 7)]
    ref = _visp_reference(net, card, visp_true[2], IC_VISP)
    _compare({q: v[:, ok] for q, v in r.results.items()}, {q: v[:, ok] for q, v in ref.items()}, "frame 2")
    with pytest.raises(ValueError, match=r"\(4, N_lambda, N_slit\)"):
        inv.invert_frame(frame[:3], wavelength=wl)
    # a frame without any usable continuum (found per frame) is flagged, not an exception
    auto = FrameInverter(path, "visp")
    dead = np.zeros_like(visp_true[0])
    dead[:, :, :3] = np.nan
    r = auto.invert_frame(dead, wavelength=wl)
    assert np.isnan(r.continuum) and list(r.status) == [1, 1, 1] + [2] * (N_SLIT - 3)
    assert np.isnan(r.results["temperature"]).all()
    with pytest.raises(ValueError, match="400 were given"):
        inv.invert_frame(frame[:, :300], wavelength=wl)


def test_watch_inverts_steps_as_their_files_appear(tmp_path, models, visp_files, visp_true):
    path, net, card = models["visp"]
    paths, which = visp_files
    incoming, results_dir = tmp_path / "incoming", tmp_path / "results"
    incoming.mkdir()
    results_dir.mkdir()

    def writer():  # the four Stokes files of each step arrive one by one
        for k in range(N_STEPS):
            for st in (3, 1, 0, 2):
                src = which[(k, st)]
                if (k, st) == (2, 2):
                    time.sleep(0.5)  # long enough for the junk file to be reported
                if (k, st) == (1, 0):  # written in place, slowly: first the header block only
                    with open(src, "rb") as f:
                        raw = f.read()
                    with open(incoming / os.path.basename(src), "wb") as f:
                        f.write(raw[:2880])
                        f.flush()
                        time.sleep(0.05)
                        f.write(raw[2880:])
                else:  # atomically
                    tmp = incoming / (os.path.basename(src) + ".part")
                    shutil.copy(src, tmp)
                    os.replace(tmp, incoming / os.path.basename(src))
                time.sleep(0.02)

    (incoming / "garbage.fits").write_bytes(b"not a FITS file" * 10)
    inv = FrameInverter(path, "visp")
    t = threading.Thread(target=writer)
    t.start()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = list(inv.watch(incoming, timeout=10, max_frames=N_STEPS, poll=0.01, output_dir=results_dir, settle=0.3))
    t.join()
    reported = [str(w.message) for w in caught if "not a readable FITS file" in str(w.message)]
    assert len(reported) == 1 and "garbage.fits" in reported[0]  # the slowly written frame is not
    assert [r.step for r in got] == [4, 5, 6]  # DINDEX3 values (base 4 here)
    steps = group_visp_files(paths)
    for k, r in enumerate(got):
        assert 0 < r.latency < 5
        again = FrameInverter(net_or := StokesNet.load(path), "visp").invert_frame(read_visp_step(steps[k]))
        for q in r.results:
            np.testing.assert_array_equal(r.results[q], again.results[q])
        _compare(r.results, _visp_reference(net, card, visp_true[k], r.continuum), f"watched step {k}")
    assert sorted(os.listdir(results_dir)) == ["step_00004.fits", "step_00005.fits", "step_00006.fits"]
    with fits.open(results_dir / "step_00005.fits") as hdul:
        np.testing.assert_array_equal(hdul["temperature"].data[:, :, 0], got[1].results["temperature"])
    assert net_or.instrument == "visp"


def test_watch_stops_on_timeout_and_stop(tmp_path, models):
    inv = FrameInverter(models["visp"][0], "visp")
    t0 = time.monotonic()
    assert list(inv.watch(tmp_path, timeout=0.2, poll=0.05)) == []
    assert time.monotonic() - t0 < 3
    assert list(inv.watch(tmp_path, timeout=None, poll=0.01, stop=lambda: True)) == []
    with pytest.raises(FileNotFoundError):
        list(inv.watch(tmp_path / "missing"))
    with pytest.raises(ValueError, match="use instrument='visp'"):
        list(FrameInverter(models["hinode"][0], "hinode").watch(tmp_path))


def test_cli_watch_writes_each_step(tmp_path, models, visp_files, capsys):
    paths, which = visp_files
    out = tmp_path / "watched"
    rc = main(
        [
            "stokes",
            "watch",
            str(tmp_path / "in"),
            "-o",
            str(out),
            "--model",
            str(models["visp"][0]),
            "--timeout",
            "0.5",
            "--poll",
            "0.02",
            "--continuum",
            str(IC_VISP),
        ]
    )
    text = capsys.readouterr().out
    assert rc == 0 and "3 steps written" in text and "step 5:" in text
    assert sorted(os.listdir(out)) == ["step_00004.fits", "step_00005.fits", "step_00006.fits"]
    # the same numbers as the map inversion of the same files
    m = tmp_path / "map.fits"
    assert (
        main(
            [
                "stokes",
                "invert",
                *paths,
                "--instrument",
                "visp",
                "-o",
                str(m),
                "--model",
                str(models["visp"][0]),
                "--continuum",
                str(IC_VISP),
                "-q",
            ]
        )
        == 0
    )
    np.testing.assert_array_equal(
        fits.getdata(out / "step_00005.fits", "velocity")[:, :, 0], fits.getdata(m, "velocity")[:, :, 1]
    )
    assert (
        main(
            [
                "stokes",
                "watch",
                str(tmp_path / "nowhere"),
                "-o",
                str(out),
                "--model",
                str(models["visp"][0]),
                "--timeout",
                "0.1",
            ]
        )
        == 1
    )


def test_png_without_matplotlib_is_a_clear_error(tmp_path, monkeypatch):
    import sys

    from fastinv.stokes.inversion.output import quicklook_png

    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ImportError, match=r"pip install \"fastinv\[plot\]\""):
        quicklook_png(tmp_path / "q.png", {"temperature": np.zeros((7, 2, 2))}, np.arange(7) * -0.5)
    assert not (tmp_path / "q.png").exists()


def test_hinode_grid_offset_from_the_model_is_inverted_with_a_warning(tmp_path, models):
    """Level-1 grids differ between data sets by a few pixels; the model's continuum edge
    beyond the observation takes the last observed value, the lines are covered."""
    path, net, card = models["hinode"]
    true = hinode_true_counts(2, 6, 40000.0, seed=8)
    paths, expected = write_hinode_map(tmp_path / "sp", true)
    for p in paths:  # 4 pixels to the blue: 6300.796-6303.183 A instead of 6300.887-6303.273 A
        with fits.open(p, mode="update") as hdul:
            hdul[0].header["CRVAL1"], hdul[0].header["CRPIX1"] = 6302.0, 57.0
    out = tmp_path / "o.fits"
    with pytest.warns(UserWarning, match=r"misses 0.000 A at the blue and 0\.0[89]\d A at the red end"):
        assert (
            main(
                [
                    "stokes",
                    "invert",
                    *paths,
                    "--instrument",
                    "hinode",
                    "-o",
                    str(out),
                    "--model",
                    str(path),
                    "--continuum",
                    "40000",
                    "-q",
                ]
            )
            == 0
        )
    wl = 6302.0 + (np.arange(112) + 1 - 57) * 0.0215
    got = {q: fits.getdata(out, L2[q]) for q in L2}
    for x in range(2):
        prof = expected[x].transpose(1, 0, 2) / 40000.0
        prof = np.stack([[np.interp(card["wavelength"], wl, s) for s in p] for p in prof])
        _compare({q: v[:, :, x].T for q, v in got.items()}, reference_predict(net, card, prof), f"slit {x}")


def test_cli_device_cuda_without_a_gpu_is_a_clean_error(tmp_path, models, capsys):
    import fastinv

    if fastinv.info().get("cuda_devices", 0):
        pytest.skip("a CUDA device is present")
    hp, _ = write_hinode_map(tmp_path / "sp", hinode_true_counts(1, 2, 30000.0))
    rc = main(
        [
            "stokes",
            "invert",
            *hp,
            "--instrument",
            "hinode",
            "-o",
            str(tmp_path / "x.fits"),
            "--model",
            str(models["hinode"][0]),
            "--device",
            "cuda",
            "-q",
        ]
    )
    assert rc == 1 and "cuda" in capsys.readouterr().err.lower()
    assert not (tmp_path / "x.fits").exists()


def test_network_output_has_no_truncated_cards(tmp_path, capsys):
    """A network `stokes invert` writes no astropy VerifyWarning ('Card is too long'): every
    STATn card of the status HDU holds the full text of fastinv.status.STOKES_STATUS."""
    from fastinv.status import STOKES_STATUS

    true = hinode_true_counts(2, 3, 45000.0, seed=3)
    paths, _ = write_hinode_map(tmp_path / "sp", true, spbshft=0)
    out = tmp_path / "net.fits"
    with warnings.catch_warnings():
        warnings.simplefilter("error", fits.verify.VerifyWarning)
        assert main(["stokes", "invert", *paths, "--instrument", "hinode", "-o", str(out), "-q"]) == 0
    capsys.readouterr()
    with warnings.catch_warnings():
        warnings.simplefilter("error", fits.verify.VerifyWarning)
        with fits.open(out) as hdul:
            hdul.verify("exception")
            head = hdul["status"].header
            assert {k: head[f"STAT{k}"] for k in STOKES_STATUS} == STOKES_STATUS
            assert len(STOKES_STATUS[3]) > 50  # the long one that used to lose its comment
