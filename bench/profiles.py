"""Timing helpers shared by the Stokes synthesis benchmarks (profiles per second)."""

from __future__ import annotations

import os

from fastinv.benchmarking import CpuTimed

__all__ = ["CpuTimed", "record_profiles"]


def record_profiles(benchmark, n: int, timed: CpuTimed | None = None, **extra) -> None:
    """Profiles/s (wall), profiles per CPU-second and the load average into extra_info."""
    if benchmark.stats is None:  # --benchmark-disable
        return
    benchmark.extra_info["loadavg_1min"] = os.getloadavg()[0]
    benchmark.extra_info["profiles"] = n
    benchmark.extra_info["profiles_per_s"] = n / benchmark.stats.stats.mean
    benchmark.extra_info.update(extra)
    if timed is not None and timed.calls:
        benchmark.extra_info["profiles_per_cpu_s"] = n * timed.calls / timed.cpu
