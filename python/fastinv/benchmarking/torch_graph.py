"""A fastinv model file as a PyTorch module: the peer that ``fastinv bench`` compares with
when the user's original module is not at hand.

Each node of the file's graph (docs/model-format.md) becomes the torch operation it was
exported from, with the file's float32 weights: ``linear`` in an ``nchw`` graph is a 1x1
``Conv2d`` (how per-pixel networks are written in torch), asymmetric ``conv1d`` padding an
explicit ``F.pad``. The module traces to ONNX, which is how ONNX Runtime gets the model.
"""

from __future__ import annotations

import json
import os
from typing import Any

from .._optional import require
from ..export.serialize import read_safetensors

__all__ = ["torch_module"]


def torch_module(path: str | os.PathLike) -> Any:
    """The network stored in a fastinv model file as a ``torch.nn.Module`` (eval mode).

    Parameters
    ----------
    path : str or os.PathLike
        A ``.safetensors`` file written by :func:`fastinv.export`.

    Returns
    -------
    torch.nn.Module
        Takes and returns batches laid out as for :func:`fastinv.load`'s model.

    Raises
    ------
    ImportError
        PyTorch is not installed (one line naming the extra).
    ValueError
        The file is damaged or its graph has an operation this version does not know.

    Examples
    --------
    >>> import numpy as np, torch, fastinv
    >>> net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh())
    >>> _ = fastinv.export(net, "net.safetensors", torch.zeros(1, 3))
    >>> peer = torch_module("net.safetensors")
    >>> x = torch.ones(2, 3)
    >>> bool(torch.allclose(peer(x), net(x)))
    True
    """
    torch = require("torch", "the PyTorch peer of fastinv bench")
    tensors, metadata = read_safetensors(path)
    if "fastinv.graph" not in metadata:
        raise ValueError(f"{os.fspath(path)}: not a fastinv model file (no fastinv.graph in its metadata)")
    graph = json.loads(metadata["fastinv.graph"])
    return _graph_module(torch)(graph, tensors).eval()


def _graph_module(torch: Any) -> type:
    F = torch.nn.functional

    def act(x: Any, nd: dict) -> Any:
        kind = nd["kind"]
        if kind == "relu":
            return F.relu(x)
        if kind == "leaky_relu":
            return F.leaky_relu(x, nd["alpha"])
        if kind == "elu":
            return F.elu(x, nd["alpha"])
        if kind == "silu":
            return F.silu(x)
        if kind == "gelu":
            return F.gelu(x, approximate=nd.get("approximate", "none"))
        if kind == "tanh":
            return torch.tanh(x)
        if kind == "sigmoid":
            return torch.sigmoid(x)
        if kind == "softplus":
            return F.softplus(x, nd["beta"], nd["threshold"])
        raise ValueError(f"unknown activation {kind!r}")

    class GraphModule(torch.nn.Module):
        def __init__(self, graph: dict, tensors: dict) -> None:
            super().__init__()
            self.graph = graph
            self.pixels = graph["input"]["layout"] == "nchw"
            self.names = {}
            for i, name in enumerate(sorted(tensors)):  # tensor names may hold dots
                self.names[name] = f"t{i}"
                self.register_buffer(f"t{i}", torch.from_numpy(tensors[name].copy()))

        def t(self, name: str) -> Any:
            return getattr(self, self.names[name])

        def channel_shape(self, x: Any) -> tuple[int, ...]:
            return (1, -1) + (1,) * (x.dim() - 2)

        def forward(self, x: Any) -> Any:
            vals = {self.graph["input"]["name"]: x}
            for nd in self.graph["nodes"]:
                ins = [vals[i] for i in nd["inputs"]]
                a, op = ins[0], nd["op"]
                bias = self.t(nd["bias"]) if "bias" in nd else None
                if op == "linear" and self.pixels:
                    y = F.conv2d(a, self.t(nd["weight"])[:, :, None, None], bias)
                elif op == "linear":
                    y = F.linear(a, self.t(nd["weight"]), bias)
                elif op == "conv1d":
                    left, right = nd["padding"]
                    pad = left
                    if left != right:
                        a, pad = F.pad(a, (left, right)), 0
                    y = F.conv1d(a, self.t(nd["weight"]), bias, nd["stride"], pad, nd["dilation"])
                elif op == "act":
                    y = act(a, nd)
                elif op == "maxpool1d":
                    y = F.max_pool1d(a, nd["kernel"], nd["stride"], nd["padding"])
                elif op == "avgpool1d":
                    y = F.avg_pool1d(
                        a, nd["kernel"], nd["stride"], nd["padding"], count_include_pad=nd["count_include_pad"]
                    )
                elif op == "flatten":
                    y = a.flatten(1)
                elif op == "concat":
                    y = torch.cat(ins, dim=1)
                elif op == "add":
                    y = ins[0]
                    for other in ins[1:]:
                        y = y + other
                elif op == "affine":
                    shape = self.channel_shape(a)
                    y = a * self.t(nd["scale"]).reshape(shape) + self.t(nd["shift"]).reshape(shape)
                else:
                    raise ValueError(f"unknown operation {op!r} in the model graph")
                vals[nd["name"]] = y
            return vals[self.graph["output"]]

    return GraphModule
