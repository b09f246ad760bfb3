"""Box geometry: format conversions, clipping, and the overlap measures (IoU, GIoU, DIoU, CIoU).

Conversions accept a torch tensor or a numpy array of shape (..., 4) and return a new object of
the same type; their input is never modified. Each one works axis by axis: column pair (0, 2)
holds the x values of a box and (1, 3) the y values, whatever the format, so one helper per
idea (corners from centre and extent, and back) serves every format.

The overlap measures live here, beside the conversions they build on, so that the loss and the
matcher can use them without importing the metrics or any plotting code. `ultralytics.utils.metrics`
re-exports them under the same names.
"""

from __future__ import annotations

import math
import time
from typing import NamedTuple

import numpy as np
import torch

# (first, second) column of the x axis and of the y axis in every 4-value box format.
_AXES = ((0, 2), (1, 3))


def _empty_like(x):
    return torch.empty_like(x) if isinstance(x, torch.Tensor) else np.empty_like(x)


def _copy(x):
    return x.clone() if isinstance(x, torch.Tensor) else np.copy(x)


def _check_last_dim(x, fn: str) -> None:
    if x.shape[-1] != 4:
        raise ValueError(f"{fn} expects boxes with 4 values in the last dimension, got shape {tuple(x.shape)}")


def _centre_extent(low, high):
    """One axis: the two edges -> the midpoint and the length."""
    return (low + high) / 2, high - low


def _edges(centre, extent):
    """One axis: the midpoint and the length -> the two edges."""
    half = extent / 2
    return centre - half, centre + half


# ------------------------------------------------------------------------------ conversions


def xyxy2xywh(x):
    """(x1, y1, x2, y2) corners -> (xc, yc, w, h) centre and size."""
    _check_last_dim(x, "xyxy2xywh")
    out = _empty_like(x)
    for a, b in _AXES:
        out[..., a], out[..., b] = _centre_extent(x[..., a], x[..., b])
    return out


def xywh2xyxy(x):
    """(xc, yc, w, h) centre and size -> (x1, y1, x2, y2) corners."""
    _check_last_dim(x, "xywh2xyxy")
    out = _empty_like(x)
    for a, b in _AXES:
        out[..., a], out[..., b] = _edges(x[..., a], x[..., b])
    return out


def xywhn2xyxy(x, w: int = 640, h: int = 640, padw: float = 0, padh: float = 0):
    """Normalised (xc, yc, w, h) -> pixel corners in a w x h image shifted by (padw, padh)."""
    _check_last_dim(x, "xywhn2xyxy")
    out = _empty_like(x)
    for (a, b), size, pad in zip(_AXES, (w, h), (padw, padh)):
        low, high = _edges(x[..., a], x[..., b])
        out[..., a], out[..., b] = size * low + pad, size * high + pad
    return out


def xyxy2xywhn(x, w: int = 640, h: int = 640, clip: bool = False, eps: float = 0.0):
    """Pixel corners -> (xc, yc, w, h) normalised by image size, optionally clipped to the image first."""
    _check_last_dim(x, "xyxy2xywhn")
    if clip:
        x = clip_boxes(_copy(x), (h - eps, w - eps))
    out = _empty_like(x)
    for (a, b), size in zip(_AXES, (w, h)):
        centre, extent = _centre_extent(x[..., a], x[..., b])
        out[..., a], out[..., b] = centre / size, extent / size
    return out


def xywh2ltwh(x):
    """(xc, yc, w, h) -> (left, top, w, h), the COCO json box format."""
    _check_last_dim(x, "xywh2ltwh")
    out = _copy(x)
    for a, b in _AXES:
        out[..., a] = _edges(x[..., a], x[..., b])[0]
    return out


def xyxy2ltwh(x):
    """(x1, y1, x2, y2) -> (left, top, w, h), the COCO json box format."""
    _check_last_dim(x, "xyxy2ltwh")
    out = _copy(x)
    for a, b in _AXES:
        out[..., b] = _centre_extent(x[..., a], x[..., b])[1]
    return out


def ltwh2xywh(x):
    """(left, top, w, h), the COCO json box format -> (xc, yc, w, h) centre and size."""
    _check_last_dim(x, "ltwh2xywh")
    out = _copy(x)
    for a, b in _AXES:
        out[..., a] = x[..., a] + x[..., b] / 2
    return out


def ltwh2xyxy(x):
    """(left, top, w, h), the COCO json box format -> (x1, y1, x2, y2) corners."""
    _check_last_dim(x, "ltwh2xyxy")
    out = _copy(x)
    for a, b in _AXES:
        out[..., b] = x[..., a] + x[..., b]
    return out


def make_divisible(x: float, divisor: int | torch.Tensor) -> int:
    """Smallest multiple of `divisor` that is >= x; a tensor of strides counts as its largest stride."""
    from ultralytics.nn.modules.yaml_args import make_divisible as channel_multiple  # the one rounding rule

    step = int(divisor.max()) if isinstance(divisor, torch.Tensor) else divisor
    return channel_multiple(x, step)


def clip_boxes(boxes, shape):
    """Clamp (x1, y1, x2, y2) boxes in place into an image of shape (h, w, ...); returns `boxes`."""
    h, w = shape[:2]
    for column, limit in enumerate((w, h, w, h)):
        if isinstance(boxes, torch.Tensor):
            boxes[..., column].clamp_(0, limit)
        else:
            boxes[..., column] = np.clip(boxes[..., column], 0, limit)
    return boxes


# --------------------------------------------------------------------------- overlap measures


