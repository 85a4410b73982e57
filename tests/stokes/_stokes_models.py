"""Small random-weight Stokes models with a model card (as the trained ones carry), and an
independent float64 NumPy/torch reference of what fastinv.stokes.StokesNet must compute."""

from __future__ import annotations

import json

import numpy as np

HINODE_WL = 6302.08 + (np.arange(112) - 55.5) * 0.0215
# a crop of the ViSP sampling around the two lines, as the shipped ViSP model uses
VISP_WL = 6302.0 + (np.arange(980) - 489.5) * 0.01625
VISP_WL = VISP_WL[(VISP_WL > 6300.6) & (VISP_WL < 6303.4)]
NODES = [0.0, -0.5, -1.0, -1.5, -2.0, -2.5, -3.0]
IQUV_OUTPUTS = ["temperature", "vlos", "B", "inclination", "azimuth_sin2", "azimuth_cos2"]
_MEAN = {
    "temperature": 5500.0,
    "vlos": 0.0,
    "B": 600.0,
    "inclination": 90.0,
    "azimuth_sin2": 0.0,
    "azimuth_cos2": 0.0,
    "B_los": 0.0,
}
_STD = {
    "temperature": 800.0,
    "vlos": 2.0,
    "B": 500.0,
    "inclination": 40.0,
    "azimuth_sin2": 0.7,
    "azimuth_cos2": 0.7,
    "B_los": 300.0,
}


def make_card(
    instrument="hinode_sp",
    wavelength=None,
    stokes=("I", "Q", "U", "V"),
    outputs=IQUV_OUTPUTS,
    nodes=NODES,
    architecture="compact-cnn",
):
    wl = np.asarray(
        HINODE_WL if wavelength is None and instrument == "hinode_sp" else VISP_WL if wavelength is None else wavelength
    )
    offset = [1.0 if s == "I" else 0.0 for s in stokes]
    scale = [1.0 if s == "I" else 10.0 for s in stokes]
    mean = [_MEAN[q] for q in outputs for _ in nodes]
    std = [_STD[q] for q in outputs for _ in nodes]
    return {
        "kind": "fastinv.stokes",
        "architecture": architecture,
        "instrument": instrument,
        "wavelength": [float(v) for v in wl],
        "input": {"stokes": list(stokes), "offset": offset, "scale": scale},
        "nodes": list(nodes),
        "outputs": list(outputs),
        "output_mean": mean,
        "output_std": std,
        "units": {"temperature": "K", "vlos": "km/s", "B": "G", "B_los": "G", "inclination": "deg", "azimuth": "deg"},
        "mu": 1.0,
        "noise": 0.001,
    }


def make_net(n_in: int, n_wl: int, n_out: int, seed: int = 0, width: int = 8):
    import torch
    from torch import nn

    torch.manual_seed(seed)
    l = n_wl
    l = (l - 4) // 2
    l = (l - 4) // 2
    net = nn.Sequential(
        nn.Conv1d(n_in, width, 5),
        nn.ReLU(),
        nn.MaxPool1d(2),
        nn.Conv1d(width, width, 5),
        nn.ReLU(),
        nn.MaxPool1d(2),
        nn.Flatten(),
        nn.Linear(width * l, 32),
        nn.ReLU(),
        nn.Linear(32, n_out),
    ).eval()
    with torch.no_grad():  # outputs of order 1 (as a trained, standardised net)
        net[-1].weight.mul_(3.0)
    return net


def write_model(path, card=None, seed=0, **card_kw):
    """Export a random network with ``card`` to ``path``; returns (torch net, card)."""
    import fastinv
    import torch

    card = card or make_card(**card_kw)
    n_in, n_wl = len(card["input"]["stokes"]), len(card["wavelength"])
    net = make_net(n_in, n_wl, len(card["outputs"]) * len(card["nodes"]), seed)
    fastinv.export(net, path, torch.zeros(1, n_in, n_wl), metadata={"fastinv.card": json.dumps(card)})
    return net, card


def reference_predict(net, card, stokes):
    """Independent decoding in float64 (torch network + NumPy), straight from the card's
    definition: x = (S/I_c - offset) * scale; value = net * std + mean; azimuth from
    sin/cos 2phi; clips."""
    import torch

    idx = ["IQUV".index(s) for s in card["input"]["stokes"]]
    off = np.asarray(card["input"]["offset"])[None, :, None]
    sc = np.asarray(card["input"]["scale"])[None, :, None]
    x = (np.asarray(stokes, dtype=np.float64)[:, idx] - off) * sc
    with torch.no_grad():
        y = net.double()(torch.from_numpy(x)).numpy()
    net.float()
    y = y * np.asarray(card["output_std"]) + np.asarray(card["output_mean"])
    n = len(card["nodes"])
    cols = {q: y[:, i * n : (i + 1) * n] for i, q in enumerate(card["outputs"])}
    out = {}
    for q, v in cols.items():
        if q.startswith("azimuth_"):
            continue
        if q == "inclination":
            v = np.clip(v, 0, 180)
        if q == "B":
            v = np.maximum(v, 0)
        out[q] = v
    if "azimuth_sin2" in cols:
        out["azimuth"] = np.mod(np.degrees(np.arctan2(cols["azimuth_sin2"], cols["azimuth_cos2"])) / 2, 180)
    return out
