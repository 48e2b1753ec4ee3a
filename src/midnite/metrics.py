"""Quality metrics for feature visualizations: torch-native, batched, on any device and dtype.

Images are ``(B, C, H, W)`` in [0, 1] (a single ``(C, H, W)`` image is taken as ``B = 1``).
Metrics that need a model take callables (``score_fn(images) -> (B,)``), not engine objects.
``naturalness`` compares a batch with natural photographs; its default reference is a small data
file (``midnite/data/photo_stats.json``), so it needs no scikit-image.
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

__all__ = [
    "Naturalness",
    "activation_gain",
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


# --------------------------------------------------------------------------------------------
# helpers


def _images(x: object, name: str = "images") -> Tensor:
    """``x`` as a floating (B, C, H, W) tensor; float16/bfloat16 are computed in float32."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() == 3:
        x = x.unsqueeze(0)
    if x.dim() != 4:
        raise ValueError(f"{name} must be (B, C, H, W) or (C, H, W), got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor in [0, 1], got {x.dtype}")
    if x.shape[0] == 0 or x.numel() == 0:
        raise ValueError(f"{name} must hold at least one image, got shape {tuple(x.shape)}")
    if x.dtype not in (torch.float32, torch.float64):
        x = x.float()
    bad = int((~torch.isfinite(x)).sum())
    if bad:
        raise ValueError(
            f"{name} must be finite, got {bad} NaN or infinite values of {x.numel()} "
            "(a metric of such images would mean nothing)"
        )
    return x


