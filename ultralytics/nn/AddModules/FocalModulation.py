"""Focal Modulation (FocalNet, arXiv 2203.11926) on channels-first feature maps.

Self-attention first scores every query against every key and then aggregates ("late
aggregation"). Focal modulation reverses the order: it aggregates context around every position
first, with a stack of depth-wise convolutions of growing kernel size plus one global average,
mixes those levels with per-position gates, and then modulates the query by an element-wise
product with the result. Cost is linear in the number of positions.

The article that adds this module to RT-DETR (replacing AIFI at layer 11 of rtdetr-l) works on
(B, C, H, W) tensors with 1x1 convolutions standing in for FocalNet's linear layers. We keep its
attribute names and creation order so that checkpoints written with the article's patch load
here, and fix its post-LayerNorm option, which normalised the last (width) axis instead of the
channels.
"""

from __future__ import annotations

import torch
import torch.nn as nn

__all__ = ("FocalModulation",)


class FocalModulation(nn.Module):
    """Focal modulation block; input and output are (B, dim, H, W).

    Args:
        dim: channels in and out.
        focal_window: kernel size of the first (finest) context level; must be odd.
        focal_level: number of depth-wise convolution levels before the global level.
        focal_factor: kernel size growth per level: level l uses focal_factor * l + focal_window.
        bias: bias in the input projection `f_linear` and the modulator projection `h`.
        proj_drop: dropout probability after the output projection.
        use_postln_in_modulation: LayerNorm over channels after the modulation product.
        normalize_modulator: divide the gated context by the number of levels (focal_level + 1).
    """

    def __init__(
        self,
        dim: int,
        focal_window: int = 3,
        focal_level: int = 2,
        focal_factor: int = 2,
        bias: bool = True,
        proj_drop: float = 0.0,
        use_postln_in_modulation: bool = False,
        normalize_modulator: bool = False,
    ):
        super().__init__()
        _check_arguments(dim, focal_window, focal_level, focal_factor, proj_drop)
        self.dim = dim
        self.focal_window = focal_window
        self.focal_level = focal_level
        self.focal_factor = focal_factor
        self.use_postln_in_modulation = use_postln_in_modulation
        self.normalize_modulator = normalize_modulator

        # One 1x1 projection yields the query, the context and one gate per level (+1 global).
        self.f_linear = nn.Conv2d(dim, 2 * dim + (focal_level + 1), kernel_size=1, bias=bias)
        self.h = nn.Conv2d(dim, dim, kernel_size=1, stride=1, bias=bias)
        self.act = nn.GELU()
        self.proj = nn.Conv2d(dim, dim, kernel_size=1)
        self.proj_drop = nn.Dropout(proj_drop)

        self.focal_layers = nn.ModuleList()
        self.kernel_sizes = []
        for level in range(focal_level):
            k = focal_factor * level + focal_window
            self.focal_layers.append(
                nn.Sequential(
                    nn.Conv2d(dim, dim, kernel_size=k, stride=1, groups=dim, padding=k // 2, bias=False),
                    nn.GELU(),
                )
            )
            self.kernel_sizes.append(k)
        if use_postln_in_modulation:
            self.ln = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, C, H, W)."""
        # Only attributes the article's class also has are read here, so that a module unpickled
        # from a checkpoint written with the article's code runs through this forward unchanged.
        c = x.shape[1]

        # 1. Input projection, split into query, context and gates.
        q, ctx, gates = torch.split(self.f_linear(x), (c, c, self.focal_level + 1), dim=1)
        # q, ctx: (B, C, H, W); gates: (B, L + 1, H, W)

        # 2. Hierarchical contextualisation with gated aggregation: each level sees a wider window
        #    of the previous level's output.
        ctx_all = 0.0
        for level, layer in enumerate(self.focal_layers):
            ctx = layer(ctx)
            ctx_all = ctx_all + ctx * gates[:, level : level + 1]
        # Two single-axis means, as the article computes them: a joint mean rounds differently, and
        # RT-DETR's top-k query selection can turn a 1e-8 difference into a different query order.
        ctx_global = self.act(ctx.mean(2, keepdim=True).mean(3, keepdim=True))  # (B, C, 1, 1)
        ctx_all = ctx_all + ctx_global * gates[:, self.focal_level :]
        if self.normalize_modulator:
            ctx_all = ctx_all / (self.focal_level + 1)

        # 3. Modulation: the query is scaled element-wise by the projected context.
        out = q * self.h(ctx_all)
        if self.use_postln_in_modulation:
            # LayerNorm normalises the last axis, so move channels there and back.
            out = self.ln(out.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)

        # 4. Output projection.
        return self.proj_drop(self.proj(out))


def _check_arguments(dim: int, focal_window: int, focal_level: int, focal_factor: int, proj_drop: float) -> None:
    """Reject settings that would build a module whose output shape differs from its input."""
    where = "FocalModulation(dim, focal_window=3, focal_level=2, focal_factor=2, ...)"
    if not isinstance(dim, int) or dim < 1:
        raise ValueError(f"{where}: dim must be a positive int (the input channel count), got {dim!r}")
    if not isinstance(focal_level, int) or focal_level < 0:
        raise ValueError(f"{where}: focal_level must be an int >= 0, got {focal_level!r}")
    if not isinstance(focal_window, int) or not isinstance(focal_factor, int):
        raise ValueError(f"{where}: focal_window and focal_factor must be ints, got {focal_window!r}, {focal_factor!r}")
    even = [focal_factor * level + focal_window for level in range(focal_level)]
    even = [k for k in even if k < 1 or k % 2 == 0]
    if even:
        raise ValueError(
            f"{where}: every level's kernel size focal_factor * level + focal_window must be odd and positive "
            f"so that 'same' padding keeps H and W; focal_window={focal_window}, focal_factor={focal_factor} "
            f"give {even}. Use an odd focal_window and an even focal_factor."
        )
    if not 0.0 <= proj_drop < 1.0:
        raise ValueError(f"{where}: proj_drop must lie in [0, 1), got {proj_drop!r}")
