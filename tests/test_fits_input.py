"""Damaged FITS inputs: every reader fails fast with an OSError naming the file and the
keyword, before astropy allocates or loops (``fastinv._fits.check_fits_structure``).

Reference: the FITS standard 4.0 (sections 4.4.1, 7: mandatory keywords, data size
|BITPIX|/8 x GCOUNT x (PCOUNT + NAXIS1 x ... x NAXISn), 2880-byte blocks); unmodified files
written by astropy pass.
"""

from __future__ import annotations

import gzip
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from fastinv import datasets
from fastinv._fits import TruncatedFitsError, check_fits_structure, open_fits


def set_card(raw: bytes, key: str, value: str, occurrence: int = 0) -> bytes:
    """``raw`` with the ``occurrence``-th card ``key`` replaced by ``key = value``."""
    start = -1
    for _ in range(occurrence + 1):
        start = next(
            i for i in range(start + 1, len(raw), 80) if i % 80 == 0 and raw[i : i + 8] == key.ljust(8).encode()
        )
    card = f"{key:<8}= {value:>20}".ljust(80).encode()
    return raw[:start] + card + raw[start + 80 :]


@pytest.fixture
def aia(tmp_path) -> tuple[list[str], bytes]:
    files = [str(f) for f in datasets.aia_flare_files()]
    return files, Path(files[2]).read_bytes()


def _hinode_like(tmp_path) -> Path:
    h = fits.Header()
    h["INSTRUME"], h["CTYPE1"], h["CRVAL1"], h["CDELT1"], h["CRPIX1"] = "SOT/SP", "WAVELENGTH", 6302.08, 0.0215, 56.5
    p = tmp_path / "SP3D_slit.fits"
    fits.PrimaryHDU(np.ones((4, 3, 112), np.int16), header=h).writeto(p)
    return p


MUTATIONS = {
    "naxis_huge": (lambda r: set_card(r, "NAXIS", "99999999999999999999"), "NAXIS = 99999999999999999999"),
    "naxis_negative": (lambda r: set_card(r, "NAXIS", "-1"), "NAXIS = -1"),
    "naxis1_huge": (lambda r: set_card(r, "NAXIS1", "4000000000000"), "bytes of data"),
    "naxis2_text": (lambda r: set_card(r, "NAXIS2", "'many'"), "NAXIS2"),
    "naxis1_negative": (lambda r: set_card(r, "NAXIS1", "-67"), "negative NAXISn"),
    "bitpix_7": (lambda r: set_card(r, "BITPIX", "7"), "BITPIX = 7"),
    "no_simple": (lambda r: b"XIMPLE" + r[6:], "no SIMPLE"),
    "simple_false": (lambda r: set_card(r, "SIMPLE", "F"), "SIMPLE = T"),
    "data_truncated": (lambda r: r[: len(r) - 4000], "truncated"),
    "header_truncated": (lambda r: r[:2880], "without an END card"),
    "empty": (lambda r: b"", "empty"),
    "no_end": (lambda r: r.replace(b"END" + b" " * 77, b"COMMENT" + b" " * 73), "END"),
}


@pytest.mark.parametrize("name", MUTATIONS)
def test_damaged_header_is_named(tmp_path, aia, name):
    mutate, words = MUTATIONS[name]
    p = tmp_path / f"aia_{name}.fits"
    p.write_bytes(mutate(aia[1]))
    t0 = time.perf_counter()
    with pytest.raises(OSError, match=words) as exc:
        check_fits_structure(p)
    assert str(p) in str(exc.value)
    assert time.perf_counter() - t0 < 1.0


def test_truncation_is_its_own_error_type(tmp_path, aia):
    # the watch mode retries these (a file still being copied), not the others
    p = tmp_path / "cut.fits"
    p.write_bytes(aia[1][:-4000])
    with pytest.raises(TruncatedFitsError):
        check_fits_structure(p)
    p.write_bytes(set_card(aia[1], "BITPIX", "7"))
    with pytest.raises(OSError) as exc:
        check_fits_structure(p)
    assert not isinstance(exc.value, TruncatedFitsError)


