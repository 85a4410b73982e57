"""fastinv's CPU engine against PyTorch CPU float32 (the reference) on random
architectures from the supported set, DeepEM and Agudelo's MUISCA:
max|fastinv - torch| <= 1e-5 * max|torch|.

Random cases are fresh each run; the seed is printed and in every test id, and
FASTINV_TEST_SEED=<seed> reproduces a run.
"""

from __future__ import annotations

import contextlib
import json
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")
nn = torch.nn

import fastinv  # noqa: E402
from _netgen import DEEPEM_PARAMETERS, MUISCA, base_seed, deepem, describe, random_net  # noqa: E402

warnings.filterwarnings("ignore", message=".*padding='same'.*")

SEED = base_seed()
print(f"test_parity: FASTINV_TEST_SEED={SEED}")
RTOL = 1e-5


def _torch(net, x) -> np.ndarray:
    with torch.no_grad():
        return net(torch.as_tensor(np.ascontiguousarray(x), dtype=torch.float32)).numpy()


def _check(got, ref, what: str = "") -> None:
    assert isinstance(got, np.ndarray) and got.dtype == np.float32, type(got)
    assert got.shape == ref.shape, f"{what}: shape {got.shape} != torch {ref.shape}"
    err = float(np.abs(got.astype(np.float64) - ref).max())
    scale = float(np.abs(ref).max())
    assert err <= RTOL * scale, f"{what}: max|fastinv - torch| = {err:.3e} > {RTOL} * {scale:.3e}"


def _export_load(net, x, tmp_path, name="m.safetensors", **kw):
    path = fastinv.export(net, tmp_path / name, x)
    return fastinv.load(path, **kw)


@contextlib.contextmanager
def _isa(name: str):
    before = fastinv.info()["isa"]
    fastinv._core.set_active_isa(name)
    try:
        yield
    finally:
        fastinv._core.set_active_isa(before)


RANDOM_CASES = [(layout, SEED + 1000 * i + j) for i, layout in enumerate(("nc", "ncl", "nchw")) for j in range(12)]


@pytest.mark.parametrize("layout,seed", RANDOM_CASES, ids=[f"{lay}-seed{s}" for lay, s in RANDOM_CASES])
def test_random_architecture_matches_torch(tmp_path, layout, seed):
    net, x = random_net(layout, seed)
    model = _export_load(net, x, tmp_path)
    _check(model(x.numpy()), _torch(net, x), f"seed {seed} ({layout}) net: {describe(net)}")


def test_random_architectures_under_every_isa(tmp_path):
    isas = fastinv.info()["available_isas"]
    cases = [random_net(layout, SEED + 77 + k) for k, layout in enumerate(("nc", "ncl", "nchw", "ncl", "ncl"))]
    torch.manual_seed(SEED)
    cases.append((deepem().eval(), torch.randn(1, 6, 9, 31)))
    for isa in isas:
        with _isa(isa):
            assert fastinv.info()["isa"] == isa
            for k, (net, x) in enumerate(cases):
                model = _export_load(net, x, tmp_path)  # loaded under this ISA: weights packed for its kernels
                _check(model(x.numpy()), _torch(net, x), f"isa {isa}, seed {SEED + 77 + k}: {describe(net)}")


# --------------------------------------------------------------------------------------
# named networks


