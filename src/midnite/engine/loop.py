"""The render loop: ``render``, ``render_config`` and the public step loop ``render_steps``.

    render(model, objective, **settings)
      = render_config(model, RenderConfig.resolve(model, objective, **settings))
      = the RenderResult at the end of steps_config(model, config): the one loop

``render_steps`` / ``steps_config`` are generators of ``StepState`` (one per optimizer step,
and step 0 when asked for as a snapshot); ``gen.send(True)`` stops the render, which then ends
like a full one and returns its ``RenderResult`` (``StopIteration.value``). The model is
restored when the generator ends, is closed, is garbage-collected, or raises. The loop adds no
host synchronization per step: objective values stay on the render's device until a caller
reads ``StepState.objective``, and images are copied to the CPU only at the snapshot steps.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import numbers
import time
import warnings
from collections.abc import Callable, Generator, Iterable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from midnite.engine.accel import accel_plan
from midnite.engine.config import RenderConfig, check_settings
from midnite.engine.device import resolve_device
from midnite.engine.objectives import Objective
from midnite.engine.param import MacoImage, Parameterization
from midnite.engine.param import image as make_image
from midnite.engine.passes import InitPenalty, Renderer
from midnite.engine.result import RenderResult, _failures
from midnite.engine.seeds import generators
from midnite.engine.transforms import Compose, RandomCrops, Transform

__all__ = ["StepState", "render", "render_config", "render_steps", "steps_config"]


@dataclass(frozen=True, eq=False)
class StepState:
    """The state of a render after one optimizer step (``step`` 1..steps; 0: the start).

    ``values``: the objective per image ``(B,)`` at this step (on the transformed images, as
    in ``RenderResult.history``), on the render's device; ``objective`` is the same on the CPU,
    moved when first read. ``images``: ``(B, C, H, W)`` in [0, 1] on the CPU after this step,
    at the steps asked for as ``snapshots`` only (else None).
    """

    step: int
    values: Tensor
    images: Tensor | None = None

    @functools.cached_property
    def objective(self) -> Tensor:
        """The objective per image ``(B,)`` at this step, float32 on the CPU."""
        return self.values.detach().float().cpu()


RenderSteps = Generator[StepState, "bool | None", RenderResult]
"""What ``render_steps`` returns: yields ``StepState``; ``send(True)`` stops; returns the result."""


def render(
    model: nn.Module,
    objective: Objective | Sequence[Objective],
    *,
    progress: bool = True,
    callback: Callable[[StepState], object] | None = None,
    snapshots: Iterable[int] = (),
    **settings: object,
) -> RenderResult:
    """Render images that maximize ``objective`` on ``model``.

    The same as ``render_config(model, RenderConfig.resolve(model, objective, **settings))``:
    build the config that way to inspect it, change it (``config.replace``) or run it again.
    ``progress``: show a tqdm bar. ``callback(state)`` is called with each ``StepState``
    (after every step; also at step 0 when 0 is in ``snapshots``); returning True stops the
    render there, which returns the images at that point (``history`` has the steps done).
    ``snapshots``: steps (0: the start images) whose images ``RenderResult.snapshots`` holds.

    Returns:
        A :class:`RenderResult`; images whose objective or pixels turned non-finite are named
        in its ``failed`` (with a RuntimeWarning), not returned as results.
    """
    check_settings("render", settings)
    config = RenderConfig.resolve(model, objective, **settings)  # type: ignore[arg-type]
    return render_config(model, config, progress=progress, callback=callback, snapshots=snapshots)


def render_config(
    model: nn.Module,
    config: RenderConfig,
    *,
    progress: bool = True,
    callback: Callable[[StepState], object] | None = None,
    snapshots: Iterable[int] = (),
) -> RenderResult:
    """Render with the settings of ``config`` (``RenderConfig.resolve``); see :func:`render`.

    It drains ``steps_config(model, config)``. ``RenderResult.settings`` is ``config.to_json()``.
    """
    if callback is not None and not callable(callback):
        raise TypeError(
            f"callback must be a callable(state) or None, got {type(callback).__name__}"
        )
    stream = steps_config(model, config, snapshots=snapshots, progress=progress)
    try:
        state = next(stream)
        while True:
            stop = callback is not None and callback(state) is True
            state = stream.send(stop)
    except StopIteration as end:
        return end.value
    finally:
        stream.close()  # a callback that raised: the model is restored before it propagates


def render_steps(
    model: nn.Module,
    objective: Objective | Sequence[Objective],
    *,
    snapshots: Iterable[int] = (),
    progress: bool = False,
    **settings: object,
) -> RenderSteps:
    """The render's step loop as a generator of ``StepState`` (settings as for ``render``).

    ``for state in render_steps(model, obj, steps=64, snapshots=(0, 32, 64)): ...`` sees each
    step; ``state.images`` holds the images at the snapshot steps. Stop early with ``break``
    or ``gen.close()`` (the model is restored), or with ``gen.send(True)``, after which the
    generator returns the ``RenderResult`` of the steps done (``StopIteration.value``).
    """
    check_settings("render_steps", settings)
    config = RenderConfig.resolve(model, objective, **settings)  # type: ignore[arg-type]
    return steps_config(model, config, snapshots=snapshots, progress=progress)


def steps_config(
    model: nn.Module,
    config: RenderConfig,
    *,
    snapshots: Iterable[int] = (),
    progress: bool = False,
) -> RenderSteps:
    """``render_steps`` with the settings of ``config``; the arguments are checked here, the
    model is touched only when iteration starts."""
    if not isinstance(config, RenderConfig):
        raise TypeError(
            f"config must be a RenderConfig (RenderConfig.resolve(model, objective, ...)), "
            f"got {type(config).__name__}"
        )
    return _run(model, config, _check_snapshots(snapshots, config.steps), progress)


def _check_snapshots(snapshots: object, steps: int) -> frozenset[int]:
    """``snapshots`` as a set of steps in [0, ``steps``]."""
    if isinstance(snapshots, (str, bytes)) or not isinstance(snapshots, Iterable):
        raise TypeError(
            f"snapshots must be steps (ints in [0, {steps}]), e.g. (0, 10), got "
            f"{type(snapshots).__name__} {snapshots!r}"
        )
    given: list[int] = []
    for s in snapshots:
        if isinstance(s, bool) or not isinstance(s, numbers.Integral):
            raise TypeError(f"snapshots must hold ints (steps), got {type(s).__name__} {s!r}")
        if not 0 <= int(s) <= steps:
            raise ValueError(
                f"snapshots must be steps in [0, {steps}] (0: the start images), got {s}"
            )
        given.append(int(s))
    return frozenset(given)


class _AlphaSum:
    """``|d loss / d image|`` summed over the steps, per channel (one elementwise op per step),
    averaged over channels at the end: ``RenderResult.alpha``."""

    def __init__(self) -> None:
        self.sum: Tensor | None = None

    def add(self, grad: Tensor) -> None:  # a tensor hook: called in the backward pass
        if self.sum is None:
            self.sum = grad.detach().abs()
        else:
            self.sum.add_(grad.detach().abs())

    def map(self, result: Tensor) -> Tensor:
        """``(B, H, W)`` float32 on the CPU (zero after 0 steps)."""
        alpha = self.sum.mean(1) if self.sum is not None else torch.zeros_like(result[:, 0])
        return alpha.float().cpu()


@torch.no_grad()
def _snapshot(image: Parameterization) -> Tensor:
    return image().detach().clamp(0, 1).float().cpu()


def _run(
    model: nn.Module, config: RenderConfig, snapshots: frozenset[int], progress: bool
) -> RenderSteps:
    """The loop: yields a ``StepState`` per step (a sent True stops), returns the result."""
    image, renderer = _setup(model, config, config.objective, config.batch, config.seed)
    optim = _make_optimizer(config.optimizer, list(image.parameters()), config.lr)
    settings, began = config.to_json(), time.perf_counter()
    history = torch.empty(config.steps, image.batch, device=renderer.device)
    alpha, done, stop = _AlphaSum(), 0, False
    shots: dict[int, Tensor] = {}
    bar = tqdm(total=config.steps, desc="render", leave=False) if progress else None
    try:
        with renderer:
            with torch.no_grad():
                start = renderer.validate(image()).float()
            if renderer.penalty is not None:
                renderer.penalty.set_target(renderer)
            if 0 in snapshots:
                shots[0] = _snapshot(image)
                stop = bool((yield StepState(0, start, shots[0])))
            while done < config.steps and not stop:
                optim.zero_grad(set_to_none=True)
                out = image()
                out.register_hook(alpha.add)
                loss, values = renderer.loss(out)
                loss.backward()
                optim.step()
                history[done] = values
                done += 1
                if bar is not None:
                    bar.update()
                shot = _snapshot(image) if done in snapshots else None
                if shot is not None:
                    shots[done] = shot
                stop = bool((yield StepState(done, values, shot)))
            with torch.no_grad():
                raw = image().detach()
                final = renderer.score(raw).float()
    finally:
        if bar is not None:
            bar.close()
    # a render stopped early keeps only its rows (a copy: not the whole buffer's storage)
    rows = history if done == config.steps else history[:done].clone()
    return _result(settings, began, start, rows, final, raw, alpha.map(raw), shots)


def _result(
    settings: dict,
    began: float,
    start: Tensor,
    history: Tensor,
    final: Tensor,
    raw: Tensor,
    alpha: Tensor,
    snapshots: dict[int, Tensor],
) -> RenderResult:
    """The result of a loop; images whose values turned non-finite are named (and warned of).

    ``raw`` is the result before the clamp to [0, 1] (which would turn inf into 1).
    """
    start, history, final = start.cpu(), history.cpu(), final.cpu()
    failed = _failures(start, history, final, raw, alpha)
    if failed:
        first = min(failed)
        warnings.warn(
            f"render: {len(failed)} of {raw.shape[0]} image(s) failed, image {first}: "
            f"{failed[first]}; see RenderResult.failed",
            RuntimeWarning,
            stacklevel=4,
        )
    return RenderResult(
        images=raw.clamp(0, 1).cpu(),
        history=history,
        start=start,
        final=final,
        alpha=alpha,
        settings=settings,
        seconds=time.perf_counter() - began,
        failed=failed,
        snapshots=snapshots,
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
            **(dataclasses.asdict(config.colour) if config.colour is not None else {}),
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
        init = config.init.image
        init = init[:batch] if init.shape[0] >= batch else init.expand(batch, -1, -1, -1)
        set_image = getattr(image, "set_image_", None)
        if set_image is None:  # the config allows init only where the param has one
            raise ValueError(f"init: {type(image).__name__} cannot be set to an image exactly")
        set_image(init)
        given = config.init
        penalty = InitPenalty(init, given.penalty, given.layer, given.layer_penalty).to(dev)
    image = image.to(dev)
    transforms, view = _with_crops(config)
    if isinstance(transforms, nn.Module):
        transforms = transforms.to(dev)
    plan = accel_plan(config.accel, dev)
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
        channels_last=plan.channels_last,
        autocast=plan.autocast,
        compile_mode=plan.compile_mode,
    )
    return image, renderer


def _with_crops(
    config: RenderConfig,
) -> tuple[Callable[..., Tensor] | None, Callable[[Tensor], Tensor] | None]:
    """The per-step transforms of ``config`` behind its random crops, and the view of the
    canvas at the model's input size (both as they are without a canvas)."""
    if config.crops is None:
        return config.transforms, None
    c = config.crops
    crops = RandomCrops(config.size, c.count, c.scale, c.noise)
    after = config.transforms
    if after is None:
        return crops, crops.view
    if isinstance(after, Transform):
        return Compose(crops, after), crops.view

    def both(x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        return after(crops(x, generator), generator)

    return both, crops.view


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


def _settings_signature(fn: Callable[..., object]) -> None:
    """Show ``RenderConfig.resolve``'s keywords as ``fn``'s own (``help(render)``,
    ``inspect.signature``): its signature and the Args of resolve's docstring."""
    own = inspect.signature(fn)
    params = [p for p in own.parameters.values() if p.kind is not p.VAR_KEYWORD]
    settings = list(inspect.signature(RenderConfig.resolve).parameters.values())[2:]
    fn.__signature__ = own.replace(parameters=[*params, *settings])  # type: ignore[attr-defined]
    doc = inspect.cleandoc(RenderConfig.resolve.__doc__ or "")
    if fn.__doc__ and "Args:" in doc:
        args = doc[doc.index("Args:") + len("Args:") :].strip("\n")
        fn.__doc__ = (
            inspect.cleandoc(fn.__doc__)
            + "\n\nSettings (the keywords of ``RenderConfig.resolve``):\n"
            + args
        )


_settings_signature(render)
_settings_signature(render_steps)
