"""precision="bf16x2" on the CPU: the bf16 kernels with each weight as two bf16 terms
(hi = bf16(w), lo = bf16(w - hi)) and each layer input as one, products summed in float32.

Against an independent float64 NumPy emulation of exactly that arithmetic (weights hi + lo,
inputs rounded to bf16 with NumPy's round-to-nearest-even): one layer to 1e-5 of the output
scale, as tests/test_bf16.py holds plain bf16, on both bf16 kernels (AMX tiles and
vdpbf16ps). Against PyTorch float32 the bound is the rounding of the layer inputs alone
(the weights carry 16 mantissa bits): bf16's unit roundoff u times sqrt(L / 3) for L layers
(tests/_rounding.py's model without the weight term), times its FACTOR.

Random cases are fresh each run; the seed is printed and FASTINV_TEST_SEED reproduces it.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
safetensors_numpy = pytest.importorskip("safetensors.numpy")
nn = torch.nn

import fastinv  # noqa: E402
from _bf16_kernels import check_each_kernel  # noqa: E402
from _graph_reference import read_model, run_graph  # noqa: E402
from _netgen import base_seed, describe  # noqa: E402
from _rounding import FACTOR, UNIT_ROUNDOFF, same_precision_max  # noqa: E402
from test_bf16 import bf16_round  # noqa: E402

SEED = base_seed()
print(f"test_bf16x2: FASTINV_TEST_SEED={SEED}")
DATA = Path(fastinv.__file__).parent / "data"
needs_bf16 = pytest.mark.skipif(not fastinv.info()["bf16"], reason="this CPU has no AVX512-BF16")


def two_terms(w) -> np.ndarray:
    """float32 weights as hi + lo, both bfloat16 (lo rounds the exact remainder w - hi)."""
    hi = bf16_round(w)
    return hi + bf16_round((np.asarray(w, np.float64) - hi).astype(np.float32))


def emulate_x2(path, x) -> np.ndarray:
    graph, tensors, _ = read_model(path)
    return run_graph(graph, tensors, x, operand=bf16_round, weight=two_terms)


def _max_rel(got, ref) -> float:
    return float(np.abs(got.astype(np.float64) - ref).max() / np.abs(ref).max())


def _rel_l2(got, ref) -> float:
    return float(np.linalg.norm((got.astype(np.float64) - ref).ravel()) / np.linalg.norm(ref.ravel()))


def test_two_terms_carry_16_bits():
    """The emulation's weights: hi + lo within 2**-16 of w (bf16 alone: 2**-8)."""
    w = np.random.default_rng(SEED).standard_normal(10000).astype(np.float32) * 10.0 ** np.arange(-3, 2).repeat(2000)
    err = np.abs(two_terms(w) - w) / np.abs(w)
    assert err.max() <= 2.0**-16 and np.abs(bf16_round(w) - w).max() / np.abs(w).max() > 2.0**-10


@needs_bf16
@pytest.mark.parametrize("case", range(6))
def test_single_layer_matches_emulation(case, tmp_path):
    rng = np.random.default_rng([SEED, case])
    cin, cout = int(rng.integers(1, 40)), int(rng.integers(1, 70))
    if case % 2 == 0:
        net = nn.Linear(cin, cout)
        x = torch.randn(int(rng.integers(1, 60)), cin, generator=torch.Generator().manual_seed(case))
    else:
        k = int(rng.choice([1, 3, 5, 7]))
        net = nn.Conv1d(cin, cout, k, padding=int(rng.integers(0, k)), stride=int(rng.integers(1, 3)))
        x = torch.randn(int(rng.integers(1, 40)), cin, int(rng.integers(k + 2, 40)))
    path = fastinv.export(net.eval(), tmp_path / "m.safetensors", x)
    got = fastinv.load(path, precision="bf16x2")(x.numpy())
    err = _max_rel(got, emulate_x2(path, x.numpy()))
    assert err <= 1e-5, f"seed {SEED} case {case}: {describe(net)} max rel {err:.2e}"
    plain = _max_rel(got, run_graph(*read_model(path)[:2], x.numpy(), operand=bf16_round))
    assert plain > 2e-5, "bf16x2 computed what plain bf16 does"  # (lo terms are <= 2**-9 of hi)


@needs_bf16
@pytest.mark.parametrize("kernels", ["avx512", "amx"])
def test_each_bf16_kernel_matches_emulation(kernels, tmp_path):
    """Both bf16 kernels in the two-term mode, single layers to 1e-5 of their scale: row
    counts 18 to 300 (the AMX kernel's groups of 1 to 4 row blocks), reductions with and
    without a short last chunk, padded and strided windows (gathered pair rows)."""
    check_each_kernel(kernels, "bf16x2", "test_bf16x2:emulate_x2", tmp_path)


def _shipped_deepem_torch() -> nn.Module:
    """The shipped DeepEM rebuilt in PyTorch float32 from its file's tensors."""
    w = safetensors_numpy.load_file(str(DATA / "deepem.safetensors"))
    layers = [torch.from_numpy(w[f"{k}.weight"].reshape(w[f"{k}.weight"].shape[0], -1)) for k in (0, 2, 4)]
    net = nn.Sequential(
        nn.Linear(6, 300), nn.LeakyReLU(0.01), nn.Linear(300, 300), nn.LeakyReLU(0.01), nn.Linear(300, len(w["4.bias"]))
    )
    with torch.no_grad():
        for lin, k, weight in zip((net[0], net[2], net[4]), (0, 2, 4), layers):
            lin.weight.copy_(weight)
            lin.bias.copy_(torch.from_numpy(w[f"{k}.bias"]))
    return net.eval()


