"""Test networks: a generator of random valid architectures from fastinv's supported
set (nc, ncl and nchw layouts), DeepEM and Agudelo's MUISCA.

Everything is drawn from one seed, so a failing case is reproduced by its seed:
``random_net(layout, seed)`` returns the same module, weights and input each time.
"""

from __future__ import annotations

import os
import secrets

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


def base_seed() -> int:
    """FASTINV_TEST_SEED if set, else fresh randomness (printed by the tests)."""
    env = os.environ.get("FASTINV_TEST_SEED")
    return int(env) if env else secrets.randbelow(2**31)


# --------------------------------------------------------------------------------------
# named networks


def deepem() -> nn.Module:
    """DeepEM (Wright et al. 2019): 1x1-conv MLP 6 -> 300 -> 300 -> 18, LeakyReLU(0.01), linear output."""
    return nn.Sequential(
        nn.Conv2d(6, 300, 1), nn.LeakyReLU(), nn.Conv2d(300, 300, 1), nn.LeakyReLU(), nn.Conv2d(300, 18, 1)
    )


DEEPEM_PARAMETERS = 97_818  # 6*300+300 + 300*300+300 + 300*18+18; the published .pth holds ~97.8k floats


class ConvBlock(nn.Module):
    """MUISCA's shared block: Conv1d(C->16, k5)+ReLU+MaxPool(2), Conv1d(16->32, k5)+ReLU+MaxPool(2)."""

    def __init__(self, in_channels=2, c1_filters=16, c2_filters=32, kernel_size=5, pool_size=2):
        super().__init__()
        self.c1 = nn.Sequential(nn.Conv1d(in_channels, c1_filters, kernel_size), nn.ReLU(), nn.MaxPool1d(pool_size))
        self.c2 = nn.Sequential(nn.Conv1d(c1_filters, c2_filters, kernel_size), nn.ReLU(), nn.MaxPool1d(pool_size))

    def forward(self, x):
        return self.c2(self.c1(x))


class MUISCA(nn.Module):
    """Agudelo's multi-scale CNN (juagudeloo/Tesis_maestria_OAN, modules/nn_inversion_model.py, paper branch).

    Coarse-grained copies of the (N, 2, 112) I and V profiles at scales 1, 2, 3
    (non-overlapping means, i.e. AvgPool1d(s)) go through ONE shared ConvBlock; the
    feature maps are concatenated along the wavelength axis (25 + 11 + 6 = 42
    positions x 32 filters = 1344 features), flattened, then 4 x (Linear(1344, 1344)
    + ReLU) and Linear(1344, 3 x 21) (T, v_z, B_z at 21 log tau nodes).
    """

    def __init__(
        self,
        scales=(1, 2, 3),
        in_channels=2,
        c1_filters=16,
        c2_filters=32,
        kernel_size=5,
        pool_size=2,
        n_linear_layers=4,
        output_features=3 * 21,
        input_length=112,
    ):
        super().__init__()
        self.coarse_grains = nn.ModuleList([nn.AvgPool1d(s) for s in scales])
        self.conv_block = ConvBlock(in_channels, c1_filters, c2_filters, kernel_size, pool_size)
        positions = 0
        for s in scales:
            n = input_length // s
            for _ in range(2):
                n = (n - kernel_size + 1) // pool_size
            positions += n
        features = positions * c2_filters
        self.flatten = nn.Flatten()
        self.layers = nn.ModuleList(
            [nn.Sequential(nn.Linear(features, features), nn.ReLU()) for _ in range(n_linear_layers)]
        )
        self.output_layer = nn.Linear(features, output_features)

    def forward(self, x):
        maps = [self.conv_block(cg(x)) for cg in self.coarse_grains]
        x = self.flatten(torch.cat(maps, dim=-1))
        for layer in self.layers:
            x = layer(x)
        return self.output_layer(x)


# --------------------------------------------------------------------------------------
# random architectures


