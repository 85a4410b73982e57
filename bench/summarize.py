"""Turn a pytest-benchmark JSON file into the README's performance table (markdown):
per case, each implementation's median time, samples/s, GFLOP/s of the layers as
written, the fraction of the measured FMA peak that the FLOPs it executed reach, and
fastinv's speed-up over it."""
from __future__ import annotations

import json
import sys
from collections import defaultdict


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
    lines = [f"Machine: {m.get('fastinv_cpu_model', m.get('cpu', {}).get('brand_raw', '?'))}, "
             f"{m.get('fastinv_threads')} threads, ISA {m.get('fastinv_isa')}; "
             f"commit {data.get('commit_info', {}).get('id', '?')[:10]}", "",
             "| case | impl | median | samples/s | GFLOP/s (as written) | of FMA peak (executed) | fastinv speed-up |",
             "|---|---|---|---|---|---|---|"]
    for case, impls in cases.items():
        ours = impls.get("fastinv")
        for impl, r in sorted(impls.items(), key=lambda kv: kv[1]["median"]):
            speedup = f"{r['median'] / ours['median']:.2f}x" if ours and impl != "fastinv" else "—"
            gflops = f"{r['gflops']:.1f}" if "gflops" in r else "—"
            frac = f"{r['fraction_of_fma_peak']:.0%}" if "fraction_of_fma_peak" in r else "—"
            lines.append(f"| {case} | {impl} | {r['median'] * 1e3:.1f} ms | {r['samples_per_s']:.3g} | "
                         f"{gflops} | {frac} | {speedup} |")
    peak = next(iter(next(iter(cases.values())).values()))["fma_peak_gflops"] if cases else float("nan")
    lines += ["", f"Measured FMA peak: {peak:.1f} GFLOP/s (fastinv._core.measure_fma_peak)."]
    return "\n".join(lines)


if __name__ == "__main__":
    print(summarize(*sys.argv[1:]))