def _features(x: object, name: str = "features", min_dim: int = 2) -> Tensor:
    """``x`` as a floating (B, ...) tensor with B >= 2, flattened to (B, -1) rows per image."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() < min_dim:
        raise ValueError(
            f"{name} must have at least {min_dim} dims (B, ...), got shape {tuple(x.shape)}"
        )
    if x.shape[0] < 2:
        raise ValueError(f"{name} needs B >= 2 images to compare, got B = {x.shape[0]}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got {x.dtype}")
    if x.dtype not in (torch.float32, torch.float64):
        x = x.float()
    return x


def _mean_pairwise_cosine(rows: Tensor) -> Tensor:
    """Mean cosine similarity over the B(B-1)/2 pairs of rows of a (B, D) tensor."""
    unit = F.normalize(rows, dim=1)
    sim = unit @ unit.T
    i, j = torch.triu_indices(len(rows), len(rows), offset=1, device=rows.device)
    return sim[i, j].mean()


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


def _window(n: int, device: torch.device, dtype: torch.dtype) -> Tensor:
    """Symmetric Hann window without its zero end points (so every pixel counts)."""
    return torch.hann_window(n + 2, periodic=False, dtype=dtype, device=device)[1:-1]


def power_spectrum(images: Tensor) -> Tensor:
    """Channel-mean |FFT|² of the mean-removed, Hann-windowed images: (B, C, H, W) -> (B, H, W).

    Windowing keeps the wrap-around edge of a non-periodic image from adding spurious power.
    """
    h, w = images.shape[-2:]
    x = images - images.mean(dim=(-2, -1), keepdim=True)
    flat = images.amax(dim=(-2, -1), keepdim=True) == images.amin(dim=(-2, -1), keepdim=True)
    x = x.masked_fill(flat, 0.0)  # exactly constant: no rounding residue in the spectrum
    x = x * (_window(h, x.device, x.dtype)[:, None] * _window(w, x.device, x.dtype)[None, :])
    return torch.fft.fft2(x).abs().square().mean(dim=1)


def _radius(h: int, w: int, device: torch.device, dtype: torch.dtype) -> Tensor:
    """Radial frequency of each FFT bin as a fraction of Nyquist (0.5 cycles/px), (H, W)."""
    fy = torch.fft.fftfreq(h, device=device, dtype=dtype) / 0.5
    fx = torch.fft.fftfreq(w, device=device, dtype=dtype) / 0.5
    return torch.sqrt(fy[:, None] ** 2 + fx[None, :] ** 2)


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
        device, dtype = _module_device_dtype(model)
        modes = [(m, m.training) for m in model.modules()]
        hits = torch.zeros(len(ks), dtype=torch.long)
        try:
            model.eval()
            with torch.no_grad():
                for lo in range(0, b, batch_size):
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
                            f"topk {max(ks)} exceeds the {logits.shape[1]} classes "
                            f"of judge {name!r}"
                        )
                    t = targets[lo : lo + batch_size].to(logits.device)
                    if bool((t < 0).any() | (t >= logits.shape[1]).any()):
                        raise IndexError(
                            f"targets must be in [0, {logits.shape[1]}) for judge {name!r}, "
                            f"got {t.tolist()}"
                        )
                    top = logits.topk(max(ks), dim=1).indices  # (b, kmax), best first
                    match = top == t[:, None]
                    for j, k in enumerate(ks):
                        hits[j] += int(match[:, :k].any(dim=1).sum())
        finally:
            for m, training in modes:
                m.training = training
        out[name] = {f"top{k}": hits[j].item() / b for j, k in enumerate(ks)}
    return out


# --------------------------------------------------------------------------------------------
# model-free image metrics


def spectrum_slope(images: Tensor) -> Tensor:
    """Slope of the radially averaged power spectrum on log-log axes, per image.

    ``P(f)`` is the channel-mean power ``|FFT|²`` of the mean-removed, Hann-windowed image,
    averaged over annuli of integer radius ``r = 1 .. min(H, W) // 2`` in units of
    ``1 / min(H, W)`` cycles/px (DC and the corners beyond Nyquist excluded); the slope is the
    least-squares fit of ``log P`` against ``log r``. Natural photos are near -2 (amplitude ∝ 1/f),
    white noise near 0; a steeper (more negative) slope means a smoother image, a flatter one
    high-frequency clutter. A constant image gives 0. The fit weighs every annulus the same, so
    high frequencies (more annuli) dominate it.

    Shape: ``(B, C, H, W)`` or ``(C, H, W)`` with ``min(H, W) >= 4``; returns ``(B,)``.
    """
    images = _images(images)
    h, w = images.shape[-2:]
    n_bins = min(h, w) // 2
    if n_bins < 2:
        raise ValueError(f"spectrum_slope needs height and width >= 4, got {(h, w)}")
    power = power_spectrum(images).flatten(1)  # (B, H*W)
    r = _radius(h, w, images.device, images.dtype) * (min(h, w) / 2)  # in 1/min(H, W) units
    idx = torch.round(r).long().flatten()
    keep = (idx >= 1) & (idx <= n_bins)
    idx, power = idx[keep] - 1, power[:, keep]
    sums = power.new_zeros(len(power), n_bins).index_add_(1, idx, power)
    counts = torch.bincount(idx, minlength=n_bins).to(power.dtype)
    radial = sums / counts
    logp = torch.log(radial.clamp_min(torch.finfo(radial.dtype).tiny))
    logr = torch.log(torch.arange(1, n_bins + 1, device=power.device, dtype=power.dtype))
    xc = logr - logr.mean()
    yc = logp - logp.mean(dim=1, keepdim=True)
    return (yc * xc).sum(dim=1) / xc.square().sum()


def high_frequency_energy(images: Tensor, cutoff: float = 0.5) -> Tensor:
    """Share of spectral energy above ``cutoff`` times the Nyquist frequency, per image.

    ``E = Σ_{ρ(f) > cutoff} P(f) / Σ_{f ≠ 0} P(f)`` with ``P`` as in ``spectrum_slope`` and
    ``ρ(f) = sqrt(fx² + fy²) / 0.5`` the radial frequency in units of Nyquist (the corners of the
    spectrum reach ρ = √2). White noise gives the share of frequency bins above the cutoff (about
    ``1 - π cutoff² / 4`` for ``cutoff <= 1``); a smooth image about 0. A constant image gives 0.

    Shape: ``(B, C, H, W)`` or ``(C, H, W)``; returns ``(B,)``.
    """
    images = _images(images)
    if not (isinstance(cutoff, (int, float)) and 0 <= cutoff < math.sqrt(2)):
        raise ValueError(f"cutoff must be a number in [0, sqrt(2)) (x Nyquist), got {cutoff!r}")
    h, w = images.shape[-2:]
    power = power_spectrum(images)
    power[:, 0, 0] = 0  # DC (already ~0 after mean removal)
    rho = _radius(h, w, images.device, images.dtype)
    total = power.sum(dim=(1, 2))
    high = (power * (rho > cutoff)).sum(dim=(1, 2))
    return torch.where(total > 0, high / total.clamp_min(torch.finfo(total.dtype).tiny), 0.0)


def total_variation(images: Tensor) -> Tensor:
    """Anisotropic L1 total variation per pixel: mean |horizontal step| + mean |vertical step|.

    ``TV = mean_{c,y,x} |I[c,y,x+1] - I[c,y,x]| + mean_{c,y,x} |I[c,y+1,x] - I[c,y,x]|``, each
    mean over its ``C·H·(W-1)`` or ``C·(H-1)·W`` neighbour pairs. 0 for a constant image; 1 for
    0/1 stripes one pixel wide; 2 for a one-pixel 0/1 checkerboard.

    Shape: ``(B, C, H, W)`` or ``(C, H, W)`` with H, W >= 2; returns ``(B,)``.
    """
    images = _images(images)
    h, w = images.shape[-2:]
    if h < 2 or w < 2:
        raise ValueError(f"total_variation needs height and width >= 2, got {(h, w)}")
    dx = (images[..., :, 1:] - images[..., :, :-1]).abs().mean(dim=(1, 2, 3))
    dy = (images[..., 1:, :] - images[..., :-1, :]).abs().mean(dim=(1, 2, 3))
    return dx + dy


def colorfulness(images: Tensor) -> Tensor:
    """Hasler & Süsstrunk (2003) colourfulness per image, on the 0-255 scale of the paper.

    With ``R, G, B`` scaled to 0-255, ``rg = R - G``, ``yb = (R + G)/2 - B``:
    ``M = sqrt(std(rg)² + std(yb)²) + 0.3 sqrt(mean(rg)² + mean(yb)²)`` (population std over
    pixels). The paper's scale then applies: ~15 slightly, ~33 moderately, ~45 averagely, ~59
    quite, ~82 highly, ~109 extremely colourful. 0 for any gray image; 85.5 for pure red.

    Shape: ``(B, 3, H, W)`` or ``(3, H, W)`` RGB; returns ``(B,)``.
    """
    images = _images(images)
    if images.shape[1] != 3:
        raise ValueError(f"colorfulness needs 3 (RGB) channels, got {images.shape[1]}")
    r, g, b = (255.0 * images).unbind(dim=1)
    rg = (r - g).flatten(1)
    yb = (0.5 * (r + g) - b).flatten(1)
    std = torch.sqrt(rg.var(dim=1, unbiased=False) + yb.var(dim=1, unbiased=False))
    mean = torch.sqrt(rg.mean(dim=1).square() + yb.mean(dim=1).square())
    return std + 0.3 * mean


def saturated_fraction(images: Tensor, eps: float = 1 / 255) -> Tensor:
    """Share of values (all channels and pixels) within ``eps`` of 0 or 1, per image.

    ``S = mean [x <= eps or x >= 1 - eps]``. High values mean clipped, blown-out images (often the
    sign of a too-large step size with clamping).

    Shape: ``(B, C, H, W)`` or ``(C, H, W)``; returns ``(B,)``.
    """
    images = _images(images)
    if not (isinstance(eps, (int, float)) and 0 <= eps < 0.5):
        raise ValueError(f"eps must be a number in [0, 0.5), got {eps!r}")
    sat = (images <= eps) | (images >= 1 - eps)
    return sat.flatten(1).to(images.dtype).mean(dim=1)


# --------------------------------------------------------------------------------------------
# naturalness: the image metrics beside those of natural photographs

#: High-frequency cutoff (x Nyquist) of ``naturalness`` and of the shipped reference.
NATURALNESS_CUTOFF = 0.5
_PHOTO_STATS = "photo_stats.json"
_STATS_KEYS = ("spectrum_slope", "high_frequency_energy", "total_variation")


@dataclass(frozen=True)
class Naturalness:
    """A batch's spectrum slope, high-frequency energy and total variation beside a reference's.

    Each value is a mean over the images (``reference_*``: over the reference photographs). The
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
            "reference": self.reference,
        }


