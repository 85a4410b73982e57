"""Atomic output files: written to a temporary file beside the target, then renamed
over it in one step, so a reader never sees a half-written file and a failed write
leaves the old file untouched. :func:`check_outputs` is what commands call first, so that no
output replaces one of their inputs, another of their outputs, or (without ``overwrite``)
an existing file.

Temporary files are named ``.fastinv-tmp-<pid>-<target name>.<random><suffix>``: removed on
any exception; a run killed outright (SIGKILL, power loss) leaves one, which the next
atomic write into that folder removes when it is older than that run and its process is
gone.

An output path that is a symbolic link is replaced by the new file (the rename replaces
the link); the file the link pointed to is left as it was, unless it is one of the
command's inputs, which is refused.
"""

from __future__ import annotations

import glob
import os
import re
import tempfile
import time
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Iterable, Iterator


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_FILE_MODE = 0o666 & ~_umask()  # what open() would give; mkstemp alone gives 0600
_TMP_PREFIX = ".fastinv-tmp-"
_TMP_NAME = re.compile(re.escape(_TMP_PREFIX) + r"(\d+)-")
_RUN_STARTED = time.time()  # temporary files older than this run may be stale


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, owned by someone else
        return True
    return True


def remove_stale_temporaries(folder: str | os.PathLike) -> list[Path]:
    """Remove fastinv temporary files in ``folder`` left by killed runs: named by
    :func:`atomic_output`, modified before this run started, and their process gone.
    Returns the removed paths."""
    removed = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for e in entries:
        m = _TMP_NAME.match(e.name)
        if not m or int(m.group(1)) == os.getpid() or _process_alive(int(m.group(1))):
            continue
        with suppress(OSError):
            if e.is_file(follow_symlinks=False) and e.stat(follow_symlinks=False).st_mtime < _RUN_STARTED:
                os.unlink(e.path)
                removed.append(Path(e.path))
    return removed


@contextmanager
def atomic_output(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path``.

    Examples
    --------
    >>> with atomic_output("out.fits") as tmp:        # doctest: +SKIP
    ...     hdul.writeto(tmp)
    """
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    remove_stale_temporaries(folder)
    fd, tmp = tempfile.mkstemp(
        dir=folder, prefix=f"{_TMP_PREFIX}{os.getpid()}-{path.name}.", suffix=path.suffix or ".tmp"
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
    return sorted(path.parent.glob(f"{_TMP_PREFIX}[0-9]*-{glob.escape(path.name)}.*"))


def write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_output(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def _same(a: str, b: str) -> bool:
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    try:
        return os.path.samefile(a, b)  # hard links, case-insensitive file systems
    except OSError:
        return False


def check_outputs(outputs: Iterable, inputs: Iterable = (), overwrite: bool = False) -> None:
    """Refuse outputs that would destroy a file the caller did not mean to replace.

    Parameters
    ----------
    outputs : iterable of path or None
        The files a command will write (None entries are ignored).
    inputs : iterable of path
        The files it reads.
    overwrite : bool
        Allow replacing existing files that are not inputs.

    Raises
    ------
    ValueError
        An output is one of the inputs (also through a symbolic or hard link), or two
        outputs are the same file.
    FileExistsError
        An output exists and ``overwrite`` is False.
    """
    outs = [os.fspath(o) for o in outputs if o is not None]
    ins = [os.fspath(i) for i in inputs]
    for k, out in enumerate(outs):
        for i in ins:
            if _same(out, i):
                raise ValueError(f"{out}: this output is also an input ({i}); refusing to overwrite an input")
        for other in outs[:k]:
            if _same(out, other):
                raise ValueError(f"{out} and {other} name the same file; give each output its own path")
        if os.path.lexists(out) and not overwrite:
            raise FileExistsError(f"{out} exists; pass overwrite=True (command line: --overwrite) to replace it")
