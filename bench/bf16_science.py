"""Science-level effect of precision="bf16" and "bf16x2" on the CPU (issue 18), recorded in
bench/results/bf16_science.json and quoted in README.md and docs/cpu-engine.md.

* DeepEM on the held-out 2011-02-15 flare series (fastinv.dem.evaluate's metrics against
  Basis Pursuit): each metric with the float32 engine and with each bf16 precision, and the
  change as a fraction of its float32 value (issue bound: 1 %).
* The Hinode and ViSP Stokes CNNs on a fresh LTE set of profiles they never saw (the
  training-set generator with a seed not used in training; the training sets themselves
  are not in the repository): RMSE of T, |B| and v_LOS against the true atmosphere,
  averaged over the nodes, with both precisions (issue bound: change <= 2 %).

``python bench/bf16_science.py [--profiles N] [--precisions bf16 bf16x2]``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import fastinv
import numpy as np
from fastinv import datasets
from fastinv.dem import DeepEM
from fastinv.dem.basis_pursuit import BasisPursuit, aia_error
from fastinv.dem.deepem import DEFAULT_MODEL, SHIPPED_MODELS
from fastinv.dem.evaluate import compare
from fastinv.dem.io import read_aia
from fastinv.stokes.inversion.evaluate import _predict, metrics, truth_at_nodes
from fastinv.stokes.inversion.network import StokesNet
from fastinv.stokes.synthesis.training_sets import lte_training_set

RESULTS = Path(__file__).resolve().parent / "results"
HELD_OUT_SEED = 918273  # not a training seed of the shipped models (2 and 0)


def _stack(parts):
    class _Stack:  # concatenated results shaped like BPResult, for compare()
        em = np.concatenate([p.em.reshape(p.em.shape[0], -1) for p in parts], axis=1)
        model = np.concatenate([p.model.reshape(6, -1) for p in parts], axis=1)
        status = np.concatenate([p.status.ravel() for p in parts])

    return _Stack


def _metric_values(m: dict) -> dict:
    """The issue's metrics as flat name -> value."""
    out = {f"rel_err_bin{j}": v for j, v in enumerate(m["rel_err_per_bin"]) if v is not None}
    out["rel_err_median_all_bins"] = m["rel_err_median_all_bins"]
    out["logt_em_median_abs_diff"] = m["logt_em"]["median_abs_diff"]
    out["logt_em_p90_abs_diff"] = m["logt_em"]["p90_abs_diff"]
    for p, v in m["total_em_ratio"].items():
        out[f"total_em_ratio_{p}"] = v
    out["within_tolerance"] = m["within_tolerance"]
    return out


def _bins(change: dict) -> dict:
    """The issue's per-bin bar: how many per-bin metrics move by more than 1 % of their value."""
    bins = [v for k, v in change.items() if k.startswith("rel_err_bin")]
    return {"bins": len(bins), "bins_over_1pct": sum(v > 0.01 for v in bins), "max_bin_change": max(bins)}


