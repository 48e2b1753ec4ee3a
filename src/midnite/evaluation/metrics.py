"""Quality metrics for feature visualizations: torch-native, batched, on any device and dtype.

Images are ``(B, C, H, W)`` in [0, 1] (a single ``(C, H, W)`` image is taken as ``B = 1``).
This module holds every metric: the model-free ones live in ``measures`` (re-exported here).
Metrics that need a model take callables (``score_fn(images) -> (B,)``), not engine objects.
``naturalness`` compares a batch with natural photographs (``size=MODEL_SIZE``: both at the
model's input size); its default reference is a small data file
(``midnite/data/photo_stats.json``: 25 crops of five photographs), so it needs no scikit-image.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from midnite.engine.checks import check_positive_int, check_real, check_size
from midnite.engine.transforms import random_affine
from midnite.evaluation.measures import (
    _images,
    colorfulness,
    gram_diversity,
    high_frequency_energy,
    power_spectrum,
    saturated_fraction,
    seed_stability,
    spectrum_slope,
    total_variation,
)

__all__ = [
    "MODEL_SIZE",
    "PHOTO_BAND",
    "Naturalness",
    "activation_gain",
    "at_size",
    "colorfulness",
    "gram_diversity",
    "high_frequency_energy",
    "naturalness",
    "power_spectrum",
    "robustness",
    "saturated_fraction",
    "seed_stability",
    "spectrum_slope",
    "summary",
    "total_variation",
    "transferability",
]

ScoreFn = Callable[[Tensor], Tensor]


def _scores(score_fn: ScoreFn, images: Tensor, name: str) -> Tensor:
    with torch.no_grad():
        s = score_fn(images)
    if not isinstance(s, Tensor):
        raise TypeError(f"score_fn must return a torch.Tensor, got {type(s).__name__}")
    s = s.reshape(-1) if s.numel() == len(images) else s
    if s.shape != (len(images),):
        raise ValueError(
            f"score_fn must return one score per image, shape ({len(images)},), "
            f"got {tuple(s.shape)} for {name}"
        )
    return s.double()


def _relative(new: Tensor, ref: Tensor, eps: float) -> Tensor:
    """1 + (new - ref) / max(|ref|, eps): new / ref when ref > 0, sign-correct when ref < 0."""
    return 1.0 + (new - ref) / ref.abs().clamp_min(eps)


# --------------------------------------------------------------------------------------------
# model-based metrics


def activation_gain(
    score_fn: ScoreFn, result: Tensor, start: Tensor, *, eps: float = 1e-6
) -> Tensor:
    """How much the objective rose from the start image to the result, per image.

    ``gain = 1 + (s_result - s_start) / max(|s_start|, eps)`` with ``s = score_fn(images)``.
    For ``s_start > 0`` this is exactly ``s_result / s_start``. For ``s_start < 0`` a plain
    ratio would flip sign (a rise from -2 to +2 would read -1), while this form reads 3: the rise
    in units of the start's magnitude, plus 1. For ``|s_start| < eps`` (e.g. a ReLU channel that
    is silent on a gray start) the ratio is undefined; the rise is then measured in units of
    ``eps``, so the number is large: pass an ``eps`` of the objective's typical scale, or report
    ``s_result - s_start`` instead. Gain 1 means no change, below 1 a loss.

    ``score_fn`` runs under ``torch.no_grad`` and must return one score per image.

    Shape: ``result`` and ``start`` ``(B, C, H, W)`` or ``(C, H, W)`` (``start`` may be a single
    image, used for every result); returns ``(B,)`` float64.
    """
    check_real("eps", eps, gt=0.0)
    result = _images(result, "result")
    start = _images(start, "start")
    if len(start) == 1 and len(result) > 1:
        start = start.expand(len(result), *start.shape[1:])
    if start.shape[0] != result.shape[0]:
        raise ValueError(
            f"start must hold 1 image or as many as result ({len(result)}), got {len(start)}"
        )
    return _relative(_scores(score_fn, result, "result"), _scores(score_fn, start, "start"), eps)


def robustness(
    score_fn: ScoreFn,
    images: Tensor,
    *,
    n: int = 8,
    max_shift: float = 8.0,
    degrees: float = 10.0,
    scales: tuple[float, float] = (0.9, 1.1),
    eps: float = 1e-6,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Objective under random small affine perturbations, relative to the objective on the image.

    ``robustness = 1 + (mean_k s(T_k x) - s(x)) / max(|s(x)|, eps)``, i.e. ``mean_k s(T_k x) /
    s(x)`` for a positive score (see ``activation_gain`` for the sign and ~0 conventions). Each
    ``T_k`` draws, per image, a shift uniform in ±``max_shift`` px on each axis, a rotation in
    ±``degrees`` and a zoom factor in ``scales`` (the names of ``transforms.random_affine``),
    resampled bilinearly with reflection padding at the same size. 1 means the visualization
    works as well when moved; an adversarial-looking image that needs exact pixel positions
    scores well below 1.

    ``score_fn`` is called ``n + 1`` times on ``(B, C, H, W)`` batches under ``torch.no_grad``.
    Draws come from ``generator`` (None: torch's default generator, so ``torch.manual_seed``
    makes the metric repeatable).

    Shape: ``images`` ``(B, C, H, W)`` or ``(C, H, W)``; returns ``(B,)`` float64.
    """
    images = _images(images)
    check_real("eps", eps, gt=0.0)
    check_positive_int("n", n)
    base = _scores(score_fn, images, "images")
    total = torch.zeros_like(base)
    for _ in range(n):
        moved = random_affine(
            images,
            max_shift=max_shift,
            degrees=degrees,
            scales=scales,
            generator=generator,
        )
        total += _scores(score_fn, moved, "perturbed images")
    return _relative(total / n, base, eps)