def test_deepem_batched_and_single_image(tmp_path):
    torch.manual_seed(SEED)
    net = deepem().eval()
    model = _export_load(net, torch.zeros(1, 6, 2, 2), tmp_path)
    rng = np.random.default_rng(SEED)
    x = np.sqrt(np.abs(rng.normal(0, 30, size=(2, 6, 37, 29)))).astype(np.float32)  # sqrt(DN/s) as DeepEM's input
    _check(model(x), _torch(net, x), "DeepEM (N, 6, H, W)")
    x3 = x[1]
    with torch.no_grad():
        ref3 = net(torch.from_numpy(x3)).numpy()  # torch's unbatched Conv2d: (6, H, W) -> (18, H, W)
    _check(model(x3), ref3, "DeepEM (6, H, W)")
    info = model.info()
    assert info["input_layout"] == "nchw"
    assert list(info["input_shape"]) == [6] and list(info["output_shape"]) == [18]
    assert info["parameters"] == DEEPEM_PARAMETERS
    macs = 6 * 300 + 300 * 300 + 300 * 18
    assert 2 * macs <= info["flops_per_sample"] <= 2 * macs * 1.02  # multiply-add = 2 flops, + bias/activation
    assert sum(layer["flops"] for layer in info["layers"]) == info["flops_per_sample"]
    assert sum(layer["parameters"] for layer in info["layers"]) == info["parameters"]
    for layer in info["layers"]:
        assert {"name", "op", "output_shape", "parameters", "flops"} <= set(layer)


def test_muisca(tmp_path):
    torch.manual_seed(SEED)
    net = MUISCA().eval()
    rng = np.random.default_rng(SEED)
    # I/Ic ~ 1 with absorption lines, V/Ic ~ 1e-2: Stokes-like magnitudes
    lam = np.linspace(-1, 1, 112)
    i = 1 - 0.5 * np.exp(-(((lam[None] - rng.uniform(-0.2, 0.2, (9, 1))) / 0.1) ** 2)) + rng.normal(0, 1e-3, (9, 112))
    v = 0.01 * np.gradient(i, axis=1) / np.gradient(lam) * rng.uniform(-1, 1, (9, 1))
    x = np.stack([i, v], axis=1).astype(np.float32)
    model = _export_load(net, torch.from_numpy(x), tmp_path)
    ref = _torch(net, x)
    _check(model(x), ref, "MUISCA")
    assert ref.shape == (9, 63)
    info = model.info()
    assert info["input_layout"] == "ncl" and list(info["input_shape"]) == [2, 112]
    assert list(info["output_shape"]) == [63]
    assert info["parameters"] == sum(p.numel() for p in net.parameters())  # 7 318 223: shared block counted once
    # dense layers dominate: 5 matrix products of 1344 columns
    dense = 2 * (4 * 1344 * 1344 + 1344 * 63)
    assert dense <= info["flops_per_sample"] <= 1.1 * dense


def _check_every_isa_with_nonfinite(net, x, tmp_path) -> None:
    """Under every ISA: NaN, +inf and -inf exactly where torch has them, the finite
    values within the usual tolerance."""
    ref = _torch(net, x)
    for isa in fastinv.info()["available_isas"]:
        with _isa(isa):
            got = _export_load(net, x, tmp_path)(x.numpy())
        for kind, test in (("NaN", np.isnan), ("+inf", np.isposinf), ("-inf", np.isneginf)):
            assert np.array_equal(test(got), test(ref)), f"{isa}: {kind} positions differ from torch"
        finite = np.isfinite(ref)
        _check(np.where(finite, got, 0).astype(np.float32), np.where(finite, ref, 0), f"{isa}: {net}")


# A max-pool whose windows do not overlap is folded into the conv before it (the conv
# writes pooled rows; positions outside every window are skipped). Channel counts that
# are not a multiple of any ISA's row block exercise the partial-block store.
FUSED_POOLS = [("relu", 2, 2, 0, 64), ("leaky", 3, 3, 1, 20), ("none", 2, 3, 1, 7), ("relu", 1, 2, 0, 13)]


