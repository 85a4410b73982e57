"""Stokes inversion of whole DKIST ViSP datasets and of many maps (``fastinv stokes invert
--series``): one dask.distributed task per raster step, resumable (see :mod:`fastinv._series`).

A *map* is a ViSP dataset given as a ``dkist.Dataset`` (or every tile of a ``TiledDataset``),
its ``.asdf`` file, a folder of its level-1 FITS files, or a list of those files. The raster
steps of a ``dkist.Dataset`` come from its header table (DINDEX3, DINDEX4) without opening a
FITS file here; each task reads only the four Stokes files of its step, so the data are read
lazily, step by step, on the workers.

Each step's output is ``<out_dir>/<map>_step_<DINDEX3>.fits`` (the layout of
:func:`~fastinv.stokes.inversion.output.write_inversion_fits`, one column), written by the
task with :class:`~fastinv.stokes.inversion.frames.FrameInverter` exactly as ``watch`` writes
a step, so a step's file is bitwise the same whatever the scheduler. The quiet-Sun continuum
is found in each step unless ``continuum`` is given (as ``watch`` does; a whole-map I_c would
need a pass over every step's Stokes I before the first task). An output is valid for a
re-run when its FITS checksums verify, its inputs are the step's files, and the model (its
SHA-256), continuum and wavelength shift are the run's. :func:`assemble_map` puts a map's
step files side by side into one level-2 FITS file (and a ``dkist.Inversion`` ASDF file).

Examples
--------
>>> from fastinv.stokes.inversion.series import SeriesOptions, run_series  # doctest: +SKIP
>>> ds = dkist.load_dataset("VISP_L1_ABCDE.asdf")                            # doctest: +SKIP
>>> log = run_series(ds, "out/", SeriesOptions(model="visp.safetensors"),  # doctest: +SKIP
...                  scheduler="processes:8", retries=1)
>>> log["counts"]                                                            # doctest: +SKIP
{'done': 1000}
"""

from __future__ import annotations

import functools
import glob
import os
import re
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence, Union

import numpy as np

from ..._dask import file_sha256
from ..._scheduler import SchedulerSpec, parse_scheduler
from ..._series import Step, run_on_cluster, step_result

__all__ = ["SeriesOptions", "map_steps", "run_series", "validate_output", "assemble_map", "LOG_NAME"]

#: The run log in the output folder.
LOG_NAME = "run_log.json"


@dataclass(frozen=True)
class SeriesOptions:
    """What every raster step is inverted with (recorded in the log, checked on resume).

    Attributes
    ----------
    model : str or None
        Stokes model file (``None``: the model shipped for ViSP).
    continuum : float or None
        Quiet-Sun I_c [counts] of every step; None: found in each step.
    wavelength_shift : float
        Added to the files' wavelengths [A].
    threads : int
        Threads of each step's network call.
    device : {"cpu", "cuda"}
    """

    model: Optional[str] = None
    continuum: Optional[float] = None
    wavelength_shift: float = 0.0
    threads: int = 1
    device: str = "cpu"


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "map"


def _dataset_steps(ds: Any) -> list[tuple[int, list[str]]]:
    """Raster steps of a ``dkist.Dataset`` from its header table (no FITS file opened)."""
    fm = ds.files
    base = Path(fm.basepath) if fm.basepath is not None else Path(".")
    headers = ds.headers
    if not {"DINDEX3", "DINDEX4"} <= set(headers.colnames):
        raise ValueError("the dkist dataset's headers have no DINDEX3/DINDEX4: not a ViSP level-1 dataset")
    by_step: dict[int, dict[int, str]] = {}
    for name, row in zip(fm.filenames, headers):
        slot = by_step.setdefault(int(row["DINDEX3"]), {})
        st = int(row["DINDEX4"])
        if st in slot:
            raise ValueError(f"{slot[st]} and {name} are both raster step {int(row['DINDEX3'])}, Stokes {st}")
        slot[st] = str(base / name)
    steps = []
    for n in sorted(by_step):
        slot = by_step[n]
        if len(slot) != 4:
            raise ValueError(f"raster step DINDEX3={n} of the dataset has {len(slot)} Stokes files, not 4")
        steps.append((n, [slot[k] for k in sorted(slot)]))
    missing = [p for _, ps in steps for p in ps if not os.path.isfile(p)]
    if missing:
        raise FileNotFoundError(
            f"{len(missing)} of the dataset's {4 * len(steps)} FITS files are not in {base} "
            f"(e.g. {os.path.basename(missing[0])}): download them first (dkist: dataset.files.download())"
        )
    return steps


def _dataset_name(ds: Any, default: str) -> str:
    inv = getattr(ds, "inventory", None) or {}
    return _safe(str(inv.get("datasetId") or default))