def _module_device_dtype(model: nn.Module) -> tuple[torch.device | None, torch.dtype | None]:
    for t in (*model.parameters(), *model.buffers()):
        if t.is_floating_point():
            return t.device, t.dtype
    return None, None


def _judge_hits(
    name: str,
    model: nn.Module,
    images: Tensor,
    targets: Tensor,
    ks: tuple[int, ...],
    batch_size: int,
    hw: tuple[int, int] | None,
) -> Tensor:
    """Per ``k`` of ``ks``, how many images ``model`` ranks their target among its top k."""
    device, dtype = _module_device_dtype(model)
    modes = [(m, m.training) for m in model.modules()]
    hits = torch.zeros(len(ks), dtype=torch.long)
    try:
        model.eval()
        with torch.no_grad():
            for lo in range(0, len(images), batch_size):
                x = images[lo : lo + batch_size]
                x = x.to(device=device or x.device, dtype=dtype or x.dtype)
                if hw is not None and tuple(x.shape[-2:]) != hw:
                    x = F.interpolate(x, size=hw, mode="bilinear", antialias=True)
                logits = model(x)
                if not isinstance(logits, Tensor) or logits.dim() != 2 or len(logits) != len(x):
                    got = tuple(logits.shape) if isinstance(logits, Tensor) else type(logits)
                    raise ValueError(
                        f"judge {name!r} must return logits (B, num_classes), got {got}"
                    )
                if max(ks) > logits.shape[1]:
                    raise ValueError(
                        f"topk {max(ks)} exceeds the {logits.shape[1]} classes of judge {name!r}"
                    )
                t = targets[lo : lo + batch_size].to(logits.device)
                if bool((t < 0).any() | (t >= logits.shape[1]).any()):
                    raise IndexError(
                        f"targets must be in [0, {logits.shape[1]}) for judge {name!r}, "
                        f"got {t.tolist()}"
                    )
                match = logits.topk(max(ks), dim=1).indices == t[:, None]  # best first
                for j, k in enumerate(ks):
                    hits[j] += int(match[:, :k].any(dim=1).sum())
    finally:
        for m, training in modes:
            m.training = training
    return hits


