"""The classic API in one place, as the notebook imports it: ``from ...base import *``."""

from midnite.visualization.methods import PixelActivation
from midnite.visualization.regularizers import Regularization, TVRegularization, WeightDecay
from midnite.visualization.selectors import (
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
from midnite.visualization.transforms import (
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
