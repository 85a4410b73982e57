"""Fixtures of the embedding tests: fastinv configured, built and installed into a temporary
prefix like an embedder would (CPU only), and the inputs the examples share with the Python API."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"


def run(cmd: list[str], cwd: Path | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run a command; on failure, fail the test with its output."""
    out = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True)
    if out.returncode != 0:
        pytest.fail(f"{' '.join(map(str, cmd))} exited with {out.returncode}:\n{out.stdout}\n{out.stderr}")
    return out


def clean_env(**extra: str) -> dict:
    """The environment without FASTINV_DATA_DIR (the installed library must find its data)."""
    env = {k: v for k, v in os.environ.items() if k != "FASTINV_DATA_DIR"}
    env.update(extra)
    return env


def require_tools(*tools: str) -> None:
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        pytest.skip(f"needs {', '.join(missing)} on PATH")


@pytest.fixture(scope="session")
def prefix(tmp_path_factory) -> Path:
    """`cmake -DFASTINV_CUDA=OFF && cmake --build && cmake --install --prefix P`: P."""
    require_tools("cmake", "cc", "c++")
    build = tmp_path_factory.mktemp("build-install")
    prefix = tmp_path_factory.mktemp("prefix")
    gen = ["-G", "Ninja"] if shutil.which("ninja") else []
    run(["cmake", "-S", ROOT, "-B", build, *gen, "-DFASTINV_CUDA=OFF", "-DCMAKE_BUILD_TYPE=Release"])
    run(["cmake", "--build", build, "-j", str(os.cpu_count() or 2)])
    run(["cmake", "--install", build, "--prefix", prefix])
    return prefix


@pytest.fixture(scope="session")
def aia_image(tmp_path_factory) -> tuple[Path, np.ndarray]:
    """The bundled AIA flare cut-out as raw float64 (6, npix) DN/s, and the array."""
    from fastinv import datasets
    from fastinv.dem.io import read_aia

    y = np.ascontiguousarray(read_aia(datasets.aia_flare_files()).data.reshape(6, -1), dtype=np.float64)
    y[2, 5] = np.nan  # one bad pixel: status 12 on both sides
    path = tmp_path_factory.mktemp("aia") / "image.f64"
    y.tofile(path)
    return path, y