class PlanNet(nn.Module):
    """Runs a static plan [(kind, arg, sources)]; torch.fx unrolls the loop into a DAG."""

    def __init__(self, plan, layers):
        super().__init__()
        self.layers = nn.ModuleDict(layers)
        self.plan = plan

    def forward(self, x):
        vals = [x]
        for kind, arg, srcs in self.plan:
            a = vals[srcs[0]]
            if kind == "mod":
                y = self.layers[arg](a)
            elif kind == "fn":
                fn, args, kwargs = arg
                y = fn(a, *args, **kwargs)
            elif kind == "method":
                name, args = arg
                y = getattr(a, name)(*args)
            elif kind == "add":
                y = a + vals[srcs[1]] if arg == "op" else torch.add(a, vals[srcs[1]])
            elif kind == "cat":
                ins = [vals[i] for i in srcs]
                if arg == "cat":
                    y = torch.cat(ins, 1)
                elif arg == "concat":
                    y = torch.concat(tuple(ins), dim=1)
                elif arg == "cat_len":
                    y = torch.cat(ins, dim=-1)
                else:  # ("neg", d): channels named by a negative dim
                    y = torch.cat(ins, dim=arg[1])
            elif kind == "view":
                y = a.view(a.size(0), -1)
            elif kind == "reshape":
                y = a.reshape(a.shape[0], -1)
            else:
                raise AssertionError(kind)
            vals.append(y)
        return vals[-1]


_CHANNELS = [1, 2, 3, 4, 5, 7, 8, 9, 12, 16, 17, 24, 31, 33]


