"""DEMs of a series of AIA time steps (``fastinv dem bp|deepem --series``): files grouped into
six-channel steps by T_OBS, one dask.distributed task per step, resumable (see
:mod:`fastinv._series`).

Each step's output is ``<out_dir>/dem_<method>_<YYYYMMDDTHHMMSS>.fits`` (time of the step's
earliest image), written by the same code as a single run (:func:`run_bp` / :func:`run_deepem`),
so a step's file is bitwise the file a single run on its six images writes. It is valid for a
re-run when its FITS checksums verify, its inputs are the step's files and its method and
options are the run's.
"""

from __future__ import annotations

import functools
import glob
import os
import time
import warnings
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Optional, Sequence, Union

from .._fits import open_fits
from .._scheduler import SchedulerSpec, parse_scheduler
from .._series import Step, run_on_cluster, step_result
from .deepem import SHIPPED_MODELS, shipped_model_path
from .response import AIA_CHANNELS

__all__ = ["group_steps", "run_series", "SeriesOptions", "LOG_NAME"]

#: The run log in the output folder.
LOG_NAME = "run_log.json"
#: Default largest T_OBS difference (s) to a step's 171 A image: above the up to 23 s spread of
#: one step in the bundled flare series (exposure control), below half a 2-min cadence; with
#: full 12 s cadence data each channel's nearest image wins anyway.
DEFAULT_TOLERANCE = 30.0


@dataclass(frozen=True)
class SeriesOptions:
    """What every step of a series is inverted with (recorded in the log, checked on resume)."""

    method: str  # "bp" or "deepem"
    bin: int = 1
    response: Optional[str] = None
    presummed: float = 1.0
    errors: int = 0  # BP: Monte-Carlo draws; DeepEM: 0 or 1 (calibrated errors)
    seed: int = 0
    model: Optional[str] = None
    threads: int = 1
    refine: bool = False  # DeepEM: fit the data within BP's band (``DeepEM.invert(refine=True)``)


def _header_of(path: Path) -> tuple[int, datetime]:
    """(channel, T_OBS) of an AIA file, from the header of its first 2-d image."""
    with open_fits(path) as hdul:
        for hdu in hdul:
            h = hdu.header
            if h.get("NAXIS") == 2 and "WAVELNTH" in h:
                when = h.get("T_OBS") or h.get("DATE-OBS")
                try:
                    t = datetime.fromisoformat(str(when).rstrip("Z").replace("_TAI", ""))
                    chan = int(round(float(h["WAVELNTH"])))
                except (TypeError, ValueError):
                    raise ValueError(f"{path}: unusable T_OBS/DATE-OBS {when!r} or WAVELNTH") from None
                return chan, t
    raise ValueError(f"{path}: no 2-d image with a WAVELNTH keyword (not an AIA image)")


def group_steps(paths: Sequence[Union[str, Path]], tolerance: float = DEFAULT_TOLERANCE) -> tuple[list, list]:
    """Group AIA files into time steps of the six channels.

    Each 171 A image anchors a step; every other channel contributes its image nearest in
    T_OBS within ``tolerance`` seconds (each file to one step at most). Channels other than
    the six DEM channels are ignored.

    Parameters
    ----------
    paths : sequence of path
    tolerance : float
        Largest T_OBS difference to the step's 171 A image, s.

    Returns
    -------
    (steps, incomplete)
        ``steps``: list of (name, [six paths in channel order]), named by the earliest T_OBS
        (``YYYYMMDDTHHMMSS``); ``incomplete``: list of dicts (name, files, missing channels)
        of the steps that lack a channel, and of files no step used (missing 171).
    """
    if not tolerance > 0:
        raise ValueError("tolerance must be > 0 s")
    by_chan: dict[int, list] = {c: [] for c in AIA_CHANNELS}
    for p in paths:
        chan, t = _header_of(Path(p))
        if chan in by_chan:
            by_chan[chan].append((t, str(p)))
    used: set[str] = set()
    steps, incomplete = [], []
    for t171, p171 in sorted(by_chan[171]):
        files = {171: (t171, p171)}
        for c in AIA_CHANNELS:
            near = [(abs((t - t171).total_seconds()), t, p) for t, p in by_chan[c] if p not in used and c != 171]
            near = [n for n in near if n[0] <= tolerance]
            if near:
                files[c] = min(near)[1:]
        used.update(p for _, p in files.values())
        name = min(t for t, _ in files.values()).strftime("%Y%m%dT%H%M%S")
        if len(files) == len(AIA_CHANNELS):
            steps.append((name, [files[c][1] for c in AIA_CHANNELS]))
        else:
            missing = [c for c in AIA_CHANNELS if c not in files]
            incomplete.append({"name": name, "files": sorted(p for _, p in files.values()), "missing": missing})
    left = sorted((t, p) for c in AIA_CHANNELS for t, p in by_chan[c] if p not in used)
    if left:
        incomplete.append({"name": "unmatched", "files": [p for _, p in left], "missing": [171]})
    return steps, incomplete


def _invert_step(step: Step, opts: SeriesOptions) -> dict:
    """One task: invert a step with the single-run pipeline; a summary for the log."""
    from .pipelines import run_bp, run_deepem

    t0 = time.perf_counter()
    if opts.method == "bp":
        res = run_bp(
            step.inputs,
            step.output,
            bin=opts.bin,
            threads=opts.threads,
            response=opts.response,
            progress=False,
            presummed=opts.presummed,
            errors=opts.errors,
            seed=opts.seed,
            overwrite=True,  # a step is run only when its output is missing or failed validation
        )
    else:
        res, _ = run_deepem(
            step.inputs,
            step.output,
            bin=opts.bin,
            threads=opts.threads,
            model=opts.model,
            overwrite=True,
            errors=bool(opts.errors),
            refine=opts.refine,
        )
    return step_result(res.status, t0)


