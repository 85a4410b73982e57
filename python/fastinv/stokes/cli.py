"""``fastinv stokes ...`` sub-commands (hooked into fastinv.cli).

``fastinv stokes synth --model me --n N --instrument hinode|visp|none --seed S -o FILE``
draws N random parameter sets (documented ranges, reproducible by seed), synthesises
full-Stokes profiles, degrades them with the instrument (LSF, resampling, noise) and
writes a training set (HDF5 when the name ends in .h5/.hdf5 and h5py is installed, FITS
for .fits) with the parameters, the profiles and full metadata, atomically.

Other models register themselves in ``SYNTH_MODELS`` (name -> function(args, progress)).
"""
from __future__ import annotations

import argparse
import datetime as _dt
import sys
import time
from typing import Callable

import numpy as np

__all__ = ["add_stokes_parser", "SYNTH_MODELS", "Progress"]


class Progress:
    """A dependency-free progress bar on stderr (silent when ``quiet``)."""

    def __init__(self, total: int, label: str, quiet: bool = False) -> None:
        self.total, self.label, self.quiet = max(int(total), 1), label, quiet
        self.t0 = time.perf_counter()
        self.done = 0

    def update(self, k: int) -> None:
        self.done += k
        if self.quiet:
            return
        frac = min(self.done / self.total, 1.0)
        rate = self.done / max(time.perf_counter() - self.t0, 1e-9)
        bar = "#" * int(30 * frac)
        sys.stderr.write(f"\r{self.label} [{bar:<30}] {100 * frac:5.1f}% "
                         f"{self.done}/{self.total} ({rate:,.0f}/s)")
        sys.stderr.flush()

    def close(self) -> None:
        if not self.quiet:
            sys.stderr.write("\n")


def _instrument(name: str, noise: float | None):
    from .instrument import Instrument

    if name == "none":
        return None
    kw = {} if noise is None else {"noise": noise}
    return {"hinode": Instrument.hinode_sp, "visp": Instrument.visp}[name](**kw)


def _synth_me(args: argparse.Namespace, progress: Progress) -> int:
    from .. import __version__
    from .io import TrainingSetWriter
    from .milne_eddington import ME_UNITS, MilneEddington
    from .sampling import ME_RANGES, sample_me_parameters

    inst = _instrument(args.instrument, args.noise)
    me = MilneEddington(lines=tuple(args.lines), instrument=inst)
    rng = np.random.default_rng(args.seed)
    params_all = sample_me_parameters(args.n, seed=rng)
    metadata = {
        "model": "me",
        "creator": f"fastinv {__version__}",
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "lines": list(args.lines),
        "instrument": args.instrument,
        "noise": inst.noise if inst is not None else 0.0,
        "lsf_fwhm_mA": inst.lsf_fwhm if inst is not None else None,
        "seed": args.seed,
        "mu": args.mu,
        "n": args.n,
        "strength_ratios": me.strength_ratios,
        "parameter_ranges": {k: list(v) for k, v in ME_RANGES.items()},
        "units": ME_UNITS,
        "conventions": ("vlos > 0 = redshift; inclination < 90 deg = field toward the "
                        "observer (V > 0 in the blue lobe); azimuth from +Q, Q ~ -cos 2chi at "
                        "the core of a transverse-field line; S1 = 1 - S0; Stokes in units of "
                        "the disc-centre continuum S0 + S1 = 1; noise sigma = noise * (S0 + mu S1)"),
    }
    spec = {k: ((), ME_UNITS[k]) for k in params_all}
    writer = TrainingSetWriter(args.output, args.n, me.wavelength, spec, metadata)
    try:
        for start in range(0, args.n, args.chunk):
            stop = min(args.n, start + args.chunk)
            p = {k: v[start:stop] for k, v in params_all.items()}
            stokes, status = me.synthesize(p, mu=args.mu, seed=rng, threads=args.threads,
                                           add_noise=inst is not None and inst.noise > 0,
                                           return_status=True)
            writer.write(start, stokes, p, status)
            progress.update(stop - start)
        writer.close()
    except BaseException:
        writer.abort()
        raise
    return 0


#: model name -> synthesis function(args, progress) -> exit code.
SYNTH_MODELS: dict[str, Callable[[argparse.Namespace, Progress], int]] = {"me": _synth_me}


def _cmd_synth(args: argparse.Namespace) -> int:
    if args.n < 1:
        raise SystemExit("fastinv stokes synth: --n must be >= 1")
    if not 0.0 < args.mu <= 1.0:
        raise SystemExit("fastinv stokes synth: --mu must be in (0, 1]")
    if args.chunk < 1:
        raise SystemExit("fastinv stokes synth: --chunk must be >= 1")
    fn = SYNTH_MODELS.get(args.model)
    if fn is None:
        raise SystemExit(f"fastinv stokes synth: model {args.model!r} is not available "
                         f"(known: {', '.join(sorted(SYNTH_MODELS))})")
    progress = Progress(args.n, f"{args.model} synth", quiet=args.quiet)
    try:
        rc = fn(args, progress)
    finally:
        progress.close()
    if not args.quiet:
        print(f"wrote {args.n} profiles to {args.output}", file=sys.stderr)
    return rc


def add_stokes_parser(sub) -> None:
    """Add ``stokes`` (with ``synth``) to fastinv's sub-command parser."""
    p = sub.add_parser("stokes", help="Stokes forward models: synthesise training sets")
    ssub = p.add_subparsers(dest="stokes_command", metavar="STOKES_COMMAND")
    s = ssub.add_parser("synth", help="synthesise a random training set of Stokes profiles",
                        description=__doc__.split("\n\n")[1],
                        formatter_class=argparse.RawDescriptionHelpFormatter)
    s.add_argument("--model", default="me", choices=["me", "lte"],
                   help="forward model (me: Milne-Eddington; lte: depth-stratified LTE)")
    s.add_argument("--n", type=int, required=True, help="number of profiles")
    s.add_argument("--instrument", default="hinode", choices=["hinode", "visp", "none"],
                   help="instrument degradation (none: raw Hinode-SP grid, no noise)")
    s.add_argument("--noise", type=float, default=None,
                   help="noise sigma in units of I_c (default: the instrument's, 1e-3)")
    s.add_argument("--seed", type=int, default=0, help="random seed (parameters and noise)")
    s.add_argument("--mu", type=float, default=1.0, help="cos(heliocentric angle)")
    s.add_argument("--lines", nargs="+", default=["FeI_6301", "FeI_6302"], help="line names")
    s.add_argument("--chunk", type=int, default=20000, help="profiles per batch")
    s.add_argument("--threads", type=int, default=None, help="OpenMP threads")
    s.add_argument("-o", "--output", required=True, help="output file (.h5/.hdf5 or .fits)")
    s.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    s.set_defaults(func=_cmd_synth)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])
