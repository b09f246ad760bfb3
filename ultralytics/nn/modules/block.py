"""Backbone and neck blocks of the RT-DETR models: PP-HGNetV2 (HGStem, HGBlock), RepC3 and ResNet.

Names, constructor argument order, submodule names and creation order follow Ultralytics 8.3.50,
so that yaml rows, state_dict keys and pickled checkpoints carry over unchanged.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from ultralytics.nn.modules.conv import ActArg, Conv, LightConv, RepConv, resolve_activation
from ultralytics.nn.modules.yaml_args import YamlArgs

__all__ = "HGStem", "HGBlock", "RepC3", "ResNetBlock", "ResNetLayer"


# 2x2 kernels without padding shrink a map by one; padding right and bottom by one keeps its size.
_PAD_RIGHT_BOTTOM = (0, 1, 0, 1)


class HGStem(nn.Module):
    """PP-HGNetV2 stem: reduces (b, c1, h, w) to (b, c2, h / 4, w / 4).

    After a stride-2 conv the map goes two ways, a 2x2 max-pool and two chained 2x2 convs; their
    concatenation passes a stride-2 3x3 conv and a 1x1 conv. Each conv owns its own ReLU.
    """

    yaml_args = YamlArgs("mid_out", example="[-1, 1, {name}, [32, 48]]")

    def __init__(self, c1: int, cm: int, c2: int) -> None:
        """c1: input channels, cm: stem width, c2: output channels."""
        super().__init__()
        self.stem1 = Conv(c1, cm, 3, 2, act=nn.ReLU)
        self.stem2a = Conv(cm, cm // 2, 2, 1, 0, act=nn.ReLU)
        self.stem2b = Conv(cm // 2, cm, 2, 1, 0, act=nn.ReLU)
        self.stem3 = Conv(cm * 2, cm, 3, 2, act=nn.ReLU)
        self.stem4 = Conv(cm, c2, 1, 1, act=nn.ReLU)
        self.pool = nn.MaxPool2d(2, stride=1, padding=0, ceil_mode=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(b, c1, h, w) -> (b, c2, h / 4, w / 4)."""
        half = F.pad(self.stem1(x), _PAD_RIGHT_BOTTOM)  # (b, cm, h/2 + 1, w/2 + 1)
        conv_path = self.stem2b(F.pad(self.stem2a(half), _PAD_RIGHT_BOTTOM))
        both = torch.cat([self._pool(half), conv_path], dim=1)  # (b, 2 cm, h/2, w/2)
        return self.stem4(self.stem3(both))

    def _pool(self, x: torch.Tensor) -> torch.Tensor:
        """`self.pool(x)`, computed as two shifted element-wise maxima when no gradient is recorded.

        On CPU, max_pool2d of a 2x2 window at stride 1 is one of the slowest ops of the whole model
        (about 0.2 s for the 32 x 321 x 321 map of a 640 input on one core); taking the maximum of
        neighbouring rows and then of neighbouring columns gives bit-identical values in a few
        percent of that time. With autograd the pooling op is kept, so gradients on ties are routed
        as upstream routes them.
        """
        pool = self.pool
        if (torch.is_grad_enabled() and x.requires_grad) or not _is_2x2_stride1(pool):
            return pool(x)
        rows = torch.maximum(x[:, :, :-1], x[:, :, 1:])  # (b, c, h - 1, w)
        return torch.maximum(rows[..., :-1], rows[..., 1:])  # (b, c, h - 1, w - 1)


def _is_2x2_stride1(pool: nn.Module) -> bool:
    """True for an unpadded, undilated 2x2 max-pool at stride 1 (ceil_mode changes nothing at stride 1)."""

    def pair(v: int | Sequence[int]) -> tuple[int, ...]:
        return tuple(v) if isinstance(v, (tuple, list)) else (v, v)

    return (
        type(pool) is nn.MaxPool2d
        and pair(pool.kernel_size) == (2, 2)
        and pair(pool.stride) == (1, 1)
        and pair(pool.padding) == (0, 0)
        and pair(pool.dilation) == (1, 1)
        and not pool.return_indices
    )


