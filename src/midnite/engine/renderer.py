"""The render engine: optimize an image parameterization so that an objective is maximized.

    parameterization -> per-step transforms -> normalize -> model (hooked, early stop)
      -> objective - regularizers -> loss -> optimizer

``Renderer`` is the one engine; ``render()`` (Lucid-style) and the classic ``PixelActivation``
are thin layers over it. ``render()`` is ``RenderConfig.resolve`` (``midnite.engine.config``)
then ``render_config``. A KeyboardInterrupt is re-raised after the model has been restored.

A render whose objective or image turns non-finite (NaN or infinite) is reported, not returned
as if it had worked: ``RenderResult.failed`` names each failed image and why (a RuntimeWarning
says so too). The check runs once, after the last step, on values the render keeps anyway, so
the step loop has no host synchronization. ``estimate_memory`` tells how much memory a render
will need before it starts.

Every render also returns an attribution alpha map (``RenderResult.alpha``): the gradient of the
loss at the parameterization's output, accumulated during the backward passes the optimizer
needs anyway (a tensor hook: no extra pass). Feature accentuation starts from given images
(``init``) and keeps the result near them (``InitPenalty``).
"""

from __future__ import annotations

import itertools
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import NamedTuple, cast

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from midnite.engine._fold import conv_bn_pairs, folded
from midnite.engine._heap import retained_heap
from midnite.engine.config import RenderConfig, _check_seed, versions
from midnite.engine.device import resolve_device
from midnite.engine.hooks import ActivationCapture, frozen
from midnite.engine.normalize import Normalize, as_normalize
from midnite.engine.objectives import Objective, PerImage, as_objective
from midnite.engine.param import MacoImage, Parameterization
from midnite.engine.param import image as make_image
from midnite.engine.recipes import Recipe
from midnite.engine.regularizers import Regularizer, check_regularizers
from midnite.engine.transforms import Compose, RandomCrops, Transform

__all__ = [
    "Generators",
    "InitPenalty",
    "MemoryEstimate",
    "RenderResult",
    "Renderer",
    "estimate_memory",
    "generators",
    "make_generator",
    "render",
    "render_config",
    "versions",
]


def make_generator(seed: int, device: torch.device) -> torch.Generator:
    """A generator on ``device`` seeded with ``seed``, an int in [0, 2**63)."""
    if isinstance(seed, torch.Generator) or seed is None:
        raise TypeError(f"seed must be an int in [0, 2**63), got {type(seed).__name__}")
    return _seeded(_check_seed(seed), device)  # type: ignore[arg-type]


