"""fastinv's Faddeeva / Voigt / Faraday-Voigt functions against scipy.special.wofz.

Domain tested: x in [-1e4, 1e4] (dense on |x| <= 40, logarithmic beyond), y in {0} and
[1e-8, 1e3] (damping parameters of solar lines are 1e-3..few; the far wings of a 2.4 A
window reach |v| ~ 150 Doppler widths), plus the lower half plane. Tolerances:
complex relative 1e-6; H and F relative 1e-6 where they exceed 1e-9, absolute 1e-12 below.
"""

import numpy as np
import pytest

scipy_special = pytest.importorskip("scipy.special")

from fastinv.stokes import faddeeva, voigt_faraday  # noqa: E402


def _grid():
    x = np.concatenate([np.linspace(-40, 40, 4001), np.geomspace(1e-3, 1e4, 300), -np.geomspace(1e-3, 1e4, 300)])
    y = np.concatenate([[0.0], np.geomspace(1e-8, 1e3, 45)])
    X, Y = np.meshgrid(x, y)
    return (X + 1j * Y).ravel()


def test_faddeeva_complex_relative_error():
    z = _grid()
    ref = scipy_special.wofz(z)
    w = faddeeva(z)
    rel = np.abs(w - ref) / np.abs(ref)
    assert rel.max() <= 1e-6, rel.max()


@pytest.mark.parametrize("part", ["real", "imag"])
def test_voigt_and_faraday_parts(part):
    z = _grid()
    ref = getattr(scipy_special.wofz(z), part)
    got = getattr(faddeeva(z), part)
    big = np.abs(ref) > 1e-9
    assert (np.abs(got - ref)[big] / np.abs(ref[big])).max() <= 1e-6
    assert np.abs(got - ref)[~big].max() <= 1e-12


def test_lower_half_plane_reflection():
    rng = np.random.default_rng(1)
    z = rng.uniform(-6, 6, 2000) - 1j * rng.uniform(0, 3, 2000)
    ref = scipy_special.wofz(z)
    assert (np.abs(faddeeva(z) - ref) / np.abs(ref)).max() <= 1e-6


@pytest.mark.parametrize("a", [0.0, 1e-4, 0.03, 0.5, 2.0, 20.0])
def test_voigt_faraday_batch(a):
    v = np.linspace(-200, 200, 10007)
    H, F = voigt_faraday(a, v)
    ref = scipy_special.wofz(v + 1j * a)
    big = ref.real > 1e-9
    assert (np.abs(H - ref.real)[big] / ref.real[big]).max() <= 1e-6
    assert np.abs(F - ref.imag).max() <= 1e-6 * np.abs(ref.imag).max()


def test_analytic_limits():
    v = np.linspace(-5, 5, 101)
    H, _ = voigt_faraday(0.0, v)
    np.testing.assert_allclose(H, np.exp(-(v**2)), rtol=1e-9, atol=1e-15)
    # Lorentz limit: for a >> 1, H -> a / (sqrt(pi) (a^2 + v^2))
    a = 1e3
    H, F = voigt_faraday(a, v)
    np.testing.assert_allclose(H, a / np.sqrt(np.pi) / (a**2 + v**2), rtol=1e-5)
    np.testing.assert_allclose(F, v / np.sqrt(np.pi) / (a**2 + v**2), rtol=1e-5)


def test_bad_damping_and_nonfinite():
    with pytest.raises(ValueError):
        voigt_faraday(-0.1, [0.0])
    with pytest.raises(ValueError):
        voigt_faraday(float("nan"), [0.0])
    w = faddeeva(np.array([np.nan + 0j, complex(np.inf, 1.0)]))
    assert np.all(np.isnan(w))
