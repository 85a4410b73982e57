"""Example data: real SDO/AIA level-1 files for the DEM tools, with SHA-256 checks.

One time step (2011-02-15 01:48 UT) of the six-channel 67x67 AIA cutouts of the X2.2 flare in
AR 11158 ships with fastinv. The other nine time steps, the 1024x1024 six-channel synoptic
set of 2014-01-01 and demregpy's response tables come from the ``demregpy`` 1.0.0 wheel on
PyPI (MIT licence; the AIA data themselves are CC0, JSOC). The wheel is downloaded once over
HTTPS, checked against a pinned SHA-256, cached, and each file taken from it is checked
against its own pinned SHA-256 (``fastinv/data/demregpy-1.0.0.sha256``).

The cache is ``$FASTINV_DATA_DIR`` if set, else ``$XDG_CACHE_HOME/fastinv`` or
``~/.cache/fastinv``.

Examples
--------
>>> from fastinv import datasets
>>> files = datasets.aia_flare_files()        # bundled: no download
>>> len(files)
6
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.request
import zipfile
from importlib import resources
from pathlib import Path
from typing import Optional

from ._atomic import atomic_output

__all__ = [
    "cache_dir",
    "demregpy_wheel",
    "demregpy_file",
    "aia_flare_files",
    "aia_flare_slots",
    "aia_synoptic_files",
    "BUNDLED_FLARE_SLOT",
]

DEMREGPY_VERSION = "1.0.0"
DEMREGPY_WHEEL_NAME = f"demregpy-{DEMREGPY_VERSION}-py3-none-any.whl"
DEMREGPY_WHEEL_URL = (
    "https://files.pythonhosted.org/packages/56/57/"
    "708778cd895d0de357f137a0333722f72ace9bd3324c216b1ac12a7c95f2/" + DEMREGPY_WHEEL_NAME
)
DEMREGPY_WHEEL_SHA256 = "f3e7f8884a7e69768aa5a60bc30418027475adca6b3291063df53b9772acfb0f"

AIA_CHANNELS = (94, 131, 171, 193, 211, 335)
BUNDLED_FLARE_SLOT = "2011-02-15T01-48"
_FLARE_DIR = "demregpy/tests/data/aia_flare/"
_SYNOPTIC_DIR = "demregpy/tests/data/aia/"


def cache_dir() -> Path:
    """Directory where downloaded data are cached (created on demand)."""
    env = os.environ.get("FASTINV_DATA_DIR")
    if env:
        root = Path(env)
    else:
        root = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "fastinv"
    root.mkdir(parents=True, exist_ok=True)
    return root


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _pinned() -> dict[str, str]:
    """Member path -> SHA-256 for every file fastinv takes from the demregpy wheel."""
    text = resources.files("fastinv").joinpath("data", "demregpy-1.0.0.sha256").read_text()
    out = {}
    for line in text.splitlines():
        if line.strip():
            digest, name = line.split()
            out[name] = digest
    return out


def _download(url: str, dest: Path) -> None:
    """HTTPS download to a temp file beside ``dest``; falls back to ``pip download``."""
    with atomic_output(dest) as tmp:
        try:
            with open(tmp, "wb") as out, urllib.request.urlopen(url, timeout=120) as resp:
                shutil.copyfileobj(resp, out)
        except OSError:
            # Networks that only reach PyPI through pip's configuration (index mirror, proxy
            # settings in pip.conf): let pip fetch the same wheel.
            tmpdir = tempfile.mkdtemp(dir=dest.parent)
            try:
                subprocess.run(
                    [
                        sys.executable,
                        "-m",
                        "pip",
                        "download",
                        "--no-deps",
                        "--python-version",
                        "3.12",
                        "--only-binary=:all:",
                        f"demregpy=={DEMREGPY_VERSION}",
                        "-d",
                        tmpdir,
                        "-q",
                    ],
                    check=True,
                    capture_output=True,
                )
                shutil.move(os.path.join(tmpdir, DEMREGPY_WHEEL_NAME), tmp)
            finally:
                shutil.rmtree(tmpdir, ignore_errors=True)


def demregpy_wheel(download: bool = True) -> Path:
    """Path of the verified demregpy 1.0.0 wheel in the cache, downloading it if needed.

    Parameters
    ----------
    download : bool
        If False and the wheel is not cached, raise ``FileNotFoundError`` instead.

    Raises
    ------
    OSError
        The download failed or the file's SHA-256 does not match the pinned one.
    """
    dest = cache_dir() / DEMREGPY_WHEEL_NAME
    if dest.is_file() and _sha256(dest) == DEMREGPY_WHEEL_SHA256:
        return dest
    if not download:
        raise FileNotFoundError(f"{DEMREGPY_WHEEL_NAME} is not in the cache {cache_dir()}")
    try:
        _download(DEMREGPY_WHEEL_URL, dest)
    except (OSError, subprocess.CalledProcessError) as exc:
        raise OSError(
            f"could not download {DEMREGPY_WHEEL_URL} ({exc}); download it by hand "
            f"into {cache_dir()} or set FASTINV_DATA_DIR"
        ) from None
    got = _sha256(dest)
    if got != DEMREGPY_WHEEL_SHA256:
        dest.unlink()
        raise OSError(
            f"SHA-256 mismatch for {DEMREGPY_WHEEL_NAME}: got {got}, expected "
            f"{DEMREGPY_WHEEL_SHA256}; the download was corrupted, try again"
        )
    return dest


def demregpy_file(member: str, download: bool = True) -> Path:
    """Extract one pinned file of the demregpy wheel into the cache and return its path.

    Parameters
    ----------
    member : str
        Path inside the wheel, e.g. ``"demregpy/data/aia_tresp_en.dat"``.
    """
    pins = _pinned()
    if member not in pins:
        raise ValueError(f"{member!r} is not one of the pinned demregpy files")
    dest = cache_dir() / "demregpy-1.0.0" / member
    if dest.is_file() and _sha256(dest) == pins[member]:
        return dest
    wheel = demregpy_wheel(download=download)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(dest) as tmp:
        with zipfile.ZipFile(wheel) as zf, open(tmp, "wb") as out:
            shutil.copyfileobj(zf.open(member), out)
        if _sha256(tmp) != pins[member]:
            raise OSError(f"SHA-256 mismatch for {member} in {wheel}")
    return dest


def aia_flare_slots() -> list[str]:
    """Time steps of the flare cutouts, e.g. ``"2011-02-15T01-48"`` (10, every 2 min)."""
    names = [m for m in _pinned() if m.startswith(_FLARE_DIR)]
    return sorted({Path(m).name[len("aia_flare_") : len("aia_flare_") + 16] for m in names})


def aia_flare_files(slot: Optional[str] = None, download: bool = True) -> list[Path]:
    """The six AIA level-1 flare cutouts (67x67, DN) of one time step, in channel order.

    Parameters
    ----------
    slot : str, optional
        One of :func:`aia_flare_slots`; default the bundled ``"2011-02-15T01-48"`` (no
        download needed).
    """
    slot = BUNDLED_FLARE_SLOT if slot is None else slot
    if slot not in aia_flare_slots():
        raise ValueError(f"unknown slot {slot!r}; choose one of {aia_flare_slots()}")
    members = {}
    for m in _pinned():
        name = Path(m).name
        if m.startswith(_FLARE_DIR) and name.startswith(f"aia_flare_{slot}"):
            members[int(name[-8:-5])] = m
    if slot == BUNDLED_FLARE_SLOT:
        root = resources.files("fastinv").joinpath("data", "aia_flare")
        return [Path(str(root.joinpath(Path(members[c]).name))) for c in AIA_CHANNELS]
    return [demregpy_file(members[c], download=download) for c in AIA_CHANNELS]


def aia_synoptic_files(download: bool = True) -> list[Path]:
    """The six 1024x1024 AIA level-1.5 synoptic images of 2014-01-01 00:00 (channel order).

    Their pixel values are means over 4x4 original pixels (DN per 0.6" pixel), not
    exposure-normalised.
    """
    return [
        demregpy_file(f"{_SYNOPTIC_DIR}aia_synoptic_2014-01-01T00-00-00_{c:03d}.fits", download=download)
        for c in AIA_CHANNELS
    ]
