"""The classic ``PixelActivation``: max mean activation by pixel optimization.

``iter_n`` iterations of ``opt_n`` Adam steps on the pixels of one image; between iterations
(not after the last) the transform is applied and, with ``clamp``, values are clipped to [0, 1].
It runs on the same ``Renderer`` as ``midnite.render``; Adam's state is kept across iterations
(resized with the image when a ``ResizeTransform`` grows it).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from midnite.classic.selectors import NeuronSelector
from midnite.engine.checks import check_bool, check_positive_int, check_real
from midnite.engine.device import resolve_device
from midnite.engine.hooks import OUTPUT, input_channels
from midnite.engine.objectives import Objective
from midnite.engine.param import PixelImage
from midnite.engine.passes import Renderer
from midnite.engine.regularizers import check_regularizers
from midnite.engine.seeds import generators


def split_net(net: object, layer: str | Sequence[str] | None) -> tuple[nn.Module, tuple[str, ...]]:
    """``net`` may be a model, or ``(model, "name")`` / ``(model, ["a", "b"])``; plus ``layer=``."""
    if isinstance(net, tuple) and len(net) == 2 and isinstance(net[0], nn.Module):
        if layer is not None:
            raise ValueError("give the layer either in net=(model, name) or as layer=, not both")
        net, layer = net
    if not isinstance(net, nn.Module):
        raise TypeError(
            f"net must be a torch.nn.Module or (module, layer name), got {type(net).__name__}"
        )
    if layer is None:
        return net, (OUTPUT,)
    names = (layer,) if isinstance(layer, str) else layer
    if (
        not isinstance(names, (list, tuple))
        or not names
        or not all(isinstance(n, str) for n in names)
    ):
        raise TypeError(
            "layer must be a layer name (str) or a non-empty list of names, got "
            f"{type(layer).__name__}: {layer!r}"
        )
    names = tuple(names)
    return net, names


def _replace_parameter(
    optimizer: torch.optim.Optimizer, old: nn.Parameter, new: nn.Parameter
) -> None:
    """Let ``new`` (maybe of another size) take ``old``'s place and Adam state in ``optimizer``."""
    state = optimizer.state.pop(old, {})
    size = tuple(new.shape[-2:])
    for key in ("exp_avg", "exp_avg_sq"):
        if key in state and state[key].shape != new.shape:
            state[key] = F.interpolate(state[key], size=size, mode="bilinear", align_corners=False)
    if state:
        optimizer.state[new] = state
    for group in optimizer.param_groups:
        group["params"] = [new if p is old else p for p in group["params"]]


