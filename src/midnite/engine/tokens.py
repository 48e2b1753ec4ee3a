"""Vision-transformer tokens read as images: a ``(B, N, D)`` layer as a ``(B, D, h, w)`` map.

Under a *token model* (one with a :class:`TokenGrid`), a layer whose output is
``(B, prefix + h*w, D)`` is read as the D-channel h×w map of its patch tokens, its prefix
tokens (class, register, distillation) dropped; every other output is left as it is. timm's
ViT family is recognised by its attributes; any other model names its grid with
:func:`set_token_grid`. The engine reads layers this way where it captures them
(``hooks.ActivationCapture``, ``hooks.layers``), so objectives and selectors see images.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from midnite.engine.checks import check_bool, check_int, check_size

__all__ = [
    "TokenGrid",
    "TokenReader",
    "block_layers",
    "set_token_grid",
    "token_grid",
    "tokens_to_map",
]


@dataclass(frozen=True)
class TokenGrid:
    """How a token model lays its patches out: ``grid`` (h, w), ``prefix`` tokens, ``patch`` px.

    ``grid=None`` means the grid follows the image size (``patch`` is then required):
    ``(H / ph, W / pw)`` for sides that are whole patches, or rounded up for any side with
    ``pad`` (the model pads the image to whole patches, timm's ``dynamic_img_pad``). With a
    fixed ``grid`` and a ``patch``, an image of another size is refused with the size the
    model takes.

    ``TokenGrid((14, 14), prefix=1, patch=16)`` is timm's ``vit_base_patch16_224``.
    """

    grid: tuple[int, int] | None = None
    prefix: int = 0
    patch: tuple[int, int] | None = None
    pad: bool = False

    def __post_init__(self) -> None:
        grid = None if self.grid is None else check_size("grid", self.grid)
        patch = None if self.patch is None else check_size("patch", self.patch)
        if grid is None and patch is None:
            raise ValueError(
                "a TokenGrid needs grid=(h, w), or patch=(ph, pw) for a grid that follows the "
                "image size; got neither"
            )
        object.__setattr__(self, "grid", grid)
        object.__setattr__(self, "patch", patch)
        object.__setattr__(self, "prefix", check_int("prefix", self.prefix, 0))
        object.__setattr__(self, "pad", check_bool("pad", self.pad))

    @property
    def dynamic(self) -> bool:
        """Whether the grid follows the image size."""
        return self.grid is None

    @property
    def image_size(self) -> tuple[int, int] | None:
        """``(H, W)`` of the images a fixed grid takes; None when unknown or dynamic."""
        if self.grid is None or self.patch is None or self.pad:
            return None
        return self.grid[0] * self.patch[0], self.grid[1] * self.patch[1]

    def grid_for(self, height: int, width: int, where: str = "the model") -> tuple[int, int]:
        """The grid of an ``height`` x ``width`` image; a size the model cannot take raises."""
        if self.patch is None:  # a fixed grid of unknown patch size: nothing to check
            assert self.grid is not None  # __post_init__: grid or patch
            return self.grid
        ph, pw = self.patch
        rnd = math.ceil if self.pad else math.floor
        grid = (int(rnd(height / ph)), int(rnd(width / pw)))
        given = f"got {height}x{width}"
        if self.grid is None:
            if min(grid) < 1:
                raise ValueError(f"{where} needs images of at least {ph}x{pw} px, {given}")
            if not self.pad and (height % ph or width % pw):
                raise ValueError(
                    f"{where} takes images whose sides are whole {ph}x{pw} px patches, {given}; "
                    "per-step transforms that pad the image ('standard', 'lucid') need a model "
                    "that pads it to whole patches (timm's dynamic_img_pad): else use "
                    "transforms='patch' or None"
                )
            return grid
        gh, gw = self.grid
        exact = self.image_size
        if grid != self.grid or (exact is not None and (height, width) != exact):
            size = f"{exact[0]}x{exact[1]} px images" if exact else f"images of {gh}x{gw} patches"
            raise ValueError(
                f"{where} takes {size} (a {gh}x{gw} grid of {ph}x{pw} px patches), {given}; "
                "per-step transforms that pad the image ('standard', 'lucid') need a model "
                "whose grid follows the image size (timm's dynamic_img_size): else use "
                "transforms='patch' or None"
            )
        return self.grid

    def __repr__(self) -> str:
        parts = [f"grid={self.grid}" if self.grid else "grid=None", f"prefix={self.prefix}"]
        if self.patch is not None:
            parts.append(f"patch={self.patch}")
        if self.pad:
            parts.append("pad=True")
        return f"TokenGrid({', '.join(parts)})"


_REGISTRY: weakref.WeakKeyDictionary[nn.Module, TokenGrid] = weakref.WeakKeyDictionary()


def set_token_grid(model: nn.Module, grid: TokenGrid | None) -> None:
    """Declare ``model`` (any module) a token model with ``grid``; None removes the declaration.

    Layers under ``model`` (its own output included) whose output is ``(B, prefix + h*w, D)``
    are then read as ``(B, D, h, w)`` maps. The declaration lives beside the model (nothing is
    written on it) for as long as the model does; it overrides what timm's attributes say.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if grid is None:
        _REGISTRY.pop(model, None)
        return
    if not isinstance(grid, TokenGrid):
        raise TypeError(
            f"grid must be a TokenGrid (or None to remove it), got {type(grid).__name__}: {grid!r}"
        )
    _REGISTRY[model] = grid


def _pair(value: object) -> tuple[int, int] | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return (value, value)
    if (
        isinstance(value, (tuple, list))
        and len(value) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value)
    ):
        return (int(value[0]), int(value[1]))
    return None


