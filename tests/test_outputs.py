"""No command destroys a file it was not asked to replace: an output that is an input (also
through a link), two outputs naming one file, an existing output without --overwrite.

Reference: the input files' bytes before and after the refused command (SHA-256), and the
FileExistsError/ValueError texts; with --overwrite the replaced file is a new FITS file.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import pytest
from astropy.io import fits
from fastinv import datasets
from fastinv.cli import main


def _digest(paths) -> list[str]:
    return [hashlib.sha256(Path(p).read_bytes()).hexdigest() for p in paths]


@pytest.fixture
def aia(tmp_path) -> list[str]:
    """Copies of the shipped AIA files (the tests may try to destroy them)."""
    out = []
    for f in datasets.aia_flare_files():
        out.append(str(tmp_path / Path(f).name))
        shutil.copy(f, out[-1])
    return out


def _refused(capsys, argv, words, files) -> None:
    before = _digest(files)
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert words in err, err
    assert _digest(files) == before


def test_output_that_is_an_input_is_refused(tmp_path, aia, capsys):
    for method in ("deepem", "bp"):
        for opt in ("-o", "--png"):
            argv = ["dem", method, *aia, "-o", str(tmp_path / "d.fits"), opt, aia[3]]
            _refused(capsys, argv + (["-q"] if method == "bp" else []), "this output is also an input", aia)
    link = tmp_path / "link.fits"
    os.symlink(aia[0], link)
    _refused(capsys, ["dem", "deepem", *aia, "-o", str(link)], "also an input", aia)
    os.link(aia[1], tmp_path / "hard.fits")
    _refused(capsys, ["dem", "deepem", *aia, "-o", str(tmp_path / "hard.fits")], "also an input", aia)


def test_two_outputs_naming_one_file_are_refused(tmp_path, aia, capsys):
    out = str(tmp_path / "d.fits")
    _refused(capsys, ["dem", "deepem", *aia, "-o", out, "--compare-bp", out], "name the same file", aia)
    _refused(capsys, ["dem", "deepem", *aia, "-o", out, "--png", out], "name the same file", aia)
    assert not Path(out).exists()


def test_existing_output_needs_overwrite(tmp_path, aia, capsys):
    out = tmp_path / "d.fits"
    out.write_bytes(b"precious")
    out.chmod(0o444)
    _refused(capsys, ["dem", "deepem", *aia, "-o", str(out)], "exists; pass overwrite=True", [out])
    assert main(["dem", "deepem", *aia, "-o", str(out), "--overwrite"]) == 0
    with fits.open(out) as hdul:
        assert hdul[0].data.shape[1:] == (67, 67)
    # a symlinked output is replaced by the file; its old target is left alone
    target = tmp_path / "target.fits"
    target.write_bytes(b"keep me")
    link = tmp_path / "link.fits"
    os.symlink(target, link)
    assert main(["dem", "deepem", *aia, "-o", str(link), "--overwrite"]) == 0
    assert not link.is_symlink() and target.read_bytes() == b"keep me"


@pytest.mark.parametrize("method", ["deepem", "bp"])
def test_bin_larger_than_the_image_is_a_clear_error(tmp_path, aia, capsys, method):
    out = tmp_path / "d.fits"
    rc = main(["dem", method, *aia, "-o", str(out), "--bin", "68", "-q"] if method == "bp" else
              ["dem", method, *aia, "-o", str(out), "--bin", "68"])  # fmt: skip
    assert rc == 1 and "bin = 68 is larger than the images (67 x 67 pixels)" in capsys.readouterr().err
    assert not out.exists()


def test_watch_output_directory_checks(tmp_path):
    pytest.importorskip("torch")
    from fastinv.stokes import FrameInverter

    inv = FrameInverter(None, "visp")
    with pytest.raises(ValueError, match="is the watched directory"):
        next(iter(inv.watch(tmp_path, output_dir=tmp_path, timeout=0)))
    out = tmp_path / "out"
    out.mkdir()
    (out / "step_00001.fits").write_bytes(b"old")
    with pytest.raises(FileExistsError, match="holds results already"):
        next(iter(inv.watch(tmp_path, output_dir=out, timeout=0)))
    assert list(inv.watch(tmp_path, output_dir=out, timeout=0, overwrite=True)) == []


@pytest.mark.parametrize("value, words", [(True, "EXPTIME = True is not a number"), ("2.9", "is not a number"),
                                          (-1.0, "outside"), (1e300, "outside")])  # fmt: skip
@pytest.mark.filterwarnings("ignore:Invalid 'BLANK' keyword")
def test_aia_exptime_type_and_range(tmp_path, aia, value, words):
    from fastinv.dem.io import read_aia

    with fits.open(aia[2], mode="update") as hdul:
        hdul[0].header["EXPTIME"] = value
    with pytest.raises(ValueError, match=words) as exc:
        read_aia(aia)
    assert aia[2] in str(exc.value)


def test_complex_input_is_a_type_error():
    # the imaginary part would be dropped with only a ComplexWarning
    import numpy as np
    from fastinv.dem import BasisPursuit, DeepEM
    from fastinv.stokes import FrameInverter, MilneEddington

    y = np.full((6, 2, 2), 50.0) + 1j
    for call in (
        lambda: BasisPursuit().solve(y, exptime=np.ones(6)),
        lambda: DeepEM.load().invert(y),
        lambda: MilneEddington().synthesize(dict(B=1.0 + 1j, inclination=0.0, azimuth=0.0, vlos=0.0,
                                                 doppler_width=30.0, damping=0.2, eta0=8.0, S0=0.3, S1=0.7)),
        lambda: FrameInverter(None, "hinode").invert_frame(
            np.ones((4, 3, 112)) + 1j, wavelength=6302.08 + (np.arange(112) - 55.5) * 0.0215
        ),
    ):  # fmt: skip
        with pytest.raises(TypeError, match="real"):
            call()


def test_train_and_evaluate_refuse_too(tmp_path, capsys):
    existing = tmp_path / "m.safetensors"
    existing.write_bytes(b"old model")
    _refused(capsys, ["train", "deepem", "-o", str(existing), "-q"], "exists; pass overwrite=True", [existing])
    data = tmp_path / "set.h5"
    data.write_bytes(b"training set")
    _refused(capsys, ["train", "stokes", str(data), "-o", str(data), "-q"], "also an input", [data])
    model = Path(datasets.aia_flare_files()[0]).parents[1] / "deepem.safetensors"
    _refused(capsys, ["evaluate", "deepem", "--model", str(model), "-o", str(model)], "also an input", [model])
