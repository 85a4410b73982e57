"""The C API's Milne-Eddington inversion (fastinv_me_*): examples/c/me_invert.c, compiled
against the headers and libfastinv.so this Python package carries (fastinv.get_include(),
get_library_dir()), fits the same pixels as fastinv.stokes.MEInversion from the same start:
the same model grid, so the parameters agree bitwise; with a stray-light profile too, and with
the float64 Jacobian kernel chosen through fastinv_me_options.precision (API level 4)."""

from __future__ import annotations

import fastinv
import numpy as np
import pytest
from _embed import EXAMPLES, require_tools, run
from fastinv.stokes import ME_FIT_PARAMETERS, Instrument, MEInversion
from fastinv.stokes.synthesis.milne_eddington import ME_PARAMETERS

FIT = ("FeI_6301", "FeI_6302")


@pytest.fixture(scope="module")
def me_invert(tmp_path_factory):
    require_tools("cc")
    exe = tmp_path_factory.mktemp("me-capi") / "me_invert"
    lib = fastinv.get_library_dir()
    run(
        ["cc", "-O2", "-std=c99", "-Wall", "-Wextra", "-Werror", "-I", fastinv.get_include()]
        + ["-o", exe, EXAMPLES / "c" / "me_invert.c", "-L", lib, "-lfastinv", f"-Wl,-rpath,{lib}"]
    )
    return exe


@pytest.mark.parametrize(("with_stray", "precision"), [(False, None), (True, None), (False, "float64")])
def test_c_api_matches_python(me_invert, tmp_path, with_stray, precision):
    inst = Instrument.hinode_sp()
    stray = np.zeros((4, 112))
    stray[0] = 1.0 - 0.3 * np.exp(-(((inst.wavelength - 6301.5) / 0.05) ** 2))
    inv = MEInversion(
        FIT,
        instrument=inst,
        free=(*ME_PARAMETERS[:9], "stray_light") if with_stray else None,
        stray_light=stray if with_stray else None,
        precision=precision or "float32",
    )
    rng = np.random.default_rng(5)
    n = 12
    p = np.column_stack(
        [rng.uniform(200, 2500, n), rng.uniform(10, 170, n), rng.uniform(0, 180, n), rng.uniform(-2, 2, n)]
        + [np.full(n, 30.0), np.full(n, 0.2), rng.uniform(5, 20, n), np.full(n, 0.2), np.full(n, 0.8)]
        + [np.ones(n), np.zeros(n)]
    )
    obs = inv.model.synthesize({k: p[:, i] for i, k in enumerate(ME_PARAMETERS)}, add_noise=False)
    if with_stray:
        obs = 0.85 * obs + 0.15 * stray
    obs[3, 1, 5] = np.nan  # one bad pixel on both sides
    obs += 1e-3 * rng.standard_normal(obs.shape)
    init = inv.initial_guess(np.nan_to_num(obs))
    files = {k: tmp_path / f"{k}.f64" for k in ("wl", "stokes", "init", "stray", "params")}
    inst.wavelength.astype(np.float64).tofile(files["wl"])
    obs.tofile(files["stokes"])
    init.tofile(files["init"])
    stray.tofile(files["stray"])
    out = run(
        [me_invert, files["wl"], files["stokes"], files["init"], n, "30", "1e-3"]
        + [files["stray"] if with_stray else "-", files["params"], tmp_path / "status.i8"]
        + ([precision] if precision else [])
    )
    r = inv.invert(obs, sigma=1e-3, init=init, threads=1)
    params = np.fromfile(files["params"]).reshape(n, 12)
    status = np.fromfile(tmp_path / "status.i8", dtype=np.int8)
    assert out.stdout.strip() == f"pixels {n} ok {int(np.sum(r.status == 0))}"
    np.testing.assert_array_equal(status, r.status)
    assert status[3] == 3
    np.testing.assert_array_equal(params, np.column_stack([r.parameters[k].value for k in ME_FIT_PARAMETERS]))
    if with_stray:
        assert abs(np.median(params[status == 0, 11]) - 0.15) < 0.01
    if precision == "float64":  # the field reached the kernel: the float32 fit differs in its last bits
        f32 = MEInversion(FIT, instrument=inst).invert(obs, sigma=1e-3, init=init, threads=1)
        ok = status == 0
        assert not np.array_equal(
            params[ok, :9], np.column_stack([f32.parameters[k].value for k in ME_FIT_PARAMETERS])[ok, :9]
        )