@pytest.mark.parametrize("act,k,s,p,co", FUSED_POOLS, ids=[f"{a}-k{k}s{s}p{p}-c{c}" for a, k, s, p, c in FUSED_POOLS])
def test_max_pool_fused_into_conv(tmp_path, act, k, s, p, co):
    torch.manual_seed(SEED)
    acts = {"relu": [nn.ReLU()], "leaky": [nn.LeakyReLU(0.1)], "none": []}[act]
    net = nn.Sequential(nn.Conv1d(3, co, 5, padding=2), *acts, nn.MaxPool1d(k, s, p)).eval()
    x = torch.randn(21, 3, 50)
    x[4, 1, 16] = float("nan")  # reaches conv positions 14-18: windows that start with NaN and end finite
    x[9, :, 30:] = float("inf")
    _check_every_isa_with_nonfinite(net, x, tmp_path)


# Stride-1 convolutions with k = 3 or 5 and >= 16 channels in and out run as Winograd
# F(2, r): the same 1e-5 tolerance, at both edges (every padding, odd and even lengths),
# with the pool fold, an activation the epilogue cannot apply, and a deep stack. NaN and
# inf land where torch puts them (pairs with non-finite inputs are computed directly).
WINOGRAD_CASES = [
    (3, "same", 49, "relu-pool"),
    (5, "same", 50, "relu-pool"),
    (5, 0, 33, "elu"),
    (3, 2, 16, "none"),
    (5, 4, 7, "leaky"),
    (3, 1, 2, "relu-pool"),
    (5, 1, 112, "deep"),
]


