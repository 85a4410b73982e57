"""Train fastinv's Stokes inversion networks on its own synthetic LTE profiles.

Data: a training set written by ``fastinv stokes synth --model lte`` (HDF5, layout in
:mod:`fastinv.stokes.synthesis.training_sets`): random quiet-Sun, plage, penumbra and umbra atmospheres
synthesised through an instrument (Hinode SP or DKIST ViSP) with its noise. Rows are i.i.d.,
so the split is by row: the first 90 % train, the next 5 % validate (model selection), the
last 5 % are held out for :mod:`fastinv.stokes.inversion.evaluate`.

Inputs: I/I_c - 1 and Q, U, V / I_c on the model's grid (Hinode: all 112 points; ViSP: its
sampling cropped to 6300.6-6303.4 A around the two lines), each channel scaled by the inverse
of its standard deviation over the training rows. Outputs (``"default"`` target set):
temperature, v_LOS, |B|, inclination and the azimuth as (sin 2 phi, cos 2 phi), which has no
jump at the 180 deg ambiguity, at the nodes (log tau_500 = 0, -0.5, ..., -3, or the 21-node
mode -2.0 ... 0.0 in steps of 0.1); each output column is standardised. All scalings go in
the model card (``fastinv.card`` in the file's metadata), so the model file is
self-describing; :class:`fastinv.stokes.inversion.network.StokesNet` reads it.

Loss: mean squared error of the standardised outputs, plus optionally (``physics_weight``)
the weak-field term: the network's B cos(gamma), averaged over log tau -0.5 ... -2, against
the weak-field-approximation B_LOS of Fe I 6302.5 measured from the input profile itself
(restricted to |B_LOS| < 1 kG where the approximation holds). Adam with a cosine learning-rate
decay; reproducible by seed (the data order comes from the seed; PyTorch's CPU kernels give
the same result for the same seed and thread count).

Run: ``fastinv train stokes DATA.h5 -o stokes_hinode.safetensors --epochs 2
--max-profiles 600000`` (the shipped Hinode model: 16 minutes on 2 shared cores).
"""

from __future__ import annotations

import json
import math
import os
import platform
import time
from collections.abc import Sequence

import numpy as np

from .. import __version__
from .._optional import require
from .._progress import progress_bar
from ..stokes.synthesis.training_sets import NODE_SETS, SPLIT, TARGETS, model_window, read_set, targets

#: Weak-field constant e lambda^2 / (4 pi m_e c^2) [A^-1 G^-1] and Fe I 6302.5's g_eff.
_WFA_C, _WFA_G, _WFA_LINE = 4.6686e-13, 2.5, 6302.4936


def weak_field_blos(stokes: np.ndarray, wavelength: np.ndarray, half_width: float = 0.25) -> np.ndarray:
    """B_LOS [G] from the weak-field approximation on Fe I 6302.5 (least squares).

    V = -C g lambda0^2 B_LOS dI/dlambda over lambda0 +- ``half_width`` (Landi Degl'Innocenti
    & Landolfi 2004, eq. 9.77); positive toward the observer (fastinv's sign: V > 0 in the
    blue lobe for inclination < 90 deg).
    """
    wl = np.asarray(wavelength, dtype=np.float64)
    intensity = stokes[:, 0, :].astype(np.float64)
    didl = np.gradient(intensity, wl, axis=1)
    # fourth-order central differences inside (grids are uniform): 2nd order underestimates
    # the slope of a 0.1 A line on Hinode's 21.5 mA grid by ~2 %
    h = np.gradient(wl)[2:-2]
    didl[:, 2:-2] = (intensity[:, :-4] - 8 * intensity[:, 1:-3] + 8 * intensity[:, 3:-1] - intensity[:, 4:]) / (12 * h)
    m = np.abs(wl - _WFA_LINE) <= half_width
    d, v = didl[:, m], stokes[:, 3, m].astype(np.float64)
    return -(d * v).sum(1) / (_WFA_C * _WFA_G * _WFA_LINE**2 * np.maximum((d * d).sum(1), 1e-30))


def _network_input(stokes: np.ndarray, channels: Sequence[int], offset: np.ndarray, scale: np.ndarray) -> np.ndarray:
    x = stokes[:, list(channels), :].astype(np.float32)
    x -= offset[:, None]
    x *= scale[:, None]
    return x


