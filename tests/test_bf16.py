"""The CPU engine's bf16 precision (AVX512-BF16) against an independent float64 NumPy
emulation of the same arithmetic, and against PyTorch float32.

The emulation (tests/_graph_reference.py, written from docs/model-format.md) rounds each
conv / linear layer's weights and its float32 input to bfloat16 with a NumPy
round-to-nearest-even and computes everything else in float64. For one layer the engine
must match it to 1e-5 of the output scale (only the float32 summation order differs).
Through several layers a float32-order difference can flip a later bf16 rounding (cost:
one bf16 unit, 2**-8, of that activation), so whole networks are compared with the
bound predicted for that in tests/_rounding.py. Against PyTorch float32 the bound is
bf16's rounding error (_rounding.rounding_vs_exact).

Random cases are fresh each run; the seed is printed and FASTINV_TEST_SEED reproduces it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("safetensors")
nn = torch.nn

import fastinv  # noqa: E402
from _bf16_kernels import check_each_kernel  # noqa: E402
from _graph_reference import read_model, run_graph  # noqa: E402
from _netgen import base_seed, deepem, describe, random_net  # noqa: E402
from _rounding import FACTOR, rounding_vs_exact, same_precision_difference, same_precision_max  # noqa: E402

warnings.filterwarnings("ignore", message=".*padding='same'.*")

SEED = base_seed()
print(f"test_bf16: FASTINV_TEST_SEED={SEED}")
DATA = Path(fastinv.__file__).parent / "data"
SHIPPED = ["deepem", "stokes_hinode", "stokes_visp"]
needs_bf16 = pytest.mark.skipif(not fastinv.info()["bf16"], reason="this CPU has no AVX512-BF16")


def bf16_round(v) -> np.ndarray:
    """float32 values rounded to bfloat16 (round to nearest, ties to even), as float64."""
    f = np.ascontiguousarray(v, dtype=np.float32)
    u = f.view(np.uint32).astype(np.uint64)
    r = (((u + 0x7FFF + ((u >> 16) & 1)) >> 16) << 16).astype(np.uint32)
    out = r.view(np.float32).astype(np.float64)
    return np.where(np.isnan(f), np.nan, out)


def emulate(path, x) -> np.ndarray:
    graph, tensors, _ = read_model(path)
    return run_graph(graph, tensors, x, operand=bf16_round)


def _layers(path) -> tuple[int, int]:
    """(conv / linear layers, longest reduction) of a model file."""
    graph, tensors, _ = read_model(path)
    ws = [tensors[nd["weight"]] for nd in graph["nodes"] if nd["op"] in ("conv1d", "linear")]
    return len(ws), max((w.size // w.shape[0] for w in ws), default=0)


def _check_network(got, path, x, ref, what: str, random: bool = False) -> None:
    """Against the emulation: float32-order differences and the bf16 roundings they flip
    (tests/_rounding.py). Against float32 PyTorch: bf16's rounding error -- as predicted
    for a trained network (_rounding.rounding_vs_exact), and, for a random network, as large
    as the emulation's own error against float32 (factor FACTOR either way), because the
    prediction assumes outputs of the size of their summands: a random net whose few
    outputs cancel has a larger relative rounding error in any bf16 arithmetic (seed 1006:
    2.2e-2 against a 1.8e-2 bound, the emulation's error the same to 1e-7). Random nets
    are held to the emulation's max bound only (the L2 prediction averages over many
    flips; a few-output net failed it once). The emulation's meaning of each network is
    checked against PyTorch by tests/test_export.py."""
    layers, kmax = _layers(path)
    emu = emulate(path, x)
    if layers == 0:  # nothing is rounded: float32 against float64
        assert _max_rel(got, emu) <= 1e-5, what
        return
    l2, mx = _rel_l2(got, emu), _max_rel(got, emu)
    if not random:
        bound = FACTOR * same_precision_difference("bf16", layers, kmax)
        assert l2 <= bound, f"{what}: rel L2 vs emulation {l2:.2e}"
    assert mx <= same_precision_max("bf16", layers, kmax), f"{what}: max rel vs emulation {mx:.2e}"
    l2 = _rel_l2(got, ref)
    if random:
        own, floor = _rel_l2(emu, ref), FACTOR * same_precision_difference("bf16", layers, kmax)
        assert own / FACTOR - floor <= l2 <= FACTOR * own + floor, (
            f"{what}: rel L2 vs float32 {l2:.2e}, the emulation's {own:.2e}"
        )
    else:
        assert l2 <= FACTOR * rounding_vs_exact("bf16", layers), f"{what}: rel L2 vs float32 {l2:.2e}"


def _max_rel(got, ref) -> float:
    return float(np.abs(got.astype(np.float64) - ref).max() / np.abs(ref).max())


def _rel_l2(got, ref) -> float:
    return float(np.linalg.norm((got.astype(np.float64) - ref).ravel()) / np.linalg.norm(ref.ravel()))


def test_bf16_round_is_nearest_even():
    # 1 + 2**-8 is halfway between bf16 1 and 1 + 2**-7: ties go to the even mantissa (1)
    x = np.array([1 + 2**-8, 1 + 3 * 2**-8, 1 + 2**-8 + 2**-20, -2.5, np.inf], dtype=np.float32)
    assert bf16_round(x).tolist() == [1.0, 1 + 2**-6, 1 + 2**-7, -2.5, np.inf]


def test_info_lists_bf16():
    assert isinstance(fastinv.info()["bf16"], bool)


@needs_bf16
@pytest.mark.parametrize("case", range(6))
def test_single_layer_matches_emulation(case, tmp_path):
    """One layer: the engine computes exactly bf16-rounded operands summed in float32."""
    rng = np.random.default_rng([SEED, case])
    cin = int(rng.integers(1, 40))
    cout = int(rng.integers(1, 70))
    if case % 2 == 0:
        net = nn.Linear(cin, cout)
        x = torch.randn(int(rng.integers(1, 60)), cin, generator=torch.Generator().manual_seed(case))
    else:
        k = int(rng.choice([1, 3, 5, 7]))
        net = nn.Conv1d(cin, cout, k, padding=int(rng.integers(0, k)), stride=int(rng.integers(1, 3)))
        x = torch.randn(int(rng.integers(1, 40)), cin, int(rng.integers(k + 2, 40)))
    path = fastinv.export(net.eval(), tmp_path / "m.safetensors", x)
    got = fastinv.load(path, precision="bf16")(x.numpy())
    err = _max_rel(got, emulate(path, x.numpy()))
    assert err <= 1e-5, f"seed {SEED} case {case}: {describe(net)} max rel {err:.2e}"


@needs_bf16
@pytest.mark.parametrize("layout", ["nc", "ncl", "nchw"])
@pytest.mark.parametrize("case", range(4))
def test_random_nets(layout, case, tmp_path):
    net, x = random_net(layout, SEED + 1000 * case)
    path = fastinv.export(net, tmp_path / "m.safetensors", x)
    model = fastinv.load(path, precision="bf16")
    got = model(x.numpy())
    with torch.no_grad():
        ref = net(x).numpy().astype(np.float64)
    what = f"seed {SEED + 1000 * case} ({layout}): {describe(net)}"
    _check_network(got, path, x.numpy(), ref, what, random=True)


@needs_bf16
@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_models(name):
    path = DATA / f"{name}.safetensors"
    model = fastinv.load(path, precision="bf16")
    fp32 = fastinv.load(path)
    rng = np.random.default_rng(SEED)
    shape = (256, *model.input_shape) if model.layout != "nchw" else (1, 6, 16, 16)
    x = rng.standard_normal(shape).astype(np.float32)
    if name == "deepem":
        x = np.abs(x) * 3  # DeepEM's inputs are sqrt(DN/s): positive
    _check_network(model(x), path, x, fp32(x).astype(np.float64), name)


@needs_bf16
def test_deepem_emulation_max_error(tmp_path):
    """DeepEM layer by layer: each prefix of the network against the emulation of its last
    layer fed the engine's own bf16 output of the prefix before it (no flips possible)."""
    torch.manual_seed(SEED % 2**31)
    net = deepem().eval()
    x = torch.rand(2, 6, 16, 16) * 30
    prev = x.numpy()
    for depth in (1, 3, 5):
        sub = nn.Sequential(*list(net)[:depth])
        path = fastinv.export(sub, tmp_path / f"d{depth}.safetensors", x)
        got = fastinv.load(path, precision="bf16")(x.numpy())
        layer = nn.Sequential(*list(net)[depth - 1 : depth] if depth == 1 else list(net)[depth - 2 : depth])
        lpath = fastinv.export(layer, tmp_path / f"l{depth}.safetensors", torch.from_numpy(prev))
        err = _max_rel(got, emulate(lpath, prev))
        assert err <= 1e-5, f"DeepEM layers 1..{depth}: max rel {err:.2e}"
        prev = got


