"""``fastinv train`` and ``fastinv evaluate``: train fastinv's networks (PyTorch) and measure them."""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys

from .._atomic import check_outputs
from ._common import OVERWRITE_HELP, add_group, reports_errors, thread_count


@reports_errors("fastinv train deepem")
def _cmd_train_deepem(args: argparse.Namespace) -> int:
    from ..dem.basis_pursuit import DEEPEM_LOGT, DEFAULT_LOGT
    from ..train.deepem import train

    check_outputs([args.output, args.output + ".json"], [args.init] if args.init else [], args.overwrite)
    card = train(
        args.output,
        epochs=args.epochs,
        batch=args.batch,
        seed=args.seed,
        keep_failed=args.keep_failed,
        threads=args.threads,
        progress=not args.quiet,
        physics_weight=args.physics_weight,
        logt=DEFAULT_LOGT if args.bins == 21 else DEEPEM_LOGT,
        synthetic=args.synthetic,
        init=args.init,
        max_pixels=args.max_pixels,
        command=shlex.join(["fastinv", *sys.argv[1:]]),
    )
    m = card["metrics"]
    print(f"wrote {args.output} (+ .json card): validation MSE {m['final_val_mse']:.4f} after {args.epochs} epochs")
    return 0


@reports_errors("fastinv evaluate deepem")
def _cmd_evaluate_deepem(args: argparse.Namespace) -> int:
    from ..dem.deepem import SHIPPED_MODELS
    from ..dem.evaluate import evaluate_shipped, format_table

    files = [m for m in args.model or [] if m not in SHIPPED_MODELS]
    check_outputs([args.output], files, args.overwrite)
    metrics = evaluate_shipped(args.model or None, threads=args.threads)
    text = json.dumps(metrics, indent=2)
    if args.output:
        from .._atomic import write_text

        write_text(args.output, text)
    print(text if args.json else format_table(metrics))
    return 0


@reports_errors("fastinv train stokes")
def _cmd_train_stokes(args: argparse.Namespace) -> int:
    if args.target == "me":
        return _train_stokes_me(args)
    if not args.data:
        print("fastinv train stokes: error: give the training set DATA (.h5) (or --target me)", file=sys.stderr)
        return 2
    from ..train.stokes import train

    check_outputs([args.output, args.output + ".json"], [args.data], args.overwrite)
    card = train(
        args.data,
        args.output,
        architecture=args.architecture,
        nodes=args.nodes,
        epochs=args.epochs,
        batch=args.batch,
        lr=args.lr,
        seed=args.seed,
        max_profiles=args.max_profiles,
        physics_weight=args.physics_weight,
        threads=args.threads,
        progress=not args.quiet,
    )
    print(f"wrote {args.output} (+ .json card) in {card['training']['seconds']:.0f} s; held-out metrics:")
    print(json.dumps(card["metrics"]["summary"], indent=2))
    return 0


def _train_stokes_me(args: argparse.Namespace) -> int:
    from ..train.stokes_me import train_me

    if args.data:
        print(
            "fastinv train stokes: error: --target me makes its own ME-synthetic set (--n, --instrument); "
            f"drop {args.data!r}",
            file=sys.stderr,
        )
        return 2
    check_outputs([args.output, args.output + ".json"], overwrite=args.overwrite)
    card = train_me(
        args.output,
        instrument=args.instrument,
        n=args.n,
        epochs=args.epochs,
        batch=args.batch,
        lr=args.lr,
        seed=args.seed,
        threads=args.threads,
        progress=not args.quiet,
        command=(
            f"fastinv train stokes --target me --instrument {args.instrument} --n {args.n} --epochs {args.epochs} "
            f"--batch {args.batch} --lr {args.lr:g} --seed {args.seed}"
            + (f" --threads {args.threads}" if args.threads else "")
            + f" -o {os.path.basename(args.output)}"
        ),
    )
    rmse = card["metrics"]["validation_rmse"]
    print(f"wrote {args.output} (+ .json card) in {card['training']['seconds']:.0f} s; validation RMSE:")
    print(json.dumps({k: round(v, 4) for k, v in rmse.items()}, indent=2))
    return 0


