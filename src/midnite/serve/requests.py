"""The live API's input checks: a render request's JSON, each field with a one-line error
naming what was expected and what was given (``BadRequest``: HTTP 400)."""

from __future__ import annotations

import difflib
import json
import math
from collections.abc import Mapping

from midnite.engine import recipes
from midnite.errors import UsageError
from midnite.jobs import get_view, view_names
from midnite.serve.concepts import ConceptView
from midnite.serve.jobs import Limits, Request

__all__ = ["OUTPUT_NAMES", "BadRequest", "layer_name", "parse_render"]

OUTPUT_NAMES = ("", "(output)", "output")  # the model's own output, as pages spell it
DEFAULT_STEPS = 64
MAX_BODY = 64 * 1024  # a render request's JSON at most


class BadRequest(UsageError):
    """A request the API refuses (HTTP 400), with a one-line reason."""


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def layer_name(value: object, shapes: dict[str, tuple[int, ...]]) -> str:
    """A known layer's name (``(output)`` for the output), or ``BadRequest`` with close names."""
    if not isinstance(value, str):
        raise BadRequest(f"layer must be a layer name (string), got {_short(value)}")
    name = "" if value in OUTPUT_NAMES and "" in shapes else value
    if name not in shapes:
        close = difflib.get_close_matches(value, [n for n in shapes if n], n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else "; GET /api/layers lists them"
        raise BadRequest(f"unknown layer {_short(value)}{hint}")
    return name


def _int(body: dict, key: str, low: int, high: int, default: int | None = None) -> int:
    value = body.get(key, default)
    if value is None:
        raise BadRequest(f"{key} is required: an integer from {low} to {high}")
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise BadRequest(f"{key} must be an integer from {low} to {high}, got {_short(value)}")
    return value


def _penalty(body: dict) -> float:
    value = body.get("init_penalty", 0.0)
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not ok or not math.isfinite(value) or not 0 <= value <= 1000:
        raise BadRequest(f"init_penalty must be a number from 0 to 1000, got {_short(value)}")
    return float(value)


def parse_render(
    raw: bytes,
    shapes: dict[str, tuple[int, ...]],
    limits: Limits,
    default_size: int,
    concepts: Mapping[str, ConceptView] | None = None,
) -> tuple[Request, str | None]:
    """A render request from its JSON body, and the upload id of its ``init`` (or None).

    ``{"layer", "unit"[, "view", "steps", "size", "recipe", "init", "init_penalty"]}``; a
    concept view (``concepts``) is of its dictionary's layer only, ``unit`` its concept.
    """
    concepts = concepts or {}
    if len(raw) > MAX_BODY:
        raise BadRequest(f"the request body must be at most {MAX_BODY} bytes, got {len(raw)}")
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as err:
        raise BadRequest(f"the body must be a JSON object, got invalid JSON ({err})") from None
    if not isinstance(body, dict):
        raise BadRequest(f"the body must be a JSON object, got {type(body).__name__}")
    layer = layer_name(body.get("layer"), shapes)
    shape = shapes[layer]
    view = body.get("view", "channel")
    known = [v for v in view_names() if v not in concepts or concepts[v].layer == layer]
    if not isinstance(view, str) or view not in known:
        raise BadRequest(f"view must be one of {', '.join(known)}, got {_short(view)}")
    unit = _int(body, "unit", 0, (concepts[view].n if view in concepts else shape[0]) - 1)
    if get_view(view).positions and len(shape) < 2:
        raise BadRequest(f"view {view!r} needs a layer with positions (C, H, W); {layer!r} is flat")
    steps = _int(body, "steps", 1, limits.max_steps, DEFAULT_STEPS)
    size = _int(body, "size", 16, limits.max_size, min(default_size, limits.max_size))
    recipe = body.get("recipe")
    if recipe is not None:
        try:
            recipes.get(recipe)
        except (TypeError, ValueError) as err:
            raise BadRequest(str(err)) from None
    init = body.get("init")
    if init is not None and not isinstance(init, str):
        raise BadRequest(f"init must be an upload id from POST /api/fires, got {_short(init)}")
    request = Request(layer, unit, view, steps, size, recipe, None, _penalty(body))
    return request, init
