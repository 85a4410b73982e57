"""Shared fixtures for fastinv's benchmarks: machine facts and the measured FMA peak
(fastinv.benchmarking, which ``fastinv bench`` uses too).

Run everything (results JSON lands in bench/results/):

    python -m pytest bench -o python_files='bench_*.py' \
        --benchmark-json=bench/results/<name>.json
    python bench/summarize.py bench/results/<name>.json
"""

from __future__ import annotations

import os
import platform

import fastinv
import pytest
from fastinv import _core
from fastinv.benchmarking import cpu_model, measure_peak

THREADS = int(os.environ.get("FASTINV_BENCH_THREADS", str(os.cpu_count() or 1)))


@pytest.fixture(scope="session")
def machine() -> dict:
    """Machine facts and the measured float32 FMA (and bf16 dot-product) peaks (GFLOP/s) at THREADS threads."""
    isa = _core.active_isa()
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "threads": THREADS,
        "isa": isa,
        "fma_peak_gflops": measure_peak(THREADS, seconds=1.0, isa=isa),
        "fma_peak_gflops_1thread": measure_peak(1, seconds=1.0, isa=isa),
        # vdpbf16ps measured the same way (None: no AVX512-BF16): the bf16 cases' limit
        "bf16_peak_gflops": measure_peak(THREADS, "bf16", 1.0) if _core.bf16_available() else None,
        "load_avg_at_start": os.getloadavg(),
        "fastinv": fastinv.__version__,
        "python": platform.python_version(),
    }


def pytest_benchmark_update_machine_info(config, machine_info):
    machine_info["fastinv_cpu_model"] = cpu_model()
    machine_info["fastinv_isa"] = _core.active_isa()
    machine_info["fastinv_threads"] = THREADS
