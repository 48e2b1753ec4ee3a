"""Sizes that keep the code readable: no module over 600 lines, no function over 80.

An exception is listed here with its reason, and in ``docs/architecture.md``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "midnite"
MAX_MODULE_LINES = 600
MAX_FUNCTION_LINES = 80
EXCEPTIONS: dict[str, str] = {}  # "path" or "path:function" -> why it may be longer


def _modules() -> list[Path]:
    return sorted(SRC.rglob("*.py"))


def too_long(source: str, where: str) -> list[str]:
    """The module or functions of ``source`` that are over the limits, as lines of a report."""
    found = []
    lines = len(source.splitlines())
    if lines > MAX_MODULE_LINES and where not in EXCEPTIONS:
        found.append(f"{where}: {lines} lines (at most {MAX_MODULE_LINES})")
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            length = (node.end_lineno or node.lineno) - node.lineno + 1
            name = f"{where}:{node.name}"
            if length > MAX_FUNCTION_LINES and name not in EXCEPTIONS:
                found.append(f"{name}: {length} lines (at most {MAX_FUNCTION_LINES})")
    return found


def test_no_module_or_function_is_over_its_limit():
    found = []
    for path in _modules():
        found += too_long(path.read_text("utf-8"), str(path.relative_to(SRC.parent)))
    assert not found, "over the size limits:\n" + "\n".join(found)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("x = 1\n" * 601, ["m.py: 601 lines (at most 600)"]),
        ("def f():\n" + "    x = 1\n" * 80, ["m.py:f: 81 lines (at most 80)"]),
        ("class A:\n    def g(self):\n" + "        pass\n" * 80, ["m.py:g: 81 lines (at most 80)"]),
        ("def f():\n" + "    x = 1\n" * 79, []),
    ],
)
def test_the_check_sees_long_modules_and_functions(source, expected):
    assert too_long(source, "m.py") == expected
