"""The per-ISA translation units share no code with the portable path.

A weak symbol (an inline function or template instantiation) defined in an object compiled
with -mavx2/-mavx512f also exists in the units compiled for any x86-64, and the linker keeps
one copy at random: if it keeps the AVX-512 one, a machine without AVX-512 dies of SIGILL in
code it was never meant to run. Every weak symbol of an ISA unit must therefore carry its
ISA in its name (a per-ISA namespace or suffix). Reads the objects of the build that
`pip install .` leaves in build/ (pyproject's build-dir); skipped where there is none.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _isa_objects() -> list[Path]:
    return sorted(ROOT.glob("build/*/CMakeFiles/fastinv.dir/cpp/src/**/*_a[mv]x*.cpp.o"))  # AVX2, AVX-512, AMX


@pytest.mark.skipif(shutil.which("nm") is None, reason="needs binutils' nm")
def test_isa_units_define_no_shared_weak_symbols():
    objects = _isa_objects()
    if not objects:
        pytest.skip("no per-ISA objects under build/ (not an x86-64 pip build from this checkout)")
    leaks = {}
    for obj in objects:
        isa = "avx2" if "_avx2" in obj.name else "avx512" if "_avx512" in obj.name else "amx"
        out = subprocess.run(["nm", "-C", str(obj)], capture_output=True, text=True, check=True).stdout
        weak = [
            line.split(maxsplit=2)[2]
            for line in out.splitlines()
            if len(line.split(maxsplit=2)) == 3 and line.split()[1] in ("W", "V")
        ]
        shared = [name for name in weak if isa not in name]
        if shared:
            leaks[obj.name] = shared
    assert not leaks, f"weak symbols compiled for an ISA but not named for it (linker may pick them): {leaks}"