@needs_bf16
def test_bitwise_identical_for_any_thread_count():
    model = fastinv.load(DATA / "stokes_visp.safetensors", precision="bf16")
    x = np.random.default_rng(SEED).standard_normal((1000, *model.input_shape)).astype(np.float32)
    outs = [model(x, threads=t) for t in (1, 2, 3)]
    assert all(np.array_equal(outs[0], o) for o in outs[1:])
    dem = fastinv.load(DATA / "deepem.safetensors", precision="bf16")
    y = np.abs(np.random.default_rng(SEED).standard_normal((1, 6, 37, 41))).astype(np.float32)
    assert np.array_equal(dem(y, threads=1), dem(y, threads=3))


@needs_bf16
def test_tile_state_changed_by_other_code_in_between():
    """The AMX kernel skips reloading its tile configuration only while the tile registers
    still hold it: PyTorch's bf16 autocast (oneDNN, AMX where the CPU has it) and the bf16
    peak loop reconfigure the tiles of threads fastinv shares with them. Same bits after
    either as before (the ViSP network's first layer has a short last chunk: its own shape)."""
    model = fastinv.load(DATA / "stokes_visp.safetensors", precision="bf16")
    x = np.random.default_rng(SEED).standard_normal((500, *model.input_shape)).astype(np.float32)
    before = model(x, threads=2)
    conv = nn.Conv1d(64, 64, 5)
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        conv(torch.randn(64, 64, 200))
    after_torch = model(x, threads=2)
    fastinv._core.measure_bf16_peak(2, 0.01)
    after_peak = model(x, threads=2)
    assert np.array_equal(before, after_torch) and np.array_equal(before, after_peak)


