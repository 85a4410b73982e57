"""Build the C++ library without Python and run its GoogleTest programs through ctest under
AddressSanitizer + UndefinedBehaviorSanitizer (the engine checks itself against a naive
double-precision reference)."""

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


ENV = dict(os.environ, ASAN_OPTIONS="detect_leaks=1:abort_on_error=1", UBSAN_OPTIONS="print_stacktrace=1")


@pytest.fixture(scope="module")
def asan_build(tmp_path_factory):
    """The C++ library, its test program and the embedding example, built with
    -fsanitize=address,undefined and without Python or CUDA."""
    if shutil.which("cmake") is None:
        pytest.skip("needs cmake")
    build = tmp_path_factory.mktemp("build-asan")
    subprocess.run(
        [
            "cmake",
            "-S",
            str(ROOT),
            "-B",
            str(build),
            "-DFASTINV_BUILD_TESTS=ON",
            "-DFASTINV_SANITIZE=ON",
            "-DFASTINV_CUDA=OFF",
            "-DCMAKE_BUILD_TYPE=RelWithDebInfo",
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    subprocess.run(
        ["cmake", "--build", str(build), "-j", str(os.cpu_count() or 2)], check=True, capture_output=True, text=True
    )
    return build / "cpp" / "tests"


def _require_gtest(build: Path) -> None:
    if not (build / "test_engine").exists():
        pytest.skip("GoogleTest not found at configure time: apt-get install libgtest-dev (.ci/run installs it)")


@pytest.mark.slow
def test_cpp_programs_under_ctest_with_asan_ubsan(asan_build):
    """Every registered C++ test program (GoogleTest, under ASan + UBSan) through ctest: the
    engine against a naive double-precision reference and corrupted files (test_engine),
    internal helpers such as ParallelErrors rethrowing an exception from an OpenMP region
    (test_internals), the CUDA backend's host code on a CPU mock with the shipped DeepEM
    (test_cuda_backend), and the Milne-Eddington inversion's derivatives, statuses and thread
    determinism (test_me_inversion)."""
    _require_gtest(asan_build)
    out = subprocess.run(
        ["ctest", "--output-on-failure", "--timeout", "600"],
        cwd=asan_build,
        capture_output=True,
        text=True,
        env=ENV,
    )
    print(out.stdout, out.stderr)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "100% tests passed" in out.stdout
    for name in ("test_engine", "test_internals", "test_cuda_backend", "test_me_inversion"):
        assert name in out.stdout, f"{name} is not registered with ctest"


@pytest.mark.slow
def test_c_api_argument_checks_under_asan_ubsan(asan_build):
    """cpp/tests/test_capi.c: NULL pointers, bad sizes/enums/shapes give a status and a message,
    negative strides give the reversed results, and a bounded fuzz of the view fields only
    ever returns a status (see the program's comment)."""
    env = dict(ENV, FASTINV_DATA_DIR=str(ROOT / "python" / "fastinv" / "data"))
    out = subprocess.run([str(asan_build / "test_capi")], capture_output=True, text=True, env=env)
    print(out.stdout, out.stderr)
    assert out.returncode == 0, out.stdout + out.stderr
    assert ", 0 failed" in out.stdout


def _small_cnn(torch):
    nn = torch.nn
    return (
        nn.Sequential(nn.Conv1d(3, 8, 5, padding=2), nn.GELU(), nn.MaxPool1d(2), nn.Flatten(), nn.Linear(8 * 10, 4)),
        (3, 20),
        37,
    )


def _engine_paths(torch):
    """Winograd k = 3 and 5 (one followed by an activation the epilogue cannot apply),
    a max-pool folded into its conv with padding, and a 2.6 MB dense head that runs grouped
    over 8-tile groups (333 samples: a partial group and a partial tile)."""
    nn = torch.nn
    return (
        nn.Sequential(
            nn.Conv1d(4, 20, 3, padding=1),
            nn.ReLU(),
            nn.Conv1d(20, 24, 5, padding=2),
            nn.ELU(),
            nn.Conv1d(24, 17, 3, padding=1),
            nn.LeakyReLU(0.1),
            nn.MaxPool1d(3, 3, 1),
            nn.Flatten(),
            nn.Linear(17 * 11, 1500),
            nn.ReLU(),
            nn.Linear(1500, 250),
            nn.GELU(),
            nn.Linear(250, 7),
        ),
        (4, 31),
        333,
    )


@pytest.mark.slow
@pytest.mark.parametrize("make", [_small_cnn, _engine_paths], ids=["small-cnn", "engine-paths"])
def test_cpp_embedding_example_matches_torch(asan_build, tmp_path, make):
    """The README's C++ example (cpp/examples/run_model.cpp) loads an exported model
    and reproduces PyTorch's output for the same input to 1e-5 relative, under ASan and
    UBSan, also through the engine's Winograd, pool-fold and grouped-tail paths."""
    torch = pytest.importorskip("torch")
    import fastinv

    torch.manual_seed(1)
    net, shape, n = make(torch)
    net = net.eval()
    path = tmp_path / "cnn.safetensors"
    fastinv.export(net, path, torch.zeros(2, *shape))
    out = subprocess.run([str(asan_build / "run_model"), str(path), str(n)], capture_output=True, text=True, env=ENV)
    assert out.returncode == 0, out.stderr
    got = np.array([float(v) for v in out.stdout.split("\n")[1:] if v])
    ref = net(torch.full((1, *shape), 0.5)).detach().numpy()[0]
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-5 * np.abs(ref).max())
    bad = subprocess.run(
        [str(asan_build / "run_model"), str(tmp_path / "missing.safetensors"), "1"],
        capture_output=True,
        text=True,
        env=ENV,
    )
    assert bad.returncode == 1 and "cannot open model file" in bad.stderr


@pytest.mark.slow
def test_cuda_backend_host_code_on_a_cpu_mock(asan_build, tmp_path):
    """The CUDA backend's host code (cuda/host/cuda_backend.cpp: plan upload, chunks over
    three lanes, staging, strided / float64 / planar zero-copy paths) run against a CPU
    mock of the CUDA runtime and kernels (cpp/tests/cuda_mock.cpp, NaN-poisoned "device"
    memory) and compared with the CPU backend, under ASan + UBSan. Hopper-sized and
    sm_86-sized shared memory (DeepEM fp32/tf32 then falls back to per-op kernels), and the
    fused kernel's pipeline variant (FASTINV_CUDA_KERNEL=pipeline: its tile, shared memory
    and emulated launch) at Hopper size."""
    _require_gtest(asan_build)
    torch = pytest.importorskip("torch")
    import fastinv
    from _netgen import base_seed, deepem, random_net

    seed = base_seed()
    print(f"FASTINV_TEST_SEED={seed}")
    paths = []
    for i, layout in enumerate(("nc", "ncl", "nchw") * 2):
        net, x = random_net(layout, seed + i)
        paths.append(str(fastinv.export(net, tmp_path / f"r{i}.safetensors", x)))
    torch.manual_seed(seed)
    paths.append(str(fastinv.export(deepem().eval(), tmp_path / "deepem.safetensors", torch.randn(1, 6, 2, 2))))
    for smem, kernel in (("232448", "mma"), ("101376", "mma"), ("232448", "pipeline")):
        # FASTINV_CUDA_FUSED_GRID=2: each block of the fused launch loops over several tiles
        env = dict(ENV, FASTINV_CUDA_CHUNK="64", FASTINV_CUDA_FUSED_GRID="2", FASTINV_MOCK_SMEM=smem)
        env["FASTINV_CUDA_KERNEL"] = kernel
        out = subprocess.run([str(asan_build / "test_cuda_backend"), *paths], capture_output=True, text=True, env=env)
        print(out.stdout, out.stderr)
        assert out.returncode == 0, out.stdout + out.stderr
        assert "[  PASSED  ] 1 test" in out.stdout
