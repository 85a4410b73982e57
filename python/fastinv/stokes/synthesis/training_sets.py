"""Training sets of synthetic Stokes profiles: generation in chunks and HDF5 / FITS output.

:func:`lte_training_set` draws random atmospheres (:func:`fastinv.stokes.synthesis.atmospheres.random`),
synthesises them with :class:`fastinv.stokes.LTE` through an instrument (LSF, resampling,
noise) and returns the arrays; :func:`write_training_set` writes any such dictionary
atomically to HDF5 (``.h5`` / ``.hdf5``, needs h5py) or FITS (``.fits``, astropy).

File layout (HDF5 paths; FITS uses one image HDU per array, named with ``/`` -> ``_``):

==============================  ===========  =========================================
name                            shape        content
==============================  ===========  =========================================
``stokes``                      (N, 4, Nλ)   I, Q, U, V / I_c (quiet Sun), float32
``wavelength``                  (Nλ,)        air wavelengths [A]
``status``                      (N,)         0 = ok (see fastinv.stokes.LTE_STATUS)
``mu``                          (N,)         cos(theta) of each profile
``population``                  (N,)         index into metadata ``populations`` (LTE
                                             mixture) or -1
``atmosphere/log_tau``          (nd,)        log tau_500 grid, top first
``atmosphere/<quantity>``       (N, nd)      temperature [K], vmic [km/s], B [G],
                                             inclination [deg], azimuth [deg],
                                             vlos [km/s] (positive = red shift)
``nodes/log_tau``               (7,)         0, -0.5, ..., -3
``nodes/<quantity>``            (N, 7)       the same quantities at the nodes
==============================  ===========  =========================================

Metadata (HDF5 root attributes / FITS primary header): model, lines, instrument, noise,
mu, seed, n, normalisation, units, random-atmosphere ranges or populations (JSON),
generation time and threads, fastinv version, date.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import time
from collections.abc import Callable, Mapping, Sequence

import numpy as np

from ..._atomic import atomic_output
from ..._optional import require
from . import atmospheres as _atm
from .atmospheres import DEFAULT_NODES
from .instrument import Instrument

__all__ = [
    "lte_training_set",
    "write_lte_training_set",
    "me_training_set",
    "write_training_set",
    "instrument_by_name",
    "read_set",
    "targets",
    "model_window",
    "SPLIT",
    "NODE_SETS",
    "TARGETS",
    "VISP_WINDOW",
]


#: ViSP samples (16.25 mA) of ``"visp_lines"``: 6300.60-6303.40 A, the two lines and their
#: surroundings, i.e. the window the ViSP network reads (the full ~980-point ViSP grid is
#: mostly continuum and costs 2.3x more to synthesise).
VISP_LINES_POINTS = 173


def instrument_by_name(name: str, noise: float | None = None) -> Instrument:
    """``"hinode"`` (Hinode SOT/SP), ``"visp"`` (DKIST ViSP, 980 points) or ``"visp_lines"``
    (ViSP's sampling on the 173 points around the lines), with optional noise level."""
    kw = {} if noise is None else {"noise": float(noise)}
    key = name.lower()
    if key in ("hinode", "hinode_sp", "sp"):
        return Instrument.hinode_sp(**kw)
    if key in ("visp", "dkist", "dkist_visp"):
        return Instrument.visp(**kw)
    if key == "visp_lines":
        return Instrument.visp(n=VISP_LINES_POINTS, **kw)
    raise ValueError(f"unknown instrument {name!r}: use 'hinode', 'visp' or 'visp_lines'")


def lte_training_set(
    n: int,
    *,
    instrument: str | Instrument | None = "hinode",
    seed: int = 0,
    mu: float = 1.0,
    mu_range: tuple[float, float] | None = None,
    noise: float | None = None,
    base: str = "mixture",
    ranges: Mapping | None = None,
    populations: Mapping | None = None,
    chunk: int = 1000,
    threads: int | None = None,
    lines=("FeI_6301", "FeI_6302"),
    line_window: float | None = 1.5,
    progress: Callable[[int], None] | None = None,
    allocate: Callable[[tuple], object] | None = None,
) -> dict:
    """Random atmospheres and their LTE Stokes profiles, reproducible by ``seed``.

    Parameters
    ----------
    n : int
        Number of profiles.
    instrument : {"hinode", "visp"}, Instrument or None
        Output sampling, LSF and noise (None: Hinode SP's grid, no LSF, no noise).
    seed : int
        Seeds both the atmospheres and the noise.
    mu : float
        cos(theta) of the line of sight.
    mu_range : (float, float), optional
        Instead of one ``mu``: each chunk of profiles gets its own mu, uniform in this range.
    noise : float, optional
        Override the instrument's noise level (in units of I_c).
    base : {"mixture", "both", "hsra", "falc", "maltby_m", "penumbra"}
        ``"mixture"`` (default): quiet Sun, plage, penumbra and umbra from
        :func:`fastinv.stokes.synthesis.atmospheres.random_mixture` (``populations`` overrides
        :data:`~fastinv.stokes.synthesis.atmospheres.POPULATIONS`); otherwise one base of
        :func:`fastinv.stokes.synthesis.atmospheres.random` with ``ranges``.
    chunk : int
        Profiles per synthesis call (bounds memory; the progress callback runs per chunk).
    line_window : float or None
        See :class:`fastinv.stokes.LTE` (1.5 A: < 1e-5 I_c from full synthesis).
    progress : callable, optional
        Called with the number of profiles done.
    allocate : callable, optional
        ``allocate(shape)`` returns the float32 array (or anything sliceable, e.g. an h5py
        dataset) the profiles are written into chunk by chunk; default ``numpy.empty``.
        :func:`write_lte_training_set` uses it to stream a set larger than memory to disk.

    Returns
    -------
    dict
        Arrays named as in the module docstring plus ``metadata`` (a dict).

    Examples
    --------
    >>> from fastinv.stokes.synthesis.training_sets import lte_training_set
    >>> d = lte_training_set(3, seed=1)
    >>> d["stokes"].shape, d["nodes"]["temperature"].shape
    ((3, 4, 112), (3, 7))
    """
    from .lte import LTE

    n = int(n)
    if n < 1:
        raise ValueError("n must be >= 1")
    if chunk < 1:
        raise ValueError("chunk must be >= 1")
    if mu_range is not None:
        lo, hi = (float(v) for v in mu_range)
        if not 0.0 < lo <= hi <= 1.0:
            raise ValueError(f"mu_range must satisfy 0 < low <= high <= 1, got {mu_range}")
    inst = instrument_by_name(instrument, noise) if isinstance(instrument, str) else instrument
    if isinstance(inst, Instrument) and noise is not None and not isinstance(instrument, str):
        inst = Instrument(
            inst.wavelength, inst.lsf_fwhm, noise=float(noise), oversample=inst.oversample, name=inst.name
        )
    rng = np.random.default_rng(seed)
    if base == "mixture":
        pops = dict(_atm.POPULATIONS if populations is None else populations)
        atm, population = _atm.random_mixture(n, seed=rng, populations=pops)
    else:
        pops = None
        atm, population = _atm.random(n, seed=rng, base=base, ranges=ranges), np.full(n, -1)
    lte = LTE(lines=lines, instrument=inst, line_window=line_window)
    nw = lte.wavelength.size
    stokes = (allocate or (lambda shape: np.empty(shape, dtype=np.float32)))((n, 4, nw))
    status = np.empty(n, dtype=np.int8)
    mus = np.full(n, float(mu))
    noise_rng = np.random.default_rng(rng.integers(2**63))
    t0 = time.perf_counter()
    for start in range(0, n, chunk):
        stop = min(start + chunk, n)
        if mu_range is not None:
            mus[start:stop] = rng.uniform(lo, hi)
            lte._ic_cache.clear()  # one reference continuum per chunk's mu
        prof, st = lte.synthesize(
            atm[start:stop], mu=float(mus[start]), seed=noise_rng, threads=threads, return_status=True
        )
        stokes[start:stop] = prof.astype(np.float32)
        status[start:stop] = st
        if progress is not None:
            progress(stop)
    seconds = time.perf_counter() - t0
    nodes = atm.at_nodes()
    meta = {
        "model": "lte",
        "lines": [line.name for line in lte.lines],
        "instrument": getattr(inst, "name", "none"),
        "noise": float(getattr(inst, "noise", 0.0)),
        "mu": float(mu) if mu_range is None else json.dumps([lo, hi]),
        "seed": int(seed),
        "n": n,
        "generation_seconds": round(seconds, 2),
        "threads": int(threads) if threads else os.cpu_count(),
        "line_window_A": line_window if line_window is None else float(line_window),
        "normalisation": "I_c of the HSRA quiet-Sun model at the same mu, per wavelength",
        "units": json.dumps(_atm.ATMOSPHERE_UNITS),
        "random_ranges": json.dumps({k: v for k, v in {**_atm.RANDOM_RANGES, **(ranges or {})}.items()}),
        "random_base": base,
        "populations": json.dumps(list(pops) if pops else []),
        "population_specs": json.dumps(pops or {}),
        "conventions": "vlos > 0 = red shift; inclination < 90 deg = field toward the "
        "observer (V > 0 in the blue lobe); azimuth from +Q, Q < 0 at the "
        "core of a transverse-field line at azimuth 0",
    }
    return {
        "stokes": stokes,
        "wavelength": lte.wavelength.astype(np.float64),
        "status": status,
        "mu": mus.astype(np.float32),
        "population": population.astype(np.int8),
        "atmosphere": {
            "log_tau": atm.log_tau,
            **{k: getattr(atm, k).astype(np.float32) for k in _atm.ATMOSPHERE_UNITS},
        },
        "nodes": {"log_tau": nodes["log_tau"], **{k: nodes[k].astype(np.float32) for k in _atm.ATMOSPHERE_UNITS}},
        "metadata": meta,
    }


def _flatten(data: Mapping, prefix: str = "") -> dict[str, np.ndarray]:
    out = {}
    for k, v in data.items():
        if k == "metadata":
            continue
        name = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(_flatten(v, name + "/"))
        else:
            out[name] = np.asarray(v)
    return out


def _metadata(data: Mapping) -> dict:
    import fastinv

    meta = dict(data.get("metadata", {}))
    meta.setdefault("fastinv_version", fastinv.__version__)
    meta.setdefault("created", _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))
    return meta


