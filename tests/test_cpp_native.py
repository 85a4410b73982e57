"""Build the C++ library without Python and run its test program under
AddressSanitizer + UndefinedBehaviorSanitizer (the program checks itself against a
naive double-precision reference and prints 'N passed, N failed')."""
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
        ["cmake", "-S", str(ROOT), "-B", str(build), "-DFASTINV_BUILD_TESTS=ON", "-DFASTINV_SANITIZE=ON",
         "-DFASTINV_CUDA=OFF", "-DCMAKE_BUILD_TYPE=RelWithDebInfo"],
        check=True, capture_output=True, text=True)
    subprocess.run(["cmake", "--build", str(build), "-j", str(os.cpu_count() or 2)],
                   check=True, capture_output=True, text=True)
    return build / "cpp" / "tests"


@pytest.mark.slow
def test_cpp_engine_under_asan_ubsan(asan_build):
    out = subprocess.run([str(asan_build / "test_engine")], capture_output=True, text=True, env=ENV)
    print(out.stdout, out.stderr)
    assert out.returncode == 0, out.stdout + out.stderr
    assert ", 0 failed" in out.stdout


@pytest.mark.slow
def test_cpp_embedding_example_matches_torch(asan_build, tmp_path):
    """The README's C++ example (cpp/examples/run_model.cpp) loads an exported model
    and reproduces PyTorch's output for the same input to 1e-5 relative."""
    torch = pytest.importorskip("torch")
    import fastinv

    torch.manual_seed(1)
    net = torch.nn.Sequential(torch.nn.Conv1d(3, 8, 5, padding=2), torch.nn.GELU(), torch.nn.MaxPool1d(2),
                              torch.nn.Flatten(), torch.nn.Linear(8 * 10, 4)).eval()
    path = tmp_path / "cnn.safetensors"
    fastinv.export(net, path, torch.zeros(2, 3, 20))
    out = subprocess.run([str(asan_build / "run_model"), str(path), "37"], capture_output=True, text=True, env=ENV)
    assert out.returncode == 0, out.stderr
    got = np.array([float(v) for v in out.stdout.split("\n")[1:] if v])
    ref = net(torch.full((1, 3, 20), 0.5)).detach().numpy()[0]
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-5 * np.abs(ref).max())
    bad = subprocess.run([str(asan_build / "run_model"), str(tmp_path / "missing.safetensors"), "1"],
                         capture_output=True, text=True, env=ENV)
    assert bad.returncode == 1 and "cannot open model file" in bad.stderr


@pytest.mark.slow
def test_cuda_backend_host_code_on_a_cpu_mock(asan_build, tmp_path):
    """The CUDA backend's host code (cpp/src/cuda_backend.cpp: plan upload, chunks over
    three lanes, staging, strided / float64 / planar zero-copy paths) run against a CPU
    mock of the CUDA runtime and kernels (cpp/tests/cuda_mock.cpp, NaN-poisoned "device"
    memory) and compared with the CPU backend, under ASan + UBSan. Hopper-sized and
    sm_86-sized shared memory (DeepEM fp32/tf32 then falls back to per-op kernels)."""
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
    for smem in ("232448", "101376"):
        env = dict(ENV, FASTINV_CUDA_CHUNK="64", FASTINV_MOCK_SMEM=smem)
        out = subprocess.run([str(asan_build / "test_cuda_backend"), *paths], capture_output=True, text=True, env=env)
        print(out.stdout, out.stderr)
        assert out.returncode == 0, out.stdout + out.stderr
        assert ", 0 failed" in out.stdout
