"""The render engine: optimize an image parameterization so that an objective is maximized.

    parameterization -> per-step transforms -> normalize -> model (hooked, early stop)
      -> objective - regularizers -> loss -> optimizer

``Renderer`` is the one engine; ``render()`` (Lucid-style) and the seed's ``PixelActivation``
are thin layers over it. ``render()`` is ``RenderConfig.resolve`` (``midnite.engine.config``)
then ``render_config``. A KeyboardInterrupt is re-raised after the model has been restored.
"""

from __future__ import annotations

import math
import secrets
import time
from collections.abc import Callable, Iterable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import NamedTuple

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from midnite.engine._fold import conv_bn_pairs, folded
from midnite.engine._heap import retained_heap
from midnite.engine.config import RenderConfig, versions
from midnite.engine.device import resolve_device
from midnite.engine.hooks import ActivationCapture, frozen
from midnite.engine.normalize import Normalize, as_normalize
from midnite.engine.objectives import Objective, PerImage, as_objective
from midnite.engine.param import Parameterization
from midnite.engine.param import image as make_image
from midnite.engine.regularizers import Regularizer, check_regularizers

__all__ = [
    "Generators",
    "RenderResult",
    "Renderer",
    "generators",
    "make_generator",
    "render",
    "render_config",
    "versions",
]


def make_generator(seed: int, device: torch.device) -> torch.Generator:
    """A generator on ``device`` seeded with ``seed``."""
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(
            f"seed must be an int, a torch.Generator or None, got {type(seed).__name__}"
        )
    gen = torch.Generator(device=device)
    gen.manual_seed(seed)
    return gen


class Generators(NamedTuple):
    """The random sources of one render: its seed, and a generator for each kind of draw."""

    seed: int
    init: torch.Generator  # on the CPU: one seed starts from one image on any device
    step: torch.Generator  # on the render's device: per-step transforms


def generators(seed: int | torch.Generator | None, device: torch.device) -> Generators:
    """The generators of a render seeded with ``seed`` (None: a fresh random seed).

    A generator given as ``seed`` is used for the per-step draws as is; the start image comes
    from a CPU generator seeded with its initial seed.
    """
    if isinstance(seed, torch.Generator):
        value = seed.initial_seed()
        return Generators(value, make_generator(value, torch.device("cpu")), seed)
    if seed is None:
        seed = secrets.randbits(63)
    return Generators(seed, make_generator(seed, torch.device("cpu")), make_generator(seed, device))


