"""The classic notebook "Details - Max Mean Activation", every code cell in order, on midnite.

EfficientNet-Lite0 (ImageNet weights from the installed package) stands in for the notebook's
AlexNet and GoogLeNet, whose weights cannot be had offline: ``lite0[:10]`` (ImageNet
normalization, stem and 6 MBConv blocks) for ``alexnet.features[:9]``, ``lite0[:13]`` (9 blocks)
for ``alexnet.features[:11]``, and the whole classifier followed by a softmax for GoogLeNet.

Writes one PNG per cell and a contact sheet to OUT (default ``out/demo``) and prints, per cell,
the mean activation of the start image and of the result, and the time. Only the class cell's
settings are cut (``--full`` restores them): 300 iterations growing a 300 px image by 0.5% each
take hours on a 2-core CPU; the cut keeps the recipe and runs 40 iterations from 224 px.

    python examples/max_mean_activation.py [OUT] [--full]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # figures are saved, not shown

import matplotlib.pyplot as plt
import torch
from torch.nn import Sequential, Softmax

import midnite
from midnite.models import efficientnet_lite, efficientnet_lite_features
from midnite.plot import contact_sheet, save_png
from midnite.plot import show as _show
from midnite.plot import show_normalized as _show_normalized
from midnite.visualization.base import *

args = argparse.ArgumentParser(description=__doc__.splitlines()[0])
args.add_argument("out", nargs="?", default="out/demo", help="output folder (default out/demo)")
args.add_argument("--full", action="store_true", help="the class cell as in the notebook")
opts = args.parse_args()
OUT = Path(opts.out)
OUT.mkdir(parents=True, exist_ok=True)
DEVICE = "cuda:0" if torch.cuda.is_available() else "cpu"  # the notebook: "use 'cpu' if no GPU"

results: list[tuple[str, torch.Tensor]] = []
_cell = {"name": "", "t0": 0.0}
_last: dict[str, PixelActivation] = {}

# Record start/result activations of every PixelActivation the cells run.
_visualize = PixelActivation.visualize


def _recording_visualize(self, input_=None):
    image = _visualize(self, input_)
    _last["pa"] = self
    return image


PixelActivation.visualize = _recording_visualize


def cell(name: str) -> None:
    _cell["name"], _cell["t0"] = name, time.perf_counter()
    _cell["k"] = 0


def _record(img: torch.Tensor, normalized: bool) -> None:
    _cell["k"] += 1
    name = _cell["name"] + ("" if _cell["k"] == 1 else f"_{_cell['k']}")
    pa = _last.pop("pa")
    seconds = time.perf_counter() - _cell["t0"]
    shown = midnite.plot.normalized(img) if normalized else img
    path = save_png(shown, OUT / f"{name}.png")
    results.append((name, shown))
    print(
        f"{name:<28} start {pa.start_value:>10.4f}  result {pa.final_value:>10.4f}  "
        f"{tuple(img.shape)}  {seconds:6.1f} s  -> {path}",
        flush=True,
    )
    _cell["t0"] = time.perf_counter()


def show(img, scale=1.0):
    plt.close(_show(img, scale))
    _record(img, normalized=False)


def show_normalized(img, scale=1.0):
    plt.close(_show_normalized(img, scale))
    _record(img, normalized=True)


# The stand-in for `alexnet.features`: a Sequential that slices like it.
lite0 = efficientnet_lite_features(16)
started = time.perf_counter()
print(f"midnite demo on {DEVICE}, torch {torch.__version__}, {os.cpu_count()} CPUs; writing {OUT}")

# In [3]: baseline, no regularization
cell("03_baseline")
show(
    PixelActivation(
        lite0[:10],
        SplitSelector(ChannelSplit(), [1]),
    ).visualize()
)

# In [4]: weight decay
cell("04_weight_decay")
show(
    PixelActivation(
        lite0[:10],
        SplitSelector(ChannelSplit(), [1]),
        regularization=[WeightDecay(decay_factor=1e-3)],
    ).visualize()
)

# In [5]: blur filter
cell("05_blur")
show(
    PixelActivation(
        lite0[:10],
        SplitSelector(ChannelSplit(), [1]),
        transform=BlurTransform(),
    ).visualize()
)

# In [6]: bilateral filter
cell("06_bilateral")
show(
    PixelActivation(
        lite0[:10],
        SplitSelector(ChannelSplit(), [1]),
        transform=BilateralTransform(),
    ).visualize()
)

# In [7]: random robustness transformations
cell("07_random")
show(
    PixelActivation(
        lite0[:10],
        SplitSelector(ChannelSplit(), [1]),
        transform=RandomTransform(),
    ).visualize()
)

# In [8]: resizing transform
cell("08_resize")
show(
    PixelActivation(
        lite0[:10],
        SplitSelector(ChannelSplit(), [1]),
        transform=ResizeTransform(),
        init_size=50,
    ).visualize()
)

# In [9]: total variation regularizer
cell("09_total_variation")
show(
    PixelActivation(
        lite0[:10],
        SplitSelector(ChannelSplit(), [1]),
        regularization=[TVRegularization(coefficient=5e2)],
    ).visualize()
)

# In [10]: combining regularizers
cell("10_combined")
show(
    PixelActivation(
        lite0[:10],
        SplitSelector(ChannelSplit(), [1]),
        transform=RandomTransform() + BlurTransform() + ResizeTransform(),
        regularization=[TVRegularization(), WeightDecay(decay_factor=3e-4)],
        init_size=50,
    ).visualize()
)

# In [11]: optimization parameters
cell("11_parameters")
with midnite.device(DEVICE):
    show(
        PixelActivation(
            lite0[:10],
            SplitSelector(ChannelSplit(), [1]),
            transform=RandomTransform() + BlurTransform() + ResizeTransform(),
            regularization=[TVRegularization(), WeightDecay(decay_factor=3e-4)],
            init_size=100,
            lr=0.001,  # default: 0.01
            iter_n=5,  # default: 12
            opt_n=500,  # default: 20
        ).visualize()
    )

    show(
        PixelActivation(
            lite0[:10],
            SplitSelector(ChannelSplit(), [1]),
            transform=RandomTransform() + BlurTransform() + ResizeTransform(scale_fac=1.05),
            regularization=[TVRegularization(), WeightDecay(decay_factor=6e-5)],
            init_size=25,
            lr=0.1,  # default: 0.01
            iter_n=50,  # default: 12
            opt_n=10,  # default: 20
        ).visualize()
    )

# In [12]: a single neuron
cell("12_single_neuron")
show(
    PixelActivation(
        lite0[:13],
        SplitSelector(NeuronSplit(), [0, 0, 0]),
        transform=BlurTransform(),
        regularization=[WeightDecay(decay_factor=1e-2)],
    ).visualize()
)

# In [13]: class visualization (783: screw)
cell("13_class_783_screw")
googlenet = Sequential(efficientnet_lite(0), Softmax(dim=1))
googlenet.eval()

iter_n, init_size = (300, 300) if opts.full else (40, 224)
with midnite.device(DEVICE):
    show_normalized(
        PixelActivation(
            googlenet,
            SplitSelector(NeuronSplit(), [783]),
            transform=RandomTransform(scale_fac=0) + BilateralTransform() + ResizeTransform(1.005),
            opt_n=10,
            iter_n=iter_n,  # the notebook: 300 (cut, see the module docstring)
            regularization=[WeightDecay(decay_factor=1.5e-7), TVRegularization(coefficient=0.05)],
            init_size=init_size,  # the notebook: 300
            lr=0.007,
        ).visualize(),
        scale=1.5,
    )

sheet = contact_sheet([img for _, img in results], columns=4)
print(f"contact sheet -> {save_png(sheet, OUT / 'contact_sheet.png')}")
print(f"total {time.perf_counter() - started:.1f} s")
sys.exit(0)
