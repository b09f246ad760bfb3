"""Classification losses shared by the detection criteria: varifocal and focal binary cross-entropy.

Both take raw logits and reduce the same way Ultralytics 8.3 does: the per-element loss is averaged
over dimension 1 (the queries of one image) and then summed over everything else. The RT-DETR
criterion rescales this by the number of queries over the number of ground-truth boxes.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


def _per_image_mean_sum(loss: torch.Tensor) -> torch.Tensor:
    """The reduction both losses share: mean over the queries (dim 1), sum over images and classes."""
    return loss.mean(1).sum()


class VarifocalLoss(nn.Module):
    """Varifocal loss (Zhang et al., arXiv 2008.13367) with an IoU-aware soft target.

    Positives are weighted by their target score (the IoU of the matched box), negatives by
    ``alpha * p**gamma`` so that confident false positives dominate the negative term.
    """

    @staticmethod
    def forward(
        pred_score: torch.Tensor,
        gt_score: torch.Tensor,
        label: torch.Tensor,
        alpha: float = 0.75,
        gamma: float = 2.0,
    ) -> torch.Tensor:
        """Scalar loss.

        Args:
            pred_score: (bs, nq, nc) logits.
            gt_score: (bs, nq, nc) soft targets in [0, 1], zero off the matched class.
            label: (bs, nq, nc) one-hot of the matched class (all zeros for unmatched queries).
            alpha: weight of the negative term.
            gamma: focusing exponent of the negative term.
        """
        negatives = alpha * pred_score.sigmoid().pow(gamma) * (1 - label)
        weight = negatives + gt_score * label
        # The logits may come from a half-precision forward; BCE is computed in float32 for stability.
        with torch.autocast(pred_score.device.type, enabled=False):
            bce = F.binary_cross_entropy_with_logits(pred_score.float(), gt_score.float(), reduction="none")
            return _per_image_mean_sum(bce * weight)


class FocalLoss(nn.Module):
    """Sigmoid focal loss (Lin et al., arXiv 1708.02002) on hard 0/1 labels."""

    @staticmethod
    def forward(
        pred: torch.Tensor,
        label: torch.Tensor,
        gamma: float = 1.5,
        alpha: float = 0.25,
    ) -> torch.Tensor:
        """Scalar loss.

        Args:
            pred: (bs, nq, nc) logits.
            label: (bs, nq, nc) float targets, 1 for the matched class and 0 elsewhere.
            gamma: focusing exponent; 0 gives plain BCE.
            alpha: weight of positives (negatives get ``1 - alpha``); 0 or less disables the weighting.
        """
        bce = F.binary_cross_entropy_with_logits(pred, label, reduction="none")
        prob = pred.sigmoid()
        p_t = label * prob + (1 - label) * (1 - prob)  # probability given to the true outcome
        focal = bce * (1.0 - p_t) ** gamma  # easy, well-classified elements fade out
        if alpha > 0:
            focal = focal * (label * alpha + (1 - label) * (1 - alpha))
        return _per_image_mean_sum(focal)
