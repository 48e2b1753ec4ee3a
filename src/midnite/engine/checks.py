"""Argument checks for every layer of midnite, in one place.

Each check returns the value in its canonical form or raises ``TypeError`` (wrong kind) or
``ValueError`` (right kind, wrong value; ``IndexError`` for an index out of range), with a
message that names the argument, what was expected and what was given.
"""

from __future__ import annotations

import math
import numbers
import operator
from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = [
    "as_images",
    "check_bool",
    "check_choice",
    "check_generator",
    "check_image",
    "check_int",
    "check_positive_int",
    "check_real",
    "check_size",
    "check_weights",
    "resolve_index",
    "unit_float",
]


def _given(value: object) -> str:
    return f"{type(value).__name__} {value!r}"


def check_int(name: str, value: object, minimum: int | None = None) -> int:
    """``value`` as an int (not a bool), at least ``minimum`` when given."""
    bound = "" if minimum is None else f" >= {minimum}"
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int{bound}, got {_given(value)}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be an int{bound}, got {value}")
    return int(value)


def check_positive_int(name: str, value: object) -> int:
    """``value`` as an int >= 1."""
    return check_int(name, value, 1)


def check_real(
    name: str,
    value: object,
    *,
    gt: float | None = None,
    ge: float | None = None,
    lt: float | None = None,
    le: float | None = None,
) -> float:
    """``value`` as a finite float within the given bounds (``gt``: >, ``ge``: >=, ...)."""
    bounds = [
        f"{op} {b:g}" for op, b in ((">", gt), (">=", ge), ("<", lt), ("<=", le)) if b is not None
    ]
    want = "a finite number" + (f" {' and '.join(bounds)}" if bounds else "")
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be {want}, got {_given(value)}")
    v = float(value)
    ok = (
        math.isfinite(v)
        and (gt is None or v > gt)
        and (ge is None or v >= ge)
        and (lt is None or v < lt)
        and (le is None or v <= le)
    )
    if not ok:
        raise ValueError(f"{name} must be {want}, got {value!r}")
    return v


def check_bool(name: str, value: object) -> bool:
    """``value`` if it is a bool (an int such as 1 is refused: it is usually a mistake)."""
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {_given(value)}")
    return value


def check_choice(name: str, value: object, choices: Sequence[str]) -> str:
    """``value`` if it is one of ``choices``."""
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name} must be one of {tuple(choices)}, got {value!r}")
    return value


def check_generator(generator: object) -> torch.Generator | None:
    """A ``torch.Generator`` or None.

    Throughout midnite, ``generator=None`` means torch's default generator for the device the
    numbers are drawn on, as in torch itself (``torch.manual_seed`` makes it repeatable).
    """
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator or None, got {_given(generator)}")
    return generator


def check_image(name: str, x: object, *, batch: bool = True) -> Tensor:
    """A floating-point image tensor: ``(B, C, H, W)``, or ``(C, H, W)`` with ``batch=False``."""
    form = "(B, C, H, W)" if batch else "(C, H, W)"
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor {form}, got {type(x).__name__}")
    if x.dim() != (4 if batch else 3):
        raise ValueError(f"{name} must have shape {form}, got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {x.dtype}")
    return x


def unit_float(name: str, x: Tensor) -> Tensor:
    """An image tensor as float32 values meant for [0, 1]: uint8 is divided by 255, a float
    tensor converted, anything else refused (the range itself is the caller's to check)."""
    if x.dtype == torch.uint8:
        return x.float() / 255
    if x.is_floating_point():
        return x.float()
    raise TypeError(
        f"{name} must be a floating-point tensor in [0, 1] or uint8, got dtype {x.dtype}"
    )


_IMAGE_CHANNELS = (1, 3, 4)  # grey, RGB, RGBA: what an image given to midnite may hold


def _image_tensor(name: str, x: object) -> tuple[Tensor, bool]:
    """``x`` as a tensor, and whether its channels come last (arrays and PIL images: HWC)."""
    if isinstance(x, Tensor):
        return x.detach(), False
    if hasattr(x, "__array_interface__") or hasattr(x, "__array__"):  # numpy, PIL images
        import numpy as np  # numpy comes with torch; imported here, off the engine's hot path

        try:
            arr = np.asarray(x)
        except Exception as err:  # a PIL image that cannot be decoded, an odd array-like
            raise TypeError(
                f"{name}: could not read {type(x).__name__} as an image ({err})"
            ) from None
        if arr.dtype == np.bool_:
            arr = arr.astype(np.uint8) * 255
        if arr.dtype.kind not in "uif" or arr.dtype == np.float16:
            arr = arr.astype(np.float32)
        arr = np.ascontiguousarray(arr)
        if not arr.flags.writeable:  # a PIL image's buffer: torch warns on read-only memory
            arr = arr.copy()
        return torch.from_numpy(arr), True
    raise TypeError(
        f"{name} must be an image: a torch.Tensor, a numpy array or a PIL image (a file: "
        f"midnite.images.load(path)), got {type(x).__name__}"
    )


