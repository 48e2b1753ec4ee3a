"""The one exception base of midnite: every error it raises on purpose is a ``MidniteError``.

The exit status of the ``midnite`` command is a class attribute (``exit_code``), so a new
error says its status where it is defined. Errors about the user's input are also
``ValueError`` or ``TypeError``, so code that catches those keeps working. This module imports
nothing of midnite: every floor may use it.
"""

from __future__ import annotations

__all__ = [
    "EXIT_BUSY",
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_MEMORY",
    "EXIT_OK",
    "EXIT_USAGE",
    "BusyError",
    "MemoryShortage",
    "MidniteError",
    "RenderError",
    "UsageError",
    "WriteError",
]

EXIT_OK = 0
EXIT_FAILED = 1  # some units failed, results could not be written, damaged units were found
EXIT_USAGE = 2  # a mistake in the command line or its input
EXIT_BUSY = 3  # another midnite run is writing to the folder
EXIT_MEMORY = 4  # not enough memory for the render
EXIT_INTERRUPTED = 130  # Ctrl-C or SIGTERM: every file written is complete


class MidniteError(Exception):
    """Base of midnite's errors; ``exit_code`` is the ``midnite`` command's status for it."""

    exit_code: int = EXIT_FAILED


class UsageError(MidniteError, ValueError):
    """A mistake in what was asked for (an argument, a name, a file given as input)."""

    exit_code = EXIT_USAGE


class RenderError(MidniteError):
    """A render raised or turned non-finite; nothing of the failed units was saved."""

    exit_code = EXIT_FAILED


class WriteError(MidniteError):
    """Results could not be written (disk full, read-only); every file written is complete."""

    exit_code = EXIT_FAILED


class BusyError(MidniteError):
    """Another midnite run holds the output folder's lock."""

    exit_code = EXIT_BUSY


class MemoryShortage(MidniteError):
    """The render would not fit in memory (estimated before it starts), or ran out."""

    exit_code = EXIT_MEMORY
