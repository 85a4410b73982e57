"""`fastinv stokes synth`: training sets written to HDF5 / FITS, read back and re-synthesised
from the stored atmospheres (the file must describe exactly what produced its profiles)."""

import os

import numpy as np
import pytest
from fastinv.cli import main
from fastinv.stokes import LTE, Instrument, MilneEddington, atmospheres


def test_lte_hdf5_roundtrip(tmp_path):
    h5py = pytest.importorskip("h5py")
    out = tmp_path / "lte.h5"
    assert (
        main(
            [
                "stokes",
                "synth",
                "--model",
                "lte",
                "--n",
                "12",
                "--instrument",
                "hinode",
                "--noise",
                "0",
                "--seed",
                "5",
                "--chunk",
                "5",
                "--quiet",
                "-o",
                str(out),
            ]
        )
        == 0
    )
    assert sorted(os.listdir(tmp_path)) == ["lte.h5"]  # atomic: no temporary file left
    with h5py.File(out) as f:
        stokes = f["stokes"][...]
        a = {k: f["atmosphere/" + k][...] for k in f["atmosphere"]}
        nodes = {k: f["nodes/" + k][...] for k in f["nodes"]}
        wl = f["wavelength"][...]
        assert f.attrs["model"] == "lte" and f.attrs["seed"] == 5 and f.attrs["n"] == 12
        assert np.all(f["status"][...] == 0)
    assert stokes.shape == (12, 4, 112) and wl.size == 112
    np.testing.assert_allclose(nodes["log_tau"], [0, -0.5, -1, -1.5, -2, -2.5, -3])
    atm = atmospheres.Atmospheres(**a)
    ref = LTE(instrument=Instrument.hinode_sp(noise=0.0)).synthesize(atm)
    np.testing.assert_allclose(stokes, ref, rtol=0, atol=2e-6)  # float32 storage
    np.testing.assert_allclose(nodes["temperature"], atm.at_nodes()["temperature"], rtol=1e-6)


def test_same_seed_same_set_and_noise_level(tmp_path):
    h5py = pytest.importorskip("h5py")
    files = []
    for name, noise in (("a.h5", "1e-3"), ("b.h5", "1e-3"), ("c.h5", "0")):
        files.append(tmp_path / name)
        main(
            [
                "stokes",
                "synth",
                "--model",
                "lte",
                "--n",
                "6",
                "--seed",
                "9",
                "--noise",
                noise,
                "--quiet",
                "-o",
                str(files[-1]),
            ]
        )
    a, b, c = (h5py.File(p)["stokes"][...] for p in files)
    np.testing.assert_array_equal(a, b)
    assert 0.6e-3 < np.std(a - c) < 1.4e-3


def test_me_fits(tmp_path):
    from astropy.io import fits

    out = tmp_path / "me.fits"
    main(
        [
            "stokes",
            "synth",
            "--model",
            "me",
            "--n",
            "20",
            "--instrument",
            "visp",
            "--noise",
            "0",
            "--seed",
            "2",
            "--quiet",
            "-o",
            str(out),
        ]
    )
    with fits.open(out) as h:
        assert h[0].header["MODEL"] == "me" and h[0].data.shape == (20, 4, 980)
        names = {
            n.upper(): n
            for n in (
                "B",
                "inclination",
                "azimuth",
                "vlos",
                "doppler_width",
                "damping",
                "eta0",
                "S0",
                "S1",
                "filling_factor",
                "vmac",
            )
        }
        p = {
            names[hdu.name[len("PARAMETERS_") :]]: hdu.data.astype(np.float64)
            for hdu in h
            if hdu.name.startswith("PARAMETERS_")
        }
        stokes = h[0].data
    ref = MilneEddington(instrument=Instrument.visp(noise=0.0)).synthesize(p)
    ref /= (p["S0"] + p["S1"])[:, None, None]
    np.testing.assert_allclose(stokes, ref, atol=2e-5)


def test_bad_output_name(tmp_path, capsys):
    # a user error is one line naming the file and the fix, exit code 1, no traceback
    assert main(["stokes", "synth", "--n", "2", "--quiet", "-o", str(tmp_path / "x.txt")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("fastinv stokes synth: error:") and "x.txt" in err and ".h5" in err
    assert not (tmp_path / "x.txt").exists()


def test_mu_range_draws_one_mu_per_chunk():
    from fastinv.stokes import LTE, atmospheres
    from fastinv.stokes.synthesis.training_sets import instrument_by_name, lte_training_set

    d = lte_training_set(10, instrument="hinode", noise=0.0, seed=3, mu_range=(0.5, 0.6), chunk=5)
    mus = d["mu"]
    assert np.all((mus >= 0.5) & (mus <= 0.6)) and len(set(mus[:5])) == 1 and mus[0] != mus[5]
    # reference: the same atmospheres synthesised directly at each chunk's mu
    atm, _ = atmospheres.random_mixture(10, seed=np.random.default_rng(3))
    lte = LTE(instrument=instrument_by_name("hinode", noise=0.0))
    for sl in (slice(0, 5), slice(5, 10)):
        ref = lte.synthesize(atm[sl], mu=float(mus[sl][0]))
        np.testing.assert_allclose(d["stokes"][sl], ref, atol=2e-6)


def test_streamed_set_equals_in_memory_set(tmp_path):
    h5py = pytest.importorskip("h5py")
    from fastinv.stokes.synthesis.training_sets import lte_training_set, write_lte_training_set

    kw = dict(instrument="visp_lines", seed=8, chunk=7)
    meta = write_lte_training_set(tmp_path / "s.h5", 20, **kw)
    ref = lte_training_set(20, **kw)
    with h5py.File(tmp_path / "s.h5", "r") as f:
        assert np.array_equal(f["stokes"][()], ref["stokes"])
        assert np.array_equal(f["atmosphere/B"][()], ref["atmosphere"]["B"])
        assert f["wavelength"].shape == (173,) and f.attrs["n"] == 20 == meta["n"]
