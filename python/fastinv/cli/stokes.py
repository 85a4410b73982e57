"""``fastinv stokes synth|invert|watch``: synthetic training sets, and inversion of Hinode SP / DKIST
ViSP files with a trained network."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

from .._optional import require
from .._progress import absolute_updates, progress_bar
from ._common import OVERWRITE_HELP, add_group, add_scheduler_arguments, reports_errors, thread_count

_DESCRIPTION = """\
Invert the Stokes profiles of one map with a 1D CNN (fastinv's engine) and write the
atmosphere at the model's log tau_500 nodes to FITS, with DKIST level-2 names
(temperature, velocity, mag_strength, mag_inclination, mag_azimuth; optical_depth holds the
nodes, status the per-pixel flags), the input's celestial WCS and the model card summary.

Inputs (all files of ONE map; directories are expanded to their *.fits):
  hinode  Hinode SOT/SP level-1 slit files (SP3D*.fits), one per slit position,
          (4, N_y, 112) integers; wrap-around and SPBSHFT are corrected.
  visp    DKIST ViSP level-1 frames, one file per raster step and Stokes parameter;
          grouped by DINDEX3 (step) and DINDEX4 (Stokes) from the headers; or the
          dataset's .asdf file (needs the dkist package; its FITS files downloaded).

--method me | cnn+me fit the Milne-Eddington model to every pixel instead (classical or
ME-network initial guess) and write its parameters with <name>_error, correlation, chi2,
chi2_stokes, iterations, restarts and status extensions and INV* configuration keywords.

Profiles are divided by the map's quiet-Sun continuum (median continuum of the pixels
brighter than 0.8 of it, iterated; override with --continuum) and linearly resampled to
the model's wavelength grid; the observation must cover the model's lines +- 0.4 A (model
points beyond the observed window take the nearest observed value, with a warning).
"""

_EPILOG = """\
examples:
  fastinv stokes invert SP3D20070105_*.fits --instrument hinode -o map.fits --png map.png
  fastinv stokes invert visp_l1/ --instrument visp -o visp_map.fits --model my_visp.safetensors
  fastinv stokes invert --series VISP_L1_*.asdf --instrument visp -o l2_steps/ --model my_visp.safetensors \\
      --scheduler processes:8 --retries 1