@pytest.mark.parametrize(
    "k,pad,length,tail", WINOGRAD_CASES, ids=[f"k{k}-pad{p}-L{n}-{t}" for k, p, n, t in WINOGRAD_CASES]
)
def test_winograd_convolutions(tmp_path, k, pad, length, tail):
    torch.manual_seed(SEED + 7 * k + length)
    layers = [nn.Conv1d(4, 24, 3, padding=1), nn.ReLU(), nn.Conv1d(24, 40, k, padding=pad)]
    layers += {
        "relu-pool": [nn.ReLU(), nn.MaxPool1d(2)],
        "elu": [nn.ELU()],
        "none": [],
        "leaky": [nn.LeakyReLU(0.2)],
        "deep": [nn.ReLU()] + [m for _ in range(4) for m in (nn.Conv1d(40, 40, k, padding="same"), nn.ReLU())],
    }[tail]
    net = nn.Sequential(*layers).eval()
    x = torch.randn(37, 4, length)
    x[5, 2, length // 2] = float("nan")
    x[9, 1, length // 3] = float("inf")
    _check_every_isa_with_nonfinite(net, x, tmp_path)


GROUPED_TAILS = {  # a conv body then a 2.6 MB head; an MLP that is all tail (1.2 MB)
    "cnn-head": (
        lambda: nn.Sequential(
            nn.Conv1d(4, 40, 3, padding=1),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(40 * 65, 250),
            nn.GELU(),
            nn.Linear(250, 250),
            nn.ReLU(),
            nn.Linear(250, 30),
        ),
        (4, 65),
    ),
    "mlp": (lambda: nn.Sequential(nn.Linear(600, 500), nn.ReLU(), nn.Linear(500, 10)), (600,)),
}


@pytest.mark.parametrize("name", list(GROUPED_TAILS))
def test_large_dense_tail_runs_grouped(tmp_path, name):
    """Dense layers whose weights outgrow the cache run for groups of 8 tiles in k-chunks
    of 512: against torch under every ISA (250 and 500 outputs leave partial row blocks,
    k = 2600 and 600 partial chunks), over several groups and a partial one, bitwise
    identical for 1, 2 and 3 threads, a NaN sample isolated."""
    torch.manual_seed(SEED)
    make, shape = GROUPED_TAILS[name]
    net = make().eval()
    x = torch.randn(16 * 8 * 2 + 21, *shape)
    x[200, 3] = float("nan")
    ref = _torch(net, x)
    for isa in fastinv.info()["available_isas"]:
        with _isa(isa):
            model = _export_load(net, x, tmp_path)
            runs = [model(x.numpy(), threads=t) for t in (1, 2, 3)]
        assert np.isnan(runs[0][200]).all() and np.isfinite(np.delete(runs[0], 200, axis=0)).all()
        for other in runs[1:]:
            assert np.array_equal(runs[0], other, equal_nan=True), f"{isa}: result depends on threads"
        ok = np.isfinite(ref).all(axis=1)
        _check(runs[0][ok], ref[ok], f"{isa}: grouped dense tail")


def test_executed_flops_count_what_the_engine_skips(tmp_path):
    """info()'s executed FLOPs against hand arithmetic: a max-pool(2, stride 3) after a
    conv of length 10 reads positions 0-1, 3-4, 6-7 (6 of 10 computed); a Winograd
    F(2, 3) conv of length 8 runs 4 pairs of 4 products plus its dense transforms."""
    pooled = nn.Sequential(nn.Conv1d(4, 8, 3, padding=1), nn.ReLU(), nn.MaxPool1d(2, 3)).eval()
    info = _export_load(pooled, torch.zeros(1, 4, 10), tmp_path).info()
    conv = 2 * 8 * 4 * 3  # per position
    assert info["flops_per_sample"] - info["executed_flops_per_sample"] == 4 * conv
    wino = nn.Sequential(nn.Conv1d(16, 16, 3, padding=1)).eval()
    info = _export_load(wino, torch.zeros(1, 16, 8), tmp_path).info()
    n, c = 4, 16
    assert info["flops_per_sample"] == 8 * 2 * c * c * 3
    assert info["executed_flops_per_sample"] == 4 * (2 * n * c * c + 2 * n * n * c + 2 * 2 * n * c)


# --------------------------------------------------------------------------------------
# inputs: dtype, NaN, threads, strides


def _ncl_net(seed):
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv1d(4, 16, 9, padding=4),
        nn.Tanh(),
        nn.AvgPool1d(2),
        nn.Conv1d(16, 8, 5),
        nn.ELU(),
        nn.Flatten(),
        nn.Linear(8 * 24, 32),
        nn.SiLU(),
        nn.Linear(32, 5),
    ).eval()


def test_float64_input(tmp_path):
    net = _ncl_net(SEED)
    x64 = np.random.default_rng(SEED).normal(size=(33, 4, 56))
    model = _export_load(net, torch.zeros(1, 4, 56), tmp_path)
    got = model(x64)
    assert got.dtype == np.float32
    _check(got, _torch(net, x64.astype(np.float32)), "float64 input")
    np.testing.assert_array_equal(got, model(x64.astype(np.float32)))


@pytest.mark.parametrize("case", ["ncl", "nchw"])
def test_nan_stays_in_its_sample(tmp_path, case):
    rng = np.random.default_rng(SEED)
    if case == "ncl":
        net = _ncl_net(SEED)
        x = rng.normal(size=(40, 4, 56)).astype(np.float32)
        x[17, 2, 30] = np.nan
        bad = (17,)
    else:
        torch.manual_seed(SEED)
        net = deepem().eval()
        x = rng.normal(size=(2, 6, 19, 23)).astype(np.float32)
        x[1, 3, 7, 11] = np.nan
        bad = (1, slice(None), 7, 11)
    model = _export_load(net, torch.zeros((1,) + x.shape[1:]), tmp_path)
    got, ref = model(x), _torch(net, x)
    assert np.isnan(ref[bad]).all()  # torch: NaN spreads to that sample's outputs only
    assert np.isnan(got[bad]).all(), "the NaN sample's outputs must be NaN"
    mask = np.ones(got.shape, bool)
    mask[bad] = False
    assert np.isfinite(got[mask]).all(), "a NaN leaked into other samples"
    err = np.abs(got[mask].astype(np.float64) - ref[mask]).max()
    assert err <= RTOL * np.abs(ref[mask]).max()


def test_threads_give_bitwise_identical_results(tmp_path):
    net = _ncl_net(SEED)
    x = np.random.default_rng(SEED).normal(size=(1001, 4, 56)).astype(np.float32)
    path = fastinv.export(net, tmp_path / "m.safetensors", torch.zeros(1, 4, 56))
    one = fastinv.load(path, threads=1)(x)
    two = fastinv.load(path, threads=2)(x)
    np.testing.assert_array_equal(one, two)
    _check(two, _torch(net, x), "threads=2")
    torch.manual_seed(SEED)
    dem = deepem().eval()
    xi = np.random.default_rng(SEED).normal(size=(1, 6, 67, 71)).astype(np.float32)
    path = fastinv.export(dem, tmp_path / "d.safetensors", torch.zeros(1, 6, 1, 1))
    np.testing.assert_array_equal(fastinv.load(path, threads=1)(xi), fastinv.load(path, threads=2)(xi))


def test_non_contiguous_inputs(tmp_path):
    rng = np.random.default_rng(SEED)
    # ncl: (N, L, C) memory seen as (N, C, L); every other sample of a bigger batch; reversed wavelengths
    net = _ncl_net(SEED)
    model = _export_load(net, torch.zeros(1, 4, 56), tmp_path, "ncl.safetensors")
    base = rng.normal(size=(30, 56, 4)).astype(np.float32)
    views = [
        base.transpose(0, 2, 1),
        rng.normal(size=(60, 4, 56)).astype(np.float32)[::2],
        rng.normal(size=(30, 4, 56)).astype(np.float32)[:, :, ::-1],
        np.asfortranarray(base.transpose(0, 2, 1)),
    ]
    for v in views:
        got = model(v)
        _check(got, _torch(net, v), f"strides {v.strides}")
        np.testing.assert_allclose(got, model(np.ascontiguousarray(v)), rtol=0, atol=1e-6 * np.abs(got).max())
    # nchw: channels-last memory, a cropped window, a float64 channels-last image
    torch.manual_seed(SEED)
    dem = deepem().eval()
    model = _export_load(dem, torch.zeros(1, 6, 1, 1), tmp_path, "dem.safetensors")
    img = rng.normal(size=(2, 40, 50, 6)).astype(np.float32)
    for v in (
        img.transpose(0, 3, 1, 2),
        img.transpose(0, 3, 1, 2)[:, :, 3:31, 5:44:2],
        img[0].transpose(2, 0, 1),
        img.astype(np.float64).transpose(0, 3, 1, 2)[:, :, ::-1],
    ):
        got = model(v)
        _check(
            got, _torch(dem, v.astype(np.float32)) if v.ndim == 4 else _torch(dem, v[None])[0], f"strides {v.strides}"
        )
    # nc: a column slice of a wider array
    torch.manual_seed(SEED)
    mlp = nn.Sequential(nn.Linear(7, 20), nn.GELU(), nn.Linear(20, 3)).eval()
    model = _export_load(mlp, torch.zeros(1, 7), tmp_path, "nc.safetensors")
    wide = rng.normal(size=(25, 15)).astype(np.float32)
    for v in (wide[:, 3:10], wide[:, ::2][:, :7], wide.T.copy().T[:, 1:8]):
        _check(model(v), _torch(mlp, v), f"strides {v.strides}")


# --------------------------------------------------------------------------------------
# the model object


def test_wrong_input_shape_is_a_value_error(tmp_path):
    model = _export_load(_ncl_net(SEED), torch.zeros(1, 4, 56), tmp_path)
    for bad in (np.zeros((3, 5, 56), np.float32), np.zeros((3, 4, 55), np.float32), np.zeros((4, 56), np.float32)):
        with pytest.raises(ValueError):
            model(bad)


def test_bad_files_are_value_errors(tmp_path):
    net = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    path = fastinv.export(net, tmp_path / "m.safetensors", torch.zeros(1, 3))
    raw = path.read_bytes()
    n = int.from_bytes(raw[:8], "little")
    bad = tmp_path / "bad.safetensors"
    cases = {
        "truncated data": raw[:-5],
        "truncated header": raw[: 8 + n // 2],
        "header length past the end": (len(raw) * 2).to_bytes(8, "little") + raw[8:],
        "unknown op": raw.replace(b'\\"op\\":\\"act\\"', b'\\"op\\":\\"xyz\\"'),
        "bad JSON": raw[:8] + b"[" + raw[9:],
    }
    assert cases["unknown op"] != raw
    for what, data in cases.items():
        bad.write_bytes(data)
        with pytest.raises(ValueError):
            fastinv.load(bad)
            pytest.fail(f"{what}: accepted")


def test_loaded_model_reports_the_file_graph(tmp_path):
    net = _ncl_net(SEED)
    path = fastinv.export(net, tmp_path / "m.safetensors", torch.zeros(1, 4, 56))
    info = fastinv.load(path).info()
    assert info["input_layout"] == "ncl" and list(info["input_shape"]) == [4, 56] and list(info["output_shape"]) == [5]
    assert info["parameters"] == sum(p.numel() for p in net.parameters())
    from _graph_reference import read_model

    graph, _, _ = read_model(path)
    assert len(info["layers"]) <= len(graph["nodes"])  # the engine may fuse activations into layers
    assert list(info["layers"][-1]["output_shape"]) == [5]
    assert json.dumps(info)  # plain Python types


# --------------------------------------------------------------------------------------
# edges the random generator rarely reaches


ACTIVATIONS = [
    nn.ReLU(),
    nn.LeakyReLU(0.2),
    nn.ELU(),
    nn.ELU(0.5),
    nn.SiLU(),
    nn.GELU(),
    nn.GELU("tanh"),
    nn.Tanh(),
    nn.Sigmoid(),
    nn.Softplus(),
    nn.Softplus(2.0, 10.0),
    nn.Softplus(0.5, 5.0),
]


@pytest.mark.parametrize("act", ACTIVATIONS, ids=repr)
def test_activation_over_the_whole_float_range(tmp_path, act):
    """Element-wise against torch from -1e30 to 1e30: no overflow/NaN in SIMD exp/tanh/erf, thresholds right.

    Tolerance 1e-5 relative + 1e-6 absolute: in GELU's far negative tail torch's own float32
    1 + erf(x/sqrt(2)) cancels (torch's gelu(-5) is 17 % off the exact -1.43e-6).
    """
    x = np.concatenate(
        [
            np.linspace(-120, 120, 2401),
            [
                -1e30,
                1e30,
                -88.7,
                88.7,
                -87.3,
                87.3,
                1e-30,
                -1e-30,
                0.0,
                20.0,
                20.000002,
                19.99999,
                10.0,
                5.0,
                2.5,
                9.99999,
            ],
        ]
    )
    x = x.astype(np.float32)[:, None]
    model = _export_load(nn.Sequential(act), torch.from_numpy(x), tmp_path)
    ref = _torch(nn.Sequential(act), x)
    for isa in fastinv.info()["available_isas"]:
        with _isa(isa):
            got = fastinv.load(model.path)(x)
        assert np.isfinite(got).all(), f"{isa}: non-finite output for finite input {x[~np.isfinite(got)][:5]}"
        bad = np.abs(got.astype(np.float64) - ref) > 1e-5 * np.abs(ref) + 1e-6
        assert not bad.any(), f"{isa}: x={x[bad][:5]} fastinv={got[bad][:5]} torch={ref[bad][:5]}"


def _visp_cnn():
    return nn.Sequential(
        nn.Conv1d(4, 64, 9, padding=4),
        nn.ReLU(),
        nn.MaxPool1d(2),
        nn.Conv1d(64, 64, 5, padding=2),
        nn.ReLU(),
        nn.MaxPool1d(2),
        nn.Conv1d(64, 64, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool1d(2),
        nn.Flatten(),
        nn.Linear(64 * 122, 256),
        nn.ReLU(),
        nn.Linear(256, 30),
    )


class _SelfAdd(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 4)

    def forward(self, x):
        y = self.lin(x)
        return torch.cat([y + y, y, x], 1)


EDGES = [
    ("visp_cnn_980", _visp_cnn, (7, 4, 980)),
    ("conv_L1", lambda: nn.Sequential(nn.Conv1d(3, 70, 1)), (5, 3, 1)),
    ("stride_gt_kernel", lambda: nn.Sequential(nn.Conv1d(3, 5, 2, stride=5, dilation=3, padding=7)), (5, 3, 40)),
    ("padding_gt_length", lambda: nn.Sequential(nn.Conv1d(3, 5, 3, padding=20), nn.Tanh()), (5, 3, 4)),
    ("maxpool_negative_padded", lambda: nn.Sequential(nn.MaxPool1d(3, 2, 1)), (3, 2, 11)),
    ("avgpool_exclude_pad", lambda: nn.Sequential(nn.AvgPool1d(3, 2, 1, count_include_pad=False)), (3, 2, 11)),
    ("many_samples", lambda: nn.Sequential(nn.Linear(3, 200), nn.ReLU(), nn.Linear(200, 1)), (100_003, 3)),
    ("one_pixel", lambda: nn.Sequential(nn.Conv2d(1, 1, 1)), (1, 1, 1, 1)),
    ("wide_pixels", lambda: nn.Sequential(nn.Conv2d(500, 97, 1), nn.GELU(), nn.Conv2d(97, 3, 1)), (1, 500, 17, 3)),
    ("self_add_cat_input", _SelfAdd, (9, 4)),
]


@pytest.mark.parametrize("name,make,shape", EDGES, ids=[e[0] for e in EDGES])
def test_edge_architectures(tmp_path, name, make, shape):
    torch.manual_seed(SEED)
    net = make().eval()
    x = np.random.default_rng(SEED).normal(size=shape).astype(np.float32)
    if name == "maxpool_negative_padded":
        x = -5 - np.abs(x)  # padding must act as -inf, not 0
    model = _export_load(net, torch.from_numpy(x), tmp_path)
    _check(model(x), _torch(net, x), name)


def test_parameter_count_is_what_the_file_stores(tmp_path):
    """info()["parameters"] = torch's count: a bias-free layer has no bias parameters and a
    layer applied twice (shared weights) is counted once."""

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv1d(2, 3, 3, bias=False)
            self.shared = nn.Conv1d(3, 3, 1)

        def forward(self, x):
            return self.shared(self.shared(self.conv(x)))

    net = Net().eval()
    model = _export_load(net, torch.zeros(1, 2, 8), tmp_path)
    assert model.info()["parameters"] == sum(p.numel() for p in net.parameters()) == 2 * 3 * 3 + 3 * 3 + 3


@pytest.mark.parametrize(
    "layer,shape",
    [
        (torch.nn.Conv1d(3, 5, 3, padding=1), (4, 3, 10)),
        (torch.nn.Linear(7, 2), (4, 7)),
        (torch.nn.Conv2d(6, 4, 1), (2, 6, 3, 5)),
    ],
)
def test_single_layer_root_module(layer, shape, tmp_path):
    """A bare built-in layer (not wrapped in a container) exports and matches torch."""
    torch.manual_seed(SEED)
    x = np.random.default_rng(SEED).standard_normal(shape).astype(np.float32)
    model = _export_load(layer.eval(), torch.from_numpy(x), tmp_path)
    _check(model(x), _torch(layer, x), type(layer).__name__)


def test_unreadable_paths_raise_oserror(tmp_path):
    with pytest.raises(OSError, match="not a regular file"):
        fastinv.load(tmp_path)
    with pytest.raises(OSError, match="no such file"):
        fastinv.load(tmp_path / "missing.safetensors")
