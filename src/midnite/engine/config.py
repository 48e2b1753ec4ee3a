"""``RenderConfig``: every setting of one render, filled in from the recipe and validated.

    RenderConfig.resolve(model, objective, steps=64)  ->  render_config(model, config)

``render(model, objective, **settings)`` is these two steps: its settings are ``resolve``'s
keywords, listed (with their defaults) there only. A config is frozen and always valid: its
constructor checks and canonicalizes every field (so ``config.replace(steps=32)`` is checked
too), and ``config.to_json()`` is what ``RenderResult.settings`` and the CLI's records hold.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.metadata
import inspect
import numbers
import platform
import secrets
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from midnite.engine.accel import ACCELS
from midnite.engine.checks import (
    as_images,
    check_bool,
    check_choice,
    check_positive_int,
    check_real,
    check_size,
)
from midnite.engine.device import resolve_device
from midnite.engine.hooks import input_channels, resolve_layers
from midnite.engine.normalize import Normalize, as_normalize
from midnite.engine.objectives import Objective, PerImage, as_objective
from midnite.engine.recipes import MACO_CROPS, Recipe, for_model, for_objective, get
from midnite.engine.regularizers import Regularizer, check_regularizers
from midnite.engine.settings import Crops, Init, MacoColour, as_init
from midnite.engine.transforms import STACKS
from midnite.errors import UsageError

__all__ = [
    "MAX_SEED",
    "MAX_STEPS",
    "RenderConfig",
    "check_model_dtype",
    "check_settings",
    "check_steps",
    "init_digest",
    "versions",
]

MAX_STEPS = 1_000_000  # renders converge in hundreds to a few thousand steps
MAX_SEED = 2**63 - 1  # seeds are ints in [0, 2**63): what secrets.randbits(63) draws

_PARAMS = ("fourier", "pixel", "maco")  # 1/f spectrum prior, sigmoid pixels, MACO phase
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

    Make it with :meth:`resolve` (which documents every setting), inspect it (``to_json()``),
    change it with :meth:`replace` and run it with ``render_config(model, config)``.

    Fields hold canonical values: ``objective`` an Objective (a list becomes one per image),
    ``size`` ``(H, W)``, ``lr`` a float, ``transforms`` a Transform or None (a name from
    ``transforms.STACKS`` is built), ``regularizers`` a tuple, ``normalize`` a Normalize or None,
    ``device`` a ``torch.device`` (None: the ``midnite.device`` context's, read when the config
    is made), ``seed`` an int in [0, 2**63) or a ``torch.Generator`` (None: a fresh random int,
    drawn once and kept, so running a config twice gives the same images; a generator is used
    as is, so its state carries over between runs), ``crops`` a ``Crops`` with its canvas
    ``(H, W)`` or None (no canvas: the images are ``size``), ``init`` an ``Init`` whose image
    is a float32 CPU tensor ``(1 or batch, C, H, W)`` of the render's size (a bare image is
    ``Init(image)``; any size is resized). With ``init``, ``steps`` may be 0 (the result is the
    init as the parameterization holds it). Configs compare by identity; compare ``to_json()``.
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
    accel: str = "exact"
    recipe: Recipe | None = None  # the recipe that filled in the unset values (recorded)
    init: Init | None = None
    crops: Crops | None = None
    colour: MacoColour | None = None  # param="maco" only

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
            "accel": check_choice("accel", self.accel, ACCELS),
            "recipe": _check_recipe(self.recipe, objective),
            "init": init,
            "crops": _check_crops(self.crops),
            "colour": _check_colour(self.colour, param),
        }
        if init is not None and values["crops"] is not None:
            raise ValueError(
                "init starts the render from images of its size; a canvas (larger images seen "
                f"through random crops) does not go with it, got crops={values['crops']}"
            )
        for name, value in values.items():
            object.__setattr__(self, name, value)  # frozen: canonical values set once, here

    @property
    def canvas(self) -> tuple[int, int] | None:
        """The images' ``(H, W)`` when they are a canvas seen through crops, else None."""
        return None if self.crops is None else check_size("canvas", self.crops.canvas)

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
        accel: str = "exact",
        init: Init | object | None = None,
        crops: Crops | None = None,
        colour: MacoColour | None = None,
        recipe: str | Recipe | None = None,
    ) -> RenderConfig:
        """The config of a render of ``objective`` on ``model``: every setting of ``render``.

        Args:
            model: any ``nn.Module`` taking ``(B, C, H, W)`` images (with ``normalize``, [0, 1]).
            objective: an Objective (``midnite.engine.objectives``), or a list: one per image.
            size: ``H`` or ``(H, W)`` of the images the model sees; batch: number of images
                (default: the list's length, else the ``init`` images', else 1).
            steps, lr, optimizer: the optimization ("adam" or ``callable(params, lr=...)``).
            param: "fourier" (1/f spectrum), "pixel" or "maco" (photos' Fourier magnitude,
                trained phase); decorrelate: colour decorrelation; colour: "maco"'s
                ``MacoColour(saturation, mean)`` (default: the recipe's, else the template's).
            transforms: a name in ``transforms.STACKS``, a Transform, None or "recipe";
                regularizers: penalties such as ``TotalVariation(1.0)`` (None: none).
            normalize: None, "imagenet" or ``(mean, std)`` applied before the model; channels:
                image channels (default: the first conv's); device: default: the context's.
            seed: an int in [0, 2**63) or a generator; accel: "exact" or "fast" (``accel_plan``).
            early_stop: end passes at the deepest layer read; fold_bn: fold eval batchnorms.
            init: feature accentuation: an ``Init(image, penalty, layer, layer_penalty)`` or a bare
                image, resized to ``size``, written exactly into ``param`` "pixel" or "fourier"
                (within 1e-4 of [0, 1]); ``steps=0`` returns it.
            crops: a ``Crops(count, scale, noise, canvas)``: a larger canvas seen through random
                crops (``final`` is scored on it resized to ``size``). Default: the recipe's.
            recipe: a name in ``recipes.RECIPES`` or a Recipe (default: ``recipes.for_model``):
                it fills in the unset ``steps``, ``lr``, ``param``, ``crops``, ``colour``, ...
        """
        init = _model_and_init(model, init)
        objective = as_objective(objective)
        recipe = for_model(model, objective) if recipe is None else _recipe_arg(recipe)
        param = recipe.param if param is None else param
        # raw values: the constructor checks them and makes them canonical
        raw: dict[str, Any] = dict(
            objective=objective,
            size=size,
            batch=_default_batch(objective, init) if batch is None else batch,
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
            accel=accel,
            init=init,
            crops=_default_crops(crops, recipe, param, size),
            colour=recipe.colour if colour is None and param == "maco" else colour,
            recipe=recipe,
        )
        return cls(**raw)

    def replace(self, **changes: Any) -> RenderConfig:
        """A copy with ``changes`` (field names), checked like a new config; no recipe fill-in."""
        return dataclasses.replace(self, **changes)

    def to_json(self) -> dict:
        """The settings as JSON-able values (callables by ``repr``), with the versions in use.

        This is ``RenderResult.settings`` and the ``settings`` of the CLI's records. The crop
        settings appear only with a canvas, ``colour`` only when set, ``accel`` only when not
        "exact" and the ``init*`` ones only with an ``init`` (the image as shape and SHA-256):
        the records of other renders keep the bytes they had.
        """
        seed = self.seed.initial_seed() if isinstance(self.seed, torch.Generator) else self.seed
        optimizer = self.optimizer if isinstance(self.optimizer, str) else repr(self.optimizer)
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
            **({"accel": self.accel} if self.accel != "exact" else {}),
            **self._init_json(),
            **self._crops_json(),
            **({"colour": dataclasses.asdict(self.colour)} if self.colour is not None else {}),
            "versions": versions(),
        }

    def _init_json(self) -> dict:
        if self.init is None:
            return {}
        return {
            "init": {"shape": list(self.init.image.shape), "sha256": init_digest(self.init.image)},
            "init_penalty": self.init.penalty,
            "init_layer": self.init.layer,
            "init_layer_penalty": self.init.layer_penalty,
        }

    def _crops_json(self) -> dict:
        if self.crops is None:
            return {}
        return {
            "canvas": list(self.canvas or ()),
            "crops": self.crops.count,
            "crop_scale": list(self.crops.scale),
            "crop_noise": self.crops.noise,
        }