@reports_errors("fastinv evaluate stokes")
def _cmd_evaluate_stokes(args: argparse.Namespace) -> int:
    from ..stokes.inversion.evaluate import evaluate, evaluate_lightweaver
    from ..stokes.inversion.network import StokesNet

    if not (args.data or args.lightweaver):
        print("fastinv evaluate stokes: error: give --data SET.h5 and/or --lightweaver N", file=sys.stderr)
        return 2
    inputs = [p for p in (args.model, args.data) if p]
    check_outputs([args.output], inputs, args.overwrite)
    net = StokesNet.load(args.model, instrument=args.instrument, threads=args.threads)
    result = {}
    if args.data:
        result["synthetic"] = evaluate(net, args.data, threads=args.threads)
    if args.lightweaver:
        result["lightweaver"] = evaluate_lightweaver(
            net, n=args.lightweaver, threads=args.threads, progress=not args.quiet
        )
    if args.output:
        from .._atomic import write_text

        write_text(args.output, json.dumps(result, indent=2))
    print(json.dumps({k: v["summary"] for k, v in result.items()}, indent=2))
    return 0


def register(sub) -> None:
    """Add ``fastinv train`` and ``fastinv evaluate``."""
    tsub = add_group(
        sub,
        "train",
        help='train fastinv\'s networks (needs PyTorch: pip install "fastinv[train]")',
        description="Train DeepEM or a Stokes inversion network with PyTorch and "
        "export it to fastinv's model format (.safetensors with its card).",
        metavar="MODEL",
    )
    p = tsub.add_parser("deepem", help="DeepEM on Basis Pursuit solutions of the 2014-01-01 AIA synoptic set")
    p.add_argument(
        "-o", "--output", required=True, help="model file to write (.safetensors; card in .json; written atomically)"
    )
    p.add_argument("--epochs", type=int, default=200, help="training epochs (default 200, as the shipped model)")
    p.add_argument("--batch", type=int, default=2048)
    p.add_argument("--seed", type=int, default=0, help="random seed (same seed, same model)")
    p.add_argument("--keep-failed", action="store_true", help="keep pixels where BP failed (as the original)")
    p.add_argument(
        "--physics-weight",
        type=float,
        default=1e-3,
        help="add this weight x mean(((K EM - I) / sigma)^2) to the loss (re-synthesis through the "
        "AIA responses against the data; default 1e-3, as the shipped model; 0 = plain DeepEM)",
    )
    p.add_argument(
        "--bins",
        type=int,
        choices=(18, 21),
        default=18,
        help="output grid: 18 (log T 5.5..7.2, the paper's) or 21 (5.5..7.5, BP's default)",
    )
    p.add_argument(
        "--synthetic",
        type=int,
        default=0,
        help="add this many synthetic pixels with hot (log T 6.8..7.5) components, AIA noise and BP labels",
    )
    p.add_argument("--init", default=None, help="start from this DeepEM model's weights (shared bins)")
    p.add_argument("--max-pixels", type=int, default=None, help="seeded random subset of the training pixels")
    p.add_argument("--threads", type=thread_count, default=None)
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    p.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP)
    p.set_defaults(func=_cmd_train_deepem)
    _add_train_stokes(tsub)
    esub = add_group(
        sub,
        "evaluate",
        help="accuracy of a trained network against independent references",
        description="Metrics of a network against references it was not trained "
        "on (Basis Pursuit on held-out AIA data; held-out synthetic "
        "profiles and lightweaver for Stokes).",
        metavar="MODEL",
    )
    p = esub.add_parser("deepem", help="DeepEM vs Basis Pursuit on the held-out 2011-02-15 flare series")
    p.add_argument(
        "--model",
        action="append",
        default=None,
        help="a shipped model's name (deepem18, deepem21) or a model file; repeatable (default: every shipped one)",
    )
    p.add_argument("--json", action="store_true", help="print all metrics as JSON instead of the table")
    p.add_argument("-o", "--output", default=None, help="write all metrics as JSON (written atomically)")
    p.add_argument("--threads", type=thread_count, default=None)
    p.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP)
    p.set_defaults(func=_cmd_evaluate_deepem)
    p = esub.add_parser(
        "stokes",
        help="a Stokes network against held-out synthetic profiles and lightweaver",
        description="Pearson r, RMSE and bias per quantity and log tau node "
        "(fastinv.stokes.inversion.evaluate) on the held-out last 5 % of a training "
        "set and/or on profiles of random atmospheres computed by "
        "lightweaver (an independent code; pip install lightweaver).",
    )
    p.add_argument("--model", default=None, help="model file (default: the shipped one of --instrument)")
    p.add_argument("--instrument", choices=("hinode", "visp"), default=None)
    p.add_argument("--data", default=None, help="HDF5 training set whose held-out rows to use")
    p.add_argument(
        "--lightweaver",
        type=int,
        default=0,
        metavar="N",
        help="also synthesise N random atmospheres with lightweaver (about 0.5 s each)",
    )
    p.add_argument("-o", "--output", default=None, help="write all metrics as JSON (written atomically)")
    p.add_argument("--threads", type=thread_count, default=None)
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP)
    p.set_defaults(func=_cmd_evaluate_stokes)