def _seeded(seed: int, device: torch.device) -> torch.Generator:
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
    if isinstance(seed, torch.Generator):  # torch seeds may reach 2**64 - 1: taken as they are
        value = seed.initial_seed()
        return Generators(value, _seeded(value, torch.device("cpu")), seed)
    value = cast(int, _check_seed(seed))  # None: a fresh random seed
    return Generators(value, _seeded(value, torch.device("cpu")), _seeded(value, device))


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
        alpha: ``(B, H, W)`` float32 attribution map on the CPU, >= 0: ``|d loss / d image|`` at
            the parameterization's output (before per-step transforms; at its full size),
            averaged over colour channels and summed over all steps. The loss is the one the
            optimizer follows: the objective, regularizers and init penalties (where the
            penalties balance the objective, the map is small). Zero where no step's loss read a
            pixel; all zero after 0 steps. Unnormalized: compare maps of one render, or divide
            by the maximum. The alpha of a failed image is no result either (may hold NaN).
        settings: every setting that decides the images, with the seed; JSON-serializable.
        failed: ``{image index: reason}`` of the images whose objective or pixels turned
            non-finite (NaN or infinite); such an image may hold NaN and is no result. Empty
            when every image is fine (``ok``).
    """

    images: Tensor
    history: Tensor
    start: Tensor
    final: Tensor
    alpha: Tensor
    settings: dict = field(default_factory=dict)
    seconds: float = 0.0
    failed: dict[int, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """Whether every image is a result (``failed`` is empty)."""
        return not self.failed

    def __len__(self) -> int:
        return self.images.shape[0]

    def __repr__(self) -> str:
        b, c, h, w = self.images.shape
        failed = f", failed: {sorted(self.failed)}" if self.failed else ""
        return (
            f"RenderResult({b} image(s) {c}x{h}x{w}, {self.history.shape[0]} steps, "
            f"objective {self.start.mean():.4g} -> {self.final.mean():.4g}, "
            f"seed={self.settings.get('seed')}{failed})"
        )


def _failures(
    start: Tensor, history: Tensor, final: Tensor, image: Tensor, alpha: Tensor | None = None
) -> dict[int, str]:
    """``{index: reason}`` of the images whose objective, pixels or alpha map are not finite.

    ``image`` is the raw result, before the clamp to [0, 1] (which would turn inf into 1).
    One check over values the render keeps anyway: no synchronization inside the step loop.
    """
    bad_start = ~torch.isfinite(start)
    bad_history = ~torch.isfinite(history)
    bad_final = ~torch.isfinite(final)
    bad_pixels = (~torch.isfinite(image)).flatten(1).sum(1).cpu()
    bad_alpha = torch.zeros_like(bad_start)
    if alpha is not None:
        bad_alpha = (~torch.isfinite(alpha)).flatten(1).any(1).cpu()
    bad = bad_start | bad_history.any(0) | bad_final | (bad_pixels > 0) | bad_alpha
    if not bool(bad.any()):
        return {}
    steps = history.shape[0]
    pixels = image[0].numel()
    failed = {}
    for i in bad.nonzero().flatten().tolist():
        if bad_start[i]:
            reason = (
                f"the objective is {float(start[i])} on the start image (the model or the "
                "objective gives non-finite values)"
            )
        elif bad_history[:, i].any():
            k = int(bad_history[:, i].nonzero()[0, 0])
            reason = (
                f"the objective turned {float(history[k, i])} at step {k + 1} of {steps} "
                "(the optimization diverged: try a smaller lr)"
            )
        elif bad_pixels[i]:
            reason = f"the image holds non-finite values ({int(bad_pixels[i])} of {pixels})"
        elif bad_alpha[i]:
            reason = "the loss's gradient turned non-finite (the alpha map holds NaN or inf)"
        else:
            reason = f"the objective is {float(final[i])} on the final image"
        failed[i] = reason
    return failed


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
    regularizers: Sequence[Regularizer] | None = (),
    optimizer: str | Callable[..., torch.optim.Optimizer] = "adam",
    normalize: object = None,
    channels: int | None = None,
    device: str | torch.device | None = None,
    seed: int | torch.Generator | None = 0,
    early_stop: bool = True,
    fold_bn: bool = True,
    init: Tensor | None = None,
    init_penalty: float = 0.0,
    init_layer: str | None = None,
    init_layer_penalty: float = 0.0,
    progress: bool = True,
    recipe: str | Recipe | None = None,
    canvas: int | Sequence[int] | None = None,
    crops: int | None = None,
    crop_scale: Sequence[float] | None = None,
    crop_noise: float | None = None,
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
        param: "fourier" (spectrum with a 1/f prior), "pixel" or "maco" (natural images'
            Fourier magnitude, trained phase); decorrelate: colour decorrelation.
        transforms: per-step robustness transforms: "standard", None, or a Transform.
        Unset ``steps``, ``lr``, ``param``, ``decorrelate`` and ``transforms`` come from the
        recipe (``midnite.engine.recipes``): ``recipe`` (a name such as "natural", or a
        Recipe), else the class recipe when the objective reads only the model's output, the
        feature recipe otherwise.
        canvas: ``H`` or ``(H, W)`` of the images when they are larger than ``size`` (default:
            the recipe's; ``param="maco"`` gets ``recipes.MACO_CROPS``): each step the model
            sees ``crops`` random boxes of each image, a fraction in ``crop_scale`` of its side,
            resized to ``size``, plus N(0, ``crop_noise``) noise; the objective is their mean
            and the images come back at canvas size (``final`` is scored on them resized).
        regularizers: penalties such as ``TotalVariation(1.0)`` on the image (None: none).
        normalize: None, "imagenet" or ``(mean, std)`` applied before the model.
        channels: image channels; default: the model's first convolution's input channels.
        device: default: the ``midnite.device`` context (cpu).
        seed: an int in [0, 2**63) (default 0) or a generator; one seed on one device gives one
            image.
        early_stop: end each forward pass after the deepest layer the objective reads.
        fold_bn: fold eval-mode batchnorms into the convolutions that feed them for the run
            (same values to float rounding; the model is left as it was).
        init: feature accentuation: ``(B, C, H, W)`` or ``(C, H, W)`` images in [0, 1] (uint8:
            0-255) of the render's size to start from, written exactly into the
            parameterization ("pixel" or "fourier"; a sigmoid keeps values within 1e-4 of
            [0, 1]). With it ``steps=0`` returns the init.
        init_penalty: λ >= 0: adds λ · mean squared pixel distance to ``init`` to the loss. It
            weighs against the objective, so its scale follows the objective's: on
            EfficientNet-Lite0 ``_blocks.8`` channel 5 (values ~5-20; a 160 px photo, 64 steps)
            λ = 1e5 kept SSIM 0.98 to the photo while the channel doubled, 1e4 gave SSIM 0.86,
            0 gave 0.54.
        init_layer, init_layer_penalty: a layer name and μ > 0: adds μ · mean squared distance
            of that layer's activations to the init's (computed once) to the loss.
        progress: show a tqdm bar.

    Returns:
        A :class:`RenderResult`; images whose objective or pixels turned non-finite are named
        in its ``failed`` (with a RuntimeWarning), not returned as results.
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
        init=init,
        init_penalty=init_penalty,
        init_layer=init_layer,
        init_layer_penalty=init_layer_penalty,
        recipe=recipe,
        canvas=canvas,
        crops=crops,
        crop_scale=crop_scale,
        crop_noise=crop_noise,
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
    image, renderer = _setup(model, config, config.objective, config.batch, config.seed)
    optim = _make_optimizer(config.optimizer, list(image.parameters()), config.lr)
    settings = config.to_json()
    began = time.perf_counter()
    start, history, final, result, alpha = _optimize(renderer, image, optim, config.steps, progress)
    history, start, final, alpha = history.cpu(), start.cpu(), final.float().cpu(), alpha.cpu()
    seconds = time.perf_counter() - began
    failed = _failures(start, history, final, result, alpha)
    if failed:
        first = min(failed)
        warnings.warn(
            f"render: {len(failed)} of {config.batch} image(s) failed, image {first}: "
            f"{failed[first]}; see RenderResult.failed",
            RuntimeWarning,
            stacklevel=2,
        )
    return RenderResult(
        images=result.clamp(0, 1).cpu(),
        history=history,
        start=start,
        final=final,
        alpha=alpha,
        settings=settings,
        seconds=seconds,
        failed=failed,
    )


def _setup(
    model: nn.Module,
    config: RenderConfig,
    objective: Objective,
    batch: int,
    seed: int | torch.Generator | None,
) -> tuple[Parameterization, Renderer]:
    """The start images (``batch`` of them, from ``seed``) and the renderer of ``config``."""
    dev = resolve_device(config.device)  # the config's own device, typed as one
    gens = generators(seed, dev)
    shape = config.canvas or config.size
    if config.param == "maco":
        image: Parameterization = MacoImage(
            *shape,
            batch=batch,
            channels=config.channels,
            decorrelate=config.decorrelate,
            generator=gens.init,
        )
    else:
        image = make_image(
            *shape,
            batch=batch,
            channels=config.channels,
            fft=config.param == "fourier",
            decorrelate=config.decorrelate,
            generator=gens.init,
        )
    penalty = None
    if config.init is not None:  # feature accentuation: start from the init, exactly
        init = config.init
        init = init[:batch] if init.shape[0] >= batch else init.expand(batch, -1, -1, -1)
        set_image = getattr(image, "set_image_", None)
        if set_image is None:  # the config allows init only where the param has one
            raise ValueError(f"init: {type(image).__name__} cannot be set to an image exactly")
        set_image(init)
        penalty = InitPenalty(
            init, config.init_penalty, config.init_layer, config.init_layer_penalty
        ).to(dev)
    image = image.to(dev)
    transforms, view = _with_crops(config)
    if isinstance(transforms, nn.Module):
        transforms = transforms.to(dev)
    renderer = Renderer(
        model,
        objective,
        transforms=transforms,
        regularizers=config.regularizers,
        normalize=config.normalize,
        device=dev,
        generator=gens.step,
        early_stop=config.early_stop,
        fold_bn=config.fold_bn,
        penalty=penalty,
        view=view,
    )
    return image, renderer


def _with_crops(
    config: RenderConfig,
) -> tuple[Callable[..., Tensor] | None, Callable[[Tensor], Tensor] | None]:
    """The per-step transforms of ``config`` behind its random crops, and the view of the
    canvas at the model's input size (both as they are without a canvas)."""
    if config.canvas is None:
        return config.transforms, None
    crops = RandomCrops(config.size, config.crops, config.crop_scale, config.crop_noise)
    after = config.transforms
    if after is None:
        return crops, crops.view
    if isinstance(after, Transform):
        return Compose(crops, after), crops.view

    def both(x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        return after(crops(x, generator), generator)

    return both, crops.view


def _optimize(
    renderer: Renderer,
    image: Parameterization,
    optim: torch.optim.Optimizer,
    steps: int,
    progress: bool,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """The loop: ``(start, history, final)`` objective values, the images and the alpha maps."""
    history = torch.empty(steps, image.batch, device=renderer.device)
    # |grad| summed per channel (one elementwise op per step), averaged over channels at the
    # end; shaped like the parameterization's output, whatever size that is
    sums: list[Tensor] = []

    def accumulate(grad: Tensor) -> None:  # d loss / d image, in the backward pass
        if sums:
            sums[0].add_(grad.detach().abs())
        else:
            sums.append(grad.detach().abs())

    with renderer:
        with torch.no_grad():
            start = renderer.validate(image()).float()
        if renderer.penalty is not None:
            renderer.penalty.set_target(renderer)
        for i in progress_range(steps, progress, "render"):
            optim.zero_grad(set_to_none=True)
            out = image()
            out.register_hook(accumulate)
            loss, values = renderer.loss(out)
            loss.backward()
            optim.step()
            history[i] = values
        with torch.no_grad():
            result = image()
            final = renderer.score(result)
    alpha = sums[0].mean(1) if sums else torch.zeros_like(result[:, 0])
    return start, history, final, result.detach(), alpha.float()


@dataclass(frozen=True)
class MemoryEstimate:
    """The memory a render needs on its device, in bytes: ``fixed + per_image * batch``.

    ``per_image`` is what each image adds: the activations kept for the backward pass and the
    gradients that flow through them, the image's parameters with their gradient and optimizer
    state, and its objective history; ``fixed`` what does not grow with the batch (the model's
    weights, moved or folded for the render). An estimate from one probe pass, not a promise.
    """

    per_image: int
    fixed: int

    def bytes(self, batch: int) -> int:
        """The bytes a render of ``batch`` images needs."""
        return self.fixed + self.per_image * batch

    def max_batch(self, available: int) -> int:
        """The largest batch that fits in ``available`` bytes (0 when not even one does)."""
        return max(0, (available - self.fixed) // max(1, self.per_image))


# The peak of a step holds what autograd saved plus the gradients and layout copies in flight
# and what the heap cannot hand back between them (2x what was saved), and image-sized
# temporaries of the parameterization and per-step transforms that are not all saved (spectrum,
# colours, jitter, scale, rotation: 8 images' worth). Measured on the CPU as resident memory per
# image (a 2-conv net at 1024 px, plain and residual conv nets at 256-512 px, EfficientNet-Lite0
# at 224-448 px; batch 1 to 8), the estimate stayed within about 1.5x of the peak both ways.
_BACKWARD_FACTOR = 2.0
_IMAGE_TEMPORARIES = 8


def estimate_memory(model: nn.Module, config: RenderConfig) -> MemoryEstimate:
    """Estimate the memory ``render_config(model, config)`` will need, before running it.

    One probe step at batch 1, with the config's size, objective (the first, for per-image
    objectives), transforms and regularizers: the tensors autograd saves for the backward pass
    are summed (on CUDA the allocator's measured peak is used instead), then scaled by the
    gradients in flight. The model is left as it was, as by a render.
    """
    if not isinstance(config, RenderConfig):
        raise TypeError(f"config must be a RenderConfig, got {type(config).__name__}")
    objective = config.objective
    if isinstance(objective, PerImage):
        objective = objective.objectives[0]
    # one image; the probe's values do not matter, only its sizes
    image, renderer = _setup(model, config, objective, 1, 0)
    dev = renderer.device
    weights = sum(t.numel() * t.element_size() for t in itertools.chain(
        model.parameters(), model.buffers()))  # fmt: skip
    params = sum(p.numel() * p.element_size() for p in image.parameters())
    saved: dict[int, int] = {}

    def pack(t: Tensor) -> Tensor:
        storage = t.untyped_storage()
        saved[storage.data_ptr()] = storage.nbytes()
        return t

    cuda = dev.type == "cuda"
    with renderer:
        with torch.no_grad():
            renderer.validate(image())
        if renderer.penalty is not None:
            renderer.penalty.set_target(renderer)
        resident = {
            t.untyped_storage().data_ptr()
            for t in itertools.chain(model.parameters(), model.buffers())
        }
        if cuda:
            torch.cuda.synchronize(dev)
            torch.cuda.reset_peak_memory_stats(dev)
            base = torch.cuda.memory_allocated(dev)
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            loss, _ = renderer.loss(image())
        loss.backward()
        if cuda:
            peak = torch.cuda.max_memory_allocated(dev) - base
    kept = sum(n for ptr, n in saved.items() if ptr and ptr not in resident)
    pixels = config.channels * config.size[0] * config.size[1] * 4  # one float32 image
    activations = peak if cuda else int(kept * _BACKWARD_FACTOR) + _IMAGE_TEMPORARIES * pixels
    history = 4 * config.steps  # float32 per step
    alpha = 4 * config.channels * config.size[0] * config.size[1]  # the alpha map, per channel
    return MemoryEstimate(per_image=activations + 4 * params + history + alpha, fixed=weights)


def progress_range(n: int, progress: bool, desc: str) -> Iterable[int]:
    """``range(n)``, under a tqdm bar when ``progress``."""
    return tqdm(range(n), desc=desc, leave=False) if progress else range(n)
