"""Box format conversions and small geometric helpers shared by data, loss, metrics and prediction.

Every conversion accepts a torch tensor or a numpy array of shape (..., 4) and returns the same
type; the input is never modified in place.
"""

from __future__ import annotations

import time

import numpy as np
import torch

def _empty_like(x):
    return torch.empty_like(x) if isinstance(x, torch.Tensor) else np.empty_like(x)


def _check_last_dim(x, fn: str) -> None:
    if x.shape[-1] != 4:
        raise ValueError(f"{fn} expects boxes with 4 values in the last dimension, got shape {tuple(x.shape)}")


def xyxy2xywh(x):
    """(x1, y1, x2, y2) corners -> (xc, yc, w, h) centre and size."""
    _check_last_dim(x, "xyxy2xywh")
    y = _empty_like(x)
    y[..., 0] = (x[..., 0] + x[..., 2]) / 2
    y[..., 1] = (x[..., 1] + x[..., 3]) / 2
    y[..., 2] = x[..., 2] - x[..., 0]
    y[..., 3] = x[..., 3] - x[..., 1]
    return y


def xywh2xyxy(x):
    """(xc, yc, w, h) centre and size -> (x1, y1, x2, y2) corners."""
    _check_last_dim(x, "xywh2xyxy")
    y = _empty_like(x)
    half_w, half_h = x[..., 2] / 2, x[..., 3] / 2
    y[..., 0] = x[..., 0] - half_w
    y[..., 1] = x[..., 1] - half_h
    y[..., 2] = x[..., 0] + half_w
    y[..., 3] = x[..., 1] + half_h
    return y


def xywhn2xyxy(x, w: int = 640, h: int = 640, padw: float = 0, padh: float = 0):
    """Normalised (xc, yc, w, h) -> pixel corners in a w x h image shifted by (padw, padh)."""
    _check_last_dim(x, "xywhn2xyxy")
    y = _empty_like(x)
    y[..., 0] = w * (x[..., 0] - x[..., 2] / 2) + padw
    y[..., 1] = h * (x[..., 1] - x[..., 3] / 2) + padh
    y[..., 2] = w * (x[..., 0] + x[..., 2] / 2) + padw
    y[..., 3] = h * (x[..., 1] + x[..., 3] / 2) + padh
    return y


def xyxy2xywhn(x, w: int = 640, h: int = 640, clip: bool = False, eps: float = 0.0):
    """Pixel corners -> (xc, yc, w, h) normalised by image size, optionally clipped to the image."""
    _check_last_dim(x, "xyxy2xywhn")
    if clip:
        x = clip_boxes(x.clone() if isinstance(x, torch.Tensor) else x.copy(), (h - eps, w - eps))
    y = _empty_like(x)
    y[..., 0] = ((x[..., 0] + x[..., 2]) / 2) / w
    y[..., 1] = ((x[..., 1] + x[..., 3]) / 2) / h
    y[..., 2] = (x[..., 2] - x[..., 0]) / w
    y[..., 3] = (x[..., 3] - x[..., 1]) / h
    return y


def xywh2ltwh(x):
    """(xc, yc, w, h) -> (left, top, w, h), the COCO json box format."""
    _check_last_dim(x, "xywh2ltwh")
    y = x.clone() if isinstance(x, torch.Tensor) else np.copy(x)
    y[..., 0] = x[..., 0] - x[..., 2] / 2
    y[..., 1] = x[..., 1] - x[..., 3] / 2
    return y


def xyxy2ltwh(x):
    """(x1, y1, x2, y2) -> (left, top, w, h), the COCO json box format."""
    _check_last_dim(x, "xyxy2ltwh")
    y = x.clone() if isinstance(x, torch.Tensor) else np.copy(x)
    y[..., 2] = x[..., 2] - x[..., 0]
    y[..., 3] = x[..., 3] - x[..., 1]
    return y


def clip_boxes(boxes, shape):
    """Clip (x1, y1, x2, y2) boxes in place to an image of shape (h, w, ...) and return them."""
    h, w = shape[:2]
    if isinstance(boxes, torch.Tensor):
        boxes[..., 0].clamp_(0, w)
        boxes[..., 1].clamp_(0, h)
        boxes[..., 2].clamp_(0, w)
        boxes[..., 3].clamp_(0, h)
    else:
        boxes[..., [0, 2]] = boxes[..., [0, 2]].clip(0, w)
        boxes[..., [1, 3]] = boxes[..., [1, 3]].clip(0, h)
    return boxes


class Profile:
    """Context manager and decorator that accumulates elapsed seconds in `self.t`.

    Synchronises CUDA before reading the clock when the device is a GPU, so the time covers the
    kernels and not only their launch.
    """

    def __init__(self, t: float = 0.0, device: torch.device | None = None):
        self.t = t
        self.device = device
        self.cuda = bool(device and str(device).startswith("cuda"))

    def __enter__(self):
        self.start = self.time()
        return self

    def __exit__(self, *exc):
        self.dt = self.time() - self.start
        self.t += self.dt

    def __str__(self) -> str:
        return f"Elapsed time is {self.t} s"

    def time(self) -> float:
        if self.cuda:
            torch.cuda.synchronize(self.device)
        return time.perf_counter()
