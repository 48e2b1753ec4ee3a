"""``RenderConfig``: every setting of one render, filled in from the recipe and validated.

    RenderConfig.resolve(model, objective, steps=64)  ->  render_config(model, config)

``render(model, objective, **settings)`` is these two steps. A config is frozen and always valid:
its constructor checks and canonicalizes every field (so ``config.replace(steps=32)`` is checked
too), and ``config.to_json()`` is what ``RenderResult.settings`` and the CLI's records hold.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.metadata
import numbers
import platform
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from midnite.engine.checks import (
    check_bool,
    check_choice,
    check_positive_int,
    check_real,
    check_size,
    unit_float,
)
from midnite.engine.device import resolve_device
from midnite.engine.hooks import input_channels, resolve_layers
from midnite.engine.normalize import Normalize, as_normalize
from midnite.engine.objectives import Objective, PerImage, as_objective
from midnite.engine.recipes import MACO_CROPS, Crops, Recipe, for_model, for_objective, get
from midnite.engine.regularizers import Regularizer, check_regularizers
from midnite.engine.transforms import STACKS

__all__ = ["MAX_SEED", "MAX_STEPS", "RenderConfig", "check_steps", "init_digest", "versions"]

MAX_STEPS = 1_000_000  # renders converge in hundreds to a few thousand steps
MAX_SEED = 2**63 - 1  # seeds are ints in [0, 2**63): what secrets.randbits(63) draws

_PARAMS = ("fourier", "pixel", "maco")  # 1/f spectrum prior, sigmoid pixels, MACO phase
MAX_CROPS = 256  # crops per image and step: each is one more image through the model
# the parameterizations an init image can be written into exactly (param.set_image_)
_INVERTIBLE = ("fourier", "pixel")


def versions() -> dict[str, str]:
    """Versions of what decides an image: midnite, torch, Python."""
    try:
        own = importlib.metadata.version("midnite")
    except importlib.metadata.PackageNotFoundError:  # running from a source tree
        own = "unknown"
    return {"midnite": own, "torch": torch.__version__, "python": platform.python_version()}


@dataclass(frozen=True, kw_only=True, eq=False)
class RenderConfig:
    """The settings of one render, checked and frozen.

    Make it with :meth:`resolve`, inspect it (``to_json()``), change it with :meth:`replace`
    and run it with ``render_config(model, config)``.

    Fields hold canonical values: ``objective`` an Objective (a list becomes one per image),
    ``size`` ``(H, W)``, ``lr`` a float, ``transforms`` a Transform or None (a name from
    ``transforms.STACKS`` is built), ``regularizers`` a tuple, ``normalize`` a Normalize or None,
    ``device`` a ``torch.device`` (None: the ``midnite.device`` context's, read when the config
    is made), ``canvas`` ``(H, W)`` or None (with a canvas the images are that size and the model
    sees ``crops`` random boxes of each per step, a fraction in ``crop_scale`` of each side,
    resized to ``size``, plus N(0, ``crop_noise``) noise; without one the images are ``size``
    and the crop settings must keep their defaults), ``seed`` an int in [0, 2**63) or a
    ``torch.Generator`` (None: a fresh random int, drawn once and kept, so running a config
    twice gives the same images; a generator is used as is, so its state carries over between
    runs). Configs compare by identity; compare
    ``to_json()`` instead.

    Feature accentuation (Hamblin et al. 2024): ``init`` is a float32 CPU tensor
    ``(1 or batch, C, H, W)`` in [0, 1] (a ``(C, H, W)`` image or uint8 values are converted) that
    the render starts from, written exactly into the parameterization (``param`` "pixel" or
    "fourier"); ``init_penalty`` (λ) adds λ · mean squared pixel distance to it to the loss and
    ``init_layer_penalty`` (μ) μ · mean squared distance of ``init_layer``'s activations to the
    init's. With ``init``, ``steps`` may be 0 (the result is the init as the parameterization
    holds it). ``to_json()`` records the init by shape and SHA-256, not by its pixels.
    """

    objective: Objective
    size: tuple[int, int]
    batch: int
    channels: int
    steps: int
    lr: float
    optimizer: str | Callable[..., torch.optim.Optimizer] = "adam"
    param: str
    decorrelate: bool
    transforms: Callable[..., Tensor] | None
    regularizers: tuple[Regularizer, ...] = ()
    normalize: Normalize | None = None
    device: torch.device | None = None
    seed: int | torch.Generator | None = 0
    early_stop: bool = True
    fold_bn: bool = True
    recipe: Recipe | None = None  # the recipe that filled in the unset values (recorded)
    init: Tensor | None = None
    init_penalty: float = 0.0
    init_layer: str | None = None
    init_layer_penalty: float = 0.0
    canvas: tuple[int, int] | None = None
    crops: int = 1
    crop_scale: tuple[float, float] = (1.0, 1.0)
    crop_noise: float = 0.0

    def __post_init__(self) -> None:
        objective = as_objective(self.objective)
        batch = check_positive_int("batch", self.batch)
        if isinstance(objective, PerImage) and len(objective) != batch:
            raise ValueError(
                f"batch must equal the number of per-image objectives ({len(objective)}), "
                f"got {batch}"
            )
        size = check_size("size", self.size)
        channels = check_positive_int("channels", self.channels)
        param = check_choice("param", self.param, _PARAMS)
        init = _check_init(self.init, batch, channels, size, param)
        values = {
            "objective": objective,
            "size": size,
            "batch": batch,
            "channels": channels,
            "steps": _check_init_steps(self.steps, init),
            "lr": check_real("lr", self.lr, gt=0),
            "optimizer": _check_optimizer(self.optimizer),
            "param": param,
            "decorrelate": check_bool("decorrelate", self.decorrelate),
            "transforms": _check_transforms(self.transforms),
            "regularizers": tuple(check_regularizers(self.regularizers)),
            "normalize": as_normalize(self.normalize),
            "device": resolve_device(self.device),
            "seed": _check_seed(self.seed),
            "early_stop": check_bool("early_stop", self.early_stop),
            "fold_bn": check_bool("fold_bn", self.fold_bn),
            "recipe": _check_recipe(self.recipe, objective),
            "init": init,
            **_check_init_penalties(
                init, self.init_penalty, self.init_layer, self.init_layer_penalty
            ),
            **_check_crops(self.canvas, self.crops, self.crop_scale, self.crop_noise),
        }
        if init is not None and values["canvas"] is not None:
            raise ValueError(
                "init starts the render from images of its size; a canvas (larger images seen "
                f"through random crops) does not go with it, got canvas={values['canvas']}"
            )
        for name, value in values.items():
            object.__setattr__(self, name, value)  # frozen: canonical values set once, here

    @classmethod
    def resolve(
        cls,
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
        recipe: str | Recipe | None = None,
        canvas: int | Sequence[int] | None = None,
        crops: int | None = None,
        crop_scale: Sequence[float] | None = None,
        crop_noise: float | None = None,
    ) -> RenderConfig:
        """The config ``render(model, objective, **settings)`` runs (see ``render`` for each).

        Unset ``steps``, ``lr``, ``param``, ``decorrelate`` and ``transforms="recipe"`` come from
        ``recipes.for_model(model, objective)``; ``batch`` defaults to the number of per-image
        objectives, else to the number of ``init`` images, else 1; ``channels`` to the input
        channels of the model's first convolution. ``init_layer`` is looked up in the model.
        the recipe: ``recipe`` (a name in ``recipes.RECIPES`` or a Recipe), else
        ``recipes.for_model(model, objective)``. ``batch`` defaults to the number of per-image
        objectives, else 1; ``channels`` to the input channels of the model's first convolution.
        The canvas and crop settings come from the recipe's ``crops``; a recipe without them
        gives ``recipes.MACO_CROPS`` to ``param="maco"`` and to an explicit ``canvas``, and no
        canvas otherwise.
        """
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        objective = as_objective(objective)
        recipe = for_model(model, objective) if recipe is None else _recipe_arg(recipe)
        param = recipe.param if param is None else param
        crop = recipe.crops
        if crop is None and (canvas is not None or param == "maco"):
            crop = MACO_CROPS
        if canvas is None and crop is not None:
            h, w = check_size("size", size)
            canvas = (max(1, round(h * crop.canvas)), max(1, round(w * crop.canvas)))
        defaults = crop if crop is not None else Crops(canvas=1.0, n=1, scale=(1.0, 1.0), noise=0.0)
        if batch is None:
            if isinstance(objective, PerImage):
                batch = len(objective)
            elif isinstance(init, Tensor) and init.dim() == 4:
                batch = max(1, init.shape[0])
            else:
                batch = 1
        if isinstance(init_layer, str):
            resolve_layers(model, [init_layer])  # an unknown name: the closest ones in the error
        # raw values: the constructor checks them and makes them canonical
        raw: dict[str, Any] = dict(
            objective=objective,
            size=size,
            batch=batch,
            channels=input_channels(model) if channels is None else channels,
            steps=recipe.steps if steps is None else steps,
            lr=recipe.lr if lr is None else lr,
            optimizer=optimizer,
            param=param,
            decorrelate=recipe.decorrelate if decorrelate is None else decorrelate,
            transforms=recipe.transforms if _is_recipe(transforms) else transforms,
            regularizers=() if regularizers is None else regularizers,
            normalize=normalize,
            device=device,
            seed=seed,
            early_stop=early_stop,
            fold_bn=fold_bn,
            init=init,
            init_penalty=init_penalty,
            init_layer=init_layer,
            init_layer_penalty=init_layer_penalty,
            canvas=canvas,
            crops=defaults.n if crops is None else crops,
            crop_scale=defaults.scale if crop_scale is None else crop_scale,
            crop_noise=defaults.noise if crop_noise is None else crop_noise,
        )
        return cls(**raw, recipe=recipe)

    def replace(self, **changes: Any) -> RenderConfig:
        """A copy with ``changes`` (field names), checked like a new config; no recipe fill-in."""
        return dataclasses.replace(self, **changes)

    def to_json(self) -> dict:
        """The settings as JSON-able values (callables by ``repr``), with the versions in use.

        This is ``RenderResult.settings`` and the ``settings`` of the CLI's records. The
        ``init*`` settings appear only where ``init`` is given (the init as shape and SHA-256).
        """
        seed = self.seed.initial_seed() if isinstance(self.seed, torch.Generator) else self.seed
        optimizer = self.optimizer if isinstance(self.optimizer, str) else repr(self.optimizer)
        # the canvas and crop settings only where there is a canvas: the records of renders
        # without one keep the bytes they had before canvases existed
        canvas = (
            {
                "canvas": list(self.canvas),
                "crops": self.crops,
                "crop_scale": list(self.crop_scale),
                "crop_noise": self.crop_noise,
            }
            if self.canvas is not None
            else {}
        )
        return {
            "recipe": self.recipe.name if self.recipe is not None else None,
            "objective": repr(self.objective),
            "size": list(self.size),
            "batch": self.batch,
            "channels": self.channels,
            "steps": self.steps,
            "lr": self.lr,
            "optimizer": optimizer,
            "param": self.param,
            "decorrelate": self.decorrelate,
            "transforms": repr(self.transforms),
            "regularizers": [repr(r) for r in self.regularizers],
            "normalize": repr(self.normalize),
            "device": str(self.device),
            "seed": seed,
            "early_stop": self.early_stop,
            "fold_bn": self.fold_bn,
            **self._init_json(),
            **canvas,
            "versions": versions(),
        }

    def _init_json(self) -> dict:
        if self.init is None:
            return {}
        return {
            "init": {"shape": list(self.init.shape), "sha256": init_digest(self.init)},
            "init_penalty": self.init_penalty,
            "init_layer": self.init_layer,
            "init_layer_penalty": self.init_layer_penalty,
        }


def init_digest(init: Tensor) -> str:
    """Hex SHA-256 of an init tensor's float32 values (with its shape): how records name it."""
    t = init.detach().to(device="cpu", dtype=torch.float32).contiguous()
    digest = hashlib.sha256(f"{tuple(t.shape)};".encode())
    digest.update(t.numpy().tobytes())
    return digest.hexdigest()


