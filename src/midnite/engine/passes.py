"""``Renderer``: a frozen, hooked model plus an objective, computing the loss of an image batch.

    image -> per-step transforms -> normalize -> model (hooked, early stop) -> objective
      - regularizers + init penalty -> loss

The render loop (``midnite.engine.loop``) and the classic ``PixelActivation`` both drive it.
``InitPenalty`` is feature accentuation's pull towards the start images. The model is restored
on leaving the ``with`` block, also after an exception or a KeyboardInterrupt.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import ExitStack

import torch
from torch import Tensor, nn

from midnite.engine._fold import conv_bn_pairs, folded
from midnite.engine._heap import retained_heap
from midnite.engine.device import resolve_device
from midnite.engine.hooks import ActivationCapture, frozen
from midnite.engine.normalize import Normalize, as_normalize
from midnite.engine.objectives import Objective, PerImage, as_objective
from midnite.engine.regularizers import Regularizer, check_regularizers

__all__ = ["InitPenalty", "Renderer"]


class Renderer:
    """A frozen, hooked model plus an objective: computes the loss of an image batch.

    Enter it as a context manager: the model is frozen (eval mode, no parameter gradients,
    moved to ``device`` with its original tensors kept) and hooked; ``validate()``, the first
    pass, also folds batchnorms into convolutions (``fold_bn``). On exit every change is
    undone, also after an exception or a KeyboardInterrupt. A ``penalty`` (``InitPenalty``) is
    added to the loss; the layer it reads is captured with the objective's layers.

    ``transforms`` may return ``k`` times the batch (random crops, box-major: rows ``j * B ..
    j * B + B - 1`` are crop ``j`` of images 0..B-1); the objective is then the mean over each
    image's ``k`` crops. ``view`` maps the images before the passes without per-step transforms
    (``validate``, ``score``): with a canvas, its resize to the model's input.
    """

    def __init__(
        self,
        model: nn.Module,
        objective: Objective | Sequence[Objective],
        *,
        transforms: Callable[..., Tensor] | None = None,
        regularizers: Sequence[Regularizer] = (),
        normalize: object = None,
        device: str | torch.device | None = None,
        generator: torch.Generator | None = None,
        early_stop: bool = True,
        channels_last: bool | None = None,
        fold_bn: bool = True,
        penalty: InitPenalty | None = None,
        view: Callable[[Tensor], Tensor] | None = None,
        autocast: torch.dtype | None = None,
        compile_mode: str | None = None,
    ):
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        self.model = model
        self.objective = as_objective(objective)
        self.transforms = transforms
        self.regularizers = check_regularizers(list(regularizers))
        if penalty is not None and not isinstance(penalty, InitPenalty):
            raise TypeError(f"penalty must be an InitPenalty or None, got {type(penalty).__name__}")
        self.penalty = penalty
        self.device = resolve_device(device)
        self.normalize: Normalize | None = as_normalize(normalize)
        if self.normalize is not None:
            self.normalize = self.normalize.to(self.device)
        self.generator = generator
        self.view = view
        self.early_stop = early_stop
        # On the CPU, oneDNN runs convolutions in the channels-last layout without the layout
        # conversions it otherwise adds around each one. Chosen here, it is undone if the model
        # cannot take such tensors (see _default_layout).
        self._auto_layout = channels_last is None
        if channels_last is None:
            channels_last = self.device.type == "cpu" and any(
                isinstance(m, nn.Conv2d) for m in model.modules()
            )
        self.channels_last = channels_last
        self.fold_bn = fold_bn
        self.autocast = autocast  # accel="fast": the model runs under autocast to this dtype
        self.compile_mode = compile_mode  # and compiled (torch.compile) with this mode
        self.folded = 0  # conv+batchnorm pairs folded by validate()
        self.shapes: dict[str, tuple[int, ...]] = {}
        self._stack: ExitStack | None = None
        self._capture: ActivationCapture | None = None

    def __enter__(self) -> Renderer:
        self.folded = 0
        stack = ExitStack()
        try:
            if self.device.type == "cpu":
                stack.enter_context(retained_heap())
            stack.enter_context(frozen(self.model, self.device, channels_last=self.channels_last))
            layers = (*self.objective.layers, *(self.penalty.layers if self.penalty else ()))
            self._capture = stack.enter_context(
                ActivationCapture(self.model, layers, early_stop=self.early_stop)
            )
            if self.compile_mode is not None:  # the hooks are traced with the model
                compiled = torch.compile(self.model, mode=self.compile_mode)
                self._capture.model = compiled  # type: ignore[assignment]  # an nn.Module
        except BaseException:
            stack.close()
            raise
        self._stack = stack
        return self

    def __exit__(self, *exc: object) -> None:
        stack, self._stack, self._capture = self._stack, None, None
        if stack is not None:
            stack.close()

    def _acts(self, image: Tensor, transform: bool) -> dict[str, Tensor]:
        if self._capture is None:
            raise RuntimeError("use the Renderer inside a 'with' block")
        x = image
        if transform and self.transforms is not None:
            x = self.transforms(x, self.generator)
        elif not transform and self.view is not None:
            x = self.view(x)
        if self.autocast is None:
            return self._capture(self._model_input(x))
        with torch.autocast(self.device.type, dtype=self.autocast):
            acts = self._capture(self._model_input(x))
        return {name: act.float() for name, act in acts.items()}  # objectives read float32

    def _model_input(self, x: Tensor) -> Tensor:
        if self.normalize is not None:
            x = self.normalize(x)
        if x.dim() == 4:  # transforms may hand over either layout
            layout = torch.channels_last if self.channels_last else torch.contiguous_format
            x = x.contiguous(memory_format=layout)
        return x

    @torch.no_grad()
    def validate(self, image: Tensor) -> Tensor:
        """The first pass: records layer shapes, checks the objective, returns its values.

        It is a full pass (``_first_pass``), falling back to the default memory layout when the
        model refuses the channels-last one chosen for it (``_default_layout``); then, with
        ``fold_bn``, batchnorms are folded into convolutions for the rest of the block
        (``_fold_batchnorms``).
        """
        if self._capture is None:
            raise RuntimeError("use the Renderer inside a 'with' block")
        acts = self._first_pass(image)
        if self.fold_bn and not self.folded:
            self._fold_batchnorms(image)
        self.shapes = {name: tuple(act.shape[1:]) for name, act in acts.items()}
        self.objective.validate(self.shapes)
        if isinstance(self.objective, PerImage) and len(self.objective) != image.shape[0]:
            raise ValueError(
                f"{len(self.objective)} per-image objectives need a batch of "
                f"{len(self.objective)} images, got a batch of {image.shape[0]}"
            )
        return self.objective(acts)

    def _first_pass(self, image: Tensor) -> dict[str, Tensor]:
        """A full pass, in the default layout if the model refuses the channels-last we chose.

        When the model refuses the images and their channels differ from what its first
        convolution takes, the error says so (torch's own error is kept as its cause).
        """
        try:
            try:
                return self._full_pass(image)
            except RuntimeError:
                if not (self._auto_layout and self.channels_last):
                    raise
            self._default_layout()
            return self._full_pass(image)
        except RuntimeError as err:
            found = _first_conv(self.model)
            given = image.shape[1] if image.dim() == 4 else None
            if found is not None and given is not None and found[1].in_channels != given:
                name, conv = found
                raise ValueError(
                    f"channels={given}: the images have {given} channels, but the model's first "
                    f"convolution {name!r} expects {conv.in_channels}; use "
                    f"channels={conv.in_channels} (or leave channels unset)"
                ) from err
            raise

    def _full_pass(self, image: Tensor) -> dict[str, Tensor]:
        """One pass without the early stop.

        So that a module reused later in the pass is detected the same way whichever layers
        the objective reads.
        """
        capture = self._live()
        early, capture.early_stop = capture.early_stop, False
        try:
            return self._acts(image, transform=False)
        finally:
            capture.early_stop = early

    def _live(self) -> ActivationCapture:
        """The capture of the ``with`` block (a RuntimeError outside one)."""
        if self._capture is None or self._stack is None:
            raise RuntimeError("use the Renderer inside a 'with' block")
        return self._capture

    def _default_layout(self) -> None:
        """Re-enter the block with the default memory layout.

        For a model that cannot take channels-last tensors (a ``.view`` of its input, a
        contiguity check in an extension).
        """
        self.__exit__(None, None, None)
        self.channels_last = False
        self.__enter__()

    def _fold_batchnorms(self, image: Tensor) -> None:
        """Fold batchnorms into convs for the rest of the block (``midnite.engine._fold``)."""
        capture = self._live()
        keep = {ref.name for ref in capture.refs.values()}
        capture.close()  # the probe pass runs the whole model, unhooked
        try:
            # which pairs fold does not depend on the batch: probe with one image
            probe = image[:1] if self.view is None else self.view(image[:1])
            pairs = conv_bn_pairs(self.model, self._model_input(probe), keep)
        finally:
            capture.__enter__()
        assert self._stack is not None  # _live() checked it
        self.folded = self._stack.enter_context(folded(pairs))

    @torch.no_grad()
    def score(self, image: Tensor) -> Tensor:
        """The objective per image, without per-step transforms, ``(B,)``."""
        return self.objective(self._acts(image, transform=False))

    @torch.no_grad()
    def activations(self, image: Tensor) -> dict[str, Tensor]:
        """``{layer: activations}`` of every layer the renderer reads, without transforms."""
        return self._acts(image, transform=False)

    def loss(self, image: Tensor) -> tuple[Tensor, Tensor]:
        """``(loss, objective values)`` for a differentiable image batch."""
        acts = self._acts(image, transform=True)
        values = self._per_image(acts, image.shape[0])
        loss = -values.sum()
        for reg in self.regularizers:
            loss = loss + reg(image).sum()
        if self.penalty is not None:
            if self.penalty.layers and self.transforms is not None:
                acts = self._acts(image, transform=False)  # aligned with the init's
            loss = loss + self.penalty(image, acts).sum()
        return loss, values.detach()

    def _per_image(self, acts: dict[str, Tensor], batch: int) -> Tensor:
        """The objective per image, ``(batch,)``: the mean over each image's crops when the
        transforms made ``k * batch`` images (one objective call per crop index)."""
        k = next(iter(acts.values())).shape[0] // batch if acts else 1
        if k <= 1:
            return self.objective(acts)
        chunks = [
            self.objective({name: a[j * batch : (j + 1) * batch] for name, a in acts.items()})
            for j in range(k)
        ]
        return torch.stack(chunks).mean(0)


class InitPenalty:
    """Feature accentuation's pull towards the start images (Hamblin et al. 2024), ``(B,)``.

    ``weight`` · mean squared pixel distance of the image to ``init``, plus ``layer_weight`` ·
    mean squared distance of ``layer``'s activations to ``target``, the init's activations
    (computed once, without per-step transforms: ``set_target``). The layer term reads the
    untransformed image, aligned with the target: with per-step transforms that is a second
    forward and backward pass per step (up to the deepest layer read), without them the
    objective's pass serves both.

    Shape:
        init: (B, C, H, W); ``penalty(image, acts)`` -> (B,)
    """

    def __init__(
        self, init: Tensor, weight: float, layer: str | None = None, layer_weight: float = 0.0
    ) -> None:
        self.init = init
        self.weight = float(weight)
        self.layer = layer
        self.layer_weight = float(layer_weight)
        self.target: Tensor | None = None

    @property
    def layers(self) -> tuple[str, ...]:
        """The layers the penalty reads (captured with the objective's layers)."""
        return (self.layer,) if self.layer is not None and self.layer_weight > 0 else ()

    def to(self, device: torch.device) -> InitPenalty:
        """Move ``init`` (and ``target``) to ``device``; returns self."""
        self.init = self.init.to(device)
        if self.target is not None:
            self.target = self.target.to(device)
        return self

    def set_target(self, renderer: Renderer) -> None:
        """Compute the init's activations at ``layer`` once, inside the renderer's block."""
        if self.layers:
            self.target = renderer.activations(self.init)[self.layers[0]].detach().clone()

    def __call__(self, image: Tensor, acts: dict[str, Tensor]) -> Tensor:
        penalty = image.new_zeros(image.shape[0])
        if self.weight > 0:
            penalty = penalty + self.weight * (image - self.init).square().flatten(1).mean(1)
        if self.layers:
            if self.target is None:
                raise RuntimeError("InitPenalty.set_target(renderer) must run before the loss")
            act = acts[self.layers[0]]
            drift = (act - self.target).square().flatten(1).mean(1)
            penalty = penalty + self.layer_weight * drift
        return penalty

    def __repr__(self) -> str:
        layer = f", layer={self.layer!r}, layer_weight={self.layer_weight:g}" if self.layers else ""
        return f"InitPenalty(init {tuple(self.init.shape)}, weight={self.weight:g}{layer})"


def _first_conv(model: nn.Module) -> tuple[str, nn.modules.conv._ConvNd] | None:
    """``(name, module)`` of the model's first convolution, or None."""
    for name, module in model.named_modules():
        if isinstance(module, nn.modules.conv._ConvNd):
            return name, module
    return None
