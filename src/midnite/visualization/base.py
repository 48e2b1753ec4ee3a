"""The seed API in one place: ``from midnite.visualization.base import *``."""

from midnite.regularizers import Regularization, TVRegularization, WeightDecay
from midnite.selectors import (
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
from midnite.transforms import (
    BilateralTransform,
    BlurTransform,
    RandomTransform,
    ResizeTransform,
    Transform,
    TransformSequence,
)
from midnite.visualization.methods import PixelActivation

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
