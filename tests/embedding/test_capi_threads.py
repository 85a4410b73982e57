"""The C API's thread-safety promise under ThreadSanitizer: cpp/tests/test_capi_threads.c runs
8 threads x 128 calls on one DeepEM, one Basis Pursuit (with Monte-Carlo errors) and one
Stokes handle and compares every result bitwise with a serial run. The library is built
without OpenMP for it: libgomp is not instrumented for TSan (its own synchronisation would be
reported as races), so each call runs on its calling thread."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest
from _embed import ROOT, clean_env, require_tools, run


@pytest.mark.slow
def test_eight_threads_share_handles_under_tsan(tmp_path):
    require_tools("cmake", "cc", "c++")
    build = tmp_path / "build-tsan"
    gen = ["-G", "Ninja"] if shutil.which("ninja") else []
    tsan = "-fsanitize=thread"
    run(
        [
            "cmake", "-S", ROOT, "-B", build, *gen,
            "-DFASTINV_CUDA=OFF", "-DFASTINV_BUILD_TESTS=ON", "-DFASTINV_SHARED=OFF", "-DFASTINV_INSTALL=OFF",
            "-DCMAKE_DISABLE_FIND_PACKAGE_OpenMP=ON", "-DCMAKE_BUILD_TYPE=RelWithDebInfo",
            f"-DCMAKE_C_FLAGS={tsan}", f"-DCMAKE_CXX_FLAGS={tsan}", f"-DCMAKE_EXE_LINKER_FLAGS={tsan}",
        ]
    )  # fmt: skip
    run(["cmake", "--build", build, "-j", str(os.cpu_count() or 2), "--target", "test_capi_threads"])
    env = clean_env(
        FASTINV_DATA_DIR=str(ROOT / "python" / "fastinv" / "data"),
        TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1",
    )
    out = subprocess.run([build / "cpp" / "tests" / "test_capi_threads"], capture_output=True, text=True, env=env)
    print(out.stdout, out.stderr)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "ThreadSanitizer" not in out.stderr
    assert "8 passed, 0 failed" in out.stdout