def as_images(
    name: str,
    x: object,
    *,
    size: tuple[int, int] | None = None,
    channels: int | None = None,
) -> Tensor:
    """Any in-memory image as a float32 CPU batch ``(B, C, H, W)`` with values in [0, 1].

    ``x``: a tensor ``(B, C, H, W)``, ``(C, H, W)``, ``(H, W, C)`` or ``(H, W)``; a numpy array
    or a PIL image (``(H, W, C)`` or ``(H, W)``; ``(C, H, W)`` when only the first axis can be
    channels). uint8 is divided by 255; floats must already be in [0, 1]. ``channels`` adapts
    the colour: grey is repeated, RGBA loses its alpha, RGB becomes grey by luminance (ITU-R
    601). ``size``: ``(H, W)`` to resize to (bilinear, antialiased), else the size as given.

    Shape:
        (B, C, H, W) float32, values in [0, 1].

    Example:
        >>> as_images("init", torch.zeros(32, 48, 3, dtype=torch.uint8), size=(16, 16)).shape
        torch.Size([1, 3, 16, 16])
    """
    t, last = _image_tensor(name, x)
    shape = tuple(t.shape)
    if t.dim() == 2:
        t = t[None, None]
    elif t.dim() == 3:
        channels_last = t.shape[-1] in _IMAGE_CHANNELS and (
            last or t.shape[0] not in _IMAGE_CHANNELS
        )
        t = (t.permute(2, 0, 1) if channels_last else t)[None]
    elif t.dim() != 4:
        raise ValueError(
            f"{name} must be an image (H, W), (H, W, C), (C, H, W) or a batch (B, C, H, W), "
            f"got shape {shape}"
        )
    if t.shape[1] not in _IMAGE_CHANNELS or min(t.shape[-2:]) < 1 or t.shape[0] < 1:
        raise ValueError(
            f"{name} must have 1 (grey), 3 (RGB) or 4 (RGBA) channels and a size of at least "
            f"1x1, got shape {shape}"
        )
    if t.dtype == torch.uint8:
        t = t.float() / 255
    elif t.is_floating_point():
        t = t.float()
        if not bool(torch.isfinite(t).all()):
            raise ValueError(f"{name} must hold only finite values, got NaN or inf")
        low, high = float(t.min()), float(t.max())
        if low < 0.0 or high > 1.0:
            raise ValueError(
                f"{name}: float values must be in [0, 1] (uint8: 0-255), got values in "
                f"[{low:.4g}, {high:.4g}]"
            )
    else:
        raise TypeError(f"{name} must be uint8 (0-255) or float in [0, 1], got dtype {t.dtype}")
    t = t.cpu()
    if t.shape[1] == 4:
        t = t[:, :3]
    if channels is not None:
        channels = check_positive_int("channels", channels)
        have = t.shape[1]
        if have != channels:
            if have == 1:
                t = t.expand(-1, channels, -1, -1)
            elif channels == 1:
                luma = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
                t = (t * luma).sum(1, keepdim=True)
            else:
                raise ValueError(
                    f"{name} has {have} channels; the model takes {channels}, and only grey "
                    "images are spread over other channel counts"
                )
    if size is not None:
        size = check_size("size", size)
        if tuple(t.shape[-2:]) != size:
            t = torch.nn.functional.interpolate(
                t, size=size, mode="bilinear", align_corners=False, antialias=True
            ).clamp_(0, 1)
    return t.contiguous().clone()


def check_weights(name: str, value: object) -> Tensor:
    """Selection weights: a bool or real, finite, non-negative tensor (at least 1-d) that
    selects something, as a float32 (float64 stays float64) copy on the CPU."""
    try:
        w = torch.as_tensor(value).detach()
    except (TypeError, ValueError, RuntimeError) as err:
        raise TypeError(
            f"{name} must be a tensor (bool or non-negative numbers), got {type(value).__name__}"
        ) from err
    if w.dtype.is_complex:
        raise TypeError(f"{name} must be bool or real, got dtype {w.dtype}")
    if w.ndim == 0:
        raise ValueError(f"{name} must have the layer's per-image shape, got a 0-d tensor")
    w = w.to(device="cpu", dtype=torch.float64 if w.dtype == torch.float64 else torch.float32)
    if not torch.isfinite(w).all():
        raise ValueError(f"{name} must be finite, got NaN or infinite entries")
    if (w < 0).any():
        raise ValueError(f"{name} must be non-negative, got minimum {w.min().item()}")
    if not w.any():
        raise ValueError(
            f"nothing is selected: all {w.numel()} entries of {name} (shape {tuple(w.shape)}) "
            "are zero"
        )
    return w.clone()


def check_size(name: str, size: object) -> tuple[int, int]:
    """An image size: an int ``N`` (square) or ``(H, W)``, as ``(H, W)`` of positive ints."""
    pair = (size, size) if isinstance(size, numbers.Integral) else size
    if (
        not isinstance(pair, (tuple, list))
        or len(pair) != 2
        or not all(
            isinstance(v, numbers.Integral) and not isinstance(v, bool) and int(v) >= 1
            for v in pair
        )
    ):
        raise ValueError(
            f"{name} must be a positive int or (height, width) of positive ints, got {size!r}"
        )
    return int(pair[0]), int(pair[1])


def resolve_index(value: object, extent: int, what: str = "index", owner: str = "a layer") -> int:
    """``value`` as an index into ``range(extent)``; negative values count from the end.

    The one rule for indices in both APIs (``objectives.channel(layer, -1)`` and
    ``SplitSelector(ChannelSplit(), [-1])`` both mean the last channel), as in Python.
    ``what`` names the axis in messages ("channel", "row", ...).
    """
    if isinstance(value, bool):
        raise TypeError(f"{what} index must be an int, got bool {value!r}")
    try:
        v = operator.index(value)  # type: ignore[arg-type]
    except TypeError as err:
        raise TypeError(f"{what} index must be an int, got {_given(value)}") from err
    if -extent <= v < extent:
        return v % extent
    raise IndexError(
        f"{what} index {v} out of range for {owner} with {extent} {what}s "
        f"(valid: 0..{extent - 1}, or {-extent}..-1 counting from the end)"
    )
