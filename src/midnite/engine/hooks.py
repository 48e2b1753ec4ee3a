"""How midnite touches a user's model: layers by dotted name, a frozen run, and hooked forwards.

Nothing here leaves a trace on the model: flags, modes, parameter storage and hooks are restored
in ``finally`` blocks, so also after an exception or a KeyboardInterrupt. Token layers of vision
transformers are captured and listed as ``(D, h, w)`` maps (``midnite.engine.tokens``).
"""

from __future__ import annotations

import contextlib
import difflib
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from midnite.engine.device import resolve_device
from midnite.engine.tokens import TokenReader
from midnite.errors import UsageError

OUTPUT = ""  # the name of the root module in ``named_modules()``: the model's own output

_SPEC = re.compile(r"^(?P<name>[^:]*?)(?::(?P<call>\d+))?$")


class LayerNotFoundError(UsageError):
    """A layer name that ``model.named_modules()`` does not know."""


@dataclass(frozen=True)
class LayerRef:
    """A parsed layer spec: a dotted module name plus which call of that module is meant."""

    name: str
    call: int | None  # None: the module must run exactly once per forward pass

    @property
    def spec(self) -> str:
        return self.name if self.call is None else f"{self.name}:{self.call}"


def parse_layer(spec: str) -> LayerRef:
    """Parse ``"_blocks.8"`` or ``"_blocks.8:1"`` (the second call of a reused module)."""
    if not isinstance(spec, str):
        raise TypeError(f"a layer name must be a str, got {type(spec).__name__}: {spec!r}")
    match = _SPEC.match(spec.strip())
    if match is None:
        raise ValueError(
            f"a layer name is a dotted module name with an optional ':call', got {spec!r}"
        )
    call = match.group("call")
    return LayerRef(match.group("name"), None if call is None else int(call))


def resolve_layers(model: nn.Module, specs: Iterable[str]) -> dict[str, nn.Module]:
    """Map each layer spec to its module; unknown names raise with the closest valid names."""
    modules = dict(model.named_modules())
    found = {}
    for spec in specs:
        ref = parse_layer(spec)
        if ref.name not in modules:
            close = difflib.get_close_matches(ref.name, [n for n in modules if n], n=5, cutoff=0.5)
            hint = f"; closest: {', '.join(repr(c) for c in close)}" if close else ""
            raise LayerNotFoundError(
                f"no layer named {ref.name!r} in {type(model).__name__} (names are those of "
                f"model.named_modules(); '' is the model's output; see midnite.layers(model)){hint}"
            )
        found[spec] = modules[ref.name]
    return found


def first_tensor(value: object, where: str) -> Tensor:
    """The tensor an output stands for: itself, a tuple's first, a dict's logits or first."""
    if isinstance(value, Tensor):
        return value
    if isinstance(value, Mapping) and value:
        return first_tensor(
            value["logits"] if "logits" in value else next(iter(value.values())), where
        )
    if isinstance(value, (tuple, list)) and value:
        return first_tensor(value[0], where)
    raise TypeError(f"layer {where!r} returned {type(value).__name__}, expected a tensor")


