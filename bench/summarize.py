"""The one summary writer of bench/: pytest-benchmark JSON in, markdown out.

:class:`Run` reads a results file and describes its machine the same way for every benchmark;
:func:`write_markdown` writes a summary (atomically, like every file fastinv writes).
:func:`summarize` is the engine benchmark's table: per case, each implementation's median
time, samples/s, GFLOP/s of the layers as written, the fraction of the measured FMA peak that
the FLOPs it executed reach, and fastinv's speed-up over it.
"""

from __future__ import annotations

import json
import math
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from fastinv._atomic import write_text
from fastinv.benchmarking import TABLE_HEADER, table_rows


@dataclass
class Run:
    """One pytest-benchmark results file."""

    data: dict

    @classmethod
    def load(cls, path: str | Path) -> "Run":
        return cls(json.loads(Path(path).read_text()))

    @property
    def benchmarks(self) -> dict[str, dict]:
        """Benchmark name -> its entry."""
        return {b["name"]: b for b in self.data["benchmarks"]}

    def extra(self, name: str, key: str) -> float:
        """``extra_info[key]`` of benchmark ``name``; NaN when it did not run."""
        b = self.benchmarks.get(name)
        return b["extra_info"].get(key, math.nan) if b else math.nan

    def max_load(self) -> float:
        """Highest 1-min load average any benchmark recorded (0 when none did)."""
        return max((b["extra_info"].get("loadavg_1min", 0) for b in self.data["benchmarks"]), default=0)

    def machine_line(self, *details: str) -> str:
        """``- machine: CPU, N logical CPUs (shared), Python, date; load`` and why ratios are
        the figures to quote on a shared machine."""
        mi = self.data["machine_info"]
        parts = [
            f"{mi.get('cpu', {}).get('brand_raw', mi.get('processor'))}",
            f"{mi.get('cpu', {}).get('count', '?')} logical CPUs (shared)",
            *details,
            f"Python {mi['python_version']}",
            str(self.data["datetime"]),
        ]
        return (
            f"- machine: {', '.join(parts)}; 1-min load average during the run up to "
            f"{self.max_load():.1f} (other jobs share the CPUs: the ratios, measured side "
            "by side in one run, are the figures to quote)"
        )


def write_markdown(md_path: str | Path, lines: list[str]) -> str:
    """Join ``lines``, write them to ``md_path`` atomically and return the text."""
    text = "\n".join(lines).rstrip("\n") + "\n"
    write_text(md_path, text)
    return text


def summarize(*paths: str) -> str:
    benchmarks = []
    for path in paths:
        with open(path) as f:
            data = json.load(f)
        benchmarks += data["benchmarks"]
    cases: dict[str, dict[str, dict]] = defaultdict(dict)
    for b in benchmarks:
        info = b["extra_info"]
        if "case" in info and "impl" in info:
            cases[info["case"]][info["impl"]] = {"median": b["stats"]["median"], **info}
    m = data["machine_info"]
    lines = [
        f"Machine: {m.get('fastinv_cpu_model', m.get('cpu', {}).get('brand_raw', '?'))}, "
        f"{m.get('fastinv_threads')} threads, ISA {m.get('fastinv_isa')}; "
        f"commit {data.get('commit_info', {}).get('id', '?')[:10]}",
        "",
        *TABLE_HEADER,
    ]
    for case, impls in cases.items():
        lines += table_rows(case, impls)
    # benchmarks that do not measure the FMA peak (e.g. the DeepEM stages) get no peak line
    peaks = [i["fma_peak_gflops"] for impls in cases.values() for i in impls.values() if "fma_peak_gflops" in i]
    if peaks:
        lines += ["", f"Measured FMA peak: {peaks[0]:.1f} GFLOP/s (fastinv._core.measure_fma_peak)."]
    return "\n".join(lines)


if __name__ == "__main__":
    print(summarize(*sys.argv[1:]))
