"""Layer selection for plans: the default layers of a model (its repeated blocks' outputs and
its class output) and fnmatch patterns over the layer table's names."""

from __future__ import annotations

import difflib
import fnmatch
from collections.abc import Sequence

import torch

from midnite.engine import LayerTable
from midnite.jobs.plan import CatalogueError

__all__ = ["default_layers", "select_layers"]


def _usable(table: LayerTable) -> dict[str, tuple[int, ...]]:
    """``{name: shape}`` of the layers with units that run once per forward pass."""
    return {i.name: tuple(i.shape) for i in table if i.shape and i.calls == 1}


def _display(name: str) -> str:
    return name or "(output)"


def default_layers(model: torch.nn.Module, table: LayerTable) -> list[str]:
    """The default layers: the outputs of the model's repeated blocks, then its output.

    The rule: among the ``nn.Sequential`` and ``nn.ModuleList`` modules whose children are all
    blocks (modules with submodules of their own), siblings (same parent) whose names differ
    only in trailing digits (``layer1``, ``layer2``) form a group; the group with the most
    blocks wins (the first in module order on a tie), so EfficientNet gives
    ``_blocks.N``, timm ``blocks.N`` (or ``blocks.S.N`` for staged models) and torchvision's
    ResNet ``layerN.M``. Its blocks that output a ``(C, H, W)`` map (token layers count, as
    ``(D, h, w)``) are taken, in forward order, plus the model's output (``""``) when it is a
    flat vector of at least 2 values (reads as classes).
    """
    shapes = _usable(table)
    groups: dict[str, list[str]] = {}
    for name, module in model.named_modules():
        if not isinstance(module, (torch.nn.Sequential, torch.nn.ModuleList)):
            continue
        children = list(module.named_children())
        if len(children) < 2 or not all(any(True for _ in c.children()) for _, c in children):
            continue
        parent, _, own = name.rpartition(".")
        prefix = f"{name}." if name else ""
        group = (parent, own.rstrip("0123456789"), bool(name))  # layer1, layer2: one group
        groups.setdefault(str(group), []).extend(prefix + c for c, _ in children)
    chosen: list[str] = []
    if groups:
        best = max(groups.values(), key=len)  # max keeps the first of equals
        chosen = [n for n in best if len(shapes.get(n, ())) == 3]
    order = {i.name: k for k, i in enumerate(table)}
    chosen.sort(key=lambda n: order.get(n, 0))
    out = shapes.get("")
    if out is not None and len(out) == 1 and out[0] >= 2:
        chosen.append("")
    return chosen


def select_layers(
    model: torch.nn.Module, table: LayerTable, patterns: Sequence[str] | None = None
) -> list[str]:
    """Layer names matching the fnmatch ``patterns`` (in forward order), else ``default_layers``.

    ``(output)`` names the model's output. A pattern that matches no layer with units is a
    :class:`CatalogueError` with close matches.
    """
    shapes = _usable(table)
    if patterns is None:
        found = default_layers(model, table)
        if not found:
            raise CatalogueError(
                "found no repeated blocks with (C, H, W) outputs and no class output; name "
                "layers with --layers PATTERN (see 'midnite layers MODEL')"
            )
        return found
    if not patterns:
        raise CatalogueError("--layers needs at least one PATTERN")
    names = [i.name for i in table if i.name in shapes]
    chosen: set[str] = set()
    for pattern in patterns:
        if not pattern.strip():
            raise CatalogueError(f"empty layer pattern {pattern!r}; give a glob such as 'blocks.*'")
        hits = [n for n in names if fnmatch.fnmatchcase(_display(n), pattern)]
        if not hits:
            close = difflib.get_close_matches(
                pattern, [_display(n) for n in names], n=5, cutoff=0.5
            )
            hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
            raise CatalogueError(
                f"layer pattern {pattern!r} matches no layer with units{hint} (accepted: fnmatch "
                "globs over the names 'midnite layers MODEL' lists; '(output)' is the output)"
            )
        chosen.update(hits)
    return [n for n in names if n in chosen]