class _Builder:
    def __init__(self, rng: np.random.Generator, layout: str):
        self.rng = rng
        self.layout = layout
        self.plan: list = []
        self.layers: dict[str, nn.Module] = {}
        self.shapes: list[tuple[int, ...]] = []  # per-sample shape of each value

    # ---- bookkeeping
    def choice(self, seq):
        return seq[int(self.rng.integers(len(seq)))]

    def emit(self, kind, arg, srcs, shape) -> int:
        self.plan.append((kind, arg, list(srcs)))
        self.shapes.append(tuple(shape))
        return len(self.shapes) - 1

    def module(self, mod: nn.Module, src: int, shape) -> int:
        name = f"{type(mod).__name__.lower()}{len(self.layers)}"
        self.layers[name] = mod
        return self.emit("mod", name, [src], shape)

    # ---- layers
    def act(self, src: int) -> int:
        shape = self.shapes[src]
        r = self.rng
        kind = self.choice(["relu", "leaky_relu", "elu", "silu", "gelu", "tanh", "sigmoid", "softplus"])
        functional = r.random() < 0.4
        if kind == "relu":
            if functional:
                return (
                    self.emit("fn", (self.choice([F.relu, torch.relu]), (), {}), [src], shape)
                    if r.random() < 0.7
                    else self.emit("method", ("relu", ()), [src], shape)
                )
            return self.module(nn.ReLU(), src, shape)
        if kind == "leaky_relu":
            s = float(self.choice([0.01, 0.2, 0.5]))
            return (
                self.emit("fn", (F.leaky_relu, (s,), {}), [src], shape)
                if functional
                else self.module(nn.LeakyReLU(s), src, shape)
            )
        if kind == "elu":
            a = float(self.choice([1.0, 0.5, 2.0]))
            return (
                self.emit("fn", (F.elu, (), {"alpha": a}), [src], shape)
                if functional
                else self.module(nn.ELU(a), src, shape)
            )
        if kind == "silu":
            return self.emit("fn", (F.silu, (), {}), [src], shape) if functional else self.module(nn.SiLU(), src, shape)
        if kind == "gelu":
            ap = self.choice(["none", "tanh"])
            return (
                self.emit("fn", (F.gelu, (), {"approximate": ap}), [src], shape)
                if functional
                else self.module(nn.GELU(ap), src, shape)
            )
        if kind == "tanh":
            return (
                self.emit("fn", (torch.tanh, (), {}), [src], shape)
                if functional
                else self.module(nn.Tanh(), src, shape)
            )
        if kind == "sigmoid":
            return (
                self.emit("fn", (torch.sigmoid, (), {}), [src], shape)
                if functional
                else self.module(nn.Sigmoid(), src, shape)
            )
        beta, thr = float(self.choice([1.0, 0.5, 2.0])), float(self.choice([20.0, 10.0]))
        return (
            self.emit("fn", (F.softplus, (), {"beta": beta, "threshold": thr}), [src], shape)
            if functional
            else self.module(nn.Softplus(beta, thr), src, shape)
        )

    def bn(self, src: int) -> int:
        c = self.shapes[src][0]
        mod = (nn.BatchNorm2d if self.layout == "nchw" else nn.BatchNorm1d)(c, affine=bool(self.rng.random() < 0.8))
        g = torch.Generator().manual_seed(int(self.rng.integers(2**31)))
        mod.running_mean.copy_(torch.randn(c, generator=g) * 0.5)
        mod.running_var.copy_(torch.rand(c, generator=g) * 1.5 + 0.5)
        if mod.affine:
            with torch.no_grad():
                mod.weight.copy_(torch.rand(c, generator=g) + 0.5)
                mod.bias.copy_(torch.randn(c, generator=g) * 0.3)
        return self.module(mod, src, self.shapes[src])

    def dense(self, src: int, co: int | None = None) -> int:
        """Linear (nc), 1x1 Conv2d (nchw)."""
        ci = self.shapes[src][0]
        co = co or self.choice(_CHANNELS)
        bias = bool(self.rng.random() < 0.8)
        if self.layout == "nchw":
            pad = self.choice([0, "valid", "same"])
            return self.module(nn.Conv2d(ci, co, 1, bias=bias, padding=pad), src, (co,))
        return self.module(nn.Linear(ci, co, bias=bias), src, (co,))

    def conv(self, src: int, co: int | None = None, same_length: bool = False) -> int:
        ci, length = self.shapes[src]
        co = co or self.choice(_CHANNELS)
        r = self.rng
        for _ in range(100):
            k = int(r.integers(1, 8))
            d = int(r.integers(1, 4)) if k > 1 and r.random() < 0.3 else 1
            s = 1 if same_length else int(self.choice([1, 1, 1, 2, 3]))
            if same_length:
                pad = "same"
            else:
                pad = self.choice(["same", "valid", 0, 1, 2, k // 2]) if s == 1 else self.choice([0, 1, k // 2])
            if pad == "same":
                lout = length
            else:
                p = 0 if pad == "valid" else pad
                lout = (length + 2 * p - d * (k - 1) - 1) // s + 1
            if lout >= 1:
                mod = nn.Conv1d(ci, co, k, stride=s, padding=pad, dilation=d, bias=bool(r.random() < 0.8))
                return self.module(mod, src, (co, lout))
        raise AssertionError("no valid conv")

    def pool(self, src: int) -> int:
        c, length = self.shapes[src]
        r = self.rng
        k = int(r.integers(1, min(4, length) + 1))
        s = int(r.integers(1, k + 1))
        p = int(r.integers(0, k // 2 + 1))
        lout = (length + 2 * p - k) // s + 1
        if r.random() < 0.5:
            if r.random() < 0.5:
                return self.module(nn.MaxPool1d(k, s, p), src, (c, lout))
            return self.emit("fn", (F.max_pool1d, (k,), {"stride": s, "padding": p}), [src], (c, lout))
        cip = bool(r.random() < 0.5)
        if r.random() < 0.5:
            return self.module(nn.AvgPool1d(k, s, p, count_include_pad=cip), src, (c, lout))
        return self.emit("fn", (F.avg_pool1d, (k, s, p), {"count_include_pad": cip}), [src], (c, lout))

    def drop(self, src: int) -> int:
        shape = self.shapes[src]
        pick = self.rng.random()
        if pick < 0.4:
            return self.module(nn.Dropout(0.3), src, shape)
        if pick < 0.7:
            return self.module(nn.Identity(), src, shape)
        return self.emit("fn", (F.dropout, (), {"p": 0.2, "training": False}), [src], shape)

    def layer(self, src: int) -> int:
        return self.conv(src) if self.layout == "ncl" else self.dense(src)

    def same_shape_layer(self, src: int, co: int | None = None) -> int:
        if self.layout == "ncl":
            return self.conv(src, co=co, same_length=True)
        return self.dense(src, co=co or self.shapes[src][0])

    def branches(self, src: int) -> int:
        outs = []
        for _ in range(int(self.rng.integers(2, 4))):
            y = self.same_shape_layer(src, co=self.choice(_CHANNELS))
            if self.rng.random() < 0.5:
                y = self.act(y)
            outs.append(y)
        if self.rng.random() < 0.3:
            outs.append(src)  # the branch input itself joins the concatenation (DenseNet-style)
        c = sum(self.shapes[i][0] for i in outs)
        form = self.choice(["cat", "concat", "neg"])
        if form == "neg":
            form = ("neg", {"nc": -1, "ncl": -2, "nchw": -3}[self.layout])
        return self.emit("cat", form, outs, (c,) + self.shapes[src][1:])

    def residual(self, src: int) -> int:
        c = self.shapes[src][0]
        y = self.same_shape_layer(src, co=c)
        if self.rng.random() < 0.5:
            y = self.bn(y)
        y = self.act(y)
        y = self.same_shape_layer(y, co=c) if self.rng.random() < 0.5 else y
        return self.emit("add", self.choice(["op", "torch"]), [src, y], self.shapes[src])

    def multiscale_head(self, src: int) -> int:
        """MUISCA pattern: scale copies through a shared conv, cat along length, flatten, Linear."""
        c, length = self.shapes[src]
        conv = nn.Conv1d(c, self.choice(_CHANNELS), int(self.rng.integers(1, 4)), padding="same")
        self.layers["shared_conv"] = conv
        outs = []
        for s in range(1, int(self.rng.integers(2, 4)) + 1):
            if length // s < 1:
                break
            y = self.module(nn.AvgPool1d(s), src, (c, length // s))
            outs.append(self.emit("mod", "shared_conv", [y], (conv.out_channels, length // s)))
        total = sum(self.shapes[i][1] for i in outs)
        y = self.emit("cat", "cat_len", outs, (conv.out_channels, total))
        y = self.module(nn.Flatten(), y, (conv.out_channels * total,))
        co = self.choice(_CHANNELS)
        return self.module(nn.Linear(conv.out_channels * total, co), y, (co,))

    def flatten(self, src: int) -> int:
        shape = (int(np.prod(self.shapes[src])),)
        form = self.choice(["module", "torch", "method", "view", "reshape"])
        if form == "module":
            return self.module(nn.Flatten(), src, shape)
        if form == "torch":
            return self.emit("fn", (torch.flatten, (1,), {}), [src], shape)
        if form == "method":
            return self.emit("method", ("flatten", (1,)), [src], shape)
        return self.emit(form, None, [src], shape)


def random_net(layout: str, seed: int):
    """(module in eval mode, float32 example input) for a random valid architecture.

    Draws again (deterministically, from the same seed) when the network's output is
    degenerate (all zero, e.g. a final ReLU after a negative shift), which would make
    a relative comparison meaningless.
    """
    for attempt in range(20):
        net, x = _draw(layout, [seed, attempt])
        with torch.no_grad():
            y = net(x)
        if torch.isfinite(y).all() and (y != 0).any():
            return net, x
    raise AssertionError(f"seed {seed}: no non-degenerate network in 20 draws")


def _draw(layout: str, seed: list[int]):
    rng = np.random.default_rng(seed)
    torch.manual_seed(int(rng.integers(2**62)))
    b = _Builder(rng, layout)
    n = int(rng.integers(1, 40))
    if layout == "nc":
        x_shape = (n, b.choice(_CHANNELS))
    elif layout == "ncl":
        x_shape = (n, int(rng.integers(1, 7)), int(rng.integers(8, 90)))
    else:
        x_shape = (int(rng.integers(1, 4)), b.choice(_CHANNELS), int(rng.integers(1, 14)), int(rng.integers(1, 14)))
    b.shapes.append(tuple(x_shape[1:]) if layout != "nchw" else (x_shape[1],))
    cur = 0
    steps = ["layer", "layer", "act", "act", "bn", "drop", "branches", "residual"]
    if layout == "ncl":
        steps += ["pool", "pool"]
    for _ in range(int(rng.integers(1, 7))):
        step = b.choice(steps)
        if step == "layer":
            cur = b.layer(cur)
            if rng.random() < 0.3:
                cur = b.bn(cur)  # conv/linear -> BN: folded at export
        else:
            cur = getattr(b, step)(cur)
    if layout == "ncl":
        head = rng.random()
        if head < 0.15:
            cur = b.multiscale_head(cur)
        elif head < 0.85:
            cur = b.flatten(cur)
    if len(b.shapes[cur]) == 1 and layout != "nchw":
        for _ in range(int(rng.integers(0, 3))):
            cur = b.dense(cur)
            for step in ("bn", "act", "drop"):
                if rng.random() < 0.4:
                    cur = getattr(b, step)(cur)
        if layout == "nc" and rng.random() < 0.2:
            cur = b.module(nn.Flatten(), cur, b.shapes[cur])  # a no-op on (N, C)

    def dropped(step):
        kind, arg, _ = step
        noop = (nn.Identity, nn.Dropout, nn.Flatten) if layout == "nc" else (nn.Identity, nn.Dropout)
        return (kind == "mod" and isinstance(b.layers[arg], noop)) or (kind == "fn" and arg[0] is F.dropout)

    if all(dropped(step) for step in b.plan):
        cur = b.layer(cur)  # something to compute
    net = PlanNet(b.plan, b.layers).eval()
    x = torch.randn(x_shape, generator=torch.Generator().manual_seed(int(rng.integers(2**62))))
    return net, x


def describe(net: nn.Module) -> str:
    """Short text of a random net for failure messages."""

    def name(a):
        if isinstance(a, tuple):
            return getattr(a[0], "__name__", str(a[0])) + str(list(a[1:]))
        return str(a)

    if not hasattr(net, "plan"):
        return type(net).__name__
    return " ".join(f"{k}:{name(a)}{s}" for k, a, s in net.plan)