@needs_bf16
@pytest.mark.parametrize("kernels", ["avx512", "amx"])
def test_each_bf16_kernel_matches_emulation(kernels, tmp_path):
    """Both bf16 kernels (FASTINV_BF16_KERNELS picks one; the default is AMX where usable):
    a 1D CNN with padding, stride, pool and a dense head, and DeepEM's layers, against the
    emulation -- single layers to 1e-5 of their scale. Row counts 18 to 300 run the AMX
    kernel's groups of 1 to 4 row blocks (16 rows each), with and without a short last chunk."""
    check_each_kernel(kernels, "bf16", "test_bf16:emulate", tmp_path)


@needs_bf16
def test_lowered_isa_is_an_error():
    """FASTINV_ISA=avx2 (a CPU without AVX-512): bf16 is refused, naming the feature."""
    code = (
        "import fastinv\n"
        "assert fastinv.info()['isa'] == 'avx2'\n"
        "try:\n"
        f"    fastinv.load({str(DATA / 'deepem.safetensors')!r}, precision='bf16')\n"
        "except RuntimeError as e:\n"
        "    print('ERR', e)\n"
    )
    env = dict(os.environ, FASTINV_ISA="avx2")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert out.startswith("ERR") and "AVX512-BF16" in out and "avx2" in out, out


@needs_bf16
def test_isa_lowered_after_load_is_an_error():
    model = fastinv.load(DATA / "deepem.safetensors", precision="bf16")
    x = np.ones((1, 6, 2, 2), np.float32)
    before = fastinv.info()["isa"]
    fastinv._core.set_active_isa("avx2")
    try:
        with pytest.raises(RuntimeError, match="AVX512-BF16"):
            model(x)
    finally:
        fastinv._core.set_active_isa(before)
    assert model.info()["isa"] in ("amx_bf16", "avx512_bf16")


def test_tf32_is_refused_on_cpu():
    with pytest.raises(ValueError, match="tf32"):
        fastinv.load(DATA / "deepem.safetensors", precision="tf32")


@needs_bf16
def test_deepem_invert_uses_the_bf16_network():
    """DeepEM.load(precision="bf16"): the fused loop runs the bf16 network (its EM is
    1e25 y**2 of the bf16 model's y, as the NumPy formulation computes it), survives
    pickling (dask workers) with its precision, and differs from fp32 by bf16's error."""
    import pickle

    from fastinv.dem import DeepEM

    dem = DeepEM.load("deepem18", precision="bf16")  # the model compared with below
    assert dem.model.info()["isa"].endswith("bf16")
    y = np.abs(np.random.default_rng(SEED).standard_normal((6, 23, 29))).astype(np.float32) * 300
    res = dem.invert(y)
    x = np.sqrt(np.maximum(y, 0))[None]
    out = fastinv.load(DATA / "deepem.safetensors", precision="bf16")(x)[0]
    em = np.square(out) * np.float32(1e25)
    np.testing.assert_array_equal(res.em, em)
    again = pickle.loads(pickle.dumps(dem))
    assert again.model.precision == "bf16"
    fp32 = DeepEM.load("deepem18").invert(y)
    ok = np.isfinite(fp32.em) & np.isfinite(res.em)  # (overflowing pixels are NaN by design)
    assert ok.mean() > 0.5
    a, b = res.em[ok].astype(np.float64), fp32.em[ok].astype(np.float64)  # (1e29 squared overflows float32)
    rel = np.linalg.norm(a - b) / np.linalg.norm(b)
    assert 0 < rel <= 2 * FACTOR * rounding_vs_exact("bf16", 3), rel  # EM = y**2: twice y's error
