"""Fixtures of the embedding tests: fastinv configured, built and installed into a temporary
prefix like an embedder would (CPU only), and the inputs the examples share with the Python API."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from _embed import ROOT, require_tools, run


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