def _add_train_stokes(tsub) -> None:
    p = tsub.add_parser(
        "stokes",
        help="a Stokes inversion network on a synthetic training set",
        description="Train the compact 1D CNN (default) or Agudelo's MUISCA on a set "
        "written by 'fastinv stokes synth --model lte' (HDF5): first 90 % "
        "of the rows train, next 5 % validate, last 5 % are held out for "
        "'fastinv evaluate stokes'. Writes the model (.safetensors, scalings "
        "and metrics in its card) and the card as .json beside it.",
    )
    p.add_argument("data", nargs="?", default=None, help="training set (.h5) from 'fastinv stokes synth --model lte'")
    p.add_argument(
        "--target",
        choices=("atmosphere", "me"),
        default="atmosphere",
        help="atmosphere: the stratified atmosphere from DATA (default); me: the Milne-Eddington "
        "parameters, the initial guess of MEInversion(init='network'), trained on an "
        "ME-synthetic set made in memory (--n, --instrument; no DATA)",
    )
    p.add_argument(
        "--instrument",
        choices=("hinode", "visp"),
        default="hinode",
        help="--target me: Hinode SP (112 points) or ViSP (the 173 points of the ViSP network)",
    )
    p.add_argument("--n", type=int, default=200_000, help="--target me: training profiles (default 200000)")
    p.add_argument("-o", "--output", required=True, help="model file to write (.safetensors; written atomically)")
    p.add_argument(
        "--architecture",
        choices=("compact-cnn", "muisca"),
        default="compact-cnn",
        help="compact-cnn: I, Q, U, V -> T, v_LOS, |B|, inclination, azimuth (default); "
        "muisca: I, V -> T, v_LOS, B_LOS (Agudelo et al.)",
    )
    p.add_argument(
        "--nodes",
        choices=("7", "21"),
        default="7",
        help="output nodes: 7 = log tau 0 ... -3 step 0.5 (default), 21 = -2.0 ... 0.0 step 0.1",
    )
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--batch", type=int, default=512)
    p.add_argument("--lr", type=float, default=2e-3, help="initial learning rate (cosine decay to lr/100)")
    p.add_argument("--seed", type=int, default=0, help="random seed (same seed, same model)")
    p.add_argument("--max-profiles", type=int, default=None, help="use only this many training rows")
    p.add_argument(
        "--physics-weight",
        type=float,
        default=0.0,
        help="weight of the weak-field B_LOS term (Fe I 6302.5) in the loss (0 = off)",
    )
    p.add_argument("--threads", type=thread_count, default=None)
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP)
    p.set_defaults(func=_cmd_train_stokes)
