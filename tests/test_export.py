"""fastinv.export: the file against the safetensors package (independent reader), BN
folding against torch's own fusion utilities, the graph's meaning against a float64
NumPy interpreter written from docs/model-format.md, and the errors for anything
fastinv cannot run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")
nn = torch.nn
F = torch.nn.functional
safetensors_numpy = pytest.importorskip("safetensors.numpy")

import fastinv  # noqa: E402
from _graph_reference import read_model, run_graph  # noqa: E402
from _netgen import MUISCA, base_seed, deepem, describe, random_net  # noqa: E402

warnings.filterwarnings("ignore", message=".*padding='same'.*")

SEED = base_seed()
print(f"test_export: FASTINV_TEST_SEED={SEED}")


def _random_bn(bn: nn.Module, seed: int = 0) -> nn.Module:
    g = torch.Generator().manual_seed(seed)
    c = bn.num_features
    bn.running_mean.copy_(torch.randn(c, generator=g))
    bn.running_var.copy_(torch.rand(c, generator=g) * 2 + 0.3)
    with torch.no_grad():
        bn.weight.copy_(torch.rand(c, generator=g) + 0.5)
        bn.bias.copy_(torch.randn(c, generator=g))
    return bn


def _rel_err(a, b) -> float:
    a, b = (v.detach().numpy() if isinstance(v, torch.Tensor) else np.asarray(v) for v in (a, b))
    err, scale = float(np.abs(a.astype(np.float64) - b).max()), float(np.abs(b).max())
    return err / scale if scale > 0 else (0.0 if err == 0 else np.inf)


# --------------------------------------------------------------------------------------
# the container


def test_file_is_valid_safetensors_with_the_documented_layout(tmp_path):
    torch.manual_seed(1)
    net = nn.Sequential(nn.Conv1d(3, 5, 3), nn.ReLU(), nn.Flatten(), nn.Linear(5 * 8, 4)).eval()
    path = fastinv.export(
        net, tmp_path / "m.safetensors", torch.zeros(2, 3, 10), metadata={"fastinv.card": "ünïcode card"}
    )
    raw = path.read_bytes()
    n = int.from_bytes(raw[:8], "little")
    assert n % 8 == 0  # JSON header padded with spaces so tensor data starts 8-aligned
    header = json.loads(raw[8 : 8 + n].decode("utf-8"))
    assert raw[8 : 8 + n].decode("utf-8").rstrip(" ").endswith("}")
    spans = sorted(v["data_offsets"] for k, v in header.items() if k != "__metadata__")
    assert spans[0][0] == 0 and all(a[1] == b[0] for a, b in zip(spans, spans[1:]))
    assert 8 + n + spans[-1][1] == len(raw)
    assert all(v["dtype"] == "F32" for k, v in header.items() if k != "__metadata__")
    # the independent reader: the safetensors package
    loaded = safetensors_numpy.load_file(str(path))
    sd = net.state_dict()
    assert set(loaded) == {"0.weight", "0.bias", "3.weight", "3.bias"}
    for k, v in loaded.items():
        assert v.dtype == np.float32 and v.flags.c_contiguous
        np.testing.assert_array_equal(v, sd[k].numpy())
    graph, _, meta = read_model(path)
    assert meta["fastinv.card"] == "ünïcode card"
    assert meta["fastinv.version"] == fastinv.__version__
    assert graph["format"] == "fastinv.graph" and graph["version"] == 1


def test_tensors_equal_torch_state_dict_after_folding(tmp_path):
    """Folded tensors against torch.nn.utils.fusion (torch's own BN folding)."""
    from torch.nn.utils.fusion import fuse_conv_bn_eval, fuse_linear_bn_eval

    torch.manual_seed(2)
    net = nn.Sequential(
        nn.Conv1d(4, 6, 5, padding=2),
        _random_bn(nn.BatchNorm1d(6), 1),
        nn.ReLU(),
        nn.Conv1d(6, 3, 3, bias=False),
        _random_bn(nn.BatchNorm1d(3), 2),
        nn.Flatten(),
        nn.Linear(3 * 14, 7),
        _random_bn(nn.BatchNorm1d(7), 3),
        nn.Tanh(),
        nn.Linear(7, 2),
    ).eval()
    path = fastinv.export(net, tmp_path / "m.safetensors", torch.zeros(1, 4, 16))
    got = safetensors_numpy.load_file(str(path))
    assert set(got) == {"0.weight", "0.bias", "3.weight", "3.bias", "6.weight", "6.bias", "9.weight", "9.bias"}
    refs = {
        "0": fuse_conv_bn_eval(net[0], net[1]),
        "3": fuse_conv_bn_eval(net[3], net[4]),
        "6": fuse_linear_bn_eval(net[6], net[7]),
        "9": net[9],
    }
    for prefix, mod in refs.items():
        for role in ("weight", "bias"):
            ref = getattr(mod, role).detach().numpy()
            np.testing.assert_allclose(got[f"{prefix}.{role}"], ref, rtol=2e-6, atol=2e-7 * np.abs(ref).max())
    graph, _, _ = read_model(path)
    assert [nd["op"] for nd in graph["nodes"]] == ["conv1d", "act", "conv1d", "flatten", "linear", "act", "linear"]


@pytest.mark.parametrize("kind", ["conv1d", "linear", "conv2d"])
def test_bn_folding_numerically_in_torch(tmp_path, kind):
    """A torch layer built from the FOLDED file tensors == the original layer + BN (eval)."""
    torch.manual_seed(3)
    if kind == "conv1d":
        layer, bn, x = nn.Conv1d(5, 9, 3, stride=2, padding=1), nn.BatchNorm1d(9), torch.randn(7, 5, 20)
    elif kind == "linear":
        layer, bn, x = nn.Linear(11, 6), nn.BatchNorm1d(6), torch.randn(7, 11)
    else:
        layer, bn, x = nn.Conv2d(6, 8, 1), nn.BatchNorm2d(8), torch.randn(2, 6, 5, 4)
    net = nn.Sequential(layer, _random_bn(bn, 4)).eval()
    path = fastinv.export(net, tmp_path / "m.safetensors", x)
    t = {k: torch.from_numpy(v) for k, v in safetensors_numpy.load_file(str(path)).items()}
    graph, _, _ = read_model(path)
    assert [nd["op"] for nd in graph["nodes"]] == ["conv1d" if kind == "conv1d" else "linear"]
    with torch.no_grad():
        ref = net(x)
        if kind == "conv1d":
            y = F.conv1d(x, t["0.weight"], t["0.bias"], stride=2, padding=1)
        elif kind == "linear":
            y = F.linear(x, t["0.weight"], t["0.bias"])
        else:
            y = F.conv2d(x, t["0.weight"][:, :, None, None], t["0.bias"])
    assert _rel_err(y, ref) <= 1e-5


def test_graph_json_of_a_small_network(tmp_path):
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv1d(4, 8, 4, padding="same", bias=False)
            self.act1 = nn.LeakyReLU(0.01)
            self.pool1 = nn.MaxPool1d(2)
            self.fc = nn.Linear(8 * 14, 3)

        def forward(self, x):
            x = self.pool1(self.act1(self.conv1(x)))
            x = F.softplus(x.view(x.size(0), -1), beta=2.0, threshold=10.0)
            return self.fc(x)

    path = fastinv.export(Net(), tmp_path / "m.safetensors", torch.zeros(3, 4, 28), metadata={"k": "v"})
    graph, tensors, meta = read_model(path)
    assert graph == {
        "format": "fastinv.graph",
        "version": 1,
        "input": {"name": "x", "shape": [4, 28], "layout": "ncl"},
        "nodes": [
            # torch's 'same' rule: total d(K-1) = 3, the odd element on the right
            {
                "name": "conv1",
                "op": "conv1d",
                "inputs": ["x"],
                "stride": 1,
                "padding": [1, 2],
                "dilation": 1,
                "weight": "conv1.weight",
            },
            {"name": "act1", "op": "act", "inputs": ["conv1"], "kind": "leaky_relu", "alpha": 0.01},
            {"name": "pool1", "op": "maxpool1d", "inputs": ["act1"], "kernel": 2, "stride": 2, "padding": 0},
            {"name": "view", "op": "flatten", "inputs": ["pool1"]},
            {"name": "softplus", "op": "act", "inputs": ["view"], "kind": "softplus", "beta": 2.0, "threshold": 10.0},
            {"name": "fc", "op": "linear", "inputs": ["softplus"], "weight": "fc.weight", "bias": "fc.bias"},
        ],
        "output": "fc",
    }
    assert sorted(tensors) == ["conv1.weight", "fc.bias", "fc.weight"]
    assert tensors["conv1.weight"].shape == (8, 4, 4) and tensors["fc.weight"].shape == (3, 112)
    assert meta["k"] == "v"


def test_graph_json_branches_residual_affine(tmp_path):
    """cat along channels, residual add, BN that cannot fold (conv has 2 users; BN after act; BN on input)."""

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.bn_in = nn.BatchNorm1d(3)
            self.a = nn.Linear(3, 4)
            self.b = nn.Linear(3, 5)
            self.bn_a = nn.BatchNorm1d(4)
            self.c = nn.Linear(9, 9)
            self.bn_c = nn.BatchNorm1d(9)
            self.drop = nn.Dropout(0.5)

        def forward(self, x):
            x = self.bn_in(x)
            y = torch.cat([F.gelu(self.a(x)), self.b(x)], dim=1)
            z = self.c(y)
            z = self.bn_c(z) + z  # c has two users: BN cannot fold
            return torch.add(self.drop(z), torch.cat((self.bn_a(F.elu(self.a(x), alpha=0.5)), self.b(x)), 1))

    net = Net()
    for m in net.modules():
        if isinstance(m, nn.BatchNorm1d):
            _random_bn(m)
    x = torch.randn(6, 3)
    path = fastinv.export(net, tmp_path / "m.safetensors", x)
    graph, tensors, _ = read_model(path)
    ops = [(nd["name"], nd["op"], nd["inputs"]) for nd in graph["nodes"]]
    assert ops == [
        ("bn_in", "affine", ["x"]),
        ("a", "linear", ["bn_in"]),
        ("gelu", "act", ["a"]),
        ("b", "linear", ["bn_in"]),
        ("cat", "concat", ["gelu", "b"]),
        ("c", "linear", ["cat"]),
        ("bn_c", "affine", ["c"]),
        ("add", "add", ["bn_c", "c"]),
        ("a_1", "linear", ["bn_in"]),
        ("elu", "act", ["a_1"]),
        ("bn_a", "affine", ["elu"]),
        ("b_1", "linear", ["bn_in"]),
        ("cat_1", "concat", ["bn_a", "b_1"]),
        ("add_1", "add", ["add", "cat_1"]),
    ]
    # a layer called twice shares one stored tensor
    assert graph["nodes"][1]["weight"] == graph["nodes"][8]["weight"] == "a.weight"
    assert sorted(tensors) == sorted(
        [
            "bn_in.scale",
            "bn_in.shift",
            "a.weight",
            "a.bias",
            "b.weight",
            "b.bias",
            "c.weight",
            "c.bias",
            "bn_c.scale",
            "bn_c.shift",
            "bn_a.scale",
            "bn_a.shift",
        ]
    )
    np.testing.assert_allclose(
        tensors["bn_in.scale"],
        (net.bn_in.weight / torch.sqrt(net.bn_in.running_var + net.bn_in.eps)).detach().numpy(),
        rtol=1e-6,
    )
    with torch.no_grad():
        assert _rel_err(run_graph(graph, tensors, x.numpy()), net.eval()(x).numpy()) <= 1e-5


def test_deepem_graph(tmp_path):
    torch.manual_seed(5)
    net = deepem()
    path = fastinv.export(net, tmp_path / "deepem.safetensors", torch.zeros(1, 6, 4, 4))
    graph, tensors, _ = read_model(path)
    assert graph["input"]["layout"] == "nchw" and graph["input"]["shape"] == [6]
    assert [(nd["op"], nd.get("kind"), nd.get("alpha")) for nd in graph["nodes"]] == [
        ("linear", None, None),
        ("act", "leaky_relu", 0.01),
        ("linear", None, None),
        ("act", "leaky_relu", 0.01),
        ("linear", None, None),
    ]
    assert [tensors[nd["weight"]].shape for nd in graph["nodes"] if nd["op"] == "linear"] == [
        (300, 6),
        (300, 300),
        (18, 300),
    ]
    assert sum(v.size for v in tensors.values()) == sum(p.numel() for p in net.parameters()) == 97_818
    x = torch.randn(2, 6, 5, 3)
    with torch.no_grad():
        assert _rel_err(run_graph(graph, tensors, x.numpy()), net(x).numpy()) <= 1e-5


def test_muisca_export(tmp_path):
    torch.manual_seed(6)
    net = MUISCA().eval()
    x = torch.randn(4, 2, 112)
    # the faithful reconstruction: AvgPool1d(s) is Agudelo's CoarseGrain (unfold + mean)
    for s, cg in zip((1, 2, 3), net.coarse_grains):
        np.testing.assert_allclose(cg(x).numpy(), x.unfold(2, s, s).mean(-1).numpy(), rtol=1e-6, atol=1e-7)
    assert net.layers[0][0].in_features == 1344
    assert sum(p.numel() for p in net.parameters()) == 7_318_223  # "≈7.3 M parameters"
    path = fastinv.export(net, tmp_path / "muisca.safetensors", x)
    graph, tensors, _ = read_model(path)
    ops = [nd["op"] for nd in graph["nodes"]]
    assert ops.count("conv1d") == 6 and ops.count("maxpool1d") == 6 and ops.count("avgpool1d") == 3
    assert ops.count("concat") == 1 and ops.count("flatten") == 3 and ops.count("linear") == 5
    # the shared conv block is stored once; only the first dense layer's columns are permuted
    assert sum(v.size for v in tensors.values()) == 7_318_223
    w0 = tensors["layers.0.0.weight"]
    assert not np.array_equal(w0, net.layers[0][0].weight.detach().numpy())
    np.testing.assert_array_equal(np.sort(w0, axis=1), np.sort(net.layers[0][0].weight.detach().numpy(), axis=1))
    with torch.no_grad():
        assert _rel_err(run_graph(graph, tensors, x.numpy()), net(x).numpy()) <= 1e-5


RANDOM_CASES = [(layout, SEED + 1000 * i + j) for i, layout in enumerate(("nc", "ncl", "nchw")) for j in range(12)]


@pytest.mark.parametrize("layout,seed", RANDOM_CASES, ids=[f"{lay}-seed{s}" for lay, s in RANDOM_CASES])
def test_random_architecture_file_means_the_torch_network(tmp_path, layout, seed):
    """The exported graph, run by the float64 NumPy interpreter, equals torch (float32)."""
    net, x = random_net(layout, seed)
    path = fastinv.export(net, tmp_path / "r.safetensors", x)
    graph, tensors, _ = read_model(path)
    with torch.no_grad():
        ref = net(x).numpy()
    y = run_graph(graph, tensors, x.numpy())
    assert y.shape == ref.shape
    err = _rel_err(y, ref)
    assert err <= 1e-5, f"seed {seed} ({layout}): rel err {err:.2e}; net: {describe(net)}"


# --------------------------------------------------------------------------------------
# behaviour


def test_export_restores_train_mode_and_uses_eval_statistics(tmp_path):
    net = nn.Sequential(nn.Linear(3, 4), _random_bn(nn.BatchNorm1d(4)), nn.Dropout(0.9), nn.Linear(4, 2))
    net.train()
    net[3].eval()  # mixed modes must come back exactly
    x = torch.randn(8, 3)
    fastinv.export(net, tmp_path / "a.safetensors", x)
    assert [m.training for m in net.modules()] == [True, True, True, True, False]
    running = net[1].running_mean.clone()
    fastinv.export(net, tmp_path / "b.safetensors", x)
    assert torch.equal(running, net[1].running_mean)  # no training-mode forward updated the statistics
    assert (tmp_path / "a.safetensors").read_bytes() == (tmp_path / "b.safetensors").read_bytes()
    net.eval()
    graph, tensors, _ = read_model(tmp_path / "a.safetensors")
    with torch.no_grad():
        assert _rel_err(run_graph(graph, tensors, x.numpy()), net(x).numpy()) <= 1e-5


def test_float64_module_is_written_as_float32(tmp_path):
    torch.manual_seed(7)
    net = nn.Sequential(nn.Linear(5, 3), nn.Sigmoid()).double()
    path = fastinv.export(net, tmp_path / "m.safetensors", np.zeros((2, 5)))
    got = safetensors_numpy.load_file(str(path))
    assert got["0.weight"].dtype == np.float32
    np.testing.assert_array_equal(got["0.weight"], net[0].weight.detach().float().numpy())


def test_write_is_atomic_and_failed_export_keeps_old_file(tmp_path):
    path = tmp_path / "m.safetensors"
    fastinv.export(nn.Sequential(nn.Linear(2, 2)), path, torch.zeros(1, 2))
    before = path.read_bytes()
    with pytest.raises(ValueError):
        fastinv.export(nn.Sequential(nn.Linear(2, 2), nn.Hardswish()), path, torch.zeros(1, 2))
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.safetensors"]  # no temp files left


def test_metadata_is_validated(tmp_path):
    net = nn.Sequential(nn.Linear(2, 2))
    with pytest.raises(ValueError, match="fastinv.graph"):
        fastinv.export(net, tmp_path / "m.safetensors", torch.zeros(1, 2), metadata={"fastinv.graph": "{}"})
    with pytest.raises(TypeError, match="str"):
        fastinv.export(net, tmp_path / "m.safetensors", torch.zeros(1, 2), metadata={"epochs": 3})


def test_import_fastinv_does_not_import_torch():
    code = "import sys, fastinv; fastinv.export; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=os.path.dirname(os.path.abspath(__file__)) + "/..")


# --------------------------------------------------------------------------------------
# what fastinv cannot run: ValueError naming the layer and its type


class _Seq(nn.Module):
    def __init__(self, *layers, fn=None):
        super().__init__()
        self.body = nn.Sequential(*layers)
        self.fn = fn

    def forward(self, x):
        x = self.body(x)
        return self.fn(x) if self.fn is not None else x


def _lstm_net():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = nn.LSTM(4, 8)

        def forward(self, x):
            return self.lstm(x)[0]

    return Net()


UNSUPPORTED = [
    ("lstm", _lstm_net(), (2, 3, 4), r"'lstm' \(LSTM\)"),
    ("groups", _Seq(nn.Conv1d(4, 4, 3, groups=2)), (2, 4, 9), r"'body.0' \(Conv1d\).*groups=2"),
    ("conv2d3x3", _Seq(nn.Conv2d(3, 4, 3)), (1, 3, 8, 8), r"'body.0' \(Conv2d\).*1x1"),
    ("conv2d_stride", _Seq(nn.Conv2d(3, 4, 1, stride=2)), (1, 3, 8, 8), r"'body.0' \(Conv2d\).*stride"),
    ("conv2d_pad", _Seq(nn.Conv2d(3, 4, 1, padding=1)), (1, 3, 8, 8), r"'body.0' \(Conv2d\).*padding"),
    ("maxpool_ceil", _Seq(nn.MaxPool1d(2, ceil_mode=True)), (1, 3, 9), r"'body.0' \(MaxPool1d\).*ceil_mode"),
    ("avgpool_ceil", _Seq(nn.AvgPool1d(2, ceil_mode=True)), (1, 3, 9), r"'body.0' \(AvgPool1d\).*ceil_mode"),
    ("maxpool_dil", _Seq(nn.MaxPool1d(2, dilation=2)), (1, 3, 9), r"'body.0' \(MaxPool1d\).*dilation"),
    ("reflect", _Seq(nn.Conv1d(3, 3, 3, padding=1, padding_mode="reflect")), (1, 3, 9), r"'body.0'.*padding_mode"),
    ("relu6", _Seq(nn.Linear(3, 3), nn.ReLU6()), (2, 3), r"'body.1' \(ReLU6\)"),
    ("layernorm", _Seq(nn.LayerNorm(3)), (2, 3), r"'body.0' \(LayerNorm\)"),
    ("bn_batchstats", _Seq(nn.BatchNorm1d(3, track_running_stats=False)), (4, 3), r"'body.0' \(BatchNorm1d\).*running"),
    ("linear_3d", _Seq(nn.Linear(9, 2)), (2, 3, 9), r"'body.0' \(Linear\).*flatten"),
    ("flatten_2", _Seq(nn.Flatten(2)), (2, 3, 4, 5), r"'body.0' \(Flatten\)"),
    ("nchw_pool", _Seq(nn.Conv2d(3, 3, 1), nn.Flatten()), (2, 3, 4, 5), r"'body.1' \(Flatten\)"),
    ("mul", _Seq(nn.Linear(3, 3), fn=lambda x: x * 2), (2, 3), r"'mul'"),
    ("add_const", _Seq(nn.Linear(3, 3), fn=lambda x: x + 1.0), (2, 3), r"'add'.*constant"),
    ("cat_dim0", _Seq(nn.Linear(3, 3), fn=lambda x: torch.cat([x, x])), (2, 3), r"'cat'.*dim=0"),
    ("view_other", _Seq(nn.Conv1d(3, 2, 1), fn=lambda x: x.view(2, -1)), (2, 3, 4), r"'view'.*flatten"),
    ("flatten_all", _Seq(nn.Conv1d(3, 2, 1), fn=lambda x: torch.flatten(x)), (2, 3, 4), r"'flatten'.*start_dim=0"),
    ("dropout_train", _Seq(nn.Linear(3, 3), fn=lambda x: F.dropout(x, 0.5, True)), (2, 3), r"'dropout'.*training"),
    ("tuple_out", _Seq(nn.Linear(3, 3), fn=lambda x: (x, x)), (2, 3), r"single tensor"),
    ("cat_len_out", _Seq(nn.Conv1d(3, 2, 1), fn=lambda x: torch.cat([x, x], 2)), (2, 3, 4), r"'cat'.*length"),
    ("identity_only", _Seq(nn.Identity()), (2, 3), r"no computation"),
    ("input_5d", _Seq(nn.ReLU()), (1, 2, 3, 4, 5), r"\(N, C\)"),
]


@pytest.mark.parametrize("name,net,shape,match", UNSUPPORTED, ids=[u[0] for u in UNSUPPORTED])
def test_unsupported_raises_value_error_naming_the_layer(tmp_path, name, net, shape, match):
    with pytest.raises(ValueError, match=match):
        fastinv.export(net, tmp_path / "bad.safetensors", torch.randn(shape))
    assert not (tmp_path / "bad.safetensors").exists()


def test_untraceable_module_is_a_value_error(tmp_path):
    class Net(nn.Module):
        def forward(self, x):
            return x if x.sum() > 0 else -x

    with pytest.raises(ValueError, match="torch.fx could not trace Net"):
        fastinv.export(Net(), tmp_path / "bad.safetensors", torch.randn(2, 3))


def test_example_input_that_does_not_fit_is_a_value_error(tmp_path):
    with pytest.raises(ValueError, match=r"does not run through Sequential.*mat1 and mat2"):
        fastinv.export(nn.Sequential(nn.Linear(3, 2)), tmp_path / "m.safetensors", torch.zeros(2, 4))


def test_method_and_functional_forms(tmp_path):
    """x.relu(), x.sigmoid(), x.tanh(), x.add(y), torch.max_pool1d, x.size()[0] flatten, torch.reshape."""

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv1d(2, 3, 3, padding="valid", dilation=2)
            self.fc = nn.Linear(3 * 4, 4)

        def forward(self, x):
            y = torch.max_pool1d(self.conv(x).relu(), 3, 2, 1)
            y = y.sigmoid().add(y.tanh())
            y = torch.reshape(y, (y.size()[0], -1)).contiguous()
            return self.fc(F.relu(y, inplace=False))

    torch.manual_seed(8)
    net = Net().eval()
    x = torch.randn(5, 2, 12)
    graph, tensors, _ = read_model(fastinv.export(net, tmp_path / "m.safetensors", x))
    assert [nd["op"] for nd in graph["nodes"]] == [
        "conv1d",
        "act",
        "maxpool1d",
        "act",
        "act",
        "add",
        "flatten",
        "act",
        "linear",
    ]
    assert graph["nodes"][0]["dilation"] == 2 and graph["nodes"][0]["padding"] == [0, 0]
    with torch.no_grad():
        assert _rel_err(run_graph(graph, tensors, x.numpy()), net(x)) <= 1e-5


def test_update_card_keeps_tensors_and_merges(tmp_path):
    """update_card rewrites only the card: tensors read back by the safetensors package
    are unchanged, the engine still loads the file, and the .json copy follows."""
    import json

    from fastinv.export import update_card
    from safetensors.numpy import load_file

    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2)).eval()
    path = tmp_path / "m.safetensors"
    fastinv.export(net, path, torch.zeros(2, 3), metadata={"fastinv.card": json.dumps({"a": 1})})
    (tmp_path / "m.safetensors.json").write_text("{}")
    before = load_file(path)
    card = update_card(path, {"b": [1, 2]})
    assert card == {"a": 1, "b": [1, 2]}
    after = load_file(path)
    assert before.keys() == after.keys() and all(np.array_equal(before[k], after[k]) for k in before)
    assert json.loads(fastinv.load(path).metadata["fastinv.card"]) == card
    assert json.loads((tmp_path / "m.safetensors.json").read_text()) == card
