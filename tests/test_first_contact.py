"""A new user's first hour: missing extras, bad files, --help, `fastinv info`, progress bars."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import warnings

import fastinv
import numpy as np
import pytest
from astropy.io import fits
from fastinv import datasets
from fastinv.cli import build_parser, main

pytestmark = pytest.mark.filterwarnings("ignore::astropy.io.fits.verify.VerifyWarning")


# ---- a missing optional dependency is one line naming the extra --------------------------


def _block(monkeypatch, *modules):
    for m in modules:
        monkeypatch.setitem(sys.modules, m, None)  # `import m` now raises ImportError


def test_export_without_torch_names_the_train_extra(monkeypatch, tmp_path):
    _block(monkeypatch, "torch")
    with pytest.raises(ImportError, match=r'pip install "fastinv\[train\]"') as err:
        fastinv.export(object(), tmp_path / "m.safetensors", np.zeros((1, 6)))
    assert "\n" not in str(err.value)
    assert not list(tmp_path.iterdir())


def test_training_set_reader_without_h5py(monkeypatch, tmp_path):
    from fastinv.stokes.synthesis.training_sets import read_set

    _block(monkeypatch, "h5py")
    with pytest.raises(ImportError, match=r'pip install "fastinv\[train\]"'):
        read_set(tmp_path / "set.h5")


def test_lightweaver_check_without_lightweaver(monkeypatch):
    from fastinv.stokes.synthesis.lightweaver_reference import lightweaver_stokes

    _block(monkeypatch, "lightweaver")
    z = np.zeros(3)
    with pytest.raises(ImportError, match=r'pip install "fastinv\[evaluate\]"'):
        lightweaver_stokes(z, z, z, z, z, z, z, np.array([6302.5]))


def test_dkist_dataset_without_dkist(monkeypatch, tmp_path):
    from fastinv.stokes.io.visp import visp_dataset_files

    _block(monkeypatch, "dkist")
    with pytest.raises(ImportError, match=r'pip install "fastinv\[dkist\]"'):
        visp_dataset_files(tmp_path / "x.asdf")


def test_dem_png_without_matplotlib_is_one_line_from_the_cli(monkeypatch, tmp_path, capsys):
    _block(monkeypatch, "matplotlib", "matplotlib.pyplot")
    files = [str(f) for f in datasets.aia_flare_files()]
    rc = main(
        ["dem", "bp", *files, "-o", str(tmp_path / "d.fits"), "--png", str(tmp_path / "d.png"), "--bin", "8", "-q"]
    )
    err = capsys.readouterr().err
    assert rc == 1 and err.count("\n") == 1 and 'pip install "fastinv[plot]"' in err
    assert not (tmp_path / "d.png").exists()


def test_train_without_torch_is_one_line(monkeypatch, tmp_path, capsys):
    _block(monkeypatch, "torch")
    rc = main(["train", "deepem", "-o", str(tmp_path / "m.safetensors"), "--epochs", "1", "-q"])
    err = capsys.readouterr().err
    assert rc == 1 and err.startswith("fastinv train deepem: error:") and "fastinv[train]" in err


def test_every_extra_named_in_errors_exists_in_pyproject():
    from fastinv._optional import EXTRAS

    try:
        import tomllib
    except ImportError:  # Python 3.10
        pytest.skip("tomllib needs Python >= 3.11")
    root = os.path.join(os.path.dirname(__file__), "..", "pyproject.toml")
    with open(root, "rb") as f:
        extras = tomllib.load(f)["project"]["optional-dependencies"]
    for module, (extra, _) in EXTRAS.items():
        assert any(module.split(".")[0] in req.replace("-", "_") for req in extras[extra]), (module, extra)
    assert {"plot", "train", "evaluate", "dkist", "cuda", "all"} <= set(extras)
    assert any(r.startswith("h5py") for r in extras["train"])  # `fastinv train stokes` reads HDF5


# ---- bad input files are named ------------------------------------------------------------


@pytest.mark.parametrize("content", [b"", b"this is not a FITS file\n" * 200, b"SIMPLE  =" + b" " * 200])
def test_corrupt_input_names_the_file(tmp_path, capsys, content):
    files = [str(f) for f in datasets.aia_flare_files()]
    bad = tmp_path / "aia_171_corrupt.fits"
    bad.write_bytes(content)
    rc = main(["dem", "bp", *files[:2], str(bad), *files[3:], "-o", str(tmp_path / "d.fits"), "-q"])
    err = capsys.readouterr().err
    assert rc == 1 and str(bad) in err and "ignore_missing_simple" not in err
    assert err.count("\n") == 1  # one line, no traceback


def test_a_channel_without_finite_pixels_is_named(tmp_path):
    from fastinv._warnings import FastinvUserWarning
    from fastinv.dem.io import read_aia

    files = list(datasets.aia_flare_files())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with fits.open(files[4]) as h:
            hdu = next(x for x in h if x.data is not None)
            data, hdr = np.full(hdu.data.shape, np.nan, np.float32), hdu.header.copy()
    nan_file = tmp_path / "aia_211_nan.fits"
    fits.writeto(nan_file, data, hdr)
    with pytest.warns(FastinvUserWarning, match=r"channel 211 A .*aia_211_nan\.fits.* no finite pixel"):
        obs = read_aia(files[:4] + [nan_file] + files[5:])
    assert np.isnan(obs.data[4]).all()


# ---- the command line explains itself --------------------------------------------------------


def _subcommands(parser: argparse.ArgumentParser):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield name, sub
                yield from ((f"{name} {n}", s) for n, s in _subcommands(sub))


def test_help_describes_every_command_for_what_it_is(capsys):
    parser = build_parser()
    top = parser.format_help()
    assert "forward models" not in top
    stokes_help = dict(_subcommands(parser))["stokes"].format_help()
    for word in ("synth", "invert", "watch"):
        assert word in stokes_help
    for name, sub in _subcommands(parser):
        assert sub.description or sub.format_usage(), name


def test_png_takes_a_path_everywhere():
    for name, sub in _subcommands(build_parser()):
        for action in sub._actions:
            if "--png" in action.option_strings:
                assert action.nargs is None and not isinstance(action, argparse._StoreTrueAction), name
                assert action.metavar == "PATH", name


def test_writing_commands_say_written_atomically():
    subs = dict(_subcommands(build_parser()))
    for name in ("dem bp", "dem deepem", "stokes invert", "stokes synth"):
        assert "atomically" in subs[name].format_help(), name


# ---- fastinv info -------------------------------------------------------------------------


def test_info_text_and_json(capsys):
    import json

    assert main(["info"]) == 0
    text = capsys.readouterr().out
    info = fastinv.info()
    assert f"fastinv {info['version']}" in text and info["isa"] in text
    if info["cuda_devices"] == 0:
        assert "the CPU is used" in text
    assert main(["info", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == info


def test_invalid_fastinv_isa_is_a_clear_error():
    env = dict(os.environ, FASTINV_ISA="avx9000")
    r = subprocess.run([sys.executable, "-m", "fastinv", "info"], env=env, capture_output=True, text=True)
    assert r.returncode == 1
    assert r.stderr.startswith("fastinv info: error:") and "avx9000" in r.stderr
    assert "Traceback" not in r.stderr
    # the Stokes kernels read the same variable and give the same error
    code = (
        "from fastinv.stokes import MilneEddington; MilneEddington().synthesize(dict(B=[1.0], "
        "inclination=0, azimuth=0, vlos=0, doppler_width=30, damping=0.2, eta0=10, S0=0.2, S1=0.8))"
    )
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert r.returncode != 0 and "ValueError" in r.stderr and "avx9000" in r.stderr


# ---- progress bars ----------------------------------------------------------------------


def test_progress_bar_is_quiet_when_stderr_is_not_a_terminal(capsys):
    from fastinv._progress import progress_bar

    with progress_bar(100, desc="test", enabled=True) as bar:  # pytest's stderr is not a TTY
        bar.update(100)
    assert capsys.readouterr().err == ""
    assert progress_bar(5, enabled=True).disable and progress_bar(5, enabled=False).disable


def test_one_progress_display_in_the_package():
    import pathlib

    root = pathlib.Path(fastinv.__file__).parent
    hand_written = [
        p.name
        for p in root.rglob("*.py")
        if "\\r[" in p.read_text() or "class ProgressBar" in p.read_text() or "class TextProgress" in p.read_text()
    ]
    assert hand_written == []
