"""Convolution building blocks used by the RT-DETR backbones and necks.

Class names, constructor argument order, submodule names and creation order follow Ultralytics
8.3.50, so that yaml rows, state_dict keys and pickled checkpoints carry over unchanged.

Activation sharing matters for the module tree: upstream keeps one class-level activation
instance (`Conv.default_act`, `RepConv.default_act`) that every layer built with `act=True`
reuses. `nn.Module.modules()` yields a shared module only once, so the layer count printed by
`model.info()` depends on that sharing, and it is reproduced here.
"""

from __future__ import annotations

import math
import numbers
from typing import Sequence, Union

import torch
import torch.nn as nn
import torch.nn.functional as F

from ultralytics.nn.modules.yaml_args import YamlArgs

__all__ = "autopad", "Conv", "DWConv", "LightConv", "RepConv", "Concat"

# What an `act` argument may be: True (the class's shared default), False/None (identity),
# a module instance (used as given, possibly shared) or a module class (instantiated here).
ActArg = Union[bool, None, nn.Module, type]
Kernel = Union[int, Sequence[int]]


def autopad(k: Kernel, p: Kernel | None = None, d: int = 1) -> int | list[int]:
    """Padding that keeps the spatial size at stride 1 ('same' padding).

    An explicit `p` is returned unchanged. With dilation d the kernel covers d * (k - 1) + 1 pixels.
    """
    if p is not None:
        return p
    sides = [k] if isinstance(k, int) else k
    halves = [(d * (side - 1) + 1) // 2 for side in sides]  # half the dilated extent per axis
    return halves[0] if isinstance(k, int) else halves


def resolve_activation(act: ActArg, default: nn.Module, owner: str) -> nn.Module:
    """Turn an `act` argument into the module to store.

    True gives `default` itself (shared, as upstream does), False or None a new nn.Identity,
    an instance is returned as is, and an nn.Module subclass is instantiated without arguments.
    """
    if act is True:
        return default
    if act is False or act is None:
        return nn.Identity()
    if isinstance(act, nn.Module):
        return act
    if isinstance(act, type) and issubclass(act, nn.Module):
        return act()
    raise TypeError(
        f"{owner}: act={act!r} is not accepted; use True (default activation), False (no activation), "
        f"an nn.Module instance such as nn.ReLU(), or an nn.Module class such as nn.ReLU"
    )


def _check_channels(owner: str, c1: int, c2: int, g: int) -> None:
    """Reject channel/group combinations before nn.Conv2d fails with a less specific message."""
    for name, value in (("c1", c1), ("c2", c2), ("g", g)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
            raise ValueError(f"{owner}: {name}={value!r} must be a positive integer")
    if c1 % g or c2 % g:
        raise ValueError(
            f"{owner}: groups g={g} must divide both the input channels c1={c1} and the output channels c2={c2}"
        )


class Conv(nn.Module):
    """Conv2d (no bias) -> BatchNorm2d -> activation.

    Submodules, in creation order: `conv`, `bn`, `act`. After BN folding (`BaseModel.fuse`) `bn`
    is removed, `conv` carries a bias and `forward` is pointed at `forward_fuse`.
    """

    default_act: nn.Module = nn.SiLU()  # one instance shared by every Conv built with act=True
    yaml_args = YamlArgs("out", example="[-1, 1, {name}, [256, 3, 2]]")

    def __init__(
        self,
        c1: int,
        c2: int,
        k: Kernel = 1,
        s: Kernel = 1,
        p: Kernel | None = None,
        g: int = 1,
        d: int = 1,
        act: ActArg = True,
    ) -> None:
        """c1/c2: input/output channels, k: kernel, s: stride, p: padding (None = same), g: groups, d: dilation."""
        super().__init__()
        owner = type(self).__name__
        _check_channels(owner, c1, c2, g)
        # no conv bias: the BatchNorm that follows has its own shift
        self.conv = nn.Conv2d(
            c1,
            c2,
            kernel_size=k,
            stride=s,
            padding=autopad(k, p, d),
            dilation=d,
            groups=g,
            bias=False,
        )
        self.bn = nn.BatchNorm2d(num_features=c2)
        self.act = resolve_activation(act, self.default_act, owner)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(b, c1, h, w) -> (b, c2, h', w')."""
        return self.act(self.bn(self.conv(x)))

    def forward_fuse(self, x: torch.Tensor) -> torch.Tensor:
        """Forward once BN has been folded into `conv`."""
        return self.act(self.conv(x))


class DWConv(Conv):
    """Depth-wise convolution: a Conv whose groups are gcd(c1, c2) (= c1 when c1 == c2)."""

    def __init__(
        self,
        c1: int,
        c2: int,
        k: Kernel = 1,
        s: Kernel = 1,
        d: int = 1,
        act: ActArg = True,
    ) -> None:
        groups = math.gcd(c1, c2)  # one group per channel when c1 == c2
        super().__init__(c1, c2, k, s, g=groups, d=d, act=act)


class LightConv(nn.Module):
    """PP-HGNetV2 light convolution: 1x1 Conv without activation (`conv1`), then a k x k DWConv (`conv2`).

    With the default `act=nn.ReLU` every LightConv shares one class-level ReLU, as upstream's default
    argument instance is shared; HGBlock passes its own activation instead.
    """

    default_act: nn.Module = nn.ReLU()
    yaml_args = YamlArgs("out", example="[-1, 1, {name}, [256, 3]]")

    def __init__(
        self,
        c1: int,
        c2: int,
        k: Kernel = 1,
        act: ActArg = nn.ReLU,
    ) -> None:
        super().__init__()
        act = self.default_act if act is nn.ReLU else act
        self.conv1 = Conv(c1, c2, act=False)  # 1x1 channel mixing
        self.conv2 = DWConv(c2, c2, k=k, act=act)  # spatial, per channel

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(b, c1, h, w) -> (b, c2, h, w)."""
        return self.conv2(self.conv1(x))


class RepConv(nn.Module):
    """RepVGG-style block: 3x3 Conv+BN and 1x1 Conv+BN branches (plus an optional BN identity branch), summed.

    For inference `fuse_convs()` folds all branches into one biased 3x3 `conv`; the result is the
    same function in eval mode. Submodules before fusing, in creation order: `act`, `bn` (only when
    bn=True, c1 == c2 and s == 1; otherwise the attribute is None), `conv1`, `conv2`.
    `deploy=True` builds the single fused `conv` directly (for loading fused weights).
    """

    default_act: nn.Module = nn.SiLU()  # shared like Conv.default_act, but a separate instance
    yaml_args = YamlArgs("out", example="[-1, 1, {name}, [256, 3, 1]]")

    def __init__(
        self,
        c1: int,
        c2: int,
        k: int = 3,
        s: int = 1,
        p: int = 1,
        g: int = 1,
        d: int = 1,
        act: ActArg = True,
        bn: bool = False,
        deploy: bool = False,
    ) -> None:
        super().__init__()
        if k != 3 or p != 1 or d != 1:
            raise ValueError(
                f"RepConv: got k={k}, p={p}, d={d}; only k=3, p=1, d=1 are supported, because the 1x1 branch "
                f"is folded into the centre of the 3x3 kernel"
            )
        _check_channels("RepConv", c1, c2, g)
        self.g = g
        self.c1 = c1
        self.c2 = c2
        self.act = resolve_activation(act, self.default_act, "RepConv")
        if deploy:
            self._install_fused(nn.Conv2d(c1, c2, kernel_size=3, stride=s, padding=1, groups=g, bias=True))
            return
        # the identity branch only exists where input and output line up channel for channel
        has_identity = bn and c1 == c2 and s == 1
        self.bn = nn.BatchNorm2d(c1) if has_identity else None
        self.conv1 = Conv(c1, c2, k=3, s=s, p=1, g=g, act=False)
        self.conv2 = Conv(c1, c2, k=1, s=s, p=0, g=g, act=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(b, c1, h, w) -> (b, c2, h / s, w / s)."""
        identity = 0 if self.bn is None else self.bn(x)
        return self.act(self.conv1(x) + self.conv2(x) + identity)

    def forward_fuse(self, x: torch.Tensor) -> torch.Tensor:
        """Forward through the single folded convolution."""
        return self.act(self.conv(x))

    def _install_fused(self, conv: nn.Conv2d) -> None:
        """Make `conv` the block's only convolution and route forward through it."""
        self.conv = conv
        self.forward = self.forward_fuse

    def get_equivalent_kernel_bias(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Kernel (c2, c1 / g, 3, 3) and bias (c2,) of one conv equal to the sum of the branches in eval mode."""
        # every branch as (3x3 kernel, BatchNorm); the 1x1 kernel sits at the centre of a 3x3 one
        branches = [
            (self.conv1.conv.weight, self.conv1.bn),
            (F.pad(self.conv2.conv.weight, [1, 1, 1, 1]), self.conv2.bn),
        ]
        if self.bn is not None:
            branches.append((self._identity_kernel(self.bn.weight.device), self.bn))
        folded = [_fold_bn(weight, norm) for weight, norm in branches]
        return sum(w for w, _ in folded), sum(b for _, b in folded)

    def _identity_kernel(self, device: torch.device) -> torch.Tensor:
        """3x3 kernel (c1, c1 / g, 3, 3) whose grouped convolution returns its input."""
        per_group = self.c1 // self.g
        kernel = torch.zeros(self.c1, per_group, 3, 3, device=device)
        channels = torch.arange(self.c1, device=device)
        kernel[channels, channels % per_group, 1, 1] = 1.0
        return kernel

    @torch.no_grad()
    def fuse_convs(self) -> None:
        """Replace the branches by one biased `conv` and delete `conv1`, `conv2` and `bn`; idempotent."""
        if "conv" in self._modules:
            return
        weight, shift = self.get_equivalent_kernel_bias()
        template = self.conv1.conv
        fused = nn.Conv2d(
            in_channels=template.in_channels,
            out_channels=template.out_channels,
            kernel_size=template.kernel_size,
            stride=template.stride,
            padding=template.padding,
            dilation=template.dilation,
            groups=template.groups,
            bias=True,
        ).requires_grad_(False)
        fused.to(weight.device, weight.dtype)
        fused.weight.copy_(weight)
        fused.bias.copy_(shift)
        for param in self.parameters():
            param.detach_()
        for branch in ("conv1", "conv2", "bn"):
            delattr(self, branch)
        self._install_fused(fused)


def _fold_bn(kernel: torch.Tensor, norm: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """Kernel and bias of a bias-free convolution followed by `norm` in eval mode."""
    scale = norm.weight / (norm.running_var + norm.eps).sqrt()  # (c_out,)
    return kernel * scale.reshape(-1, 1, 1, 1), norm.bias - norm.running_mean * scale


class Concat(nn.Module):
    """Concatenate a list of tensors along `dimension` (channels by default)."""

    yaml_args = YamlArgs("sum", example="[[-1, 6], 1, {name}, [1]]")

    def __init__(self, dimension: int = 1) -> None:
        super().__init__()
        self.d = dimension

    def forward(self, x: list[torch.Tensor]) -> torch.Tensor:
        """[(b, c_i, h, w), ...] -> (b, sum c_i, h, w)."""
        return torch.cat(x, dim=self.d)
