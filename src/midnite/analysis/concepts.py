"""Concepts: a layer's dictionary of directions, learned from activations of the user's images.

``fit(model, layer, images, n)`` streams the images once (``analysis.stream``; each decoded
once), keeps a bottom-k reservoir of activation rows (``collect``: at most ``max_rows``, the
same however batched or sharded), and ``learn``s ``n`` unit directions in the layer's channel
space (token layers: the token dimension): non-negative factorization for non-negative
layers, a TopK SAE for signed ones. ``Concepts`` gives codes, maps, objectives, units,
importance, top examples and quality figures, and a ``state()`` for the store. Nothing is written.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from midnite.analysis import attribution
from midnite.analysis import dictionary as dic
from midnite.analysis.examples import TopExamples, _report, _result, _Running, _stream
from midnite.analysis.fields import probe_layers
from midnite.analysis.reservoir import Reservoir
from midnite.analysis.stream import check_shard, image_source, placed
from midnite.engine import objectives
from midnite.engine.checks import check_int, check_positive_int, check_size
from midnite.engine.device import resolve_device
from midnite.engine.hooks import ActivationCapture, frozen, input_channels
from midnite.engine.normalize import as_normalize
from midnite.engine.objectives import Objective
from midnite.errors import UsageError

__all__ = [
    "METHODS",
    "Concepts",
    "Reservoir",
    "collect",
    "fit",
    "from_directions",
    "from_state",
    "learn",
    "stability",
]

METHODS = ("nmf", "sae")


class _Coded:
    """A running top K over concept maps (duck-types ``_Running`` for ``_stream``)."""

    def __init__(self, concepts: Concepts, running: _Running):
        self.concepts, self.running = concepts, running

    def update(self, act: Tensor, keys: Tensor) -> None:
        self.running.update(self.concepts.encode_layer(act), keys)


class _Collect:
    def __init__(self, fn: Callable[[Tensor], Tensor]):
        self.fn = fn
        self.out: dict[int, Tensor] = {}

    def update(self, act: Tensor, keys: Tensor) -> None:
        for key, value in zip(keys.tolist(), self.fn(act).cpu(), strict=True):
            self.out[key] = value


@dataclass
class Concepts:
    """``n`` concepts of ``layer``: ``directions (n, C)`` unit rows in its channel space.

    ``method``: ``"nmf"``, ``"sae"`` or ``"given"`` (``from_directions``); ``settings``: how
    they were learned and how images are prepared (``size``, ``normalize``, ``l1``, ``topk``);
    ``encoder``: the SAE's (None otherwise); ``quality``: ``r2``, ``sparsity``, ``dead``,
    ``rows``, ``images`` of the fit.
    """

    model: nn.Module = field(repr=False)
    layer: str
    directions: Tensor = field(repr=False)
    method: str
    settings: dict = field(default_factory=dict)
    encoder: dict | None = field(default=None, repr=False)
    quality: dict = field(default_factory=dict)

    @property
    def n(self) -> int:
        return self.directions.shape[0]

    def __len__(self) -> int:
        return self.n

    # ---------------------------------------------------------------- codes
    def encode(self, rows: Tensor) -> Tensor:
        """Codes of activation rows. Shape: ``(m, C)`` -> ``(m, n)``."""
        if rows.dim() != 2 or rows.shape[1] != self.directions.shape[1]:
            raise UsageError(
                f"rows must be (m, {self.directions.shape[1]}) for layer {self.layer!r}, got "
                f"{tuple(rows.shape)}"
            )
        d = self.directions.to(rows.device)
        enc = (
            None
            if self.encoder is None
            else {k: v.to(rows.device) for k, v in self.encoder.items()}
        )
        return dic.encode(rows, d, self.method, self.settings, enc)

    def encode_layer(self, act: Tensor) -> Tensor:
        """Concept maps of a layer's output. ``(B, C, h, w)`` -> ``(B, n, h, w)``; ``(B, C)``
        -> ``(B, n)``."""
        act = act.detach().float()
        if act.dim() == 2:
            return self.encode(act)
        b, c, h, w = act.shape
        codes = self.encode(act.permute(0, 2, 3, 1).reshape(-1, c))
        return codes.reshape(b, h, w, -1).permute(0, 3, 1, 2)

    def _pass(self, images: object, sink: object, fields: bool = False, batch: int = 32):
        hw = check_size("size", self.settings.get("size", 224))
        dev, norm = placed(self.settings.get("device"), self.settings.get("normalize"))
        ch = input_channels(self.model)
        with frozen(self.model, dev), ActivationCapture(self.model, [self.layer]) as cap:
            source = image_source(images, (0, 1))
            shapes, rfs = probe_layers(cap, hw, ch, norm, dev, fields)
            self._check_width(shapes[self.layer])
            done = _stream(
                cap, source, _sinks(self.layer, sink), (hw, ch, batch, 0, norm, dev, False)
            )
        _report(done, source, True)
        return source, shapes, rfs, done

    def _check_width(self, shape: tuple[int, ...]) -> None:
        if shape[0] != self.directions.shape[1]:
            raise UsageError(
                f"the dictionary has {self.directions.shape[1]} channels but layer {self.layer!r} "
                f"outputs {shape[0]}"
            )

    def maps(self, images: object, *, batch: int = 32) -> Tensor:
        """Where each concept lies in each image. Shape: ``(N, n, h, w)`` (``(N, n)`` for a
        flat layer). ``images``: what ``fit`` takes."""
        sink = _Collect(self.encode_layer)
        self._pass(images, sink, batch=batch)
        return torch.stack([sink.out[k] for k in sorted(sink.out)])

    def codes(self, images: object, *, batch: int = 32) -> Tensor:
        """Each concept's activation in each image (its map's maximum). Shape: ``(N, n)``."""
        m = self.maps(images, batch=batch)
        return m.flatten(2).amax(2) if m.dim() == 4 else m

    def heatmaps(self, image: Tensor) -> Tensor:
        """The concept maps of one ``(3, H, W)`` image scaled up to it. Shape: ``(n, H, W)``."""
        m = self.maps(image[None])[0]
        if m.dim() == 1:
            raise UsageError(f"layer {self.layer!r} is flat: its concepts have no maps")
        hw = check_size("size", self.settings.get("size", 224))
        return F.interpolate(m[None], size=hw, mode="bilinear", align_corners=False)[0]

    # ---------------------------------------------------------------- reading a concept
    def _index(self, i: object) -> int:
        i = check_int("concept", i, 0)
        if i >= self.n:
            raise UsageError(f"concept must be in 0..{self.n - 1}, got {i}")
        return i

    def objective(self, i: int) -> Objective:
        """The engine's direction objective that renders concept ``i``."""
        return objectives.direction(self.layer, self.directions[self._index(i)].clone())

    def units(self, i: int, k: int = 5) -> list[tuple[int, float]]:
        """The ``k`` channels that weigh most in concept ``i``: ``(channel, weight)``, largest
        magnitude first."""
        row = self.directions[self._index(i)]
        k = min(check_positive_int("k", k), row.numel())
        top = row.abs().topk(k).indices
        return [(int(c), float(row[c])) for c in top]

    def top_examples(self, images: object, k: int = 9, *, batch: int = 32) -> TopExamples:
        """Each concept's ``k`` top images (score: its map's maximum), with the receptive field
        there (``.crop(layer, i, rank)``): ``analysis.top_examples`` with concepts as units."""
        k = check_positive_int("k", k)
        running = _Running(self.n, k, resolve_device(self.settings.get("device")))
        source, shapes, rfs, done = self._pass(images, _Coded(self, running), True, batch)
        hw = check_size("size", self.settings.get("size", 224))
        shape = (self.n, *shapes[self.layer][1:])
        ch = input_channels(self.model)
        return _result(
            k,
            hw,
            ch,
            source.root,
            {self.layer: running},
            {self.layer: shape},
            rfs,
            source.id_table(),
            done,
        )

    def importance(self, target: object, images: object, *, batch: int = 16) -> Tensor:
        """How much each concept drives ``target`` (a class index of the model's output, or a
        function of the output giving ``(B,)``, e.g. a unit downstream): the mean over images
        of gradient x activation of the concept's part ``u_i d_i`` of the layer (token layers:
        of their patch grid). Shape: ``(n,)``."""
        total, count = torch.zeros(self.n, dtype=torch.float64), 0
        for per, _ in attribution.concept_attribution(self, images, target, batch=batch):
            total += per.sum(0)
            count += per.shape[0]
        return (total / count).float()

    def classes(
        self, images: object, k: int = 5, *, batch: int = 16
    ) -> list[list[tuple[int, float]]]:
        """The ``k`` classes each concept matters most for: per concept, ``(class, share)``
        largest first, where ``share`` is the concept's gradient x activation toward each
        image's predicted class, summed over the images predicted as that class, divided by
        all images. Needs a ``(batch, classes)`` output; classes with no share are left out."""
        k = check_positive_int("k", k)
        table, counts = attribution.by_class(self, images, batch=batch)
        return attribution.top_classes(table, counts, k)

    # ---------------------------------------------------------------- state
    def stability(self, other: Concepts) -> float:
        """Mean cosine of this dictionary's directions matched one to one with ``other``'s."""
        return float(dic.match(self.directions, other.directions)[0].mean())

    def state(self) -> dict:
        """What the store saves: tensors and plain values only."""
        return {
            "layer": self.layer,
            "directions": self.directions.detach().cpu().clone(),
            "method": self.method,
            "settings": dict(self.settings),
            "encoder": None
            if self.encoder is None
            else {k: v.cpu() for k, v in self.encoder.items()},
            "quality": dict(self.quality),
        }


