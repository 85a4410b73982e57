"""Zeeman patterns and line data against closed forms (LL04 Table 3.1 / eqs. 3.44, 3.57)
and against sympy's Wigner 3j (when installed)."""

import itertools
import math

import numpy as np
import pytest
from fastinv.stokes import lines


def test_builtin_lines_and_g_eff():
    l1, l2 = lines.get_line("FeI_6301"), lines.get_line("FeI_6302")
    assert (l1.wavelength, l1.chi_low, l1.log_gf) == (6301.5012, 3.654, -0.718)
    assert (l2.wavelength, l2.chi_low, l2.log_gf) == (6302.4936, 3.686, -1.165)
    assert l1.g_eff == pytest.approx(1.667, abs=5e-4)
    assert l2.g_eff == pytest.approx(2.5, abs=1e-12)
    # LS coupling: z5P2 (L=1,S=2,J=2) 11/6, e5D2 (L=2,S=2,J=2) 3/2, z5P1 5/2
    assert l1.g_low == pytest.approx(11 / 6) and l1.g_up == pytest.approx(1.5)
    assert l2.g_low == pytest.approx(2.5)
    assert {"FeI_6301", "FeI_6302"} <= set(lines.line_names())


def test_normal_triplet_6302():
    comps, g_eff = lines.zeeman_pattern("FeI_6302")
    assert [(c.type, c.q) for c in comps] == [("sigma_b", -1), ("pi", 0), ("sigma_r", 1)]
    assert [c.shift for c in comps] == pytest.approx([-2.5, 0.0, 2.5])
    assert [c.strength for c in comps] == pytest.approx([1.0, 1.0, 1.0])
    assert g_eff == 2.5


def test_anomalous_pattern_6301():
    comps, g_eff = lines.zeeman_pattern("FeI_6301")
    assert len(comps) == 12  # 13 M-transitions, the pi 0 -> 0 one vanishes for J 2 -> 2
    gl, gu, J = 11 / 6, 1.5, 2
    by = {t: [c for c in comps if c.type == t] for t in ("sigma_b", "pi", "sigma_r")}
    assert [len(by[t]) for t in by] == [4, 4, 4]
    for t, cs in by.items():
        assert sum(c.strength for c in cs) == pytest.approx(1.0, abs=1e-12)
        for c in cs:
            M = c.m_up
            assert c.m_low - c.m_up == c.q
            assert c.shift == pytest.approx(gl * c.m_low - gu * c.m_up)
            # LL04 Table 3.1, J_u = J_l = J, M = M_u: pi ~ M^2, sigma(q=+1) ~ (J-M)(J+M+1),
            # sigma(q=-1) ~ (J+M)(J-M+1), normalised per group.
            if t == "pi":
                ref = M * M / sum(m * m for m in range(-J, J + 1))
            elif t == "sigma_r":
                ref = (J - M) * (J + M + 1) / sum((J - m) * (J + m + 1) for m in range(-J, J + 1))
            else:
                ref = (J + M) * (J - M + 1) / sum((J + m) * (J - m + 1) for m in range(-J, J + 1))
            assert c.strength == pytest.approx(ref, abs=1e-12)
        if t == "sigma_b":
            assert all(c.shift < 0 for c in cs)
        if t == "sigma_r":
            # centre of gravity of the sigma group sits at g_eff (LL04 eq. 3.44)
            assert sum(c.strength * c.shift for c in cs) == pytest.approx(g_eff, abs=1e-12)
    assert sum(c.strength * c.shift for c in by["pi"]) == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("jl,ju", [(0.5, 0.5), (0.5, 1.5), (1.5, 0.5), (3, 4), (4, 3), (2.5, 2.5)])
def test_sum_rules_general(jl, ju):
    gl, gu = 1.2, 0.9
    comps, g_eff = lines.zeeman_pattern(
        lines.SpectralLine(
            name="t",
            element="Fe",
            ion=1,
            mass_amu=55.8,
            wavelength=5000.0,
            chi_low=1.0,
            log_gf=0.0,
            j_low=jl,
            j_up=ju,
            g_low=gl,
            g_up=gu,
        )
    )
    for q in (-1, 0, 1):
        s = [c.strength for c in comps if c.q == q]
        assert sum(s) == pytest.approx(1.0, abs=1e-12)
    # sigma_r centre of gravity = g_eff; pi centre of gravity = 0 (LL04 §3.4)
    assert sum(c.strength * c.shift for c in comps if c.q == 1) == pytest.approx(g_eff, abs=1e-12)
    assert sum(c.strength * c.shift for c in comps if c.q == 0) == pytest.approx(0.0, abs=1e-12)


def test_wigner_3j_closed_forms_and_sympy():
    # (J J 1; M -M 0) = (-1)^(J-M) M / sqrt(J(J+1)(2J+1))  (Edmonds Table 2)
    for J in (1, 2, 3.5):
        for M in np.arange(-J, J + 1):
            ref = (-1) ** (J - M) * M / math.sqrt(J * (J + 1) * (2 * J + 1))
            assert lines.wigner_3j(J, J, 1, M, -M, 0) == pytest.approx(ref, abs=1e-13)
    assert lines.wigner_3j(1, 1, 1, 0, 0, 0) == 0.0  # odd sum of j
    assert lines.wigner_3j(1, 1, 3, 0, 0, 0) == 0.0  # triangle
    sympy_w = pytest.importorskip("sympy.physics.wigner")
    for j1, j2, j3 in [(2, 2, 1), (1, 0, 1), (3, 2, 1), (1.5, 0.5, 1), (4, 4, 2)]:
        for m1, m2 in itertools.product(np.arange(-j1, j1 + 1), np.arange(-j2, j2 + 1)):
            m3 = -(m1 + m2)
            if abs(m3) > j3:
                continue
            ref = float(sympy_w.wigner_3j(*(sympy_rational(v) for v in (j1, j2, j3, m1, m2, m3))))
            assert lines.wigner_3j(j1, j2, j3, m1, m2, m3) == pytest.approx(ref, abs=1e-13)


def sympy_rational(v):
    import sympy

    return sympy.Rational(int(round(2 * v)), 2)


def test_lande_ls():
    assert lines.lande_g_ls(1, 2, 1) == pytest.approx(2.5)
    assert lines.lande_g_ls(2, 2, 0) == 0.0
    assert lines.lande_g_ls(0, 0.5, 0.5) == pytest.approx(2.0)


def test_register_line_and_validation():
    base = dict(
        name="Test_5000",
        element="Fe",
        ion=1,
        mass_amu=55.845,
        wavelength=5000.0,
        chi_low=3.0,
        log_gf=-1.0,
        j_low=1.5,
        j_up=2.5,
        g_low=1.2,
        g_up=1.1,
    )
    lines.register_line(base)
    got = lines.get_line("Test_5000")
    assert got.j_up == 2.5 and got.g_eff == pytest.approx(0.5 * 2.3 + 0.25 * 0.1 * (3.75 - 8.75))
    for bad in (
        dict(wavelength=-1.0),
        dict(j_up=3.5),
        dict(j_low=0.7),
        dict(j_low=0, j_up=0),
        dict(mass_amu=0.0),
        dict(ion=0),
        dict(chi_low=float("nan")),
    ):
        with pytest.raises(ValueError):
            lines.register_line({**base, **bad, "name": "Bad"})
    assert "Bad" not in lines.line_names()
    with pytest.raises(ValueError, match="known lines"):
        lines.get_line("NoSuchLine")
    with pytest.raises(TypeError):
        lines.register_line({**base, "wavelength": "abc"})
