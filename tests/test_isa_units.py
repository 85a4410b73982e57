"""The per-ISA translation units share no code with the portable path.

A weak symbol (an inline function or template instantiation) defined in an object compiled
with -mavx2/-mavx512f also exists in the units compiled for any x86-64, and the linker keeps
one copy at random: if it keeps the AVX-512 one, a machine without AVX-512 dies of SIGILL in
code it was never meant to run. Every weak symbol of an ISA unit must therefore carry its
ISA in its name (a per-ISA namespace or suffix). Reads the objects of the build the imported
extension came from: an editable install's -Cbuild-dir (scikit-build-core's import finder
records it), else build/*/ of this checkout (pyproject's build-dir, `pip install .` in CI);
skipped where there is none.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _build_dirs() -> list[Path]:
    # an editable install imports fastinv._core through scikit-build-core's finder, whose
    # `path` is the build folder (None unless the install said where); a regular one leaves build/*/
    editable = [
        Path(f.path)
        for f in sys.meta_path
        if "fastinv._core" in getattr(f, "known_wheel_files", {}) and getattr(f, "path", None)
    ]
    return editable or sorted(ROOT.glob("build/*"))


def _isa_objects() -> list[Path]:
    pattern = "CMakeFiles/fastinv.dir/cpp/src/**/*_a[mv]x*.cpp.o"  # AVX2, AVX-512, AMX
    return sorted(obj for build in _build_dirs() for obj in build.glob(pattern))


@pytest.mark.skipif(shutil.which("nm") is None, reason="needs binutils' nm")
def test_isa_units_define_no_shared_weak_symbols():
    objects = _isa_objects()
    if not objects:
        pytest.skip(
            f"no per-ISA objects in {[str(d) for d in _build_dirs()]} (not an x86-64 pip build of this checkout)"
        )
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
