"""``fastinv dem bp|deepem``: DEMs of six SDO/AIA images."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from ._common import OVERWRITE_HELP, add_group, add_scheduler_arguments, reports_errors, thread_count

_AIA_FILES = "six AIA FITS files (94, 131, 171, 193, 211, 335 A), level 1 or 1.5"


def _series(args: argparse.Namespace, method: str) -> int:
    """``--series``: every time step of a set of AIA files, one output per step, resumable."""
    from .._scheduler import parse_scheduler
    from .._series import summary
    from ..dem.series import LOG_NAME, SeriesOptions, run_series

    spec = parse_scheduler(args.scheduler)
    opts = SeriesOptions(
        method=method,
        bin=args.bin,
        response=getattr(args, "response", None),
        presummed=getattr(args, "presummed", 1.0),
        errors=getattr(args, "errors", 0),
        seed=getattr(args, "seed", 0),
        model=getattr(args, "model", None),
        threads=args.threads or spec.threads_per_step(),
        refine=getattr(args, "refine", False),
    )
    log = run_series(
        args.series,
        args.output,
        opts,
        scheduler=spec,
        retries=args.retries,
        tolerance=args.tolerance,
        progress=not args.quiet,
        announce=print,
    )
    for step in log["incomplete"]:
        print(
            f"skipped incomplete step {step['name']}: no image for channel(s) {step['missing']} A near {step['files']}"
        )
    failed = {name: e for name, e in log["steps"].items() if e["status"] == "failed"}
    for name, e in failed.items():
        print(f"step {name} failed: {e['error']}")
    print(f"{len(log['steps'])} steps: {summary(log)}; log in {Path(args.output) / LOG_NAME}")
    return 1 if failed else 0


def _check_inputs(args: argparse.Namespace, prog: str) -> None:
    if bool(args.files) == bool(args.series):
        raise ValueError(f"{prog}: give either six AIA files or --series PATTERN")


@reports_errors("fastinv dem bp")
def _cmd_bp(args: argparse.Namespace) -> int:
    from ..dem.pipelines import run_bp

    _check_inputs(args, "dem bp")
    if args.series:
        return _series(args, "bp")
    from ..status import DEM_STATUS

    res = run_bp(
        args.files,
        args.output,
        png=args.png,
        bin=args.bin,
        threads=args.threads,
        response=args.response,
        progress=not args.quiet,
        presummed=args.presummed,
        errors=args.errors,
        seed=args.seed,
        overwrite=args.overwrite,
    )
    codes, counts = np.unique(res.status, return_counts=True)
    summary = ", ".join(f"{DEM_STATUS.get(int(c), c)}: {n}" for c, n in zip(codes, counts))
    print(f"wrote {args.output} ({res.status.size} pixels; {summary})")
    return 0


@reports_errors("fastinv dem deepem")
def _cmd_deepem(args: argparse.Namespace) -> int:
    from ..dem.pipelines import run_deepem

    _check_inputs(args, "dem deepem")
    if args.series:
        if args.png or args.compare_bp:
            raise ValueError("--png/--compare-bp are for single runs, not --series")
        return _series(args, "deepem")

    res, _ = run_deepem(
        args.files,
        args.output,
        png=args.png,
        compare_png=args.compare_bp,
        bin=args.bin,
        threads=args.threads,
        model=args.model,
        overwrite=args.overwrite,
        refine=args.refine,
        errors=args.errors,
    )
    what = "refined to fit the data" if args.refine else "with finite input"
    print(f"wrote {args.output} ({res.status.size} pixels, {int((res.status == 0).sum())} {what})")
    return 0


def register(sub) -> None:
    """Add ``fastinv dem`` and its methods."""
    dsub = add_group(
        sub,
        "dem",
        help="differential emission measures (DEMs) of SDO/AIA images",
        description="Emission measure per log T bin for every pixel of six AIA "
        "EUV images, written as FITS with the input's WCS.",
        metavar="METHOD",
    )
    p = dsub.add_parser(
        "bp",
        help="Basis Pursuit (Cheung et al. 2015) DEMs of six AIA images",
        description="Sparse DEMs by linear programming (Cheung et al. 2015) for "
        "every pixel; failed pixels get a status code and NaN "
        "products. The output FITS is written atomically.",
    )
    p.add_argument("files", nargs="*", help=_AIA_FILES)
    p.add_argument(
        "-o", "--output", required=True, help="output FITS file (written atomically); with --series an output folder"
    )
    p.add_argument("--png", default=None, metavar="PATH", help="also write a quicklook PNG to PATH (needs matplotlib)")
    p.add_argument("--bin", type=int, default=1, help="N x N binning before the inversion")
    p.add_argument("--threads", type=thread_count, default=None, help="OpenMP threads (default: all)")
    p.add_argument(
        "--response",
        default=None,
        help="response table: aia_v10_eve (default), aia_v10_eve_noblend, aia_v9_eve, or a CSV file",
    )
    p.add_argument(
        "--presummed",
        type=float,
        default=1.0,
        help="original pixels averaged into each input pixel, for the error model "
        "(16 for the 1024x1024 AIA synoptic images)",
    )
    p.add_argument(
        "--samples",
        "--errors",
        dest="errors",
        type=int,
        default=0,
        metavar="N",
        help="1-sigma errors of the EM, log T and total EM from N Monte-Carlo draws per "
        "pixel (data perturbed by the AIA error model, re-solved; about N times "
        "the solve time); 0 (default): none",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the Monte-Carlo draws (default 0)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP)
    _series_arguments(p)
    p.set_defaults(func=_cmd_bp)
    p = dsub.add_parser(
        "deepem",
        help="DeepEM DEMs (a per-pixel network, Wright et al. 2018) of six AIA images",
        description="DeepEM (Wright et al. 2018) run by fastinv's engine on "
        "every pixel; same output layout as 'dem bp', written "
        "atomically.",
    )
    p.add_argument("files", nargs="*", help=_AIA_FILES)
    p.add_argument(
        "-o",
        "--output",
        required=True,
        help="output FITS file (same layout as 'dem bp'; written atomically); with --series an output folder",
    )
    p.add_argument(
        "--png", default=None, metavar="PATH", help="also write a quicklook PNG at log T 5.9, 6.3, 7.0 to PATH"
    )
    p.add_argument(
        "--compare-bp",
        default=None,
        metavar="PATH",
        help="also run Basis Pursuit and write BP and DeepEM side by side to PATH (PNG)",
    )
    p.add_argument("--model", default=None, help="a DeepEM model file (default: the shipped one)")
    p.add_argument(
        "--refine",
        action="store_true",
        help="move each EM to the closest one that fits the data within Basis Pursuit's band (REFINE map)",
    )
    p.add_argument(
        "--errors",
        action="store_true",
        help="also 1-sigma errors of the EM, log T and total EM (the data's noise through the "
        "network's Jacobian plus the model card's calibrated model error)",
    )
    p.add_argument("--bin", type=int, default=1, help="N x N binning before the inversion")
    p.add_argument("--threads", type=thread_count, default=None, help="threads (default: all)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar (--series)")
    p.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP)
    _series_arguments(p)
    p.set_defaults(func=_cmd_deepem)


def _series_arguments(p) -> None:
    g = p.add_argument_group(
        "series",
        "Many time steps: the files matching PATTERN are grouped into six-channel steps by "
        "T_OBS and inverted one dask task per step into OUTPUT/dem_<method>_<time>.fits. "
        "A re-run skips steps whose output is complete (FITS checksums, inputs, options) and "
        "redoes the rest; OUTPUT/run_log.json records every step (done, failed with its "
        "error, skipped). Needs fastinv[dask].",
    )
    g.add_argument("--series", metavar="PATTERN", help="glob of AIA files, quoted: 'aia/*.fits'")
    add_scheduler_arguments(g)
    g.add_argument(
        "--tolerance",
        type=float,
        default=30.0,
        help="largest T_OBS difference of a step's images to its 171 A image, s (default 30)",
    )
