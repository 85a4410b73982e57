"""Train DeepEM (Wright et al. 2018) on fastinv's Basis Pursuit solutions of real AIA data.

Network: 1x1 Conv2d 6->300->300->nT with LeakyReLU(0.01), no output activation.
Input sqrt(max(I, 0)) with I in DN s^-1 pixel^-1 (94, 131, 171, 193, 211, 335 A);
target sqrt(EM / 1e25) with EM per 0.1-dex bin, cm^-5, on log T 5.5..7.2 (18 bins, the
paper's grid, ``deepem18``) or on BP's default 5.5..7.5 (21 bins, ``deepem21``).
Loss MSE (plus, by default, a physics term: the EM re-synthesised through the AIA
responses against the data in sigma units, weight 1e-3), Adam (lr 1e-4, weight decay
1e-9), as the original otherwise.

Data: the 1024x1024 full-disk synoptic set of 2014-01-01 (``fastinv.datasets``). Its
pixels are level-1.5 means of 4x4 level-1 pixels in DN per original pixel, so they are
divided by EXPTIME and the BP error model uses n = 16 summed pixels. Off-disk pixels and,
by default, pixels whose BP status is not ok are excluded. Training and validation are
split by REGION: the disk is cut into 64x64-pixel blocks and every fifth block (in a
diagonal pattern) is held out for validation. The 2011-02-15 flare series is kept for
testing only (:mod:`fastinv.dem.evaluate`).

The synoptic set holds almost no plasma above log T 6.8, so the 21-bin model adds
``synthetic`` pixels with hot (log T 6.8-7.5) components and AIA noise
(:func:`fastinv.dem.synthetic.hot_dems`), labelled by the same BP as the real pixels
(failed ones dropped); every fifth synthetic pixel is validation.

Run: ``fastinv train deepem -o deepem.safetensors`` (200 epochs, about 15 minutes on one core);
the command that made each shipped model is in its card (``training.command``).
"""

from __future__ import annotations

import json
import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from .. import __version__, datasets
from .._atomic import write_text
from .._optional import require
from .._progress import progress_bar
from ..dem.basis_pursuit import DEEPEM_LOGT, BasisPursuit
from ..dem.io import read_aia
from ..dem.synthetic import hot_dems

BLOCK = 64  # region split: block size in pixels
VAL_EVERY = 5  # every fifth block is validation
SYNOPTIC_N_SAMPLE = 16.0


@dataclass
class TrainingSet:
    """Normalised network inputs/targets of one image, flattened over pixels."""

    x: np.ndarray  # (npix, 6) sqrt(DN/s)
    t: np.ndarray  # (npix, nT) sqrt(EM / 1e25)
    y: np.ndarray  # (npix, 6) max(I, 0), DN/s: the data the physics term re-synthesises
    sigma: np.ndarray  # (npix, 6) DN/s, the AIA error model used for the BP labels
    validation: np.ndarray  # (npix,) bool: pixel lies in a validation block
    counts: dict


def on_disk_mask(header, shape: tuple[int, int]) -> np.ndarray:
    """Pixels whose centre lies inside the optical disk (RSUN_OBS), from the celestial WCS."""
    from astropy.wcs import WCS

    ny, nx = shape
    yy, xx = np.mgrid[0:ny, 0:nx]
    wcs = WCS(header).celestial
    tx, ty = wcs.wcs_pix2world(xx.ravel(), yy.ravel(), 0)
    # helioprojective degrees -> arcsec, wrapped to (-180, 180]
    tx = (np.asarray(tx) + 180.0) % 360.0 - 180.0
    ty = np.asarray(ty)
    r = np.hypot(tx, ty) * 3600.0
    rsun = float(header.get("RSUN_OBS", 960.0))
    return (r < rsun).reshape(shape)


def region_split(shape: tuple[int, int]) -> np.ndarray:
    """True for pixels in validation blocks (64x64, every fifth block diagonally)."""
    ny, nx = shape
    by, bx = np.mgrid[0:ny, 0:nx] // BLOCK
    return (bx + 2 * by) % VAL_EVERY == 0