def _sinks(layer: str, sink: object) -> dict[str, _Running]:
    """``{layer: sink}`` for ``_stream``, which calls only ``update(act, keys)`` of a sink."""
    return {layer: sink}  # type: ignore[dict-item]


def _check_model(model: object, layer: object) -> str:
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not isinstance(layer, str):
        raise TypeError(f"layer must be a layer name (str), got {type(layer).__name__}")
    return layer


def collect(
    model: nn.Module,
    layer: str,
    images: object,
    *,
    seed: int = 0,
    rows_per_image: int = 8,
    max_rows: int = 20_000,
    size: int | tuple[int, int] = 224,
    batch: int = 32,
    device: str | torch.device | None = None,
    normalize: object = None,
    workers: int = 0,
    progress: bool = False,
    exclude: Iterable[object] = (),
    shard: tuple[int, int] | None = None,
) -> Reservoir:
    """One streaming pass over ``images`` (what ``fit`` takes): the :class:`Reservoir` of
    ``layer``'s activation rows. ``shard=(i, count)``: only that shard's images, and a shard
    without a readable image is an empty reservoir, not an error (merge the shards)."""
    layer = _check_model(model, layer)
    hw = check_size("size", size)
    per = check_positive_int("rows_per_image", rows_per_image)
    cap = check_positive_int("max_rows", max_rows)
    batch = check_positive_int("batch", batch)
    workers = check_int("workers", workers, 0)
    dev, norm = placed(device, normalize)
    ch = input_channels(model)
    settings = {"size": list(hw), "normalize": _plain(normalize)}
    res = Reservoir(layer, per, cap, check_int("seed", seed, 0), settings)
    with frozen(model, dev), ActivationCapture(model, [layer]) as capture:
        source = image_source(images, check_shard(shard), exclude)
        res.ids = source.id_table()
        probe_layers(capture, hw, ch, norm, dev, False)
        done = _stream(
            capture, source, _sinks(layer, res), (hw, ch, batch, workers, norm, dev, progress)
        )
    _report(done, source, shard is None)
    res.ids = None  # the ids were for this pass only
    return res


