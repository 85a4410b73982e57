"""Build the C++ library without Python and run its test program under
AddressSanitizer + UndefinedBehaviorSanitizer (the program checks itself against a
naive double-precision reference and prints 'N passed, N failed')."""
import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("cmake") is None, reason="needs cmake")
def test_cpp_engine_under_asan_ubsan(tmp_path):
    build = tmp_path / "build-asan"
    env = dict(os.environ, ASAN_OPTIONS="detect_leaks=1:abort_on_error=1", UBSAN_OPTIONS="print_stacktrace=1")
    subprocess.run(
        ["cmake", "-S", str(ROOT), "-B", str(build), "-DFASTINV_BUILD_TESTS=ON", "-DFASTINV_SANITIZE=ON",
         "-DFASTINV_CUDA=OFF", "-DCMAKE_BUILD_TYPE=RelWithDebInfo"],
        check=True, capture_output=True, text=True)
    subprocess.run(["cmake", "--build", str(build), "-j", str(os.cpu_count() or 2), "--target", "test_engine"],
                   check=True, capture_output=True, text=True)
    out = subprocess.run([str(build / "cpp" / "tests" / "test_engine")], capture_output=True, text=True, env=env)
    print(out.stdout, out.stderr)
    assert out.returncode == 0, out.stdout + out.stderr
    assert ", 0 failed" in out.stdout
