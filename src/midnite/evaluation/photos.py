"""Natural photographs that ship inside installed packages: scikit-image's and matplotlib's.

The only photographs midnite uses (nothing is downloaded): :data:`PHOTOS` for the shipped
Fourier magnitude, the demo's dataset examples and tests; :data:`REFERENCE_PHOTOS` (those and
one more) for the naturalness reference, in :data:`REFERENCE_CROPS` crops each
(:func:`reference_crops`); :data:`HELD_OUT` photos only check that reference, nothing of them
ships. Each is listed with its licence; all that feed shipped data are public domain or CC0.
Needs ``scikit-image`` (``pip install 'midnite[photos]'``); without it :func:`photo_paths`
raises one line saying so.
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
    "HELD_OUT",
    "INSTALL",
    "PHOTOS",
    "REFERENCE_CROPS",
    "REFERENCE_PHOTOS",
    "PhotosMissingError",
    "held_out_photos",
    "load_photos",
    "main",
    "photo_paths",
    "reference_crops",
    "reference_paths",
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

# The naturalness reference: PHOTOS and matplotlib's sample photograph (its licence is not
# stated by matplotlib; the photograph is the US Navy's, NHHC NH 96566-KN).
REFERENCE_PHOTOS: dict[str, tuple[str, str]] = {
    **PHOTOS,
    "grace_hopper.jpg": ("Grace Hopper, US Navy portrait", "public domain (US Navy)"),
}

# Photos that only check the reference (never shipped, never tuned on); absent ones are skipped.
# The Middlebury pair's licence is not stated by scikit-image; scikit-learn's are CC BY 2.0.
HELD_OUT: dict[str, tuple[str, str]] = {
    "motorcycle_left.png": ("a motorcycle in a workshop (Middlebury 2014)", "not stated"),
    "motorcycle_right.png": ("the same, right camera (Middlebury 2014)", "not stated"),
    "china.jpg": ("a Chinese temple (scikit-learn)", "CC BY 2.0, danielbuechele"),
    "flower.jpg": ("a flower (scikit-learn)", "CC BY 2.0, vultilion"),
}

#: Crops per reference photo: its centre square and four corner squares of 0.75 of its side.
REFERENCE_CROPS = 5


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


def _package_file(name: str) -> Path | None:
    """Where an installed package holds the photo ``name``, or None."""
    if name in PHOTOS or name.startswith("motorcycle"):
        return _data_folder() / name
    try:
        if name == "grace_hopper.jpg":
            import matplotlib

            return Path(matplotlib.get_data_path()) / "sample_data" / name
        import sklearn

        return Path(sklearn.__file__).parent / "datasets" / "images" / name
    except ImportError:
        return None


def reference_paths() -> list[Path]:
    """Paths of the :data:`REFERENCE_PHOTOS`, in that order (all must be installed)."""
    paths = [_package_file(name) for name in REFERENCE_PHOTOS]
    missing = [n for n, p in zip(REFERENCE_PHOTOS, paths, strict=True) if not p or not p.is_file()]
    if missing:
        raise PhotosMissingError(
            f"the naturalness reference needs {', '.join(missing)} (scikit-image and "
            f"matplotlib's sample data): {INSTALL}"
        )
    return [p for p in paths if p is not None]


def _squares(path: Path, side: int, corners: bool) -> Tensor:
    """The photo's centre square and, with ``corners``, four corner squares of 0.75 of its
    shorter side (at least ``side``: a crop is never enlarged), each resized to ``side`` by
    ``metrics.at_size`` (bicubic, antialiased): ``(1 or 5, 3, side, side)``."""
    from midnite.evaluation.metrics import at_size

    img = as_images(path.name, np.array(_photo(path)))
    h, w = img.shape[-2:]
    s = min(h, w)
    boxes = [((h - s) // 2, (w - s) // 2, s)]
    if corners:
        c = max(min(s, side), round(0.75 * s))
        boxes += [(y, x, c) for y in (0, h - c) for x in (0, w - c)]
    return torch.cat([at_size(img[..., y : y + c, x : x + c], side) for y, x, c in boxes])


def reference_crops(side: int = 224) -> Tensor:
    """The naturalness reference images: ``(len(REFERENCE_PHOTOS) * REFERENCE_CROPS, 3, side,
    side)`` in [0, 1], photo by photo (each photo's centre square, then its four corners)."""
    if isinstance(side, bool) or not isinstance(side, int) or side < 8:
        raise UsageError(f"side must be an int >= 8, got {side!r}")
    return torch.cat([_squares(p, side, True) for p in reference_paths()])


def held_out_photos(side: int = 224) -> tuple[list[str], Tensor]:
    """The installed :data:`HELD_OUT` photos' names and centre squares at ``side`` px."""
    if isinstance(side, bool) or not isinstance(side, int) or side < 8:
        raise UsageError(f"side must be an int >= 8, got {side!r}")
    found = [(n, p) for n in HELD_OUT if (p := _package_file(n)) is not None and p.is_file()]
    if not found:
        raise PhotosMissingError(f"none of the held-out photos is installed: {INSTALL}")
    return [n for n, _ in found], torch.cat([_squares(p, side, False) for _, p in found])


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