# kept for visualization/methods.py until it uses engine.checks (its tests pin these messages)
def check_positive_int(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int >= 1, got {type(value).__name__}: {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be >= 1, got {value}")
    return value


# kept for visualization/methods.py until it uses engine.checks
def check_lr(lr: object) -> float:
    if isinstance(lr, bool) or not isinstance(lr, (int, float)):
        raise TypeError(f"lr must be a positive finite number, got {type(lr).__name__}: {lr!r}")
    if not math.isfinite(lr) or lr <= 0:
        raise ValueError(f"lr must be a positive finite number, got {lr!r}")
    return float(lr)


class Renderer:
    """A frozen, hooked model plus an objective: computes the loss of an image batch.

    Enter it as a context manager: the model is frozen (eval mode, no parameter gradients,
    moved to ``device`` with its original tensors kept) and hooked; ``validate()``, the first
    pass, also folds batchnorms into convolutions (``fold_bn``). On exit every change is
    undone, also after an exception or a KeyboardInterrupt.
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
    ):
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        self.model = model
        self.objective = as_objective(objective)
        self.transforms = transforms
        self.regularizers = check_regularizers(list(regularizers))
        self.device = resolve_device(device)
        self.normalize: Normalize | None = as_normalize(normalize)
        if self.normalize is not None:
            self.normalize = self.normalize.to(self.device)
        self.generator = generator
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
            self._capture = stack.enter_context(
                ActivationCapture(self.model, self.objective.layers, early_stop=self.early_stop)
            )
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
        return self._capture(self._model_input(x))

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
        """A full pass, in the default layout if the model refuses the channels-last we chose."""
        try:
            return self._full_pass(image)
        except RuntimeError:
            if not (self._auto_layout and self.channels_last):
                raise
        self._default_layout()
        return self._full_pass(image)

    def _full_pass(self, image: Tensor) -> dict[str, Tensor]:
        """One pass without the early stop.

        So that a module reused later in the pass is detected the same way whichever layers
        the objective reads.
        """
        early, self._capture.early_stop = self._capture.early_stop, False
        try:
            return self._acts(image, transform=False)
        finally:
            self._capture.early_stop = early

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
        keep = {ref.name for ref in self._capture.refs.values()}
        self._capture.close()  # the probe pass runs the whole model, unhooked
        try:
            # which pairs fold does not depend on the batch: probe with one image
            pairs = conv_bn_pairs(self.model, self._model_input(image[:1]), keep)
        finally:
            self._capture.__enter__()
        self.folded = self._stack.enter_context(folded(pairs))

    @torch.no_grad()
    def score(self, image: Tensor) -> Tensor:
        """The objective per image, without per-step transforms, ``(B,)``."""
        return self.objective(self._acts(image, transform=False))

    def loss(self, image: Tensor) -> tuple[Tensor, Tensor]:
        """``(loss, objective values)`` for a differentiable image batch."""
        values = self.objective(self._acts(image, transform=True))
        loss = -values.sum()
        for reg in self.regularizers:
            loss = loss + reg(image).sum()
        return loss, values.detach()


def _make_optimizer(
    optimizer: str | Callable[..., torch.optim.Optimizer], params: list[Tensor], lr: float
) -> torch.optim.Optimizer:
    if callable(optimizer):
        return optimizer(params, lr=lr)
    if optimizer == "adam":
        try:  # one fused kernel per step instead of one per elementwise operation
            return torch.optim.Adam(params, lr=lr, fused=True)
        except (RuntimeError, ValueError):  # a torch or device without the fused kernel
            return torch.optim.Adam(params, lr=lr)
    raise ValueError(f"optimizer must be 'adam' or a callable(params, lr=...), got {optimizer!r}")


@dataclass
class RenderResult:
    """What ``render`` made: images, the objective's history and how they were made.

    Attributes:
        images: ``(B, C, H, W)`` float tensor on the CPU, values in [0, 1].
        history: ``(steps, B)`` objective per image at each step (on transformed images).
        start: ``(B,)`` objective on the start images; ``final``: on the results (no transforms).
        settings: every setting that decides the images, with the seed; JSON-serializable.
    """

    images: Tensor
    history: Tensor
    start: Tensor
    final: Tensor
    settings: dict = field(default_factory=dict)
    seconds: float = 0.0

    def __len__(self) -> int:
        return self.images.shape[0]

    def __repr__(self) -> str:
        b, c, h, w = self.images.shape
        return (
            f"RenderResult({b} image(s) {c}x{h}x{w}, {self.history.shape[0]} steps, "
            f"objective {self.start.mean():.4g} -> {self.final.mean():.4g}, "
            f"seed={self.settings.get('seed')})"
        )


def render(
    model: nn.Module,
    objective: Objective | Sequence[Objective],
    *,
    size: int | Sequence[int] = 224,
    batch: int | None = None,
    steps: int | None = None,
    lr: float | None = None,
    param: str | None = None,
    decorrelate: bool | None = None,
    transforms: str | Callable[..., Tensor] | None = "recipe",
    regularizers: Sequence[Regularizer] = (),
    optimizer: str | Callable[..., torch.optim.Optimizer] = "adam",
    normalize: object = None,
    channels: int | None = None,
    device: str | torch.device | None = None,
    seed: int | torch.Generator | None = 0,
    early_stop: bool = True,
    fold_bn: bool = True,
    progress: bool = True,
) -> RenderResult:
    """Render images that maximize ``objective`` on ``model``.

    The same as ``render_config(model, RenderConfig.resolve(model, objective, **settings))``:
    build the config that way to inspect it, change it (``config.replace``) or run it again.

    Args:
        model: any ``nn.Module`` taking ``(B, C, H, W)`` images (with ``normalize``, [0, 1]).
        objective: an Objective (``midnite.engine.objectives``), or a list of them: one per image.
        size: ``H`` or ``(H, W)`` of the images.
        batch: number of images; defaults to the list's length, else 1.
        steps, lr, optimizer: the optimization ("adam" or ``callable(params, lr=...)``).
        param: "fourier" (spectrum with a 1/f prior) or "pixel"; decorrelate: colour decorrelation.
        transforms: per-step robustness transforms: "standard", None, or a Transform.
        Unset ``steps``, ``lr``, ``param``, ``decorrelate`` and ``transforms`` come from the
        recipe (``midnite.engine.recipes``): the class recipe when the objective reads only the
        model's output, the feature recipe otherwise.
        regularizers: penalties such as ``TotalVariation(1.0)`` on the image.
        normalize: None, "imagenet" or ``(mean, std)`` applied before the model.
        channels: image channels; default: the model's first convolution's input channels.
        device: default: the ``midnite.device`` context (cpu).
        seed: an int (default 0) or generator; one seed on one device gives one image.
        early_stop: end each forward pass after the deepest layer the objective reads.
        fold_bn: fold eval-mode batchnorms into the convolutions that feed them for the run
            (same values to float rounding; the model is left as it was).
        progress: show a tqdm bar.

    Returns:
        A :class:`RenderResult`.
    """
    config = RenderConfig.resolve(
        model,
        objective,
        size=size,
        batch=batch,
        steps=steps,
        lr=lr,
        param=param,
        decorrelate=decorrelate,
        transforms=transforms,
        regularizers=regularizers,
        optimizer=optimizer,
        normalize=normalize,
        channels=channels,
        device=device,
        seed=seed,
        early_stop=early_stop,
        fold_bn=fold_bn,
    )
    return render_config(model, config, progress=progress)


def render_config(model: nn.Module, config: RenderConfig, *, progress: bool = True) -> RenderResult:
    """Render with the settings of ``config`` (``RenderConfig.resolve``); see :func:`render`.

    ``RenderResult.settings`` is ``config.to_json()``.
    """
    if not isinstance(config, RenderConfig):
        raise TypeError(
            f"config must be a RenderConfig (RenderConfig.resolve(model, objective, ...)), "
            f"got {type(config).__name__}"
        )
    dev = config.device
    gens = generators(config.seed, dev)
    image = make_image(
        *config.size,
        batch=config.batch,
        channels=config.channels,
        fft=config.param == "fourier",
        decorrelate=config.decorrelate,
        generator=gens.init,
    ).to(dev)
    transforms = config.transforms
    if isinstance(transforms, nn.Module):
        transforms = transforms.to(dev)
    renderer = Renderer(
        model,
        config.objective,
        transforms=transforms,
        regularizers=config.regularizers,
        normalize=config.normalize,
        device=dev,
        generator=gens.step,
        early_stop=config.early_stop,
        fold_bn=config.fold_bn,
    )
    optim = _make_optimizer(config.optimizer, list(image.parameters()), config.lr)
    settings = config.to_json()
    began = time.perf_counter()
    start, history, final, result = _optimize(renderer, image, optim, config.steps, progress)
    return RenderResult(
        images=result.clamp(0, 1).cpu(),
        history=history.cpu(),
        start=start.cpu(),
        final=final.float().cpu(),
        settings=settings,
        seconds=time.perf_counter() - began,
    )


def _optimize(
    renderer: Renderer,
    image: Parameterization,
    optim: torch.optim.Optimizer,
    steps: int,
    progress: bool,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """The loop: ``(start, history, final)`` objective values and the resulting images."""
    history = torch.empty(steps, image.batch, device=renderer.device)
    with renderer:
        with torch.no_grad():
            start = renderer.validate(image()).float()
        for i in progress_range(steps, progress, "render"):
            optim.zero_grad(set_to_none=True)
            loss, values = renderer.loss(image())
            loss.backward()
            optim.step()
            history[i] = values
        with torch.no_grad():
            result = image()
            final = renderer.score(result)
    return start, history, final, result.detach()


def progress_range(n: int, progress: bool, desc: str) -> Iterable[int]:
    """``range(n)``, under a tqdm bar when ``progress``."""
    return tqdm(range(n), desc=desc, leave=False) if progress else range(n)