def synoptic_training_set(
    keep_failed: bool = False,
    threads: Optional[int] = None,
    progress: bool = True,
    logt: Optional[Sequence[float]] = None,
) -> TrainingSet:
    """BP labels on ``logt`` (default the 18-bin DeepEM grid) for the 2014-01-01 synoptic
    set, normalised for DeepEM."""
    grid = DEEPEM_LOGT if logt is None else np.asarray(logt, dtype=np.float64)
    # The synoptic files are means of 4x4 original pixels: n = 16 in the error model.
    obs = read_aia(datasets.aia_synoptic_files(), presummed=SYNOPTIC_N_SAMPLE)
    bp = BasisPursuit(logt=grid)
    ny, nx = obs.data.shape[1:]
    bar = progress_bar(ny * nx, desc="BP training targets", unit="px", enabled=progress)
    rows = 64
    em = np.empty((len(grid), ny, nx))
    status = np.empty((ny, nx), np.int8)
    for r0 in range(0, ny, rows):
        res = bp.solve(obs.data[:, r0 : r0 + rows], exptime=obs.exptime, n_sample=obs.n_sample, threads=threads)
        em[:, r0 : r0 + rows] = res.em
        status[r0 : r0 + rows] = res.status
        bar.update(res.status.size)
    disk = on_disk_mask(obs.header, (ny, nx))
    finite = np.all(np.isfinite(obs.data), axis=0)
    use = disk & finite & ((status == 0) | keep_failed)
    y = np.maximum(obs.data[:, use], 0.0)
    x = np.sqrt(y).T.astype(np.float32)
    t = np.sqrt(np.maximum(em[:, use], 0.0) / 1e25).T.astype(np.float32)
    sigma = bp.sigma(obs.data[:, use], obs.exptime, obs.n_sample).T.astype(np.float32)
    counts = {
        "pixels": int(ny * nx),
        "on_disk": int(disk.sum()),
        "bp_ok_on_disk": int((disk & (status == 0)).sum()),
        "used": int(use.sum()),
    }
    return TrainingSet(
        x=x, t=t, y=y.T.astype(np.float32), sigma=sigma, validation=region_split((ny, nx))[use], counts=counts
    )


def synthetic_training_set(n: int, logt: Sequence[float], seed: int = 0, threads: Optional[int] = None) -> TrainingSet:
    """``n`` synthetic hot pixels (:func:`fastinv.dem.synthetic.hot_dems`, flare exposure
    times, n_sample 1) with BP labels on ``logt``; pixels where BP fails are dropped and
    every fifth of the rest is validation."""
    grid = np.asarray(logt, dtype=np.float64)
    syn = hot_dems(n, seed=seed)
    res = BasisPursuit(logt=grid).solve(syn.y, sigma=syn.sigma, threads=threads)
    use = res.status == 0
    y = np.maximum(syn.y[:, use], 0.0)
    validation = np.arange(n)[use] % VAL_EVERY == 0
    return TrainingSet(
        x=np.sqrt(y).T.astype(np.float32),
        t=np.sqrt(np.maximum(res.em[:, use], 0.0) / 1e25).T.astype(np.float32),
        y=y.T.astype(np.float32),
        sigma=syn.sigma[:, use].T.astype(np.float32),
        validation=validation,
        counts={"synthetic": int(n), "synthetic_bp_ok": int(use.sum()), "synthetic_seed": int(seed)},
    )


def _concat(a: TrainingSet, b: TrainingSet) -> TrainingSet:
    return TrainingSet(
        x=np.concatenate([a.x, b.x]),
        t=np.concatenate([a.t, b.t]),
        y=np.concatenate([a.y, b.y]),
        sigma=np.concatenate([a.sigma, b.sigma]),
        validation=np.concatenate([a.validation, b.validation]),
        counts={**a.counts, **b.counts},
    )


def deepem_network(n_out: int = 18):
    """DeepEM as in Wright et al. (2018): 1x1 convolutions 6->300->300->n_out, LeakyReLU(0.01)."""
    torch = require("torch")

    return torch.nn.Sequential(
        torch.nn.Conv2d(6, 300, 1),
        torch.nn.LeakyReLU(0.01),
        torch.nn.Conv2d(300, 300, 1),
        torch.nn.LeakyReLU(0.01),
        torch.nn.Conv2d(300, n_out, 1),
    )


def network_from_file(path: str | os.PathLike):
    """The PyTorch DeepEM network stored in a fastinv model file (its exported weights)."""
    torch = require("torch")
    from safetensors.numpy import load_file

    tensors = load_file(str(path))
    weights = sorted(k for k in tensors if k.endswith("weight"))
    if len(weights) != 3:
        raise ValueError(f"{path}: expected the three layers of a DeepEM network, found {weights}")
    net = deepem_network(tensors[weights[-1]].shape[0])
    convs = [m for m in net if isinstance(m, torch.nn.Conv2d)]
    with torch.no_grad():
        for conv, wname in zip(convs, weights):
            w = torch.from_numpy(np.array(tensors[wname], dtype=np.float32))
            conv.weight.copy_(w.reshape(conv.weight.shape))
            conv.bias.copy_(torch.from_numpy(np.array(tensors[wname[: -len("weight")] + "bias"], dtype=np.float32)))
    return net.eval()


