"""The ``fastinv`` command line."""
from __future__ import annotations

import argparse
import json
import sys

import numpy as np


def _cmd_info(args: argparse.Namespace) -> int:
    from . import info

    print(json.dumps(info(), indent=2))
    return 0


def _cmd_dem_bp(args: argparse.Namespace) -> int:
    from .dem.aia import run_bp
    from .dem.basis_pursuit import STATUS

    try:
        res = run_bp(args.files, args.output, png=args.png, bin=args.bin, threads=args.threads,
                     response=args.response, progress=not args.quiet,
                     presummed=args.presummed)
    except (ValueError, OSError, ImportError) as exc:
        print(f"fastinv dem bp: error: {exc}", file=sys.stderr)
        return 1
    codes, counts = np.unique(res.status, return_counts=True)
    summary = ", ".join(f"{STATUS.get(int(c), c)}: {n}" for c, n in zip(codes, counts))
    print(f"wrote {args.output} ({res.status.size} pixels; {summary})")
    return 0


def _add_dem_parser(sub) -> None:
    dem = sub.add_parser("dem", help="differential emission measures of SDO/AIA data")
    dsub = dem.add_subparsers(dest="dem_command", metavar="METHOD")
    p = dsub.add_parser("bp", help="Basis Pursuit (Cheung et al. 2015) DEMs of six AIA images")
    p.add_argument("files", nargs="+", help="six AIA FITS files (94, 131, 171, 193, 211, 335 A)")
    p.add_argument("-o", "--output", required=True, help="output FITS file")
    p.add_argument("--png", default=None, help="also write a quicklook PNG (needs matplotlib)")
    p.add_argument("--bin", type=int, default=1, help="N x N binning before the inversion")
    p.add_argument("--threads", type=int, default=None, help="OpenMP threads (default: all)")
    p.add_argument("--response", default=None,
                   help="response table: aia_v10_eve (default), aia_v10_eve_noblend, "
                        "aia_v9_eve, or a CSV file")
    p.add_argument("--presummed", type=float, default=1.0,
                   help="original pixels averaged into each input pixel, for the error model "
                        "(16 for the 1024x1024 AIA synoptic images)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_dem_bp)
    dem.set_defaults(func=lambda a: (dem.print_help(), 2)[1])


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fastinv",
        description="Fast per-pixel inversions of solar observations (AIA DEMs, Stokes profiles).",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    p = sub.add_parser("info", help="show the compiled engine, SIMD kernels and threads in use")
    p.set_defaults(func=_cmd_info)
    _add_dem_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