def _check_init(
    init: object, batch: int, channels: int, size: tuple[int, int], param: str
) -> Tensor | None:
    """``init`` as a float32 CPU tensor ``(1 or batch, C, H, W)`` in [0, 1], or None.

    A ``(C, H, W)`` image gets a batch axis; uint8 values are divided by 255.
    """
    if init is None:
        return None
    form = f"(B, {channels}, {size[0]}, {size[1]}) or ({channels}, {size[0]}, {size[1]})"
    if not isinstance(init, Tensor):
        raise TypeError(f"init must be a torch.Tensor {form} in [0, 1], got {type(init).__name__}")
    if param not in _INVERTIBLE:
        raise ValueError(
            f"init needs a parameterization that can be inverted exactly, one of {_INVERTIBLE}; "
            f"got param={param!r}"
        )
    x = init.detach()
    if x.dim() == 3:
        x = x.unsqueeze(0)
    if x.dim() != 4 or tuple(x.shape[1:]) != (channels, *size) or x.shape[0] not in (1, batch):
        raise ValueError(
            f"init must have shape {form} with B 1 or batch={batch} (the render's size and "
            f"channels), got {tuple(init.shape)}"
        )
    x = unit_float("init", x).cpu()
    if not bool(torch.isfinite(x).all()):
        raise ValueError("init must hold only finite values, got NaN or inf")
    low, high = float(x.min()), float(x.max())
    if low < 0.0 or high > 1.0:
        raise ValueError(f"init values must be in [0, 1], got values in [{low:.4g}, {high:.4g}]")
    return x.clone()  # the config's own copy: the caller may change theirs


