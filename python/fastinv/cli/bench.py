"""``fastinv bench``: a model's throughput with fastinv and its installed peers, one run."""

from __future__ import annotations

import argparse
import json

from ._common import OVERWRITE_HELP, reports_errors, thread_count

DESCRIPTION = """\
Runs a model file exported with fastinv.export (or a shipped model by name: deepem,
stokes_hinode, stokes_visp) with fastinv and, side by side in the same run and with the
same threads, with the peers that are installed: PyTorch (the network rebuilt from the
file's graph) and ONNX Runtime (through an ONNX export of it). Before timing, every peer's
outputs on the first samples are compared with fastinv's and the max error is printed.
Each timed round runs every implementation once and measures this CPU's multiply-add peak
once (float32 FMA; the bf16 peak with --precision bf16), so the fractions of the peak hold
on a machine that other jobs are loading. Inputs are random normal samples in the model's
layout: throughput, not accuracy.

Printed: samples/s, GFLOP/s of the layers as written (the same count for everyone),
the fraction of the peak that the FLOPs really executed reach (fastinv's Winograd
convolutions and fused pools execute fewer) and fastinv's speed-up over each peer.
--json also saves the machine (CPU, cores, kernels, versions, load average)."""


def _peers(text: str) -> list[str]:
    from ..benchmarking import PEERS

    names = [p.strip() for p in text.split(",") if p.strip()]
    unknown = [p for p in names if p not in PEERS and p != "none"]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown peer(s) {', '.join(unknown)}; choose from {', '.join(PEERS)}")
    return [p for p in names if p != "none"]


def _positive(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {n}")
    return n


def register(sub) -> None:
    """Add ``fastinv bench`` to the command line."""
    p = sub.add_parser(
        "bench",
        help="throughput of a model with fastinv vs PyTorch and ONNX Runtime on this machine",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("model", metavar="MODEL", help="a .safetensors model file, or deepem / stokes_hinode / stokes_visp")
    p.add_argument(
        "--samples",
        type=_positive,
        default=1 << 20,
        help="samples per call: pixels for per-pixel models, profiles for 1D CNNs (default: 1048576)",
    )
    p.add_argument("--threads", type=thread_count, default=None, help="threads for every implementation")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu", help="where to run (default: cpu)")
    p.add_argument(
        "--precision",
        choices=["fp32", "bf16", "bf16x2", "tf32"],
        default="fp32",
        help="fastinv's arithmetic, as fastinv.load(precision=...); with bf16 or bf16x2 the PyTorch "
        "peer also runs under bf16 autocast (default: fp32)",
    )
    p.add_argument(
        "--compare",
        type=_peers,
        default=["torch", "onnxruntime"],
        help="comma-separated peers: torch, onnxruntime, or none (default: torch,onnxruntime)",
    )
    p.add_argument("--rounds", type=_positive, default=5, help="timed rounds; the median is reported (default: 5)")
    p.add_argument("--json", metavar="OUT.json", help="also write every figure and the machine details here")
    p.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP)
    p.set_defaults(func=_cmd_bench)


def format_report(r: dict) -> str:
    """The printed report of :func:`fastinv.benchmarking.run_benchmark`'s result."""
    from ..benchmarking import TABLE_HEADER, table_rows

    name = r["model"].rsplit("/", 1)[-1]
    m = r["machine"]
    lines = [
        f"{name}: {r['samples']} samples, {r['threads']} thread(s), {r['device']} {r['precision']}, "
        f"kernels {m['isa']}, {r['rounds']} round(s)",
        f"machine: {m['cpu']}, {m['cores']} logical CPUs, load average {m['loadavg_1min']:.1f} "
        "(other jobs slow every implementation alike: quote the ratios and fractions)",
    ]
    if r["peak"]:
        lines.append(
            f"peak: {r['peak']['gflops']:.1f} GFLOP/s ({r['peak']['what']}, {r['peak']['isa']}, measured in this run)"
        )
    for peer, p in r["parity"].items():
        lines.append(
            f"parity: {peer} vs fastinv on {p['samples']} samples: max error {p['max_abs_error']:.3g} "
            f"({p['max_error_of_output_scale']:.2g} of the output scale)"
        )
    for peer, note in r["skipped"].items():
        lines.append(f"skipped {peer}: {note}")
    impls = {x["impl"]: {**x, "median": x["median_s"]} for x in r["results"]}
    lines += ["", *TABLE_HEADER, *table_rows(name, impls)]
    return "\n".join(lines)


@reports_errors("fastinv bench", also=(RuntimeError,))
def _cmd_bench(args: argparse.Namespace) -> int:
    from .._atomic import check_outputs, write_text
    from ..benchmarking import resolve_model, run_benchmark

    check_outputs([args.json], [resolve_model(args.model)], overwrite=args.overwrite)
    result = run_benchmark(
        args.model,
        samples=args.samples,
        threads=args.threads,
        device=args.device,
        precision=args.precision,
        compare=args.compare,
        rounds=args.rounds,
    )
    print(format_report(result))
    if args.json:
        write_text(args.json, json.dumps(result, indent=2) + "\n")
    return 0
