"""A slow, obvious float64 NumPy interpreter of the fastinv graph, written from
docs/model-format.md alone, reading the file with the `safetensors` package.

It checks the EXPORTER (what the file means equals what the torch module computes)
independently of fastinv's C++ engine; test_parity.py then checks the engine.
"""

from __future__ import annotations

import json

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from safetensors import safe_open


def read_model(path):
    """(graph dict, {name: float32 array}, metadata) through the safetensors package."""
    with safe_open(str(path), framework="numpy") as f:
        meta = f.metadata()
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    return json.loads(meta["fastinv.graph"]), tensors, meta


def _act(x, nd):
    kind = nd["kind"]
    if kind == "relu":
        return np.maximum(x, 0.0)
    if kind == "leaky_relu":
        return np.where(x >= 0, x, nd["alpha"] * x)
    if kind == "elu":
        return np.where(x > 0, x, nd["alpha"] * np.expm1(np.minimum(x, 0)))
    if kind == "silu":
        return x / (1.0 + np.exp(-x))
    if kind == "gelu":
        if nd["approximate"] == "tanh":
            return 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x**3)))
        from scipy.special import erf

        return 0.5 * x * (1 + erf(x / np.sqrt(2)))
    if kind == "tanh":
        return np.tanh(x)
    if kind == "sigmoid":
        return 1.0 / (1.0 + np.exp(-x))
    if kind == "softplus":
        b, t = nd["beta"], nd["threshold"]
        return np.where(b * x > t, x, np.log1p(np.exp(np.minimum(b * x, t))) / b)
    raise ValueError(kind)


def _windows(x, k, s, d, pad_l, pad_r, fill):
    """(N, C, L) -> (N, C, Lout, K) windows of a padded signal."""
    xp = np.pad(x, ((0, 0), (0, 0), (pad_l, pad_r)), constant_values=fill)
    span = d * (k - 1) + 1
    w = sliding_window_view(xp, span, axis=2)[:, :, ::s, ::d]
    return w


def run_graph(graph, tensors, x, operand=None, weight=None):
    """Evaluate the graph on a batch x laid out as for torch; returns torch's output shape.

    ``operand``, if given, maps each conv1d / linear layer's input and weight before the
    float64 product (a reduced-precision emulation rounds them there); ``weight``, if given,
    maps the weights instead (bf16x2: weights as two bf16 terms, inputs as one).
    """
    op_in = operand or (lambda v: v)
    op_w = weight or op_in
    x = np.asarray(x, dtype=np.float64)
    layout = graph["input"]["layout"]
    if layout == "nchw":  # pixels become samples: (N, C, H, W) -> (N*H*W, C)
        n, c, h, w = x.shape
        x = x.transpose(0, 2, 3, 1).reshape(-1, c)
    vals = {graph["input"]["name"]: x}
    T = {k: v.astype(np.float64) for k, v in tensors.items()}
    for nd in graph["nodes"]:
        ins = [vals[i] for i in nd["inputs"]]
        a = ins[0]
        op = nd["op"]
        if op == "conv1d":
            W = op_w(T[nd["weight"]])
            k = W.shape[2]
            win = _windows(op_in(a), k, nd["stride"], nd["dilation"], *nd["padding"], 0.0)
            y = np.einsum("nclk,ock->nol", win, W)
            if "bias" in nd:
                y = y + T[nd["bias"]][None, :, None]
        elif op == "linear":
            y = op_in(a) @ op_w(T[nd["weight"]]).T
            if "bias" in nd:
                y = y + T[nd["bias"]]
        elif op == "act":
            y = _act(a, nd)
        elif op == "maxpool1d":
            p = nd["padding"]
            y = _windows(a, nd["kernel"], nd["stride"], 1, p, p, -np.inf).max(axis=-1)
        elif op == "avgpool1d":
            p, k = nd["padding"], nd["kernel"]
            s = _windows(a, k, nd["stride"], 1, p, p, 0.0).sum(axis=-1)
            if nd["count_include_pad"]:
                y = s / k
            else:
                ones = np.ones((1, 1, a.shape[2]))
                y = s / _windows(ones, k, nd["stride"], 1, p, p, 0.0).sum(axis=-1)
        elif op == "flatten":
            y = a.reshape(a.shape[0], -1)
        elif op == "concat":
            y = np.concatenate(ins, axis=1)
        elif op == "add":
            y = sum(ins[1:], ins[0])
        elif op == "affine":
            shp = (1, -1) + (1,) * (a.ndim - 2)
            y = a * T[nd["scale"]].reshape(shp) + T[nd["shift"]].reshape(shp)
        else:
            raise ValueError(f"unknown op {op}")
        vals[nd["name"]] = y
    y = vals[graph["output"]]
    if layout == "nchw":
        y = y.reshape(n, h, w, -1).transpose(0, 3, 1, 2)
    return y
