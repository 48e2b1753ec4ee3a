""" "What fires on my photo": the units of a layer one image drives most, and where.

``fires(model, layer, image, top)`` runs the model once on a ``(C, H, W)`` image in [0, 1] and
returns the ``top`` units by mean activation (the ``channel`` view's objective), each with a
small heatmap (a PNG data URL) of where it fires for a ``(C, H, W)`` layer;
``concept_fires(concepts, image, top)`` the same for a layer's concepts (their maps' maxima).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from midnite.analysis.concepts import Concepts
from midnite.engine import ActivationCapture, frozen
from midnite.errors import UsageError
from midnite.serve.jobs import data_url

__all__ = ["HEATMAP", "concept_fires", "fires"]

HEATMAP = 64  # heatmap side in pixels (nearest-neighbour enlarged, so cells stay visible)


def _heatmap(values: torch.Tensor) -> str:
    """An ``(h, w)`` map as a red-on-black PNG data URL, scaled to its own range."""
    low, high = float(values.min()), float(values.max())
    norm = (values - low) / (high - low) if high > low else torch.zeros_like(values)
    big = F.interpolate(norm[None, None], size=(HEATMAP, HEATMAP), mode="nearest")[0, 0]
    rgb = torch.stack([big, big * big * 0.8, big.pow(4) * 0.5])  # black, red, orange, pale
    return data_url(rgb.clamp(0, 1))


def _check(image: object, top: object, name: str) -> None:
    if not isinstance(image, torch.Tensor) or image.dim() != 3:
        got = tuple(image.shape) if isinstance(image, torch.Tensor) else type(image).__name__
        raise UsageError(f"{name} needs an image tensor (C, H, W), got {got}")
    if isinstance(top, bool) or not isinstance(top, int) or top < 1:
        raise UsageError(f"top must be a positive int, got {top!r}")


def fires(model: torch.nn.Module, layer: str, image: torch.Tensor, top: int = 12) -> list[dict]:
    """The ``top`` units of ``layer`` by mean activation on ``image`` ``(C, H, W)`` in [0, 1]:
    ``[{"unit", "value", "heatmap"}]`` (``heatmap``: a PNG data URL, None for a flat layer)."""
    _check(image, top, "fires")
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    with torch.no_grad(), frozen(model), ActivationCapture(model, [layer]) as capture:
        act = capture(image[None].to(device))[layer][0].float().cpu()
    means = act.flatten(1).mean(1) if act.dim() >= 2 else act
    order = torch.argsort(means, descending=True)[:top]
    found = []
    for unit in order.tolist():
        where = act[unit] if act.dim() == 3 else None
        found.append(
            {
                "unit": int(unit),
                "value": float(means[unit]),
                "heatmap": None if where is None else _heatmap(where),
            }
        )
    return found


def concept_fires(concepts: Concepts, image: torch.Tensor, top: int = 12) -> list[dict]:
    """The ``top`` concepts of a dictionary by their code (map maximum) on ``image`` ``(C, H,
    W)``: ``[{"concept", "value", "heatmap"}]`` (``heatmap`` None for a flat layer)."""
    _check(image, top, "concept_fires")
    maps = concepts.maps(image[None])[0].float()
    values = maps.flatten(1).amax(1) if maps.dim() == 3 else maps
    order = torch.argsort(values, descending=True)[:top]
    return [
        {
            "concept": int(i),
            "value": float(values[i]),
            "heatmap": _heatmap(maps[i]) if maps.dim() == 3 else None,
        }
        for i in order.tolist()
    ]
