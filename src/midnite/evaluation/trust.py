"""How far to trust a feature visualization: ``trust(model, target, images, judge=...)``.

A ``TrustReport`` holds path agreement (the sanity check of Geirhos et al. 2024), a
2-alternative score in the spirit of MIS (Zimmermann et al. 2024) for synthetic and natural
references side by side, seed stability, naturalness and transfer where they apply, a verdict
in words and ``flagged``. Nothing is written; see ``trust`` for the statistics.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from midnite.engine import OUTPUT, Objective, objectives, recipes, render
from midnite.engine.checks import check_int, check_positive_int
from midnite.errors import UsageError
from midnite.evaluation import metrics
from midnite.evaluation.trust_stats import (
    Observed,
    min_images,
    observe,
    pair_up,
    path_agreement,
    path_layers,
    two_alternative,
    wilson,
)
from midnite.images import list_images, load

__all__ = ["TrustReport", "assess", "natural_images", "target_objective", "trust"]

GIVEN = "given image"  # the recipe name of a ready picture


@dataclass
class TrustReport:
    """How far one picture of a target can be trusted (see ``trust``).

    ``score``/``ci``: 2-alternative accuracy from the picture(s) as references, with its 95 %
    Wilson interval (``negative``: min pictures were the opposite references);
    ``natural``/``natural_ci``: the same from top and bottom natural examples; ``path``: mean
    of ``path_curve`` over ``layers`` (0.5: as close to the natural examples as a random
    photograph); ``flagged``: ``path <= 0.5`` or a non-finite picture.
    """

    target: str
    recipe: str
    finite: bool
    layers: list[str] = field(default_factory=list)
    path_curve: list[float] = field(default_factory=list)
    path: float | None = None
    score: float | None = None
    ci: tuple[float, float] | None = None
    natural: float | None = None
    natural_ci: tuple[float, float] | None = None
    pairs: int = 0
    seed: int = 0
    stability: float | None = None
    naturalness: dict | None = None
    transfer: dict | None = None
    problem: str | None = None  # why the picture was not scored
    negative: bool = False  # the synthetic score also used min pictures (max minus min)

    @property
    def flagged(self) -> bool:
        """Not to be trusted: a non-finite picture, or a path no closer than random photos'."""
        return not self.finite or (self.path is not None and self.path <= 0.5)

    @property
    def verdict(self) -> str:
        """One sentence saying how far to trust the picture and why."""
        if not self.finite:
            return f"not scored: {self.problem or 'the picture is not finite'}"
        if self.flagged:
            return (
                f"do not trust: the picture's path through the layers before the target is no "
                f"closer to its natural examples than random photos' ({self.path:.2f} <= 0.5)"
            )
        if self.score is None or self.ci is None or self.natural is None:
            return f"not scored: {self.problem or 'no 2-alternative score'}"
        nat = f"natural examples {self.natural:.0%}"
        if self.ci[0] > 0.5:
            return (
                f"informative: it tells which of two photos drives the target more "
                f"{self.score:.0%} of the time ({nat}); "
                + ("no layers before it to check" if self.path is None else f"path {self.path:.2f}")
            )
        if self.ci[1] < 0.5:
            return (
                f"misleading: it points to the photo that drives the target less, more often "
                f"than not ({self.score:.0%}, {nat}); trust the natural examples instead"
            )
        return (
            f"uninformative: it predicts the target no better than chance ({self.score:.0%}, "
            f"{nat}); trust the natural examples instead"
        )

    def to_json(self) -> dict:
        """Every field, ``flagged`` and ``verdict`` as plain JSON values."""
        return {
            "target": self.target,
            "recipe": self.recipe,
            "finite": self.finite,
            "layers": list(self.layers),
            "path_curve": list(self.path_curve),
            "path": self.path,
            "score": self.score,
            "ci": None if self.ci is None else list(self.ci),
            "natural": self.natural,
            "natural_ci": None if self.natural_ci is None else list(self.natural_ci),
            "pairs": self.pairs,
            "seed": self.seed,
            "stability": self.stability,
            "naturalness": self.naturalness,
            "transfer": self.transfer,
            "problem": self.problem,
            "negative": self.negative,
            "flagged": self.flagged,
            "verdict": self.verdict,
        }


