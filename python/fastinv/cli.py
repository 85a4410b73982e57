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


def _cmd_dem_deepem(args: argparse.Namespace) -> int:
    from .dem.aia import run_deepem

    try:
        res, _ = run_deepem(args.files, args.output, png=args.png, compare_png=args.compare_bp, bin=args.bin,
                            threads=args.threads, model=args.model)
    except (ValueError, OSError, ImportError) as exc:
        print(f"fastinv dem deepem: error: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {args.output} ({res.status.size} pixels, {int((res.status == 0).sum())} with finite input)")
    return 0


def _cmd_train_deepem(args: argparse.Namespace) -> int:
    try:
        from .train.deepem import train
    except ImportError as exc:
        print(f"fastinv train: needs PyTorch (pip install 'fastinv[train]'): {exc}", file=sys.stderr)
        return 1
    card = train(args.output, epochs=args.epochs, batch=args.batch, seed=args.seed, keep_failed=args.keep_failed,
                 threads=args.threads, progress=not args.quiet, physics_weight=args.physics_weight)
    m = card["metrics"]
    print(f"wrote {args.output} (+ .json card): validation MSE {m['final_val_mse']:.4f} after {args.epochs} epochs")
    return 0


def _cmd_evaluate_deepem(args: argparse.Namespace) -> int:
    from .dem.deepem import DeepEM
    from .dem.evaluate import evaluate_deepem

    metrics = evaluate_deepem(DeepEM.load(args.model), threads=args.threads)
    text = json.dumps(metrics, indent=2)
    if args.output:
        from ._atomic import write_text

        write_text(args.output, text)
    print(json.dumps(metrics["overall"], indent=2))
    return 0


def _cmd_train_stokes(args: argparse.Namespace) -> int:
    try:
        from .train.stokes import train
    except ImportError as exc:
        print(f"fastinv train: needs PyTorch (pip install 'fastinv[train]'): {exc}", file=sys.stderr)
        return 1
    try:
        card = train(args.data, args.output, architecture=args.architecture, nodes=args.nodes,
                     epochs=args.epochs, batch=args.batch, lr=args.lr, seed=args.seed,
                     max_profiles=args.max_profiles, physics_weight=args.physics_weight,
                     threads=args.threads, progress=not args.quiet)
    except (ValueError, OSError) as exc:
        print(f"fastinv train stokes: error: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {args.output} (+ .json card) in {card['training']['seconds']:.0f} s; held-out metrics:")
    print(json.dumps(card["metrics"]["summary"], indent=2))
    return 0


def _cmd_evaluate_stokes(args: argparse.Namespace) -> int:
    from .stokes.evaluate import evaluate, evaluate_lightweaver
    from .stokes.network import StokesNet

    try:
        net = StokesNet.load(args.model, instrument=args.instrument, threads=args.threads)
        result = {}
        if args.data:
            result["synthetic"] = evaluate(net, args.data, threads=args.threads)
        if args.lightweaver:
            result["lightweaver"] = evaluate_lightweaver(net, n=args.lightweaver, threads=args.threads,
                                                         progress=not args.quiet)
    except (ValueError, OSError, ImportError) as exc:
        print(f"fastinv evaluate stokes: error: {exc}", file=sys.stderr)
        return 1
    if not result:
        print("fastinv evaluate stokes: give --data SET.h5 and/or --lightweaver N", file=sys.stderr)
        return 2
    if args.output:
        from ._atomic import write_text

        write_text(args.output, json.dumps(result, indent=2))
    print(json.dumps({k: v["summary"] for k, v in result.items()}, indent=2))
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    run_demo(args.out, threads=args.threads)
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
    p = dsub.add_parser("deepem", help="DeepEM DEMs (a per-pixel network, Wright et al. 2018) of six AIA images")
    p.add_argument("files", nargs="+", help="six AIA FITS files (94, 131, 171, 193, 211, 335 A)")
    p.add_argument("-o", "--output", required=True, help="output FITS file (same layout as 'dem bp')")
    p.add_argument("--png", default=None, help="also write a quicklook PNG at log T 5.9, 6.3, 7.0")
    p.add_argument("--compare-bp", default=None, metavar="PNG",
                   help="also run Basis Pursuit and write BP and DeepEM side by side into PNG")
    p.add_argument("--model", default=None, help="a DeepEM model file (default: the shipped one)")
    p.add_argument("--bin", type=int, default=1, help="N x N binning before the inversion")
    p.add_argument("--threads", type=int, default=None, help="threads (default: all)")
    p.set_defaults(func=_cmd_dem_deepem)
    dem.set_defaults(func=lambda a: (dem.print_help(), 2)[1])


