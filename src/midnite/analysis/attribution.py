"""Gradient x activation of a layer's concepts: how much each drives an output of the model.

``concept_attribution(concepts, images, target)`` streams the images (each decoded once) and
returns, per image, each concept's part ``sum_pos u_i <grad, d_i>`` of the target's value
(``u`` the concept's code, ``d_i`` its direction); token layers are read as their patch
grid, like everywhere else. ``by_class`` sums it by the class each image is predicted as.
Nothing is written; the model is left as it was found.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from midnite.analysis.stream import image_source, loaded, placed
from midnite.engine.checks import check_positive_int, check_size
from midnite.engine.hooks import frozen, input_channels
from midnite.engine.tokens import TokenReader
from midnite.errors import UsageError
from midnite.images import load

if TYPE_CHECKING:
    from midnite.analysis.concepts import Concepts

__all__ = ["by_class", "class_target", "concept_attribution", "predicted", "top_classes"]

Target = Callable[[Tensor], Tensor]


def class_target(target: object) -> Target:
    """``target`` as a function of the model's output giving ``(B,)``: a class index (int >= 0)
    or such a function itself."""
    if callable(target):
        return target
    if isinstance(target, int) and not isinstance(target, bool) and target >= 0:
        index = target

        def logit(out: Tensor) -> Tensor:
            flat = out.flatten(1)
            if index >= flat.shape[1]:
                raise UsageError(
                    f"target class must be in 0..{flat.shape[1] - 1} (the output's width), "
                    f"got {index}"
                )
            return flat[:, index]

        return logit
    raise UsageError(
        f"target must be a class index (int >= 0) or a function of the output, got {target!r}"
    )


def predicted(out: Tensor) -> Tensor:
    """Each image's top class logit (the target of :func:`by_class`). ``(B, K)`` -> ``(B,)``."""
    if out.dim() != 2:
        raise UsageError(
            f"classes need a model whose output is (batch, classes), got {tuple(out.shape)}"
        )
    return out.max(1).values


def _batches(concepts: Concepts, images: object, batch: int) -> Iterator[Tensor]:
    hw = check_size("size", concepts.settings.get("size", 224))
    source = image_source(images, (0, 1))
    channels = input_channels(concepts.model)
    chunk: list[Tensor] = []
    seen = 0
    for *_, img, _reason in loaded(
        source.items, lambda item: load(item, size=hw, channels=channels), 0
    ):
        if img is None:
            continue
        chunk.append(img)
        seen += 1
        if len(chunk) == batch:
            yield torch.stack(chunk)
            chunk = []
    if chunk:
        yield torch.stack(chunk)
    if seen == 0:
        raise UsageError(f"images: no readable image in {source.where}")


def concept_attribution(
    concepts: Concepts, images: object, target: object, *, batch: int = 16
) -> Iterator[tuple[Tensor, Tensor]]:
    """Per batch of ``images``: ``(attribution (B, n), output (B, ...))`` of ``target``
    (see :func:`class_target`)."""
    fn = class_target(target)
    batch = check_positive_int("batch", batch)
    dev, norm = placed(concepts.settings.get("device"), concepts.settings.get("normalize"))
    model, layer = concepts.model, concepts.layer
    module = dict(model.named_modules()).get(layer)
    if module is None:
        raise UsageError(f"layer {layer!r} is not a module of the model")
    reader = TokenReader(model, [layer])
    seen: list[Tensor] = []
    with frozen(model, dev):
        handles = reader.attach()
        handles.append(module.register_forward_hook(lambda m, a, out: seen.append(out)))
        try:
            for chunk in _batches(concepts, images, batch):
                x = chunk.to(dev).requires_grad_()  # so the layer's output has a graph
                seen.clear()
                reader.reset()
                out = model(norm(x) if norm is not None else x)
                raw = seen[0]
                grad_raw = torch.autograd.grad(fn(out).sum(), raw)[0]
                act, grad = reader.read(layer, raw), reader.read(layer, grad_raw)
                concepts._check_width(tuple(act.shape[1:]))
                codes = concepts.encode_layer(act)
                g = torch.einsum("bc...,nc->bn...", grad.float(), concepts.directions.to(dev))
                per = (g * codes).flatten(2).sum(2) if g.dim() > 2 else g * codes
                yield per.detach().double().cpu(), out.detach().cpu()
        finally:
            for handle in handles:
                handle.remove()


def by_class(concepts: Concepts, images: object, *, batch: int = 16) -> tuple[Tensor, Tensor]:
    """Each concept's attribution to the class each image is predicted as, summed by class:
    ``(table (K, n), images per class (K,))``."""
    table: Tensor | None = None
    counts: Tensor | None = None
    for per, out in concept_attribution(concepts, images, predicted, batch=batch):
        if table is None or counts is None:
            table = torch.zeros(out.shape[1], per.shape[1], dtype=torch.float64)
            counts = torch.zeros(out.shape[1], dtype=torch.long)
        top = out.argmax(1)
        table.index_add_(0, top, per)
        counts += torch.bincount(top, minlength=out.shape[1])
    assert table is not None and counts is not None  # _batches refuses an empty source
    return table, counts


def top_classes(table: Tensor, counts: Tensor, k: int) -> list[list[tuple[int, float]]]:
    """Per concept, its ``k`` largest ``(class, share)`` of :func:`by_class`'s table, share =
    the class's sum over all images; classes with no positive share are left out."""
    k = check_positive_int("k", k)
    shares = table / float(max(1, int(counts.sum())))
    out = []
    for col in shares.T:
        top = col.topk(min(k, col.numel())).indices
        out.append([(int(c), float(col[c])) for c in top if col[c] > 0])
    return out
