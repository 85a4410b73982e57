"""The machine a benchmark ran on, and the hardware limit its rates are fractions of.

Shared by ``fastinv bench`` and the benchmarks in ``bench/`` (bench/conftest.py), so both
describe a machine and measure its peak the same way.
"""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable
from typing import Any

from .. import _core

__all__ = ["cpu_model", "machine_info", "measure_peak", "CpuTimed"]


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``, else :func:`platform.processor`).

    Examples
    --------
    >>> isinstance(cpu_model(), str)
    True
    """
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def measure_peak(threads: int, precision: str = "fp32", seconds: float = 0.2, isa: str | None = None) -> float:
    """Measured multiply-add peak of this CPU in GFLOP/s, summed over ``threads`` threads.

    The float32 FMA peak with the instructions of ``isa`` (default: the kernels in use),
    or for ``precision="bf16"`` (or ``"bf16x2"``, the same instructions) the bfloat16
    dot-product peak where this build can measure it. Measured, not looked up: on a
    machine shared with other jobs it is the rate a thread really gets now, so a rate
    divided by a peak measured in the same run is the figure that survives the load.

    Raises
    ------
    ValueError
        ``precision`` is not fp32, tf32, bf16 or bf16x2, or a bf16 one and this build has no
        bf16 peak loop.

    Examples
    --------
    >>> measure_peak(1, seconds=0.01) > 0
    True
    """
    isa = isa or _core.active_isa()
    if precision in ("fp32", "tf32"):
        return float(_core.measure_fma_peak(isa, threads, seconds))
    if precision in ("bf16", "bf16x2"):
        bf16_peak = getattr(_core, "measure_bf16_peak", None)
        if bf16_peak is None:
            raise ValueError("this fastinv build cannot measure a bf16 peak (no bf16 CPU kernels compiled in)")
        return float(bf16_peak(threads, seconds))
    raise ValueError(f"precision must be 'fp32', 'tf32', 'bf16' or 'bf16x2', got {precision!r}")


def machine_info(threads: int, isa: str | None = None) -> dict[str, Any]:
    """Facts about this machine for a results file: CPU, cores, kernels, versions, load.

    ``loadavg_1min`` matters on a shared machine: rates measured under load are low, the
    ratios and fractions of a peak measured in the same run much less so.

    Examples
    --------
    >>> info = machine_info(threads=1)
    >>> info["threads"], "loadavg_1min" in info
    (1, True)
    """
    from .. import __version__

    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "threads": threads,
        "isa": isa or _core.active_isa(),
        "available_isas": list(_core.available_isas()),
        "fastinv": __version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "loadavg_1min": os.getloadavg()[0],
    }


class CpuTimed:
    """Wraps a call and accumulates its process CPU time: rates per CPU-second do not
    depend on how busy a shared machine is (wall-clock figures do).

    Examples
    --------
    >>> timed = CpuTimed(sum)
    >>> timed([1, 2, 3]), timed.calls
    (6, 1)
    """

    def __init__(self, fn: Callable[..., Any]) -> None:
        self.fn, self.cpu, self.calls = fn, 0.0, 0

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        t = time.process_time()
        try:
            return self.fn(*args, **kwargs)
        finally:
            self.cpu += time.process_time() - t
            self.calls += 1