def _check_init_steps(steps: object, init: Tensor | None) -> int:
    """``check_steps``, except that 0 steps are allowed from an ``init``."""
    if init is not None and isinstance(steps, int) and not isinstance(steps, bool) and steps == 0:
        return 0
    return check_steps("steps", steps)


def _check_init_penalties(
    init: Tensor | None, penalty: object, layer: object, layer_penalty: object
) -> dict[str, Any]:
    """The ``init_*`` fields, checked: they need an ``init``, and a layer with its penalty."""
    values: dict[str, Any] = {
        "init_penalty": check_real("init_penalty", penalty, ge=0),
        "init_layer": layer,
        "init_layer_penalty": check_real("init_layer_penalty", layer_penalty, ge=0),
    }
    if layer is not None and not isinstance(layer, str):
        raise TypeError(
            f"init_layer must be a layer name (str) or None, got {type(layer).__name__} {layer!r}"
        )
    if init is None:
        given = [k for k, v in values.items() if v not in (None, 0.0)]
        if given:
            raise ValueError(
                f"{', '.join(given)} {'needs' if len(given) == 1 else 'need'} init (the images "
                "to start from and stay near), "
                "got init=None"
            )
    if (layer is None) != (values["init_layer_penalty"] == 0.0):
        raise ValueError(
            "init_layer and init_layer_penalty go together (the layer whose activations stay "
            f"near the init's, and a weight > 0), got init_layer={layer!r}, "
            f"init_layer_penalty={values['init_layer_penalty']!r}"
        )
    return values


