"""Model atmospheres for LTE synthesis: bundled HSRA and FAL-C, and random atmospheres.

An :class:`Atmospheres` holds ``N`` plane-parallel atmospheres on one log tau_500 grid,
ordered from the top of the atmosphere downward (increasing log tau; the bundled models
span -4.0 ... +1.4 in steps of 0.1, 55 points), with per depth:

=================  ======  ==========================================================
attribute          unit    meaning
=================  ======  ==========================================================
``temperature``    K       temperature
``vmic``           km/s    micro-turbulence
``B``              G       field strength (>= 0)
``inclination``    deg     angle to the line of sight; < 90 = toward the observer
``azimuth``        deg     counter-clockwise from the +Q reference direction
``vlos``           km/s    line-of-sight velocity, positive = away from the observer
                           (red shift, downflow at disc centre)
=================  ======  ==========================================================

Data (``fastinv/stokes/data``, provenance in each file's header and in the README there):

- :func:`hsra`: the Harvard-Smithsonian Reference Atmosphere (Gingerich et al. 1971,
  Solar Phys. 18, 347), SIR-format table as distributed with Hazel2 (MIT licence).
- :func:`falc`: FAL-C (Fontenla, Avrett & Loeser 1993, ApJ 406, 319) from lightweaver's
  ``fal.py`` (MIT licence), put on the tau_500 scale by lightweaver itself.
- :func:`maltby_m`: sunspot umbra model M (Maltby et al. 1986, ApJ 306, 284), SIR-format
  table from Hazel2 (MIT licence); log tau_500 = -4.0 ... +1.2. fastinv's EOS has no
  molecules, so its pressures in this cool (3400 K) model are approximate.

Examples
--------
>>> from fastinv.stokes import atmospheres
>>> atm = atmospheres.falc()
>>> len(atm), atm.log_tau.size, round(float(atm.temperature_at(0.0)[0]))
(1, 55, 6539)
>>> rnd = atmospheres.random(4, seed=1)
>>> rnd.temperature.shape
(4, 55)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from importlib import resources

import numpy as np

from ..._units import to_float_array

__all__ = [
    "Atmospheres",
    "hsra",
    "falc",
    "maltby_m",
    "random",
    "random_mixture",
    "RANDOM_RANGES",
    "POPULATIONS",
    "ATMOSPHERE_UNITS",
    "DEFAULT_NODES",
]

#: Per-depth quantities and their units (astropy unit strings).
ATMOSPHERE_UNITS = {
    "temperature": "K",
    "vmic": "km/s",
    "B": "G",
    "inclination": "deg",
    "azimuth": "deg",
    "vlos": "km/s",
}
_FIELDS = tuple(ATMOSPHERE_UNITS)

#: log tau_500 nodes at which training sets report the atmospheres (SICON's 7 nodes).
DEFAULT_NODES = (0.0, -0.5, -1.0, -1.5, -2.0, -2.5, -3.0)


def _convert(name: str, value) -> np.ndarray:
    return to_float_array(value, ATMOSPHERE_UNITS.get(name), f"atmosphere quantity {name!r}")


@dataclasses.dataclass
class Atmospheres:
    """``N`` atmospheres on a shared log tau_500 grid (see the module docstring).

    Parameters
    ----------
    log_tau : array_like, shape (nd,)
        log10 tau_500, strictly increasing (top first). A decreasing grid (SIR's order) is
        accepted and flipped together with the per-depth arrays.
    temperature, vmic, B, inclination, azimuth, vlos : array_like, shape (N, nd) or (nd,)
        Per-depth quantities (astropy Quantities are converted to the units above);
        scalars broadcast.
    name : str
        Label stored in output files.

    Examples
    --------
    >>> import numpy as np
    >>> from fastinv.stokes.synthesis.atmospheres import Atmospheres
    >>> lt = np.linspace(-4, 1, 51)
    >>> atm = Atmospheres(lt, temperature=5000 + 500 * lt, vmic=1.0, B=0, inclination=0,
    ...                   azimuth=0, vlos=0)
    >>> atm.temperature.shape
    (1, 51)
    """

    log_tau: np.ndarray
    temperature: np.ndarray
    vmic: np.ndarray
    B: np.ndarray
    inclination: np.ndarray
    azimuth: np.ndarray
    vlos: np.ndarray
    name: str = "custom"

    def __post_init__(self) -> None:
        lt = np.asarray(self.log_tau, dtype=np.float64).ravel()
        if lt.size < 3 or not np.all(np.isfinite(lt)):
            raise ValueError("Atmospheres: log_tau needs >= 3 finite values")
        flip = False
        if np.all(np.diff(lt) < 0):
            flip = True
            lt = lt[::-1]
        elif not np.all(np.diff(lt) > 0):
            raise ValueError("Atmospheres: log_tau must be strictly monotonic")
        arrays = {k: _convert(k, getattr(self, k)) for k in _FIELDS}
        nd = lt.size
        n = 1
        for k, a in arrays.items():
            if a.ndim == 2:
                n = max(n, a.shape[0])
        for k, a in arrays.items():
            if a.ndim == 0:
                a = np.full((n, nd), float(a))
            elif a.ndim == 1:
                if a.size != nd:
                    raise ValueError(f"Atmospheres: {k} has {a.size} depth points, log_tau {nd}")
                a = np.broadcast_to(a[::-1] if flip else a, (n, nd))
            elif a.ndim == 2:
                if a.shape[1] != nd or a.shape[0] not in (1, n):
                    raise ValueError(f"Atmospheres: {k} must have shape (N, {nd}), got {a.shape}")
                a = np.broadcast_to(a[:, ::-1] if flip else a, (n, nd))
            else:
                raise ValueError(f"Atmospheres: {k} must be at most 2-D")
            arrays[k] = np.array(a, dtype=np.float64, order="C")  # own, writable copy
        self.log_tau = np.ascontiguousarray(lt)
        for k, a in arrays.items():
            setattr(self, k, a)

    def __len__(self) -> int:
        return self.temperature.shape[0]

    def __getitem__(self, idx) -> "Atmospheres":
        if isinstance(idx, (int, np.integer)):
            idx = slice(int(idx), int(idx) + 1 if idx != -1 else None)
        return Atmospheres(self.log_tau, **{k: getattr(self, k)[idx] for k in _FIELDS}, name=self.name)

    @property
    def n_depth(self) -> int:
        return self.log_tau.size

    def as_dict(self) -> dict[str, np.ndarray]:
        """``log_tau`` and the per-depth arrays."""
        d = {"log_tau": self.log_tau}
        d.update({k: getattr(self, k) for k in _FIELDS})
        return d

    def temperature_at(self, log_tau: float) -> np.ndarray:
        """T [K] of every atmosphere at one log tau_500 (linear interpolation)."""
        return self.at_nodes((log_tau,))["temperature"][:, 0]

    def at_nodes(self, nodes: Sequence[float] = DEFAULT_NODES) -> dict[str, np.ndarray]:
        """Per-depth quantities interpolated (linearly in log tau) to ``nodes``.

        Returns
        -------
        dict
            name -> array (N, len(nodes)), plus ``log_tau`` = the nodes.
        """
        nodes = np.asarray(nodes, dtype=np.float64).ravel()
        if np.any(nodes < self.log_tau[0]) or np.any(nodes > self.log_tau[-1]):
            raise ValueError(f"nodes must lie within log_tau [{self.log_tau[0]}, {self.log_tau[-1]}]")
        out = {"log_tau": nodes}
        for k in _FIELDS:
            a = getattr(self, k)
            out[k] = np.stack([np.interp(nodes, self.log_tau, row) for row in a])
        return out

    @classmethod
    def concatenate(cls, items: Sequence["Atmospheres"]) -> "Atmospheres":
        """Stack atmospheres sharing one log tau grid."""
        items = list(items)
        if not items:
            raise ValueError("concatenate: nothing to concatenate")
        lt = items[0].log_tau
        for it in items[1:]:
            if it.log_tau.shape != lt.shape or not np.allclose(it.log_tau, lt):
                raise ValueError("concatenate: atmospheres must share the log tau grid")
        return cls(lt, **{k: np.concatenate([getattr(i, k) for i in items]) for k in _FIELDS}, name=items[0].name)


def as_atmospheres(obj) -> Atmospheres:
    """An :class:`Atmospheres` from itself or a mapping with the same keys."""
    if isinstance(obj, Atmospheres):
        return obj
    if isinstance(obj, Mapping):
        missing = [k for k in ("log_tau",) + _FIELDS if k not in obj]
        if missing:
            raise ValueError(f"atmospheres mapping lacks {missing}; needs log_tau and {list(_FIELDS)}")
        return Atmospheres(**{k: obj[k] for k in ("log_tau",) + _FIELDS})
    raise TypeError(
        "atmospheres must be a fastinv.stokes.synthesis.atmospheres.Atmospheres or a dict "
        "with log_tau, temperature, vmic, B, inclination, azimuth, vlos"
    )


def _load(name: str) -> np.ndarray:
    path = resources.files("fastinv.stokes.synthesis").joinpath("data", name)
    with path.open("r") as f:
        return np.loadtxt(f)


def _model(table: np.ndarray, name: str, B, inclination, azimuth, vlos, vmic) -> Atmospheres:
    lt, T = table[:, 0], table[:, 1]
    vm = table[:, 2] if vmic is None else vmic
    return Atmospheres(lt, temperature=T, vmic=vm, B=B, inclination=inclination, azimuth=azimuth, vlos=vlos, name=name)


def hsra(B=0.0, inclination=0.0, azimuth=0.0, vlos=0.0, vmic=None) -> Atmospheres:
    """The HSRA quiet-Sun model (Gingerich et al. 1971) on log tau_500 = -4.0 ... +1.4.

    Parameters
    ----------
    B, inclination, azimuth, vlos : float, array (nd,) or Quantity
        Field and velocity to impose (default: none).
    vmic : float, array or Quantity, optional
        Micro-turbulence [km/s]; default the table's (0.6 km/s).

    Examples
    --------
    >>> from fastinv.stokes.synthesis.atmospheres import hsra
    >>> round(float(hsra().temperature_at(0.0)[0]))
    6390
    """
    return _model(_load("hsra.txt"), "HSRA", B, inclination, azimuth, vlos, vmic)


def hsra_table() -> dict[str, np.ndarray]:
    """The tabulated HSRA columns, top first: log_tau, T, vmic, Pe, Pg [dyn cm^-2],
    rho [g cm^-3], z [km] (Pe, Pg, rho from the SIR/Hazel2 table, not recomputed)."""
    t = _load("hsra.txt")[::-1]
    keys = ("log_tau", "temperature", "vmic", "Pe", "Pg", "rho", "z")
    return {k: np.ascontiguousarray(t[:, i]) for i, k in enumerate(keys)}


def maltby_m(B=0.0, inclination=0.0, azimuth=0.0, vlos=0.0, vmic=None) -> Atmospheres:
    """Sunspot umbra model M of Maltby et al. (1986) on log tau_500 = -4.0 ... +1.2.

    Parameters as for :func:`hsra` (default micro-turbulence: the table's 1 km/s). Note
    fastinv's equation of state neglects molecules (H2 forms in the upper umbra).

    Examples
    --------
    >>> from fastinv.stokes.synthesis.atmospheres import maltby_m
    >>> round(float(maltby_m(B=2500).temperature_at(0.0)[0]))
    4040
    """
    return _model(_load("maltby_m.txt"), "Maltby-M", B, inclination, azimuth, vlos, vmic)


def falc(B=0.0, inclination=0.0, azimuth=0.0, vlos=0.0, vmic=None) -> Atmospheres:
    """FAL-C (Fontenla et al. 1993) on log tau_500 = -4.0 ... +1.4 (from lightweaver).

    Parameters as for :func:`hsra`; the default micro-turbulence is FAL-C's own.

    Examples
    --------
    >>> from fastinv.stokes.synthesis.atmospheres import falc
    >>> atm = falc(B=1000, inclination=0)
    >>> float(atm.B.max())
    1000.0
    """
    return _model(_load("falc.txt"), "FAL-C", B, inclination, azimuth, vlos, vmic)


#: Ranges of :func:`random` (all uniform; override any with ``ranges=``).
#:
#: - ``T_amplitude`` [K]: amplitudes of the Legendre coefficients c_0..c_4 of the smooth
#:   temperature perturbation dT(x) = sum c_j P_j(x), x = log tau mapped to [-1, 1];
#:   c_j ~ U(-a_j, a_j). The result is clipped to ``T_min`` ... ``T_max``.
#: - ``vlos`` [km/s], ``B`` [G], ``vmic`` [km/s], ``azimuth`` [deg]: node values, uniform.
#: - ``cos_inclination``: node values of cos(inclination), uniform (isotropic field).
#: - ``nodes_*``: log tau nodes; the quantity is linear in log tau between the nodes and
#:   constant beyond them.
RANDOM_RANGES = {
    "T_amplitude": (300.0, 300.0, 200.0, 150.0, 100.0),
    "T_min": 3000.0,
    "T_max": 20000.0,
    "vlos": (-6.0, 6.0),
    "B": (0.0, 3000.0),
    "cos_inclination": (-1.0, 1.0),
    "azimuth": (0.0, 180.0),
    "vmic": (0.0, 3.0),
    "nodes_vlos": (-3.0, -1.5, 0.0),
    "nodes_B": (-3.0, 0.0),
    "nodes_inclination": (-3.0, 0.0),
    "nodes_azimuth": (-1.5,),
    "nodes_vmic": (-1.5,),
}


def _node_profile(log_tau: np.ndarray, nodes: Sequence[float], values: np.ndarray) -> np.ndarray:
    nodes = np.asarray(nodes, dtype=np.float64)
    order = np.argsort(nodes)
    nodes, values = nodes[order], values[:, order]
    if nodes.size == 1:
        return np.repeat(values, log_tau.size, axis=1)
    return np.stack([np.interp(log_tau, nodes, v) for v in values])


def _base_temperatures(log_tau: np.ndarray) -> dict[str, np.ndarray]:
    """Base temperature stratifications of :func:`random` on the HSRA grid ``log_tau``."""
    h, f, m = hsra(), falc(), maltby_m()
    # Maltby M stops at log tau = 1.2: extend it linearly (deeper layers barely touch 630 nm)
    slope = (m.temperature[0, -1] - m.temperature[0, -2]) / (m.log_tau[-1] - m.log_tau[-2])
    t_umbra = np.where(
        log_tau <= m.log_tau[-1],
        np.interp(log_tau, m.log_tau, m.temperature[0]),
        m.temperature[0, -1] + slope * (log_tau - m.log_tau[-1]),
    )
    t_hsra = np.interp(log_tau, h.log_tau, h.temperature[0])
    return {
        "hsra": t_hsra,
        "falc": np.interp(log_tau, f.log_tau, f.temperature[0]),
        "maltby_m": t_umbra,
        # ~5800 K at log tau = 0, as penumbral models (del Toro Iniesta et al. 1994)
        "penumbra": 0.75 * t_hsra + 0.25 * t_umbra,
    }


_BASES = ("hsra", "falc", "maltby_m", "penumbra")


def random(n: int, seed=None, base: str = "both", ranges: Mapping | None = None) -> Atmospheres:
    """Random atmospheres for training sets, reproducible by ``seed``.

    Temperature: a base model plus a smooth perturbation, a Legendre series of degree 4 in
    log tau with uniform random coefficients (``RANDOM_RANGES["T_amplitude"]``). Bases:
    ``"hsra"``, ``"falc"``, ``"both"`` (each at random), ``"maltby_m"`` (umbra) and
    ``"penumbra"`` (0.75 HSRA + 0.25 Maltby M in T, ~5800 K at log tau 0). v_LOS, B,
    inclination, azimuth and v_mic: uniform values at log tau nodes, linear in between
    (see :data:`RANDOM_RANGES`).

    Parameters
    ----------
    n : int
        Number of atmospheres.
    seed : int or numpy.random.Generator, optional
    base : {"both", "hsra", "falc", "maltby_m", "penumbra"}
    ranges : mapping, optional
        Entries overriding :data:`RANDOM_RANGES`.

    Examples
    --------
    >>> from fastinv.stokes.synthesis.atmospheres import random
    >>> a, b = random(3, seed=7), random(3, seed=7)
    >>> bool((a.temperature == b.temperature).all())
    True
    """
    n = int(n)
    if n < 0:
        raise ValueError("random: n must be >= 0")
    r = dict(RANDOM_RANGES)
    if ranges:
        unknown = set(ranges) - set(RANDOM_RANGES)
        if unknown:
            raise ValueError(f"random: unknown range(s) {sorted(unknown)}")
        r.update(ranges)
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    lt = hsra().log_tau
    bases = _base_temperatures(lt)
    if base == "both":
        pick = rng.integers(0, 2, n)
        T0 = np.where(pick[:, None] == 0, bases["hsra"], bases["falc"])
    elif base in bases:
        T0 = np.broadcast_to(bases[base], (n, lt.size))
    else:
        raise ValueError(f"random: base must be 'both' or one of {_BASES}, got {base!r}")
    x = 2.0 * (lt - lt[0]) / (lt[-1] - lt[0]) - 1.0
    amp = np.asarray(r["T_amplitude"], dtype=np.float64)
    coef = rng.uniform(-1.0, 1.0, (n, amp.size)) * amp
    basis = np.stack([np.polynomial.legendre.Legendre.basis(j)(x) for j in range(amp.size)])
    T = np.clip(T0 + coef @ basis, r["T_min"], r["T_max"])

    def at_nodes(lo_hi, node_key):
        vals = rng.uniform(lo_hi[0], lo_hi[1], (n, len(r[node_key])))
        return _node_profile(lt, r[node_key], vals)

    # fixed draw order: reproducible by seed
    vlos = at_nodes(r["vlos"], "nodes_vlos")
    B = at_nodes(r["B"], "nodes_B")
    cosg = np.clip(at_nodes(r["cos_inclination"], "nodes_inclination"), -1.0, 1.0)
    azi = at_nodes(r["azimuth"], "nodes_azimuth")
    vmic = at_nodes(r["vmic"], "nodes_vmic")
    return Atmospheres(
        lt,
        temperature=T,
        vmic=vmic,
        B=B,
        inclination=np.rad2deg(np.arccos(cosg)),
        azimuth=azi,
        vlos=vlos,
        name=f"random(base={base})",
    )


#: Solar populations of :func:`random_mixture`: each is a :func:`random` base, a weight
#: (fraction of the set) and ranges overriding :data:`RANDOM_RANGES`; ``both_polarities``
#: draws |cos(inclination)| from the range and gives half the atmospheres the opposite
#: polarity (nearly vertical fields of either sign). Typical values: quiet Sun weak and
#: isotropic; plage kG, nearly vertical (Buehler et al. 2015); penumbra 1-2.5 kG, inclined,
#: Evershed flows; umbra 2-4 kG, nearly vertical (Solanki 2003, A&ARv 11, 153).
POPULATIONS = {
    "quiet": {"base": "both", "weight": 0.4, "ranges": {"B": (0.0, 500.0), "vlos": (-4.0, 4.0)}},
    "plage": {
        "base": "both",
        "weight": 0.2,
        "both_polarities": True,
        "ranges": {"B": (500.0, 2000.0), "cos_inclination": (0.7, 1.0), "vlos": (-3.0, 3.0)},
    },
    "penumbra": {
        "base": "penumbra",
        "weight": 0.2,
        "ranges": {"B": (800.0, 2500.0), "cos_inclination": (-0.8, 0.8), "vlos": (-3.0, 7.0)},
    },
    "umbra": {
        "base": "maltby_m",
        "weight": 0.2,
        "both_polarities": True,
        "ranges": {"B": (1800.0, 4000.0), "cos_inclination": (0.8, 1.0), "vlos": (-2.0, 2.0)},
    },
}


def random_mixture(
    n: int,
    seed=None,
    populations: Mapping | None = None,
) -> tuple[Atmospheres, np.ndarray]:
    """Random atmospheres drawn from solar populations, shuffled, reproducible by ``seed``.

    Parameters
    ----------
    n : int
        Number of atmospheres.
    seed : int or numpy.random.Generator, optional
    populations : mapping, optional
        As :data:`POPULATIONS` (the default): name -> {"base", "weight", "ranges",
        optional "both_polarities"}. Counts are ``n * weight / sum(weights)``, rounded.

    Returns
    -------
    atmospheres : Atmospheres
    population : numpy.ndarray of int8, shape (n,)
        Index into ``list(populations)`` of each atmosphere.

    Examples
    --------
    >>> from fastinv.stokes.synthesis.atmospheres import random_mixture
    >>> atm, pop = random_mixture(10, seed=1)
    >>> len(atm), sorted(set(pop.tolist()))
    (10, [0, 1, 2, 3])
    """
    n = int(n)
    pops = dict(POPULATIONS if populations is None else populations)
    if n < 1 or not pops:
        raise ValueError("random_mixture: need n >= 1 and at least one population")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    weights = np.array([float(p["weight"]) for p in pops.values()])
    if np.any(weights < 0) or weights.sum() <= 0:
        raise ValueError("random_mixture: weights must be >= 0 with a positive sum")
    counts = np.floor(n * weights / weights.sum()).astype(int)
    counts[: n - counts.sum()] += 1  # the remainder, one each to the first populations
    parts, labels = [], []
    for index, (spec, count) in enumerate(zip(pops.values(), counts)):
        if count == 0:
            continue
        atm = random(count, seed=rng, base=spec["base"], ranges=spec.get("ranges"))
        if spec.get("both_polarities"):
            flip = rng.random(count) < 0.5
            atm.inclination[flip] = 180.0 - atm.inclination[flip]
        parts.append(atm)
        labels.append(np.full(count, index, dtype=np.int8))
    order = rng.permutation(n)
    atm = Atmospheres.concatenate(parts)[order]
    atm.name = "random_mixture(" + ", ".join(f"{k}={w:g}" for k, w in zip(pops, weights)) + ")"
    return atm, np.concatenate(labels)[order]