class HGBlock(nn.Module):
    """PP-HGNetV2 stage block: n chained convs whose outputs (and the input) are concatenated,
    then squeezed to c2 / 2 (`sc`) and excited to c2 (`ec`), with a residual add when
    shortcut=True and c1 == c2.

    `act` is one activation shared by every conv of the block. The default, nn.ReLU, maps to
    `HGBlock.default_act`, a single ReLU shared by all HGBlocks built with the default, because
    upstream's default argument instance is shared that way and the module tree depends on it.
    Any other class is instantiated once per block.
    """

    default_act: nn.Module = nn.ReLU()
    yaml_args = YamlArgs("mid_out", repeats_at=4, example="[-1, 6, {name}, [48, 128, 3]]")

    def __init__(
        self,
        c1: int,
        cm: int,
        c2: int,
        k: int = 3,
        n: int = 6,
        lightconv: bool = False,
        shortcut: bool = False,
        act: ActArg = nn.ReLU,
    ) -> None:
        """c1: input channels, cm: width of each chained conv, c2: output channels, k: their kernel,
        n: how many are chained, lightconv: LightConv (1x1 + depth-wise) instead of Conv."""
        super().__init__()
        if act is nn.ReLU:
            act = self.default_act
        elif isinstance(act, type):
            act = resolve_activation(act, self.default_act, "HGBlock")
        conv_type = LightConv if lightconv else Conv
        in_widths = [c1, *[cm] * (n - 1)]  # the first conv reads the input, the others their predecessor
        self.m = nn.ModuleList(conv_type(width, cm, k=k, act=act) for width in in_widths)
        squeezed = c2 // 2
        self.sc = Conv(c1 + n * cm, squeezed, act=act)  # 1x1 over the concatenation
        self.ec = Conv(squeezed, c2, act=act)
        self.add = bool(shortcut) and c1 == c2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(b, c1, h, w) -> (b, c2, h, w)."""
        chain = [x]
        for conv in self.m:
            chain.append(conv(chain[-1]))
        out = self.ec(self.sc(torch.cat(chain, dim=1)))  # cat: (b, c1 + n cm, h, w)
        if self.add:
            out = out + x
        return out


class RepC3(nn.Module):
    """RT-DETR neck block: cv3(m(cv1(x)) + cv2(x)) where m is n RepConvs of width c2 * e.

    `cv3` is a 1x1 Conv when the hidden width differs from c2, otherwise nn.Identity (as upstream).
    """

    yaml_args = YamlArgs("out", repeats_at=2, example="[-1, 3, {name}, [256]]")

    def __init__(self, c1: int, c2: int, n: int = 3, e: float = 1.0) -> None:
        super().__init__()
        hidden = int(c2 * e)
        self.cv1, self.cv2 = Conv(c1, hidden), Conv(c1, hidden)  # the RepConv path and the bypass
        self.m = nn.Sequential(*(RepConv(hidden, hidden) for _ in range(n)))
        self.cv3 = nn.Identity() if hidden == c2 else Conv(hidden, c2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(b, c1, h, w) -> (b, c2, h, w)."""
        deep = self.m(self.cv1(x))
        return self.cv3(deep + self.cv2(x))


class ResNetBlock(nn.Module):
    """ResNet bottleneck: 1x1 (c2) -> 3x3 stride s (c2) -> 1x1 (e * c2, no act), plus shortcut, then ReLU.

    The shortcut is a strided 1x1 Conv (wrapped in nn.Sequential) when the shape changes,
    otherwise nn.Identity.
    """

    def __init__(self, c1: int, c2: int, s: int = 1, e: int = 4) -> None:
        super().__init__()
        c3 = e * c2
        self.cv1 = Conv(c1, c2)  # 1x1
        self.cv2 = Conv(c2, c2, 3, s, 1)  # 3x3, carries the stride
        self.cv3 = Conv(c2, c3, act=False)  # 1x1 expansion, activated only after the sum
        reshapes = s != 1 or c1 != c3
        self.shortcut = nn.Sequential(Conv(c1, c3, s=s, act=False)) if reshapes else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(b, c1, h, w) -> (b, e * c2, h / s, w / s)."""
        residual = self.cv3(self.cv2(self.cv1(x)))
        return F.relu(residual + self.shortcut(x))


def resnet_layer_out_channels(args: Sequence) -> int:
    """Output width of a ResNetLayer yaml row whose args are (c1, c2, s, is_first, n, e).

    The stem (is_first) outputs c2 channels; bottleneck stages output e * c2 (e defaults to 4).
    """
    c2 = args[1]
    is_first = args[3] if len(args) > 3 else False
    expansion = args[5] if len(args) > 5 else 4
    return c2 if is_first else c2 * expansion


class ResNetLayer(nn.Module):
    """One ResNet stage in `layer` (nn.Sequential).

    is_first=True: the stem, a 7x7 stride-2 Conv to c2 then a 3x3 stride-2 max-pool (overall stride 4).
    Otherwise n ResNetBlocks, the first with stride s, giving e * c2 channels.
    """

    yaml_args = YamlArgs(
        "given",
        out_channels=resnet_layer_out_channels,
        example="[-1, 1, {name}, [64, 64, 1, False, 3]]",
        min_args=2,
    )

    def __init__(
        self,
        c1: int,
        c2: int,
        s: int = 1,
        is_first: bool = False,
        n: int = 1,
        e: int = 4,
    ) -> None:
        super().__init__()
        self.is_first = is_first
        self.layer = self._stem(c1, c2) if is_first else self._stage(c1, c2, s, n, e)

    @staticmethod
    def _stem(c1: int, c2: int) -> nn.Sequential:
        """7x7 stride-2 Conv, then a 3x3 stride-2 max-pool: overall stride 4, c2 channels."""
        return nn.Sequential(Conv(c1, c2, k=7, s=2, p=3), nn.MaxPool2d(3, stride=2, padding=1))

    @staticmethod
    def _stage(c1: int, c2: int, s: int, n: int, e: int) -> nn.Sequential:
        """n bottlenecks; only the first changes stride and width."""
        first = ResNetBlock(c1, c2, s, e=e)
        return nn.Sequential(first, *[ResNetBlock(e * c2, c2, 1, e=e) for _ in range(n - 1)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(b, c1, h, w) -> (b, c2, h / 4, w / 4) for the stem, else (b, e * c2, h / s, w / s)."""
        return self.layer(x)
