"""The ``threads`` argument of every parallel entry point: validated in C++ against one
limit (4 x the hardware threads), and never more OpenMP threads than there is work.

Before the limit, ``threads=100000`` crashed libgomp (SIGSEGV) or failed thread creation.
References: the limit is computed here from ``os.cpu_count()``-independent
``_core.max_threads()`` and checked against ``std::thread::hardware_concurrency`` through the
message; results at the limit are compared bitwise with ``threads=1``.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from fastinv import _core, datasets
from fastinv.cli import main
from fastinv.dem import BasisPursuit, DeepEM
from fastinv.stokes import LTE, MilneEddington, atmospheres

LIMIT = _core.max_threads()
ME_PARAMS = dict(B=100.0, inclination=30.0, azimuth=0.0, vlos=0.0, doppler_width=30.0, damping=0.2, eta0=8.0)
ME_PARAMS.update(S0=0.3, S1=0.7)


def _bp(threads):
    y = np.full((6, 3), 50.0)
    return BasisPursuit().solve(y, exptime=np.ones(6), threads=threads).em


def _deepem(threads):
    return DeepEM.load().invert(np.full((6, 2, 2), 50.0), threads=threads).em


def _model(threads):
    return DeepEM.load().model(np.full((6, 1, 3), 5.0, np.float32), threads=threads)


def _me(threads):
    return MilneEddington().synthesize(ME_PARAMS, threads=threads)


def _lte(threads):
    return LTE(wavelength=np.arange(6301.0, 6301.6, 0.05)).synthesize(atmospheres.falc(), threads=threads)


ENTRIES = {"BasisPursuit.solve": _bp, "DeepEM": _deepem, "Model.run": _model, "ME": _me, "LTE": _lte}


def test_max_threads_is_four_times_the_hardware_threads():
    import os

    hw = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    # hardware_concurrency counts all online CPUs, the affinity mask may be smaller
    assert LIMIT % 4 == 0 and LIMIT >= 4 * hw
    assert 1 <= _core.default_threads() <= LIMIT


@pytest.mark.parametrize("entry", ENTRIES)
@pytest.mark.parametrize("threads", [LIMIT + 1, 100_000, 2**31 - 1])
def test_too_many_threads_is_a_clear_error(entry, threads):
    with pytest.raises(ValueError, match=f"threads = {threads} is above the limit of {LIMIT}"):
        ENTRIES[entry](threads)


@pytest.mark.parametrize("entry", ["BasisPursuit.solve", "DeepEM", "ME", "LTE"])
def test_negative_threads_is_an_error(entry):
    with pytest.raises(ValueError, match="threads must be"):
        ENTRIES[entry](-2)


@pytest.mark.parametrize("entry", ENTRIES)
def test_the_limit_itself_works_and_changes_nothing(entry):
    np.testing.assert_array_equal(ENTRIES[entry](LIMIT), ENTRIES[entry](1))


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="counts threads in /proc")
@pytest.mark.skipif(not _core.openmp_enabled(), reason="built without OpenMP")
def test_no_more_threads_than_work_items():
    # libgomp keeps a region's threads alive afterwards: the process's thread count after a
    # one-item call with threads=LIMIT shows how many it started.
    code = textwrap.dedent(
        f"""
        import re
        import numpy as np
        from fastinv.dem import BasisPursuit
        from fastinv.stokes import MilneEddington
        def count():
            return int(re.search(r"Threads:\\s+(\\d+)", open("/proc/self/status").read()).group(1))
        before = count()
        MilneEddington().synthesize({ME_PARAMS!r}, threads={LIMIT})
        BasisPursuit().solve(np.full((6, 1), 50.0), exptime=np.ones(6), threads={LIMIT})
        print(count() - before)
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert int(out.stdout.split()[-1]) == 0, out


def test_cli_threads_out_of_range_is_a_usage_error(tmp_path, capsys):
    files = [str(f) for f in datasets.aia_flare_files()]
    for bad in ("100000", "0", "-1", "many"):
        with pytest.raises(SystemExit) as exc:
            main(["dem", "bp", *files, "-o", str(tmp_path / "d.fits"), "--threads", bad, "-q"])
        assert exc.value.code == 2
        err = capsys.readouterr().err
        assert "--threads" in err and (f"1..{LIMIT}" in err or "integer" in err), err
    assert not (tmp_path / "d.fits").exists()
