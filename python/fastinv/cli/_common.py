"""What every ``fastinv`` subcommand shares: one error style and command groups."""

from __future__ import annotations

import argparse
import functools
import sys
from collections.abc import Callable

from .. import _core

#: Errors that are the user's to fix (bad file, bad value, missing extra): printed as one line.
USER_ERRORS = (ValueError, TypeError, OSError, ImportError)

Command = Callable[[argparse.Namespace], int]

#: --overwrite help of every writing command.
OVERWRITE_HELP = (
    "replace output files that exist (never an input: an output that is one of the inputs, "
    "or two outputs naming the same file, is always refused)"
)


def thread_count(text: str) -> int:
    """``--threads`` values: an integer from 1 to ``_core.max_threads()`` (4 x the hardware
    threads); argparse turns the ValueError into a usage error naming the limit."""
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if not 1 <= n <= _core.max_threads():
        raise argparse.ArgumentTypeError(
            f"{n} is outside 1..{_core.max_threads()} (4 x this machine's hardware threads)"
        )
    return n


def add_scheduler_arguments(group) -> None:
    """``--scheduler`` and ``--retries`` of the series commands (one meaning everywhere)."""
    group.add_argument(
        "--scheduler",
        default="threads",
        help="threads[:N] (N steps at a time in this process; default 1), processes[:N] "
        "(N worker processes; default one per core) or a dask.distributed scheduler address "
        "(tcp://host:8786)",
    )
    group.add_argument("--retries", type=int, default=0, help="extra attempts of a failing step (default 0)")


def reports_errors(prog: str, also: tuple = ()) -> Callable[[Command], Command]:
    """Turn the user errors a command raises into ``prog: error: message`` and exit code 1."""

    def wrap(cmd: Command) -> Command:
        @functools.wraps(cmd)
        def run(args: argparse.Namespace) -> int:
            try:
                return cmd(args)
            except USER_ERRORS + tuple(also) as exc:
                print(f"{prog}: error: {exc}", file=sys.stderr)
                return 1

        return run

    return wrap


def add_group(sub, name: str, help: str, description: str, metavar: str = "COMMAND"):
    """A command group (``fastinv dem``, ``fastinv stokes`` ...) that prints its help when
    called without a subcommand; returns the group's subparsers."""
    group = sub.add_parser(name, help=help, description=description)
    group.set_defaults(func=lambda args: (group.print_help(), 2)[1])
    return group.add_subparsers(dest=f"{name}_command", metavar=metavar)