def write_training_set(path: str | os.PathLike, data: Mapping) -> str:
    """Write ``data`` (as returned by :func:`lte_training_set`) to HDF5 or FITS, atomically.

    The format follows the extension: ``.h5`` / ``.hdf5`` (h5py) or ``.fits`` / ``.fit``
    (astropy). The file is written to a temporary name in the same directory and renamed.

    Returns
    -------
    str
        The path written.
    """
    path = os.fspath(path)
    ext = os.path.splitext(path)[1].lower()
    if ext not in (".h5", ".hdf5", ".fits", ".fit"):
        raise ValueError(f"output {path!r}: use a .h5/.hdf5 (HDF5) or .fits file name")
    arrays, meta = _flatten(data), _metadata(data)
    with atomic_output(path) as tmp_path:
        tmp = str(tmp_path)
        if ext in (".h5", ".hdf5"):
            with _h5py().File(tmp, "w") as f:
                _write_hdf5(f, arrays, meta)
        else:
            from astropy.io import fits

            primary = fits.PrimaryHDU(arrays.pop("stokes"))
            hdr = primary.header
            hdr["EXTNAME"] = "STOKES"
            for k, v in meta.items():
                # 8-character keys (distinct for these names); long strings use CONTINUE
                value = json.dumps(v) if isinstance(v, (list, dict)) else v
                hdr[k.upper()[:8]] = (value, k)
            hdus = [primary]
            for name, arr in arrays.items():
                hdus.append(fits.ImageHDU(arr, name=name.replace("/", "_").upper()))
            fits.HDUList(hdus).writeto(tmp, overwrite=True)
    return path


