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