def transferability(
    images: Tensor,
    targets: Tensor | Sequence[int] | int,
    judges: Mapping[str, nn.Module] | nn.Module,
    *,
    topk: Sequence[int] = (1, 5),
    batch_size: int = 16,
    size: int | tuple[int, int] | Mapping[str, int | tuple[int, int] | None] | None = None,
) -> dict[str, dict[str, float]]:
    """Share of class visualizations that other models ("judges") classify as the target class.

    As in MACO (Fel et al. 2023): for each judge ``m`` and each ``k`` in ``topk``,
    ``top{k} = mean_i [targets_i ∈ top-k classes of m(images_i)]``.

    ``judges``: a dict name -> model, or one model (reported under the name ``"judge"``). Models
    take [0, 1] images and normalize themselves, and return logits ``(B, num_classes)``. Each judge
    runs in eval mode under ``torch.no_grad`` on its own device and dtype (taken from its first
    parameter or buffer), in chunks of ``batch_size``; every submodule's train/eval flag is
    restored afterwards, also after an exception. ``size`` resizes the images (bilinear,
    antialiased) before a judge sees them: an int or (H, W) for all judges, or a dict name ->
    size; None keeps them unchanged.

    Shape: ``images`` ``(B, C, H, W)`` or ``(C, H, W)``; ``targets`` ``(B,)`` class indices (an
    int is used for every image). Returns ``{judge_name: {"top1": float, "top5": float}}`` (one
    key ``f"top{k}"`` per ``k``).
    """
    images = _images(images)
    b = len(images)
    if isinstance(targets, int) and not isinstance(targets, bool):
        targets = torch.full((b,), targets, dtype=torch.long)
    targets = torch.as_tensor(targets)
    if targets.is_floating_point() or targets.dtype == torch.bool:
        raise TypeError(f"targets must be integer class indices, got dtype {targets.dtype}")
    targets = targets.reshape(-1).long()
    if targets.shape != (b,):
        raise ValueError(f"targets must hold one class per image ({b}), got {targets.numel()}")
    if isinstance(judges, nn.Module):
        judges = {"judge": judges}
    if not isinstance(judges, Mapping) or not judges:
        raise TypeError(f"judges must be an nn.Module or a non-empty dict of them, got {judges!r}")
    ks = tuple(topk) if isinstance(topk, Sequence) else (topk,)
    if not ks or not all(isinstance(k, int) and not isinstance(k, bool) and k >= 1 for k in ks):
        raise ValueError(f"topk must be ints >= 1, got {topk!r}")
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")
    sizes = dict(size) if isinstance(size, Mapping) else dict.fromkeys(judges, size)
    unknown = set(sizes) - set(judges)
    if unknown:
        raise ValueError(f"size names judges that are not given: {sorted(unknown)}")

    out: dict[str, dict[str, float]] = {}
    for name, model in judges.items():
        if not isinstance(model, nn.Module):
            raise TypeError(f"judge {name!r} must be an nn.Module, got {type(model).__name__}")
        size = sizes.get(name)
        hw = None if size is None else check_size(f"sizes[{name!r}]", size)
        hits = _judge_hits(name, model, images, targets, ks, batch_size, hw)
        out[name] = {f"top{k}": hits[j].item() / b for j, k in enumerate(ks)}
    return out


# --------------------------------------------------------------------------------------------
# naturalness: the image metrics beside those of natural photographs

#: High-frequency cutoff (x Nyquist) of ``naturalness`` and of the shipped reference.
NATURALNESS_CUTOFF = 0.5
#: The side ``naturalness(..., size=MODEL_SIZE)`` compares at: ImageNet models' input (Lite0's).
MODEL_SIZE = 224
#: How far single photographs lie from the shipped reference at ``MODEL_SIZE``: slope within
#: 0.8, energy and variation ratios within 1/4 to 4x holds each of the five reference photos
#: (the farthest: rocket.jpg, +0.76 and 3.7x) and the four held-out ones (``photos.HELD_OUT``;
#: +0.46, 3.3x); ``Naturalness.within_photos`` tests it.
PHOTO_BAND = (0.8, 4.0)
_PHOTO_STATS = "photo_stats.json"
_STATS_KEYS = ("spectrum_slope", "high_frequency_energy", "total_variation")


