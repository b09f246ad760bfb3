"""Building blocks that model yaml files refer to by class name.

`parse_model` resolves a yaml row's module name through `__all__` below (plus `torch.nn` for
names written as `nn.X` and the modules under `ultralytics/nn/AddModules`).
"""

from .block import HGBlock, HGStem, RepC3, ResNetBlock, ResNetLayer
from .conv import Concat, Conv, DWConv, LightConv, RepConv, autopad
from .head import RTDETRDecoder
from .transformer import (
    AIFI,
    MLP,
    DeformableTransformerDecoder,
    DeformableTransformerDecoderLayer,
    MSDeformAttn,
    TransformerEncoderLayer,
)
from .yaml_args import YamlArgs

__all__ = (
    "Conv",
    "DWConv",
    "LightConv",
    "RepConv",
    "Concat",
    "HGStem",
    "HGBlock",
    "RepC3",
    "ResNetBlock",
    "ResNetLayer",
    "TransformerEncoderLayer",
    "AIFI",
    "MLP",
    "MSDeformAttn",
    "DeformableTransformerDecoderLayer",
    "DeformableTransformerDecoder",
    "RTDETRDecoder",
)
