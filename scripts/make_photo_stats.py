"""Write src/midnite/data/photo_stats.json: the naturalness reference of ``midnite.metrics``.

For each side in ``SIDES`` it loads the licence-checked photographs of ``midnite.photos`` with
``load_photos(side)`` (centre square, antialiased bicubic) and stores their spectrum slope,
high-frequency energy (cutoff ``metrics.NATURALNESS_CUTOFF``) and total variation: the mean
over the photos (what ``metrics.naturalness`` compares with) and each photo's value. Sides stop
at 288 px because the smallest photo is 300 px square: every stored side shrinks every photo, as
an image shrunk for a model would be. Needs scikit-image (``pip install 'midnite[photos]'``).

    python scripts/make_photo_stats.py [--out src/midnite/data/photo_stats.json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from midnite import metrics
from midnite.photos import PHOTOS, load_photos

#: Square sides stored: fine steps where the statistics change fast (small images), and the
#: judges' native sizes (224, 240, 260).
SIDES = (*range(32, 64, 8), *range(64, 289, 16))
SIDES = tuple(sorted({*SIDES, 224, 240, 260}))
DEFAULT_OUT = Path(__file__).resolve().parents[1] / "src" / "midnite" / "data" / "photo_stats.json"
DIGITS = 6


def side_stats(side: int) -> dict:
    photos = load_photos(side).double()
    values = {
        "spectrum_slope": metrics.spectrum_slope(photos),
        "high_frequency_energy": metrics.high_frequency_energy(photos, metrics.NATURALNESS_CUTOFF),
        "total_variation": metrics.total_variation(photos),
    }
    out: dict = {k: round(float(v.mean()), DIGITS) for k, v in values.items()}
    out["per_photo"] = {k: [round(x, DIGITS) for x in v.tolist()] for k, v in values.items()}
    return out


def build() -> dict:
    import skimage

    return {
        "about": (
            "Naturalness reference of midnite.metrics.naturalness: spectrum slope, "
            "high-frequency energy and total variation of natural photographs, mean over the "
            "photos and per photo, for square sides in px"
        ),
        "command": "python scripts/make_photo_stats.py",
        "photos": {name: licence for name, (_, licence) in PHOTOS.items()},
        "source": f"scikit-image {skimage.__version__} sample data, midnite.photos.load_photos",
        "cutoff": metrics.NATURALNESS_CUTOFF,
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
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes, {len(SIDES)} sides)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