@dataclass(frozen=True)
class Naturalness:
    """A batch's spectrum slope, high-frequency energy and total variation beside a reference's.

    Each value is a median over the images (``reference_*``: over the reference photographs'
    crops; a median is half as moved by which photos make the reference as a mean, issue #22). The
    slope is signed (photos about -2.8, white noise 0), so it is compared by difference; energy
    and variation by ratio (1: as much as the photos, 2: twice as much). ``reference`` says
    which photographs, at which size. Ratios below 1 (smoother than photos) are not flagged by
    :meth:`meets`; a too-smooth image shows as a slope far below the reference's.
    """

    spectrum_slope: float
    high_frequency_energy: float
    total_variation: float
    reference_spectrum_slope: float
    reference_high_frequency_energy: float
    reference_total_variation: float
    reference: str

    @property
    def slope_difference(self) -> float:
        """``spectrum_slope - reference_spectrum_slope``: > 0 flatter (clutter), < 0 smoother."""
        return self.spectrum_slope - self.reference_spectrum_slope

    @property
    def high_frequency_ratio(self) -> float:
        """``high_frequency_energy / reference_high_frequency_energy``."""
        return self.high_frequency_energy / self.reference_high_frequency_energy

    @property
    def total_variation_ratio(self) -> float:
        """``total_variation / reference_total_variation``."""
        return self.total_variation / self.reference_total_variation

    def meets(self, max_slope_difference: float = 0.3, max_ratio: float = 2.0) -> bool:
        """``|slope_difference| <= max_slope_difference`` and both ratios ``<= max_ratio``.

        The defaults are issue #13's bar for a natural-looking recipe.
        """
        check_real("max_slope_difference", max_slope_difference, ge=0.0)
        check_real("max_ratio", max_ratio, gt=0.0)
        return (
            abs(self.slope_difference) <= max_slope_difference
            and self.high_frequency_ratio <= max_ratio
            and self.total_variation_ratio <= max_ratio
        )

    def within_photos(self) -> bool:
        """Whether the batch lies where single photographs do (``PHOTO_BAND``): ``|slope
        difference| <= 0.8`` and both ratios in ``[1/4, 4]``; unlike :meth:`meets`, too smooth
        fails too. It is that wide because photographs differ that much (issue #22)."""
        slope, ratio = PHOTO_BAND
        return abs(self.slope_difference) <= slope and all(
            1 / ratio <= r <= ratio for r in (self.high_frequency_ratio, self.total_variation_ratio)
        )

    def to_dict(self) -> dict[str, float | str]:
        """Every field and the three comparisons, as plain Python values (for JSON records)."""
        return {
            "spectrum_slope": self.spectrum_slope,
            "high_frequency_energy": self.high_frequency_energy,
            "total_variation": self.total_variation,
            "reference_spectrum_slope": self.reference_spectrum_slope,
            "reference_high_frequency_energy": self.reference_high_frequency_energy,
            "reference_total_variation": self.reference_total_variation,
            "slope_difference": self.slope_difference,
            "high_frequency_ratio": self.high_frequency_ratio,
            "total_variation_ratio": self.total_variation_ratio,
            "within_photos": self.within_photos(),
            "reference": self.reference,
        }


def _natural_stats(images: Tensor) -> tuple[float, float, float]:
    """Batch medians of spectrum slope, high-frequency energy (cutoff 0.5) and total variation:
    a median, so that one odd image or photo moves the reference less (issue #22)."""
    return (
        float(spectrum_slope(images).double().quantile(0.5)),
        float(high_frequency_energy(images, NATURALNESS_CUTOFF).double().quantile(0.5)),
        float(total_variation(images).double().quantile(0.5)),
    )


@functools.lru_cache(maxsize=1)
def _shipped_stats() -> dict[int, tuple[float, float, float]]:
    """``{side: (slope, energy, variation)}`` of the shipped photographs, from the data file."""
    path = resources.files("midnite") / "data" / _PHOTO_STATS
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(
            f"the naturalness reference {path} is missing from this installation; "
            "write it with `python scripts/make_photo_stats.py`, or pass reference=photos"
        ) from None
    if data.get("cutoff") != NATURALNESS_CUTOFF:
        raise ValueError(
            f"{path} was made with cutoff {data.get('cutoff')!r}, naturalness uses "
            f"{NATURALNESS_CUTOFF}; rewrite it with `python scripts/make_photo_stats.py`"
        )
    return {
        int(side): tuple(float(v[k]) for k in _STATS_KEYS)  # type: ignore[misc]
        for side, v in data["sizes"].items()
    }


def _shipped_reference(h: int, w: int) -> tuple[tuple[float, float, float], str]:
    stats = _shipped_stats()
    side = math.sqrt(h * w)
    if side < min(stats):
        raise ValueError(
            f"the shipped naturalness reference starts at {min(stats)} px; images of "
            f"{h}x{w} px are smaller: pass reference=photos of that size"
        )
    nearest = min(stats, key=lambda s: (abs(s - side), s))
    label = f"shipped photos at {nearest}x{nearest} px"
    if nearest == max(stats) and side > nearest:
        label += f" (the largest shipped; the images are {h}x{w} px)"
    return stats[nearest], label


