"""The statistics of a trust report: what a model and a judge see in images, path agreement,
the 2-alternative score and its Wilson interval. Arrays in, numbers out; nothing is written.

``observe`` runs images once through the model (the target layer's channel means, the path
layers' channel means, optionally a target objective's values) and through the judge (its
features); ``path_agreement`` and ``two_alternative`` compare such observations.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from midnite.engine import ActivationCapture, Objective, frozen
from midnite.errors import UsageError

__all__ = [
    "Observed",
    "Pairs",
    "min_images",
    "observe",
    "pair_up",
    "path_agreement",
    "path_layers",
    "two_alternative",
    "wilson",
]


def wilson(correct: float, n: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval of a proportion ``correct / n`` (``z`` = 1.96: 95 %)."""
    if not isinstance(n, int) or n < 1:
        raise UsageError(f"wilson needs n >= 1 trials, got {n!r}")
    if not 0 <= correct <= n:
        raise UsageError(f"wilson needs 0 <= correct <= n ({n}), got {correct!r}")
    p = correct / n
    denom = 1 + z * z / n
    mid = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, mid - half), min(1.0, mid + half)


def _means(act: Tensor) -> Tensor:
    """``(B, C)`` channel means of a ``(B, C, ...)`` activation (a flat layer as it is)."""
    return act.flatten(2).mean(2) if act.dim() > 2 else act


def _energy(act: Tensor) -> Tensor:
    """``(B, 2C)``: per channel the mean and the root-mean-square over positions of a ``(B, C,
    ...)`` activation (a flat layer: the values and their magnitudes).

    The mean alone sees nothing in a signed, zero-mean layer (a Gabor filter's mean is the same
    on a grating and on grey): ``grating_net``'s detector ``("relu", 0)`` had path agreement
    0.02 and 0.40 at seeds 0 and 1 over ``conv`` from means, 0.85 and 0.85 from both.
    """
    flat = act.flatten(2) if act.dim() > 2 else act[:, :, None]
    return torch.cat([flat.mean(2), flat.pow(2).mean(2).sqrt()], 1)


def path_layers(model: nn.Module, target: str, image: Tensor, most: int = 6) -> list[str]:
    """Up to ``most`` leaf modules that run once before ``target`` and give ``(B, C >= 2,
    ...)`` outputs, evenly spaced in the order they run, the last one always kept."""
    order: list[str] = []
    seen: set[str] = set()
    twice: set[str] = set()  # modules that run more than once (such as a shared activation)
    reached = [False]
    handles = []
    modules = dict(model.named_modules())
    if target not in modules:
        ActivationCapture(model, [target])  # raises the one error naming close matches
    for name, module in modules.items():
        if name and not any(True for _ in module.children()):

            def hook(mod: nn.Module, args: object, out: object, name: str = name) -> None:
                ok = isinstance(out, Tensor) and out.dim() >= 3 and out.shape[1] >= 2
                if name in seen:
                    twice.add(name)
                elif not reached[0] and ok:
                    seen.add(name)
                    order.append(name)

            handles.append(module.register_forward_hook(hook))

    def pre(mod: nn.Module, args: object) -> None:
        reached[0] = True

    handles.append(modules[target].register_forward_pre_hook(pre))
    try:
        with frozen(model, image.device), ActivationCapture(model, [target]) as cap:
            cap(image)
    finally:
        for h in handles:
            h.remove()
    order = [name for name in order if name not in twice]
    if len(order) <= most:
        return order
    step = len(order) / most
    return [order[min(len(order) - 1, round((i + 1) * step) - 1)] for i in range(most)]