"""


@reports_errors("fastinv stokes synth")
def _cmd_synth(args: argparse.Namespace) -> int:
    from .._atomic import check_outputs
    from ..stokes.synthesis.training_sets import (
        lte_training_set,
        me_training_set,
        write_lte_training_set,
        write_training_set,
    )

    check_outputs([args.output], overwrite=args.overwrite)
    bar = progress_bar(args.n, desc=f"stokes synth {args.model}", unit="profile", enabled=not args.quiet)
    progress = absolute_updates(bar)
    common = dict(
        instrument=None if args.instrument == "none" else args.instrument,
        seed=args.seed,
        mu=args.mu,
        noise=args.noise,
        threads=args.threads,
        progress=progress,
    )
    lte_kw = dict(base=args.base, chunk=args.chunk, mu_range=args.mu_range, line_window=args.line_window, **common)
    if args.model == "lte" and os.path.splitext(args.output)[1].lower() in (".h5", ".hdf5"):
        meta = write_lte_training_set(args.output, args.n, **lte_kw)
        with require("h5py").File(args.output, "r") as f:
            data = {"status": f["status"][()], "wavelength": f["wavelength"][()], "metadata": meta}
    else:
        data = lte_training_set(args.n, **lte_kw) if args.model == "lte" else me_training_set(args.n, **common)
        write_training_set(args.output, data)
    bar.close()
    bad = int(np.count_nonzero(data["status"]))
    seconds = data["metadata"].get("generation_seconds")
    print(
        f"wrote {args.n} {args.model.upper()} profiles ({data['wavelength'].size} wavelengths)"
        f" to {args.output}"
        + (f" in {seconds:.0f} s" if seconds else "")
        + (f"; {bad} flagged (status != 0)" if bad else "")
    )
    return 0


@reports_errors("fastinv stokes invert", also=(RuntimeError,))  # RuntimeError: no CUDA device
def _cmd_invert(args: argparse.Namespace) -> int:
    from .._atomic import check_outputs
    from ..stokes.inversion.frames import expand_inputs, invert_files
    from ..stokes.inversion.network import STOKES_STATUS, StokesNet
    from ..stokes.inversion.output import quicklook_png, write_inversion_fits

    if args.series:
        return _series(args)
    out = Path(args.output)
    if out.suffix.lower() not in (".fits", ".fit", ".fts"):
        print("fastinv stokes invert: error: -o must name a .fits file", file=sys.stderr)
        return 2
    if args.method != "cnn":
        return _invert_me(args, out)
    inputs = expand_inputs(args.files) + ([args.model] if args.model else [])
    check_outputs([out, args.png], inputs, args.overwrite)
    net = StokesNet.load(args.model, instrument=args.instrument, threads=args.threads, device=args.device)
    bars = []

    def total(n, stage):  # invert_files has two stages (continuum, inversion), one bar each
        if bars:
            bars[-1].close()
        bars.append(progress_bar(n, desc=f"{args.instrument} {stage}", unit="frame", enabled=not args.quiet))

    def progress(k):
        bars[-1].update(k - bars[-1].n)

    try:
        res = invert_files(
            args.files,
            args.instrument,
            model=net,
            continuum=args.continuum,
            threads=args.threads,
            progress=progress,
            total=total,
            wavelength_shift=args.wavelength_shift,
            chi2=args.chi2,
        )
    finally:
        for bar in bars:
            bar.close()
    cards = net.summary_cards()
    cards["ICONT"] = (res.continuum, "[counts] quiet-Sun continuum I_c of the map")
    cards["INSTRUME"] = ({"hinode_sp": "SOT/SP", "visp": "VISP"}[net.instrument], "instrument of the input")
    cards["NFRAMES"] = (res.frames, "slit positions / raster steps inverted")
    if res.chi2 is not None:
        cards["CHI2VMIC"] = ("fit", "v_mic of the chi2 LTE re-synthesis")
        cards["CHI2MED"] = (float(np.nanmedian(res.chi2)) if np.isfinite(res.chi2).any() else "NaN", "median chi2")
    write_inversion_fits(out, res.results, res.status, net.nodes, net.units, res.wcs, cards, chi2=res.chi2)
    if args.asdf:
        from ..stokes.inversion.dkist_asdf import write_inversion_asdf

        write_inversion_asdf(args.asdf, out)
    if args.png:
        quicklook_png(
            args.png,
            res.results,
            net.nodes,
            wcs=res.wcs,
            status=res.status,
            title=f"fastinv {net.card.get('architecture', '')} {net.instrument}: {out.name}",
        )
    codes, counts = np.unique(res.status, return_counts=True)
    summary = ", ".join(f"{STOKES_STATUS.get(int(c), c)}: {n}" for c, n in zip(codes, counts))
    ny, nx = res.status.shape
    print(
        f"wrote {out}{' and ' + str(args.png) if args.png else ''} "
        f"({nx} x {ny} pixels in {res.seconds:.1f} s; {summary})"
    )
    return 0


def _series(args: argparse.Namespace) -> int:
    """``--series``: every raster step of one or more ViSP maps, one output per step, resumable."""
    from .._scheduler import parse_scheduler
    from .._series import summary
    from ..stokes.inversion.series import LOG_NAME, SeriesOptions, run_series

    if args.instrument != "visp":
        raise ValueError("--series inverts DKIST ViSP datasets: use --instrument visp")
    if args.png or args.asdf:
        raise ValueError("--png/--asdf are for single maps; with --series, --maps writes each map's FITS and ASDF")
    spec = parse_scheduler(args.scheduler)
    opts = SeriesOptions(
        model=args.model,
        continuum=args.continuum,
        wavelength_shift=args.wavelength_shift,
        threads=args.threads or spec.threads_per_step(),
        device=args.device,
    )
    log = run_series(
        args.files, args.output, opts, scheduler=spec, retries=args.retries, progress=not args.quiet, announce=print
    )
    failed = {name: e for name, e in log["steps"].items() if e["status"] == "failed"}
    for name, e in failed.items():
        print(f"step {name} failed: {e['error']}")
    print(f"{len(log['steps'])} steps: {summary(log)}; log in {Path(args.output) / LOG_NAME}")
    if args.maps:
        from ..stokes.inversion.series import assemble_map

        for name in log["maps"]:
            base = Path(args.output) / name
            assemble_map(args.output, name, f"{base}.fits", f"{base}.asdf", overwrite=True)
            print(f"wrote {base}.fits and {base}.asdf")
    return 1 if failed else 0


def _invert_me(args: argparse.Namespace, out: Path) -> int:
    """--method me | cnn+me: Milne-Eddington maps with errors, chi2 and the configuration."""
    from .._atomic import check_outputs
    from ..status import ME_INV_STATUS
    from ..stokes.inversion.frames import expand_inputs, invert_files
    from ..stokes.inversion.me_output import ME_MISSING, me_config_cards, write_me_fits

    for flag, value in (("--model", args.model), ("--png", args.png), ("--chi2", args.chi2)):
        if value:
            print(f"fastinv stokes invert: error: {flag} is for --method cnn only", file=sys.stderr)
            return 2
    if args.device != "cpu":
        print("fastinv stokes invert: error: --method me / cnn+me run on the CPU (--device cpu)", file=sys.stderr)
        return 2
    if args.asdf:
        require("dkist", "DKIST level-2 ASDF output")  # before the inversion, not after it
    check_outputs([out, args.asdf], expand_inputs(args.files), args.overwrite)
    bar = [None]

    def total(n, stage):
        if bar[0] is not None:
            bar[0].close()
        bar[0] = progress_bar(n, desc=f"{args.instrument} {stage}", unit="frame", enabled=not args.quiet)

    try:
        res = invert_files(
            args.files,
            args.instrument,
            continuum=args.continuum,
            threads=args.threads,
            progress=lambda k: bar[0].update(k - bar[0].n),
            total=total,
            wavelength_shift=args.wavelength_shift,
            method=args.method,
        )
    finally:
        if bar[0] is not None:
            bar[0].close()
    inv = res.inverter.me
    m = res.me
    noise = inv.model.instrument.noise if inv.model.instrument is not None else None
    cards = me_config_cards(inv, args.method, sigma=noise)
    cards["ICONT"] = (res.continuum, "[counts] quiet-Sun continuum I_c of the map")
    cards["INSTRUME"] = ({"hinode": "SOT/SP", "visp": "VISP"}[args.instrument], "instrument of the input")
    cards["NFRAMES"] = (res.frames, "slit positions / raster steps inverted")
    write_me_fits(
        out,
        m.parameters,
        m.errors,
        m.correlations,
        m.chi2,
        m.iterations,
        m.restarts,
        m.status,
        res.wcs,
        cards,
        inv.free,
    )
    if args.asdf:
        from ..stokes.inversion.dkist_asdf import write_inversion_asdf

        write_inversion_asdf(args.asdf, out)
    names = {**ME_INV_STATUS, ME_MISSING: "no data"}
    codes, counts = np.unique(m.status, return_counts=True)
    summary = ", ".join(f"{names.get(int(c), c)}: {n}" for c, n in zip(codes, counts))
    ny, nx = m.status.shape
    with np.errstate(invalid="ignore"):
        chi2 = float(np.nanmedian(m.chi2[..., 4])) if np.isfinite(m.chi2[..., 4]).any() else float("nan")
    print(
        f"wrote {out}{' and ' + str(args.asdf) if args.asdf else ''} "
        f"({nx} x {ny} pixels in {res.seconds:.1f} s, {args.method}, init {inv.init_method}; "
        f"median chi2 {chi2:.2f}; {summary})"
    )
    return 0


def _cmd_watch(args: argparse.Namespace) -> int:
    from ..stokes.inversion.frames import FrameInverter

    n, lat = 0, []
    if args.method != "cnn" and (args.model or args.device != "cpu"):
        print(
            "fastinv stokes watch: error: --model/--device cuda are for --method cnn; "
            "the ME methods run on the CPU with the shipped ME initialisation network",
            file=sys.stderr,
        )
        return 2
    try:
        Path(args.output).mkdir(parents=True, exist_ok=True)
        inv = FrameInverter(
            args.model,
            "visp",
            continuum=args.continuum,
            threads=args.threads,
            device=args.device,
            wavelength_shift=args.wavelength_shift,
            method=args.method,
        )
        print(
            f"watching {args.directory} for ViSP frames, method {args.method} "
            f"(stop: {args.timeout:g} s without new files"
            + (f" or {args.max_frames} steps" if args.max_frames else "")
            + ")",
            file=sys.stderr,
        )
        for res in inv.watch(
            args.directory,
            pattern=args.pattern,
            timeout=args.timeout,
            max_frames=args.max_frames,
            poll=args.poll,
            output_dir=args.output,
            overwrite=args.overwrite,
        ):
            n += 1
            lat.append(res.latency)
            bad = int((res.status != 0).sum())
            print(
                f"step {res.step}: {res.latency * 1e3:.1f} ms from last file to result "
                f"(inversion {res.compute * 1e3:.1f} ms){f', {bad} flagged pixels' if bad else ''}",
                flush=True,
            )
    except (ValueError, OSError, ImportError, RuntimeError) as exc:  # RuntimeError: no CUDA device
        print(f"fastinv stokes watch: error: {exc}", file=sys.stderr)
        return 1
    for f in inv.watch_failures:
        print(f"skipped {', '.join(f['paths'])}: {f['reason']}", file=sys.stderr)
    if n:
        print(
            f"{n} steps written to {args.output}; latency median {np.median(lat) * 1e3:.1f} ms, "
            f"max {np.max(lat) * 1e3:.1f} ms"
        )
    else:
        print("no complete raster step appeared")
    return 0


def _series_arguments(p) -> None:
    g = p.add_argument_group(
        "series",
        "Whole DKIST ViSP datasets and many maps: each FILE is a map (a dataset's .asdf, a "
        "folder of its level-1 FITS files; loose FITS files together are one map), inverted "
        "one dask task per raster step into OUTPUT/<map>_step_<DINDEX3>.fits (I_c found in "
        "each step unless --continuum). A re-run skips steps whose output is complete (FITS "
        "checksums, inputs, model, options) and redoes the rest; OUTPUT/run_log.json records "
        "every step (done, failed with its error, skipped). Needs fastinv[dask].",
    )
    g.add_argument("--series", action="store_true", help="invert FILE... as maps, one task per raster step")
    add_scheduler_arguments(g)
    g.add_argument(
        "--maps",
        action="store_true",
        help="then put each map's steps side by side into OUTPUT/<map>.fits and OUTPUT/<map>.asdf "
        "(dkist.Inversion; needs fastinv[dkist]); steps that failed are NaN columns with status 3",
    )


def register(sub) -> None:
    """Add ``fastinv stokes`` with ``synth``, ``invert`` and ``watch``."""
    sub = add_group(
        sub,
        "stokes",
        help="Stokes profiles: synthesis (synth), inversion (invert, watch)",
        description="Fe I 630 nm Stokes I, Q, U, V: synthesise training sets (Milne-"
        "Eddington or LTE), invert Hinode SP / DKIST ViSP maps with a "
        "trained network, or invert ViSP raster steps as they arrive.",
    )
    s = sub.add_parser(
        "synth",
        help="write a training set of synthetic Stokes profiles",
        description="Random atmospheres (LTE) or Milne-Eddington parameters, "
        "their Stokes profiles through an instrument, to HDF5 or "
        "FITS (chosen by the output file's extension).",
    )
    s.add_argument("--model", choices=("me", "lte"), default="lte")
    s.add_argument("--n", type=int, required=True, help="number of profiles")
    s.add_argument(
        "--instrument",
        choices=("hinode", "visp", "visp_lines", "none"),
        default="hinode",
        help="hinode: Hinode SP, 112 x 21.5 mA; visp: DKIST ViSP, 980 x 16.25 mA; "
        "visp_lines: ViSP sampling on the 173 points 6300.6-6303.4 A that the "
        "ViSP network reads (default: hinode)",
    )
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--mu", type=float, default=1.0, help="cos(theta) (default 1)")
    s.add_argument("--noise", type=float, default=None, help="noise in units of I_c (default: the instrument's, 1e-3)")
    s.add_argument(
        "--mu-range",
        type=float,
        nargs=2,
        metavar=("LOW", "HIGH"),
        default=None,
        help="LTE: draw mu per chunk uniformly in [LOW, HIGH] instead of --mu",
    )
    s.add_argument(
        "--base",
        choices=("mixture", "both", "hsra", "falc", "maltby_m", "penumbra"),
        default="mixture",
        help="LTE: 'mixture' (default) = quiet Sun 40%%, plage, penumbra and umbra "
        "20%% each (fastinv.stokes.atmospheres.POPULATIONS); otherwise one "
        "base model with the full random ranges",
    )
    s.add_argument("--chunk", type=int, default=1000, help="profiles per synthesis call")
    s.add_argument(
        "--line-window",
        type=float,
        default=1.5,
        metavar="A",
        help="LTE: synthesise every fine-grid point only within this many Angstrom "
        "of a line, continuum points elsewhere (default 1.5: < 1e-5 I_c from "
        "full synthesis; 1.0: < 3e-5)",
    )
    s.add_argument("--threads", type=thread_count, default=None)
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.add_argument("-o", "--output", required=True, help="output file (.h5/.hdf5 or .fits; written atomically)")
    s.add_argument("--overwrite", action="store_true", help="replace the output file if it exists")
    s.set_defaults(func=_cmd_synth)
    p = sub.add_parser(
        "invert",
        help="invert Hinode SP / DKIST ViSP files with a trained network",
        description=_DESCRIPTION,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "files",
        nargs="+",
        metavar="FILE",
        help="input FITS files (or directories) of one map; with --series: maps (dataset .asdf files, folders)",
    )
    p.add_argument(
        "--instrument",
        choices=("hinode", "visp"),
        required=True,
        help="hinode: Hinode SOT/SP level-1; visp: DKIST ViSP level-1",
    )
    p.add_argument("-o", "--output", required=True, help="output FITS file (written atomically)")
    p.add_argument(
        "--method",
        choices=("cnn", "me", "cnn+me"),
        default="cnn",
        help="cnn: the stratified network (default); me: Milne-Eddington least squares from the "
        "classical initial guess; cnn+me: Milne-Eddington from the ME network's guess. The ME "
        "methods write the ME parameters with <name>_error, correlation, chi2, chi2_stokes, "
        "iterations, restarts and status extensions and the configuration as INV* keywords "
        "(fastinv.stokes.inversion.me_output)",
    )
    p.add_argument(
        "--png",
        default=None,
        metavar="PATH",
        help="also write quicklook maps at log tau 0, -1, -2 to PATH (needs matplotlib)",
    )
    p.add_argument(
        "--asdf",
        default=None,
        metavar="PATH",
        help="also write the results as a dkist.Inversion ASDF file (dkist.load_dataset reads it; "
        "no profiles, so slice its quantities, not the whole Inversion; the ME methods' maps "
        "and <name>_error maps as 2-D cubes; needs fastinv[dkist])",
    )
    p.add_argument(
        "--model", default=None, help="Stokes model file (.safetensors; default: the one shipped for the instrument)"
    )
    p.add_argument(
        "--continuum", type=float, default=None, help="quiet-Sun continuum I_c in counts (default: found in the map)"
    )
    p.add_argument(
        "--wavelength-shift",
        type=float,
        default=0.0,
        metavar="DELTA",
        help="add DELTA [A] to the files' wavelengths (correct a header calibration that is off)",
    )
    p.add_argument(
        "--chi2",
        action="store_true",
        help="also map how well each pixel's atmosphere fits its profiles: re-synthesise it with LTE "
        "(v_mic fitted) and write the reduced chi^2 as the 'chi2' image (~4 LTE syntheses per pixel)",
    )
    p.add_argument("--threads", type=thread_count, default=None, help="threads (default: all)")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="where the network runs (default cpu)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP)
    _series_arguments(p)
    p.set_defaults(func=_cmd_invert)

    w = sub.add_parser(
        "watch",
        help="invert DKIST ViSP raster steps as their files appear in a directory",
        description="Poll DIRECTORY for ViSP level-1 frames; as soon as the four Stokes files of a "
        "raster step (same DINDEX3) are there, invert the step (preallocated buffers) "
        "and write OUTDIR/step_<DINDEX3>.fits, printing the latency from the step's "
        "last file to its result. Stops after --timeout seconds without new files or "
        "--max-frames steps.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    w.add_argument("directory", help="directory the ViSP frames arrive in")
    w.add_argument(
        "-o", "--output", required=True, help="directory for the per-step FITS results (each written atomically)"
    )
    w.add_argument("--instrument", choices=("visp",), default="visp", help="only DKIST ViSP (default)")
    w.add_argument(
        "--method",
        choices=("cnn", "me", "cnn+me"),
        default="cnn",
        help="cnn: the stratified network (default); me / cnn+me: Milne-Eddington least squares from "
        "the classical / ME network's initial guess, each step written in the ME layout "
        "(<name>_error, chi2, status; as 'stokes invert --method')",
    )
    w.add_argument("--model", default=None, help="Stokes model file (--method cnn; default: the shipped ViSP model)")
    w.add_argument("--pattern", default="*.fits", help="glob of the frame files (default *.fits)")
    w.add_argument("--timeout", type=float, default=60.0, help="seconds without a new file before stopping (60)")
    w.add_argument("--max-frames", type=int, default=None, help="stop after this many steps")
    w.add_argument("--poll", type=float, default=0.1, help="seconds between directory scans (0.1)")
    w.add_argument(
        "--continuum", type=float, default=None, help="quiet-Sun I_c in counts (default: found in each step)"
    )
    w.add_argument(
        "--wavelength-shift", type=float, default=0.0, metavar="DELTA", help="add DELTA [A] to the frames' wavelengths"
    )
    w.add_argument("--threads", type=thread_count, default=None)
    w.add_argument(
        "--overwrite", action="store_true", help="replace step_*.fits results already in the output directory"
    )
    w.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="where the network runs (default cpu)")
    w.set_defaults(func=_cmd_watch)