def at_size(images: Tensor, size: int) -> Tensor:
    """``images`` resized so that ``sqrt(H * W)`` is ``size`` px, keeping the aspect ratio:
    bicubic, antialiased (as a photo shrunk for a model is), clamped to [0, 1]; a batch already
    of that size comes back as it is.

    Shape: ``(B, C, H, W)`` or ``(C, H, W)``; returns ``(B, C, H', W')``.
    """
    check_positive_int("size", size)
    images = _images(images)
    h, w = images.shape[-2:]
    scale = size / math.sqrt(h * w)
    hw = (max(1, round(h * scale)), max(1, round(w * scale)))
    if hw == (h, w):
        return images
    x = images if images.is_floating_point() else images.float()
    return F.interpolate(x, size=hw, mode="bicubic", antialias=True).clamp(0, 1)


def naturalness(
    images: Tensor, reference: Tensor | None = None, *, size: int | None = None
) -> Naturalness:
    """Spectrum slope, high-frequency energy and total variation of ``images`` beside photos'.

    ``size``: compare at this side (``at_size``: ``images`` and a given ``reference`` resized,
    bicubic and antialiased, so that ``sqrt(H * W) == size``). ``size=MODEL_SIZE`` (224) is
    how a model sees a render, and makes renders of any canvas comparable: the number to
    report. ``size=None`` (the default, for callers before it) compares at the images' size.

    All three depend on the image size (a photograph shrunk to fewer pixels has more variation
    per pixel and, below ~128 px, a flatter spectrum), so images are compared with photographs
    of their own size. ``reference=None`` uses the statistics shipped in
    ``midnite/data/photo_stats.json`` (no scikit-image needed): the 25 crops of the five
    photographs of ``photos.REFERENCE_PHOTOS`` as ``photos.reference_crops(side)`` makes them
    (centre and corner squares, ``at_size``) for sides 32 to 288 px, taking the side nearest to
    ``sqrt(H * W)``. Every shipped side shrinks every photo (the smallest is 300 px square; a
    corner crop is never enlarged); larger images are compared with the 288 px statistics, which
    makes their ratios somewhat low (at 512 px photos have ~30% less
    variation than at 288 px): pass ``reference=load_photos(512)`` to compare exactly. The
    reference is square; non-square images get the side of equal area.

    ``reference``: a batch of photographs of the images' own size (any number, any channels).

    Shape: ``images`` ``(B, C, H, W)`` or ``(C, H, W)``, ``min(H, W) >= 4``; computed in float64.
    Returns a :class:`Naturalness` (batch means, ratios, slope difference).
    """
    images = _images(images)
    if size is not None:
        images = at_size(images, size)
        if reference is not None:
            reference = at_size(_images(reference, "reference"), size)
    images = images.double()
    h, w = images.shape[-2:]
    ours = _natural_stats(images)
    if reference is None:
        ref, label = _shipped_reference(h, w)
    else:
        reference = _images(reference, "reference").double()
        if tuple(reference.shape[-2:]) != (h, w):
            raise ValueError(
                f"reference must have the images' size {h}x{w} (the metrics depend on size), "
                f"got {reference.shape[-2]}x{reference.shape[-1]}"
            )
        ref = _natural_stats(reference)
        label = f"given reference: {len(reference)} image(s) at {h}x{w} px"
    if ref[1] <= 0 or ref[2] <= 0:
        raise ValueError(
            f"reference must have high-frequency energy and total variation > 0 (photographs), "
            f"got {ref[1]:.3g} and {ref[2]:.3g}: the ratios would be undefined"
        )
    return Naturalness(*ours, *ref, reference=label)


def summary(images: Tensor, *, per_image: bool = False) -> dict[str, float | list[float]]:
    """The model-free metrics as plain Python numbers, for JSON records.

    Keys: ``spectrum_slope``, ``high_frequency_energy`` (cutoff 0.5), ``total_variation``,
    ``colorfulness`` (only for 3 channels) and ``saturated_fraction``. Values are batch means
    (floats), or lists of one float per image with ``per_image=True``.

    Shape: ``(B, C, H, W)`` or ``(C, H, W)`` with H, W >= 4.
    """
    images = _images(images)
    metrics: dict[str, Tensor] = {
        "spectrum_slope": spectrum_slope(images),
        "high_frequency_energy": high_frequency_energy(images),
        "total_variation": total_variation(images),
    }
    if images.shape[1] == 3:
        metrics["colorfulness"] = colorfulness(images)
    metrics["saturated_fraction"] = saturated_fraction(images)
    if per_image:
        return {k: v.detach().double().cpu().tolist() for k, v in metrics.items()}
    return {k: float(v.detach().double().mean()) for k, v in metrics.items()}
