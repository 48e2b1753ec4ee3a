"""Natural photographs that ship inside an installed package: scikit-image's sample data.

The only photographs midnite uses (nothing is downloaded): for the shipped Fourier magnitude,
the naturalness reference, the demo's dataset examples and tests. Each is listed with the
licence scikit-image states for it; all are public domain or CC0. Needs ``scikit-image``
(``pip install 'midnite[photos]'``); without it :func:`photo_paths` raises one line saying so.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from midnite.engine.checks import as_images
from midnite.errors import EXIT_USAGE, MidniteError, UsageError
from midnite.images import decode, read_file

__all__ = [
    "INSTALL",
    "PHOTOS",
    "PhotosMissingError",
    "load_photos",
    "main",
    "photo_paths",
    "write_crops",
]

INSTALL = "pip install 'midnite[photos]'"

# file in skimage/data -> (what it shows, licence as scikit-image's docstrings state it).
# Colour photographs of everyday scenes only: no textures, microscopy, space or drawings.
PHOTOS: dict[str, tuple[str, str]] = {
    "astronaut.png": ("Eileen Collins, NASA portrait", "public domain (NASA)"),
    "chelsea.png": ("a cat (Chelsea)", "CC0, Stefan van der Walt"),
    "coffee.png": ("a cup of coffee", "CC0, Rachel Michetti"),
    "rocket.jpg": ("DSCOVR launch on Falcon 9", "public domain (SpaceX)"),
}


class PhotosMissingError(MidniteError, ImportError):
    """scikit-image (which holds the photographs) is not installed, or lacks a file."""

    exit_code = EXIT_USAGE


def _data_folder() -> Path:
    try:
        import skimage
    except ImportError:
        raise PhotosMissingError(
            f"the sample photographs come with scikit-image, which is not installed: {INSTALL}"
        ) from None
    return Path(skimage.__file__).parent / "data"


def photo_paths() -> list[Path]:
    """Paths of the :data:`PHOTOS`, in that order."""
    folder = _data_folder()
    paths = [folder / name for name in PHOTOS]
    missing = [p.name for p in paths if not p.is_file()]
    if missing:
        raise PhotosMissingError(f"scikit-image at {folder} lacks {', '.join(missing)}")
    return paths


def _photo(path: Path) -> Image.Image:
    """A photograph as an RGB PIL image, read and decoded by ``midnite.images``."""
    return decode(read_file(path), str(path)).convert("RGB")


def load_photos(size: int = 224) -> Tensor:
    """The photographs as a (N, 3, size, size) batch in [0, 1]: centre square, resized.

    Read by ``midnite.images``; resizing uses Pillow's antialiased bicubic filter (as a photo
    shrunk for a model would be; the shipped naturalness reference is made this way).
    """
    if isinstance(size, bool) or not isinstance(size, int) or size < 8:
        raise UsageError(f"size must be an int >= 8, got {size!r}")
    out = []
    for path in photo_paths():
        img = _photo(path)
        w, h = img.size
        s = min(w, h)
        box = ((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s)
        out.append(
            as_images(
                path.name, np.array(img.resize((size, size), Image.Resampling.BICUBIC, box=box))
            )
        )
    return torch.cat(out)


def write_crops(folder: str | os.PathLike, n: int = 256, size: int = 160, seed: int = 0) -> Path:
    """Write ``n`` random square crops of the photographs into ``folder`` as PNGs; returns it.

    A stand-in image set for dataset examples where none can be downloaded: crops of 15% to 60%
    of a photo's shorter side, anywhere in it, mirrored half the time, resized to ``size``
    pixels (``crop_0000.png`` ...). The same ``seed`` gives the same files.
    """
    for name, value, low in (("n", n, 1), ("size", size, 8), ("seed", seed, 0)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise UsageError(f"{name} must be an int >= {low}, got {value!r}")
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    images = [_photo(path) for path in photo_paths()]
    g = torch.Generator().manual_seed(seed)
    for i in range(n):
        img = images[int(torch.randint(len(images), (1,), generator=g))]
        w, h = img.size
        side = int(min(w, h) * (0.15 + 0.45 * float(torch.rand(1, generator=g))))
        x = int(torch.randint(w - side + 1, (1,), generator=g))
        y = int(torch.randint(h - side + 1, (1,), generator=g))
        crop = img.resize((size, size), Image.Resampling.BICUBIC, box=(x, y, x + side, y + side))
        if float(torch.rand(1, generator=g)) < 0.5:
            crop = crop.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        crop.save(out / f"crop_{i:04d}.png")
    return out


def main(argv: list[str]) -> int:
    """``python -m midnite.photos DIR [N]``: write a stand-in image set; the exit status."""
    if len(argv) not in (1, 2) or not all(a.isdigit() for a in argv[1:]):
        print("usage: python -m midnite.photos DIR [N]", file=sys.stderr)
        return 2
    where = write_crops(argv[0], *(int(a) for a in argv[1:]))
    print(
        f"wrote {len(list(where.glob('crop_*.png')))} crops of {len(PHOTOS)} photographs to {where}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
