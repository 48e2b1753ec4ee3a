"""One exception base: every error midnite raises on purpose is a ``MidniteError``."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest

import midnite
from midnite import errors
from midnite.jobs.runner import Interrupted

# control flow and warnings, not errors: each with its reason
NOT_ERRORS = {
    "midnite.jobs.runner.Interrupted": "Ctrl-C: must pass `except Exception` as KeyboardInterrupt",
    "midnite.engine.hooks._EarlyStop": "ends a forward pass early; never leaves the engine",
}


def _exception_classes() -> dict[str, type]:
    found = {}
    for info in pkgutil.walk_packages(midnite.__path__, "midnite."):
        if info.name.endswith("__main__"):
            continue
        module = importlib.import_module(info.name)
        for name, value in vars(module).items():
            if (
                inspect.isclass(value)
                and issubclass(value, BaseException)
                and not issubclass(value, Warning)
                and value.__module__ == module.__name__
            ):
                found[f"{value.__module__}.{name}"] = value
    return found


def test_every_midnite_exception_is_a_midnite_error():
    classes = _exception_classes()
    assert len(classes) >= 15 and "midnite.store.schema.RecordError" in classes  # it looked
    stray = [n for n, c in classes.items() if not issubclass(c, errors.MidniteError)]
    assert sorted(stray) == sorted(NOT_ERRORS), stray


@pytest.mark.parametrize(
    ("cls", "code"),
    [
        (errors.MidniteError, 1),
        (errors.UsageError, 2),
        (errors.RenderError, 1),
        (errors.WriteError, 1),
        (errors.BusyError, 3),
        (errors.MemoryShortage, 4),
        (Interrupted, 130),
    ],
)
def test_the_exit_code_is_on_the_class(cls, code):
    assert cls.exit_code == code


def test_usage_errors_are_value_errors_and_keep_their_codes():
    from midnite.engine.hooks import LayerNotFoundError
    from midnite.store.files import FolderBusy

    assert issubclass(LayerNotFoundError, ValueError) and LayerNotFoundError.exit_code == 2
    assert issubclass(errors.UsageError, ValueError)
    assert FolderBusy.exit_code == errors.EXIT_BUSY