@dataclass
class Observed:
    """What the model and the judge see in ``N`` images.

    Shape: ``target`` ``(N, C)`` channel means of the target layer; ``values`` ``(N,)`` the
    objective's values (None if none was given); ``path[layer]`` ``(N, C_l)``; ``judge``
    ``(N, D)`` the judge's features (None without a judge).
    """

    target: Tensor
    values: Tensor | None
    path: dict[str, Tensor]
    judge: Tensor | None

    def __len__(self) -> int:
        return len(self.target)

    def rows(self, lo: int, hi: int) -> Observed:
        """What was seen in images ``lo`` to ``hi`` (one batched ``observe``, split up)."""
        return Observed(
            self.target[lo:hi],
            None if self.values is None else self.values[lo:hi],
            {k: v[lo:hi] for k, v in self.path.items()},
            None if self.judge is None else self.judge[lo:hi],
        )


def _judge_features(judge: nn.Module, x: Tensor, layer: str | None) -> Tensor:
    if layer is None:
        out = judge(x)
        if not isinstance(out, Tensor):
            raise UsageError(f"the judge must return a tensor, got {type(out).__name__}")
        return _means(out).flatten(1)
    with ActivationCapture(judge, [layer]) as cap:
        return _means(cap(x)[layer]).flatten(1)


def observe(
    model: nn.Module,
    images: Tensor,
    *,
    target: str,
    layers: Sequence[str] = (),
    objective: Objective | None = None,
    judge: nn.Module | None = None,
    judge_layer: str | None = None,
    batch: int = 32,
    device: torch.device | None = None,
    energy: bool = True,
) -> Observed:
    """One pass of ``images`` ``(N, C, H, W)`` in [0, 1] through the model and the judge.

    ``energy``: a path layer's features are its channels' means and root-mean-squares
    (``(N, 2C)``, see ``_energy``), else the means alone (``(N, C)``).
    """
    features = _energy if energy else _means
    dev = device or torch.device("cpu")
    specs = list(dict.fromkeys([target, *layers, *(objective.layers if objective else ())]))
    target_out, values, judged = [], [], []
    path: dict[str, list[Tensor]] = {s: [] for s in layers}
    with frozen(model, dev), ActivationCapture(model, specs) as cap, torch.no_grad():
        for lo in range(0, len(images), batch):
            x = images[lo : lo + batch].to(dev)
            acts = cap(x)
            target_out.append(_means(acts[target]).float().cpu())
            for s in layers:
                path[s].append(features(acts[s]).float().cpu())
            if objective is not None:
                values.append(objective(acts).float().cpu())
    if judge is not None:
        with frozen(judge, dev), torch.no_grad():
            for lo in range(0, len(images), batch):
                x = images[lo : lo + batch].to(dev)
                judged.append(_judge_features(judge, x, judge_layer).float().cpu())
    return Observed(
        torch.cat(target_out),
        torch.cat(values) if values else None,
        {s: torch.cat(v) for s, v in path.items()},
        torch.cat(judged) if judged else None,
    )


def _cos(a: Tensor, b: Tensor) -> Tensor:
    """``(n, m)`` cosine similarities of the rows of ``a`` and ``b`` (0 for a zero row)."""
    a = a / a.norm(dim=1, keepdim=True).clamp_min(1e-12)
    b = b / b.norm(dim=1, keepdim=True).clamp_min(1e-12)
    return a @ b.T


def path_agreement(
    vis: dict[str, Tensor],
    natural: dict[str, Tensor],
    examples: Tensor,
    baseline: Tensor,
) -> list[float]:
    """Per layer, the share of baseline images whose path the visualization's beats.

    For a layer, every feature row is centred by the mean of ``natural`` (all natural images)
    and ``s(x) = mean_e cos(f(x), f(e))`` over the top examples ``e``; the visualization's
    ``s`` is the mean over its images. The layer's value is ``P(s(r) < s(vis))`` over baseline
    images ``r`` (ties count a half): 0.5 is a random photograph's, 1 closer than every one.

    Shape: ``vis[l]`` ``(V, C)``, ``natural[l]`` ``(N, C)``; ``examples`` and ``baseline`` are
    indices into the natural rows.
    """
    curve = []
    for layer, feats in natural.items():
        mean = feats.mean(0, keepdim=True)
        ex = feats[examples] - mean
        s_vis = _cos(vis[layer] - mean, ex).mean()
        s_base = _cos(feats[baseline] - mean, ex).mean(1)
        below = (s_base < s_vis).float().sum() + 0.5 * (s_base == s_vis).float().sum()
        curve.append(float(below / len(s_base)))
    return curve