def _h5py():
    return require("h5py", "HDF5 training sets (or write .fits)")


def _write_hdf5(f, arrays: Mapping[str, np.ndarray], meta: Mapping) -> None:
    for name, arr in arrays.items():
        if name not in f:
            f.create_dataset(name, data=arr, compression="gzip" if arr.size > 1024 else None)
    for k, v in meta.items():
        f.attrs[k] = json.dumps(v) if isinstance(v, (list, dict)) else v


def write_lte_training_set(path: str | os.PathLike, n: int, *, chunk: int = 1000, **kwargs) -> dict:
    """:func:`lte_training_set` streamed to an HDF5 file chunk by chunk, atomically.

    Memory stays at the atmospheres plus one chunk of profiles, whatever ``n`` (a million
    ViSP profiles are 16 GB as float32). Same file layout as :func:`write_training_set`.

    Returns
    -------
    dict
        The set's metadata.
    """
    path = os.fspath(path)
    if os.path.splitext(path)[1].lower() not in (".h5", ".hdf5"):
        raise ValueError(f"output {path!r}: streaming needs an .h5/.hdf5 file name")
    n = int(n)
    with atomic_output(path) as tmp_path, _h5py().File(str(tmp_path), "w") as f:

        def allocate(shape):
            return f.create_dataset(
                "stokes",
                shape,
                dtype="float32",
                compression="lzf",
                chunks=(max(1, min(int(chunk), shape[0], 4096)), 4, shape[2]),
            )

        data = lte_training_set(n, chunk=chunk, allocate=allocate, **kwargs)
        del data["stokes"]  # already in the file
        data["metadata"] = _metadata(data)
        _write_hdf5(f, _flatten(data), data["metadata"])
    return data["metadata"]