def map_steps(sources: Union[Any, Sequence[Any]]) -> list[tuple[str, list[tuple[int, list[str]]]]]:
    """The maps of ``sources`` and their raster steps.

    Parameters
    ----------
    sources : dkist.Dataset, dkist.TiledDataset, path, glob, or a sequence of them
        Each Dataset, tile, ``.asdf`` file or folder is one map; plain FITS paths and glob
        patterns together make one map named ``map``.

    Returns
    -------
    list of (map name, [(DINDEX3, [I, Q, U, V file paths]), ...])

    Examples
    --------
    >>> map_steps([])
    Traceback (most recent call last):
    ...
    ValueError: no ViSP maps given
    """
    from ..io.visp import group_visp_files, visp_dataset_files

    if isinstance(sources, (str, os.PathLike)) or hasattr(sources, "files"):
        sources = [sources]
    maps: list[tuple[str, list]] = []
    loose: list[str] = []
    for src in sources:
        if hasattr(src, "flat") and hasattr(src, "tiles_shape"):  # dkist.TiledDataset
            name = _dataset_name(src, "tiled")
            for i, tile in enumerate(src.flat):
                if tile is not None:
                    maps.append((f"{name}_tile{i:03d}", _dataset_steps(tile)))
        elif hasattr(src, "files") and hasattr(src, "headers"):  # dkist.Dataset
            maps.append((_dataset_name(src, f"dataset{len(maps)}"), _dataset_steps(src)))
        else:
            p = os.fspath(src)
            if p.lower().endswith(".asdf"):
                files = visp_dataset_files(p)
                maps.append((_safe(Path(p).stem), [(s.step, s.paths) for s in group_visp_files(files)]))
            elif os.path.isdir(p):
                files = sorted(glob.glob(os.path.join(p, "*.fits")) + glob.glob(os.path.join(p, "*.fits.gz")))
                if not files:
                    raise FileNotFoundError(f"{p}: no *.fits files in this directory")
                maps.append((_safe(Path(p).resolve().name), [(s.step, s.paths) for s in group_visp_files(files)]))
            elif os.path.exists(p):
                loose.append(p)
            else:
                found = sorted(glob.glob(p))
                if not found:
                    raise FileNotFoundError(f"{p}: no such file, and no file matches it as a pattern")
                loose += found
    if loose:
        maps.append(("map", [(s.step, s.paths) for s in group_visp_files(loose)]))
    if not maps:
        raise ValueError("no ViSP maps given")
    names = [m for m, _ in maps]
    dup = sorted({m for m in names if names.count(m) > 1})
    if dup:
        raise ValueError(f"two maps have the same name {dup[0]!r}: give each map its own folder or .asdf name")
    return maps


def _model_sha(net: Any) -> str:
    if getattr(net, "_sha256", None) is None:
        net._sha256 = file_sha256(net.path)
    return net._sha256


def _invert_step(step: Step, opts: SeriesOptions, net: Any) -> dict:
    """One task: read the step's four files, invert, write the output atomically."""
    from ..io.visp import VispStep, read_visp_step, visp_map_wcs
    from .frames import FrameInverter
    from .output import write_inversion_fits

    t0 = time.perf_counter()
    number = int(step.name.rsplit("_", 1)[1])
    inv = FrameInverter(
        net, "visp", continuum=opts.continuum, threads=opts.threads, wavelength_shift=opts.wavelength_shift
    )
    res = inv.invert_frame(read_visp_step(VispStep(number, list(step.inputs))))
    cards = net.summary_cards()
    if np.isfinite(res.continuum):  # NaN when no pixel had a usable continuum
        cards["ICONT"] = (res.continuum, "[counts] quiet-Sun continuum used (I_c)")
    cards.update(
        INSTRUME=("VISP", "instrument of the input"),
        DINDEX3=(number, "raster step of the input (level-1 DINDEX3)"),
        FI_CMODE=("given" if opts.continuum is not None else "frame", "I_c given, or found in this step"),
        FI_WSHFT=(float(opts.wavelength_shift), "[Angstrom] added to the input wavelengths"),
        FI_MSHA=(_model_sha(net), ""),  # SHA-256 of the model file: no room for a comment
    )
    write_inversion_fits(
        step.output,
        {k: v[:, :, None] for k, v in res.results.items()},
        res.status[:, None],
        net.nodes,
        net.units,
        visp_map_wcs(res.header),
        cards,
        history=[f"input {k}: {os.path.basename(p)}" for k, p in zip("IQUV", step.inputs)],
        checksum=True,
    )
    return step_result(res.status, t0)


