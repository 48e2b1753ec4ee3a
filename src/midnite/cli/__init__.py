"""The ``midnite`` command (floor 6): ``layers``, ``render``, ``gallery``, ``catalogue``,
``concepts``, ``serve``.

One module per command (``midnite.cli.<command>``: ``register(subparsers)`` and
``run(args) -> int``), shared parsing in ``cli.options``; ``render`` and ``catalogue`` plan
with ``midnite.jobs`` and run the plan with its one resumable runner (``jobs.run``); errors
are ``midnite.errors`` classes whose ``exit_code`` is the status. Beside each unit's PNG,
``render`` writes ``<unit>_alpha.png``: the image with its attribution alpha map
(``RenderResult.alpha``, divided by its maximum) as alpha channel, listed in the record.

Nothing wrong is saved as done. A unit whose render turns non-finite gets no files (a rerun
tries it again); a damaged unit (a record that is not valid, a PNG that does not match its
record) is named and rendered again; one run writes into a folder at a time, and a folder
holds the units of one run configuration (``--overwrite`` replaces those of another); the
memory a render needs is estimated before it starts. Every problem is one line on stderr,
never a traceback (``MIDNITE_TRACEBACK=1`` shows it for an unexpected error). SIGTERM and
SIGHUP stop a run as Ctrl-C does (``jobs.signals``); ``render`` and ``catalogue`` refuse
each other's folders (``cli.folders``), and ``gallery`` builds the pages of either.

Exit statuses (``EXIT_*``):
    0    done: every unit asked for is complete
    1    some units failed: their render turned non-finite, a render raised an error, results
         could not be written, or (``gallery``) damaged units were found
    2    a mistake in the command line or its input (also: DIR holds units of another run
         configuration)
    3    busy: another midnite run is writing to DIR
    4    not enough memory: the render would not fit (estimated before it starts), or ran out
    130  interrupted (Ctrl-C): the current batch's files are all written or none is; the
         pages are brought up to date
    143  stopped by SIGTERM, 129 by SIGHUP: as for Ctrl-C
    141  stdout was closed by its reader (``midnite layers M | head``): output ends quietly
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import traceback
from collections.abc import Sequence

from midnite.cli import catalogue, concepts, gallery, layers, render, serve
from midnite.cli.common import own_version
from midnite.cli.options import EPILOG, Parser, parse_size, parse_unit_ranges, parse_units
from midnite.errors import (
    EXIT_FAILED,
    EXIT_MEMORY,
    EXIT_USAGE,
    BusyError,
    MemoryShortage,
    MidniteError,
    RenderError,
    UsageError,
    WriteError,
)
from midnite.jobs import Interrupted
from midnite.jobs.memory import is_out_of_memory, one_line
from midnite.jobs.signals import exit_status, signal_name, stop_on_signals

__all__ = [
    "BusyError",
    "MemoryShortage",
    "RenderError",
    "UsageError",
    "WriteError",
    "build_parser",
    "main",
    "parse_size",
    "parse_unit_ranges",
    "parse_units",
]

EXIT_BROKEN_PIPE = 128 + 13  # 141, as a shell reports a command killed by SIGPIPE

COMMANDS = {
    "layers": layers,
    "render": render,
    "gallery": gallery,
    "catalogue": catalogue,
    "concepts": concepts,
    "serve": serve,
}


def build_parser() -> argparse.ArgumentParser:
    """The ``midnite`` parser: each command module registers its own sub-parser."""
    parser = Parser(
        prog="midnite",
        description="Feature visualization for PyTorch models from the command line.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"midnite {own_version()}")
    sub = parser.add_subparsers(dest="command", metavar="{" + ",".join(COMMANDS) + "}")
    for module in COMMANDS.values():
        module.register(sub)
    return parser


def _interrupted(stop: Interrupted) -> int:
    s = stop.summary
    where = f" to {s.out}" if s.out is not None else ""
    what = "interrupted" if stop.by == "Ctrl-C" else f"stopped by {stop.by}"
    pages = f"; pages: {s.index}" if s.index is not None else ""
    print(
        f"midnite: {what}; {s.rendered} of {s.total} units written{where}, the rest not "
        f"started or discarded{pages}. Run the same command again to resume.",
        file=sys.stderr,
    )
    return stop.exit_code


def _broken_pipe() -> int:
    """stdout's reader went away (``midnite layers M | head``): no more output, status 141."""
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so the interpreter's last flush finds no pipe
    return EXIT_BROKEN_PIPE


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``midnite`` command with ``argv`` (default ``sys.argv[1:]``); returns the status."""
    parser = build_parser()
    argv = [str(a) for a in (sys.argv[1:] if argv is None else argv)]
    try:
        try:
            args = parser.parse_args(argv)
        except SystemExit as exit_:  # --help, --version
            return int(exit_.code or 0)
        if args.command is None:
            parser.print_help(sys.stderr)
            return EXIT_USAGE
        args.argv = argv
        with stop_on_signals():
            status = COMMANDS[args.command].run(args)
            sys.stdout.flush()  # a closed pipe shows here, not in the interpreter's last flush
        return status
    except BrokenPipeError:
        return _broken_pipe()
    except MidniteError as err:
        message = " ".join(str(err).split())
        print(f"midnite: error: {message}", file=sys.stderr)
        return err.exit_code
    except Interrupted as stop:
        return _interrupted(stop)
    except KeyboardInterrupt as stop:
        by = signal_name(stop)
        print(f"midnite: {'interrupted' if by == 'Ctrl-C' else f'stopped by {by}'}",
              file=sys.stderr)  # fmt: skip
        return exit_status(stop)
    except Exception as err:  # a bug, or a failure nobody foresaw: still one line
        if os.environ.get("MIDNITE_TRACEBACK"):
            raise
        status = EXIT_MEMORY if is_out_of_memory(err) else EXIT_FAILED
        where = "".join(traceback.format_exception_only(type(err), err)[-1:]).strip()
        print(
            f"midnite: error: {one_line(where)} (unexpected; MIDNITE_TRACEBACK=1 shows where)",
            file=sys.stderr,
        )
        return status