def _export_error(net, path: str | os.PathLike, x) -> float:
    """max |engine - PyTorch| / max |PyTorch| of the exported file on ``x``; raises if > 1e-4."""
    torch = require("torch")

    from ..model import load

    with torch.no_grad():
        ref = net(x).numpy()
    err = float(np.max(np.abs(load(path)(x.numpy()) - ref)) / np.max(np.abs(ref)))
    if not err <= 1e-4:
        raise RuntimeError(f"exported model {path} disagrees with PyTorch (relative error {err:.2e})")
    return err


def train(
    data: str | os.PathLike,
    output: str | os.PathLike,
    *,
    architecture: str = "compact-cnn",
    nodes: str = "7",
    epochs: int = 4,
    batch: int = 512,
    lr: float = 2e-3,
    seed: int = 0,
    max_profiles: int | None = None,
    physics_weight: float = 0.0,
    threads: int | None = None,
    progress: bool = True,
) -> dict:
    """Train a Stokes network on a training set and export it with its model card.

    Parameters
    ----------
    data : path
        HDF5 training set (``fastinv stokes synth --model lte``).
    output : path
        The ``.safetensors`` model to write (its card is also written beside it as ``.json``).
    architecture : {"compact-cnn", "muisca"}
        ``"muisca"`` uses I and V only and the MUISCA targets (T, v_LOS, B_LOS).
    nodes : {"7", "21"}
    epochs, batch, lr, seed :
        Optimisation (Adam, cosine decay from ``lr`` to ``lr / 100``).
    max_profiles : int, optional
        Use only the first rows of the training part (quick runs, equal-terms comparisons).
    physics_weight : float
        Weight of the weak-field B_LOS term (0: off).
    threads : int, optional
        PyTorch threads.

    Returns
    -------
    dict
        The model card.
    """
    torch = require("torch")

    from ..export import export
    from ..stokes.inversion.evaluate import evaluate
    from .stokes_nets import build

    if nodes not in NODE_SETS:
        raise ValueError(f"nodes must be one of {sorted(NODE_SETS)}")
    if epochs < 1 or batch < 1:
        raise ValueError("epochs and batch must be >= 1")
    if threads:
        torch.set_num_threads(int(threads))
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    t_start = time.perf_counter()

    h5py = require("h5py", "reading HDF5 training sets")

    with h5py.File(data, "r") as f:
        if "status" not in f:
            raise ValueError(f"{data}: not an LTE training set (no 'status')")
        n_all = f["status"].shape[0]
    a, b = int(SPLIT[0] * n_all), int(SPLIT[1] * n_all)
    # read only what is used: a quick run on max_profiles rows must not load a 3 GB set
    n_read = a if not max_profiles else min(a, int(1.05 * max_profiles) + 1000)
    part, val = read_set(data, slice(0, n_read)), read_set(data, slice(a, b))
    meta = part["metadata"]
    instrument = "visp" if str(meta.get("instrument", "")).startswith("visp") else "hinode"
    train_rows = np.flatnonzero(part["status"] == 0)
    if max_profiles:
        train_rows = train_rows[: int(max_profiles)]
    val_rows = np.flatnonzero(val["status"] == 0)

    window = model_window(instrument, part["wavelength"])
    wavelength = part["wavelength"][window]
    muisca = architecture == "muisca"
    channels = (0, 3) if muisca else (0, 1, 2, 3)
    quantities = TARGETS["muisca" if muisca else "default"]
    node_values = NODE_SETS[nodes]
    stokes = part["stokes"][train_rows][:, :, window]
    y_rows = targets(
        {k: v[train_rows] for k, v in part["atmosphere"].items()}, part["log_tau"], node_values, quantities
    )
    y_val_phys = targets(
        {k: v[val_rows] for k, v in val["atmosphere"].items()}, val["log_tau"], node_values, quantities
    )

    offset = np.array([1.0 if c == 0 else 0.0 for c in channels], dtype=np.float32)
    sample = stokes[:200_000][:, list(channels)] - offset[None, :, None]
    scale = (1.0 / sample.std(axis=(0, 2))).astype(np.float32)
    y_mean = y_rows.mean(0)
    y_std = np.maximum(y_rows.std(0), 1e-6).astype(np.float32)

    x_train = torch.from_numpy(_network_input(stokes, channels, offset, scale))
    y_train = torch.from_numpy((y_rows - y_mean) / y_std)
    x_val = torch.from_numpy(_network_input(val["stokes"][val_rows][:, :, window], channels, offset, scale))
    y_val = torch.from_numpy((y_val_phys - y_mean) / y_std)
    del part, val

    physics = None
    if physics_weight > 0:
        if muisca:
            raise ValueError("the weak-field term needs the default targets (B, inclination)")
        blos = weak_field_blos(stokes, wavelength)
        physics = torch.from_numpy(np.where(np.abs(blos) < 1000.0, blos, np.nan).astype(np.float32))

    net = build(architecture, len(channels), wavelength.size, y_rows.shape[1])
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    steps_per_epoch = math.ceil(len(train_rows) / batch)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs * steps_per_epoch, eta_min=lr / 100)
    n_nodes = len(node_values)
    wfa_nodes = [k for k, v in enumerate(node_values) if -2.0 <= v <= -0.5]
    qi = {q: i for i, q in enumerate(quantities)}
    mean_t, std_t = torch.from_numpy(y_mean), torch.from_numpy(y_std)

    def physics_term(pred: torch.Tensor, target_blos: torch.Tensor) -> torch.Tensor:
        phys = pred * std_t + mean_t
        cols = lambda q: [qi[q] * n_nodes + k for k in wfa_nodes]  # noqa: E731
        blos = (phys[:, cols("B")] * torch.cos(torch.deg2rad(phys[:, cols("inclination")]))).mean(1)
        valid = ~torch.isnan(target_blos)
        if not bool(valid.any()):
            return pred.new_zeros(())
        return (((blos - target_blos) / 1000.0)[valid] ** 2).mean()

    history = []
    bar = progress_bar(epochs * steps_per_epoch, desc="Stokes training", unit="batch", enabled=progress)
    for epoch in range(epochs):
        net.train()
        order = torch.from_numpy(rng.permutation(len(train_rows)))
        total = 0.0
        for s in range(steps_per_epoch):
            idx = order[s * batch : (s + 1) * batch]
            pred = net(x_train[idx])
            loss = torch.mean((pred - y_train[idx]) ** 2)
            if physics is not None:
                loss = loss + physics_weight * physics_term(pred, physics[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(idx)
            bar.update(1)
        net.eval()
        with torch.no_grad():
            val = float(
                torch.cat(
                    [
                        torch.mean((net(x_val[i : i + 8192]) - y_val[i : i + 8192]) ** 2, 1)
                        for i in range(0, len(val_rows), 8192)
                    ]
                ).mean()
            )
        history.append({"epoch": epoch + 1, "train_loss": total / len(train_rows), "val_mse": val})
    seconds = time.perf_counter() - t_start

    card = {
        "kind": "fastinv.stokes",
        "architecture": architecture,
        "instrument": "visp" if instrument == "visp" else "hinode_sp",
        "wavelength": [float(w) for w in wavelength],
        "input": {
            "stokes": ["I", "V"] if muisca else ["I", "Q", "U", "V"],
            "offset": offset.tolist(),
            "scale": scale.tolist(),
            "transform": "x[c] = (S[c] / I_c - offset[c]) * scale[c]",
        },
        "nodes": list(node_values),
        "outputs": list(quantities),
        "output_mean": y_mean.tolist(),
        "output_std": y_std.tolist(),
        "units": {"temperature": "K", "vlos": "km/s", "B": "G", "B_los": "G", "inclination": "deg", "azimuth": "deg"},
        "mu": meta.get("mu", 1.0),
        "noise": meta.get("noise"),
        "training": {
            "data": os.path.basename(os.fspath(data)),
            "profiles_in_set": n_all,
            "data_seed": meta.get("seed"),
            "populations": meta.get("populations"),
            "generation_seconds": meta.get("generation_seconds"),
            "rows": {"train": [0, a], "validation": [a, b], "test": [b, n_all]},
            "train_profiles": int(len(train_rows)),
            "epochs": epochs,
            "batch": batch,
            "lr": lr,
            "optimizer": "Adam, cosine decay to lr/100",
            "seed": seed,
            "physics_weight": physics_weight,
            "history": history,
            "seconds": round(seconds, 1),
            "threads": torch.get_num_threads(),
            "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
            "torch": torch.__version__,
        },
        "fastinv_version": __version__,
    }
    net.eval()
    export(net, output, torch.zeros(1, len(channels), wavelength.size), metadata={"fastinv.card": json.dumps(card)})
    card["training"]["export_max_rel_error"] = _export_error(net, output, x_val[:512])
    card["metrics"] = evaluate(output, data, threads=threads)
    from .._atomic import write_text
    from ..export import update_card

    write_text(os.fspath(output) + ".json", json.dumps(card, indent=2))
    return update_card(output, {"metrics": card["metrics"], "training": card["training"]})