def validate_output(step: Step, opts: SeriesOptions, sha256: str, quantities: Sequence[str]) -> Optional[str]:
    """None if ``step.output`` is a complete result of this step, model and options.

    Parameters
    ----------
    step : fastinv._series.Step
    opts : SeriesOptions
    sha256 : str
        SHA-256 of the run's model file.
    quantities : sequence of str
        The level-2 HDU names the model writes.

    Returns
    -------
    str or None
        Why the output cannot be kept, or None.
    """
    from astropy.io import fits

    try:
        with warnings.catch_warnings(), fits.open(step.output) as hdul:
            warnings.simplefilter("ignore")  # a damaged file is the answer, not a warning
            for hdu in hdul:
                if hdu.verify_checksum() != 1 or hdu.verify_datasum() != 1:
                    return f"HDU {hdu.name or 0}: checksum missing or wrong"
            prim = hdul[0].header
            names = {h.name.lower() for h in hdul}
    except (OSError, ValueError, TypeError) as exc:
        return f"cannot be read ({exc})"
    need = {q.lower() for q in quantities} | {"status", "optical_depth"}
    if not need <= names:
        return f"HDU(s) {sorted(need - names)} missing"
    inputs = [str(h).split(": ", 1)[-1] for h in prim.get("HISTORY", []) if str(h).startswith("input ")]
    if inputs != [os.path.basename(p) for p in step.inputs]:
        return "written from other input files"
    if prim.get("FI_MSHA") != sha256:
        return "written with another model"
    if opts.continuum is None:
        if prim.get("FI_CMODE") != "frame":
            return "written with another --continuum"
    elif prim.get("FI_CMODE") != "given" or prim.get("ICONT") != float(opts.continuum):
        return "written with another --continuum"
    if prim.get("FI_WSHFT") != float(opts.wavelength_shift):
        return "written with another --wavelength-shift"
    return None


def run_series(
    sources: Union[Any, Sequence[Any]],
    out_dir: Union[str, os.PathLike],
    opts: SeriesOptions = SeriesOptions(),
    scheduler: Union[str, SchedulerSpec] = "threads",
    retries: int = 0,
    progress: bool = True,
    client: Any = None,
    on_result: Any = None,
    announce: Any = None,
) -> dict:
    """Invert every raster step of one or more ViSP maps; resumable (module docstring).

    Parameters
    ----------
    sources : dkist.Dataset, dkist.TiledDataset, path, glob, or a sequence of them
        The maps (see :func:`map_steps`).
    out_dir : path
        Output folder (created); one FITS per step and ``run_log.json``.
    opts : SeriesOptions
    scheduler : str or SchedulerSpec
        ``threads[:N]``, ``processes[:N]`` or a ``dask.distributed`` scheduler address.
    retries : int
        Extra attempts of a failing step.
    progress : bool
        One progress bar for all steps.
    client : distributed.Client, optional
        Use this client instead of making one from ``scheduler``.
    on_result : callable, optional
        ``on_result(step_name, log_entry)`` after each step.
    announce : callable, optional
        Called with one line (the dashboard address) once a process or remote scheduler is up.

    Returns
    -------
    dict
        The run log (also in ``out_dir/run_log.json``).

    Examples
    --------
    >>> log = run_series(["VISP_L1_A.asdf", "VISP_L1_B.asdf"], "l2/",           # doctest: +SKIP
    ...                  SeriesOptions(model="visp.safetensors"), scheduler="processes:8", retries=1)
    >>> log["maps"], log["counts"]                                             # doctest: +SKIP
    ({'VISP_L1_A': 400, 'VISP_L1_B': 400}, {'done': 800})
    """
    from .network import LEVEL2_NAMES, StokesNet

    spec = parse_scheduler(scheduler) if isinstance(scheduler, str) else scheduler
    if opts.continuum is not None and not (np.isfinite(opts.continuum) and opts.continuum > 0):
        raise ValueError(f"continuum must be a positive number of counts, got {opts.continuum!r}")
    net = StokesNet.load(opts.model, instrument="visp", device=opts.device, threads=opts.threads)
    sha = _model_sha(net)
    maps = map_steps(sources)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    steps = [
        Step(f"{name}_step_{n:05d}", out / f"{name}_step_{n:05d}.fits", paths) for name, st in maps for n, paths in st
    ]
    header = {
        "command": "fastinv stokes invert --series",
        "options": {**opts.__dict__, "model": net.path, "model_sha256": sha},
        "maps": {name: len(st) for name, st in maps},
        "scheduler": spec.address or f"{spec.kind}:{spec.workers}",
    }
    work = functools.partial(_invert_step, opts=opts, net=net)
    check = functools.partial(
        validate_output, opts=opts, sha256=sha, quantities=[LEVEL2_NAMES.get(q, q) for q in net.quantities]
    )

    return run_on_cluster(
        steps, work, check, spec, client, out / LOG_NAME, retries, progress, header, on_result, announce
    )


