"""The examples built from the installed tree, the way their READMEs/Makefiles say, and their
numbers compared with the Python API's on the same input:

- examples/c (make + pkg-config) and examples/fortran (gfortran + pkg-config): DeepEM's total
  EM per pixel, bitwise equal to ``DeepEM.load().invert(y).total_em`` (the C API's NULL model
  is Python's default, deepem21);
- examples/cpp (CMake find_package, shared and static library): Basis Pursuit EM equal to
  ``BasisPursuit().solve(y, exptime=2.0).em`` to 1e-9 relative (the response interpolation's
  log10/pow are libm's in C++, NumPy's SIMD ones in Python: ~1e-12 apart), same statuses; the
  Stokes network's quantities bitwise equal to
  ``StokesNet.load(instrument="hinode").predict(profiles)`` except the azimuth (float32 atan2 of
  libm vs NumPy's: within 1e-3 deg).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from _embed import EXAMPLES, clean_env, require_tools, run
from fastinv.dem import BasisPursuit, DeepEM


@pytest.fixture(scope="module")
def deepem_total_em(aia_image) -> np.ndarray:
    _, y = aia_image
    return np.asarray(DeepEM.load().invert(y).total_em, dtype=np.float64)


def _make(example: str, prefix: Path, tmp_path: Path) -> Path:
    src = tmp_path / example
    shutil.copytree(EXAMPLES / example, src)
    run(["make", "-C", src], env=clean_env(PKG_CONFIG_PATH=str(prefix / "lib" / "pkgconfig")))
    return src / "deepem_total_em"


def _check_deepem(exe: Path, aia_image, expected: np.ndarray, tmp_path: Path) -> str:
    path, y = aia_image
    out = tmp_path / "total.f64"
    stdout = run([exe, path, y.shape[1], out], env=clean_env()).stdout
    got = np.fromfile(out, dtype=np.float64)
    np.testing.assert_array_equal(got, expected)
    assert f"{y.shape[1]} pixels, {y.shape[1] - 1} ok" in stdout, stdout
    return stdout


def test_c_example_with_pkg_config(prefix, tmp_path, aia_image, deepem_total_em):
    require_tools("make", "pkg-config", "cc")
    stdout = _check_deepem(_make("c", prefix, tmp_path), aia_image, deepem_total_em, tmp_path)
    assert f"total EM summed {deepem_total_em.sum():.6e}" in stdout


def test_fortran_example_with_pkg_config(prefix, tmp_path, aia_image, deepem_total_em):
    require_tools("make", "pkg-config", "gfortran")
    _check_deepem(_make("fortran", prefix, tmp_path), aia_image, deepem_total_em, tmp_path)


@pytest.fixture(scope="module", params=[False, True], ids=["shared", "static"])
def cpp_example(request, prefix, tmp_path_factory) -> tuple[Path, dict]:
    """examples/cpp configured with find_package(fastinv) against the prefix."""
    require_tools("cmake", "c++")
    build = tmp_path_factory.mktemp("cpp-example")
    static = "ON" if request.param else "OFF"
    run(
        [
            "cmake",
            "-S",
            EXAMPLES / "cpp",
            "-B",
            build,
            f"-DCMAKE_PREFIX_PATH={prefix}",
            f"-DFASTINV_EXAMPLE_STATIC={static}",
        ]
    )
    run(["cmake", "--build", build])
    # the static program is not in <prefix>/bin: it is told where the data is
    env = clean_env(FASTINV_DATA_DIR=str(prefix / "share" / "fastinv")) if request.param else clean_env()
    return build / "fastinv_cpp_example", env


def test_cpp_example_basis_pursuit(cpp_example, aia_image, tmp_path):
    exe, env = cpp_example
    _, y = aia_image
    npix = 300  # the first 300 pixels (incl. the bad one): a few seconds of LPs
    sub = np.ascontiguousarray(y[:, :npix])
    path, out = tmp_path / "sub.f64", tmp_path / "em.f64"
    sub.tofile(path)
    stdout = run([exe, "bp", path, npix, out], env=env).stdout
    bp = BasisPursuit()
    ref = bp.solve(sub, exptime=2.0)
    # the dictionary's responses differ by ~1e-12: NumPy's log10/power (SIMD versions on AVX-512
    # machines) vs libm's in the C++ interpolation
    np.testing.assert_allclose(np.fromfile(out).reshape(len(bp.logt), npix), ref.em, rtol=1e-9, atol=0)
    assert f"{npix} pixels, {int((ref.status == 0).sum())} ok" in stdout


def test_cpp_example_stokes(cpp_example, tmp_path):
    from fastinv.stokes import StokesNet

    exe, env = cpp_example
    net = StokesNet.load(instrument="hinode")
    nl = net.wavelength.size
    rng = np.random.default_rng(3)
    wl = net.wavelength.value
    line = 0.6 * np.exp(-(((wl - 6302.4936) / 0.05) ** 2)) + 0.4 * np.exp(-(((wl - 6301.5012) / 0.05) ** 2))
    prof = np.zeros((40, 4, nl))
    prof[:, 0] = 1.0 - rng.uniform(0.3, 1.0, (40, 1)) * line
    prof[:, 1:] = rng.normal(0, 0.01, (40, 3, nl)) + rng.uniform(-0.1, 0.1, (40, 3, 1)) * np.gradient(line)
    prof[7, 2, 9] = np.nan
    path, out = tmp_path / "prof.f64", tmp_path / "atm.f64"
    prof.tofile(path)
    run([exe, "stokes", path, 40, out], env=env)
    got = np.fromfile(out).reshape(len(net.quantities), 40, len(net.nodes))
    ref = net.predict(prof)
    for q, name in enumerate(net.quantities):
        if name == "azimuth":
            d = np.abs(got[q] - ref[name].value)
            d = np.minimum(d, 180.0 - d)  # 0 and 180 deg are one azimuth
            assert np.nanmax(d) < 1e-3
            np.testing.assert_array_equal(np.isnan(got[q]), np.isnan(ref[name].value))
        else:
            np.testing.assert_array_equal(got[q], ref[name].value, err_msg=name)
    assert np.isnan(got[:, 7]).all() and not np.isnan(got[:, 6]).any()