@contextlib.contextmanager
def frozen(
    model: nn.Module, device: torch.device | None = None, *, channels_last: bool = False
) -> Iterator[nn.Module]:
    """Eval mode, no parameter gradients and (optionally) on ``device`` for the block; restored.

    The model's parameters and buffers keep their original storage: moving to ``device`` (or
    to the channels-last layout for 4-D weights) makes copies, and the originals are put back
    afterwards, so the user's tensors are never altered.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    modes = [(m, m.training) for m in model.modules()]
    params = list(model.named_parameters(remove_duplicate=False))
    flags = [(p, p.requires_grad) for _, p in params]
    data = [(p, p.data) for _, p in params]
    buffers = [
        (m, name, buf)
        for m in model.modules()
        for name, buf in m._buffers.items()
        if buf is not None
    ]
    try:
        for p, _ in flags:
            p.requires_grad_(False)
        model.eval()
        for p, d in data:
            moved = d if device is None else d.to(device)
            if channels_last and moved.dim() == 4:
                moved = moved.contiguous(memory_format=torch.channels_last)
            if moved is not d:
                p.data = moved
        if device is not None:
            for m, name, buf in buffers:
                if buf.device != device:
                    m._buffers[name] = buf.to(device)
        yield model
    finally:
        for m, name, buf in buffers:
            m._buffers[name] = buf
        for p, d in data:
            p.data = d
        for p, flag in flags:
            p.requires_grad_(flag)
        for m, mode in modes:
            m.training = mode


class _EarlyStop(Exception):
    """Raised by a hook once every requested layer has produced its output."""


class ActivationCapture:
    """Forward hooks that capture the outputs of named layers, optionally stopping the pass early.

    Use as a context manager (hooks are removed on exit) and call ``tap(x)`` to run the model.
    With ``early_stop``, the forward pass ends as soon as the last requested output exists, so
    layers after the deepest target cost nothing. A module that runs several times per forward
    pass must be addressed with ``name:call``; otherwise the first run raises a clear error.
    A ``(B, prefix + h*w, D)`` output under a token model is returned as its ``(B, D, h, w)``
    map of patch tokens (``midnite.engine.tokens``), a differentiable view.
    """

    def __init__(self, model: nn.Module, specs: Iterable[str], *, early_stop: bool = True):
        self.model = model
        self.specs = tuple(dict.fromkeys(specs))
        if not self.specs:
            raise ValueError("an objective must read at least one layer, got none")
        self.modules = resolve_layers(model, self.specs)
        self.refs = {s: parse_layer(s) for s in self.specs}
        self.tokens = TokenReader(model, (ref.name for ref in self.refs.values()))
        self.early_stop = early_stop
        self._handles: list[torch.utils.hooks.RemovableHandle] = []
        self._calls: dict[int, int] = {}
        self._acts: dict[str, Tensor] = {}
        self._by_module: dict[int, list[str]] = {}
        for spec, module in self.modules.items():
            self._by_module.setdefault(id(module), []).append(spec)

    def __enter__(self) -> ActivationCapture:
        try:
            if self.tokens:
                self._handles.extend(self.tokens.attach())
            for mid, specs in self._by_module.items():
                module = self.modules[specs[0]]
                self._handles.append(module.register_forward_hook(self._hook(mid, specs)))
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def _hook(self, mid: int, specs: list[str]):
        def hook(module: nn.Module, args: object, output: object) -> None:
            call = self._calls.get(mid, 0)
            self._calls[mid] = call + 1
            for spec in specs:
                ref = self.refs[spec]
                if ref.call is None and call == 1:
                    raise ValueError(
                        f"layer {ref.name!r} runs more than once per forward pass, so which run "
                        f"is meant is ambiguous; address one run as '{ref.name}:0', "
                        f"'{ref.name}:1', ..."
                    )
                if (ref.call or 0) == call:
                    self._acts[spec] = first_tensor(output, spec)
            if self.early_stop and len(self._acts) == len(self.specs):
                raise _EarlyStop
            # a later in-place op would overwrite what was captured: keep a private copy
            for spec in specs:
                act = self._acts.get(spec)
                if act is not None and act is first_tensor(output, spec):
                    self._acts[spec] = act.clone()

        return hook

    def __call__(self, x: Tensor) -> dict[str, Tensor]:
        """Run the model on ``x`` and return ``{spec: output}`` for every requested layer."""
        self._calls.clear()
        self._acts = {}
        self.tokens.reset()
        with contextlib.suppress(_EarlyStop):
            self.model(x)
        missing = [s for s in self.specs if s not in self._acts]
        if missing:
            ran = {s: self._calls.get(id(self.modules[s]), 0) for s in missing}
            raise ValueError(
                "these layers produced no output in the forward pass (expected each to run at "
                f"least once more than the call asked for): {ran}"
            )
        acts, self._acts = self._acts, {}
        if self.tokens:
            acts = {s: self.tokens.read(self.refs[s].name, a) for s, a in acts.items()}
        return acts


@dataclass(frozen=True)
class LayerInfo:
    """One addressable layer: its dotted name, module type, output shape and runs per pass."""

    name: str
    type: str
    shape: tuple[int, ...] | None
    calls: int


class LayerTable(list):
    """A list of :class:`LayerInfo` that prints as a table."""

    def __str__(self) -> str:
        rows = [("name", "type", "output shape", "runs")]
        for info in self:
            shape = "-" if info.shape is None else "x".join(map(str, info.shape))
            rows.append((info.name or "(output)", info.type, shape, str(info.calls)))
        widths = [max(len(r[i]) for r in rows) for i in range(4)]
        lines = [
            "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows
        ]
        lines.insert(1, "  ".join("-" * w for w in widths))
        return "\n".join(lines)

    def names(self) -> list[str]:
        return [info.name for info in self]


def _input_shape(
    model: nn.Module, input_size: int | tuple[int, ...] | None, tokens: TokenReader
) -> tuple[int, int, int]:
    if input_size is None:
        input_size = _native_size(tokens) or 224
    if isinstance(input_size, int):
        input_size = (input_size, input_size)
    if not (isinstance(input_size, tuple) and len(input_size) in (2, 3)) or not all(
        isinstance(v, int) and v > 0 for v in input_size
    ):
        raise ValueError(
            f"input_size must be N, (H, W) or (C, H, W) of positive ints, got {input_size!r}"
        )
    if len(input_size) == 3:
        return input_size
    return (input_channels(model), *input_size)  # type: ignore[return-value]


def _native_size(tokens: TokenReader) -> tuple[int, int] | None:
    """The image size of the outermost token model with a fixed grid, if any."""
    for _, grid in sorted(tokens.owners().items(), key=lambda o: (o[0] != "", o[0].count("."))):
        if grid.image_size is not None:
            return grid.image_size
    return None


def input_channels(model: nn.Module, default: int = 3) -> int:
    """The number of input channels of the model's first convolution, else ``default``."""
    for module in model.modules():
        if isinstance(module, nn.modules.conv._ConvNd):
            return module.in_channels
    return default


