"""A bottom-k reservoir of a layer's activation rows: bounded memory, and the same sample
however the images are batched, ordered or split over workers (``merge`` joins shards exactly).
"""

from __future__ import annotations

import hashlib
import math

import torch
from torch import Tensor

from midnite.analysis.stream import ImageId
from midnite.errors import UsageError

__all__ = ["Reservoir"]


def _image_seed(seed: int, ident: object) -> int:
    """A 63-bit seed of (seed, image id): the same image gets the same keys in any pass."""
    kind = "s" if isinstance(ident, str) else "i"
    digest = hashlib.blake2b(f"{seed}\0{kind}\0{ident}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


class Reservoir:
    """A bottom-k sample of a layer's activation rows, the same however the images are batched,
    ordered or split over workers.

    Each position of an image gets a pseudo-random key from (``seed``, the image's id, the
    position): the image offers its ``rows_per_image`` positions of smallest key, and the
    reservoir keeps the ``max_rows`` rows of smallest key overall, sorted by key; so
    ``a.merge(b)`` of two shards' reservoirs is the reservoir of both. Also kept: the smallest
    activation seen (``low``), the images seen and how they were prepared (``settings``: size,
    normalize). Memory: ``max_rows x C`` floats and ``max_rows`` keys.
    """

    def __init__(self, layer: str, rows_per_image: int, max_rows: int, seed: int, settings=None):
        self.layer, self.per, self.cap, self.seed = layer, rows_per_image, max_rows, seed
        self.settings: dict = dict(settings or {})
        self.rows: Tensor | None = None  # (m, C), m <= max_rows, by key
        self.keys = torch.empty(0, dtype=torch.float64)
        self.low = math.inf
        self.images = 0
        self.ids: dict[int, ImageId] | None = None  # stream key -> image id (None: the same)

    def update(self, act: Tensor, keys: Tensor) -> None:
        """Fold in a batch: ``act`` ``(B, C, h, w)`` or ``(B, C)``, ``keys`` the images' keys."""
        act = act.detach().float().cpu()
        self.low = min(self.low, float(act.min()))
        flat = act.flatten(2).transpose(1, 2) if act.dim() == 4 else act[:, None]  # (B, P, C)
        ids = [k if self.ids is None else self.ids[k] for k in keys.tolist()]
        rand = torch.stack(
            [
                torch.rand(
                    flat.shape[1],
                    generator=torch.Generator().manual_seed(_image_seed(self.seed, i)),
                    dtype=torch.float64,
                )
                for i in ids
            ]
        )
        order, pick = rand.sort(1)
        per = min(self.per, flat.shape[1])
        pick = pick[:, :per]
        rows = flat.gather(1, pick[..., None].expand(-1, -1, flat.shape[2]))
        self.images += len(ids)
        self._keep(rows.reshape(-1, flat.shape[2]), order[:, :per].reshape(-1))

    def _keep(self, rows: Tensor, keys: Tensor) -> None:
        if self.rows is None:
            self.rows = torch.empty(0, rows.shape[1])
        if self.keys.numel() >= self.cap:  # full: only rows under the largest key get in
            inside = keys < self.keys[-1]
            rows, keys = rows[inside], keys[inside]
        if keys.numel():
            both = torch.cat([self.keys, keys])
            order = both.sort(stable=True).indices[: self.cap]
            self.rows, self.keys = torch.cat([self.rows, rows])[order], both[order]

    def merge(self, other: Reservoir) -> Reservoir:
        """The reservoir of both passes (this one and ``other`` are left as they are)."""
        mine = (self.layer, self.per, self.cap, self.seed, self.settings)
        theirs = (other.layer, other.per, other.cap, other.seed, other.settings)
        if mine != theirs:
            raise UsageError(f"reservoirs of different passes do not merge: {mine} vs {theirs}")
        out = Reservoir(self.layer, self.per, self.cap, self.seed, self.settings)
        out.low, out.images = min(self.low, other.low), self.images + other.images
        for part in (self, other):
            if part.rows is not None:
                out._keep(part.rows, part.keys)
        return out
