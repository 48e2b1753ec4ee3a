"""Saving and loading a concept dictionary: one file, written atomically, refused elsewhere.

``save_concepts(path, concepts)`` writes ``Concepts.state()`` with the model's weights digest
and a format version (``torch.save`` bytes through ``files.atomic_write_bytes``: the old file
or the new one, never a part); ``load_concepts(path, model, layer=None)`` reads it with
``weights_only=True`` and refuses a dictionary of another model (digest) or layer.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import torch
from torch import nn

from midnite.analysis.concepts import Concepts, from_state
from midnite.errors import UsageError
from midnite.store.files import DamagedError, atomic_write_bytes
from midnite.store.keys import weights_digest

__all__ = ["FORMAT", "load_concepts", "save_concepts"]

FORMAT = "midnite.concepts/1"
MAX_BYTES = 1 << 30  # a dictionary file larger than this is refused unread


def save_concepts(path: str | os.PathLike, concepts: Concepts) -> Path:
    """Write ``concepts`` to ``path`` (its folder must exist); returns the path."""
    if not isinstance(concepts, Concepts):
        raise TypeError(f"save_concepts takes Concepts, got {type(concepts).__name__}")
    path = Path(path)
    if not path.parent.is_dir():
        raise UsageError(f"save: no such folder {str(path.parent)!r} for {path.name!r}")
    state = {"format": FORMAT, "weights": weights_digest(concepts.model), **concepts.state()}
    buf = io.BytesIO()
    torch.save(state, buf)
    return atomic_write_bytes(path, buf.getvalue())


def load_concepts(path: str | os.PathLike, model: nn.Module, layer: str | None = None) -> Concepts:
    """The dictionary saved at ``path``, on ``model``; one of another model (weights digest) or,
    when ``layer`` is given, another layer is refused with a one-line ``UsageError``."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"load: no such dictionary file {str(path)!r}")
    if path.stat().st_size > MAX_BYTES:
        raise DamagedError(f"{str(path)!r} is over {MAX_BYTES} bytes: not a concepts file")
    try:
        state = torch.load(io.BytesIO(path.read_bytes()), weights_only=True)
    except Exception as err:  # any unpickling failure: the file is not ours or is damaged
        raise DamagedError(f"{str(path)!r} is not a readable concepts file ({err})") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise DamagedError(f"{str(path)!r} is not a concepts file (format {FORMAT!r})")
    digest = weights_digest(model)
    if state.get("weights") != digest:
        raise UsageError(
            f"{str(path)!r} was learned on another model (weights {state.get('weights')}), not "
            f"this one ({digest})"
        )
    if layer is not None and state.get("layer") != layer:
        raise UsageError(
            f"{str(path)!r} is a dictionary of layer {state.get('layer')!r}, not {layer!r}"
        )
    return from_state(model, state)
