"""Which part of bf16 DeepEM moves the issue-18 per-bin science metrics? A NumPy emulation of
the default DeepEM (float64 sums, float32 between layers) on the held-out 2011-02-15 flare series,
with bf16 (round-to-nearest-even) applied to the layer inputs and weights of chosen layers, and
optionally each weight matrix as a sum of two bf16 terms (hi + lo). Prints, per variant, how many
per-bin |EM - EM_BP| / EM_BP medians change by more than 1 % of their float32 value (the issue's
bar), and the same for float32 with small random input perturbations (the metrics' own
sensitivity). Run: ``python bench/bf16_deepem_layers.py`` (seconds)."""

from __future__ import annotations

import numpy as np
from bf16_science import _metric_values, _stack
from fastinv import datasets
from fastinv.dem import DeepEM
from fastinv.dem.basis_pursuit import BasisPursuit, aia_error
from fastinv.dem.evaluate import compare
from fastinv.dem.io import read_aia
from safetensors.numpy import load_file


def bf16(a: np.ndarray) -> np.ndarray:
    """float32 -> nearest bf16 (ties to even), returned as float64."""
    u = np.asarray(a, np.float32).copy().view(np.uint32)
    u += 0x7FFF + ((u >> 16) & 1)
    u &= 0xFFFF0000
    return u.view(np.float32).astype(np.float64)


def forward(layers, x: np.ndarray, rounded=(), split=()) -> np.ndarray:
    """EM (nT, npix) of DeepEM on y (6, npix); bf16 inputs and weights in `rounded` layers,
    hi + lo bf16 weights in `split` ones."""
    h = np.sqrt(np.maximum(x, 0)).astype(np.float32).astype(np.float64)
    for i, (w, b) in enumerate(layers):
        if i in rounded:
            hi = bf16(w)
            w = hi + bf16((w - hi).astype(np.float32)) if i in split else hi
            h = bf16(h)
        h = w.astype(np.float64) @ h + b[:, None]
        if i < len(layers) - 1:
            h = np.where(h > 0, h, 0.01 * h)
        h = h.astype(np.float32).astype(np.float64)
    return 1e25 * h**2


def main() -> None:
    net = DeepEM.load()
    w = load_file(str(net.model.path))
    layers = [(w[f"{k}.weight"], w[f"{k}.bias"]) for k in (0, 2, 4)]
    kernel = net._kernel32.astype(np.float64)

    class Result:  # what compare() reads
        def __init__(self, em):
            self.em, self.model, self.logt = em.astype(np.float32), (kernel @ em).astype(np.float32), net.logt
            self.status = np.zeros(em.shape[1], np.int8)

    bp = BasisPursuit(logt=net.logt)
    ys, sigmas, bps = [], [], []
    for slot in datasets.aia_flare_slots():
        obs = read_aia(datasets.aia_flare_files(slot))
        t = obs.exptime.reshape(6, 1, 1)
        sigmas.append((aia_error(np.maximum(np.nan_to_num(obs.data), 0.0) * t, obs.n_sample) / t).reshape(6, -1))
        r = bp.solve(obs.data, exptime=obs.exptime, n_sample=obs.n_sample)
        r.em, r.model, r.status = r.em.reshape(len(net.logt), -1), r.model.reshape(6, -1), r.status.ravel()
        bps.append(r)
        ys.append(np.nan_to_num(obs.data.reshape(6, -1)))
    y, s = np.concatenate(ys, axis=1), np.concatenate(sigmas, axis=1)
    ref = _stack(bps)
    ref.logt = net.logt
    base = _metric_values(compare(ref, Result(forward(layers, y)), y, s))

    def report(label: str, em: np.ndarray) -> None:
        v = _metric_values(compare(ref, Result(em), y, s))
        ch = [abs(v[k] - x) / abs(x) for k, x in base.items() if x and k.startswith("rel_err_bin")]
        print(f"{label}: {sum(c > 0.01 for c in ch)} of {len(ch)} bins change > 1 %, max {max(ch):.4f}")

    print(f"{net.model.path}, {y.shape[1]} flare pixels")
    for rounded, split in [((0, 1, 2), ()), ((0,), ()), ((1,), ()), ((2,), ()), ((0, 1, 2), (0, 1, 2)), ((1,), (1,))]:
        report(f"bf16 layers {rounded}, hi+lo weights in {split}", forward(layers, y, rounded, split))
    rng = np.random.default_rng(5)
    for eps in (1e-3, 4e-3):
        report(f"float32, inputs x (1 + {eps:g} N(0,1))", forward(layers, y * (1 + eps * rng.standard_normal(y.shape))))


if __name__ == "__main__":
    main()
