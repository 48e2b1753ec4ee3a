"""Imports point one way down, floor by floor (``docs/architecture.md`` draws them).

Bottom to top; a module imports only from its own floor and the floors below it, never from a
sibling on its own level nor from above:

    0  engine      midnite.engine, midnite.errors   (nothing else of midnite, not even ``midnite``)
    1  classic     midnite.classic (midnite.visualization is its alias)
    1  images      midnite.images, midnite.models, midnite.plot
    2  analysis    midnite.analysis
    2  evaluation  midnite.evaluation
    3  store       midnite.store
    4  pages       midnite.pages
    5  jobs        midnite.jobs
    6  cli         midnite.cli, midnite.serve, midnite.__main__
    7  facade      midnite (the package), midnite.catalogue (re-exports) and the alias modules

Floors above the classic API use the engine through its public names only (no module or name
that starts with an underscore under ``midnite.engine``). An alias module is one whose body
replaces itself in ``sys.modules`` with the real module (``sys.modules[__name__] = ...``).
Every module is on a floor: a new top-level module fails ``test_every_module_is_on_a_floor``
until it is placed. Every import counts, also those inside functions, relative ones, and
``importlib.import_module("midnite...")`` / ``__import__("midnite...")`` with a literal name.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = "midnite"
FACADE = "facade"

# floor name -> (level, module prefixes): a module is on the floor of its longest prefix
FLOORS: dict[str, tuple[int, tuple[str, ...]]] = {
    "engine": (0, ("midnite.engine", "midnite.errors")),
    "classic": (1, ("midnite.classic", "midnite.visualization")),
    "images": (1, ("midnite.images", "midnite.models", "midnite.plot")),
    "analysis": (2, ("midnite.analysis",)),
    "evaluation": (2, ("midnite.evaluation",)),
    "store": (3, ("midnite.store",)),
    "pages": (4, ("midnite.pages",)),
    "jobs": (5, ("midnite.jobs",)),
    "cli": (6, ("midnite.cli", "midnite.serve", "midnite.__main__")),
    FACADE: (7, ("midnite", "midnite.catalogue")),  # catalogue: re-exports of the jobs floor
}
PUBLIC_ENGINE_ONLY = {"images", "analysis", "evaluation", "store", "pages", "jobs", "cli", FACADE}


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


def floor(module: str, aliases: frozenset[str] = frozenset()) -> str | None:
    """The floor of a midnite module (the facade for the alias modules); None outside midnite.

    A top-level module that is neither on a floor nor an alias is on no floor ("unplaced").
    """
    if module != PACKAGE and not module.startswith(PACKAGE + "."):
        return None
    if module == PACKAGE or module in aliases:
        return FACADE
    best, found = -1, "unplaced"
    for name, (_, prefixes) in FLOORS.items():
        for prefix in prefixes:
            hit = module == prefix or module.startswith(prefix + ".")
            if hit and prefix != PACKAGE and len(prefix) > best:
                best, found = len(prefix), name
    return found


def is_alias(source: str) -> bool:
    """Whether a module's body replaces itself in ``sys.modules`` (an alias at an old path)."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
            if (
                isinstance(target, ast.Subscript)
                and ast.unparse(target.value) == "sys.modules"
                and ast.unparse(target.slice) == "__name__"
            ):
                return True
    return False


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
    return [imp for imp in found if floor(imp.target) is not None]


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def broken_rule(imp: Import, aliases: frozenset[str] = frozenset()) -> str | None:
    """Why ``imp`` breaks the floors, or None if it does not."""
    src, dst = floor(imp.importer, aliases), floor(imp.target, aliases)
    assert src is not None and dst is not None
    if "unplaced" in (src, dst):
        return f"{imp.importer if src == 'unplaced' else imp.target} is on no floor"
    if src in (FACADE, dst):
        if src in PUBLIC_ENGINE_ONLY and dst == "engine":
            return _private_engine(imp)
        return None
    (low, _), (high, _) = FLOORS[dst], FLOORS[src]
    if src == "engine":
        return f"the engine must not import the {dst} floor ({imp.target})"
    if low > high:
        return f"the {src} floor must not import the {dst} floor above it ({imp.target})"
    if low == high:
        return f"the {src} floor must not import its sibling, the {dst} floor ({imp.target})"
    if src in PUBLIC_ENGINE_ONLY and dst == "engine":
        return _private_engine(imp)
    return None


