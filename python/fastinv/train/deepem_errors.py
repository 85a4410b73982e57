"""Calibrate DeepEM's error model and write it into the model card (``card["errors"]``).

DeepEM's 1-sigma errors (``DeepEM.invert(..., errors=True)``) are the data's noise propagated
through the network by its Jacobian, in quadrature with the network's own error. This module
measures the latter on synthetic DEMs with known truth and AIA noise
(:func:`fastinv.dem.synthetic.synthetic_aia`): for each cell of (predicted total EM, predicted
EM-weighted log T), and for each log T bin and cell of predicted EM, the model error sigma_m is
the smallest value for which 68.3 % of the cell's pixels have their truth within
sqrt(sigma_noise^2 + sigma_m^2) (0 where the noise alone covers that many). Cells are cut at
quantiles of the calibration set, so each holds the same number of pixels. The coverage is then
measured on a second, held-out synthetic set (another seed) and on the flare series against
Basis Pursuit's Monte-Carlo errors, and recorded in the card with the measurement that chose
the Jacobian over Monte-Carlo copies (:func:`method_choice`).

Run: ``python -m fastinv.train.deepem_errors [MODEL]`` (default: the shipped model; a few
minutes on one core).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional, Union

import numpy as np

from ..dem.deepem import DeepEM, shipped_model_path
from ..dem.synthetic import synthetic_aia
from ..export import read_safetensors, update_card

COVER = 0.6827  # the fraction of a Gaussian within 1 sigma
REFERENCES = 8  # reference inputs of the float32 Jacobian (docs/deepem-errors.md, "The reference patterns")
N_CALIBRATION, SEED_CALIBRATION = 40000, 101
N_HELD_OUT, SEED_HELD_OUT = 20000, 202
EM_EDGES = [24.0, 25.0, 26.0, 26.5, 27.0, 27.5]  # log10(EM per bin / cm^-5)
CELLS = 5  # quantile cells per axis of (total EM, log T)


def _zero_tables(n_t: int) -> dict:
    """An "errors" section whose model error is 0 everywhere: the noise term alone."""
    return {
        "total_em_edges": [],
        "logt_edges": [],
        "em_edges": [],
        "logt_sigma": [0.0],
        "total_em_rel_sigma": [0.0],
        "em_sigma": [[0.0] for _ in range(n_t)],
    }


def _needed(resid: np.ndarray, noise: np.ndarray, scale: np.ndarray) -> float:
    """Smallest s >= 0 with a COVER fraction of |resid| <= sqrt(noise^2 + (s * scale)^2)."""
    if resid.size == 0:
        return 0.0
    # float64: squares of EMs (~1e54) overflow the products' float32
    resid, noise, scale = (np.asarray(a, dtype=np.float64) for a in (resid, noise, scale))
    # per pixel, the s at which it becomes covered; the COVER quantile of those is the answer
    with np.errstate(divide="ignore", invalid="ignore"):
        s = np.sqrt(np.maximum(resid**2 - noise**2, 0.0)) / scale
    return float(np.quantile(np.where(np.isfinite(s), s, np.inf), COVER))


def _cells(x: np.ndarray, edges: np.ndarray) -> np.ndarray:
    return np.searchsorted(edges, x, side="right")


def _slope_patterns(path: Union[str, Path], x: np.ndarray) -> np.ndarray:
    """(n, H1 + H2) booleans: which LeakyReLU units of the DeepEM network in ``path`` are active
    for the inputs x = sqrt(max(y, 0)) (n, 6); float64, from the file's graph and weights."""
    tensors, metadata = read_safetensors(path)
    nodes = json.loads(metadata["fastinv.graph"])["nodes"]
    linear = [n for n in nodes if n["op"] == "linear"]
    slopes = [n["alpha"] for n in nodes if n["op"] == "act" and n["kind"] == "leaky_relu"]
    if len(linear) != 3 or len(slopes) != 2:
        raise ValueError(f"{path}: not a DeepEM network (6 -> H -> H -> nT, LeakyReLU)")
    h, active = x, []
    for layer, slope in zip(linear[:2], slopes):
        w = np.asarray(tensors[layer["weight"]], dtype=np.float64).reshape(-1, h.shape[1])
        pre = h @ w.T + np.asarray(tensors[layer["bias"]], dtype=np.float64)
        active.append(pre > 0)
        h = np.where(pre > 0, pre, slope * pre)
    return np.concatenate(active, axis=1)


