"""Tracing a PyTorch network into fastinv's graph: torch.fx nodes -> fastinv layers."""

from __future__ import annotations

import contextlib
import io
import operator
from typing import Any, Callable

import numpy as np

from .ir import _REQUIRED, _Aux, _bind, _describe_target, _finite_float, _Node, _np, _one, _Ref
from .rewrite import dead_code, fold_batchnorm, rewrite_length_concat
from .serialize import graph_json

_LAYOUTS = {2: "nc", 3: "ncl", 4: "nchw"}


class Tracer:
    """Traces a torch module with torch.fx into fastinv graph nodes (per-sample shapes from
    running the example input), then applies the rewrites."""

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
                        f"the network must return a single tensor (not a tuple, list or dict); it returns {out!r}"
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
        dead_code(self)
        rewrite_length_concat(self)
        fold_batchnorm(self)
        return graph_json(self)

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
        if isinstance(
            mod,
            (
                nn.Dropout,
                nn.Dropout1d,
                nn.Dropout2d,
                nn.Dropout3d,
                nn.AlphaDropout,
                nn.FeatureAlphaDropout,
                nn.Identity,
            ),
        ):
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
            return self._maxpool(
                n, x, what, mod.kernel_size, mod.stride, mod.padding, mod.dilation, mod.ceil_mode, mod.return_indices
            )
        if isinstance(mod, nn.AvgPool1d):
            return self._avgpool(
                n, x, what, mod.kernel_size, mod.stride, mod.padding, mod.ceil_mode, mod.count_include_pad
            )
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
        ref = self._add(
            n,
            "conv1d",
            [x],
            what,
            attrs={"stride": s, "padding": pad, "dilation": d},
            tensors=tensors,
            tensor_base=n.target,
        )
        L = x.shape[1]
        expect = (L + pad[0] + pad[1] - d * (k - 1) - 1) // s + 1
        if ref.shape != (mod.out_channels, expect):  # guards the padding rule above against torch changes
            raise ValueError(
                f"{what}: output shape {ref.shape} differs from the conv1d rule ({mod.out_channels}, {expect})"
            )
        return ref

    def _conv2d(self, n, x: _Ref, mod, what: str) -> _Ref:
        if tuple(mod.kernel_size) != (1, 1):
            raise ValueError(
                f"{what}: kernel_size={tuple(mod.kernel_size)}; fastinv supports Conv2d only with a 1x1 kernel"
            )
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
            raise ValueError(
                f"{what}: without running statistics (track_running_stats=False) BatchNorm "
                "normalises with batch statistics even in eval mode; fastinv cannot export it"
            )
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
        return self._add(
            n,
            "avgpool1d",
            [x],
            what,
            attrs={"kernel": k, "stride": s, "padding": p, "count_include_pad": bool(count_include_pad)},
        )

    def _flatten(self, n, x: _Ref, what: str, start_dim: Any, end_dim: Any) -> _Ref:
        rank = len(x.full)
        if start_dim != 1 or end_dim not in (-1, rank - 1):
            raise ValueError(
                f"{what}: flatten(start_dim={start_dim}, end_dim={end_dim}) is not supported; "
                "only start_dim=1, end_dim=-1 (keep the batch axis, flatten the rest)"
            )
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
            F.relu: relu,
            torch.relu: relu,
            torch.relu_: relu,
            F.relu_: relu,
            torch.sigmoid: sigmoid,
            F.sigmoid: sigmoid,
            torch.tanh: tanh,
            F.tanh: tanh,
            F.leaky_relu: lambda n, vals, what: act(
                n,
                vals,
                what,
                P + [("negative_slope", 0.01), ("inplace", False)],
                lambda a: {"kind": "leaky_relu", "alpha": _finite_float(a["negative_slope"], what, "negative_slope")},
            ),
            F.elu: lambda n, vals, what: act(
                n,
                vals,
                what,
                P + [("alpha", 1.0), ("inplace", False)],
                lambda a: {"kind": "elu", "alpha": _finite_float(a["alpha"], what, "alpha")},
            ),
            F.silu: lambda n, vals, what: act(n, vals, what, P + [("inplace", False)], lambda a: {"kind": "silu"}),
            F.gelu: lambda n, vals, what: act(
                n, vals, what, P + [("approximate", "none")], lambda a: self._gelu(a["approximate"], what)
            ),
            F.softplus: lambda n, vals, what: act(
                n,
                vals,
                what,
                P + [("beta", 1.0), ("threshold", 20.0)],
                lambda a: self._softplus(a["beta"], a["threshold"], what),
            ),
            F.max_pool1d: self._fn_maxpool,
            torch.max_pool1d: self._fn_maxpool,
            F.avg_pool1d: self._fn_avgpool,
            torch.avg_pool1d: self._fn_avgpool,
            torch.flatten: lambda n, vals, what: self._fn_flatten(n, vals, what, n.args, n.kwargs),
            torch.cat: self._fn_cat,
            torch.concat: self._fn_cat,
            torch.concatenate: self._fn_cat,
            operator.add: self._fn_add,
            operator.iadd: self._fn_add,
            torch.add: self._fn_add,
            F.dropout: self._fn_dropout,
            F.dropout1d: self._fn_dropout,
            F.dropout2d: self._fn_dropout,
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
        a = _bind(
            what,
            n.args,
            n.kwargs,
            [
                ("input", _REQUIRED),
                ("kernel_size", _REQUIRED),
                ("stride", None),
                ("padding", 0),
                ("dilation", 1),
                ("ceil_mode", False),
                ("return_indices", False),
            ],
        )
        x = self._tensor(n, vals, a["input"], what)
        return self._maxpool(
            n, x, what, a["kernel_size"], a["stride"], a["padding"], a["dilation"], a["ceil_mode"], a["return_indices"]
        )

    def _fn_avgpool(self, n, vals, what) -> _Ref:
        a = _bind(
            what,
            n.args,
            n.kwargs,
            [
                ("input", _REQUIRED),
                ("kernel_size", _REQUIRED),
                ("stride", None),
                ("padding", 0),
                ("ceil_mode", False),
                ("count_include_pad", True),
            ],
        )
        x = self._tensor(n, vals, a["input"], what)
        return self._avgpool(
            n, x, what, a["kernel_size"], a["stride"], a["padding"], a["ceil_mode"], a["count_include_pad"]
        )

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
        raise ValueError(
            f"{what}: concatenation along dim={a['dim']} of rank-{rank} tensors is not supported; "
            "fastinv concatenates along channels (dim=1)"
        )

    def _fn_add(self, n, vals, what) -> _Ref:
        params = [("input", _REQUIRED), ("other", _REQUIRED), ("alpha", 1)]
        a = _bind(what, n.args, n.kwargs, params)
        if a["alpha"] != 1:
            raise ValueError(f"{what}: alpha={a['alpha']!r} is not supported (only plain sums)")
        for key in ("input", "other"):
            if not (hasattr(a[key], "op") and isinstance(vals.get(a[key]), _Ref)):
                raise ValueError(
                    f"{what}: adding a constant ({a[key]!r}) is not supported; "
                    "fastinv adds tensors computed by the network (residual connections)"
                )
        x, y = vals[a["input"]], vals[a["other"]]
        if x.full != y.full:
            raise ValueError(f"{what}: shapes {x.full} and {y.full} differ; broadcasting adds are not supported")
        return self._add(n, "add", [x, y], what)

    def _fn_dropout(self, n, vals, what) -> _Ref:
        a = _bind(what, n.args, n.kwargs, [("input", _REQUIRED), ("p", 0.5), ("training", True), ("inplace", False)])
        if a["training"] is not False:
            raise ValueError(
                f"{what}: dropout with training={a['training']!r} is active even in eval mode; "
                "pass training=self.training"
            )
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

    def _input_shape(self) -> tuple[int, ...]:
        return self._per_sample(tuple(int(s) for s in self.x.shape))
