"""Box overlap measures and detection metrics (precision, recall, AP, confusion matrix)."""

from __future__ import annotations

import math

import torch


def box_iou(box1: torch.Tensor, box2: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """IoU of every box in ``box1`` with every box in ``box2``.

    Args:
        box1: (N, 4) boxes in xyxy.
        box2: (M, 4) boxes in xyxy.
        eps: added to the union so that degenerate boxes do not divide by zero.

    Returns:
        (N, M) IoU matrix.
    """
    (a1, a2), (b1, b2) = box1.unsqueeze(1).chunk(2, 2), box2.unsqueeze(0).chunk(2, 2)  # (N,1,2), (1,M,2)
    inter = (torch.min(a2, b2) - torch.max(a1, b1)).clamp_(0).prod(2)  # (N, M)
    return inter / ((a2 - a1).prod(2) + (b2 - b1).prod(2) - inter + eps)


def bbox_iou(
    box1: torch.Tensor,
    box2: torch.Tensor,
    xywh: bool = True,
    GIoU: bool = False,
    DIoU: bool = False,
    CIoU: bool = False,
    eps: float = 1e-7,
) -> torch.Tensor:
    """Element-wise IoU (or its generalised/distance/complete variant) of two broadcastable box sets.

    Args:
        box1: (..., 4) boxes.
        box2: (..., 4) boxes, broadcastable against ``box1``.
        xywh: True when boxes are centre-x, centre-y, width, height; False for xyxy.
        GIoU, DIoU, CIoU: which variant to return; at most one should be set, CIoU wins over
            DIoU which wins over GIoU, plain IoU when none is.
        eps: guards the divisions against zero-size boxes.

    Returns:
        (..., 1) overlap values; GIoU/DIoU/CIoU lie in (-1, 1].
    """
    if xywh:
        (x1, y1, w1, h1), (x2, y2, w2, h2) = box1.chunk(4, -1), box2.chunk(4, -1)
        hw1, hh1, hw2, hh2 = w1 / 2, h1 / 2, w2 / 2, h2 / 2
        b1_x1, b1_x2, b1_y1, b1_y2 = x1 - hw1, x1 + hw1, y1 - hh1, y1 + hh1
        b2_x1, b2_x2, b2_y1, b2_y2 = x2 - hw2, x2 + hw2, y2 - hh2, y2 + hh2
    else:
        b1_x1, b1_y1, b1_x2, b1_y2 = box1.chunk(4, -1)
        b2_x1, b2_y1, b2_x2, b2_y2 = box2.chunk(4, -1)
        # Heights are clamped so that the aspect-ratio term of CIoU never divides by zero.
        w1, h1 = b1_x2 - b1_x1, (b1_y2 - b1_y1).clamp(eps)
        w2, h2 = b2_x2 - b2_x1, (b2_y2 - b2_y1).clamp(eps)

    inter = (b1_x2.minimum(b2_x2) - b1_x1.maximum(b2_x1)).clamp_(0) * (
        b1_y2.minimum(b2_y2) - b1_y1.maximum(b2_y1)
    ).clamp_(0)
    union = w1 * h1 + w2 * h2 - inter + eps
    iou = inter / union
    if not (CIoU or DIoU or GIoU):
        return iou

    # Width and height of the smallest box enclosing both.
    cw = b1_x2.maximum(b2_x2) - b1_x1.minimum(b2_x1)
    ch = b1_y2.maximum(b2_y2) - b1_y1.minimum(b2_y1)
    if CIoU or DIoU:
        c2 = cw.pow(2) + ch.pow(2) + eps  # squared diagonal of the enclosing box
        rho2 = ((b2_x1 + b2_x2 - b1_x1 - b1_x2).pow(2) + (b2_y1 + b2_y2 - b1_y1 - b1_y2).pow(2)) / 4
        if CIoU:
            v = (4 / math.pi**2) * ((w2 / h2).atan() - (w1 / h1).atan()).pow(2)
            with torch.no_grad():
                # The trade-off weight is treated as a constant, as in the CIoU paper.
                alpha = v / (v - iou + (1 + eps))
            return iou - (rho2 / c2 + v * alpha)
        return iou - rho2 / c2
    c_area = cw * ch + eps
    return iou - (c_area - union) / c_area
