"""Fold eval-mode BatchNorm2d layers into the Conv2d that feeds them, for a block; undone after.

A frozen network's BatchNorm is a fixed per-channel affine map, so ``bn(conv(x))`` equals one
convolution with rescaled weights and a bias. Folding saves BatchNorm's forward and backward
passes over the largest tensors (``benchmarks/speed.py`` measures it). Outputs agree to float
rounding.

A pair is folded only when a probe pass shows that the BatchNorm reads exactly the conv's
output (same autograd node, so no in-place op in between), that nothing else reads that
output, that each module runs once per pass, that the BatchNorm uses running statistics, and
that neither the conv's output is read by the objective nor the conv carries hooks or
parametrizations; then a second pass checks that, folded, every BatchNorm gives the outputs it
gave before (else nothing is folded: a conv whose forward standardizes its weights, say).
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Iterable, Iterator

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize

__all__ = ["conv_bn_pairs", "folded"]


def _tensors(out: object) -> list[Tensor]:
    if isinstance(out, Tensor):
        return [out]
    if isinstance(out, dict):
        out = list(out.values())
    if isinstance(out, (list, tuple)):
        return [t for item in out for t in _tensors(item)]
    return []


# model -> {(structure, keep, example's shape/dtype/device/layout): pairs}: a render of the
# same model again (a catalogue's next batch) skips the two probe passes
_FOUND: weakref.WeakKeyDictionary[nn.Module, dict[tuple, list]] = weakref.WeakKeyDictionary()


def conv_bn_pairs(
    model: nn.Module, example: Tensor, keep: Iterable[str] = (), *, cache: bool = True
) -> list[tuple[nn.Conv2d, nn.BatchNorm2d]]:
    """The (conv, batchnorm) pairs of ``model`` that can be folded, found by one probe pass.

    ``keep``: module names whose outputs must stay as they are (convs among them are not
    folded). Run it on a frozen model (eval mode); ``example`` is a batch the model takes.
    With ``cache``, the answer is kept for the model while its modules, their modes, hooks and
    parametrizations stay as they were, and reused for an example of the same kind.
    """
    key = None
    if cache:
        key = (_structure(model), tuple(sorted(set(keep))), *_kind(example))
        found = _FOUND.get(model, {}).get(key)
        if found is not None:
            return list(found)
    try:
        outputs: dict[int, tuple[Tensor, Tensor]] = {}
        pairs = _pairs(model, example, set(keep), outputs)
        pairs = pairs if pairs and _same_outputs(model, example, pairs, outputs) else []
    except Exception:  # an optimization, never a reason to fail (a scripted module, say)
        return []
    if key is not None:
        _FOUND.setdefault(model, {})[key] = list(pairs)
    return pairs


def _kind(example: Tensor) -> tuple:
    """What of the example decides the answer besides the model: shape, dtype, device, layout."""
    last = example.dim() == 4 and example.is_contiguous(memory_format=torch.channels_last)
    return tuple(example.shape[1:]), example.dtype, example.device, last


def _structure(model: nn.Module) -> tuple:
    """The modules of ``model`` as ``conv_bn_pairs`` sees them (not their weights' values)."""
    return tuple(
        (
            name,
            id(m),
            m.training,
            tuple(m._forward_hooks),
            tuple(m._forward_pre_hooks),
            parametrize.is_parametrized(m),
            id(m.__dict__.get("forward")),
            *((id(m.running_mean), id(m.running_var)) if isinstance(m, nn.BatchNorm2d) else ()),
        )
        for name, m in model.named_modules()
    )


def _stats(output: Tensor) -> tuple[Tensor, Tensor]:
    """Per-channel mean and root mean square of a (B, C, H, W) output, in float64."""
    x = output.detach().double()
    return x.mean((0, 2, 3)), x.square().mean((0, 2, 3)).sqrt()


def _same_outputs(model: nn.Module, example: Tensor, pairs: list, expected: dict) -> bool:
    """Whether, folded, every pair's batchnorm gives the outputs it gave before.

    Catches convolutions whose forward does more than convolve with ``weight`` (weight
    standardization, say), where rescaled weights would not give a rescaled output.
    """
    seen: dict[int, tuple[Tensor, Tensor]] = {}
    hooks = [
        bn.register_forward_hook(lambda m, a, out: seen.__setitem__(id(m), _stats(out)))
        for _, bn in pairs
    ]
    try:
        with folded(pairs), torch.no_grad():
            model(example)
    finally:
        for h in hooks:
            h.remove()
    for _, bn in pairs:
        if id(bn) not in seen:
            return False
        (mean, rms), (mean0, rms0) = seen[id(bn)], expected[id(bn)]
        tol = 1e-3 * rms0 + 1e-6
        if not ((mean - mean0).abs() <= tol).all() or not ((rms - rms0).abs() <= tol).all():
            return False
    return True


def _pairs(model: nn.Module, example: Tensor, keep: set[str], outputs: dict) -> list:
    """Candidate pairs from a probe pass; ``outputs`` gets each batchnorm's output statistics."""
    names = {id(m): n for n, m in model.named_modules()}
    convs = {
        id(m): m
        for m in model.modules()
        if isinstance(m, nn.Conv2d)
        and names[id(m)] not in keep
        and not m._forward_hooks
        and not m._forward_pre_hooks
        and not parametrize.is_parametrized(m)
    }
    bns = {
        id(m): m
        for m in model.modules()
        if isinstance(m, nn.BatchNorm2d)
        and not m.training
        and m.running_mean is not None
        and m.running_var is not None
        and m.__dict__.get("forward") is not _identity  # folded already
    }
    if not convs or not bns:
        return []
    produced: dict[int, list[object]] = {}  # conv id -> grad_fn of each of its outputs
    read: dict[int, list[object]] = {}  # bn id -> grad_fn of each of its inputs

    def on_conv(module: nn.Module, args: object, output: object) -> None:
        produced.setdefault(id(module), []).append(getattr(output, "grad_fn", None))

    def on_bn(module: nn.Module, args: tuple) -> None:
        read.setdefault(id(module), []).append(getattr(args[0], "grad_fn", None) if args else None)

    def on_bn_out(module: nn.Module, args: object, output: object) -> None:
        if isinstance(output, Tensor) and output.dim() == 4:
            outputs[id(module)] = _stats(output)

    sinks: list[Tensor] = []

    def on_kept(module: nn.Module, args: object, output: object) -> None:
        sinks.extend(_tensors(output))  # read by the objective: its readers count too

    handles = [m.register_forward_hook(on_conv) for m in convs.values()]
    handles += [m.register_forward_pre_hook(on_bn) for m in bns.values()]
    handles += [m.register_forward_hook(on_bn_out) for m in bns.values()]
    handles += [m.register_forward_hook(on_kept) for n, m in model.named_modules() if n in keep]
    try:
        with torch.enable_grad():
            sinks += _tensors(model(example.detach().requires_grad_(True)))
    finally:
        for h in handles:
            h.remove()
    # how many nodes of the graph read each node's output
    readers: dict[object, int] = {}
    stack = [t.grad_fn for t in sinks if t.grad_fn is not None]
    seen = set()
    while stack:
        node = stack.pop()
        if node in seen:
            continue
        seen.add(node)
        for child, _ in node.next_functions:
            if child is not None:
                readers[child] = readers.get(child, 0) + 1
                stack.append(child)
    by_node = {fns[0]: cid for cid, fns in produced.items() if len(fns) == 1 and fns[0] is not None}
    pairs = []
    for bid, fns in read.items():
        if len(fns) != 1 or fns[0] not in by_node:
            continue
        conv = convs[by_node[fns[0]]]
        if (
            readers.get(fns[0], 0) == 1
            and conv.out_channels == bns[bid].num_features
            and bid in outputs
        ):
            pairs.append((conv, bns[bid]))
    return pairs


def _identity(x: Tensor) -> Tensor:
    return x


_MISSING = object()


@contextlib.contextmanager
def folded(pairs: Iterable[tuple[nn.Conv2d, nn.BatchNorm2d]]) -> Iterator[int]:
    """Fold each (conv, batchnorm) pair for the block; yields how many were folded.

    The conv's weight and bias are replaced by new tensors (the originals are put back, never
    written) and the BatchNorm's forward becomes the identity; its hooks still run.
    """
    undo: list[tuple[nn.Conv2d, nn.BatchNorm2d, Tensor, Tensor | None, object]] = []
    try:
        for conv, bn in pairs:
            if not isinstance(conv.weight, Tensor) or conv.weight.dim() != 4:
                continue
            with torch.no_grad():
                w = conv.weight
                var, mean = bn.running_var, bn.running_mean
                if var is None or mean is None:  # no running statistics: nothing to fold
                    continue
                scale = var.to(w.dtype).add(bn.eps).rsqrt()
                if bn.weight is not None:
                    scale = scale * bn.weight.to(w.dtype)
                bias = -mean.to(w.dtype) * scale
                if conv.bias is not None:
                    bias = bias + conv.bias.to(w.dtype) * scale
                if bn.bias is not None:
                    bias = bias + bn.bias.to(w.dtype)
                layout = (
                    torch.channels_last
                    if w.is_contiguous(memory_format=torch.channels_last)
                    else torch.contiguous_format
                )
                weight = (w * scale.view(-1, 1, 1, 1)).contiguous(memory_format=layout)
            old_bias = conv.bias
            own = bn.__dict__.get("forward", _MISSING)  # a forward set on the instance by its owner
            undo.append((conv, bn, w.data, None if old_bias is None else old_bias.data, own))
            conv.weight.data = weight
            if old_bias is None:
                conv.bias = nn.Parameter(bias, requires_grad=False)
            else:
                old_bias.data = bias
            bn.forward = _identity  # type: ignore[method-assign,assignment]
        yield len(undo)
    finally:
        for conv, bn, old_weight, old_bias_data, own in reversed(undo):
            conv.weight.data = old_weight
            if old_bias_data is None:
                conv.bias = None
            elif conv.bias is not None:
                conv.bias.data = old_bias_data
            if own is _MISSING:
                bn.__dict__.pop("forward", None)
            else:
                bn.__dict__["forward"] = own
