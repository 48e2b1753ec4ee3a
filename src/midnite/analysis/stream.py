"""The image stream of an analysis pass: what images a source names, loaded ahead in threads.

``image_source(images, shard)`` turns a folder (walked by ``midnite.images.scan_folder``), a
list of files, a mapping or an iterable of in-memory images into keyed items; ``loaded`` runs a
loader over them in order, with ``workers`` threads decoding ahead. Nothing is written.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Generator, Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeAlias

import torch
from PIL import Image
from torch import Tensor

from midnite.engine.checks import check_int, check_positive_int
from midnite.engine.device import resolve_device
from midnite.engine.normalize import Normalize, as_normalize
from midnite.errors import UsageError
from midnite.images import UnreadableImageError, scan_folder, shown

__all__ = ["ImageId", "Item", "Source", "check_shard", "image_source", "loaded", "placed"]

ImageId: TypeAlias = "str | int"  # a path relative to the folder (or as given), or an index
Item: TypeAlias = "tuple[int, ImageId, object]"  # (key, id, what to load); key order = id order


@dataclass
class Source:
    """Keyed items to load, their number (None: unknown), the folder ids are relative to, a
    phrase naming the source, and the entries skipped before loading (``(id, reason)``)."""

    items: Iterable[Item]
    total: int | None
    root: str | None
    where: str
    skipped: list[tuple[ImageId, str]] = field(default_factory=list)

    def id_table(self) -> dict[int, ImageId] | None:
        """key -> id when ids are not the keys (None: the id is the key)."""
        if isinstance(self.items, list):
            return {key: ident for key, ident, _ in self.items}
        return None


def placed(
    device: str | torch.device | None, normalize: object
) -> tuple[torch.device, Normalize | None]:
    """The device a pass runs on and its input normalization there (None: none)."""
    dev = resolve_device(device)
    norm = as_normalize(normalize)
    return dev, None if norm is None else norm.to(dev)


def check_shard(shard: object) -> tuple[int, int]:
    """``(index, count)`` of a shard; None is the whole ``(0, 1)``."""
    if shard is None:
        return 0, 1
    if not isinstance(shard, (tuple, list)) or len(shard) != 2:
        raise UsageError(f"shard must be (index, count), got {shard!r}")
    count = check_positive_int("shard count", shard[1])
    index = check_int("shard index", shard[0], 0)
    if index >= count:
        raise UsageError(f"shard index must be in 0..{count - 1}, got {index}")
    return index, count


def _is_path(x: object) -> bool:
    return isinstance(x, (str, os.PathLike))


def _folder(path: Path, shard: tuple[int, int], exclude: Iterable[object]) -> Source:
    """A folder's files; walk-skipped entries are shared out between shards like the files."""
    index, count = shard
    listing = scan_folder(path, exclude=exclude)
    where = f"the folder {shown(str(path))}"
    if not listing.files and not listing.skipped:
        raise UsageError(f"images: {where} holds no files")
    reasons = dict(listing.skipped)
    keyed = list(enumerate(sorted([*listing.files, *reasons])))[index::count]
    items: list[Item] = [(key, name, path / name) for key, name in keyed if name not in reasons]
    skipped: list[tuple[ImageId, str]] = [
        (name, reasons[name]) for _, name in keyed if name in reasons
    ]
    return Source(items, len(items), str(path), where, skipped)


def image_source(images: object, shard: tuple[int, int], exclude: Iterable[object] = ()) -> Source:
    """The keyed items of ``images`` in shard ``(index, count)`` (see ``top_examples``)."""
    index, count = shard
    if _is_path(images):
        if os.fspath(images) in ("", b""):  # type: ignore[call-overload]
            raise UsageError("images: the folder name is empty (it would walk the current folder)")
        path = Path(images)  # type: ignore[arg-type]
        if path.is_dir():
            return _folder(path, shard, exclude)
        if not path.exists() and not path.is_symlink():
            raise UsageError(f"images: no such folder or file {shown(str(images))}")
        images = [images]
    if isinstance(images, Mapping):
        ids = list(images)
        if not all(isinstance(i, str) for i in ids):
            raise TypeError(f"images: a mapping's keys must be names (str), got {ids[:3]!r}")
        keyed = list(enumerate(sorted(ids)))[index::count]
        return Source([(k, i, images[i]) for k, i in keyed], len(keyed), None, "the given images")
    if isinstance(images, (Image.Image, Tensor)) and not (
        isinstance(images, Tensor) and images.dim() == 4
    ):
        images = [images]
    if isinstance(images, (list, tuple)) and images and all(_is_path(p) for p in images):
        ids = sorted(str(p) for p in images)
        items = [(key, ident, Path(ident)) for key, ident in list(enumerate(ids))[index::count]]
        return Source(items, len(items), None, "the given files")
    if not isinstance(images, Iterable) or isinstance(images, (str, bytes)):
        raise TypeError(
            "images must be a folder, a list of image files, or an iterable of (C, H, W) "
            f"tensors or PIL images, got {type(images).__name__}"
        )
    total = None
    if hasattr(images, "__len__"):
        total = len(range(index, len(images), count))  # type: ignore[arg-type]
    gen = ((i, i, item) for i, item in enumerate(images) if i % count == index)
    return Source(gen, total, None, "the given images")


Loader: TypeAlias = "Callable[[object], Tensor]"


def _load(load: Loader, item: object) -> tuple[Tensor | None, str | None]:
    """``(image, None)``, or ``(None, reason)`` for an unreadable one."""
    try:
        return load(item), None
    except UnreadableImageError as err:
        return None, err.reason


def loaded(
    items: Iterable[Item], load: Loader, workers: int
) -> Generator[tuple[int, ImageId, object, Tensor | None, str | None], None, None]:
    """The items with ``load(item)`` (None and the reason if unreadable), in order;
    ``workers`` threads load ahead (0: in this thread)."""
    if workers == 0:
        for key, ident, item in items:
            yield key, ident, item, *_load(load, item)
        return
    pool = ThreadPoolExecutor(workers, thread_name_prefix="midnite-decode")
    ahead: deque[tuple[int, ImageId, object, Future]] = deque()
    try:
        for key, ident, item in items:
            ahead.append((key, ident, item, pool.submit(_load, load, item)))
            if len(ahead) > 4 * workers:
                k, i, it, fut = ahead.popleft()
                yield k, i, it, *fut.result()
        while ahead:
            k, i, it, fut = ahead.popleft()
            yield k, i, it, *fut.result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
