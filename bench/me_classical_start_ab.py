"""The ME inversion's classical start with eta0 from the line's core depth (and its retry at
eta0 = 10) against the fixed eta0 = 10 it replaced, on the same pixels in the same run: ME
profiles over the training ranges (f = 1) with 1e-3 I_c noise, Hinode SP (two seeds, 6 000
pixels) and the ViSP window (1 500), 1 thread. The old start is the same guess array with
eta0 set to 10, passed as a user guess (no retry); the depth's guess is also run the same
way, to show what the retry does. Per set and start: mean iterations, pixels
per CPU-second (best of two), the share above reduced chi2 2, the share with status ok and
the median chi2, and how well the depth's eta0 correlates with the truth (in log)
(docs/stokes-me-inversion.md, "Classical start").

``python bench/me_classical_start_ab.py`` -> bench/results/me_classical_start_ab_<time>.json
"""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path

import numpy as np
from fastinv.stokes import Instrument, MEInversion
from fastinv.stokes.inversion.me_init import FIXED_ETA0
from fastinv.stokes.synthesis.milne_eddington import ME_PARAMETERS
from fastinv.stokes.synthesis.sampling import sample_me_parameters

RESULTS = Path(__file__).resolve().parent / "results"
SETS = (("hinode_sp", 21, 6000), ("hinode_sp", 71, 6000), ("visp", 81, 1500))


def _pixels(inv: MEInversion, n: int, seed: int):
    p = sample_me_parameters(n, seed, ranges={"filling_factor": (1, 1, "uniform")})
    clean = inv.model.synthesize({k: p[k] for k in ME_PARAMETERS[:10]}, add_noise=False)
    ic = p["S0"] + p["S1"]
    obs = clean + 1e-3 * ic[:, None, None] * np.random.default_rng(seed + 1).standard_normal(clean.shape)
    return obs, 1e-3 * ic, p["eta0"]


def _run(inv: MEInversion, obs, sigma, init) -> dict:
    cpu = []
    for _ in range(2):
        t0 = time.process_time()
        r = inv.invert(obs, sigma, threads=1, init=init)
        cpu.append(time.process_time() - t0)
    c = r.chi2[:, 4]
    return {
        "mean_iterations": float(r.iterations.mean()),
        "pixels_per_cpu_s": obs.shape[0] / min(cpu),
        "share_chi2_above_2": float(np.mean(c > 2)),
        "share_ok": float(np.mean(r.status == 0)),
        "median_chi2": float(np.median(c)),
    }


def main() -> dict:
    run = {"started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "load_avg_before": os.getloadavg()}
    run["machine"] = {"node": platform.node(), "processor": platform.processor(), "cpus": os.cpu_count()}
    run["sets"] = []
    for name, seed, n in SETS:
        inv = MEInversion(instrument=getattr(Instrument, name)(), init="classical")
        obs, sigma, eta0 = _pixels(inv, n, seed)
        depth = inv.initial_guess(obs, "classical")
        fixed = depth.copy()
        fixed[:, 6] = FIXED_ETA0
        row = {"instrument": name, "seed": seed, "pixels": n}
        row["log_eta0_guess_truth_correlation"] = float(np.corrcoef(np.log(depth[:, 6]), np.log(eta0))[0, 1])
        row["eta0_10"] = _run(inv, obs, sigma, fixed)
        row["core_depth"] = _run(inv, obs, sigma, "classical")
        # the depth's guess as a user guess: the same start without the retry at eta0 = 10
        row["core_depth_no_retry"] = _run(inv, obs, sigma, depth)
        run["sets"].append(row)
        print(json.dumps(row), flush=True)
    run["load_avg_after"] = os.getloadavg()
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"me_classical_start_ab_{time.strftime('%Y%m%dT%H%M%S')}.json"
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(run, indent=1))
    tmp.replace(out)
    print(out)
    return run


if __name__ == "__main__":
    main()
