"""Same-run speed of DeepEM's CPU precisions (issue 18's last bar): fp32, bf16 and bf16x2
(two bf16 terms per weight), DeepEM.invert with ``out=`` (a frame series) on a 1024x1024 and
a 4096x4096 frame (the 2014-01-01 synoptic set, tiled 4x4 for 4096), interleaved rounds,
median wall and CPU seconds of each, the float32 FMA and bf16 peaks measured in the same
run, and the load average before and after (the machine is shared: quote the ratios).

``python bench/bf16x2_quick.py [--rounds N] [--threads T]`` -> bench/results/bf16x2_quick_<time>.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
from fastinv import __version__, _core, datasets
from fastinv.dem import DeepEM
from fastinv.dem.io import read_aia

RESULTS = Path(__file__).resolve().parent / "results"
PRECISIONS = ("fp32", "bf16", "bf16x2")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    run = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "load_avg_before": os.getloadavg(),
        "machine": {"node": platform.node(), "cpus": os.cpu_count(), "fastinv": __version__},
        "threads": args.threads,
    }
    obs = read_aia(datasets.aia_synoptic_files(), presummed=16)
    frames = {
        "deepem-1024": np.ascontiguousarray(np.nan_to_num(obs.data)),
        "deepem-4096": np.ascontiguousarray(np.nan_to_num(np.tile(obs.data, (1, 4, 4)))),
    }
    dems = {p: DeepEM.load(threads=args.threads, precision=p) for p in PRECISIONS}
    run["kernels"] = {p: d.model.info()["isa"] for p, d in dems.items()}
    run["fma_peak_gflops"] = _core.measure_fma_peak("avx512", args.threads, 1.0)
    run["bf16_peak_gflops"] = _core.measure_bf16_peak(args.threads, 1.0)
    wall = {f"{c}-{p}": [] for c in frames for p in PRECISIONS}
    cpu = {k: [] for k in wall}
    for case, y in frames.items():
        res = {p: d.invert(y) for p, d in dems.items()}  # the series' buffers (and a warm-up)
        for _ in range(args.rounds):
            for p in PRECISIONS:
                c0, t0 = time.process_time(), time.perf_counter()
                dems[p].invert(y, out=res[p])
                wall[f"{case}-{p}"].append(time.perf_counter() - t0)
                cpu[f"{case}-{p}"].append(time.process_time() - c0)
        del res
    med = {k: float(np.median(v)) for k, v in wall.items()}
    med_cpu = {k: float(np.median(v)) for k, v in cpu.items()}
    flops = dems["fp32"].model.info()["flops_per_sample"]
    run.update(
        {
            "median_s": med,
            "median_cpu_s": med_cpu,
            "all_s": wall,
            "all_cpu_s": cpu,
            "speedup_vs_fp32": {k: med[f"{k.rsplit('-', 1)[0]}-fp32"] / v for k, v in med.items()},
            "speedup_vs_fp32_cpu_s": {k: med_cpu[f"{k.rsplit('-', 1)[0]}-fp32"] / v for k, v in med_cpu.items()},
            "fraction_of_peak": {
                k: flops
                * frames[k.rsplit("-", 1)[0]][0].size
                / v
                * 1e-9
                # the FLOPs as written (bf16x2 executes twice the products)
                / (run["fma_peak_gflops"] if k.endswith("fp32") else run["bf16_peak_gflops"])
                for k, v in med.items()
            },
            "load_avg_after": os.getloadavg(),
        }
    )
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"bf16x2_quick_{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}.json"
    path.write_text(json.dumps(run, indent=1))
    for k in med:
        print(
            f"{k}: {med[k]:.3f} s wall, {med_cpu[k]:.2f} CPU-s, {run['speedup_vs_fp32'][k]:.2f}x fp32 "
            f"({run['speedup_vs_fp32_cpu_s'][k]:.2f}x per CPU-s)"
        )
    print(path, "load", run["load_avg_before"], run["load_avg_after"])


if __name__ == "__main__":
    main()
