"""The seed API in one place: ``from midnite.visualization.base import *``."""

from midnite.engine.regularizers import Regularization, TVRegularization, WeightDecay
from midnite.engine.transforms import (
    BilateralTransform,
    BlurTransform,
    RandomTransform,
    ResizeTransform,
    Transform,
    TransformSequence,
)
from midnite.visualization.methods import PixelActivation
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
