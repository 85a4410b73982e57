"""The LSF resampling of the ME Jacobian rows: float64 (``gaussian_resample_rows``) vs a NumPy
reference (the renormalised Gaussian at every stride-th point), and the float32 version the
float32 Jacobian uses vs float64, on every instruction set."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from fastinv import _core

# ViSP-like: 346 synthesis points (step 2.5 mA), LSF sigma 2.1 steps, every 2nd point from 1
H, SIGMA, FIRST, STRIDE, N_OUT, N = 2.5e-3, 5.3e-3, 1, 2, 172, 346
# max |float32 - float64| / max |row|: inputs rounded to float once (6e-8) and <= 2 M + 1 = 23
# float products summed (measured: 2.3e-7)
TOLERANCE_F32 = 2e-6


def _rows() -> np.ndarray:
    rng = np.random.default_rng(7)
    x = np.linspace(-1, 1, N)
    smooth = [np.exp(-((x - c) ** 2) / 0.01) * a for c, a in zip(rng.uniform(-1, 1, 20), rng.normal(0, 50, 20))]
    return np.vstack(smooth + [rng.normal(0, 1e3, N) for _ in range(12)])


def _reference(rows: np.ndarray) -> np.ndarray:
    m = max(1, int(5.0 * SIGMA / H + 1e-9))
    taps = np.arange(-m, m + 1)
    g = np.exp(-0.5 * (taps * H / SIGMA) ** 2)
    out = np.empty((rows.shape[0], N_OUT))
    for k in range(N_OUT):
        c = FIRST + k * STRIDE
        inside = (c + taps >= 0) & (c + taps < N)
        out[:, k] = rows[:, c + taps[inside]] @ g[inside] / g[inside].sum()
    return out


def test_float64_resampling_matches_numpy():
    rows = _rows()
    got = _core.stokes.gaussian_resample_rows(rows, H, SIGMA, FIRST, STRIDE, N_OUT)
    ref = _reference(rows)
    scale = np.abs(rows).max(axis=1, keepdims=True)
    assert np.all(np.abs(got - ref) <= 1e-13 * scale)


def test_float32_resampling_on_every_isa():
    rows = _rows()
    ref = _core.stokes.gaussian_resample_rows(rows, H, SIGMA, FIRST, STRIDE, N_OUT)
    scale = np.abs(rows).max(axis=1, keepdims=True)
    code = (
        "import json, sys, numpy as np; from fastinv import _core;"
        "r = np.array(json.load(sys.stdin));"
        f"o = _core.stokes.gaussian_resample_rows(r, {H}, {SIGMA}, {FIRST}, {STRIDE}, {N_OUT}, 'float32');"
        "print(json.dumps([_core.stokes.faddeeva_isa(), o.ravel().tolist()]))"
    )
    used = set()
    for isa in ("generic", "avx2", "avx512"):
        env = dict(os.environ, FASTINV_ISA=isa)
        out = subprocess.run(
            [sys.executable, "-c", code],
            env=env,
            input=json.dumps(rows.tolist()),
            capture_output=True,
            text=True,
            check=True,
        )
        name, data = json.loads(out.stdout)
        used.add(name)
        got = np.array(data).reshape(ref.shape)
        err = np.abs(got - ref) / scale
        assert err.max() < TOLERANCE_F32, (name, err.max())
        assert err.max() > 0  # really float arithmetic, not the float64 path
    assert "generic" in used


def test_bad_arguments_are_rejected():
    with pytest.raises(ValueError, match="inside the grid"):
        _core.stokes.gaussian_resample_rows(np.zeros((1, 10)), H, SIGMA, 0, 2, 6)
    with pytest.raises(ValueError, match="precision"):
        _core.stokes.gaussian_resample_rows(np.zeros((1, 10)), H, SIGMA, 0, 2, 5, "float16")
