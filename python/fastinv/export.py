"""Export a PyTorch network to a fastinv model file.

A fastinv model file is ONE ``.safetensors`` file (see ``docs/model-format.md``):
float32 little-endian tensors plus the layer graph as a JSON string under the
``fastinv.graph`` key of the safetensors ``__metadata__``. The network is traced
with :mod:`torch.fx` (no per-model code), its per-sample shapes are found by
running ``example_input`` through the traced graph, BatchNorm is folded into the
preceding convolution/linear layer where it can be, Dropout/Identity are dropped.

torch is imported only when :func:`export` is called: fastinv itself runs on
numpy alone.
"""
from __future__ import annotations

import contextlib
import io
import json
import math
import operator
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from ._atomic import atomic_output

__all__ = ["export", "FORMAT_VERSION"]

#: Version of the ``fastinv.graph`` JSON written by this exporter.
FORMAT_VERSION = 1

_LAYOUTS = {2: "nc", 3: "ncl", 4: "nchw"}
_RESERVED_KEYS = ("fastinv.graph", "fastinv.version")


def export(
    module: Any,
    path: str | os.PathLike,
    example_input: Any,
    metadata: Mapping[str, str] | None = None,
) -> Path:
    """Write a trained PyTorch network to a fastinv model file.

    Parameters
    ----------
    module : torch.nn.Module
        The network. It is traced with ``torch.fx.symbolic_trace`` and exported
        in eval mode (its train/eval mode is restored afterwards). Supported:
        Conv1d (groups 1, zero padding incl. ``'same'``/``'valid'``), Conv2d
        with a 1x1 kernel, Linear, BatchNorm1d/2d, ReLU, LeakyReLU, ELU, SiLU,
        GELU, Tanh, Sigmoid, Softplus, MaxPool1d, AvgPool1d, Flatten,
        Dropout/Identity, ``torch.cat`` along channels, residual ``+`` and
        their functional forms.
    path : str or os.PathLike
        Output file (conventionally ``*.safetensors``); written atomically.
    example_input : torch.Tensor or numpy.ndarray
        A batch the network accepts: (N, C) for dense networks, (N, C, L) for
        1D convolution networks, (N, C, H, W) for per-pixel networks of 1x1
        convolutions. Only its shape matters (and N is free at run time).
    metadata : mapping of str to str, optional
        Extra entries for the file's ``__metadata__`` (e.g. ``fastinv.card``).

    Returns
    -------
    pathlib.Path
        The written file.

    Raises
    ------
    ValueError
        For any layer or operation fastinv cannot run, naming it and its type.

    Examples
    --------
    >>> import torch, fastinv
    >>> net = torch.nn.Sequential(torch.nn.Conv2d(6, 300, 1), torch.nn.LeakyReLU(0.01),
    ...                           torch.nn.Conv2d(300, 18, 1))
    >>> fastinv.export(net, "deepem.safetensors", torch.zeros(1, 6, 8, 8))  # doctest: +SKIP
    PosixPath('deepem.safetensors')
    """
    import torch

    if not isinstance(module, torch.nn.Module):
        raise TypeError(f"export() needs a torch.nn.Module, got {type(module).__name__}")
    user_meta = _check_metadata(metadata)
    modes = {m: m.training for m in module.modules()}
    module.eval()
    try:
        with torch.no_grad():
            graph, tensors = _Exporter(module, example_input).run()
    finally:
        for m, mode in modes.items():  # per module: restores mixed train/eval states exactly
            m.training = mode

    from . import __version__

    meta = dict(user_meta)
    meta["fastinv.graph"] = json.dumps(graph, separators=(",", ":"))
    meta["fastinv.version"] = str(__version__)
    out = Path(path)
    _write_safetensors(out, tensors, meta)
    return out


# --------------------------------------------------------------------------------------
# safetensors container (written by hand: fastinv does not depend on the package)