def _add_deepem_tools(sub) -> None:
    train = sub.add_parser("train", help="train fastinv's networks (needs PyTorch: pip install 'fastinv[train]')")
    tsub = train.add_subparsers(dest="train_command", metavar="MODEL")
    p = tsub.add_parser("deepem", help="DeepEM on Basis Pursuit solutions of the 2014-01-01 AIA synoptic set")
    p.add_argument("-o", "--output", required=True, help="model file to write (.safetensors; card in .json)")
    p.add_argument("--epochs", type=int, default=200, help="training epochs (default 200, as the shipped model)")
    p.add_argument("--batch", type=int, default=2048)
    p.add_argument("--seed", type=int, default=0, help="random seed (same seed, same model)")
    p.add_argument("--keep-failed", action="store_true", help="keep pixels where BP failed (as the original)")
    p.add_argument("--physics-weight", type=float, default=1e-3,
                   help="add this weight x mean(((K EM - I) / sigma)^2) to the loss (re-synthesis through the "
                        "AIA responses against the data; default 1e-3, as the shipped model; 0 = plain DeepEM)")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=_cmd_train_deepem)
    _add_stokes_training(tsub)
    train.set_defaults(func=lambda a: (train.print_help(), 2)[1])
    ev = sub.add_parser("evaluate", help="agreement metrics of a trained network")
    esub = ev.add_subparsers(dest="evaluate_command", metavar="MODEL")
    p = esub.add_parser("deepem", help="DeepEM vs Basis Pursuit on the held-out 2011-02-15 flare series")
    p.add_argument("--model", default=None, help="model file (default: the shipped one)")
    p.add_argument("-o", "--output", default=None, help="write all metrics as JSON")
    p.add_argument("--threads", type=int, default=None)
    p.set_defaults(func=_cmd_evaluate_deepem)
    p = esub.add_parser("stokes", help="a Stokes network against held-out synthetic profiles and lightweaver",
                        description="Pearson r, RMSE and bias per quantity and log tau node "
                                    "(fastinv.stokes.evaluate) on the held-out last 5 % of a training "
                                    "set and/or on profiles of random atmospheres computed by "
                                    "lightweaver (an independent code; pip install lightweaver).")
    p.add_argument("--model", default=None, help="model file (default: the shipped one of --instrument)")
    p.add_argument("--instrument", choices=("hinode", "visp"), default=None)
    p.add_argument("--data", default=None, help="HDF5 training set whose held-out rows to use")
    p.add_argument("--lightweaver", type=int, default=0, metavar="N",
                   help="also synthesise N random atmospheres with lightweaver (about 0.5 s each)")
    p.add_argument("-o", "--output", default=None, help="write all metrics as JSON")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_evaluate_stokes)
    ev.set_defaults(func=lambda a: (ev.print_help(), 2)[1])
    p = sub.add_parser("demo", help="invert the bundled AIA flare data with Basis Pursuit and DeepEM")
    p.add_argument("--out", default="fastinv-demo", help="folder for the FITS and PNG files (default: fastinv-demo)")
    p.add_argument("--threads", type=int, default=None)
    p.set_defaults(func=_cmd_demo)


def _add_stokes_training(tsub) -> None:
    p = tsub.add_parser("stokes", help="a Stokes inversion network on a synthetic training set",
                        description="Train the compact 1D CNN (default) or Agudelo's MUISCA on a set "
                                    "written by 'fastinv stokes synth --model lte' (HDF5): first 90 % "
                                    "of the rows train, next 5 % validate, last 5 % are held out for "
                                    "'fastinv evaluate stokes'. Writes the model (.safetensors, scalings "
                                    "and metrics in its card) and the card as .json beside it.")
    p.add_argument("data", help="training set (.h5) from 'fastinv stokes synth --model lte'")
    p.add_argument("-o", "--output", required=True, help="model file to write (.safetensors)")
    p.add_argument("--architecture", choices=("compact-cnn", "muisca"), default="compact-cnn",
                   help="compact-cnn: I, Q, U, V -> T, v_LOS, |B|, inclination, azimuth (default); "
                        "muisca: I, V -> T, v_LOS, B_LOS (Agudelo et al.)")
    p.add_argument("--nodes", choices=("7", "21"), default="7",
                   help="output nodes: 7 = log tau 0 ... -3 step 0.5 (default), 21 = -2.0 ... 0.0 step 0.1")
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--batch", type=int, default=512)
    p.add_argument("--lr", type=float, default=2e-3, help="initial learning rate (cosine decay to lr/100)")
    p.add_argument("--seed", type=int, default=0, help="random seed (same seed, same model)")
    p.add_argument("--max-profiles", type=int, default=None, help="use only this many training rows")
    p.add_argument("--physics-weight", type=float, default=0.0,
                   help="weight of the weak-field B_LOS term (Fe I 6302.5) in the loss (0 = off)")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_train_stokes)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fastinv",
        description="Fast per-pixel inversions of solar observations (AIA DEMs, Stokes profiles).",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    p = sub.add_parser("info", help="show the compiled engine, SIMD kernels and threads in use")
    p.set_defaults(func=_cmd_info)
    _add_dem_parser(sub)
    _add_deepem_tools(sub)
    from .stokes.training import register_cli as _register_stokes  # stokes synth (me|lte)

    _register_stokes(sub)
    from .stokes.cli_invert import register_cli as _register_stokes_invert  # stokes invert

    _register_stokes_invert(sub)
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