def _method_of(hdr) -> str:
    meth = str(hdr.get("FI_METH", ""))
    return {"basis pursuit": "bp", "deepem": "deepem"}.get(meth, meth)


def validate_output(step: Step, opts: SeriesOptions) -> Optional[str]:
    """None if ``step.output`` is a complete DEM file of this step and these options."""
    from astropy.io import fits

    try:
        with warnings.catch_warnings(), fits.open(step.output) as hdul:
            warnings.simplefilter("ignore")  # a damaged file is the answer, not a warning
            for hdu in hdul:
                if hdu.verify_checksum() != 1 or hdu.verify_datasum() != 1:
                    return f"HDU {hdu.name or 0}: checksum missing or wrong"
            prim = hdul[0].header
            names = {h.name for h in hdul}
    except (OSError, ValueError, TypeError) as exc:
        return f"cannot be read ({exc})"
    if _method_of(prim) != opts.method:
        return f"method {prim.get('FI_METH')!r}, not {opts.method}"
    need = {"STATUS", "CHI2", "LOGT_EM", "EM_TOTAL", "LOGT"} | ({"EM_ERR"} if opts.errors else set())
    if not need <= names:
        return f"HDU(s) {sorted(need - names)} missing"
    inputs = [h.split(": ", 1)[-1] for h in prim.get("HISTORY", []) if str(h).startswith("input ")]
    if inputs != [Path(p).name for p in step.inputs]:
        return "written from other input files"
    if float(prim.get("FI_NSAMP", 0)) != opts.bin * opts.bin * opts.presummed:
        return "written with another --bin / --presummed"
    if opts.method == "bp" and (
        int(prim.get("FI_MCN", 0)) != opts.errors or (opts.errors and int(prim.get("FI_MCSD", -1)) != opts.seed)
    ):
        return "written with other --errors / --seed"
    if opts.method == "deepem":
        if prim.get("FI_MODEL") != _model_file_name(opts.model):
            return f"written with model {prim.get('FI_MODEL')!r}"
        if bool(prim.get("FI_REFIN", False)) != opts.refine or ("REFINE" in names) != opts.refine:
            return "written with other --refine"
        if ("EM_ERR" in names) != bool(opts.errors):
            return "written with other --errors"
    return None


def _model_file_name(model: Optional[str]) -> str:
    """The FI_MODEL a DeepEM step written with ``model`` (a shipped name, a path or None) has."""
    if model is None or model in SHIPPED_MODELS:
        return shipped_model_path(model).name
    return Path(model).name


def _expand(series: Union[str, Sequence[Union[str, Path]]]) -> list[str]:
    if isinstance(series, (str, os.PathLike)):
        paths = sorted(glob.glob(os.fspath(series)))
        if not paths:
            raise ValueError(f"--series {series!r} matches no file")
        return paths
    return [os.fspath(p) for p in series]


def run_series(
    series: Union[str, Sequence[Union[str, Path]]],
    out_dir: Union[str, Path],
    opts: SeriesOptions,
    scheduler: Union[str, SchedulerSpec] = "threads",
    retries: int = 0,
    tolerance: float = DEFAULT_TOLERANCE,
    progress: bool = True,
    client: Any = None,
    on_result: Any = None,
    announce: Any = None,
) -> dict:
    """Invert every complete time step of an AIA series; resumable (see the module docstring).

    Parameters
    ----------
    series : str or sequence of paths
        A glob pattern (``'aia/*.fits'``) or the files.
    out_dir : path
        Output folder (created); holds one FITS per step and ``run_log.json``.
    opts : SeriesOptions
        Method and options of every step.
    scheduler : str or SchedulerSpec
        ``threads[:N]``, ``processes[:N]`` or a ``dask.distributed`` scheduler address.
    retries : int
        Extra attempts of a failing step.
    tolerance : float
        Largest T_OBS spread of one step, s.
    progress : bool
        One progress bar for the series.
    client : distributed.Client, optional
        Use this client instead of making one from ``scheduler``.
    on_result : callable, optional
        Called as ``on_result(step_name, log_entry)`` after each step.
    announce : callable, optional
        Called with one line (the dashboard address) once the scheduler is up.

    Returns
    -------
    dict
        The run log (also in ``out_dir/run_log.json``).
    """
    if opts.method not in ("bp", "deepem"):
        raise ValueError(f"method must be 'bp' or 'deepem', got {opts.method!r}")
    spec = parse_scheduler(scheduler) if isinstance(scheduler, str) else scheduler
    grouped, incomplete = group_steps(_expand(series), tolerance)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    steps = [Step(name, out / f"dem_{opts.method}_{name}.fits", files) for name, files in grouped]
    header = {
        "command": f"fastinv dem {opts.method} --series",
        "options": opts.__dict__,
        "scheduler": spec.address or f"{spec.kind}:{spec.workers}",
        "incomplete": incomplete,
    }
    work = functools.partial(_invert_step, opts=opts)
    check = functools.partial(validate_output, opts=opts)

    return run_on_cluster(
        steps, work, check, spec, client, out / LOG_NAME, retries, progress, header, on_result, announce
    )