def _private_engine(imp: Import) -> str | None:
    private = [p for p in imp.target.split(".") if _private(p)]
    private += [n for n in imp.names if _private(n)]
    if private:
        return f"floors above the engine use its public API, not {', '.join(private)}"
    return None


def violations(
    imports: list[Import],
    paths: dict[str, Path] | None = None,
    aliases: frozenset[str] = frozenset(),
) -> list[str]:
    out = []
    for imp in imports:
        why = broken_rule(imp, aliases)
        if why:
            where = paths[imp.importer].relative_to(SRC.parent) if paths else imp.importer
            out.append(f"{where}:{imp.line}: `{imp.statement}`: {why}")
    return out


def tree_aliases() -> frozenset[str]:
    return frozenset(n for n, p in all_modules().items() if is_alias(p.read_text("utf-8")))


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
def test_every_module_is_on_a_floor():
    modules, aliases = all_modules(), tree_aliases()
    assert "midnite.engine.renderer" in modules and "midnite.classic.methods" in modules
    placed = {m: floor(m, aliases) for m in modules}
    assert not [m for m, f in placed.items() if f == "unplaced"], placed
    assert set(placed.values()) == set(FLOORS), "every floor holds at least one module"


def test_each_floor_states_its_contract():
    """Each floor's package (or module) opens with a docstring saying what it holds."""
    for _, prefixes in FLOORS.values():
        for prefix in prefixes:
            path = SRC / prefix.replace(".", "/")
            path = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
            if path.exists():
                doc = ast.get_docstring(ast.parse(path.read_text("utf-8")))
                assert doc and len(doc.split()) >= 8, f"{path} states no contract"


def test_the_old_import_paths_are_aliases_of_one_module():
    import importlib

    aliases = tree_aliases()
    assert {"midnite.records", "midnite.site", "midnite.gallery"} <= aliases
    for name in aliases:
        module = importlib.import_module(name)
        assert module.__name__ != name, f"{name} is not replaced by the real module"


def test_the_checker_sees_the_trees_imports():
    imports, _ = tree_imports()
    pairs = {(i.importer, i.target) for i in imports}
    # one of each kind, so that a checker that parses nothing cannot pass
    assert ("midnite.engine.passes", "midnite.engine._fold") in pairs  # engine -> engine
    assert ("midnite.classic.methods", "midnite.engine.passes") in pairs  # classic
    assert ("midnite.cli.catalogue", "midnite.jobs.ray") in pairs  # inside a function


def test_imports_point_one_way_down():
    imports, paths = tree_imports()
    bad = violations(imports, paths, tree_aliases())
    assert not bad, "imports against the floors:\n" + "\n".join(bad)


# ------------------------------------------------------------------------------ the checker
KNOWN = frozenset(
    {
        "midnite",
        "midnite.cli",
        "midnite.models",
        "midnite.engine",
        "midnite.engine._fold",
        "midnite.engine.renderer",
        "midnite.classic",
        "midnite.classic.selectors",
        "midnite.store",
        "midnite.store.records",
        "midnite.pages",
        "midnite.jobs",
        "midnite.analysis",
        "midnite.evaluation",
        "midnite.images",
        "midnite.records",
    }
)


def check(source: str, module: str, is_package: bool = False) -> list[str]:
    aliases = frozenset({"midnite.records"})
    return violations(
        find_imports(source, module, is_package=is_package, known=KNOWN), None, aliases
    )