def target_objective(target: object) -> tuple[Objective, str, int | None]:
    """``(objective, layer whose channels are observed, channel or None)`` of a target:
    ``(layer, channel)``, ``(layer, direction vector)`` or any ``Objective``."""
    if isinstance(target, Objective):
        if not target.layers:
            raise UsageError(f"target objective {target!r} reads no layer")
        return target, target.layers[0], getattr(target, "unit", None)
    if isinstance(target, tuple) and len(target) == 2 and isinstance(target[0], str):
        layer, what = target
        if isinstance(what, Tensor):
            return objectives.direction(layer, what), layer, None
        unit = check_int("channel", what, 0)
        return objectives.channel(layer, unit), layer, unit
    raise UsageError(
        "target must be (layer, channel), (layer, direction tensor) or an Objective, "
        f"got {type(target).__name__}"
    )


def natural_images(images: object, size: tuple[int, int]) -> Tensor:
    """A folder's images (sorted) or a ``(N, 3, H, W)`` tensor as ``(N, 3, H, W)`` in [0, 1]."""
    if isinstance(images, Tensor):
        if images.dim() != 4 or images.shape[1] != 3 or not images.is_floating_point():
            raise UsageError(
                f"images must be a folder or a float (N, 3, H, W) tensor, got "
                f"{images.dtype} {tuple(images.shape)}"
            )
        return images.float()
    if isinstance(images, (str, bytes)) or hasattr(images, "__fspath__"):
        names = list_images(images)
        root = Path(images)
        return torch.stack([load(root / n, size=size, channels=3) for n in names])
    raise UsageError(
        f"images must be a folder or a (N, 3, H, W) tensor, got {type(images).__name__}"
    )


def _recipe_name(model: nn.Module, objective: Objective, recipe: object) -> str:
    if recipe is None:
        return recipes.for_model(model, objective).name
    if isinstance(recipe, recipes.Recipe):
        return recipe.name
    return recipes.get(recipe).name  # type: ignore[arg-type]


def _picture(image: object) -> Tensor:
    if not isinstance(image, Tensor) or image.dim() not in (3, 4) or image.shape[-3] != 3:
        got = tuple(image.shape) if isinstance(image, Tensor) else type(image).__name__
        raise UsageError(f"image must be a (3, H, W) or (B, 3, H, W) tensor, got {got}")
    return (image if image.dim() == 4 else image[None]).float()


def assess(
    natural: Observed,
    vis: Observed,
    values: Tensor,
    *,
    report: TrustReport,
    pairs: int,
    refs: int,
    seed: int,
    negative: Observed | None = None,
) -> TrustReport:
    """Fill ``report`` from the observations of the natural images and of the picture(s).

    ``values`` ``(N,)``: the target's value on each natural image. Path agreement uses the
    ``refs`` top natural images as examples and every other image as the baseline; the
    2-alternative scores use ``pair_up(values, pairs, refs, seed)``. ``negative``: the
    pictures that minimize the target (Borowski et al.'s min references), subtracted from the
    synthetic score as the bottom natural examples are from the natural one.
    """
    if natural.judge is None or vis.judge is None:
        raise UsageError("assess needs judge features of the natural images and the picture")
    p = pair_up(values, pairs, refs, seed)
    order = torch.argsort(values, descending=True, stable=True)
    report.layers = list(natural.path)
    report.path_curve = path_agreement(vis.path, natural.path, order[:refs], order[refs:])
    report.path = sum(report.path_curve) / len(report.path_curve) if report.path_curve else None
    neg = None if negative is None else negative.judge
    report.negative = neg is not None
    hit = two_alternative(natural.judge, p, vis.judge, neg)
    report.score, report.ci = hit / pairs, wilson(hit, pairs)
    hit = two_alternative(natural.judge, p, natural.judge[p.top], natural.judge[p.bottom])
    report.natural, report.natural_ci = hit / pairs, wilson(hit, pairs)
    report.pairs, report.seed = pairs, seed
    if len(vis) >= 2:
        per_layer = [
            float(metrics.seed_stability(vis.path[x] - natural.path[x].mean(0, keepdim=True)))
            for x in natural.path
        ]
        report.stability = sum(per_layer) / len(per_layer) if per_layer else None
    return report


