"""``fastinv bench``: the run's figures and JSON, the peers it builds from a model file, and
its errors. Timings themselves are not checked (they belong to bench/); what is checked:
the PyTorch peer rebuilt from the file computes what the original torch module computes
(tolerance 1e-6 of the output scale, float32 reassociation), fastinv agrees with it in the
run (parity reported before timing, <= 1e-5 of the output scale), and the derived
figures follow from the timings and the FLOP count."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import fastinv  # noqa: E402
from fastinv.benchmarking import benchmark_input, resolve_model, torch_module  # noqa: E402
from fastinv.cli import main  # noqa: E402


def _mlp() -> torch.nn.Module:
    torch.manual_seed(3)
    return torch.nn.Sequential(
        torch.nn.Linear(5, 24),
        torch.nn.LeakyReLU(0.05),
        torch.nn.Linear(24, 24),
        torch.nn.Tanh(),
        torch.nn.Linear(24, 3),
    ).eval()


def _cnn() -> torch.nn.Module:
    """Every op of the format that a 1D CNN uses: 'same' padding with an even kernel
    (asymmetric), dilation, stride, both pools, BatchNorm (an affine node), concat, add."""
    torch.manual_seed(4)

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.a = torch.nn.Conv1d(3, 8, 4, padding="same")
            self.b = torch.nn.Conv1d(3, 8, 3, padding=2, dilation=2)
            self.bn = torch.nn.BatchNorm1d(16)
            self.c = torch.nn.Conv1d(16, 16, 3, stride=2, padding=1)
            self.pool = torch.nn.MaxPool1d(2)
            self.avg = torch.nn.AvgPool1d(3, stride=1, padding=1, count_include_pad=False)
            self.fc = torch.nn.Linear(16 * 5, 4)

        def forward(self, x):
            y = torch.cat([torch.relu(self.a(x)), torch.nn.functional.silu(self.b(x))], dim=1)
            y = self.bn(y)
            z = self.c(y)
            z = self.pool(z + torch.sigmoid(z))
            z = self.avg(z)
            return self.fc(z.flatten(1))

    net = Net().eval()
    with torch.no_grad():  # a BatchNorm with something to do
        net.bn.running_mean.uniform_(-0.5, 0.5)
        net.bn.running_var.uniform_(0.5, 2.0)
    return net


def _export(net, x, tmp_path, name="net.safetensors"):
    return fastinv.export(net, tmp_path / name, torch.from_numpy(x[:2]))


@pytest.mark.parametrize("make, shape", [(_mlp, [5]), (_cnn, [3, 20])], ids=["mlp", "cnn"])
def test_torch_peer_from_the_file_is_the_original_module(tmp_path, make, shape):
    net = make()
    x = benchmark_input(shape, "nc" if len(shape) == 1 else "ncl", 40)
    peer = torch_module(_export(net, x, tmp_path))
    with torch.no_grad():
        want = net(torch.from_numpy(x)).numpy()
        got = peer(torch.from_numpy(x)).numpy()
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-6 * np.abs(want).max())


def test_torch_peer_of_a_per_pixel_model_is_the_conv2d_network():
    x = benchmark_input([6], "nchw", 50)
    peer = torch_module(resolve_model("deepem"))
    with torch.no_grad():  # the shipped DeepEM's weights, put into an independent Conv2d stack
        tensors = peer.state_dict()
        weights = [tensors[peer.names[f"{i}.weight"]] for i in (0, 2, 4)]
        biases = [tensors[peer.names[f"{i}.bias"]] for i in (0, 2, 4)]
        net = torch.nn.Sequential(
            torch.nn.Conv2d(6, 300, 1),
            torch.nn.LeakyReLU(0.01),
            torch.nn.Conv2d(300, 300, 1),
            torch.nn.LeakyReLU(0.01),
            torch.nn.Conv2d(300, 18, 1),
        ).eval()
        for conv, w, b in zip(net[::2], weights, biases):
            conv.weight.copy_(w[:, :, None, None])
            conv.bias.copy_(b)
        want = net(torch.from_numpy(x)).numpy()
        got = peer(torch.from_numpy(x)).numpy()
    assert got.shape == (1, 18) + x.shape[2:]
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-6 * np.abs(want).max())


def _bench(args, capsys):
    rc = main(["bench", *args])
    out = capsys.readouterr()
    return rc, out.out, out.err


def _check_run(r, samples, peers):
    assert r["samples"] == samples
    assert {x["impl"] for x in r["results"]} == {"fastinv", *peers}
    assert r["peak"]["gflops"] > 0 and len(r["peak"]["measurements_gflops"]) == r["rounds"]
    for x in r["results"]:
        assert len(x["times_s"]) == r["rounds"]
        assert x["median_s"] == pytest.approx(float(np.median(x["times_s"])))
        assert x["samples_per_s"] == pytest.approx(samples / x["median_s"])
        assert x["gflops"] == pytest.approx(r["flops_per_sample"] * samples / x["median_s"] * 1e-9)
        flops = r["executed_flops_per_sample"] if x["impl"] == "fastinv" else r["flops_per_sample"]
        assert x["fraction_of_peak"] == pytest.approx(flops * samples / x["median_s"] * 1e-9 / r["peak"]["gflops"])
    fastinv_t = next(x["median_s"] for x in r["results"] if x["impl"] == "fastinv")
    for x in r["results"]:
        assert x["fastinv_speedup"] == pytest.approx(x["median_s"] / fastinv_t)
    for key in ("cpu", "cores", "threads", "isa", "fastinv", "python", "loadavg_1min"):
        assert key in r["machine"]


def test_bench_a_user_model_against_torch_and_onnxruntime(tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    net = _cnn()
    path = _export(net, benchmark_input([3, 20], "ncl", 4), tmp_path)
    out_json = tmp_path / "bench.json"
    rc, out, err = _bench(
        [str(path), "--samples", "48", "--threads", "1", "--rounds", "2", "--json", str(out_json)], capsys
    )
    assert rc == 0, err
    r = json.loads(out_json.read_text())
    _check_run(r, 48, ["torch", "onnxruntime"])
    for peer in ("torch", "onnxruntime"):
        assert r["parity"][peer]["samples"] == 48
        assert r["parity"][peer]["max_error_of_output_scale"] <= 1e-5
    assert "parity: torch vs fastinv" in out and "samples/s" in out and "GFLOP/s" in out
    assert "of peak" in out and "speed-up" in out
    # the parity figure is what an independent comparison finds: fastinv vs the original module
    x = benchmark_input([3, 20], "ncl", 48)[:48]
    with torch.no_grad():
        want = net(torch.from_numpy(x)).numpy().astype(np.float64)
    got = fastinv.load(path, threads=1)(x)
    assert np.max(np.abs(got - want)) == pytest.approx(r["parity"]["torch"]["max_abs_error"], rel=0.5, abs=1e-6)
    # --json refuses to replace an existing file without --overwrite
    rc, _, err = _bench([str(path), "--samples", "16", "--compare", "none", "--json", str(out_json)], capsys)
    assert rc == 1 and "exists" in err


def test_bench_a_shipped_model_by_name(tmp_path, capsys):
    out_json = tmp_path / "hinode.json"
    args = ["stokes_hinode", "--samples", "40", "--threads", "1", "--rounds", "1", "--compare", "torch"]
    rc, out, err = _bench([*args, "--json", str(out_json)], capsys)
    assert rc == 0, err
    r = json.loads(out_json.read_text())
    _check_run(r, 40, ["torch"])
    assert r["model"].endswith("stokes_hinode.safetensors") and r["batch_shape"] == [40, 4, 112]
    assert r["parity"]["torch"]["max_error_of_output_scale"] <= 1e-5
    assert "stokes_hinode.safetensors: 40 samples, 1 thread(s)" in out


def test_bf16_run_names_the_kernels_the_model_runs(capsys):
    """A bf16 model's report names its bf16 kernels (amx_bf16 / avx512_bf16, as the model's
    info() does), not the float32 ISA."""
    try:
        kernels = fastinv.load(resolve_model("deepem"), precision="bf16").info()["isa"]
    except RuntimeError:
        pytest.skip("no bf16 kernels on this machine")
    args = ["deepem", "--precision", "bf16", "--samples", "32", "--threads", "1", "--rounds", "1", "--compare", "none"]
    rc, out, err = _bench(args, capsys)
    assert rc == 0, err
    assert kernels.endswith("_bf16") and f"kernels {kernels}," in out and f", {kernels}, measured" in out, out


def test_per_pixel_shipped_model_samples_are_pixels(tmp_path, capsys):
    out_json = tmp_path / "deepem.json"
    rc, _, err = _bench(
        [
            "deepem",
            "--samples",
            "100",
            "--threads",
            "1",
            "--rounds",
            "1",
            "--compare",
            "torch",
            "--json",
            str(out_json),
        ],
        capsys,
    )
    assert rc == 0, err
    r = json.loads(out_json.read_text())
    assert r["batch_shape"] == [1, 6, 10, 10] and r["samples"] == 100
    assert r["parity"]["torch"]["max_error_of_output_scale"] <= 1e-5


def test_missing_peer_is_one_line_naming_the_extra(capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import fails as if not installed
    rc, out, err = _bench(["deepem", "--samples", "16", "--threads", "1", "--rounds", "1"], capsys)
    assert rc == 0, err
    line = next(s for s in out.splitlines() if s.startswith("skipped onnxruntime"))
    assert 'pip install "fastinv[bench]"' in line


def test_without_torch_both_peers_are_skipped_with_a_note(capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)
    rc, out, err = _bench(["stokes_hinode", "--samples", "16", "--threads", "1", "--rounds", "1"], capsys)
    assert rc == 0, err
    for peer in ("torch", "onnxruntime"):
        line = next(s for s in out.splitlines() if s.startswith(f"skipped {peer}"))
        assert 'pip install "fastinv[bench]"' in line
    assert "| fastinv |" in out and "| torch |" not in out


@pytest.mark.parametrize(
    "args, message",
    [
        (["no_such_model"], "no_such_model: no such model file, and not a shipped model (deepem"),
        (["--device", "cuda"], "device='cuda'"),
        (["--precision", "bf16"], "bf16"),
    ],
    ids=["bad-name", "cuda", "bf16"],
)
def test_errors_are_one_line(args, message, capsys):
    if args[0].startswith("--"):
        args = ["deepem", *args]
        device, precision = ("cuda", "fp32") if "cuda" in args else ("cpu", "bf16")
        try:
            fastinv.load(resolve_model("deepem"), device=device, precision=precision)
            pytest.skip(f"this machine runs device={device} precision={precision}")
        except (ValueError, RuntimeError):
            pass
    rc, _, err = _bench([*args, "--samples", "16", "--rounds", "1"], capsys)
    assert (
        rc == 1 and err.startswith("fastinv bench: error: ") and message in err and len(err.strip().splitlines()) == 1
    )


def test_a_file_that_is_not_a_model(tmp_path, capsys):
    bad = tmp_path / "notes.safetensors"
    bad.write_text("not a model")
    rc, _, err = _bench([str(bad), "--samples", "16"], capsys)
    assert rc == 1 and str(bad) in err


def test_unknown_peer_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["bench", "deepem", "--compare", "torch,tensorflow"])
    assert exc.value.code == 2 and "unknown peer(s) tensorflow" in capsys.readouterr().err


def test_help_explains(capsys):
    with pytest.raises(SystemExit):
        main(["bench", "--help"])
    out = capsys.readouterr().out
    for word in ("--samples", "--precision", "--compare", "peak", "compared", "ONNX Runtime"):
        assert word in out