_REMOVED = {
    "canvas": "crops=Crops(canvas=...)",
    "crop_scale": "crops=Crops(scale=...)",
    "crop_noise": "crops=Crops(noise=...)",
    "init_penalty": "init=Init(image, penalty=...)",
    "init_layer": "init=Init(image, layer=..., layer_penalty=...)",
    "init_layer_penalty": "init=Init(image, layer=..., layer_penalty=...)",
}


def check_settings(caller: str, names: Iterable[str]) -> None:
    """Refuse setting names that ``RenderConfig.resolve`` does not take, naming the ones it does
    (and the grouped form of the flat keywords that became ``Crops`` and ``Init``)."""
    known = list(inspect.signature(RenderConfig.resolve).parameters)[2:]
    for name in names:
        if name not in known:
            instead = f"; use {_REMOVED[name]}" if name in _REMOVED else ""
            raise TypeError(
                f"{caller}() got an unexpected setting {name!r}{instead}; settings: "
                f"{', '.join(known)}"
            )


def check_model_dtype(model: nn.Module) -> None:
    """``UsageError`` (one line) unless the model's floating weights and buffers are float32:
    the engine optimizes float32 images, and converting the user's model would change it."""
    tensors = [*model.named_parameters(), *model.named_buffers()]
    other = next(
        ((n, t) for n, t in tensors if t.is_floating_point() and t.dtype != torch.float32), None
    )
    if other is not None:
        name, tensor = other
        raise UsageError(
            f"the model's weights must be float32, got {tensor.dtype} ({name!r}); pass a float32 "
            "copy: copy.deepcopy(model).float()"
        )