class PixelActivation:
    """Optimize the pixels of one image so the selected activations of ``net`` have a high mean.

    Args:
        net: a model whose output is the layer to read (e.g. ``alexnet.features[:9]``), or
            ``(model, "layer.name")`` / ``(model, [names])`` to read named layers of any model
            (the mean over the layers is maximized; the pass stops after the deepest).
        selector: which neurons, e.g. ``SplitSelector(ChannelSplit(), [1])``.
        lr, iter_n, opt_n, init_size, clamp, transform, regularization: as in the notebook
            (defaults 0.01, 12, 20, 250, True, None, None).
        layer: the layer name(s), instead of the tuple form of ``net``.
        normalize: None (the notebook's behaviour), "imagenet" or ``(mean, std)``: applied to the
            image before the model; the optimized image stays in [0, 1].
        seed: an int or torch.Generator; the same seed gives the same image. None: fresh.
        device: default: the ``midnite.device`` context.
        progress: show a tqdm bar over the iterations.
    """

    def __init__(
        self,
        net: nn.Module | tuple,
        selector: NeuronSelector,
        lr: float = 0.01,
        iter_n: int = 12,
        opt_n: int = 20,
        init_size: int = 250,
        clamp: bool = True,
        transform: object = None,
        regularization: Sequence[object] | None = None,
        *,
        layer: str | Sequence[str] | None = None,
        normalize: object = None,
        seed: int | torch.Generator | None = None,
        device: str | torch.device | None = None,
        progress: bool = True,
    ):
        self.net, self.layers = split_net(net, layer)
        if not isinstance(selector, NeuronSelector):
            raise TypeError(
                "selector must be a NeuronSelector such as SplitSelector(ChannelSplit(), [1]), "
                f"got {type(selector).__name__}"
            )
        self.selector = selector
        self.lr = check_real("lr", lr, gt=0.0)
        self.iter_n = check_positive_int("iter_n", iter_n)
        self.opt_n = check_positive_int("opt_n", opt_n)
        self.init_size = check_positive_int("init_size", init_size)
        self.clamp = check_bool("clamp", clamp)
        if transform is not None and not callable(transform):
            raise TypeError(
                f"transform must be a transform or None, got {type(transform).__name__}"
            )
        self.transform = transform
        self.regularization = check_regularizers(regularization, "regularization")
        self.normalize = normalize
        self.seed = seed
        self.device = device
        self.progress = progress

    def objective(self) -> Objective:
        """The engine objective maximized: the selector's on each layer, averaged over layers."""
        terms = [self.selector.objective(name) for name in self.layers]
        if len(terms) == 1:
            return terms[0]
        return sum(terms[1:], terms[0]) / len(terms)

    def _start_image(
        self, input_: Tensor | None, gen: torch.Generator, dev: torch.device
    ) -> Tensor:
        channels = input_channels(self.net)
        if input_ is None:
            size = (1, channels, self.init_size, self.init_size)
            return torch.rand(size, generator=gen).to(dev)
        if not isinstance(input_, Tensor):
            raise TypeError(f"input_ must be a tensor (C, H, W), got {type(input_).__name__}")
        if input_.dim() != 3 or input_.shape[0] != channels or min(input_.shape[1:]) < 1:
            raise ValueError(
                f"input_ must be an image ({channels}, H, W) for this model, got shape "
                f"{tuple(input_.shape)}"
            )
        return input_.detach().to(dev, torch.float32).clamp(0, 1).unsqueeze(0)

    def visualize(self, input_: Tensor | None = None) -> Tensor:
        """Run the optimization; returns the image ``(C, H, W)`` on the CPU, values in [0, 1]."""
        dev = resolve_device(self.device)
        gens = generators(self.seed, dev)
        self.last_seed = gens.seed
        start = self._start_image(input_, gens.init, dev)
        pixels = PixelImage.from_image(start, squash="none").pixels
        optim = torch.optim.Adam([pixels], lr=self.lr)
        renderer = Renderer(
            self.net,
            self.objective(),
            regularizers=self.regularization,
            normalize=self.normalize,
            device=dev,
            generator=gens.step,
        )
        with renderer:
            self.start_value = float(renderer.validate(pixels)[0])
            iterations: Iterable[int] = range(self.iter_n)
            if self.progress:
                iterations = tqdm(iterations, desc="PixelActivation")
            for it in iterations:
                for _ in range(self.opt_n):
                    optim.zero_grad(set_to_none=True)
                    loss, _ = renderer.loss(pixels)
                    loss.backward()
                    optim.step()
                if it < self.iter_n - 1:
                    pixels = self._transform_and_clamp(pixels, optim, gens.step)
            result = pixels.detach().clamp(0, 1)
            self.final_value = float(renderer.score(result)[0])
        return result[0].cpu()

    @torch.no_grad()
    def _transform_and_clamp(
        self, pixels: nn.Parameter, optim: torch.optim.Optimizer, gen: torch.Generator
    ) -> nn.Parameter:
        """Transform and clamp the image; a new size gets a new parameter (Adam state resized)."""
        img = pixels.detach()
        if self.transform is not None:
            img = self.transform(img, gen)
        if self.clamp:
            img = img.clamp(0, 1)
        if img.shape == pixels.shape:
            pixels.copy_(img)
            return pixels
        new = nn.Parameter(img.contiguous())
        _replace_parameter(optim, pixels, new)
        return new

    def __repr__(self) -> str:
        return (
            f"PixelActivation(selector={self.selector!r}, layers={list(self.layers)}, "
            f"lr={self.lr}, iter_n={self.iter_n}, opt_n={self.opt_n}, "
            f"init_size={self.init_size}, clamp={self.clamp}, transform={self.transform!r}, "
            f"regularization={self.regularization!r})"
        )
