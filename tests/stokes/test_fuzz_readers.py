"""Bounded fuzz of the CLI's FITS readers (AIA, Hinode SP, ViSP) with mutated headers and
data (tests/fuzz/fuzz_readers.py): every case is read or raises ValueError/TypeError/OSError
naming the file; no other exception, crash or hang (the run has a time limit).
FASTINV_FUZZ_CASES sets the number of cases (default 600, about a minute)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from fastinv import datasets

pytest_plugins = ["_stokes_fixtures"]  # session fixture visp_raw

HERE = Path(__file__).resolve().parent


def _hinode_slits(d: Path) -> list[str]:
    from astropy.io import fits

    d.mkdir()
    out = []
    for x in range(3):
        h = fits.Header()
        h["INSTRUME"], h["CTYPE1"], h["CUNIT1"] = "SOT/SP", "WAVELENGTH", "Angstrom"
        h["CRVAL1"], h["CDELT1"], h["CRPIX1"], h["SPBSHFT"], h["SLITINDX"] = 6302.08, 0.0215, 56.5, 1, x
        h["XCEN"], h["YCEN"], h["XSCALE"], h["YSCALE"], h["CROTA2"] = -120 + 0.15 * x, 35.0, 0.15, 0.16, 0.0
        data = (np.arange(4 * 5 * 112) % 3000).reshape(4, 5, 112).astype(np.int16)
        out.append(str(d / f"SP3D_{x}.fits"))
        fits.PrimaryHDU(data, header=h).writeto(out[-1])
    return out


def test_cli_readers_survive_mutated_files(tmp_path, request):
    sets = {"aia": [str(f) for f in datasets.aia_flare_files()], "hinode": _hinode_slits(tmp_path / "sp")}
    try:
        sets["visp"] = request.getfixturevalue("visp_raw")
    except pytest.skip.Exception:
        pass
    (tmp_path / "sets.json").write_text(json.dumps(sets))
    n = int(os.environ.get("FASTINV_FUZZ_CASES", "600"))
    cmd = [sys.executable, str(HERE.parent / "fuzz" / "fuzz_readers.py"), str(tmp_path), str(n), "13"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=240)
    assert out.returncode == 0, out.stderr[-2000:]
    failures = json.loads(out.stdout.strip().splitlines()[-1])
    assert failures == [], failures[:10]
