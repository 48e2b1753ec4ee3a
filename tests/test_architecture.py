"""Imports point one way down: tooling -> classic API / engine, classic API -> engine.

Three layers (see the README's architecture section):

- engine, ``midnite/engine/``: imports nothing else of midnite, not even the ``midnite``
  package itself;
- classic API, ``midnite/visualization/``: imports the engine and itself, never tooling;
- tooling, every other module (``midnite``, ``cli``, ``records``, ``gallery``, ``metrics``,
  ``models``, ``plot``, ``known_answer``, ``dataset_examples``, ...): uses the engine through
  its public API only, so no module or name that starts with an underscore under
  ``midnite.engine``.

Every import counts, also those inside functions, relative ones, and
``importlib.import_module("midnite...")`` / ``__import__("midnite...")`` with a literal name.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = "midnite"
ENGINE, CLASSIC, TOOLING = "engine", "classic API", "tooling"


@dataclass(frozen=True)
class Import:
    """One imported module (and the names taken from it) at one line of one module."""

    importer: str  # dotted name of the importing module
    line: int
    target: str  # dotted name of the imported module
    names: tuple[str, ...]  # names taken from it: ``from target import a, b``
    statement: str  # the source text, for the report


def module_name(path: Path, src: Path = SRC) -> str:
    parts = list(path.relative_to(src).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def all_modules(src: Path = SRC) -> dict[str, Path]:
    return {module_name(p, src): p for p in sorted((src / PACKAGE).rglob("*.py"))}


def layer(module: str) -> str | None:
    """The layer a midnite module belongs to; None outside midnite."""
    if module == PACKAGE or module.startswith(PACKAGE + "."):
        if module == f"{PACKAGE}.engine" or module.startswith(f"{PACKAGE}.engine."):
            return ENGINE
        for classic in ("classic", "visualization"):
            if module == f"{PACKAGE}.{classic}" or module.startswith(f"{PACKAGE}.{classic}."):
                return CLASSIC
        return TOOLING
    return None


def _absolute(module: str, is_package: bool, level: int, name: str | None) -> str:
    """The absolute module of ``from <level dots><name> import ...`` written in ``module``."""
    if level == 0:
        return name or ""
    parts = module.split(".")
    base = parts if is_package else parts[:-1]
    base = base[: len(base) - (level - 1)] if level > 1 else base
    return ".".join([*base, name] if name else base)


def _literal_import_call(node: ast.Call) -> str | None:
    """``importlib.import_module("x")``, ``import_module("x")`` or ``__import__("x")``."""
    func = node.func
    called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
    if called not in ("import_module", "__import__") or not node.args:
        return None
    arg = node.args[0]
    if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
        return arg.value
    return None


def find_imports(
    source: str, module: str, *, is_package: bool = False, known: frozenset[str] = frozenset()
) -> list[Import]:
    """Every import of a midnite module in ``source`` (the text of ``module``).

    ``from a import b`` counts as an import of the module ``a.b`` when ``a.b`` is one of the
    ``known`` modules, else as an import of the name ``b`` from ``a``.
    """
    found: list[Import] = []

    def text(node: ast.AST) -> str:  # the statement as written, on one line
        return " ".join((ast.get_source_segment(source, node) or "").split())

    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                found.append(Import(module, node.lineno, alias.name, (), text(node)))
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(module, is_package, node.level, node.module)
            taken = []
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                if sub in known:
                    found.append(Import(module, node.lineno, sub, (), text(node)))
                else:
                    taken.append(alias.name)
            if taken:
                found.append(Import(module, node.lineno, base, tuple(taken), text(node)))
        elif isinstance(node, ast.Call) and (target := _literal_import_call(node)):
            found.append(Import(module, node.lineno, target, (), text(node)))
    return [imp for imp in found if layer(imp.target) is not None]


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def broken_rule(imp: Import) -> str | None:
    """Why ``imp`` breaks the layering, or None if it does not."""
    src, dst = layer(imp.importer), layer(imp.target)
    if src == ENGINE and dst != ENGINE:
        return f"the engine must not import the {dst} ({imp.target})"
    if src == CLASSIC and dst == TOOLING:
        return f"the classic API must not import tooling ({imp.target})"
    if src == TOOLING and dst == ENGINE:
        private = [p for p in imp.target.split(".") if _private(p)]
        private += [n for n in imp.names if _private(n)]
        if private:
            return f"tooling must use the engine's public API, not {', '.join(private)}"
    return None


def violations(imports: list[Import], paths: dict[str, Path] | None = None) -> list[str]:
    out = []
    for imp in imports:
        why = broken_rule(imp)
        if why:
            where = paths[imp.importer].relative_to(SRC.parent) if paths else imp.importer
            out.append(f"{where}:{imp.line}: `{imp.statement}`: {why}")
    return out


def tree_imports() -> tuple[list[Import], dict[str, Path]]:
    modules = all_modules()
    known = frozenset(modules)
    imports = []
    for name, path in modules.items():
        imports += find_imports(
            path.read_text(encoding="utf-8"),
            name,
            is_package=path.name == "__init__.py",
            known=known,
        )
    return imports, modules


# ------------------------------------------------------------------------------ the tree
def test_every_module_is_in_a_layer():
    modules = all_modules()
    assert "midnite.engine.renderer" in modules and "midnite.classic.methods" in modules
    assert {layer(m) for m in modules} == {ENGINE, CLASSIC, TOOLING}


def test_the_checker_sees_the_trees_imports():
    imports, _ = tree_imports()
    pairs = {(i.importer, i.target) for i in imports}
    # one of each kind, so that a checker that parses nothing cannot pass
    assert ("midnite.engine.renderer", "midnite.engine._fold") in pairs  # engine -> engine
    assert ("midnite.classic.methods", "midnite.engine.renderer") in pairs  # classic
    assert ("midnite.cli", "midnite.models") in pairs  # inside a function: `from midnite import`


def test_imports_point_one_way_down():
    imports, paths = tree_imports()
    bad = violations(imports, paths)
    assert not bad, "imports against the layering:\n" + "\n".join(bad)


# ------------------------------------------------------------------------------ the checker
KNOWN = frozenset(
    {
        "midnite",
        "midnite.cli",
        "midnite.models",
        "midnite.engine",
        "midnite.engine._fold",
        "midnite.engine.renderer",
        "midnite.visualization",
        "midnite.visualization.selectors",
    }
)


def check(source: str, module: str, is_package: bool = False) -> list[str]:
    return violations(find_imports(source, module, is_package=is_package, known=KNOWN))


@pytest.mark.parametrize(
    ("module", "source", "message"),
    [
        # the engine reaches up
        ("midnite.engine.param", "import midnite.cli", "engine must not import the tooling"),
        ("midnite.engine.param", "import midnite", "(midnite)"),
        ("midnite.engine.param", "from midnite import objectives", "(midnite)"),
        ("midnite.engine.param", "from midnite import models", "(midnite.models)"),
        (
            "midnite.engine.param",
            "from midnite.visualization.selectors import ChannelSplit",
            "engine must not import the classic API",
        ),
        ("midnite.engine.param", "from .. import cli", "(midnite.cli)"),
        ("midnite.engine", "from .. import visualization", "(midnite.visualization)"),
        (
            "midnite.engine.param",
            "def f():\n    import importlib\n    return importlib.import_module('midnite.cli')",
            "(midnite.cli)",
        ),
        ("midnite.engine.param", "__import__('midnite.plot')", "(midnite.plot)"),
        # the classic API reaches up
        ("midnite.visualization.methods", "from midnite import models", "must not import tool"),
        ("midnite.visualization.methods", "import midnite", "classic API must not import"),
        ("midnite.visualization.methods", "from ..records import FORMAT", "(midnite.records)"),
        # tooling reaches into the engine's private parts
        ("midnite.cli", "from midnite.engine._fold import folded", "not _fold"),
        ("midnite.cli", "import midnite.engine._heap", "not _heap"),
        ("midnite.cli", "from midnite.engine import _fold", "not _fold"),
        ("midnite.cli", "from midnite.engine.renderer import _check", "not _check"),
        ("midnite.metrics", "def f():\n    from .engine._fold import folded", "not _fold"),
        ("midnite", "from .engine.renderer import _private_helper", "not _private_helper"),
    ],
)
def test_checker_catches_a_planted_violation(module, source, message):
    is_package = module in ("midnite", "midnite.engine")
    found = check(source, module, is_package)
    assert len(found) == 1 and message in found[0], found
    # the report names the module, the line and the import as written
    where, line, rest = found[0].split(":", 2)
    assert where == module
    assert rest.split("`")[1] in source.splitlines()[int(line) - 1]


@pytest.mark.parametrize(
    ("module", "source"),
    [
        ("midnite.engine.renderer", "from midnite.engine._fold import folded"),
        ("midnite.engine.renderer", "from . import recipes\nfrom ._heap import retained_heap"),
        ("midnite.engine", "from midnite.engine import objectives"),
        ("midnite.engine.param", "import torch\nfrom collections import abc"),
        ("midnite.visualization.methods", "from midnite.engine.renderer import Renderer"),
        ("midnite.visualization.base", "from .selectors import ChannelSplit"),
        ("midnite.cli", "import midnite\nfrom midnite import models, objectives"),
        ("midnite.cli", "from midnite.visualization.base import PixelActivation"),
        ("midnite.cli", "from midnite.engine import __all__, render"),
        ("midnite", "from midnite.engine import render"),
        ("midnite.cli", "importlib.import_module(name)"),  # not a literal: nothing to check
    ],
)
def test_checker_accepts_imports_that_point_down(module, source):
    assert check(source, module, module in ("midnite", "midnite.engine")) == []


def test_relative_imports_resolve():
    imports = find_imports("from . import x\nfrom ..a import b", "midnite.engine.param")
    assert [(i.target, i.names) for i in imports] == [
        ("midnite.engine", ("x",)),
        ("midnite.a", ("b",)),
    ]
    imports = find_imports("from . import param", "midnite.engine", is_package=True)
    assert [(i.target, i.names) for i in imports] == [("midnite.engine", ("param",))]
