"""A short same-run comparison of the CPU engine's precisions (issue 18) for a loaded
machine, where the full pytest-benchmark files (bench_engine.py, bench_deepem.py,
bench_stokes_frame.py, which have the bf16 cases and the peers) take an hour: DeepEM.invert
with ``out=`` on a 2048x2048 frame (the 1024x1024 synoptic set tiled 2x2) and the shipped ViSP network
on one raster step of 2 555 profiles, fp32 vs bf16 (AMX and vdpbf16ps), interleaved
rounds, median of each, with the FMA and bf16 peaks measured in the same run and the load.

``python bench/bf16_quick.py [--rounds N]`` -> bench/results/bf16_quick_<time>.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"


def _measure(rounds: int) -> dict:
    """Runs in a child process (FASTINV_BF16_KERNELS is read once per process)."""
    import fastinv
    from fastinv import _core, datasets
    from fastinv.dem import DeepEM
    from fastinv.dem.io import read_aia
    from fastinv.stokes import StokesNet

    obs = read_aia(datasets.aia_synoptic_files(), presummed=16)
    y = np.ascontiguousarray(np.nan_to_num(np.tile(obs.data, (1, 2, 2))))  # (6, 2048, 2048)
    dems = {p: DeepEM.load(threads=2, precision=p) for p in ("fp32", "bf16")}
    nets = {p: StokesNet.load(instrument="visp", threads=2, precision=p) for p in ("fp32", "bf16")}
    x = np.random.default_rng(0).normal(size=(2555, *nets["fp32"].model.input_shape)).astype(np.float32)
    out_y = {p: np.empty((2555, *n.model.output_shape), np.float32) for p, n in nets.items()}
    res = {p: d.invert(y) for p, d in dems.items()}
    times = {f"{case}-{p}": [] for case in ("deepem-2048", "visp-net") for p in ("fp32", "bf16")}
    for _ in range(rounds):
        for p in ("fp32", "bf16"):
            t = time.perf_counter()
            dems[p].invert(y, out=res[p])
            times[f"deepem-2048-{p}"].append(time.perf_counter() - t)
            t = time.perf_counter()
            nets[p].run(x, out=out_y[p], threads=2)
            times[f"visp-net-{p}"].append(time.perf_counter() - t)
    flops = {
        "deepem-2048": dems["fp32"].model.info()["flops_per_sample"] * y[0].size,
        "visp-net": nets["fp32"].model.info()["executed_flops_per_sample"] * x.shape[0],
        "visp-net-bf16-executed": nets["bf16"].model.info()["executed_flops_per_sample"] * x.shape[0],
    }
    return {
        "kernels": dems["bf16"].model.info()["isa"],
        "fma_peak_gflops": _core.measure_fma_peak("avx512", 2, 1.0),
        "bf16_peak_gflops": _core.measure_bf16_peak(2, 1.0),
        "median_s": {k: float(np.median(v)) for k, v in times.items()},
        "all_s": times,
        "flops": flops,
        "fastinv": fastinv.__version__,
    }


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        print(json.dumps(_measure(int(sys.argv[2]))))
        return
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    run = {"load_avg_before": os.getloadavg(), "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    for kernels in ("amx", "avx512"):
        env = dict(os.environ, FASTINV_BF16_KERNELS=kernels)
        child = subprocess.run(
            [sys.executable, __file__, "--child", str(args.rounds)], env=env, capture_output=True, text=True, check=True
        )
        r = json.loads(child.stdout)
        m = r["median_s"]
        r["bf16_speedup"] = {c: m[f"{c}-fp32"] / m[f"{c}-bf16"] for c in ("deepem-2048", "visp-net")}
        r["deepem_4096_out_s_extrapolated"] = {p: 4 * m[f"deepem-2048-{p}"] for p in ("fp32", "bf16")}
        r["fraction_of_peak"] = {
            "deepem-fp32_of_fma": r["flops"]["deepem-2048"] / m["deepem-2048-fp32"] * 1e-9 / r["fma_peak_gflops"],
            "deepem-bf16_of_bf16": r["flops"]["deepem-2048"] / m["deepem-2048-bf16"] * 1e-9 / r["bf16_peak_gflops"],
            "visp-fp32_of_fma": r["flops"]["visp-net"] / m["visp-net-fp32"] * 1e-9 / r["fma_peak_gflops"],
            "visp-bf16_of_bf16": r["flops"]["visp-net-bf16-executed"]
            / m["visp-net-bf16"]
            * 1e-9
            / r["bf16_peak_gflops"],
        }
        run[kernels] = r
        print(kernels, r["kernels"], json.dumps(r["median_s"]), json.dumps(r["bf16_speedup"]), flush=True)
    run["load_avg_after"] = os.getloadavg()
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"bf16_quick_{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}.json"
    path.write_text(json.dumps(run, indent=1))
    print(path)


if __name__ == "__main__":
    main()