def min_images(pairs: int, refs: int) -> int:
    """The fewest natural images for ``pairs`` pairs with ``refs`` references a side:
    ``2 * refs + 3 * ceil(sqrt(pairs))`` (the queries are the top and bottom thirds of the
    rest, and every pair is a different (top, bottom) couple)."""
    return 2 * refs + 3 * math.ceil(math.sqrt(pairs))


@dataclass
class Pairs:
    """Reference and query indices into the natural images: ``top``/``bottom`` references,
    and ``(more, less)`` query couples where ``more`` drives the target strictly more."""

    top: Tensor
    bottom: Tensor
    more: Tensor
    less: Tensor


def pair_up(values: Tensor, pairs: int, refs: int, seed: int) -> Pairs:
    """The fixed, seeded pairs of ``values`` ``(N,)`` (one per image; see ``min_images``).

    Images are ranked by value (ties: the smaller index first); the ``refs`` best and worst are
    the references; of the rest, every (top third, bottom third) couple whose values differ is
    a candidate, and ``pairs`` of them are drawn without replacement by ``seed``.
    """
    n = len(values)
    need = min_images(pairs, refs)
    if n < need:
        raise UsageError(
            f"trust needs at least {need} natural images for {pairs} pairs with {refs} "
            f"references a side (2*refs + 3*ceil(sqrt(pairs))), got {n}"
        )
    order = torch.argsort(values, descending=True, stable=True)
    top, bottom, rest = order[:refs], order[n - refs :], order[refs : n - refs]
    third = len(rest) // 3
    hi, lo = rest[:third], rest[len(rest) - third :]
    grid_hi, grid_lo = hi.repeat_interleave(len(lo)), lo.repeat(len(hi))
    ok = values[grid_hi] > values[grid_lo]
    grid_hi, grid_lo = grid_hi[ok], grid_lo[ok]
    if len(grid_hi) < pairs:
        raise UsageError(
            f"the target takes too few different values on these images for {pairs} pairs "
            f"(only {len(grid_hi)} query couples differ); give more varied images or fewer pairs"
        )
    pick = torch.randperm(len(grid_hi), generator=torch.Generator().manual_seed(seed))[:pairs]
    pick = pick.sort().values
    return Pairs(top, bottom, grid_hi[pick], grid_lo[pick])


def two_alternative(
    judge: Tensor, pairs: Pairs, positive: Tensor, negative: Tensor | None = None
) -> float:
    """The number of pairs (ties a half) in which the query that drives the target more is
    the one more similar to the references, in the judge's features centred by the mean of
    the natural images ``judge`` ``(N, D)``.

    A query's score is its mean cosine to ``positive`` ``(P, D)`` references, minus that to
    ``negative`` ``(Q, D)`` ones when given: max and min references, as people see them in
    Borowski et al. (2021) and in MIS (Zimmermann et al. 2024). The min side cancels what the
    pictures share whatever the target (a render's texture, its flat grey start): the blank
    pictures of 14 of 24 units of three random 2-layer nets (zero on the grey start, so never
    moved) scored 0.0 to 0.11 on 11 of them from the max side alone, exactly 0.5 with both.
    """
    mean = judge.mean(0, keepdim=True)
    queries = judge - mean

    def score(idx: Tensor) -> Tensor:
        s = _cos(queries[idx], positive - mean).mean(1)
        if negative is not None:
            s = s - _cos(queries[idx], negative - mean).mean(1)
        return s

    more, less = score(pairs.more), score(pairs.less)
    return float((more > less).float().sum() + 0.5 * (more == less).float().sum())