def me_training_set(
    n: int,
    *,
    instrument: str | Instrument | None = "hinode",
    seed: int = 0,
    mu: float = 1.0,
    noise: float | None = None,
    chunk: int = 10000,
    threads: int | None = None,
    lines=("FeI_6301", "FeI_6302"),
    progress: Callable[[int], None] | None = None,
) -> dict:
    """Random Milne-Eddington parameters (:func:`fastinv.stokes.synthesis.sampling.sample_me_parameters`,
    default ranges ``ME_RANGES`` there) and their profiles.

    Same conventions and return layout as :func:`lte_training_set`, with ``parameters``
    (name -> (N,)) instead of atmospheres. Profiles are divided by I_c = S0 + mu S1.

    Examples
    --------
    >>> from fastinv.stokes.synthesis.training_sets import me_training_set
    >>> me_training_set(2, seed=0)["stokes"].shape
    (2, 4, 112)
    """
    from .milne_eddington import MilneEddington

    n = int(n)
    if n < 1:
        raise ValueError("n must be >= 1")
    inst = instrument_by_name(instrument, noise) if isinstance(instrument, str) else instrument
    from .sampling import ME_RANGES, sample_me_parameters

    rng = np.random.default_rng(seed)
    p = sample_me_parameters(n, seed=rng)
    me = MilneEddington(lines=lines, instrument=inst)
    nw = me.wavelength.size
    stokes = np.empty((n, 4, nw), dtype=np.float32)
    status = np.empty(n, dtype=np.int8)
    noise_rng = np.random.default_rng(rng.integers(2**63))
    ic = p["S0"] + mu * p["S1"]
    for start in range(0, n, chunk):
        stop = min(start + chunk, n)
        sub = {k: v[start:stop] for k, v in p.items()}
        prof, st = me.synthesize(sub, mu=mu, seed=noise_rng, threads=threads, return_status=True)
        stokes[start:stop] = prof / ic[start:stop, None, None]
        status[start:stop] = st
        if progress is not None:
            progress(stop)
    meta = {
        "model": "me",
        "lines": [line.name for line in me.lines],
        "instrument": getattr(inst, "name", "none"),
        "noise": float(getattr(inst, "noise", 0.0)),
        "mu": float(mu),
        "seed": int(seed),
        "n": n,
        "normalisation": "I_c = S0 + mu S1 of each profile",
        "random_ranges": json.dumps(ME_RANGES),
    }
    return {
        "stokes": stokes,
        "wavelength": me.wavelength.astype(np.float64),
        "status": status,
        "parameters": {k: v.astype(np.float32) for k, v in p.items()},
        "metadata": meta,
    }


