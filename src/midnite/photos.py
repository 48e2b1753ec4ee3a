"""Natural photographs that ship inside an installed package: scikit-image's sample data.

The only photographs midnite uses (nothing is downloaded): for the shipped Fourier magnitude,
the naturalness reference, the demo's dataset examples and tests. Each is listed with the
licence scikit-image states for it; all are public domain or CC0. Needs ``scikit-image``
(``pip install 'midnite[photos]'``); without it :func:`photo_paths` raises one line saying so.
"""

from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image
from torch import Tensor

__all__ = ["INSTALL", "PHOTOS", "PhotosMissingError", "load_photos", "photo_paths"]

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
