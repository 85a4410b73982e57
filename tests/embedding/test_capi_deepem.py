"""The C API's DeepEM refinement, error bars and load options (API level 3):
examples/c/deepem_refine.c, compiled against the headers and libfastinv.so this Python package
carries, inverts the bundled flare cut-out with the AIA error model and writes every product;
each must equal ``fastinv.dem.DeepEM.load(...).invert(y, exptime=..., refine=..., errors=True)``
bitwise (the Python path is the reference). The NULL model is Python's default (deepem21), the
18-bin model is reachable by name, ``precision="bf16"`` and ``"bf16x2"`` match Python's models of
that precision bitwise, and either with the kernels lowered below AVX-512 (FASTINV_ISA=avx2)
gives FASTINV_UNSUPPORTED (7)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import fastinv
import numpy as np
import pytest
from _embed import EXAMPLES, clean_env, require_tools, run
from fastinv.dem import DeepEM
from fastinv.dem.deepem import DEFAULT_MODEL

EXPTIME = 2.0
# the package's own data (an editable install has no share/fastinv beside its library)
DATA = {"FASTINV_DATA_DIR": str(Path(fastinv.__file__).parent / "data")}


@pytest.fixture(scope="module")
def deepem_refine(tmp_path_factory):
    require_tools("cc")
    exe = tmp_path_factory.mktemp("deepem-capi") / "deepem_refine"
    lib = fastinv.get_library_dir()
    run(
        ["cc", "-O2", "-std=c99", "-Wall", "-Wextra", "-Werror", "-I", fastinv.get_include()]
        + ["-o", exe, EXAMPLES / "c" / "deepem_refine.c", "-L", lib, "-lfastinv", f"-Wl,-rpath,{lib}"]
    )
    return exe


def _products(outdir, n_bins: int, npix: int) -> dict:
    def read(name, dtype, rows=0):
        a = np.fromfile(outdir / name, dtype=dtype)
        return a.reshape(rows, npix) if rows else a

    return dict(
        em=read("em.f32", np.float32, n_bins),
        model=read("model.f32", np.float32, 6),
        status=read("status.i8", np.int8),
        chi2=read("chi2.f64", np.float64),
        objective=read("total_em.f32", np.float32),
        tolfac=read("tolfac.f64", np.float64),
        iterations=read("iterations.i32", np.int32),
        em_err=read("em_err.f32", np.float32, n_bins),
        logt_err=read("logt_err.f32", np.float32),
        total_em_err=read("total_em_err.f32", np.float32),
    )


def _c_run(exe, aia_image, tmp_path, model: str, refine: bool, precision: str = "fp32"):
    path, y = aia_image
    outdir = tmp_path / f"{model}-{int(refine)}-{precision}"
    outdir.mkdir()
    stdout = run([exe, model, precision, path, y.shape[1], EXPTIME, int(refine), outdir], env=clean_env(**DATA)).stdout
    return stdout, outdir


@pytest.mark.parametrize(("model", "name", "refine"), [("-", DEFAULT_MODEL, True), ("deepem18", "deepem18", False)])
def test_c_api_refine_and_errors_match_python(deepem_refine, aia_image, tmp_path, model, name, refine):
    _, y = aia_image
    ref = DeepEM.load(name).invert(y, exptime=EXPTIME, refine=refine, errors=True)
    n_bins = len(ref.logt)
    assert n_bins == {"deepem21": 21, "deepem18": 18}[name]
    stdout, outdir = _c_run(deepem_refine, aia_image, tmp_path, model, refine)
    got = _products(outdir, n_bins, y.shape[1])
    assert stdout.strip() == f"bins {n_bins} pixels {y.shape[1]} ok {int(np.sum(ref.status == 0))}"
    for key, value in got.items():
        np.testing.assert_array_equal(value, np.asarray(getattr(ref, key)).reshape(value.shape), err_msg=key)
    assert got["status"][5] == 12 and np.isnan(got["logt_err"][5])  # the fixture's NaN pixel
    ok = got["status"] == 0
    assert np.all(np.isfinite(got["em_err"][:, ok])) and np.all(got["total_em_err"][ok] > 0)
    if refine:  # the refinement ran: the used tolfac is one of BP's adaptive steps
        assert set(np.unique(got["tolfac"][ok])) <= {1.4, 2.1, 3.15} and got["iterations"].sum() > 0
    else:
        assert np.all(np.isnan(got["tolfac"])) and not got["iterations"].any()


@pytest.mark.parametrize("precision", ["bf16", "bf16x2"])
def test_c_api_bf16_matches_python(deepem_refine, aia_image, tmp_path, precision):
    if not fastinv.info()["bf16"]:
        pytest.skip("this CPU has no AVX512-BF16")
    _, y = aia_image
    ref = DeepEM.load(precision=precision).invert(y, exptime=EXPTIME, errors=True)
    _, outdir = _c_run(deepem_refine, aia_image, tmp_path, "-", False, precision)
    got = _products(outdir, len(ref.logt), y.shape[1])
    np.testing.assert_array_equal(got["em"], ref.em)
    np.testing.assert_array_equal(got["em_err"], ref.em_err)
    fp32 = DeepEM.load().invert(y, exptime=EXPTIME).em
    assert not np.array_equal(got["em"], fp32)  # bf16 really ran
    if precision == "bf16x2":  # and the two-term weights
        assert not np.array_equal(got["em"], DeepEM.load(precision="bf16").invert(y, exptime=EXPTIME).em)


@pytest.mark.parametrize("precision", ["bf16", "bf16x2"])
def test_c_api_bf16_unsupported_status(deepem_refine, aia_image, tmp_path, precision):
    if "avx2" not in fastinv.info()["available_isas"]:
        pytest.skip("FASTINV_ISA=avx2 is not available here")
    path, y = aia_image
    out = subprocess.run(
        [str(deepem_refine), "-", precision, str(path), str(y.shape[1]), str(EXPTIME), "0", str(tmp_path)],
        capture_output=True,
        text=True,
        env=clean_env(FASTINV_ISA="avx2", **DATA),
    )
    assert out.returncode == 3, out.stderr
    assert "status 7" in out.stderr and "FASTINV_ISA" in out.stderr and "fp32" in out.stderr
    assert not os.listdir(tmp_path)


def test_fortran_binding_refine_and_errors(aia_image, tmp_path):
    """examples/fortran (the iso_c_binding module's level-3 types) with EXPTIME: the refined
    default model's total EM, bitwise equal to Python's."""
    require_tools("gfortran")
    exe = tmp_path / "deepem_total_em"
    lib = fastinv.get_library_dir()
    src = EXAMPLES / "fortran"
    run(
        ["gfortran", "-O2", "-Wall", "-J", tmp_path, "-o", exe, src / "fastinv.f90", src / "deepem_total_em.f90"]
        + ["-L", lib, "-lfastinv", f"-Wl,-rpath,{lib}"]
    )
    path, y = aia_image
    out = tmp_path / "total.f64"
    stdout = run([exe, path, y.shape[1], out, EXPTIME], env=clean_env(**DATA)).stdout
    ref = DeepEM.load().invert(y, exptime=EXPTIME, refine=True, errors=True)
    np.testing.assert_array_equal(np.fromfile(out), np.asarray(ref.total_em, dtype=np.float64))
    ok = ref.status == 0
    assert f"{y.shape[1]} pixels, {int(ok.sum())} ok" in stdout, stdout
    assert f"mean log T error {np.mean(ref.logt_err[ok], dtype=np.float32):8.4f}" in stdout, stdout
