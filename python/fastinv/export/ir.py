"""The exporter's intermediate representation: graph nodes and values while a network is
traced, and the argument helpers of the layer conversions."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class _Node:
    """One node of the fastinv graph while it is being built."""

    name: str
    op: str
    inputs: list[str]
    shape: tuple[int, ...]  # per sample
    what: str  # "layer 'conv1' (Conv1d)" for error messages
    attrs: dict[str, Any] = field(default_factory=dict)
    tensors: dict[str, np.ndarray] = field(default_factory=dict)  # role -> float64 array
    tensor_base: str = ""  # module path, names the tensors ("conv1" -> "conv1.weight")


@dataclass
class _Ref:
    """A tensor value of the network: graph input or a node's output."""

    name: str
    shape: tuple[int, ...]  # per sample
    full: tuple[int, ...]  # torch shape including the batch axis


@dataclass
class _Aux:
    """A non-tensor value seen while tracing (x.size(0), x.shape, ...)."""

    kind: str  # "batch" (the batch size), "shape" (a whole x.shape), "other"
    ref: _Ref | None = None


_REQUIRED = object()


def _bind(what: str, args: tuple, kwargs: dict, params: list[tuple[str, Any]]) -> dict[str, Any]:
    """Bind positional + keyword arguments of a traced call to named parameters."""
    if len(args) > len(params):
        raise ValueError(f"{what}: too many arguments")
    out = {name: arg for (name, _), arg in zip(params, args)}
    names = {name for name, _ in params}
    for key, value in kwargs.items():
        if key not in names:
            raise ValueError(f"{what}: argument {key!r} is not supported by fastinv")
        out[key] = value
    for name, default in params:
        if name not in out:
            if default is _REQUIRED:
                raise ValueError(f"{what}: missing argument {name!r}")
            out[name] = default
    return out


def _one(value: Any, what: str, name: str) -> int:
    """An int from an int or a 1-tuple (torch stores 1D sizes as 1-tuples)."""
    if isinstance(value, (tuple, list)):
        if len(value) != 1:
            raise ValueError(f"{what}: {name}={value!r} must be a single integer")
        value = value[0]
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{what}: {name}={value!r} must be an integer")
    return int(value)


def _finite_float(value: Any, what: str, name: str) -> float:
    v = float(value)
    if not math.isfinite(v):
        raise ValueError(f"{what}: {name}={value!r} is not finite")
    return v


def _np(t: Any) -> np.ndarray:
    """A torch parameter/buffer as a float64 numpy array (folding is done in float64)."""
    return t.detach().cpu().double().numpy().copy()


def _describe_target(n) -> str:
    t = n.target
    if isinstance(t, str):
        return t
    mod = getattr(t, "__module__", None) or ""
    name = getattr(t, "__qualname__", None) or getattr(t, "__name__", None) or repr(t)
    if name.startswith("boolean_dispatch"):
        name = getattr(t, "__name__", name)
    return f"{mod}.{name}" if mod and mod != "builtins" else name