def test_valid_files_pass(tmp_path, aia):
    for f in aia[0]:
        check_fits_structure(f)
    check_fits_structure(_hinode_like(tmp_path))
    # multi-extension, binary table with a heap, random groups, no final padding
    hdul = fits.HDUList(
        [
            fits.PrimaryHDU(),
            fits.ImageHDU(np.zeros((3, 5), ">f8")),
            fits.BinTableHDU.from_columns([fits.Column("v", "PJ()", array=[np.arange(3), np.arange(7)])]),
            fits.CompImageHDU(np.arange(400.0).reshape(20, 20)),
        ]
    )
    p = tmp_path / "mef.fits"
    hdul.writeto(p)
    check_fits_structure(p)
    groups = fits.GroupsHDU(fits.GroupData(np.zeros((4, 1, 2), ">f4"), parnames=["a"], pardata=[np.zeros(4)]))
    groups.writeto(tmp_path / "groups.fits")
    check_fits_structure(tmp_path / "groups.fits")
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(np.ones((3, 5), ">f8"))]).writeto(tmp_path / "pad.fits")
    with fits.open(tmp_path / "pad.fits") as h:
        end = h.fileinfo(1)["datLoc"] + 15 * 8
    (tmp_path / "nopad.fits").write_bytes((tmp_path / "pad.fits").read_bytes()[:end])
    check_fits_structure(tmp_path / "nopad.fits")
    (tmp_path / "short.fits").write_bytes((tmp_path / "pad.fits").read_bytes()[: end - 1])
    with pytest.raises(TruncatedFitsError):
        check_fits_structure(tmp_path / "short.fits")


def test_gzip_files(tmp_path, aia):
    p = tmp_path / "a.fits.gz"
    p.write_bytes(gzip.compress(aia[1]))
    check_fits_structure(p)
    with open_fits(p) as hdul:
        assert hdul[0].data.shape == (67, 67)
    p.write_bytes(gzip.compress(aia[1])[:-300])
    with pytest.raises(TruncatedFitsError, match=str(p)):
        check_fits_structure(p)
    p.write_bytes(gzip.compress(set_card(aia[1], "NAXIS1", "4000000000000")))
    with pytest.raises(OSError, match="bytes of data"):
        check_fits_structure(p)


def test_every_reader_checks_before_astropy(tmp_path, aia):
    from fastinv.dem.io import read_aia
    from fastinv.stokes import invert_files
    from fastinv.stokes.io.hinode import read_hinode_slit
    from fastinv.stokes.io.visp import read_visp_header

    bomb = lambda p: p.write_bytes(set_card(p.read_bytes(), "NAXIS", "99999999999999999999"))  # noqa: E731
    bad_aia = tmp_path / "aia_171.fits"
    bad_aia.write_bytes(aia[1])
    bomb(bad_aia)
    files = aia[0][:2] + [str(bad_aia)] + aia[0][3:]
    slit = _hinode_like(tmp_path)
    bomb(slit)
    for call in (
        lambda: read_aia(files),
        lambda: read_hinode_slit(slit),
        lambda: read_visp_header(slit),
        lambda: invert_files([slit], "hinode"),
    ):
        with pytest.raises(OSError, match="NAXIS = 99999999999999999999") as exc:
            call()
        assert str(bad_aia) in str(exc.value) or str(slit) in str(exc.value)


def test_cli_does_not_hang_on_a_huge_naxis(tmp_path, aia):
    # before the check: 100 % CPU and growing memory for as long as one waited
    bad = tmp_path / "aia_171.fits"
    bad.write_bytes(set_card(aia[1], "NAXIS", "99999999999999999999"))
    files = aia[0][:2] + [str(bad)] + aia[0][3:]
    cmd = [sys.executable, "-m", "fastinv", "dem", "bp", *files, "-o", str(tmp_path / "d.fits"), "-q"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert out.returncode == 1
    assert str(bad) in out.stderr and "NAXIS" in out.stderr and out.stderr.count("\n") == 1
