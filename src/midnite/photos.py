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

import torch
from PIL import Image
from torch import Tensor

__all__ = [
    "INSTALL",
    "PHOTOS",
    "PhotosMissingError",
    "load_photos",
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


class PhotosMissingError(ImportError):
    """scikit-image (which holds the photographs) is not installed, or lacks a file."""


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


def load_photos(size: int = 224) -> Tensor:
    """The photographs as a (N, 3, size, size) batch in [0, 1]: centre square, resized.

    Resizing uses Pillow's antialiased bicubic filter (as a photo shrunk for a model would be).
    """
    if isinstance(size, bool) or not isinstance(size, int) or size < 8:
        raise ValueError(f"size must be an int >= 8, got {size!r}")
    out = []
    for path in photo_paths():
        with Image.open(path) as img:
            img = img.convert("RGB")
            w, h = img.size
            s = min(w, h)
            box = ((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s)
            img = img.resize((size, size), Image.Resampling.BICUBIC, box=box)
            data = torch.frombuffer(bytearray(img.tobytes()), dtype=torch.uint8)
        out.append(data.view(size, size, 3).permute(2, 0, 1).float() / 255)
    return torch.stack(out)


def write_crops(folder: str | os.PathLike, n: int = 256, size: int = 160, seed: int = 0) -> Path:
    """Write ``n`` random square crops of the photographs into ``folder`` as PNGs; returns it.

    A stand-in image set for dataset examples where none can be downloaded: crops of 15% to 60%
    of a photo's shorter side, anywhere in it, mirrored half the time, resized to ``size``
    pixels (``crop_0000.png`` ...). The same ``seed`` gives the same files.
    """
    for name, value, low in (("n", n, 1), ("size", size, 8), ("seed", seed, 0)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    images = []
    for path in photo_paths():
        with Image.open(path) as img:
            images.append(img.convert("RGB"))
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


if __name__ == "__main__":  # python -m midnite.photos DIR [N]: a stand-in image set
    if len(sys.argv) not in (2, 3):
        sys.exit("usage: python -m midnite.photos DIR [N]")
    where = write_crops(sys.argv[1], *(int(a) for a in sys.argv[2:]))
    print(
        f"wrote {len(list(where.glob('crop_*.png')))} crops of {len(PHOTOS)} photographs to {where}"
    )
