"""The bf16 side-by-side table (issue 18) from one pytest-benchmark run of the engine,
DeepEM 4096² and ViSP network benchmarks:

    python -m pytest bench/bench_engine.py bench/bench_deepem.py::test_fastinv_deepem_series \\
        bench/bench_deepem.py::test_fastinv_deepem_series_bf16 bench/bench_deepem.py::test_torch_deepem \\
        bench/bench_deepem.py::test_torch_deepem_bf16 bench/bench_stokes_frame.py::test_visp_network \\
        --benchmark-json=bench/results/bf16_side_by_side_<time>.json
    python bench/bf16_summary.py bench/results/bf16_side_by_side_<time>.json

Per case and implementation: median time, the ratio of the fp32 engine's median to it
(> 1: faster than fastinv fp32), the fractions of the FMA and bf16 peaks measured in the
same run (of the FLOPs the implementation executes; peers: as written) and the 1-min load
after it. Writes bench/results/bf16_side_by_side_summary.md.
"""

from __future__ import annotations

import math
import sys
from collections import defaultdict
from pathlib import Path

from summarize import Run, write_markdown

RESULTS = Path(__file__).resolve().parent / "results"
# the fp32 engine's name per benchmark file (bench_deepem's is the out= frame series)
FP32 = ("fastinv", "fastinv-out", "fastinv-net")


def _pct(v: float) -> str:
    return "—" if v is None or math.isnan(v) else f"{v:.0%}"


def summarize(path: str) -> str:
    run = Run.load(path)
    cases: dict[str, dict[str, dict]] = defaultdict(dict)
    for b in run.data["benchmarks"]:
        info = b["extra_info"]
        if "case" in info and "impl" in info:
            cases[info["case"]][info["impl"]] = {"median": b["stats"]["median"], **info}
    lines = [
        "# bf16 side by side (issue 18)",
        "",
        run.machine_line(),
        f"- source: {Path(path).name}",
        "",
        "| case | implementation | median | fp32 engine / this | of FMA peak | of bf16 peak | load (1 min) |",
        "|---|---|---|---|---|---|---|",
    ]
    for case, impls in cases.items():
        ref = next((impls[n]["median"] for n in FP32 if n in impls), math.nan)
        for impl, r in sorted(impls.items(), key=lambda kv: kv[1]["median"]):
            load = r.get("loadavg_1min", r.get("load_avg_1min_after", math.nan))
            lines.append(
                f"| {case} | {impl} | {r['median'] * 1e3:.1f} ms | {ref / r['median']:.2f}x | "
                f"{_pct(r.get('fraction_of_fma_peak', math.nan))} | {_pct(r.get('fraction_of_bf16_peak', math.nan))} | "
                f"{load:.1f} |"
            )
    return write_markdown(RESULTS / "bf16_side_by_side_summary.md", lines)


if __name__ == "__main__":
    print(summarize(sys.argv[1]))
