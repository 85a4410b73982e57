"""Spectral-line registry and Zeeman patterns.

Built-in lines: ``"FeI_6301"`` (Fe I 6301.5012 A, J 2->2, g_eff 1.667, anomalous
12-component pattern) and ``"FeI_6302"`` (Fe I 6302.4936 A, J 1->0, g_eff 2.5, normal
triplet). Air wavelengths; chi_low and log gf from VALD, Lande factors from LS coupling,
van der Waals ABO alpha/sigma from SIR's line list. Add lines with :func:`register_line`.

Zeeman components are computed from J and g with Wigner 3j symbols (LL04 eqs. 3.57-3.58):
shift ``g_l M_l - g_u M_u`` in units of ``dlambda_B = 4.6686e-13 lambda0**2 B`` [A, G],
strength ``3 (J_u J_l 1; -M_u M_l -q)**2`` summing to 1 in each group q = M_l - M_u
(-1: sigma_b, 0: pi, +1: sigma_r).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from ... import _core

__all__ = [
    "SpectralLine",
    "ZeemanComponent",
    "get_line",
    "line_names",
    "register_line",
    "zeeman_pattern",
    "lande_g_ls",
    "wigner_3j",
    "LARMOR_A_PER_G_A2",
]

#: Zeeman splitting per unit Lande factor: dlambda_B [A] = LARMOR * lambda0[A]**2 * B[G].
LARMOR_A_PER_G_A2 = 4.6686448e-13


@dataclass(frozen=True)
class SpectralLine:
    """Atomic data of one line (see module docstring for units).

    Examples
    --------
    >>> from fastinv.stokes.synthesis.lines import get_line
    >>> line = get_line("FeI_6301")
    >>> line.wavelength, round(line.g_eff, 3)
    (6301.5012, 1.667)
    """

    name: str
    element: str
    ion: int
    mass_amu: float
    wavelength: float  # air, Angstrom
    chi_low: float  # eV
    log_gf: float
    j_low: float
    j_up: float
    g_low: float
    g_up: float
    abo_alpha: float = 0.0
    abo_sigma: float = 0.0  # cm^2
    source: str = ""
    g_eff: float = field(default=0.0, compare=False)


@dataclass(frozen=True)
class ZeemanComponent:
    """One Zeeman component: ``type`` is ``"sigma_b"``, ``"pi"`` or ``"sigma_r"``."""

    type: str
    q: int
    m_low: float
    m_up: float
    shift: float  # in units of dlambda_B
    strength: float


def line_names() -> list[str]:
    """Names of all registered lines."""
    return list(_core.stokes.line_names())


def get_line(name: str) -> SpectralLine:
    """Look a line up by name (``ValueError`` listing the known names if absent)."""
    return SpectralLine(**_core.stokes.get_line(str(name)))


def register_line(line: SpectralLine | dict) -> None:
    """Add (or replace) a line in the registry used by all syntheses.

    Parameters
    ----------
    line : SpectralLine or dict
        Fields as in :class:`SpectralLine` (``g_eff`` is ignored: it is derived).

    Examples
    --------
    >>> from fastinv.stokes.synthesis.lines import register_line, get_line, lande_g_ls
    >>> # a hypothetical 3S1 -> 3P0 line (made-up numbers, for illustration only)
    >>> register_line(dict(name="Example_5000", element="Fe", ion=1, mass_amu=55.845,
    ...                    wavelength=5000.0, chi_low=3.0, log_gf=-1.0,
    ...                    j_low=1, j_up=0, g_low=lande_g_ls(0, 1, 1), g_up=0.0))
    >>> get_line("Example_5000").g_eff
    2.0
    """
    d = asdict(line) if isinstance(line, SpectralLine) else dict(line)
    d.pop("g_eff", None)
    _core.stokes.register_line(d)


def resolve_lines(lines, who: str) -> tuple[SpectralLine, ...]:
    """Lines given by name or as :class:`SpectralLine` (registered on the way) -> the
    registry's entries; ``who`` names the caller in the error for an empty list."""
    if isinstance(lines, (str, SpectralLine)):
        lines = (lines,)
    names = []
    for line in lines:
        if isinstance(line, SpectralLine):
            register_line(line)
            names.append(line.name)
        else:
            names.append(str(line))
    if not names:
        raise ValueError(f"{who}: give at least one line")
    return tuple(get_line(n) for n in names)


def lande_g_ls(L: float, S: float, J: float) -> float:
    """Lande factor of an LS-coupled level (0 for J = 0)."""
    return float(_core.stokes.lande_g_ls(L, S, J))


def wigner_3j(j1: float, j2: float, j3: float, m1: float, m2: float, m3: float) -> float:
    """Wigner 3j symbol (integer or half-integer arguments)."""
    return float(_core.stokes.wigner_3j(j1, j2, j3, m1, m2, m3))


def zeeman_pattern(line: str | SpectralLine) -> tuple[list[ZeemanComponent], float]:
    """Zeeman components and effective Lande factor of a line.

    Examples
    --------
    >>> from fastinv.stokes.synthesis.lines import zeeman_pattern
    >>> comps, g_eff = zeeman_pattern("FeI_6302")
    >>> [(c.type, c.shift) for c in comps], g_eff
    ([('sigma_b', -2.5), ('pi', 0.0), ('sigma_r', 2.5)], 2.5)
    """
    if not isinstance(line, SpectralLine):
        line = get_line(line)
    comps, g_eff = _core.stokes.zeeman_pattern(line.j_low, line.g_low, line.j_up, line.g_up)
    return [ZeemanComponent(**c) for c in comps], float(g_eff)
