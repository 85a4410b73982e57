"""Graph rewrites after tracing: dead code, length-concatenation into channel concatenation,
BatchNorm folded into the layer before it. Each keeps the network's function exactly."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .ir import _Node

if TYPE_CHECKING:
    from .trace import Tracer


def consumers(g: Tracer) -> dict[str, list[_Node]]:
    users: dict[str, list[_Node]] = {}
    for node in g.nodes:
        for i in node.inputs:
            users.setdefault(i, []).append(node)
    return users


def dead_code(g: Tracer) -> None:
    live = {g.output}
    for node in reversed(g.nodes):
        if node.name in live:
            live.update(node.inputs)
    g.nodes = [node for node in g.nodes if node.name in live]


def rewrite_length_concat(g: Tracer) -> None:
    """cat(dim=2) -> flatten -> Linear  ==  per-input flatten -> cat(dim=1) -> Linear with permuted columns.

    The fastinv graph concatenates along channels only; this is how multi-scale
    networks (Agudelo's MUISCA) join feature maps of different lengths. Flattening
    the length-concatenation is a fixed permutation of the channel-concatenation of
    the flattened inputs, which the following Linear absorbs exactly.
    """
    for cat in [nd for nd in g.nodes if nd.op == "concat_length"]:
        users = consumers(g)
        flat = users.get(cat.name, [])
        ok = cat.name != g.output and len(flat) == 1 and flat[0].op == "flatten" and flat[0].name != g.output
        lin = users.get(flat[0].name, []) if ok else []
        if not (ok and len(lin) == 1 and lin[0].op == "linear"):
            raise ValueError(
                f"{cat.what}: torch.cat along the length axis (dim=2) is supported only when "
                "its result is flattened and fed to a single Linear layer"
            )
        flat, lin = flat[0], lin[0]
        ins = [g.by_name[i] if i in g.by_name else None for i in cat.inputs]
        shapes = [nd.shape if nd is not None else g._input_shape() for nd in ins]
        C, total = cat.shape
        new_inputs, perm, off = [], [], 0
        pos = g.nodes.index(cat)
        for src, (c, length) in zip(cat.inputs, shapes):
            name = g._unique(f"{cat.name}_flatten")
            fl = _Node(name, "flatten", [src], (c * length,), cat.what)
            g.nodes.insert(pos, fl)
            g.by_name[name] = fl
            pos += 1
            new_inputs.append(name)
            perm.extend((ch * total + off + i) for ch in range(c) for i in range(length))
            off += length
        cat.op, cat.inputs, cat.shape = "concat", new_inputs, (C * total,)
        g.nodes.remove(flat)
        lin.inputs = [cat.name]
        lin.tensors["weight"] = lin.tensors["weight"][:, np.asarray(perm)]


def fold_batchnorm(g: Tracer) -> None:
    """BN(eval) folded into the preceding conv1d/linear when the BN is its only user."""
    for bn in [nd for nd in g.nodes if nd.op == "bn"]:
        users = consumers(g)
        prev = g.by_name.get(bn.inputs[0])
        scale, shift = bn.tensors["scale"], bn.tensors["shift"]
        foldable = (
            prev is not None
            and prev.op in ("conv1d", "linear")
            and prev.name != g.output
            and [u.name for u in users.get(prev.name, [])] == [bn.name]
        )
        if not foldable:
            bn.op = "affine"
            continue
        w = prev.tensors["weight"]
        prev.tensors["weight"] = w * scale.reshape((-1,) + (1,) * (w.ndim - 1))
        prev.tensors["bias"] = prev.tensors.get("bias", np.zeros_like(scale)) * scale + shift
        g.nodes.remove(bn)
        for nd in g.nodes:
            nd.inputs = [prev.name if i == bn.name else i for i in nd.inputs]
        if g.output == bn.name:
            g.output = prev.name