def _model_and_init(model: object, init: object) -> Init | None:
    """Check ``model`` (float32 weights); ``init`` as an ``Init`` whose layer, if any, is one
    of the model's."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    check_model_dtype(model)
    init = as_init(init)
    if init is not None and init.layer is not None:
        resolve_layers(model, [init.layer])  # an unknown name: the closest ones in the error
    return init


def _default_batch(objective: Objective, init: Init | None) -> int:
    """The number of per-image objectives, else of ``init`` images, else 1."""
    if isinstance(objective, PerImage):
        return len(objective)
    return init.image.shape[0] if init is not None else 1


def _default_crops(crops: object, recipe: Recipe, param: object, size: object) -> Crops | None:
    """``crops`` (default: the recipe's, or ``MACO_CROPS`` for ``param="maco"``) with its
    canvas filled in from ``size`` and ``recipe.canvas``."""
    if crops is None:
        crops = recipe.crops if recipe.crops is not None or param != "maco" else MACO_CROPS
        if crops is None:
            return None
    crops = _crops_type(crops)
    if crops.canvas is None:
        h, w = check_size("size", size)
        ratio = recipe.canvas
        crops = dataclasses.replace(
            crops, canvas=(max(1, round(h * ratio)), max(1, round(w * ratio)))
        )
    return crops


def _check_colour(colour: object, param: str) -> MacoColour | None:
    if colour is None:
        return None
    if not isinstance(colour, MacoColour):
        raise TypeError(
            "colour must be a MacoColour(saturation, mean) or None, got "
            f"{type(colour).__name__} {colour!r}"
        )
    if param != "maco":
        raise ValueError(f"colour sets the colour of param='maco' images, got param={param!r}")
    return colour


def _crops_type(crops: object) -> Crops:
    if not isinstance(crops, Crops):
        raise TypeError(
            "crops must be a Crops(count, scale, noise, canvas) or None, got "
            f"{type(crops).__name__} {crops!r}"
        )
    return crops


def _check_crops(crops: object) -> Crops | None:
    """A ``Crops`` whose canvas is set (``resolve`` fills it in), or None."""
    if crops is None:
        return None
    crops = _crops_type(crops)
    if crops.canvas is None:
        raise ValueError(
            "crops.canvas must be set in a RenderConfig (RenderConfig.resolve fills it in from "
            "size and the recipe), got None"
        )
    return crops


def init_digest(init: Tensor) -> str:
    """Hex SHA-256 of an init tensor's float32 values (with its shape): how records name it."""
    t = init.detach().to(device="cpu", dtype=torch.float32).contiguous()
    digest = hashlib.sha256(f"{tuple(t.shape)};".encode())
    digest.update(t.numpy().tobytes())
    return digest.hexdigest()


def _check_init(
    init: object, batch: int, channels: int, size: tuple[int, int], param: str
) -> Init | None:
    """``init`` as an ``Init`` whose image is ``(1 or batch, channels, *size)``, or None."""
    init = as_init(init)
    if init is None:
        return None
    if param not in _INVERTIBLE:
        raise ValueError(
            f"init needs a parameterization that can be inverted exactly, one of {_INVERTIBLE}; "
            f"got param={param!r}"
        )
    image = as_images("init", init.image, size=size, channels=channels)
    if image.shape[0] not in (1, batch):
        raise ValueError(
            f"init must hold 1 image or batch={batch} images, got {image.shape[0]} "
            f"(shape {tuple(init.image.shape)})"
        )
    return dataclasses.replace(init, image=image)


def _check_init_steps(steps: object, init: Init | None) -> int:
    """``check_steps``, except that 0 steps are allowed from an ``init``."""
    if init is not None and isinstance(steps, int) and not isinstance(steps, bool) and steps == 0:
        return 0
    return check_steps("steps", steps)


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
