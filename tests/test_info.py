"""fastinv.info() against what the kernel (/proc/cpuinfo) and OpenMP report."""

import os
import sys

import fastinv
import pytest


def _cpu_flags() -> set[str]:
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    return set()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/cpuinfo")
def test_available_isas_match_cpu_flags():
    flags = _cpu_flags()
    info = fastinv.info()
    assert info["available_isas"][0] == "generic"
    assert ("avx2" in info["available_isas"]) <= ({"avx2", "fma"} <= flags)
    assert ("avx512" in info["available_isas"]) <= ({"avx512f", "avx512bw", "avx512dq", "avx512vl"} <= flags)
    assert info["isa"] == info["available_isas"][-1] or "FASTINV_ISA" in os.environ


def test_threads_follow_omp_num_threads():
    import subprocess

    code = "import fastinv; print(fastinv.info()['threads'])"
    env = dict(os.environ, OMP_NUM_THREADS="3")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    expected = 3 if fastinv.info()["openmp"] else 1
    assert int(out.stdout.strip()) == expected