def _check_recipe(recipe: object, objective: Objective) -> Recipe:
    """``recipe`` (a Recipe or a name), or the one the objective gets when None (recorded even
    where every value was given)."""
    if recipe is None:
        return for_objective(objective)
    return _recipe_arg(recipe)


def _recipe_arg(recipe: object) -> Recipe:
    """A Recipe, or the recipe of that name (``recipes.get``)."""
    if isinstance(recipe, Recipe):
        return recipe
    if isinstance(recipe, str):
        return get(recipe)
    raise TypeError(
        f"recipe must be a recipe name (str), a Recipe or None, got {type(recipe).__name__}"
    )


def _check_crops(
    canvas: object, crops: object, crop_scale: object, crop_noise: object
) -> dict[str, Any]:
    """The canvas and crop fields, canonical; crop settings other than the defaults need a
    canvas."""
    n = check_positive_int("crops", crops)
    if n > MAX_CROPS:
        raise ValueError(f"crops must be at most {MAX_CROPS} per image and step, got {n}")
    if not isinstance(crop_scale, (tuple, list)) or len(crop_scale) != 2:
        raise TypeError(
            f"crop_scale must be a pair (low, high) of fractions of the canvas side in (0, 1], "
            f"got {crop_scale!r}"
        )
    low = check_real("crop_scale[0]", crop_scale[0], gt=0.0, le=1.0)
    high = check_real("crop_scale[1]", crop_scale[1], gt=0.0, le=1.0)
    if low > high:
        raise ValueError(f"crop_scale must satisfy low <= high, got {crop_scale!r}")
    noise = check_real("crop_noise", crop_noise, ge=0.0)
    if canvas is None:
        if (n, low, high, noise) != (1, 1.0, 1.0, 0.0):
            raise ValueError(
                f"crops={n}, crop_scale=({low:g}, {high:g}), crop_noise={noise:g} need a canvas "
                "(canvas=(H, W)); without one the images are the model's input"
            )
        return {"canvas": None, "crops": n, "crop_scale": (low, high), "crop_noise": noise}
    return {
        "canvas": check_size("canvas", canvas),
        "crops": n,
        "crop_scale": (low, high),
        "crop_noise": noise,
    }


