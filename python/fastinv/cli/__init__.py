"""The ``fastinv`` command line: one module per command group.

``fastinv info`` and ``fastinv demo`` live here; ``dem``, ``stokes``, ``train``/``evaluate``, ``bench``
in their modules, each with a ``register(subparsers)``.
"""

from __future__ import annotations

import argparse
import json
import sys

from . import bench, dem, stokes, train
from ._common import reports_errors, thread_count

__all__ = ["main", "build_parser"]


def _info_text(info: dict) -> str:
    """``fastinv.info()`` for a person: one fact a line, and where the work will run."""
    lines = [
        f"fastinv {info['version']}",
        f"CPU kernels:  {info['isa']} (available here: {', '.join(info['available_isas'])}; choose with FASTINV_ISA)",
        "bf16 on CPU:  "
        + (
            "available (AVX512-BF16); use precision='bf16' or 'bf16x2'"
            if info["bf16"]
            else "not available (needs AVX512-BF16)"
        ),
        f"threads:      {info['threads']} by default" + ("" if info["openmp"] else " (built without OpenMP: 1 thread)"),
    ]
    if not info["cuda_compiled"]:
        lines.append("CUDA:         not compiled in (no nvcc at build time); the CPU is used")
    elif info["cuda_devices"] == 0:
        lines.append("CUDA:         compiled in, but no usable GPU found; the CPU is used")
    else:
        lines.append(f"CUDA:         compiled in, {info['cuda_devices']} device(s); use device='cuda' or --device cuda")
    return "\n".join(lines)


@reports_errors("fastinv info")
def _cmd_info(args: argparse.Namespace) -> int:
    from .. import info

    print(json.dumps(info(), indent=2) if args.json else _info_text(info()))
    return 0


@reports_errors("fastinv demo")
def _cmd_demo(args: argparse.Namespace) -> int:
    from ..demo import run_demo

    run_demo(args.out, threads=args.threads)
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The ``fastinv`` argument parser with every command registered."""
    parser = argparse.ArgumentParser(
        prog="fastinv",
        description="Fast per-pixel inversions of solar observations: DEMs of SDO/AIA images "
        "(Basis Pursuit, DeepEM) and Stokes inversions of Hinode SP / DKIST ViSP "
        "maps, by fastinv's own C++/CUDA kernels.",
        epilog="Start with 'fastinv demo'; 'fastinv COMMAND --help' explains each command.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    p = sub.add_parser(
        "info",
        help="the compiled engine: version, SIMD kernels, threads, CUDA",
        description="What fastinv will run on: SIMD kernels, default threads, "
        "whether CUDA is compiled in and which GPUs it sees.",
    )
    p.add_argument("--json", action="store_true", help="machine-readable JSON instead of text")
    p.set_defaults(func=_cmd_info)
    p = sub.add_parser(
        "demo",
        help="invert the bundled AIA flare images with Basis Pursuit and DeepEM",
        description="Runs both DEM methods on the bundled 67 x 67 AIA cut-out of "
        "the 2011-02-15 X2.2 flare and writes FITS files and "
        "quicklook PNGs.",
    )
    p.add_argument("--out", default="fastinv-demo", help="folder for the FITS and PNG files (default: fastinv-demo)")
    p.add_argument("--threads", type=thread_count, default=None)
    p.set_defaults(func=_cmd_demo)
    dem.register(sub)
    stokes.register(sub)
    train.register(sub)
    bench.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run ``fastinv`` with ``argv`` (default: the command line); returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
