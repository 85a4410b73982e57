"""Atomic outputs: same permissions as a plain open(), old file intact on failure."""

import os

import pytest
from fastinv._atomic import atomic_output, temporaries, write_text


def test_mode_matches_plain_open(tmp_path):
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    write_text(tmp_path / "atomic.txt", "y")
    assert (tmp_path / "atomic.txt").stat().st_mode == plain.stat().st_mode
    assert sorted(p.name for p in tmp_path.iterdir()) == ["atomic.txt", "plain.txt"]


def test_failure_leaves_old_file(tmp_path):
    target = tmp_path / "out.fits"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_output(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("writer failed")
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["out.fits"]


def test_temporaries_of_a_killed_writer(tmp_path):
    import signal
    import subprocess
    import sys

    target = tmp_path / "out[1].fits"
    code = (
        "import os, signal, sys\n"
        "from fastinv._atomic import atomic_output\n"
        "with atomic_output(sys.argv[1]) as tmp:\n"
        "    tmp.write_text('half')\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code, str(target)])
    assert proc.returncode == -signal.SIGKILL and not target.exists()
    left = temporaries(target)
    assert len(left) == 1 and left[0].read_text() == "half"
    write_text(tmp_path / "other.fits", "x")
    assert temporaries(tmp_path / "other.fits") == [] and temporaries(target) == left


def test_temporary_files_are_named_and_stale_ones_removed(tmp_path):
    import signal
    import subprocess
    import sys
    import time

    # a writer killed with SIGKILL inside atomic_output leaves its temporary file ...
    code = (
        "import sys, time\n"
        "from fastinv._atomic import atomic_output\n"
        "with atomic_output(sys.argv[1]) as tmp:\n"
        "    tmp.write_bytes(b'x' * 1000)\n"
        "    print('writing', flush=True)\n"
        "    time.sleep(60)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code, str(tmp_path / "out.fits")], stdout=subprocess.PIPE)
    assert proc.stdout.readline().strip() == b"writing"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    left = [p.name for p in tmp_path.iterdir()]
    assert len(left) == 1 and left[0].startswith(f".fastinv-tmp-{proc.pid}-out.fits.") and left[0].endswith(".fits")
    # ... which the next write in that folder removes; other hidden files and the temporary
    # file of a live process (this one) are kept
    old = time.time() - 3600
    os.utime(tmp_path / left[0], (old, old))
    (tmp_path / ".other.fits.abc").write_text("not ours")
    mine = tmp_path / f".fastinv-tmp-{os.getpid()}-x.fits.abc.fits"
    mine.write_text("live")
    os.utime(mine, (old, old))
    write_text(tmp_path / "next.txt", "y")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([".other.fits.abc", mine.name, "next.txt"])
