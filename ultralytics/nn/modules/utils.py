"""Small helpers shared by the transformer modules and the RT-DETR head: cloning, initialisation, logit
transforms and the pure-PyTorch multi-scale deformable attention kernel."""

from __future__ import annotations

import copy
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = (
    "_get_clones",
    "bias_init_with_prob",
    "linear_init",
    "inverse_sigmoid",
    "multi_scale_deformable_attn_pytorch",
)


def _get_clones(module: nn.Module, n: int) -> nn.ModuleList:
    """Return a ModuleList of `n` independent deep copies of `module` (they start with equal weights)."""
    return nn.ModuleList(copy.deepcopy(module) for _ in range(n))


def bias_init_with_prob(prior_prob: float = 0.01) -> float:
    """Bias value b such that sigmoid(b) == prior_prob, i.e. the logit of the prior probability."""
    if not 0.0 < prior_prob < 1.0:
        raise ValueError(f"bias_init_with_prob: prior_prob must lie strictly between 0 and 1, got {prior_prob}")
    return float(-math.log((1.0 - prior_prob) / prior_prob))


def linear_init(module: nn.Linear) -> None:
    """Fill a linear layer's weight (and bias, if any) from U(-1/sqrt(out_features), 1/sqrt(out_features))."""
    bound = 1.0 / math.sqrt(module.weight.shape[0])
    nn.init.uniform_(module.weight, -bound, bound)
    if getattr(module, "bias", None) is not None:
        nn.init.uniform_(module.bias, -bound, bound)


def inverse_sigmoid(x: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Logit of `x` after clamping it to [0, 1]; numerator and denominator are kept >= eps so 0 and 1 stay finite."""
    x = x.clamp(min=0.0, max=1.0)
    return torch.log(x.clamp(min=eps) / (1.0 - x).clamp(min=eps))


def multi_scale_deformable_attn_pytorch(
    value: torch.Tensor,
    value_spatial_shapes: torch.Tensor | list,
    sampling_locations: torch.Tensor,
    attention_weights: torch.Tensor,
) -> torch.Tensor:
    """Multi-scale deformable attention (Deformable-DETR) with `F.grid_sample`, no custom kernel.

    Args:
        value: (bs, num_keys, num_heads, head_dim), the flattened feature maps of all levels, level after level.
        value_spatial_shapes: (num_levels, 2) as (H, W) per level; sum of H * W must equal num_keys.
        sampling_locations: (bs, num_queries, num_heads, num_levels, num_points, 2), normalised (x, y) in
            [0, 1] with (0, 0) the top-left corner of the map; points outside read zeros.
        attention_weights: (bs, num_queries, num_heads, num_levels, num_points), usually softmax-normalised
            over levels * points.

    Returns:
        (bs, num_queries, num_heads * head_dim): per head, the weighted sum of the bilinearly sampled values.
    """
    bs, _, num_heads, head_dim = value.shape
    _, num_queries, _, num_levels, num_points, _ = sampling_locations.shape
    shapes = [(int(h), int(w)) for h, w in value_spatial_shapes]
    value_list = value.split([h * w for h, w in shapes], dim=1)
    # grid_sample wants coordinates in [-1, 1]
    sampling_grids = 2 * sampling_locations - 1
    # (bs, nq, heads, levels, points) -> (levels, bs*heads, 1, nq, points); one small copy that makes each
    # level's slice contiguous, which the broadcast multiply below runs noticeably faster on
    weights = attention_weights.permute(3, 0, 2, 1, 4).reshape(num_levels, bs * num_heads, 1, num_queries, num_points)
    output = None
    for level, (h, w) in enumerate(shapes):
        # (bs, h*w, heads, head_dim) -> (bs*heads, head_dim, h, w): heads are folded into the batch
        value_l = value_list[level].flatten(2).transpose(1, 2).reshape(bs * num_heads, head_dim, h, w)
        # (bs, nq, heads, points, 2) -> (bs*heads, nq, points, 2)
        grid_l = sampling_grids[:, :, :, level].transpose(1, 2).flatten(0, 1)
        # (bs*heads, head_dim, nq, points)
        sampled = F.grid_sample(value_l, grid_l, mode="bilinear", padding_mode="zeros", align_corners=False)
        # Summing level by level avoids stacking all levels' samples into one large tensor (faster on CPU,
        # same result up to float rounding). (bs*heads, head_dim, nq)
        level_sum = (sampled * weights[level]).sum(-1)
        output = level_sum if output is None else output + level_sum
    # (bs*heads, head_dim, nq) -> (bs, nq, heads*head_dim)
    return output.view(bs, num_heads * head_dim, num_queries).transpose(1, 2).contiguous()