def _extras(report: TrustReport, pics: Tensor, target: object, judge: nn.Module) -> None:
    """Naturalness (images of 32 px and more) and transfer (class targets) where they apply."""
    try:
        report.naturalness = metrics.naturalness(pics).to_dict()
    except ValueError:
        report.naturalness = None
    if isinstance(target, tuple) and target[0] == OUTPUT and isinstance(target[1], int):
        try:
            report.transfer = metrics.transferability(pics, target[1], {"judge": judge})["judge"]
        except (ValueError, IndexError):
            report.transfer = None


def _render(model: nn.Module, objective: Objective, recipe: object, **settings: Any) -> Tensor:
    """The pictures of ``objective``; a failed render's are NaN (reported, not scored)."""
    result = render(model, objective, recipe=recipe, progress=False, **settings)
    return torch.full_like(result.images, math.nan) if result.failed else result.images


def _check(
    model: object, judge: object, negative: object, image: object, negative_image: object
) -> None:
    if not isinstance(model, nn.Module) or not isinstance(judge, nn.Module):
        raise UsageError("model and judge must be torch.nn.Module instances")
    if judge is model:
        raise UsageError("judge must be a different network from model (it took part), got model")
    if not isinstance(negative, bool):
        raise UsageError(f"negative must be True or False, got {negative!r}")
    if negative_image is not None and image is None:
        raise UsageError("negative_image needs image (the max pictures) beside it, got no image")


def _pictures(
    model: nn.Module,
    objective: Objective,
    recipe: object,
    image: Tensor | None,
    negative_image: Tensor | None,
    negative: bool,
    how: dict[str, Any],
) -> tuple[Tensor, Tensor | None]:
    """The max pictures and the min ones (None without ``negative`` or a ``negative_image``):
    the given ones, else rendered by ``recipe`` with the settings ``how``."""
    if image is not None:
        negs = _picture(negative_image) if negative and negative_image is not None else None
        return _picture(image), negs
    pics = _render(model, objective, recipe, **how)
    # the same recipe by name for both: -objective alone could resolve to another one
    return pics, _render(model, -objective, recipe, **how) if negative else None


def _non_finite(report: TrustReport, pics: Tensor, negs: Tensor | None) -> bool:
    """Mark ``report`` not finite (and say which picture) when a picture holds NaN or inf."""
    for what, x in (("picture", pics), ("min picture", negs)):
        if x is not None and not bool(torch.isfinite(x).all()):
            report.finite, report.problem = False, f"the {what} holds NaN or infinite values"
            return True
    return False