def reference_inputs(
    path: Union[str, Path], y: np.ndarray, count: int = REFERENCES, seed: int = 0, max_pixels: int = 50000
) -> list[list[float]]:
    """The card's ``errors.reference_inputs``: ``count`` pixels of ``y`` (6, ...; DN/s) whose
    LeakyReLU slope patterns cover y's -- the members nearest the centres of a k-means
    clustering of the patterns (Hamming distance; seeded, so the same data give the same
    references). The float32 Jacobian (deepem_errors_delta.cpp) corrects each pixel's units
    whose slope differs from its nearest reference: exact for any references, faster the
    closer they are to the data being inverted."""
    y = np.asarray(y, dtype=np.float64).reshape(6, -1)
    y = y[:, np.all(np.isfinite(y), axis=0)]
    rng = np.random.default_rng(seed)
    if y.shape[1] > max_pixels:
        y = y[:, np.sort(rng.choice(y.shape[1], max_pixels, replace=False))]
    a = _slope_patterns(path, np.sqrt(np.maximum(y.T, 0.0))).astype(np.float32)
    count = min(count, len(a))
    centres = a[rng.choice(len(a), count, replace=False)]

    def distances(c: np.ndarray) -> np.ndarray:  # Hamming, as float sums
        return a.sum(1)[:, None] + c.sum(1)[None] - 2.0 * (a @ c.T)

    for _ in range(12):
        label = distances(centres).argmin(1)
        for k in range(count):
            if np.any(label == k):
                centres[k] = a[label == k].mean(0) > 0.5
    label = distances(centres).argmin(1)
    members = distances(centres).argmin(0)
    # the largest cluster first: where two references cost a pixel the same, the kernel takes the first
    order = np.argsort(-np.bincount(label, minlength=count), kind="stable")
    return [[float(v) for v in y[:, members[k]]] for k in order]


def noise_only(
    net: DeepEM,
    sample: dict,
    threads: Optional[int],
    errors: Union[bool, str] = True,
    reference: Union[str, list[list[float]], None] = "card",
):
    """DeepEM with the Jacobian noise term alone (a copy of the model whose card's tables are 0);
    ``errors`` as for :meth:`DeepEM.invert` (``"fp32"``: the float32 Jacobian). ``reference``:
    the card's ``errors.reference_inputs`` to give the copy: ``"card"`` (the model's, if any),
    a list of inputs (six count rates each), or None (none: the dense Jacobian)."""
    section = _zero_tables(len(net.logt))
    if isinstance(reference, str):
        reference = net.card.get("errors", {}).get("reference_inputs")
    if reference is not None:
        section["reference_inputs"] = reference
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "deepem.safetensors"
        shutil.copyfile(net.model.path, path)
        update_card(path, {"errors": section})
        bare = DeepEM.load(path, threads=threads)
        return bare.invert(sample["y"], sigma=sample["sigma"], errors=errors)