def _natural_stats(images: Tensor) -> tuple[float, float, float]:
    """Batch means of spectrum slope, high-frequency energy (cutoff 0.5) and total variation."""
    return (
        float(spectrum_slope(images).mean()),
        float(high_frequency_energy(images, NATURALNESS_CUTOFF).mean()),
        float(total_variation(images).mean()),
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


def naturalness(images: Tensor, reference: Tensor | None = None) -> Naturalness:
    """Spectrum slope, high-frequency energy and total variation of ``images`` beside photos'.

    All three depend on the image size (a photograph shrunk to fewer pixels has more variation
    per pixel and, below ~128 px, a flatter spectrum), so images are compared with photographs
    of their own size. ``reference=None`` uses the statistics shipped in
    ``midnite/data/photo_stats.json`` (no scikit-image needed): the four photographs of
    ``midnite.photos`` as ``load_photos(side)`` makes them (centre square, antialiased bicubic)
    for sides 32 to 288 px, taking the side nearest to ``sqrt(H * W)``. Every shipped side
    shrinks every photo (the smallest is 300 px square); larger images are compared with the
    288 px statistics, which makes their ratios somewhat low (at 512 px photos have ~30% less
    variation than at 288 px): pass ``reference=load_photos(512)`` to compare exactly. The
    reference is square; non-square images get the side of equal area.

    ``reference``: a batch of photographs of the images' own size (any number, any channels).

    Shape: ``images`` ``(B, C, H, W)`` or ``(C, H, W)``, ``min(H, W) >= 4``; computed in float64.
    Returns a :class:`Naturalness` (batch means, ratios, slope difference).
    """
    images = _images(images).double()
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


# --------------------------------------------------------------------------------------------
# feature-based metrics


def gram_diversity(features: Tensor) -> Tensor:
    """1 - mean pairwise cosine similarity of the images' Gram matrices (style diversity).

    ``G_i = F_i F_iᵀ`` with ``F_i`` the ``(C, H·W)`` activations of image ``i``; the result is
    ``1 - mean_{i<j} cos(vec G_i, vec G_j)``. Gram matrices ignore where things are, so this
    measures diversity of "what" (textures, parts), not of layout. 0 for identical images; with
    non-negative (post-ReLU) features it lies in [0, 1]. An all-zero image counts as
    dissimilar to everything (cosine 0).

    Shape: ``(B, C, H, W)`` (or ``(B, C, N)``) with B >= 2; returns a 0-dim tensor.
    """
    features = _features(features, min_dim=3)
    f = features.flatten(2)  # (B, C, N)
    gram = f @ f.transpose(1, 2) / f.shape[-1]
    return 1.0 - _mean_pairwise_cosine(gram.flatten(1))


def seed_stability(features: Tensor) -> Tensor:
    """Mean pairwise cosine similarity of flattened activations of results from different seeds.

    ``stability = mean_{i<j} cos(vec F_i, vec F_j)``: 1 when every seed gives the same
    activations, ~0 for unrelated ones (negative only for signed features). Unlike
    ``gram_diversity`` it is position-sensitive.

    Shape: ``(B, ...)`` with B >= 2 (e.g. ``(B, C, H, W)`` activations or the images themselves);
    returns a 0-dim tensor.
    """
    features = _features(features, min_dim=2)
    return _mean_pairwise_cosine(features.flatten(1))


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