def layers(
    model: nn.Module,
    input_size: int | tuple[int, ...] | None = None,
    *,
    device: str | torch.device | None = None,
) -> LayerTable:
    """List the addressable layers of ``model`` with their output shapes for ``input_size``.

    One forward pass without gradients on a gray image of ``(C, H, W)`` (C from the first
    convolution when only ``(H, W)`` or ``N`` is given; None: the image size of a vision
    transformer with a fixed grid, else 224). Shapes are per image (no batch axis); token
    layers of vision transformers are listed as ``(D, h, w)`` (``midnite.engine.tokens``).
    The model's mode, flags and device are restored afterwards.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    dev = resolve_device(device)
    modules = dict(model.named_modules())
    tokens = TokenReader(model, modules, modules)
    shape = _input_shape(model, input_size, tokens)
    seen: dict[str, list] = {name: [None, 0] for name, _ in model.named_modules()}
    handles = []

    def record(name: str):
        def hook(module: nn.Module, args: object, output: object) -> None:
            entry = seen[name]
            entry[1] += 1
            if entry[0] is None:
                with contextlib.suppress(TypeError):
                    entry[0] = tokens.shape(name, tuple(first_tensor(output, name).shape[1:]))

        return hook

    with frozen(model, dev), torch.no_grad():
        try:
            handles.extend(tokens.attach())
            for name, module in model.named_modules():
                handles.append(module.register_forward_hook(record(name)))
            model(torch.full((1, *shape), 0.5, device=dev))
        finally:
            for handle in handles:
                handle.remove()
    table = LayerTable()
    for name, module in model.named_modules():
        out_shape, calls = seen[name]
        table.append(LayerInfo(name, type(module).__name__, out_shape, calls))
    return table