def _is_recipe(transforms: object) -> bool:
    return isinstance(transforms, str) and transforms == "recipe"


def _check_optimizer(optimizer: object) -> str | Callable[..., torch.optim.Optimizer]:
    if callable(optimizer) or (isinstance(optimizer, str) and optimizer == "adam"):
        return optimizer
    expected = "optimizer must be 'adam' or a callable(params, lr=...)"
    if isinstance(optimizer, str):
        raise ValueError(f"{expected}, got {optimizer!r}")
    raise TypeError(f"{expected}, got {type(optimizer).__name__} {optimizer!r}")


def _check_transforms(transforms: object) -> Callable[..., Tensor] | None:
    if isinstance(transforms, str):
        if transforms not in STACKS:
            raise ValueError(
                f"transforms must be one of {sorted(STACKS)}, None or a Transform, "
                f"got {transforms!r}"
            )
        return STACKS[transforms]()
    if transforms is not None and not callable(transforms):
        raise TypeError(
            f"transforms must be a Transform, a name in {sorted(STACKS)} or None, "
            f"got {type(transforms).__name__}"
        )
    return transforms


def check_steps(name: str, steps: object) -> int:
    """``steps`` as an int in [1, MAX_STEPS]: every step is kept in the history and records."""
    steps = check_positive_int(name, steps)
    if steps > MAX_STEPS:
        raise ValueError(
            f"{name} must be at most {MAX_STEPS}, got {steps}; renders converge in hundreds to a "
            "few thousand steps"
        )
    return steps


def _check_seed(seed: object) -> int | torch.Generator:
    if seed is None:
        return secrets.randbits(63)
    if isinstance(seed, torch.Generator):
        return seed
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise TypeError(
            f"seed must be an int, a torch.Generator or None, got {type(seed).__name__} {seed!r}"
        )
    value = int(seed)
    if not 0 <= value <= MAX_SEED:
        raise ValueError(f"seed must be an int in [0, 2**63), got {value}")
    return value
