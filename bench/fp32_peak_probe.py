"""Why the AVX-512 float32 engine reaches ~60 % of the FMA peak on the Intel VM (issue 18):
the rate measured per CPU-second (process time, so the other jobs on the shared cores
cancel) of a DeepEM-shaped MLP (6 -> 300 -> 300 -> 21) and of an L1-resident chain of eight
64 x 64 layers, one thread, against the FMA peak also per CPU-second (the wall-clock peak of
fastinv.benchmarking.measure_peak scaled by wall / CPU time), interleaved over 5 rounds.

``python bench/fp32_peak_probe.py`` -> bench/results/fp32_peak_probe_<time>.json
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import fastinv
import numpy as np
import torch
from fastinv.benchmarking import cpu_model, measure_peak

RESULTS = Path(__file__).resolve().parent / "results"


def main(tmp: Path = Path("/tmp")) -> dict:
    torch.manual_seed(0)
    mlp = torch.nn.Sequential(
        torch.nn.Linear(6, 300),
        torch.nn.LeakyReLU(0.01),
        torch.nn.Linear(300, 300),
        torch.nn.LeakyReLU(0.01),
        torch.nn.Linear(300, 21),
    ).eval()
    small = torch.nn.Sequential(*[m for _ in range(8) for m in (torch.nn.Linear(64, 64), torch.nn.ReLU())]).eval()
    res: dict = {"cpu": cpu_model(), "isa": "avx512", "threads": 1, "load_before": os.getloadavg()}
    models = {}
    for name, net, cin in (("deepem-mlp", mlp, 6), ("8x64x64-mlp", small, 64)):
        path = fastinv.export(net, tmp / f"fp32_peak_probe_{name}.safetensors", torch.rand(4, cin))
        model = fastinv.load(path, threads=1)
        x = np.random.default_rng(0).random((131072, cin), np.float32)
        models[name] = (model, x, model.info()["executed_flops_per_sample"] * x.shape[0])
    peaks, rates = [], {k: [] for k in models}
    for _ in range(5):
        wall, cpu = time.perf_counter(), time.process_time()
        gflops = measure_peak(1, seconds=0.5, isa="avx512")
        peaks.append(gflops * (time.perf_counter() - wall) / (time.process_time() - cpu))
        for name, (model, x, flops) in models.items():
            cpu = time.process_time()
            model(x)
            rates[name].append(flops / (time.process_time() - cpu) * 1e-9)
    peak = float(np.median(peaks))
    res.update(
        fma_peak_gflops_per_cpu_s=peak,
        fma_peak_rounds=peaks,
        gflops_per_cpu_s={k: float(np.median(v)) for k, v in rates.items()},
        fraction_of_peak={k: float(np.median(v)) / peak for k, v in rates.items()},
        load_after=os.getloadavg(),
        fastinv=fastinv.__version__,
    )
    return res


if __name__ == "__main__":
    out = main()
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"fp32_peak_probe_{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}.json"
    path.write_text(json.dumps(out, indent=1))
    print(json.dumps(out["fraction_of_peak"]), path)
