"""Can DeepEM's error bars propagate the noise through a truncated SVD of the 300x300 layer?

The exact noise term pushes six input directions through W2 (300x300): 6 x 300^2 multiply-adds
per pixel. With W2 ~ U_r S_r V_r^T for the tangents only (the forward pass, hence the LeakyReLU
slopes, stays exact) that is 6 x 2 x r x 300. This script measures, in float64 NumPy on held-out
synthetic DEMs (``synthetic_aia(4000, seed=203)``, as tests/dem/test_deepem_errors.py), per
shipped model: W2's singular spectrum, and for each rank r the relative difference of
sigma(log T_EM), sigma(total EM) and sigma(EM) of the bins holding the emission from the exact
Jacobian's -- the noise term alone and the sigma users get (the card's model term in
quadrature, taken from the engine's float32 run) -- and the held-out coverage with it.
Run: ``python bench/deepem_errors_lowrank.py`` (~1 min); writes
``bench/results/deepem_errors_lowrank.json``."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
from fastinv.dem import DeepEM
from fastinv.dem.deepem import shipped_model_path
from fastinv.dem.synthetic import synthetic_aia
from fastinv.train.deepem_errors import noise_only
from safetensors.numpy import load_file

RANKS = (8, 16, 24, 32, 48, 64, 96, 128, 300)
N, SEED = 4000, 203
OUT = Path(__file__).parent / "results" / "deepem_errors_lowrank.json"


def leaky(h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """LeakyReLU(0.01) and its slope."""
    s = np.where(h > 0, 1.0, 0.01)
    return h * s, s


def noise_sigmas(w: dict, y: np.ndarray, sig: np.ndarray, logt: np.ndarray, w2_tangent: np.ndarray) -> dict:
    """The Jacobian noise term (float64) with `w2_tangent` in place of W2 for the tangents."""
    w1, w2, w3 = (w[f"{i}.weight"].reshape(w[f"{i}.weight"].shape[0], -1).astype(np.float64) for i in (0, 2, 4))
    b1, b2, b3 = (w[f"{i}.bias"].astype(np.float64) for i in (0, 2, 4))
    y = np.maximum(y, 0.0)
    x = np.sqrt(y.astype(np.float32)).astype(np.float64)
    sx = sig / (2 * np.sqrt(np.maximum(y, sig)))  # noise of sqrt(I), floored at I = sigma
    a1, s1 = leaky(w1 @ x + b1[:, None])
    a2, s2 = leaky(w2 @ a1 + b2[:, None])
    out = w3 @ a2 + b3[:, None]
    d1 = s1[:, None, :] * w1[:, :, None] * sx[None, :, :]  # (300, 6, npix)
    d2 = s2[:, None, :] * np.einsum("ik,kcp->icp", w2_tangent, d1)
    jac = np.einsum("ti,icp->tcp", w3, d2)  # (nT, 6, npix)
    em = 1e25 * out**2
    dem = 2e25 * out[:, None, :] * jac
    tot = em.sum(axis=0)
    mean = (logt[:, None] * em).sum(axis=0) / tot
    wlt = (logt[:, None] - mean) / tot
    return {
        "em": np.sqrt((dem**2).sum(axis=1)),
        "total": np.sqrt((dem.sum(axis=0) ** 2).sum(axis=0)),
        "logt": np.sqrt(((wlt[:, None, :] * dem).sum(axis=0) ** 2).sum(axis=0)),
        "em_value": em,
    }


def _stats(a: np.ndarray, b: np.ndarray) -> list[float]:
    r = np.abs(a / b - 1)
    r = r[np.isfinite(r)]
    return [float(np.median(r)), float(np.quantile(r, 0.99)), float(r.max())]


def model(name: str) -> dict:
    net = DeepEM.load(name, threads=1)
    w = load_file(shipped_model_path(name))
    s = synthetic_aia(N, SEED, logt=net.logt)
    w2 = w["2.weight"].reshape(w["2.weight"].shape[0], -1).astype(np.float64)
    u, sv, vt = np.linalg.svd(w2)
    exact = noise_sigmas(w, s["y"], s["sigma"], net.logt, w2)
    full = net.invert(s["y"], sigma=s["sigma"], errors="fp32")
    bare = noise_only(net, s, threads=1, errors="fp32")
    ok = (full.status == 0) & (full.total_em > 0)
    # The card's model term, as the engine adds it: sigma^2 = noise^2 + model^2.
    model_sq = {
        "logt": full.logt_err**2 - bare.logt_err**2,
        "total": full.total_em_err.astype(np.float64) ** 2 - bare.total_em_err.astype(np.float64) ** 2,
        "em": full.em_err.astype(np.float64) ** 2 - bare.em_err.astype(np.float64) ** 2,
    }
    big = exact["em_value"] > 0.01 * exact["em_value"].max(axis=0)  # bins holding the emission
    out = {
        "singular_values_normalised": (sv / sv[0]).tolist(),
        "energy_fraction_at_rank": {str(r): float((sv[:r] ** 2).sum() / (sv**2).sum()) for r in RANKS},
        "ranks": {},
    }
    for r in RANKS:
        w2r = (u[:, :r] * sv[:r]) @ vt[:r]
        apx = noise_sigmas(w, s["y"], s["sigma"], net.logt, w2r)
        row = {"macs_per_direction_vs_exact": min(1.0, 2 * r / w2.shape[0])}
        for key in ("logt", "total"):
            row[f"noise_{key}"] = _stats(apx[key][ok], exact[key][ok])
            tot_a = np.sqrt(np.maximum(model_sq[key] + apx[key] ** 2, 0))
            tot_e = np.sqrt(np.maximum(model_sq[key] + exact[key] ** 2, 0))
            row[f"total_{key}"] = _stats(tot_a[ok], tot_e[ok])
        row["noise_em_big_bins"] = _stats(apx["em"][:, ok][big[:, ok]], exact["em"][:, ok][big[:, ok]])
        tot_a = np.sqrt(np.maximum(model_sq["em"] + apx["em"] ** 2, 0))
        tot_e = np.sqrt(np.maximum(model_sq["em"] + exact["em"] ** 2, 0))
        row["total_em_big_bins"] = _stats(tot_a[:, ok][big[:, ok]], tot_e[:, ok][big[:, ok]])
        cov = {}
        for label, sg in (("exact", exact), ("approx", apx)):
            sl = np.sqrt(np.maximum(model_sq["logt"] + sg["logt"] ** 2, 0))
            st = np.sqrt(np.maximum(model_sq["total"] + sg["total"] ** 2, 0))
            cov[label] = {
                "logt_em": float((np.abs(full.logt_mean - s["logt_em"]) <= sl)[ok].mean()),
                "total_em": float((np.abs(full.total_em - s["total_em"]) <= st)[ok].mean()),
            }
        row["coverage"] = cov
        out["ranks"][str(r)] = row
    return out


def main() -> None:
    res = {"pixels": N, "seed": SEED, "load_avg_1min": os.getloadavg()[0]}
    for name in ("deepem21", "deepem18"):
        res[name] = model(name)
        for r, row in res[name]["ranks"].items():
            print(
                name,
                f"r={r:>3}",
                "logT noise med/p99 %.4f/%.4f" % tuple(row["noise_logt"][:2]),
                "total noise %.4f/%.4f" % tuple(row["noise_total"][:2]),
                "| with model term: logT %.4f/%.4f" % tuple(row["total_logt"][:2]),
                "total %.4f/%.4f" % tuple(row["total_total"][:2]),
                "EM bins %.4f/%.4f" % tuple(row["total_em_big_bins"][:2]),
                "| cov logT %.3f total %.3f"
                % (row["coverage"]["approx"]["logt_em"], row["coverage"]["approx"]["total_em"]),
                flush=True,
            )
    OUT.write_text(json.dumps(res, indent=1) + "\n")


if __name__ == "__main__":
    main()
