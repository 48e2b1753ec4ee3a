"""Write src/midnite/data/photo_stats.json: the naturalness reference of ``midnite.metrics``.

For each side in ``SIDES`` it makes the reference crops with ``photos.reference_crops(side)``
(five crops of each of the five ``photos.REFERENCE_PHOTOS``: centre and corner squares, resized
by ``metrics.at_size``) and stores their spectrum slope, high-frequency energy (cutoff
``metrics.NATURALNESS_CUTOFF``) and total variation: the median over the 25 crops (what
``metrics.naturalness`` compares with) and each photo's mean over its crops. Sides stop at 288 px
because the smallest photo is 300 px square: every stored side shrinks every photo. At
``metrics.MODEL_SIZE`` it also records how robust that median is: its spread over every split of
the photos into two halves (2 and 3 photos), and the held-out photos (``photos.HELD_OUT``, never
part of the reference) measured against it. Needs scikit-image and matplotlib.

    python scripts/make_photo_stats.py [--out src/midnite/data/photo_stats.json]
"""

from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path

import torch

from midnite import metrics
from midnite.photos import REFERENCE_CROPS, REFERENCE_PHOTOS, held_out_photos, reference_crops

#: Square sides stored: fine steps where the statistics change fast (small images), and the
#: judges' native sizes (224, 240, 260).
SIDES = (*range(32, 64, 8), *range(64, 289, 16))
SIDES = tuple(sorted({*SIDES, 224, 240, 260}))
DEFAULT_OUT = Path(__file__).resolve().parents[1] / "src" / "midnite" / "data" / "photo_stats.json"
DIGITS = 6
KEYS = ("spectrum_slope", "high_frequency_energy", "total_variation")


def _values(images: torch.Tensor) -> dict[str, torch.Tensor]:
    images = images.double()
    return {
        "spectrum_slope": metrics.spectrum_slope(images),
        "high_frequency_energy": metrics.high_frequency_energy(images, metrics.NATURALNESS_CUTOFF),
        "total_variation": metrics.total_variation(images),
    }


def side_stats(side: int) -> dict:
    values = _values(reference_crops(side))
    out: dict = {k: round(float(v.quantile(0.5)), DIGITS) for k, v in values.items()}
    per_photo = {k: v.reshape(-1, REFERENCE_CROPS).mean(1) for k, v in values.items()}
    out["per_photo"] = {k: [round(x, DIGITS) for x in v.tolist()] for k, v in per_photo.items()}
    return out


def _compare(nat: metrics.Naturalness) -> dict[str, float]:
    return {
        "slope_difference": round(nat.slope_difference, 4),
        "high_frequency_ratio": round(nat.high_frequency_ratio, 4),
        "total_variation_ratio": round(nat.total_variation_ratio, 4),
    }


def robustness(side: int) -> dict:
    """Half-split spread of the reference and held-out photos against it, at ``side`` px."""
    crops = reference_crops(side).reshape(len(REFERENCE_PHOTOS), REFERENCE_CROPS, 3, side, side)
    n = len(REFERENCE_PHOTOS)
    splits = []
    for half in itertools.combinations(range(n), n // 2):
        rest = [i for i in range(n) if i not in half]
        a, b = crops[list(half)].flatten(0, 1), crops[rest].flatten(0, 1)
        splits.append(_compare(metrics.naturalness(a, reference=b)))
    spread = {k: [min(s[k] for s in splits), max(s[k] for s in splits)] for k in splits[0]}
    names, held = held_out_photos(side)
    full = crops.flatten(0, 1)
    return {
        "side": side,
        "half_splits": {"count": len(splits), "range": spread},
        "held_out": {
            name: _compare(metrics.naturalness(held[i : i + 1], reference=full))
            for i, name in enumerate(names)
        },
    }


def build() -> dict:
    import matplotlib
    import skimage

    return {
        "about": (
            "Naturalness reference of midnite.metrics.naturalness: spectrum slope, "
            "high-frequency energy and total variation of natural photographs, median over the "
            f"{REFERENCE_CROPS} crops of each photo (photos.reference_crops) and per photo "
            "(mean), for square sides in px; robustness: the median's spread over half-splits "
            "of the photos and held-out photos against it"
        ),
        "command": "python scripts/make_photo_stats.py",
        "photos": {name: licence for name, (_, licence) in REFERENCE_PHOTOS.items()},
        "images": len(REFERENCE_PHOTOS) * REFERENCE_CROPS,
        "source": (
            f"scikit-image {skimage.__version__} and matplotlib {matplotlib.__version__} sample "
            "data, midnite.photos.reference_crops"
        ),
        "cutoff": metrics.NATURALNESS_CUTOFF,
        "robustness": robustness(metrics.MODEL_SIZE),
        "sizes": {str(side): side_stats(side) for side in SIDES},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    data = build()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    print(json.dumps(data["robustness"], indent=1))
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes, {len(SIDES)} sides)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
