"""The classic API in one place, as the notebook imports it: ``from ...base import *``."""

from midnite.classic.methods import PixelActivation
from midnite.classic.regularizers import Regularization, TVRegularization, WeightDecay
from midnite.classic.selectors import (
    ChannelSplit,
    GroupSplit,
    Identity,
    LayerSplit,
    NeuronSelector,
    NeuronSplit,
    SimpleSelector,
    SpatialSplit,
    SplitSelector,
)
from midnite.classic.transforms import (
    BilateralTransform,
    BlurTransform,
    RandomTransform,
    ResizeTransform,
    Transform,
    TransformSequence,
)

__all__ = [
    "BilateralTransform",
    "BlurTransform",
    "ChannelSplit",
    "GroupSplit",
    "Identity",
    "LayerSplit",
    "NeuronSelector",
    "NeuronSplit",
    "PixelActivation",
    "RandomTransform",
    "Regularization",
    "ResizeTransform",
    "SimpleSelector",
    "SpatialSplit",
    "SplitSelector",
    "TVRegularization",
    "Transform",
    "TransformSequence",
    "WeightDecay",
]
