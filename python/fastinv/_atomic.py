"""Atomic output files: written to a temporary file beside the target, then renamed
over it in one step, so a reader never sees a half-written file and a failed write
leaves the old file untouched."""

from __future__ import annotations

import glob
import os
import tempfile
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Iterator


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_FILE_MODE = 0o666 & ~_umask()  # what open() would give; mkstemp alone gives 0600


@contextmanager
def atomic_output(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path``.

    Examples
    --------
    >>> with atomic_output("out.fits") as tmp:        # doctest: +SKIP
    ...     hdul.writeto(tmp)
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(
        dir=path.parent if str(path.parent) else ".", prefix=f".{path.name}.", suffix=path.suffix or ".tmp"
    )
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, _FILE_MODE)
        os.replace(tmp, path)
    except BaseException:
        with suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def temporaries(path: str | os.PathLike) -> list[Path]:
    """Temporary files :func:`atomic_output` made for ``path`` and never renamed or removed
    (their writer was killed with SIGKILL, or its machine went down)."""
    path = Path(path)
    return sorted(path.parent.glob(f".{glob.escape(path.name)}.*"))


def write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_output(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
