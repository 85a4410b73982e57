"""Throughput benchmarking of fastinv against its peers, for users and for ``bench/``.

``fastinv bench MODEL`` (:func:`run_benchmark`) runs a model file with fastinv and with
PyTorch and ONNX Runtime where they are installed, in one run and with the same threads,
and reports samples/s, GFLOP/s and the fraction of the machine's multiply-add peak measured
in the same run. The machine description (:func:`machine_info`), the peak
(:func:`measure_peak`) and the comparison table (:func:`table_rows`) are the ones the
project's own benchmarks in ``bench/`` use.

Examples
--------
>>> from fastinv.benchmarking import run_benchmark
>>> r = run_benchmark("deepem", samples=4096, threads=1, rounds=1)   # doctest: +SKIP
>>> r["results"][0]["samples_per_s"]                                  # doctest: +SKIP
"""

from __future__ import annotations

from .machine import CpuTimed, cpu_model, machine_info, measure_peak
from .report import TABLE_HEADER, table_rows
from .runner import PEERS, SHIPPED, benchmark_input, resolve_model, run_benchmark
from .torch_graph import torch_module

__all__ = [
    "CpuTimed",
    "cpu_model",
    "machine_info",
    "measure_peak",
    "TABLE_HEADER",
    "table_rows",
    "PEERS",
    "SHIPPED",
    "benchmark_input",
    "resolve_model",
    "run_benchmark",
    "torch_module",
]