def token_grid(model: nn.Module) -> TokenGrid | None:
    """The :class:`TokenGrid` of ``model`` itself, or None if it is not a token model.

    A grid set with :func:`set_token_grid`, else timm's ViT layout: ``num_prefix_tokens`` and a
    ``patch_embed`` with ``patch_size`` and ``grid_size`` (the grid follows the image size when
    ``model.dynamic_img_size``; ``patch_embed.dynamic_img_pad`` rounds it up).
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if model in _REGISTRY:
        return _REGISTRY[model]
    embed = getattr(model, "patch_embed", None)
    prefix = getattr(model, "num_prefix_tokens", None)
    if not isinstance(embed, nn.Module) or not isinstance(prefix, int) or prefix < 0:
        return None
    patch = _pair(getattr(embed, "patch_size", None))
    grid = _pair(getattr(embed, "grid_size", None))
    if patch is None:
        return None
    pad = bool(getattr(embed, "dynamic_img_pad", False))
    if getattr(model, "dynamic_img_size", False):
        return TokenGrid(None, prefix, patch, pad)
    return None if grid is None else TokenGrid(grid, prefix, patch, pad)


def tokens_to_map(tokens: Tensor, grid: tuple[int, int], prefix: int = 0) -> Tensor:
    """``(B, prefix + h*w, D)`` tokens as a ``(B, D, h, w)`` map (a view; differentiable).

    Patch tokens are in row-major order, as a flattened ``(h, w)`` grid: token ``prefix + i*w +
    j`` is row ``i``, column ``j``.
    """
    h, w = check_size("grid", grid)
    prefix = check_int("prefix", prefix, 0)
    if not isinstance(tokens, Tensor) or tokens.dim() != 3:
        shape = tuple(tokens.shape) if isinstance(tokens, Tensor) else type(tokens).__name__
        raise ValueError(f"tokens must be a (B, N, D) tensor, got {shape}")
    n = tokens.shape[1]
    if n != prefix + h * w:
        raise ValueError(
            f"tokens must number prefix + h*w = {prefix} + {h}*{w} = {prefix + h * w}, got {n}"
        )
    return tokens[:, prefix:].transpose(1, 2).unflatten(2, (h, w))


class TokenReader:
    """Which of some layers sit under a token model, and their grids in the current pass.

    ``attach()`` hooks each token model so that every forward pass records the grid of its
    input image (and refuses an image size it cannot take); ``read(name, x)`` returns a layer's
    output as a ``(B, D, h, w)`` map when it is ``(B, prefix + h*w, D)``, else ``x`` itself. A
    model with no token model leaves nothing to do: ``bool(reader)`` is False.
    """

    def __init__(
        self,
        model: nn.Module,
        names: Iterable[str],
        modules: Mapping[str, nn.Module] | None = None,
    ):
        modules = dict(model.named_modules()) if modules is None else modules
        found: dict[str, TokenGrid | None] = {}
        self._owners: dict[str, tuple[nn.Module, TokenGrid]] = {}  # owner name -> owner
        self._owner_of: dict[str, str] = {}  # layer name -> owner name
        for name in dict.fromkeys(names):
            parts = name.split(".") if name else []
            for k in range(len(parts), -1, -1):  # the layer itself, then its ancestors
                candidate = ".".join(parts[:k])
                if candidate not in found:
                    module = modules.get(candidate)
                    found[candidate] = None if module is None else token_grid(module)
                grid = found[candidate]
                if grid is not None:
                    self._owners[candidate] = (modules[candidate], grid)
                    self._owner_of[name] = candidate
                    break
        self._grids: dict[str, tuple[int, int]] = {}

    def __bool__(self) -> bool:
        return bool(self._owners)

    def owners(self) -> dict[str, TokenGrid]:
        """``{name: grid}`` of the token models the layers sit under."""
        return {name: grid for name, (_, grid) in self._owners.items()}

    def owner(self, name: str) -> tuple[str, TokenGrid] | None:
        """``(owner name, grid)`` of the token model that layer ``name`` sits under, or None."""
        owner = self._owner_of.get(name)
        return None if owner is None else (owner, self._owners[owner][1])

    def attach(self) -> list[torch.utils.hooks.RemovableHandle]:
        """Hook every token model (forward pre-hooks); the caller removes the handles."""
        handles = []
        try:
            for name, (module, grid) in self._owners.items():
                handles.append(module.register_forward_pre_hook(self._pre_hook(name, grid)))
        except BaseException:
            for handle in handles:
                handle.remove()
            raise
        return handles

    def reset(self) -> None:
        """Forget the grids of the last pass."""
        self._grids.clear()

    def _pre_hook(self, name: str, grid: TokenGrid):
        where = f"{'token model ' + repr(name) if name else 'the model'}"

        def hook(module: nn.Module, args: tuple) -> None:
            x = args[0] if args else None
            if isinstance(x, Tensor) and x.dim() == 4:
                where_type = f"{where} ({type(module).__name__})"
                self._grids[name] = grid.grid_for(x.shape[-2], x.shape[-1], where_type)
            elif grid.grid is not None:
                self._grids[name] = grid.grid

        return hook

    def grid(self, name: str) -> tuple[int, int] | None:
        """The grid of layer ``name``'s token model in the current pass, if known."""
        owner = self._owner_of.get(name)
        if owner is None:
            return None
        return self._grids.get(owner, self._owners[owner][1].grid)

    def read(self, name: str, x: Tensor) -> Tensor:
        """Layer ``name``'s output ``x`` as a ``(B, D, h, w)`` map if it is a token layer."""
        if x.dim() != 3:
            return x
        grid = self.grid(name)
        if grid is None:
            return x
        prefix = self._owners[self._owner_of[name]][1].prefix
        if x.shape[1] != prefix + grid[0] * grid[1]:
            return x
        return tokens_to_map(x, grid, prefix)

    def shape(self, name: str, shape: tuple[int, ...]) -> tuple[int, ...]:
        """The per-image shape ``read`` gives a layer whose per-image output shape is ``shape``."""
        grid = self.grid(name)
        if len(shape) != 2 or grid is None:
            return shape
        prefix = self._owners[self._owner_of[name]][1].prefix
        if shape[0] != prefix + grid[0] * grid[1]:
            return shape
        return (shape[1], *grid)


def block_layers(model: nn.Module) -> list[str]:
    """Starting points in a timm-style transformer: each block's MLP hidden activation and output.

    For every ``...blocks.N`` under a token model, in order: ``...blocks.N.mlp.act`` (the
    expanded MLP layer after its GELU, where ViT features visualize best) when it exists, then
    ``...blocks.N`` (the block's output, the residual stream). Empty for other models.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    modules = dict(model.named_modules())
    owners = [name for name, m in modules.items() if token_grid(m) is not None]
    found = []
    for name in modules:
        parts = name.split(".")
        if len(parts) < 2 or parts[-2] != "blocks" or not parts[-1].isdigit():
            continue
        if not any(o == "" or name.startswith(o + ".") for o in owners):
            continue
        if f"{name}.mlp.act" in modules:
            found.append(f"{name}.mlp.act")
        found.append(name)
    return found