#: Node sets: SICON's 7 nodes and Agudelo's 21.
NODE_SETS = {"7": tuple(DEFAULT_NODES), "21": tuple(np.round(np.arange(-20, 1) / 10.0, 1))}
#: Output quantities per target set.
TARGETS = {
    "default": ("temperature", "vlos", "B", "inclination", "azimuth_sin2", "azimuth_cos2"),
    "muisca": ("temperature", "vlos", "B_los"),
}
#: Model grids: Hinode uses all of its 112 samples; ViSP its sampling around the two lines.
VISP_WINDOW = (6300.6, 6303.4)
#: Row split of a training set: the first 90 % train, the next 5 % validate, the last 5 %
#: are held out for evaluation.
SPLIT = (0.90, 0.95)


def read_set(path: str | os.PathLike, rows: slice | None = None) -> dict:
    """Read a training set (HDF5) written by :func:`fastinv.stokes.synthesis.training_sets.write_training_set`.

    Returns a dict with ``stokes`` (N, 4, Nλ), ``wavelength``, ``status``, ``log_tau`` and
    ``atmosphere`` (name -> (N, nd)), ``metadata``.
    """
    h5py = require("h5py", "reading HDF5 training sets")
    rows = slice(None) if rows is None else rows
    with h5py.File(path, "r") as f:
        if "stokes" not in f or "atmosphere" not in f:
            raise ValueError(f"{path}: not an LTE training set (needs 'stokes' and 'atmosphere')")
        meta = {k: (v.item() if hasattr(v, "item") else v) for k, v in f.attrs.items()}
        return {
            "stokes": f["stokes"][rows],
            "wavelength": f["wavelength"][()],
            "status": f["status"][rows],
            "log_tau": f["atmosphere/log_tau"][()],
            "atmosphere": {k: f[f"atmosphere/{k}"][rows] for k in f["atmosphere"] if k != "log_tau"},
            "metadata": meta,
        }


def model_window(instrument: str, wavelength: np.ndarray) -> np.ndarray:
    """Indices of ``wavelength`` that make the model's input grid for ``instrument``."""
    wavelength = np.asarray(wavelength, dtype=np.float64)
    if instrument == "visp":
        keep = np.flatnonzero((wavelength >= VISP_WINDOW[0]) & (wavelength <= VISP_WINDOW[1]))
        if keep.size < 50:
            raise ValueError(f"the ViSP grid does not cover {VISP_WINDOW} A")
        return keep
    return np.arange(wavelength.size)


def _interp_rows(log_tau: np.ndarray, values: np.ndarray, nodes: Sequence[float]) -> np.ndarray:
    """Row-wise linear interpolation of (N, nd) at the nodes (vectorised)."""
    nodes = np.asarray(nodes, dtype=np.float64)
    right = np.clip(np.searchsorted(log_tau, nodes), 1, log_tau.size - 1)
    left = right - 1
    w = (nodes - log_tau[left]) / (log_tau[right] - log_tau[left])
    return values[:, left] * (1.0 - w) + values[:, right] * w


def targets(atmosphere: dict, log_tau: np.ndarray, nodes: Sequence[float], quantities: Sequence[str]) -> np.ndarray:
    """The physical targets (N, len(quantities) * len(nodes)), column q * n_nodes + k.

    Examples
    --------
    >>> import numpy as np
    >>> lt = np.linspace(-4, 1, 51)
    >>> atm = {k: np.ones((2, 51)) for k in ("temperature", "vlos", "B", "inclination", "azimuth")}
    >>> atm["azimuth"] = np.full((2, 51), 45.0)
    >>> targets(atm, lt, (0.0, -1.0), ("azimuth_sin2", "azimuth_cos2")).round(6).tolist()[0]
    [1.0, 1.0, 0.0, 0.0]
    """
    cols = []
    for q in quantities:
        if q == "azimuth_sin2":
            v = np.sin(2.0 * np.deg2rad(atmosphere["azimuth"]))
        elif q == "azimuth_cos2":
            v = np.cos(2.0 * np.deg2rad(atmosphere["azimuth"]))
        elif q == "B_los":
            v = atmosphere["B"] * np.cos(np.deg2rad(atmosphere["inclination"]))
        else:
            v = atmosphere[q]
        cols.append(_interp_rows(log_tau, np.asarray(v, dtype=np.float64), nodes))
    return np.concatenate(cols, axis=1).astype(np.float32)