# one planted upward (or sideways) import per floor: each must be caught
@pytest.mark.parametrize(
    ("module", "source", "message"),
    [
        # the engine reaches up
        ("midnite.engine.param", "import midnite.cli", "engine must not import the cli floor"),
        ("midnite.engine.param", "import midnite", "(midnite)"),
        ("midnite.engine.param", "from midnite import objectives", "(midnite)"),
        ("midnite.engine.param", "from midnite import models", "(midnite.models)"),
        ("midnite.errors", "from midnite.store import records", "(midnite.store.records)"),
        ("midnite.engine.param", "from midnite.classic.selectors import X", "classic floor"),
        ("midnite.engine.param", "from .. import cli", "(midnite.cli)"),
        ("midnite.engine", "from .. import classic", "(midnite.classic)"),
        (
            "midnite.engine.param",
            "def f():\n    import importlib\n    return importlib.import_module('midnite.cli')",
            "(midnite.cli)",
        ),
        ("midnite.engine.param", "__import__('midnite.plot')", "(midnite.plot)"),
        # the classic API reaches up or sideways
        ("midnite.classic.methods", "from midnite import models", "sibling, the images floor"),
        ("midnite.classic.methods", "import midnite", "above it (midnite)"),
        ("midnite.classic.methods", "from ..records import FORMAT", "(midnite.records)"),
        # images, analysis, evaluation, store, pages, jobs, cli: one upward import each
        ("midnite.images.load", "from midnite.analysis import top_examples", "above it"),
        ("midnite.images", "from midnite.classic import base", "sibling, the classic floor"),
        ("midnite.plot", "from midnite.evaluation import metrics", "above it"),
        ("midnite.analysis.stream", "from midnite.store import records", "above it"),
        ("midnite.analysis", "from midnite import evaluation", "sibling, the evaluation"),
        ("midnite.evaluation.metrics", "import midnite.analysis", "sibling, the analysis"),
        ("midnite.store.records", "from midnite.pages import site", "above it"),
        ("midnite.store.keys", "from midnite import records", "above it (midnite.records)"),
        ("midnite.pages.site", "from midnite.jobs import plan", "above it"),
        ("midnite.jobs.runner", "from midnite.cli import main", "above it"),
        ("midnite.cli.render", "import midnite", "above it (midnite)"),
        ("midnite.newmodule", "import torch\nfrom midnite import engine", "on no floor"),
        # floors above the classic API reach into the engine's private parts
        ("midnite.cli", "from midnite.engine._fold import folded", "not _fold"),
        ("midnite.cli", "import midnite.engine._heap", "not _heap"),
        ("midnite.cli", "from midnite.engine import _fold", "not _fold"),
        ("midnite.jobs.runner", "from midnite.engine.renderer import _check", "not _check"),
        ("midnite.evaluation.x", "def f():\n    from ..engine._fold import folded", "not _fold"),
        ("midnite", "from .engine.renderer import _private_helper", "not _private_helper"),
    ],
)
def test_checker_catches_a_planted_violation(module, source, message):
    is_package = module in ("midnite", "midnite.engine", "midnite.images", "midnite.analysis")
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
        ("midnite.engine.hooks", "from midnite.errors import UsageError"),
        ("midnite.engine.param", "import torch\nfrom collections import abc"),
        ("midnite.classic.methods", "from midnite.engine.renderer import Renderer"),
        ("midnite.classic.base", "from .selectors import ChannelSplit"),
        ("midnite.images.load", "from midnite.engine.checks import as_images"),
        ("midnite.analysis.stream", "from midnite.images import load"),
        ("midnite.store.records", "from midnite.images import png_bytes"),
        ("midnite.pages.site", "from midnite.store import records\nimport midnite.analysis"),
        ("midnite.jobs.runner", "from midnite.pages import site\nfrom midnite import store"),
        ("midnite.cli", "import midnite.jobs\nfrom midnite import models, engine"),
        ("midnite.cli", "from midnite.classic.base import PixelActivation"),
        ("midnite.cli", "from midnite.engine import __all__, render"),
        ("midnite", "from midnite.engine import render\nfrom midnite.cli import main"),
        ("midnite.records", "from midnite.store import records"),  # an alias: the facade
        ("midnite.cli", "importlib.import_module(name)"),  # not a literal: nothing to check
    ],
)
def test_checker_accepts_imports_that_point_down(module, source):
    assert check(source, module, module in ("midnite", "midnite.engine")) == []


def test_is_alias_recognizes_only_a_self_replacing_module():
    assert is_alias(
        "import sys\nfrom midnite.store import records as _r\nsys.modules[__name__] = _r"
    )
    assert not is_alias("import sys\nsys.modules['x'] = 1\nfrom midnite.store import *")


def test_relative_imports_resolve():
    imports = find_imports("from . import x\nfrom ..a import b", "midnite.engine.param")
    assert [(i.target, i.names) for i in imports] == [
        ("midnite.engine", ("x",)),
        ("midnite.a", ("b",)),
    ]
    imports = find_imports("from . import param", "midnite.engine", is_package=True)
    assert [(i.target, i.names) for i in imports] == [("midnite.engine", ("param",))]
