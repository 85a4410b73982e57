"""Train the ME-initialisation network (``fastinv train stokes --target me``).

Data: ME-synthetic profiles made here, reproducibly by seed: parameters drawn by
:func:`fastinv.stokes.synthesis.sampling.sample_me_parameters` over its ``ME_RANGES`` with
the filling factor fixed at 1 and no macroturbulence (the inversion's defaults, so that the
network predicts the model the Levenberg-Marquardt fit uses), synthesised with
:class:`fastinv.stokes.MilneEddington` through the instrument (LSF, sampling) and its
Gaussian noise (1e-3 I_c unless ``noise`` is given). A second, independent set (seed + 1)
validates.

Network: :func:`fastinv.train.stokes_nets.compact_cnn` (4 channels, 10 outputs); encoding
of inputs and outputs in :mod:`fastinv.stokes.inversion.me_network`. Loss: mean squared
error of the standardised outputs; Adam with a cosine learning-rate decay.

Run (the shipped models; command and timing in each card):
``fastinv train stokes --target me --instrument hinode --n 200000 --epochs 4 -o me_init_hinode.safetensors``
"""

from __future__ import annotations

import json
import math
import os
import platform
import time

import numpy as np

from .. import __version__
from .._optional import require
from .._progress import progress_bar
from ..stokes.inversion.me_network import ME_NET_KIND, ME_NET_OUTPUTS, encode_targets, pixel_continuum

#: Which parameters the training draw fixes (value) relative to ``ME_RANGES``.
FIXED = {"filling_factor": (1.0, 1.0, "uniform"), "vmac": (0.0, 0.0, "uniform")}
#: Instruments and their ME grids.
INSTRUMENTS = {"hinode": "hinode", "visp": "visp_lines"}


def me_set(n: int, instrument: str, seed: int, noise: float | None = None, threads: int | None = None) -> dict:
    """``n`` noisy ME profiles on the instrument's grid with their parameters.

    Returns
    -------
    dict
        ``stokes`` (n, 4, m) float32 (not normalised), ``wavelength``, ``parameters``
        (name -> (n,)), ``lines``.

    Examples
    --------
    >>> from fastinv.train.stokes_me import me_set
    >>> me_set(3, "hinode", seed=0)["stokes"].shape
    (3, 4, 112)
    """
    from ..stokes.synthesis.milne_eddington import MilneEddington
    from ..stokes.synthesis.sampling import sample_me_parameters
    from ..stokes.synthesis.training_sets import instrument_by_name

    if instrument not in INSTRUMENTS:
        raise ValueError(f"instrument must be one of {sorted(INSTRUMENTS)}, got {instrument!r}")
    rng = np.random.default_rng(seed)
    params = sample_me_parameters(int(n), seed=rng, ranges=FIXED)
    me = MilneEddington(instrument=instrument_by_name(INSTRUMENTS[instrument], noise))
    stokes = np.empty((int(n), 4, me.wavelength.size), dtype=np.float32)
    noise_rng = np.random.default_rng(rng.integers(2**63))
    for start in range(0, int(n), 20000):
        sub = {k: v[start : start + 20000] for k, v in params.items()}
        stokes[start : start + 20000] = me.synthesize(sub, seed=noise_rng, threads=threads)
    return {
        "stokes": stokes,
        "wavelength": me.wavelength.copy(),
        "parameters": params,
        "lines": [line.name for line in me.lines],
    }


def _inputs(stokes: np.ndarray, scale: np.ndarray | None = None):
    ic = pixel_continuum(stokes).astype(np.float64)
    x = (stokes / ic[:, None, None].astype(np.float32)).astype(np.float32)
    x[:, 0] -= 1.0
    if scale is None:
        scale = (1.0 / x[:200_000].std(axis=(0, 2))).astype(np.float32)
    x *= scale[None, :, None]
    return x, ic, scale