def _write_safetensors(path: Path, tensors: Mapping[str, np.ndarray], metadata: Mapping[str, str]) -> None:
    header: dict[str, Any] = {"__metadata__": dict(metadata)}
    blobs = []
    offset = 0
    for name, arr in tensors.items():
        data = np.ascontiguousarray(arr, dtype="<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(arr.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    head = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    head += b" " * (-len(head) % 8)  # safetensors pads with spaces so the data start is 8-aligned
    with atomic_output(path) as tmp, open(tmp, "wb") as f:
        f.write(len(head).to_bytes(8, "little"))
        f.write(head)
        for blob in blobs:
            f.write(blob)
        f.flush()
        os.fsync(f.fileno())


def _read_safetensors(path: Path) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Tensors and metadata of a float32 safetensors file (what :func:`export` writes)."""
    raw = Path(path).read_bytes()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + n])
    metadata = header.pop("__metadata__", {})
    data = memoryview(raw)[8 + n:]
    tensors = {}
    for name, entry in header.items():
        if entry["dtype"] != "F32":
            raise ValueError(f"{path}: tensor {name!r} is {entry['dtype']}, not F32")
        begin, end = entry["data_offsets"]
        tensors[name] = np.frombuffer(data[begin:end], dtype="<f4").reshape(entry["shape"])
    return tensors, metadata


def update_card(path: str | os.PathLike, updates: Mapping[str, Any]) -> dict:
    """Merge ``updates`` into a model file's card (``fastinv.card``) and rewrite the file
    atomically; the ``<path>.json`` copy of the card is rewritten too when it exists.

    Returns
    -------
    dict
        The new card.
    """
    from ._atomic import write_text

    path = Path(path)
    tensors, metadata = _read_safetensors(path)
    card = json.loads(metadata.get("fastinv.card", "{}"))
    card.update(updates)
    metadata["fastinv.card"] = json.dumps(card)
    _write_safetensors(path, tensors, metadata)
    sidecar = path.with_suffix(path.suffix + ".json")
    if sidecar.exists():
        write_text(sidecar, json.dumps(card, indent=2))
    return card


def _check_metadata(metadata: Mapping[str, str] | None) -> dict[str, str]:
    if metadata is None:
        return {}
    out = {}
    for key, value in dict(metadata).items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise TypeError(
                f"metadata must map str to str (safetensors __metadata__); got {key!r}: {type(value).__name__}. "
                "Serialise other values first, e.g. with json.dumps."
            )
        if key in _RESERVED_KEYS:
            raise ValueError(f"metadata key {key!r} is written by fastinv.export itself; use another key")
        out[key] = value
    return out


# --------------------------------------------------------------------------------------
# intermediate representation


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


# --------------------------------------------------------------------------------------
# the exporter


class _Exporter:
    def __init__(self, module: Any, example_input: Any) -> None:
        import torch

        self.torch = torch
        self.module = module
        x = example_input
        if not isinstance(x, torch.Tensor):
            x = torch.as_tensor(np.asarray(x))
        if x.dim() not in _LAYOUTS:
            raise ValueError(
                f"example_input has shape {tuple(x.shape)}; fastinv networks take (N, C), (N, C, L) "
                "or (N, C, H, W) batches"
            )
        if x.shape[0] < 1 or any(s < 1 for s in x.shape):
            raise ValueError(f"example_input has an empty axis: shape {tuple(x.shape)}")
        self.x = x
        self.layout = _LAYOUTS[x.dim()]
        self.nodes: list[_Node] = []
        self.by_name: dict[str, _Node] = {}
        self.alias: dict[str, str] = {}  # dropped node -> the value it passes on
        self.used_names: set[str] = set()

    # ---- driver ------------------------------------------------------------------
    def run(self) -> tuple[dict, dict[str, np.ndarray]]:
        gm = self._trace()
        vals: dict[Any, Any] = {}
        output_ref: _Ref | None = None
        for n in gm.graph.nodes:
            self.used_names.add(n.name)
        for n in gm.graph.nodes:
            if n.op == "placeholder":
                vals[n] = self._input_ref(n)
            elif n.op == "output":
                out = n.args[0]
                if not hasattr(out, "op") or not isinstance(vals.get(out), _Ref):
                    raise ValueError(
                        "the network must return a single tensor (not a tuple, list or dict); "
                        f"it returns {out!r}"
                    )
                output_ref = vals[out]
            elif n.op == "get_attr":
                raise ValueError(
                    f"node '{n.name}' reads the parameter/buffer '{n.target}' directly; fastinv supports "
                    "parameters only inside supported layers (Conv1d, Conv2d 1x1, Linear, BatchNorm)"
                )
            elif n.op == "call_module":
                vals[n] = self._call_module(gm, n, vals)
            elif n.op == "call_function":
                vals[n] = self._call_function(n, vals)
            elif n.op == "call_method":
                vals[n] = self._call_method(n, vals)
            else:  # pragma: no cover - fx has no other node kinds
                raise ValueError(f"node '{n.name}': unsupported fx node kind {n.op!r}")
        assert output_ref is not None
        output = self._resolve(output_ref.name)
        if output == self.input_name:
            raise ValueError("the network does no computation (its output is its input); nothing to export")
        self.output = output
        self._dead_code()
        self._rewrite_length_concat()
        self._fold_batchnorm()
        return self._serialise()

    def _trace(self):
        from torch import fx
        from torch.fx.passes.shape_prop import ShapeProp

        root = self.module
        if type(root).__module__.startswith("torch.nn.") and not any(True for _ in root.children()):
            # A single built-in layer: fx traces into the root's forward (down to raw
            # parameters) but keeps built-in submodules whole, so make it a submodule.
            root = self.torch.nn.Sequential(root)
        try:
            gm = fx.symbolic_trace(root)
        except Exception as exc:  # fx raises many kinds (TraceError, TypeError, ...)
            raise ValueError(
                f"torch.fx could not trace {type(self.module).__name__}: {exc}. fastinv needs a network "
                "without data-dependent Python control flow"
            ) from exc
        placeholders = [n for n in gm.graph.nodes if n.op == "placeholder"]
        if len(placeholders) != 1:
            raise ValueError(
                f"the network's forward takes {len(placeholders)} inputs "
                f"({', '.join(p.name for p in placeholders)}); fastinv networks take exactly one tensor"
            )
        dtype = next((p.dtype for p in self.module.parameters() if p.is_floating_point()), self.torch.float32)
        try:
            # ShapeProp prints a traceback to stderr before re-raising; the error below says it all
            with contextlib.redirect_stderr(io.StringIO()):
                ShapeProp(gm).propagate(self.x.to(dtype))
        except Exception as exc:
            root = exc.__cause__ or exc
            raise ValueError(
                f"example_input of shape {tuple(self.x.shape)} does not run through "
                f"{type(self.module).__name__}: {type(root).__name__}: {root}"
            ) from exc
        return gm

    # ---- values --------------------------------------------------------------------
    def _input_ref(self, n) -> _Ref:
        self.input_name = n.name
        full = tuple(int(s) for s in self.x.shape)
        return _Ref(n.name, self._per_sample(full), full)

    def _per_sample(self, full: tuple[int, ...]) -> tuple[int, ...]:
        return full[1:2] if self.layout == "nchw" else full[1:]

    def _full_shape(self, n) -> tuple[int, ...]:
        meta = n.meta.get("tensor_meta")
        if meta is None or not hasattr(meta, "shape"):
            raise ValueError(f"node '{n.name}' ({_describe_target(n)}) does not produce a single tensor")
        return tuple(int(s) for s in meta.shape)

    def _tensor(self, n, vals, arg, what: str) -> _Ref:
        v = vals.get(arg) if hasattr(arg, "op") else None
        if not isinstance(v, _Ref):
            raise ValueError(f"{what}: its input {arg!r} is not a tensor computed by the network")
        return v

    def _resolve(self, name: str) -> str:
        while name in self.alias:
            name = self.alias[name]
        return name

    def _unique(self, base: str) -> str:
        name, i = base, 1
        while name in self.used_names:
            name, i = f"{base}_{i}", i + 1
        self.used_names.add(name)
        return name

    def _add(self, n, op: str, inputs: list[_Ref], what: str, **kw) -> _Ref:
        full = self._full_shape(n)
        shape = self._per_sample(full)
        node = _Node(n.name, op, [self._resolve(r.name) for r in inputs], shape, what, **kw)
        self.nodes.append(node)
        self.by_name[node.name] = node
        return _Ref(n.name, shape, full)

    def _drop(self, n, ref: _Ref) -> _Ref:
        self.alias[n.name] = ref.name
        return _Ref(n.name, ref.shape, ref.full)

    def _need_rank(self, ref: _Ref, rank: int, what: str, hint: str) -> None:
        if len(ref.full) != rank:
            raise ValueError(f"{what}: input has shape {ref.full} (rank {len(ref.full)}); {hint}")

    def _not_nchw(self, what: str) -> None:
        if self.layout == "nchw":
            raise ValueError(
                f"{what} is not a per-pixel operation: a network on (N, C, H, W) input may only contain "
                "1x1 Conv2d, BatchNorm2d, activations, residual add and torch.cat along channels"
            )

    # ---- modules -------------------------------------------------------------------
    def _call_module(self, gm, n, vals) -> Any:
        nn = self.torch.nn
        mod = gm.get_submodule(n.target)
        what = f"layer '{n.target}' ({type(mod).__name__})"
        if len(n.args) != 1 or n.kwargs:
            raise ValueError(f"{what}: fastinv supports layers called with exactly one tensor")
        x = self._tensor(n, vals, n.args[0], what)
        if isinstance(mod, (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout,
                            nn.FeatureAlphaDropout, nn.Identity)):
            return self._drop(n, x)
        if isinstance(mod, nn.Conv1d) and not isinstance(mod, nn.ConvTranspose1d):
            return self._conv1d(n, x, mod, what)
        if isinstance(mod, nn.Conv2d) and not isinstance(mod, nn.ConvTranspose2d):
            return self._conv2d(n, x, mod, what)
        if isinstance(mod, nn.Linear):
            self._need_rank(x, 2, what, "fastinv applies Linear only to (N, C) features (flatten first)")
            tensors = {"weight": _np(mod.weight)}
            if mod.bias is not None:
                tensors["bias"] = _np(mod.bias)
            return self._add(n, "linear", [x], what, tensors=tensors, tensor_base=n.target)
        if isinstance(mod, (nn.BatchNorm1d, nn.BatchNorm2d)):
            return self._batchnorm(n, x, mod, what)
        act = self._module_activation(mod, what)
        if act is not None:
            return self._add(n, "act", [x], what, attrs=act)
        if isinstance(mod, nn.MaxPool1d):
            return self._maxpool(n, x, what, mod.kernel_size, mod.stride, mod.padding, mod.dilation,
                                 mod.ceil_mode, mod.return_indices)
        if isinstance(mod, nn.AvgPool1d):
            return self._avgpool(n, x, what, mod.kernel_size, mod.stride, mod.padding, mod.ceil_mode,
                                 mod.count_include_pad)
        if isinstance(mod, nn.Flatten):
            return self._flatten(n, x, what, mod.start_dim, mod.end_dim)
        raise ValueError(f"{what} is not supported by fastinv")

    def _module_activation(self, mod, what: str) -> dict | None:
        nn = self.torch.nn
        if type(mod) is nn.ReLU:
            return {"kind": "relu"}
        if type(mod) is nn.LeakyReLU:
            return {"kind": "leaky_relu", "alpha": _finite_float(mod.negative_slope, what, "negative_slope")}
        if type(mod) is nn.ELU:
            return {"kind": "elu", "alpha": _finite_float(mod.alpha, what, "alpha")}
        if type(mod) is nn.SiLU:
            return {"kind": "silu"}
        if type(mod) is nn.GELU:
            return self._gelu(mod.approximate, what)
        if type(mod) is nn.Tanh:
            return {"kind": "tanh"}
        if type(mod) is nn.Sigmoid:
            return {"kind": "sigmoid"}
        if type(mod) is nn.Softplus:
            return self._softplus(mod.beta, mod.threshold, what)
        return None

    @staticmethod
    def _gelu(approximate: Any, what: str) -> dict:
        if approximate not in ("none", "tanh"):
            raise ValueError(f"{what}: approximate={approximate!r} must be 'none' or 'tanh'")
        return {"kind": "gelu", "approximate": approximate}

    @staticmethod
    def _softplus(beta: Any, threshold: Any, what: str) -> dict:
        b = _finite_float(beta, what, "beta")
        if b <= 0:
            raise ValueError(f"{what}: beta={beta!r} must be positive")
        return {"kind": "softplus", "beta": b, "threshold": _finite_float(threshold, what, "threshold")}

    def _conv1d(self, n, x: _Ref, mod, what: str) -> _Ref:
        self._not_nchw(what)
        self._need_rank(x, 3, what, "Conv1d needs (N, C, L) input")
        if mod.groups != 1:
            raise ValueError(f"{what}: groups={mod.groups} is not supported (only groups=1)")
        if mod.padding_mode != "zeros":
            raise ValueError(f"{what}: padding_mode={mod.padding_mode!r} is not supported (only 'zeros')")
        k = _one(mod.kernel_size, what, "kernel_size")
        d = _one(mod.dilation, what, "dilation")
        s = _one(mod.stride, what, "stride")
        if mod.padding == "valid":
            pad = [0, 0]
        elif mod.padding == "same":
            total = d * (k - 1)  # torch pads the extra element of an odd total on the right
            pad = [total // 2, total - total // 2]
        else:
            p = _one(mod.padding, what, "padding")
            pad = [p, p]
        tensors = {"weight": _np(mod.weight)}
        if mod.bias is not None:
            tensors["bias"] = _np(mod.bias)
        ref = self._add(n, "conv1d", [x], what, attrs={"stride": s, "padding": pad, "dilation": d},
                        tensors=tensors, tensor_base=n.target)
        L = x.shape[1]
        expect = (L + pad[0] + pad[1] - d * (k - 1) - 1) // s + 1
        if ref.shape != (mod.out_channels, expect):  # guards the padding rule above against torch changes
            raise ValueError(f"{what}: output shape {ref.shape} differs from the conv1d rule ({mod.out_channels}, {expect})")
        return ref

    def _conv2d(self, n, x: _Ref, mod, what: str) -> _Ref:
        if tuple(mod.kernel_size) != (1, 1):
            raise ValueError(f"{what}: kernel_size={tuple(mod.kernel_size)}; fastinv supports Conv2d only with a 1x1 kernel")
        if tuple(mod.stride) != (1, 1):
            raise ValueError(f"{what}: stride={tuple(mod.stride)}; fastinv supports 1x1 Conv2d only with stride 1")
        if mod.padding not in ("valid", "same") and tuple(mod.padding) != (0, 0):
            raise ValueError(f"{what}: padding={mod.padding}; fastinv supports 1x1 Conv2d only without padding")
        if mod.groups != 1:
            raise ValueError(f"{what}: groups={mod.groups} is not supported (only groups=1)")
        self._need_rank(x, 4, what, "Conv2d needs (N, C, H, W) input")
        tensors = {"weight": _np(mod.weight)[:, :, 0, 0].copy()}
        if mod.bias is not None:
            tensors["bias"] = _np(mod.bias)
        return self._add(n, "linear", [x], what, tensors=tensors, tensor_base=n.target)

    def _batchnorm(self, n, x: _Ref, mod, what: str) -> _Ref:
        nn = self.torch.nn
        if not mod.track_running_stats or mod.running_mean is None or mod.running_var is None:
            raise ValueError(f"{what}: without running statistics (track_running_stats=False) BatchNorm "
                             "normalises with batch statistics even in eval mode; fastinv cannot export it")
        if isinstance(mod, nn.BatchNorm2d):
            self._need_rank(x, 4, what, "BatchNorm2d needs (N, C, H, W) input")
        else:
            if len(x.full) not in (2, 3):
                raise ValueError(f"{what}: input has shape {x.full}; BatchNorm1d needs (N, C) or (N, C, L)")
        var = _np(mod.running_var)
        scale = 1.0 / np.sqrt(var + float(mod.eps))
        if mod.weight is not None:
            scale = scale * _np(mod.weight)
        shift = -_np(mod.running_mean) * scale
        if mod.bias is not None:
            shift = shift + _np(mod.bias)
        return self._add(n, "bn", [x], what, tensors={"scale": scale, "shift": shift}, tensor_base=n.target)

    def _maxpool(self, n, x, what, kernel, stride, padding, dilation, ceil_mode, return_indices) -> _Ref:
        self._not_nchw(what)
        self._need_rank(x, 3, what, "MaxPool1d needs (N, C, L) input")
        if ceil_mode:
            raise ValueError(f"{what}: ceil_mode=True is not supported")
        if return_indices:
            raise ValueError(f"{what}: return_indices=True is not supported")
        if _one(dilation, what, "dilation") != 1:
            raise ValueError(f"{what}: dilation={dilation!r} is not supported (only 1)")
        k = _one(kernel, what, "kernel_size")
        s = k if stride is None or stride == () or stride == [] else _one(stride, what, "stride")
        p = _one(padding, what, "padding")
        return self._add(n, "maxpool1d", [x], what, attrs={"kernel": k, "stride": s, "padding": p})

    def _avgpool(self, n, x, what, kernel, stride, padding, ceil_mode, count_include_pad) -> _Ref:
        self._not_nchw(what)
        self._need_rank(x, 3, what, "AvgPool1d needs (N, C, L) input")
        if ceil_mode:
            raise ValueError(f"{what}: ceil_mode=True is not supported")
        k = _one(kernel, what, "kernel_size")
        s = k if stride is None or stride == () or stride == [] else _one(stride, what, "stride")
        p = _one(padding, what, "padding")
        return self._add(n, "avgpool1d", [x], what,
                         attrs={"kernel": k, "stride": s, "padding": p, "count_include_pad": bool(count_include_pad)})

    def _flatten(self, n, x: _Ref, what: str, start_dim: Any, end_dim: Any) -> _Ref:
        rank = len(x.full)
        if start_dim != 1 or end_dim not in (-1, rank - 1):
            raise ValueError(f"{what}: flatten(start_dim={start_dim}, end_dim={end_dim}) is not supported; "
                             "only start_dim=1, end_dim=-1 (keep the batch axis, flatten the rest)")
        self._not_nchw(what)
        if rank == 2:  # already (N, C): flattening is a no-op
            return self._drop(n, x)
        return self._add(n, "flatten", [x], what)

    # ---- functions and methods --------------------------------------------------------
    def _function_table(self) -> dict[Any, Callable]:
        torch = self.torch
        F = torch.nn.functional
        P = [("input", _REQUIRED)]
        act = self._fn_activation

        def relu(n, vals, what):
            return act(n, vals, what, P + [("inplace", False)], lambda a: {"kind": "relu"})

        def sigmoid(n, vals, what):
            return act(n, vals, what, P, lambda a: {"kind": "sigmoid"})

        def tanh(n, vals, what):
            return act(n, vals, what, P, lambda a: {"kind": "tanh"})

        table: dict[Any, Callable] = {
            F.relu: relu, torch.relu: relu, torch.relu_: relu, F.relu_: relu,
            torch.sigmoid: sigmoid, F.sigmoid: sigmoid,
            torch.tanh: tanh, F.tanh: tanh,
            F.leaky_relu: lambda n, vals, what: act(
                n, vals, what, P + [("negative_slope", 0.01), ("inplace", False)],
                lambda a: {"kind": "leaky_relu", "alpha": _finite_float(a["negative_slope"], what, "negative_slope")}),
            F.elu: lambda n, vals, what: act(
                n, vals, what, P + [("alpha", 1.0), ("inplace", False)],
                lambda a: {"kind": "elu", "alpha": _finite_float(a["alpha"], what, "alpha")}),
            F.silu: lambda n, vals, what: act(n, vals, what, P + [("inplace", False)], lambda a: {"kind": "silu"}),
            F.gelu: lambda n, vals, what: act(
                n, vals, what, P + [("approximate", "none")], lambda a: self._gelu(a["approximate"], what)),
            F.softplus: lambda n, vals, what: act(
                n, vals, what, P + [("beta", 1.0), ("threshold", 20.0)],
                lambda a: self._softplus(a["beta"], a["threshold"], what)),
            F.max_pool1d: self._fn_maxpool, torch.max_pool1d: self._fn_maxpool,
            F.avg_pool1d: self._fn_avgpool, torch.avg_pool1d: self._fn_avgpool,
            torch.flatten: lambda n, vals, what: self._fn_flatten(n, vals, what, n.args, n.kwargs),
            torch.cat: self._fn_cat, torch.concat: self._fn_cat, torch.concatenate: self._fn_cat,
            operator.add: self._fn_add, operator.iadd: self._fn_add, torch.add: self._fn_add,
            F.dropout: self._fn_dropout, F.dropout1d: self._fn_dropout, F.dropout2d: self._fn_dropout,
            F.alpha_dropout: self._fn_dropout,
            torch.reshape: lambda n, vals, what: self._fn_view(n, vals, what, n.args[0], n.args[1:], n.kwargs),
            getattr: self._fn_getattr,
            operator.getitem: self._fn_getitem,
        }
        return table

    def _call_function(self, n, vals) -> Any:
        if not hasattr(self, "_ftable"):
            self._ftable = self._function_table()
        what = f"node '{n.name}' ({_describe_target(n)})"
        try:
            handler = self._ftable.get(n.target)
        except TypeError:  # unhashable target
            handler = None
        if handler is None:
            raise ValueError(f"{what} is not supported by fastinv")
        return handler(n, vals, what)

    def _call_method(self, n, vals) -> Any:
        what = f"node '{n.name}' (Tensor.{n.target})"
        m = n.target
        P = [("self", _REQUIRED)]
        if m in ("relu", "relu_"):
            return self._fn_activation(n, vals, what, P, lambda a: {"kind": "relu"})
        if m in ("sigmoid", "sigmoid_"):
            return self._fn_activation(n, vals, what, P, lambda a: {"kind": "sigmoid"})
        if m in ("tanh", "tanh_"):
            return self._fn_activation(n, vals, what, P, lambda a: {"kind": "tanh"})
        if m in ("add", "add_", "__add__", "__iadd__"):
            return self._fn_add(n, vals, what)
        if m == "flatten":
            args = _bind(what, n.args, n.kwargs, [("self", _REQUIRED), ("start_dim", 0), ("end_dim", -1)])
            return self._fn_flatten(n, vals, what, (args["self"], args["start_dim"], args["end_dim"]), {})
        if m in ("view", "reshape"):
            return self._fn_view(n, vals, what, n.args[0], n.args[1:], n.kwargs)
        if m == "contiguous":
            return self._drop(n, self._tensor(n, vals, n.args[0], what))
        if m == "size":
            x = self._tensor(n, vals, n.args[0], what)
            args = _bind(what, n.args, n.kwargs, [("self", _REQUIRED), ("dim", None)])
            if args["dim"] is None:
                return _Aux("shape", x)
            return _Aux("batch", x) if args["dim"] in (0, -len(x.full)) else _Aux("other", x)
        raise ValueError(f"{what} is not supported by fastinv")

    def _fn_activation(self, n, vals, what, params, make) -> _Ref:
        a = _bind(what, n.args, n.kwargs, params)
        x = self._tensor(n, vals, a[params[0][0]], what)
        return self._add(n, "act", [x], what, attrs=make(a))

    def _fn_maxpool(self, n, vals, what) -> _Ref:
        a = _bind(what, n.args, n.kwargs, [("input", _REQUIRED), ("kernel_size", _REQUIRED), ("stride", None),
                                           ("padding", 0), ("dilation", 1), ("ceil_mode", False),
                                           ("return_indices", False)])
        x = self._tensor(n, vals, a["input"], what)
        return self._maxpool(n, x, what, a["kernel_size"], a["stride"], a["padding"], a["dilation"],
                             a["ceil_mode"], a["return_indices"])

    def _fn_avgpool(self, n, vals, what) -> _Ref:
        a = _bind(what, n.args, n.kwargs, [("input", _REQUIRED), ("kernel_size", _REQUIRED), ("stride", None),
                                           ("padding", 0), ("ceil_mode", False), ("count_include_pad", True)])
        x = self._tensor(n, vals, a["input"], what)
        return self._avgpool(n, x, what, a["kernel_size"], a["stride"], a["padding"], a["ceil_mode"],
                             a["count_include_pad"])

    def _fn_flatten(self, n, vals, what, args, kwargs) -> _Ref:
        a = _bind(what, tuple(args), kwargs, [("input", _REQUIRED), ("start_dim", 0), ("end_dim", -1)])
        x = self._tensor(n, vals, a["input"], what)
        return self._flatten(n, x, what, a["start_dim"], a["end_dim"])

    def _fn_view(self, n, vals, what, src, spec, kwargs) -> _Ref:
        """x.view(x.size(0), -1) / x.reshape(x.shape[0], -1) / x.view(-1, C*L): a flatten."""
        x = self._tensor(n, vals, src, what)
        if kwargs:
            raise ValueError(f"{what}: keyword arguments are not supported")
        if len(spec) == 1 and isinstance(spec[0], (tuple, list)):
            spec = tuple(spec[0])
        per = int(np.prod(x.full[1:]))
        items = [vals.get(s) if hasattr(s, "op") else s for s in spec]
        is_flatten = len(items) == 2 and (
            (isinstance(items[0], _Aux) and items[0].kind == "batch" and items[1] == -1)
            or (items[0] == -1 and isinstance(items[1], int) and not isinstance(items[1], bool) and items[1] == per)
        )
        if not is_flatten:
            raise ValueError(
                f"{what}: view/reshape is supported only as a flatten that keeps the batch axis, "
                "x.view(x.size(0), -1) or x.reshape(x.shape[0], -1); use nn.Flatten() or torch.flatten(x, 1)"
            )
        return self._flatten(n, x, what, 1, -1)

    def _fn_cat(self, n, vals, what) -> _Ref:
        a = _bind(what, n.args, n.kwargs, [("tensors", _REQUIRED), ("dim", 0)])
        if not isinstance(a["tensors"], (tuple, list)) or len(a["tensors"]) < 1:
            raise ValueError(f"{what}: needs a list of tensors")
        xs = [self._tensor(n, vals, t, what) for t in a["tensors"]]
        rank = len(xs[0].full)
        dim = a["dim"]
        if not isinstance(dim, int) or isinstance(dim, bool):
            raise ValueError(f"{what}: dim={dim!r} must be an integer")
        dim = dim + rank if dim < 0 else dim
        if len(xs) == 1:
            return self._drop(n, xs[0])
        if dim == 1:
            return self._add(n, "concat", xs, what)
        if dim == 2 and rank == 3:  # along the length: see _rewrite_length_concat
            return self._add(n, "concat_length", xs, what)
        raise ValueError(f"{what}: concatenation along dim={a['dim']} of rank-{rank} tensors is not supported; "
                         "fastinv concatenates along channels (dim=1)")

    def _fn_add(self, n, vals, what) -> _Ref:
        params = [("input", _REQUIRED), ("other", _REQUIRED), ("alpha", 1)]
        a = _bind(what, n.args, n.kwargs, params)
        if a["alpha"] != 1:
            raise ValueError(f"{what}: alpha={a['alpha']!r} is not supported (only plain sums)")
        for key in ("input", "other"):
            if not (hasattr(a[key], "op") and isinstance(vals.get(a[key]), _Ref)):
                raise ValueError(f"{what}: adding a constant ({a[key]!r}) is not supported; "
                                 "fastinv adds tensors computed by the network (residual connections)")
        x, y = vals[a["input"]], vals[a["other"]]
        if x.full != y.full:
            raise ValueError(f"{what}: shapes {x.full} and {y.full} differ; broadcasting adds are not supported")
        return self._add(n, "add", [x, y], what)

    def _fn_dropout(self, n, vals, what) -> _Ref:
        a = _bind(what, n.args, n.kwargs, [("input", _REQUIRED), ("p", 0.5), ("training", True), ("inplace", False)])
        if a["training"] is not False:
            raise ValueError(f"{what}: dropout with training={a['training']!r} is active even in eval mode; "
                             "pass training=self.training")
        return self._drop(n, self._tensor(n, vals, a["input"], what))

    def _fn_getattr(self, n, vals, what) -> Any:
        obj, attr = n.args[0], n.args[1]
        x = self._tensor(n, vals, obj, what)
        if attr == "shape":
            return _Aux("shape", x)
        raise ValueError(f"{what}: attribute {attr!r} of a tensor is not supported")

    def _fn_getitem(self, n, vals, what) -> Any:
        obj, idx = n.args[0], n.args[1]
        v = vals.get(obj) if hasattr(obj, "op") else None
        if isinstance(v, _Aux) and v.kind == "shape":
            if isinstance(idx, int) and idx in (0, -len(v.ref.full)):
                return _Aux("batch", v.ref)
            return _Aux("other", v.ref)
        raise ValueError(f"{what}: indexing is supported only on x.shape (as in x.shape[0])")

    # ---- graph passes ------------------------------------------------------------------
    def _consumers(self) -> dict[str, list[_Node]]:
        users: dict[str, list[_Node]] = {}
        for node in self.nodes:
            for i in node.inputs:
                users.setdefault(i, []).append(node)
        return users

    def _dead_code(self) -> None:
        live = {self.output}
        for node in reversed(self.nodes):
            if node.name in live:
                live.update(node.inputs)
        self.nodes = [node for node in self.nodes if node.name in live]

    def _rewrite_length_concat(self) -> None:
        """cat(dim=2) -> flatten -> Linear  ==  per-input flatten -> cat(dim=1) -> Linear with permuted columns.

        The fastinv graph concatenates along channels only; this is how multi-scale
        networks (Agudelo's MUISCA) join feature maps of different lengths. Flattening
        the length-concatenation is a fixed permutation of the channel-concatenation of
        the flattened inputs, which the following Linear absorbs exactly.
        """
        for cat in [nd for nd in self.nodes if nd.op == "concat_length"]:
            users = self._consumers()
            flat = users.get(cat.name, [])
            ok = (cat.name != self.output and len(flat) == 1 and flat[0].op == "flatten"
                  and flat[0].name != self.output)
            lin = users.get(flat[0].name, []) if ok else []
            if not (ok and len(lin) == 1 and lin[0].op == "linear"):
                raise ValueError(f"{cat.what}: torch.cat along the length axis (dim=2) is supported only when "
                                 "its result is flattened and fed to a single Linear layer")
            flat, lin = flat[0], lin[0]
            ins = [self.by_name[i] if i in self.by_name else None for i in cat.inputs]
            shapes = [nd.shape if nd is not None else self._input_shape() for nd in ins]
            C, total = cat.shape
            new_inputs, perm, off = [], [], 0
            pos = self.nodes.index(cat)
            for src, (c, length) in zip(cat.inputs, shapes):
                name = self._unique(f"{cat.name}_flatten")
                fl = _Node(name, "flatten", [src], (c * length,), cat.what)
                self.nodes.insert(pos, fl)
                self.by_name[name] = fl
                pos += 1
                new_inputs.append(name)
                perm.extend((ch * total + off + i) for ch in range(c) for i in range(length))
                off += length
            cat.op, cat.inputs, cat.shape = "concat", new_inputs, (C * total,)
            self.nodes.remove(flat)
            lin.inputs = [cat.name]
            lin.tensors["weight"] = lin.tensors["weight"][:, np.asarray(perm)]

    def _input_shape(self) -> tuple[int, ...]:
        return self._per_sample(tuple(int(s) for s in self.x.shape))

    def _fold_batchnorm(self) -> None:
        """BN(eval) folded into the preceding conv1d/linear when the BN is its only user."""
        for bn in [nd for nd in self.nodes if nd.op == "bn"]:
            users = self._consumers()
            prev = self.by_name.get(bn.inputs[0])
            scale, shift = bn.tensors["scale"], bn.tensors["shift"]
            foldable = (prev is not None and prev.op in ("conv1d", "linear") and prev.name != self.output
                        and [u.name for u in users.get(prev.name, [])] == [bn.name])
            if not foldable:
                bn.op = "affine"
                continue
            w = prev.tensors["weight"]
            prev.tensors["weight"] = w * scale.reshape((-1,) + (1,) * (w.ndim - 1))
            prev.tensors["bias"] = prev.tensors.get("bias", np.zeros_like(scale)) * scale + shift
            self.nodes.remove(bn)
            for nd in self.nodes:
                nd.inputs = [prev.name if i == bn.name else i for i in nd.inputs]
            if self.output == bn.name:
                self.output = prev.name

    # ---- serialisation ----------------------------------------------------------------------
    def _serialise(self) -> tuple[dict, dict[str, np.ndarray]]:
        tensors: dict[str, np.ndarray] = {}
        nodes_json = []
        for nd in self.nodes:
            entry: dict[str, Any] = {"name": nd.name, "op": nd.op, "inputs": list(nd.inputs)}
            entry.update(nd.attrs)
            for role in ("weight", "bias", "scale", "shift"):
                if role not in nd.tensors:
                    continue
                arr = np.ascontiguousarray(nd.tensors[role], dtype=np.float32)
                if not np.all(np.isfinite(arr)):
                    raise ValueError(f"{nd.what}: its {role} has non-finite values (NaN or inf)")
                entry[role] = self._store(tensors, arr, nd, role)
            nodes_json.append(entry)
        graph = {
            "format": "fastinv.graph",
            "version": FORMAT_VERSION,
            "input": {"name": self.input_name, "shape": list(self._input_shape()), "layout": self.layout},
            "nodes": nodes_json,
            "output": self.output,
        }
        return graph, tensors

    @staticmethod
    def _store(tensors: dict[str, np.ndarray], arr: np.ndarray, nd: _Node, role: str) -> str:
        """Name a tensor after its module; a module used several times shares identical tensors."""
        candidates = [f"{nd.tensor_base or nd.name}.{role}", f"{nd.name}.{role}"]
        i = 1
        while True:
            for key in candidates:
                have = tensors.get(key)
                if have is None:
                    tensors[key] = arr
                    return key
                if have.shape == arr.shape and have.tobytes() == arr.tobytes():
                    return key
            candidates = [f"{nd.name}.{role}.{i}"]
            i += 1


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
