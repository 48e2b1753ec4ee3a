"""The concept dictionaries of a served folder, offered for live renders.

Each ``<layer>/concepts.pt`` saved for this model (``midnite concepts`` or ``catalogue
--concepts``) is loaded and its views registered (``jobs.concepts.concept_views``), so a
request ``{"layer", "unit": i, "view": "concept_<digest>"}`` renders concept ``i`` with its
recipe, and the layer's concept pages are rebuilt after it. Another model's, damaged or
symlinked dictionaries are not offered.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch

from midnite.analysis.concepts import Concepts
from midnite.errors import MidniteError
from midnite.jobs import concepts as J
from midnite.store.concepts import load_concepts
from midnite.store.files import DamagedError, read_json

__all__ = ["ConceptView", "dictionaries"]


@dataclass(frozen=True)
class ConceptView:
    """A registered concept view: its dictionary's ``layer``, ``n`` concepts, ``recipe``."""

    layer: str
    n: int
    recipe: str
    concepts: Concepts = field(repr=False, compare=False)
    examples: Mapping = field(default_factory=dict, repr=False, compare=False)


def _examples(layer_dir: Path, n: int) -> dict:
    try:
        found = read_json(layer_dir / f"{J.EXAMPLES}.json")
    except (DamagedError, ValueError, OSError):
        return {}
    return found if isinstance(found, dict) and len(found) == n else {}


def dictionaries(model: torch.nn.Module, folder: str | Path) -> dict[str, ConceptView]:
    """``{view name: ConceptView}`` of every dictionary of ``model`` in ``folder``'s layers."""
    out: dict[str, ConceptView] = {}
    for path in sorted(Path(folder).glob(f"*/{J.DICTIONARY}")):
        if path.is_symlink() or path.parent.is_symlink():
            continue
        try:
            concepts = load_concepts(path, model)
        except (MidniteError, OSError):
            continue  # another model's, or damaged: not offered
        examples = _examples(path.parent, concepts.n)
        for recipe, view in J.concept_views(concepts).items():
            out[view] = ConceptView(concepts.layer, concepts.n, recipe, concepts, examples)
    return out