def trust(
    model: nn.Module,
    target: object,
    images: object,
    *,
    judge: nn.Module,
    recipe: object = None,
    image: Tensor | None = None,
    negative_image: Tensor | None = None,
    negative: bool = True,
    pairs: int = 100,
    refs: int = 9,
    seed: int = 0,
    views: int = 3,
    size: int | tuple[int, int] = 224,
    judge_layer: str | None = None,
    layers: list[str] | None = None,
    device: str | torch.device | None = None,
    render_settings: Mapping[str, object] | None = None,
) -> TrustReport:
    """How far to trust the picture of ``target`` on ``model``, judged against ``images``.

    ``target``: ``(layer, channel)``, ``(layer, direction)`` or an Objective; ``images``: a
    folder or a ``(N, 3, H, W)`` tensor in [0, 1] (at least ``2*refs + 3*ceil(sqrt(pairs))``).
    The picture is ``render(model, objective, recipe=recipe, batch=views, seed=seed)`` at
    ``size`` (the recipe the catalogue uses when None; ``render_settings`` adds settings such
    as ``steps``), or ``image`` ``(B, 3, H, W)`` when given (recipe ``"given image"``). With
    ``negative`` (the default) the min pictures of ``-objective`` are rendered the same way
    (same recipe, seed and views), or ``negative_image`` is taken beside a given ``image``; a
    given ``image`` alone is scored from its max pictures only (``report.negative`` False).

    - Path agreement: at ``layers`` (default: up to 6 layers that run before the target,
      ``path_layers``), each channel's mean and root-mean-square over positions, centred by
      the natural images' mean; per layer the share of natural images outside the ``refs``
      top examples whose mean cosine to the examples is below the picture's
      (``path_agreement``). ``path`` is their mean; ``flagged`` when ``path <= 0.5``, i.e. the
      picture's path is no closer than a random photograph's (RMS: see ``observe``).
    - 2-alternative score: ``pairs`` seeded (top third, bottom third) couples of the natural
      images outside the references (``pair_up``); a pair is right when the query that drives
      the target more is more similar, in ``judge`` features (its output, or ``judge_layer``'s
      channel means, centred), to the max minus the min pictures (``score``; max and min
      references as in Borowski et al. 2021 and MIS; why: ``two_alternative``), or to the top
      minus the bottom natural references (``natural``); 95 % Wilson intervals.
    - ``stability``: ``metrics.seed_stability`` of the ``views`` pictures' path features,
      centred by the natural images' mean, averaged over the layers (the target layer is left
      out: its target channel alone would make any two views agree); ``naturalness``:
      ``metrics.naturalness``; ``transfer``: ``metrics.transferability`` by the judge for a
      class of the output.

    A picture that is not finite is reported (``finite`` False, ``flagged``), not scored.
    ``judge is model`` is refused. The target's value is the objective's (a channel's spatial
    mean): a zero-mean linear channel's (``grating_net``'s ``("conv", 0)``) says nothing.
    """
    _check(model, judge, negative, image, negative_image)
    objective, layer, _ = target_objective(target)
    pairs = check_positive_int("pairs", pairs)
    refs = check_positive_int("refs", refs)
    seed = check_int("seed", seed, 0)
    dev = torch.device(device) if device is not None else torch.device("cpu")
    hw = (size, size) if isinstance(size, int) else tuple(size)
    nat_images = natural_images(images, hw)  # type: ignore[arg-type]
    if len(nat_images) < min_images(pairs, refs):
        pair_up(torch.zeros(len(nat_images)), pairs, refs, seed)  # raises the one message
    where = layers if layers is not None else path_layers(model, layer, nat_images[:1].to(dev))
    name = GIVEN if image is not None else _recipe_name(model, objective, recipe)
    report = TrustReport(target=repr(objective), recipe=name, finite=True)
    how = dict(render_settings or {}, batch=views, seed=seed, size=hw, device=dev)
    pics, negs = _pictures(model, objective, recipe or name, image, negative_image, negative, how)
    if _non_finite(report, pics, negs):
        return report
    common = dict(target=layer, layers=where, objective=objective, judge=judge, device=dev)
    natural, vis, neg = (
        None if x is None else observe(model, x, judge_layer=judge_layer, **common)  # type: ignore[arg-type]
        for x in (nat_images, pics, negs)
    )
    assert natural is not None and vis is not None and natural.values is not None
    assess(natural, vis, natural.values, report=report, pairs=pairs, refs=refs, seed=seed,
           negative=neg)  # fmt: skip
    _extras(report, pics, target, judge)
    return report