def fit_tables(res, sample: dict) -> dict:
    """The model-error tables from a noise-only run ``res`` on the synthetic ``sample``."""
    ok = (res.status == 0) & (res.total_em > 0)
    tot, lt = np.log10(res.total_em[ok]), res.logt_mean[ok]
    q = np.linspace(0, 1, CELLS + 1)[1:-1]
    tot_edges, lt_edges = np.quantile(tot, q), np.quantile(lt, q)
    ci, cj = _cells(tot, tot_edges), _cells(lt, lt_edges)
    r_lt = lt - sample["logt_em"][ok]
    r_tot = res.total_em[ok] - sample["total_em"][ok]
    logt_sigma = np.zeros((CELLS, CELLS))
    rel = np.zeros((CELLS, CELLS))
    for i in range(CELLS):
        for j in range(CELLS):
            m = (ci == i) & (cj == j)
            logt_sigma[i, j] = _needed(r_lt[m], res.logt_err[ok][m], np.ones(m.sum()))
            rel[i, j] = _needed(r_tot[m], res.total_em_err[ok][m], res.total_em[ok][m])
    em_edges = np.asarray(EM_EDGES)
    em_sigma = np.zeros((len(res.logt), em_edges.size + 1))
    for t in range(len(res.logt)):
        e = res.em[t][ok].astype(np.float64)
        c = _cells(np.log10(np.maximum(e, 1e-300)), em_edges)
        r = e - sample["em"][t][ok]
        for k in range(em_edges.size + 1):
            m = c == k
            em_sigma[t, k] = _needed(r[m], res.em_err[t][ok][m].astype(np.float64), np.ones(m.sum()))
    return {
        "total_em_edges": tot_edges.tolist(),
        "logt_edges": lt_edges.tolist(),
        "em_edges": em_edges.tolist(),
        "logt_sigma": logt_sigma.tolist(),
        "total_em_rel_sigma": rel.tolist(),
        "em_sigma": em_sigma.tolist(),
    }


def coverage(res, truth: dict) -> dict:
    """Fractions of ok pixels whose true log T_EM, total EM and EM per bin lie within 1 sigma."""
    ok = res.status == 0
    lt = np.abs(res.logt_mean - truth["logt_em"]) <= res.logt_err
    tot = np.abs(res.total_em - truth["total_em"]) <= res.total_em_err
    em = np.abs(res.em - truth["em"]) <= res.em_err
    return {
        "pixels": int(ok.sum()),
        "logt_em": float(lt[ok].mean()),
        "total_em": float(tot[ok].mean()),
        "em_per_bin": float(em[:, ok].mean()),
    }


def method_choice(net: DeepEM, n: int = 400, draws: int = 400, seed: int = 303) -> dict:
    """Jacobian against Monte-Carlo copies of each pixel, for the noise term: accuracy against
    a many-draw Monte-Carlo reference of the (nonlinear) network, and cost against a plain run."""
    s = synthetic_aia(n, seed, logt=net.logt)
    jac = noise_only(net, s, threads=1)
    rng = np.random.default_rng(seed)
    runs = [net.invert(s["y"] + s["sigma"] * rng.standard_normal(s["y"].shape), threads=1) for _ in range(draws)]
    lt = np.stack([r.logt_mean for r in runs])
    tot = np.stack([r.total_em.astype(np.float64) for r in runs])
    out = {"pixels": n, "reference_draws": draws}
    for name, samples, jac_sigma in (("logt_em", lt, jac.logt_err), ("total_em", tot, jac.total_em_err)):
        ref = samples.std(axis=0, ddof=1)
        few = samples[:6].std(axis=0, ddof=1)  # 6 copies: the Jacobian's cost in network passes
        out[name] = {
            "jacobian_rel_err_median": float(np.median(np.abs(jac_sigma / ref - 1))),
            "jacobian_rel_err_p90": float(np.quantile(np.abs(jac_sigma / ref - 1), 0.9)),
            "mc6_rel_err_median": float(np.median(np.abs(few / ref - 1))),
            "mc6_rel_err_p90": float(np.quantile(np.abs(few / ref - 1), 0.9)),
        }
    big = synthetic_aia(20000, seed + 1, logt=net.logt)
    times = {}
    for key, kw in (("plain", {}), ("errors", {"errors": True})):
        best = np.inf
        for _ in range(3):
            t0 = time.perf_counter()
            net.invert(big["y"], sigma=big["sigma"], threads=1, **kw)
            best = min(best, time.perf_counter() - t0)
        times[key] = best
    out["seconds_per_20000_px_1_thread"] = {k: round(v, 3) for k, v in times.items()}
    out["jacobian_cost_in_plain_runs"] = round(times["errors"] / times["plain"], 2)
    out["load_avg_1min"] = os.getloadavg()[0]
    return out