# cards the writer sets itself, or that belong to one step, not to a map
_PER_STEP = {"DINDEX3", "HISTORY", "CHECKSUM", "DATASUM", "ORIGIN", "VLOSCONV", "AZIMCONV", "COMMENT", ""}
_PER_STEP |= {"SIMPLE", "BITPIX", "NAXIS", "EXTEND"}


def assemble_map(
    out_dir: Union[str, os.PathLike],
    map_name: str,
    fits_path: Union[str, os.PathLike],
    asdf_path: Union[str, os.PathLike, None] = None,
    overwrite: bool = False,
) -> Path:
    """One level-2 map of a series' step files: columns in raster-step order, as
    ``fastinv stokes invert`` writes a whole map.

    The steps are those of the run log in ``out_dir``; a step that is not done (failed,
    pending) is a NaN column with status 3 (no file), as a missing slit position is in a
    single-map run.

    Parameters
    ----------
    out_dir : path
        The series' output folder (its ``run_log.json`` and step files).
    map_name : str
        The map (a key of the log's ``maps``).
    fits_path : path
        The map's level-2 FITS file (written atomically, with checksums).
    asdf_path : path, optional
        Also write it as a ``dkist.Inversion`` ASDF file (needs ``dkist``).
    overwrite : bool
        Replace existing output files.

    Returns
    -------
    pathlib.Path
        ``fits_path``.

    Raises
    ------
    ValueError
        No run log, an unknown map, or no finished step of the map.

    Examples
    --------
    >>> log = run_series("VISP_L1_A.asdf", "l2/", SeriesOptions(model="visp.safetensors"))  # doctest: +SKIP
    >>> assemble_map("l2/", "VISP_L1_A", "l2/VISP_L1_A.fits", "l2/VISP_L1_A.asdf")         # doctest: +SKIP
    PosixPath('l2/VISP_L1_A.fits')
    """
    import json

    from astropy.io import fits
    from astropy.wcs import WCS

    from ..._atomic import check_outputs
    from .frames import MISSING
    from .output import write_inversion_fits

    out = Path(out_dir)
    try:
        log = json.loads((out / LOG_NAME).read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"{out / LOG_NAME}: no readable run log ({exc})") from None
    if map_name not in log.get("maps", {}):
        raise ValueError(f"{out / LOG_NAME}: no map {map_name!r} (maps: {sorted(log.get('maps', {}))})")
    prefix = f"{map_name}_step_"
    names = sorted(n for n in log["steps"] if n.startswith(prefix) and n[len(prefix) :].isdigit())
    done = [k for k, n in enumerate(names) if log["steps"][n]["status"] in ("done", "skipped")]
    if not done:
        raise ValueError(f"map {map_name!r}: no finished step in {out}")
    outputs = [Path(fits_path)] + ([Path(asdf_path)] if asdf_path is not None else [])
    check_outputs(outputs, [log["steps"][n]["output"] for n in names], overwrite)
    nx = len(names)
    results: dict[str, np.ndarray] = {}
    status = None
    for k in done:
        with fits.open(log["steps"][names[k]]["output"]) as hdul:
            if status is None:
                col = k
                ny = hdul["status"].data.shape[0]
                status = np.full((ny, nx), MISSING, dtype=np.uint8)
                nodes = np.asarray(hdul["optical_depth"].data, dtype=np.float64)
                units, qname = {}, {}
                for h in hdul[1:]:
                    if "QUANTITY" in h.header:
                        q = h.header["QUANTITY"]
                        qname[h.name] = q
                        units[q] = h.header.get("BUNIT", "")
                        results[q] = np.full((nodes.size, ny, nx), np.nan, dtype=np.float32)
                wcs = WCS(next(h for h in hdul[1:] if "QUANTITY" in h.header).header).celestial
                prim = hdul[0].header
                cards = {c.keyword: (c.value, c.comment) for c in prim.cards if c.keyword not in _PER_STEP}
            if hdul["status"].data.shape != (ny, 1):
                raise ValueError(f"{names[k]}: {hdul['status'].data.shape[0]} pixels along the slit, not {ny}")
            status[:, k] = hdul["status"].data[:, 0]
            for ext, q in qname.items():
                results[q][:, :, k] = hdul[ext].data[:, :, 0]
    wcs.wcs.crpix[0] += col  # the map's x = the step file's x + its column
    if cards.get("FI_CMODE", ("",))[0] == "frame":
        cards.pop("ICONT", None)  # one I_c per step: see the step files
    cards["NFRAMES"] = (nx, "raster steps in the map (missing: status 3)")
    history = [f"step {Path(log['steps'][n]['output']).name}" for n in names]
    path = write_inversion_fits(fits_path, results, status, nodes, units, wcs, cards, history=history, checksum=True)
    if asdf_path is not None:
        from .dkist_asdf import write_inversion_asdf

        write_inversion_asdf(asdf_path, path)
    return path