@needs_bf16
def test_deepem_against_emulation_and_pytorch():
    """The shipped DeepEM: against the emulation within one flipped bf16 rounding of a
    hidden activation (tests/_rounding.py); against PyTorch float32 within the input
    rounding's bound, and closer to it than plain bf16 (whose weights are rounded too)."""
    path = DATA / "deepem.safetensors"
    x = (np.abs(np.random.default_rng(SEED).standard_normal((4, 6, 24, 24))) * 3).astype(np.float32)
    got = fastinv.load(path, precision="bf16x2")(x)
    assert _max_rel(got, emulate_x2(path, x)) <= same_precision_max("bf16", 3, 300)
    pixels = torch.from_numpy(x.transpose(0, 2, 3, 1).reshape(-1, 6))
    with torch.no_grad():
        ref = _shipped_deepem_torch()(pixels).numpy().astype(np.float64)
    ref = ref.reshape(4, 24, 24, -1).transpose(0, 3, 1, 2)
    l2 = _rel_l2(got, ref)
    assert l2 <= FACTOR * UNIT_ROUNDOFF["bf16"] * math.sqrt(3 / 3), f"seed {SEED}: rel L2 vs PyTorch {l2:.2e}"
    plain = _rel_l2(fastinv.load(path, precision="bf16")(x), ref)
    assert l2 < plain, (l2, plain)


@needs_bf16
def test_bitwise_identical_for_any_thread_count():
    dem = fastinv.load(DATA / "deepem.safetensors", precision="bf16x2")
    y = np.abs(np.random.default_rng(SEED).standard_normal((1, 6, 37, 41))).astype(np.float32)
    outs = [dem(y, threads=t) for t in (1, 2, 3)]
    assert all(np.array_equal(outs[0], o) for o in outs[1:])
    visp = fastinv.load(DATA / "stokes_visp.safetensors", precision="bf16x2")
    x = np.random.default_rng(SEED).standard_normal((700, *visp.input_shape)).astype(np.float32)
    assert np.array_equal(visp(x, threads=1), visp(x, threads=3))


@needs_bf16
@pytest.mark.parametrize("precision", ["bf16", "bf16x2"])
def test_tile_pairs_bitwise_as_single_tiles(precision):
    """The AMX kernel runs consecutive 16-sample tiles in pairs through each weight tile
    (GemmBf16Args::in2; the other kernel one after the other): every tile's outputs are
    bitwise those it gets alone, including the odd last tile of 48 samples."""
    rng = np.random.default_rng(SEED)
    for name, x in (
        ("deepem.safetensors", np.abs(rng.standard_normal((1, 6, 3, 16))).astype(np.float32)),
        ("stokes_visp.safetensors", rng.standard_normal((48, 4, 173)).astype(np.float32)),
    ):
        model = fastinv.load(DATA / name, precision=precision)
        whole = model(x, threads=1)
        if name.startswith("deepem"):  # one image row of 16 pixels is one tile
            alone = np.concatenate([model(x[:, :, i : i + 1], threads=1) for i in range(3)], axis=2)
        else:
            alone = np.concatenate([model(x[i : i + 16], threads=1) for i in range(0, 48, 16)])
        assert np.array_equal(whole, alone), name


@needs_bf16
def test_without_avx512_bf16_is_an_error():
    """A CPU without AVX-512 (FASTINV_ISA=avx2 lowers the kernels as such a CPU would):
    RuntimeError naming the feature, never a silent float32 run."""
    code = (
        "import fastinv\n"
        "try:\n"
        f"    fastinv.load({str(DATA / 'deepem.safetensors')!r}, precision='bf16x2')\n"
        "except RuntimeError as e:\n"
        "    print('ERR', e)\n"
    )
    env = dict(os.environ, FASTINV_ISA="avx2")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert out.startswith("ERR") and "AVX512-BF16" in out and "bf16x2" in out, out


@needs_bf16
def test_executed_flops_count_both_terms():
    """ModelInfo's executed FLOPs (what fastinv bench's fractions of the peak use): every
    product twice, i.e. the layers' multiply-adds counted from the file once more."""
    graph, tensors, _ = read_model(DATA / "deepem.safetensors")
    products = sum(2 * tensors[nd["weight"]].size for nd in graph["nodes"] if nd["op"] in ("conv1d", "linear"))
    info = fastinv.load(DATA / "deepem.safetensors", precision="bf16x2").info()
    assert info["executed_flops_per_sample"] - info["flops_per_sample"] == products


def test_bf16x2_is_cpu_only():
    with pytest.raises(ValueError, match="bf16x2.*cpu"):
        fastinv.load(DATA / "deepem.safetensors", device="cuda", precision="bf16x2")


def test_unknown_precision_names_every_word():
    with pytest.raises(ValueError, match="unknown precision 'bf16x3'.*'fp32'.*'tf32'.*'bf16'.*'bf16x2'"):
        fastinv.load(DATA / "deepem.safetensors", precision="bf16x3")


@needs_bf16
def test_deepem_invert_runs_bf16x2():
    """DeepEM.load(precision="bf16x2"): the fused loop runs the two-term network (EM =
    1e25 y**2 of its output) and survives pickling with its precision."""
    import pickle

    from fastinv.dem import DeepEM

    dem = DeepEM.load("deepem18", precision="bf16x2")  # the file compared with below
    y = np.abs(np.random.default_rng(SEED).standard_normal((6, 19, 23))).astype(np.float32) * 300
    res = dem.invert(y)
    out = fastinv.load(DATA / "deepem.safetensors", precision="bf16x2")(np.sqrt(np.maximum(y, 0))[None])[0]
    np.testing.assert_array_equal(res.em, np.square(out) * np.float32(1e25))
    assert pickle.loads(pickle.dumps(dem)).model.precision == "bf16x2"
