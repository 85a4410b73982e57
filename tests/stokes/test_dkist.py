"""ViSP datasets through the optional dkist package: the ASDF file of dkist's own ViSP test
dataset (4 Stokes x 20 raster steps x 50 wavelengths x 128 slit pixels, 80 files), its FITS
files written here from the headers the ASDF carries, filled with known data."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest
from astropy.io import fits

dkist = pytest.importorskip("dkist")
torch = pytest.importorskip("torch")

from _stokes_files import write_large_visp  # noqa: E402
from _stokes_models import make_card, reference_predict, write_model  # noqa: E402
from fastinv.cli import main  # noqa: E402
from fastinv.stokes.io.visp import group_visp_files, read_visp_step, visp_dataset_files  # noqa: E402

WL = 5000.0 + (np.arange(50) + 1 - 25) * 0.1
pytestmark = pytest.mark.filterwarnings("ignore::astropy.wcs.FITSFixedWarning")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return write_large_visp(tmp_path_factory.mktemp("dkist"))


def test_dataset_files_come_from_the_asdf(dataset):
    asdf, ds, data = dataset
    paths = visp_dataset_files(asdf)
    assert [os.path.basename(p) for p in paths] == list(ds.files.filenames) and len(paths) == 80
    steps = group_visp_files(paths)
    assert [s.step for s in steps] == list(range(20))
    for s in (steps[0], steps[13]):
        read_visp_step(s)
        assert s.stokes.shape == (4, 50, 128)
        for k in range(4):
            np.testing.assert_array_equal(s.stokes[k], data[(s.step, k)])
        # CRVAL2 = 5e-7 m at CRPIX2 = 25, CDELT2 = 1e-11 m (CUNIT2 = m in this dataset)
        np.testing.assert_allclose(s.wavelength, WL, atol=1e-6)


def test_cli_inverts_an_asdf_dataset(dataset, tmp_path):
    asdf, ds, data = dataset
    wl = WL
    card = make_card(instrument="visp", wavelength=wl[5:45] + 0.03)  # inside the window, between samples
    net, card = write_model(tmp_path / "m.safetensors", card=card, seed=3)
    out = tmp_path / "ds.fits"
    rc = main(
        [
            "stokes",
            "invert",
            str(asdf),
            "--instrument",
            "visp",
            "-o",
            str(out),
            "--model",
            str(tmp_path / "m.safetensors"),
            "--continuum",
            "1000",
            "-q",
            "--asdf",
            str(tmp_path / "ds_l2.asdf"),
        ]
    )
    assert rc == 0
    t = fits.getdata(out, "temperature")
    assert t.shape == (7, 128, 20)
    with pytest.warns(Warning, match="failed to convert"):  # no profiles: see dkist_asdf
        inv = dkist.load_dataset(tmp_path / "ds_l2.asdf")
    assert np.array_equal(np.asarray(inv["temperature"].data), t)
    k = 7
    prof = np.stack([data[(k, s)] for s in range(4)]).astype(np.float64).transpose(2, 0, 1) / 1000.0
    prof = np.stack([[np.interp(card["wavelength"], wl, s) for s in p] for p in prof])
    ref = reference_predict(net, card, prof)["temperature"].T
    np.testing.assert_allclose(t[:, :, k], ref, rtol=1e-4, atol=0.2)


def test_missing_dataset_files(dataset, tmp_path):
    asdf = tmp_path / "copy.asdf"
    shutil.copy(dataset[0], asdf)
    with pytest.raises(FileNotFoundError, match="80 of the dataset's 80 FITS files are not in .*download"):
        visp_dataset_files(asdf)


def test_real_visp_header_is_read_and_its_window_checked(tmp_path, capsys):
    """dkist ships a real ViSP level-1 header (VISP_HEADER.hdr): DINDEX3 = 7, DINDEX4 from 1,
    no STOKES key, CUNIT2 nm, CRPIX2 = -23, rotated PC matrix. Its window (630.244-631.829 nm)
    does not contain Fe I 630.15 nm, so a model of the two lines must refuse it -- unless the
    user corrects the calibration with --wavelength-shift."""
    src = os.path.join(os.path.dirname(dkist.__file__), "data", "VISP_HEADER.hdr")
    if not os.path.exists(src):
        pytest.skip("this dkist version has no VISP_HEADER.hdr")
    base = fits.Header.fromfile(src, sep="\n", endcard=False, padding=False)
    assert base["DINDEX3"] == 7 and "STOKES" not in base and base["CUNIT2"] == "nm"
    rng = np.random.default_rng(1)
    paths = []
    for st in range(4):
        h = base.copy()
        h["DINDEX4"] = st + 1
        for k in ("XTENSION", "PCOUNT", "GCOUNT"):
            h.remove(k, ignore_missing=True)
        data = (rng.normal(1000.0, 5.0, (1, 976, 6)) if st == 0 else rng.normal(0, 3.0, (1, 976, 6))).astype(np.float32)
        p = tmp_path / "in" / f"frame_{st}.fits"
        p.parent.mkdir(exist_ok=True)
        fits.PrimaryHDU(data, header=h).writeto(p)
        paths.append(str(p))
    steps = group_visp_files(paths[::-1])
    assert len(steps) == 1 and steps[0].step == 7
    read_visp_step(steps[0])
    wl = (630.2051 + (np.arange(976) + 1 + 23) * base["CDELT2"]) * 10
    np.testing.assert_allclose(steps[0].wavelength, wl, rtol=0, atol=1e-6)
    _, card = write_model(tmp_path / "v.safetensors", card=make_card(instrument="visp"), seed=4)
    out = tmp_path / "o.fits"
    args = [
        "stokes",
        "invert",
        *paths,
        "--instrument",
        "visp",
        "-o",
        str(out),
        "--model",
        str(tmp_path / "v.safetensors"),
        "-q",
    ]
    assert main(args) == 1 and not out.exists()
    assert "covers 6302.441-6318.286 A but the model needs at least 6301.101-6302.894 A" in capsys.readouterr().err
    assert main(args + ["--wavelength-shift", "-10.0"]) == 0  # 6292.4-6308.3 A: the lines are inside
    with fits.open(out) as hdul:
        assert hdul["temperature"].data.shape == (7, 6, 1)
        from astropy.wcs import WCS

        w = WCS(hdul["temperature"].header).celestial  # the real header's rotated celestial WCS
        lon, lat = w.pixel_to_world_values(0, 0)
        fw = WCS(base, naxis=3)
        lat_f, _, lon_f = fw.pixel_to_world_values(0, 0, 0)
        assert abs(lon - lon_f) * 3600 < 1e-6 and abs(lat - lat_f) * 3600 < 1e-6