def _method(method: object, low: float, layer: str) -> str:
    if method is None:
        return "nmf" if low >= 0 else "sae"
    if method not in METHODS:
        raise UsageError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    if method == "nmf" and low < 0:
        raise UsageError(
            f"layer {layer!r} has negative activations (min {low:.3g}) and NMF needs non-negative "
            "ones: use method='sae', or a layer after a ReLU"
        )
    return str(method)


def learn(
    model: nn.Module,
    reservoir: Reservoir,
    n: int,
    method: str | None = None,
    *,
    l1: float = 0.1,
    iters: int = 200,
    topk: int | None = None,
    steps: int = 500,
) -> Concepts:
    """``n`` concepts learned from a reservoir's rows (see ``fit`` for ``method`` and the
    rest); the same reservoir and settings give the same dictionary."""
    if not isinstance(reservoir, Reservoir):
        raise TypeError(f"reservoir must be a Reservoir, got {type(reservoir).__name__}")
    n = check_positive_int("n", n)
    _method(method, 0.0, reservoir.layer)  # an unknown method fails first
    rows = reservoir.rows if reservoir.rows is not None else torch.empty(0, 0)
    if rows.shape[0] < n:
        raise UsageError(
            f"n={n} concepts need at least {n} activation rows, got {rows.shape[0]} from "
            f"{reservoir.images} image(s); lower n, or give more images or rows_per_image"
        )
    chosen = _method(method, reservoir.low, reservoir.layer)
    seed = reservoir.seed
    settings: dict = {
        **reservoir.settings,
        "seed": seed,
        "rows_per_image": reservoir.per,
        "max_rows": reservoir.cap,
    }
    encoder = None
    if chosen == "nmf":
        settings.update(l1=float(l1), iters=check_int("iters", iters, 0))
        d = dic.learn_nmf(rows, n, seed, float(l1), settings["iters"])
    else:
        k = topk if topk is not None else min(32, max(1, n // 8))
        settings.update(
            topk=min(check_positive_int("topk", k), n), steps=check_int("steps", steps, 0)
        )
        d, encoder = dic.learn_sae(rows, n, seed, settings["topk"], settings["steps"])
    out = Concepts(model, reservoir.layer, d, chosen, settings, encoder)
    codes = out.encode(rows)
    out.quality = {
        **dic.quality(rows, codes, dic.reconstruct(codes, d, encoder)),
        "rows": int(rows.shape[0]),
        "images": reservoir.images,
    }
    return out


def fit(
    model: nn.Module,
    layer: str,
    images: object,
    n: int,
    method: str | None = None,
    *,
    seed: int = 0,
    rows_per_image: int = 8,
    max_rows: int = 20_000,
    size: int | tuple[int, int] = 224,
    batch: int = 32,
    device: str | torch.device | None = None,
    normalize: object = None,
    workers: int = 0,
    progress: bool = False,
    exclude: Iterable[object] = (),
    l1: float = 0.1,
    iters: int = 200,
    topk: int | None = None,
    steps: int = 500,
) -> Concepts:
    """Learn ``n`` concepts of ``layer`` from ``images`` (a folder, files or ``(N, 3, H, W)``):
    ``learn(model, collect(...), n, ...)``.

    One pass: each image is loaded once (``midnite.images``, scaled to ``size``); its
    ``rows_per_image`` positions of smallest key join a bottom-k :class:`Reservoir` of at most
    ``max_rows`` rows (memory ``max_rows x C`` for any number of images; the same rows however
    the images are batched or sharded). ``method``: ``"nmf"`` (k-means start, NMF refinement
    of ``iters`` iterations, L1 weight ``l1`` on the codes), ``"sae"`` (TopK SAE, ``topk``
    concepts per row, default ``n // 8`` in [1, 32], ``steps`` Adam steps); None: nmf when no
    activation seen is negative, else sae. Same seed, same dictionary.
    """
    _check_model(model, layer)
    check_positive_int("n", n)
    _method(method, 0.0, layer)  # an unknown method fails before the pass
    res = collect(
        model, layer, images, seed=seed, rows_per_image=rows_per_image, max_rows=max_rows,
        size=size, batch=batch, device=device, normalize=normalize, workers=workers,
        progress=progress, exclude=exclude,
    )  # fmt: skip
    return learn(model, res, n, method, l1=l1, iters=iters, topk=topk, steps=steps)


def _plain(normalize: object) -> object:
    """``normalize`` as a value a record can keep (None, a name, or ``[mean, std]`` lists)."""
    if normalize is None or isinstance(normalize, str):
        return normalize
    norm = as_normalize(normalize)
    if norm is None:
        return None
    return [norm.mean.flatten().tolist(), norm.std.flatten().tolist()]


def from_directions(
    model: nn.Module,
    layer: str,
    directions: object,
    *,
    method: str = "given",
    size: int | tuple[int, int] = 224,
    normalize: object = None,
) -> Concepts:
    """Concepts from a dictionary learned elsewhere (e.g. an Overcomplete SAE's ``(n, C)``
    decoder): rows are normalised to unit length; its channel count must be the layer's.
    Codes are non-negative sparse codes when ``method="nmf"``, else ``relu`` of projections."""
    layer = _check_model(model, layer)
    d = torch.as_tensor(directions).detach().float().cpu()
    if d.dim() != 2 or d.shape[0] == 0:
        raise UsageError(f"directions must be an (n, C) matrix, got shape {tuple(d.shape)}")
    if not torch.isfinite(d).all() or (d.norm(dim=1) == 0).any():
        raise UsageError("directions must be finite and no row may be all zeros")
    hw = check_size("size", size)
    with frozen(model), ActivationCapture(model, [layer]) as cap:
        shapes, _ = probe_layers(
            cap, hw, input_channels(model), as_normalize(normalize), torch.device("cpu"), False
        )
    out = Concepts(
        model,
        layer,
        d / d.norm(dim=1, keepdim=True),
        method,
        {"size": list(hw), "normalize": _plain(normalize), "l1": 0.1},
    )
    out._check_width(shapes[layer])
    return out


def from_state(model: nn.Module, state: dict) -> Concepts:
    """Concepts from ``Concepts.state()`` (what the store loaded), on ``model``."""
    try:
        layer, d, method = state["layer"], state["directions"], state["method"]
        settings, encoder, quality = state["settings"], state["encoder"], state["quality"]
    except (KeyError, TypeError) as err:
        raise UsageError(f"not a concepts state: missing {err}") from None
    out = from_directions(
        model,
        layer,
        d,
        method=method,
        size=settings.get("size", 224),
        normalize=settings.get("normalize"),
    )
    out.settings, out.encoder, out.quality = dict(settings), encoder, dict(quality)
    return out


def stability(a: Concepts, b: Concepts) -> tuple[float, Tensor]:
    """Two dictionaries matched one to one (Hungarian, on cosines): the mean cosine and each
    of ``a``'s concepts' matched cosine ``(n,)``."""
    cos, _ = dic.match(a.directions, b.directions)
    return float(cos.mean()), cos