def deepem_effect(precisions: list[str], model: str) -> dict:
    nets = {p: DeepEM.load(model, precision=p) for p in ["fp32", *precisions]}
    bp = BasisPursuit(logt=nets["fp32"].logt)
    ys, sigmas, bps, res = [], [], [], {p: [] for p in nets}
    em_change = {p: [] for p in precisions}
    for slot in datasets.aia_flare_slots():
        obs = read_aia(datasets.aia_flare_files(slot))
        t = obs.exptime.reshape(6, 1, 1)
        sigma = aia_error(np.maximum(np.nan_to_num(obs.data), 0.0) * t, obs.n_sample) / t
        bps.append(bp.solve(obs.data, exptime=obs.exptime, n_sample=obs.n_sample))
        for p, net in nets.items():
            res[p].append(net.invert(obs.data))
        ys.append(obs.data.reshape(6, -1))
        sigmas.append(sigma.reshape(6, -1))
        a = res["fp32"][-1].em
        sig = a > 0.01 * a.max(axis=0, keepdims=True)
        for p in precisions:
            em_change[p].append(np.abs(res[p][-1].em - a)[sig] / a[sig])
    y, s = np.concatenate(ys, axis=1), np.concatenate(sigmas, axis=1)
    ref = _stack(bps)
    ref.logt = nets["fp32"].logt  # (compare() assumes the 18-bin grid for a result without one)
    vals = {}
    for p, r in res.items():
        got = _stack(r)
        got.logt = nets[p].logt
        vals[p] = _metric_values(compare(ref, got, y, s))
    out = {
        "data": "AIA 2011-02-15 X2.2 flare cutouts, 10 time steps (held out from training)",
        "model": model,
        "fp32": vals["fp32"],
    }
    for p in precisions:
        change = {k: abs(vals[p][k] - v) / abs(v) for k, v in vals["fp32"].items() if v}
        em = np.concatenate(em_change[p])
        out[p] = {
            "values": vals[p],
            "relative_change": change,
            "max_relative_change": max(change.values()),
            **_bins(change),
            "em_vs_fp32_per_bin": {
                "median": float(np.median(em)),
                "p99": float(np.percentile(em, 99)),
                "note": f"|EM_{p} - EM_fp32| / EM_fp32 over bins above 1 % of the pixel's peak",
            },
        }
    return out


def stokes_effect(instrument: str, n: int, precisions: list[str]) -> dict:
    d = lte_training_set(n, instrument=instrument, seed=HELD_OUT_SEED)
    ok = d["status"] == 0
    atmosphere = {k: v for k, v in d["atmosphere"].items() if k != "log_tau"}  # as read_set gives it
    log_tau = d["atmosphere"]["log_tau"] if "log_tau" in d["atmosphere"] else d["log_tau"]
    out = {}
    for p in ["fp32", *precisions]:
        net = StokesNet.load(instrument=instrument, precision=p)
        net, pred = _predict(net, d["stokes"][ok], d["wavelength"], None)
        truth = truth_at_nodes({k: v[ok] for k, v in atmosphere.items()}, log_tau, net.nodes)
        m = metrics(pred, truth, net.nodes)["per_node"]
        out[p] = {q: float(np.mean(m[q]["rmse"])) for q in ("temperature", "B", "vlos") if q in m}
    change = {p: {q: abs(out[p][q] - v) / v for q, v in out["fp32"].items()} for p in precisions}
    return {
        "set": f"fresh LTE profiles (training-set generator, seed {HELD_OUT_SEED}), {int(ok.sum())} profiles",
        "rmse_mean_over_nodes": out,
        "relative_change": change,
        "max_relative_change": {p: max(c.values()) for p, c in change.items()},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profiles", type=int, default=5000)
    ap.add_argument("--precisions", nargs="+", default=["bf16", "bf16x2"], help="compared with fp32")
    ap.add_argument("--model", default=DEFAULT_MODEL, choices=SHIPPED_MODELS, help="the DeepEM model")
    args = ap.parse_args()
    t0 = time.time()
    result = {
        "machine": {"node": platform.node(), "cpu": platform.processor(), "isa": fastinv.info()["isa"]},
        "load_avg_before": os.getloadavg(),
        "deepem": deepem_effect(args.precisions, args.model),
        "stokes_hinode": stokes_effect("hinode", args.profiles, args.precisions),
        "stokes_visp": stokes_effect("visp", args.profiles, args.precisions),
        "seconds": round(time.time() - t0, 1),
    }
    result["load_avg_after"] = os.getloadavg()
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "bf16_science.json").write_text(json.dumps(result, indent=1))
    for p in args.precisions:
        d = result["deepem"][p]
        print(
            f"deepem {p}: {d['bins_over_1pct']} of {d['bins']} bins change > 1 %, max {d['max_bin_change']:.4f};",
            f"max change of any metric {d['max_relative_change']:.4f}",
        )
        for k in ("stokes_hinode", "stokes_visp"):
            print(f"{k} {p}: max RMSE change {result[k]['max_relative_change'][p]:.4f}")


if __name__ == "__main__":
    main()
