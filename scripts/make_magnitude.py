"""Make the MACO magnitude template shipped in ``src/midnite/data/maco_magnitude.npy``.

    python scripts/make_magnitude.py [--out src/midnite/data/maco_magnitude.npy] [--size 256]

From the licence-checked photographs of ``midnite.photos.photo_paths()`` (scikit-image's sample
data; ``pip install 'midnite[photos]'``): each photo gives square crops at three scales (the
largest square, 0.7 and 0.5 of it) at evenly spread places, and each crop also its mirror image,
so that four photos give enough spectra to average. Every crop is resized to ``--size``
(Pillow's antialiased bicubic, like ``midnite.photos.load_photos``) and
``midnite.param.magnitude_from_images`` averages their magnitudes. Stored as float16 (under
200 KB); the same photos and torch version give the same bytes.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from midnite.engine.param import MAGNITUDE_FILE, magnitude_from_images
from midnite.photos import photo_paths

SCALES = (1.0, 0.7, 0.5)  # crop side / the photo's shorter side
PLACES = 3  # crops per scale along each axis that has room (evenly spread)


def crops(path: Path, size: int) -> list[torch.Tensor]:
    """Square crops of one photo at ``SCALES``, and their mirror images, each (3, size, size)."""
    out = []
    with Image.open(path) as photo:
        photo = photo.convert("RGB")
        w, h = photo.size
        for scale in SCALES:
            s = round(min(w, h) * scale)
            xs = sorted({round(i * (w - s) / max(1, PLACES - 1)) for i in range(PLACES)})
            ys = sorted({round(i * (h - s) / max(1, PLACES - 1)) for i in range(PLACES)})
            for y in ys:
                for x in xs:
                    img = photo.resize(
                        (size, size), Image.Resampling.BICUBIC, box=(x, y, x + s, y + s)
                    )
                    data = torch.frombuffer(bytearray(img.tobytes()), dtype=torch.uint8)
                    t = data.view(size, size, 3).permute(2, 0, 1).float() / 255
                    out += [t, t.flip(-1)]
    return out


def main() -> None:
    default = Path(__file__).resolve().parents[1] / "src" / "midnite" / "data" / MAGNITUDE_FILE
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=default)
    parser.add_argument("--size", type=int, default=256)
    args = parser.parse_args()
    images = [c for path in photo_paths() for c in crops(path, args.size)]
    magnitude = magnitude_from_images(torch.stack(images), size=args.size)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.save(args.out, magnitude.numpy().astype(np.float16), allow_pickle=False)
    names = ", ".join(p.name for p in photo_paths())
    print(
        f"{args.out}: {tuple(magnitude.shape)} float16 from {len(images)} crops of {names}, "
        f"{args.out.stat().st_size} bytes"
    )


if __name__ == "__main__":
    main()