def train_me(
    output: str | os.PathLike,
    *,
    instrument: str = "hinode",
    n: int = 200_000,
    n_validation: int = 20_000,
    epochs: int = 4,
    batch: int = 512,
    lr: float = 2e-3,
    seed: int = 0,
    noise: float | None = None,
    threads: int | None = None,
    progress: bool = True,
    command: str | None = None,
) -> dict:
    """Train and export an ME-initialisation network; returns its model card.

    Parameters
    ----------
    output : path
        ``.safetensors`` file to write (card also beside it as ``.json``).
    instrument : {"hinode", "visp"}
        Hinode SP (112 points) or ViSP on the 173 points of the shipped ViSP network.
    n, n_validation : int
        Training and validation profiles.
    epochs, batch, lr, seed :
        Optimisation (Adam, cosine decay to ``lr / 100``); the data come from ``seed`` too.
    noise : float, optional
        Noise in units of I_c (default: the instrument's 1e-3).
    threads : int, optional
        PyTorch and synthesis threads.
    command : str, optional
        The command line, recorded in the card.
    """
    torch = require("torch")
    from ..export import export
    from .stokes import _export_error
    from .stokes_nets import compact_cnn

    if epochs < 1 or batch < 1 or n < batch:
        raise ValueError("need epochs >= 1, batch >= 1 and n >= batch")
    if threads:
        torch.set_num_threads(int(threads))
    torch.manual_seed(seed)
    t0, c0 = time.perf_counter(), time.process_time()
    data = me_set(n, instrument, seed, noise, threads)
    val = me_set(n_validation, instrument, seed + 1, noise, threads)
    t_data = time.perf_counter() - t0
    x, ic, scale = _inputs(data["stokes"])
    y = encode_targets(data["parameters"], ic)
    y_mean, y_std = y.mean(0), np.maximum(y.std(0), 1e-6)
    xv, icv, _ = _inputs(val["stokes"], scale)
    yv = encode_targets(val["parameters"], icv)
    x_t, y_t = torch.from_numpy(x), torch.from_numpy(((y - y_mean) / y_std).astype(np.float32))
    xv_t, yv_t = torch.from_numpy(xv), torch.from_numpy(((yv - y_mean) / y_std).astype(np.float32))
    del data

    m = x.shape[2]
    net = compact_cnn(4, m, len(ME_NET_OUTPUTS))
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    steps = math.ceil(n / batch)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs * steps, eta_min=lr / 100)
    rng = np.random.default_rng(seed)
    history = []
    bar = progress_bar(epochs * steps, desc="ME-init training", unit="batch", enabled=progress)
    for epoch in range(epochs):
        net.train()
        order = torch.from_numpy(rng.permutation(n))
        total = 0.0
        for s in range(steps):
            idx = order[s * batch : (s + 1) * batch]
            loss = torch.mean((net(x_t[idx]) - y_t[idx]) ** 2)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(idx)
            bar.update(1)
        net.eval()
        with torch.no_grad():
            v = float(torch.mean((net(xv_t) - yv_t) ** 2))
        history.append({"epoch": epoch + 1, "train_loss": total / n, "val_mse": v})
    bar.close()
    seconds = time.perf_counter() - t0
    with torch.no_grad():
        pred = net(xv_t).numpy().astype(np.float64) * y_std + y_mean
    rmse = {k: float(np.sqrt(np.mean((pred[:, i] - yv[:, i]) ** 2))) for i, k in enumerate(ME_NET_OUTPUTS)}
    card = {
        "kind": ME_NET_KIND,
        "architecture": "compact-cnn",
        "instrument": "hinode_sp" if instrument == "hinode" else "visp",
        "lines": val["lines"],
        "wavelength": [float(w) for w in val["wavelength"]],
        "input": {
            "stokes": ["I", "Q", "U", "V"],
            "offset": [1.0, 0.0, 0.0, 0.0],
            "scale": scale.tolist(),
            "transform": "x[c] = (S[c] / I_c - offset[c]) * scale[c], I_c = max of the pixel's Stokes I",
        },
        "outputs": list(ME_NET_OUTPUTS),
        "output_mean": y_mean.tolist(),
        "output_std": y_std.tolist(),
        "units": {"B_los": "G", "B_t": "G", "vlos": "km/s", "doppler_width": "mA", "S0": "I_c", "S1": "I_c"},
        "training": {
            "command": command,
            "data": "ME-synthetic, made in memory (fastinv.train.stokes_me.me_set)",
            "fixed": {k: v[0] for k, v in FIXED.items()},
            "noise": noise if noise is not None else 1e-3,
            "mu": 1.0,
            "profiles": int(n),
            "validation_profiles": int(n_validation),
            "epochs": epochs,
            "batch": batch,
            "lr": lr,
            "optimizer": "Adam, cosine decay to lr/100",
            "seed": seed,
            "history": history,
            "data_seconds": round(t_data, 1),
            "seconds": round(seconds, 1),
            "cpu_seconds": round(time.process_time() - c0, 1),
            "threads": torch.get_num_threads(),
            "load_average": [round(a, 2) for a in os.getloadavg()],
            "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
            "torch": torch.__version__,
        },
        "metrics": {"validation_rmse": rmse},
        "fastinv_version": __version__,
    }
    export(net, output, torch.zeros(1, 4, m), metadata={"fastinv.card": json.dumps(card)})
    card["training"]["export_max_rel_error"] = _export_error(net, output, xv_t[:512])
    from .._atomic import write_text
    from ..export import update_card

    write_text(os.fspath(output) + ".json", json.dumps(card, indent=2))
    return update_card(output, {"training": card["training"]})