def _as_pixel_mlp(net):
    """The same parameters as Linear layers: per-pixel training on (batch, 6) is far
    faster in PyTorch than 1x1 convolutions on (batch, 6, 1, 1)."""
    torch = require("torch")

    layers = []
    for m in net:
        if isinstance(m, torch.nn.Conv2d):
            lin = torch.nn.Linear(m.in_channels, m.out_channels)
            lin.weight = torch.nn.Parameter(m.weight.view(m.out_channels, m.in_channels))
            lin.bias = m.bias
            layers.append(lin)
        else:
            layers.append(m)
    return torch.nn.Sequential(*layers)


def train(
    output: str | os.PathLike,
    epochs: int = 200,
    batch: int = 2048,
    lr: float = 1e-4,
    weight_decay: float = 1e-9,
    seed: int = 0,
    keep_failed: bool = False,
    threads: Optional[int] = None,
    progress: bool = True,
    data: Optional[TrainingSet] = None,
    max_pixels: Optional[int] = None,
    physics_weight: float = 1e-3,
    logt: Optional[Sequence[float]] = None,
    synthetic: int = 0,
    init: Optional[str | os.PathLike] = None,
    command: Optional[str] = None,
) -> dict:
    """Train DeepEM and write it with :func:`fastinv.export` plus a JSON model card.

    Parameters
    ----------
    output : path
        The ``.safetensors`` model file; the card goes to ``<output>.json`` and inside
        the file's metadata (``fastinv.card``).
    epochs, batch, lr, weight_decay : training hyper-parameters (Adam, MSE).
    seed : int
        Seeds PyTorch's and NumPy's generators: the same seed gives the same model.
    keep_failed : bool
        Keep pixels whose BP status is not ok (as the original DeepEM did).
    threads : int, optional
        Threads for BP and PyTorch.
    data : TrainingSet, optional
        Precomputed :func:`synoptic_training_set` (it takes ~20 s of BP to make).
    max_pixels : int, optional
        Train on a seeded random subset of this many training pixels (quick runs, tests).
    physics_weight : float
        Weight of a physics term added to the loss: the mean over channels of
        ((K @ EM - I) / sigma)^2, the network's EM re-synthesised through the AIA responses
        against the observed DN s^-1 in units of the error model (0: plain DeepEM; the
        shipped model uses the default 1e-3, which beat plain DeepEM at 200 epochs).
    logt : sequence of float, optional
        Output grid (0.1-dex bins); default the paper's 18 bins 5.5..7.2. BP labels are
        made on the same grid.
    synthetic : int
        Add this many synthetic hot-plasma pixels (:func:`synthetic_training_set`, seeded
        by ``seed``) to the synoptic pixels.
    init : path, optional
        Start from the weights of this DeepEM model file (fine-tuning): all hidden layers,
        and the output rows of the log T bins both grids share; other output rows keep
        their seeded random initialisation.
    command : str, optional
        The command line that ran the training, recorded in the card.

    Returns
    -------
    dict
        The model card.
    """
    torch = require("torch")

    from ..export import export

    t0 = time.time()
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    if threads:
        torch.set_num_threads(threads)
    grid = DEEPEM_LOGT if logt is None else np.round(np.asarray(logt, dtype=np.float64), 10)
    if data is None:
        data = synoptic_training_set(keep_failed=keep_failed, threads=threads, progress=progress, logt=grid)
        if synthetic:
            data = _concat(data, synthetic_training_set(synthetic, grid, seed=seed, threads=threads))
    if data.t.shape[1] != len(grid):
        raise ValueError(f"the training targets have {data.t.shape[1]} bins, the grid {len(grid)}")
    t_labels = time.time() - t0
    train_idx = np.flatnonzero(~data.validation)
    if max_pixels is not None and max_pixels < train_idx.size:
        train_idx = np.sort(rng.choice(train_idx, size=max_pixels, replace=False))
    xtr, ttr = torch.from_numpy(data.x[train_idx]), torch.from_numpy(data.t[train_idx])
    ytr, str_ = torch.from_numpy(data.y[train_idx]), torch.from_numpy(data.sigma[train_idx])
    xva, tva = torch.from_numpy(data.x[data.validation]), torch.from_numpy(data.t[data.validation])
    # K^T in DN s^-1 per 1e25 cm^-5, so the re-synthesis is (net output)^2 @ kt
    kt = torch.from_numpy((BasisPursuit(logt=grid).response_table.at(grid) * 1e25).T.astype(np.float32))
    net = deepem_network(len(grid))
    if init is not None:
        _init_from(net, init, grid)
    mlp = _as_pixel_mlp(net)
    opt = torch.optim.Adam(mlp.parameters(), lr=lr, weight_decay=weight_decay)
    loss_fn = torch.nn.MSELoss()
    history = []
    bar = progress_bar(epochs, desc="DeepEM training", unit="epoch", enabled=progress)
    for epoch in range(epochs):
        mlp.train()
        order = torch.from_numpy(rng.permutation(len(xtr)))
        total = 0.0
        for i in range(0, len(order), batch):
            idx = order[i : i + batch]
            opt.zero_grad()
            pred = mlp(xtr[idx])
            loss = loss_fn(pred, ttr[idx])
            if physics_weight:
                resyn = (pred * pred) @ kt
                loss = loss + physics_weight * torch.mean(((resyn - ytr[idx]) / str_[idx]) ** 2)
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        mlp.eval()
        with torch.no_grad():
            val = float(loss_fn(mlp(xva), tva))
        history.append({"epoch": epoch + 1, "train_mse": total / len(xtr), "val_mse": val})
        bar.update(1)
    net.eval()
    card = {
        "name": "DeepEM (fastinv)",
        "fastinv_version": __version__,
        "architecture": f"1x1 Conv2d 6-300-300-{len(grid)}, LeakyReLU(0.01), no output activation (Wright et al. 2018)",
        "input": {
            "channels_angstrom": [94, 131, 171, 193, 211, 335],
            "unit": "DN s-1 pixel-1",
            "transform": "sqrt(max(I, 0))",
        },
        "output": {
            "logt": [round(float(v), 2) for v in grid],
            "unit": "cm-5 per 0.1 dex bin",
            "transform": "EM = 1e25 * y**2",
        },
        "labels": {
            "method": f"fastinv Basis Pursuit (Cheung et al. 2015), {len(grid)}-bin grid, widths 0.1/0.2/0.6, "
            "tolfac 1.4 adaptive",
            "response": BasisPursuit(logt=grid).response_name,
            "error_model_n_sample": SYNOPTIC_N_SAMPLE,
            "keep_failed": keep_failed,
        },
        "physics_weight": physics_weight,
        "data": {
            "training": "AIA synoptic 1024x1024, 2014-01-01T00:00 (demregpy 1.0.0 wheel)",
            "split": f"by region: {BLOCK}x{BLOCK} blocks, (bx + 2 by) % {VAL_EVERY} == 0 -> validation",
            "test": "2011-02-15 X2.2 flare series (10 time steps), never used in training",
            **(
                {
                    "synthetic_pixels": "fastinv.dem.synthetic.hot_dems: hot Gaussian (centre log T 6.8-7.5, "
                    "width 0.05-0.2 dex, total EM 1e27-1e30) + background (5.9-6.5, 0.1-0.3 dex, "
                    "1e27-1e29), flare exposure times, AIA noise, BP labels; every 5th -> validation"
                }
                if "synthetic" in data.counts
                else {}
            ),
            **data.counts,
            "train_pixels": int(len(xtr)),
            "validation_pixels": int(len(xva)),
        },
        "training": {
            "epochs": epochs,
            "batch": batch,
            "optimizer": "Adam",
            "lr": lr,
            "weight_decay": weight_decay,
            "loss": "MSE",
            "seed": seed,
            "init": None if init is None else Path(init).name,
            "command": command,
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "label_seconds": round(t_labels, 1),
            "total_seconds": round(time.time() - t0, 1),
            "machine": platform.processor() or platform.machine(),
        },
        "metrics": {
            "final_train_mse": history[-1]["train_mse"],
            "final_val_mse": history[-1]["val_mse"],
            "history": history,
        },
    }
    output = Path(output)
    export(net, output, torch.zeros(1, 6, 4, 4), metadata={"fastinv.card": json.dumps(card)})
    write_text(output.with_suffix(output.suffix + ".json"), json.dumps(card, indent=2))
    return card


def _init_from(net, path: str | os.PathLike, grid: np.ndarray) -> None:
    """Copy a trained DeepEM's weights into ``net`` (see ``train(init=...)``)."""
    torch = require("torch")
    from ..model import Model

    card = json.loads(Model(path).metadata.get("fastinv.card", "{}"))
    src_logt = np.round(np.asarray(card.get("output", {}).get("logt", []), dtype=np.float64), 10)
    src = network_from_file(path)
    dst = [m for m in net if isinstance(m, torch.nn.Conv2d)]
    srcl = [m for m in src if isinstance(m, torch.nn.Conv2d)]
    with torch.no_grad():
        for d, s in zip(dst[:-1], srcl[:-1]):
            d.weight.copy_(s.weight)
            d.bias.copy_(s.bias)
        for i, v in enumerate(grid):
            j = np.flatnonzero(np.abs(src_logt - v) < 1e-6)
            if j.size:
                dst[-1].weight[i] = srcl[-1].weight[int(j[0])]
                dst[-1].bias[i] = srcl[-1].bias[int(j[0])]