class _Boxes(NamedTuple):
    """A set of boxes split into (..., 1) columns: the corners, and the width and height used for areas."""

    left: torch.Tensor
    top: torch.Tensor
    right: torch.Tensor
    bottom: torch.Tensor
    width: torch.Tensor
    height: torch.Tensor

    @classmethod
    def split(cls, box: torch.Tensor, xywh: bool, eps: float) -> _Boxes:
        if xywh:
            xc, yc, width, height = box.chunk(4, -1)
            (left, right), (top, bottom) = _edges(xc, width), _edges(yc, height)
            return cls(left, top, right, bottom, width, height)
        left, top, right, bottom = box.chunk(4, -1)
        # The eps on the height keeps CIoU's atan(width / height) finite for flat boxes.
        return cls(left, top, right, bottom, right - left, bottom - top + eps)

    def area(self) -> torch.Tensor:
        return self.width * self.height


def _intersection(p: _Boxes, q: _Boxes) -> torch.Tensor:
    """(..., 1) area shared by p and q; zero when they do not touch."""
    overlap_x = (p.right.minimum(q.right) - p.left.maximum(q.left)).clamp_(0)
    overlap_y = (p.bottom.minimum(q.bottom) - p.top.maximum(q.top)).clamp_(0)
    return overlap_x * overlap_y


def _hull_size(p: _Boxes, q: _Boxes) -> tuple[torch.Tensor, torch.Tensor]:
    """Width and height of the smallest axis-aligned box that holds both p and q."""
    hull_w = p.right.maximum(q.right) - p.left.minimum(q.left)
    hull_h = p.bottom.maximum(q.bottom) - p.top.minimum(q.top)
    return hull_w, hull_h


def _centre_gap_sq(p: _Boxes, q: _Boxes) -> torch.Tensor:
    """Squared distance between the centres of p and q (the sums are twice the centres, hence / 4)."""
    dx = q.left + q.right - p.left - p.right
    dy = q.top + q.bottom - p.top - p.bottom
    return (dx.pow(2) + dy.pow(2)) / 4


def _aspect_penalty(p: _Boxes, q: _Boxes) -> torch.Tensor:
    """CIoU's v: how far apart the aspect ratios are, 0 for equal shapes."""
    angle_gap = (q.width / q.height).atan() - (p.width / p.height).atan()
    return (4 / math.pi**2) * angle_gap.pow(2)


def bbox_iou(
    box1: torch.Tensor,
    box2: torch.Tensor,
    xywh: bool = True,
    GIoU: bool = False,
    DIoU: bool = False,
    CIoU: bool = False,
    eps: float = 1e-7,
) -> torch.Tensor:
    """Element-wise IoU, or one of its penalised variants, of two broadcastable box sets.

    Args:
        box1: (..., 4) boxes.
        box2: (..., 4) boxes, broadcastable against ``box1``.
        xywh: True when boxes are (xc, yc, w, h); False for (x1, y1, x2, y2).
        GIoU, DIoU, CIoU: the variant to return. CIoU takes precedence over DIoU, DIoU over
            GIoU; with none set the plain IoU is returned.
        eps: keeps every division finite for zero-size boxes.

    Returns:
        (..., 1) values; plain IoU lies in [0, 1], the variants in (-1, 1].
    """
    p, q = _Boxes.split(box1, xywh, eps), _Boxes.split(box2, xywh, eps)
    inter = _intersection(p, q)
    union = p.area() + q.area() - inter + eps
    iou = inter / union
    if not (GIoU or DIoU or CIoU):
        return iou

    hull_w, hull_h = _hull_size(p, q)
    if not (DIoU or CIoU):  # GIoU: penalise the part of the hull that neither box covers
        hull_area = hull_w * hull_h + eps
        return iou - (hull_area - union) / hull_area

    hull_diag_sq = hull_w.pow(2) + hull_h.pow(2) + eps
    distance_term = _centre_gap_sq(p, q) / hull_diag_sq
    if not CIoU:
        return iou - distance_term
    v = _aspect_penalty(p, q)
    with torch.no_grad():
        # The CIoU paper treats the trade-off weight as a constant: no gradient flows through it.
        weight = v / (v - iou + (1 + eps))
    return iou - (distance_term + v * weight)


def box_iou(box1: torch.Tensor, box2: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """IoU of every box in ``box1`` with every box in ``box2``.

    Args:
        box1: (N, 4) boxes in xyxy.
        box2: (M, 4) boxes in xyxy.
        eps: added to the union so that degenerate boxes do not divide by zero.

    Returns:
        (N, M) IoU matrix.
    """
    lo1, hi1 = box1[:, None, :2], box1[:, None, 2:]  # (N, 1, 2)
    lo2, hi2 = box2[None, :, :2], box2[None, :, 2:]  # (1, M, 2)
    inter = (torch.min(hi1, hi2) - torch.max(lo1, lo2)).clamp_(0).prod(2)  # (N, M)
    area1, area2 = (hi1 - lo1).prod(2), (hi2 - lo2).prod(2)  # (N, 1), (1, M)
    return inter / (area1 + area2 - inter + eps)


# ------------------------------------------------------------------------------------ timing


class Profile:
    """Context manager and decorator that adds the seconds spent inside it to `self.t`.

    On a CUDA device the clock is read only after the queued kernels finish, so the time covers
    the work itself and not just its launch.
    """

    def __init__(self, t: float = 0.0, device: torch.device | None = None):
        self.t = t
        self.device = device
        self.cuda = device is not None and str(device).split(":")[0] == "cuda"

    def __enter__(self):
        self.start = self.time()
        return self

    def __exit__(self, *exc):
        self.dt = self.time() - self.start  # this visit only
        self.t += self.dt

    def __str__(self) -> str:
        return f"{self.t:.6f} s in total"

    def time(self) -> float:
        """Now, in seconds, after the device has caught up."""
        if self.cuda:
            torch.cuda.synchronize(self.device)
        return time.perf_counter()