def flare_against_bp(net: DeepEM, samples: int = 30) -> dict:
    """On the shipped flare cutouts: how often Basis Pursuit's log T_EM and total EM (the model's grid)
    lie within DeepEM's 1 sigma, and within the two errors combined (BP's Monte-Carlo ones)."""
    from .. import datasets
    from ..dem.basis_pursuit import BasisPursuit
    from ..dem.io import read_aia

    obs = read_aia(datasets.aia_flare_files())
    d = net.invert(obs.data, exptime=obs.exptime, n_sample=obs.n_sample, errors=True)
    b = BasisPursuit(logt=net.logt).solve(
        obs.data, exptime=obs.exptime, n_sample=obs.n_sample, n_samples=samples, seed=0
    )
    ok = (d.status == 0) & (b.status == 0) & np.isfinite(b.logt_err) & np.isfinite(b.total_em_err)
    out = {"pixels": int(d.status.size), "both_ok": int(ok.sum()), "bp_samples": samples}
    for name, dv, de, bv, be in (
        ("logt_em", d.logt_mean, d.logt_err, b.logt_mean, b.logt_err),
        ("total_em", d.total_em, d.total_em_err, b.total_em, b.total_em_err),
    ):
        diff = np.abs(dv.astype(np.float64) - bv)[ok]
        de, be = de[ok].astype(np.float64), be[ok]
        out[name] = {
            "bp_within_deepem_1sigma": float((diff <= de).mean()),
            "within_combined_1sigma": float((diff <= np.sqrt(de**2 + be**2)).mean()),
            "median_sigma_deepem": float(np.median(de)),
            "median_sigma_bp": float(np.median(be)),
        }
    return out


def calibrate(
    model: Union[str, Path, None] = None, threads: Optional[int] = None, reference_data: Optional[np.ndarray] = None
) -> dict:
    """Fit the error model of a DeepEM model file, check it on held-out data and write it into
    the file's card (and its ``.json`` copy). Returns the card's new "errors" section.
    ``reference_data`` (6, ...; DN/s): the pixels the Jacobian's reference inputs are drawn
    from (:func:`reference_inputs`; default: the calibration set; the shipped cards': their
    training frame)."""
    path = Path(shipped_model_path() if model is None else model)
    net = DeepEM.load(path, threads=threads)
    t0 = time.perf_counter()
    cal = synthetic_aia(N_CALIBRATION, SEED_CALIBRATION, logt=net.logt)
    reference = reference_inputs(path, cal["y"] if reference_data is None else reference_data)
    tables = fit_tables(noise_only(net, cal, threads, reference=reference), cal)
    section = {
        "method": "data noise (AIA error model, or the given sigma) through the network's Jacobian "
        "(forward mode, 3 layers), in quadrature with the network's own error from these tables",
        "input_noise": "sigma(sqrt(I)) = sigma_I / (2 sqrt(max(I, sigma_I)))",
        "reference_inputs": reference,
        **tables,
        "calibration": {
            "data": f"fastinv.dem.synthetic.synthetic_aia({N_CALIBRATION}, seed={SEED_CALIBRATION}, logt=the model's)",
            "rule": "per cell: smallest sigma_m with 68.3 % of truths within sqrt(sigma_noise^2 + sigma_m^2); "
            "cells at quantiles of predicted log10 total EM x predicted log T_EM, per bin at em_edges",
        },
    }
    update_card(path, {"errors": section})
    net = DeepEM.load(path, threads=threads)
    held = synthetic_aia(N_HELD_OUT, SEED_HELD_OUT, logt=net.logt)
    res = net.invert(held["y"], sigma=held["sigma"], errors=True)
    section["held_out"] = {
        "data": f"fastinv.dem.synthetic.synthetic_aia({N_HELD_OUT}, seed={SEED_HELD_OUT}, logt=the model's)",
        **coverage(res, held),
    }
    section["seconds"] = round(time.perf_counter() - t0, 1)
    section["flare_vs_bp"] = flare_against_bp(net)
    section["method_choice"] = method_choice(net)
    update_card(path, {"errors": section})
    return section


if __name__ == "__main__":
    print(json.dumps(calibrate(sys.argv[1] if len(sys.argv) > 1 else None), indent=1)[-1500:])
