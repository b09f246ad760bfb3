"""Box containers that the augmentation pipeline moves, scales, flips and clips together.

Upstream keeps these in ``ultralytics/utils/instance.py``; this package handles detection only, so
the containers carry boxes and nothing else (no segments, no keypoints).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from ultralytics.utils.ops import xywh2ltwh, xywh2xyxy, xyxy2ltwh, xyxy2xywh

BOX_FORMATS = ("xyxy", "xywh", "ltwh")


def _ltwh2xyxy(x: np.ndarray) -> np.ndarray:
    """(..., 4) left-top-width-height -> corners."""
    corner = x[..., :2]
    return np.concatenate([corner, corner + x[..., 2:]], axis=-1)


def _ltwh2xywh(x: np.ndarray) -> np.ndarray:
    """(..., 4) left-top-width-height -> centre-width-height."""
    size = x[..., 2:]
    return np.concatenate([x[..., :2] + size / 2, size], axis=-1)


# (from, to) -> converter of an (N, 4) array
_CONVERTERS: dict[tuple[str, str], Callable[[np.ndarray], np.ndarray]] = {
    ("xyxy", "xywh"): xyxy2xywh,
    ("xyxy", "ltwh"): xyxy2ltwh,
    ("xywh", "xyxy"): xywh2xyxy,
    ("xywh", "ltwh"): xywh2ltwh,
    ("ltwh", "xyxy"): _ltwh2xyxy,
    ("ltwh", "xywh"): _ltwh2xywh,
}


def _check_format(fmt: str) -> None:
    if fmt not in BOX_FORMATS:
        raise ValueError(f"Unknown box format '{fmt}'; accepted formats are {', '.join(BOX_FORMATS)}")


def _per_column(value: float | Sequence[float], caller: str, what: str) -> np.ndarray:
    """A number repeated for the four box columns, or four per-column values, as a (4,) float32 array."""
    values = [value] * 4 if isinstance(value, (int, float)) else list(value)
    if len(values) != 4:
        raise ValueError(f"{caller} expects a number or 4 {what}, got {value}")
    return np.asarray(values, dtype=np.float32)


class Bboxes:
    """An (N, 4) float array of boxes together with the format its columns are in."""

    def __init__(self, bboxes: np.ndarray, format: str = "xyxy") -> None:
        _check_format(format)
        array = np.asarray(bboxes, dtype=np.float32)
        if array.ndim == 1:
            array = array.reshape(1, -1)  # a single box
        if array.ndim != 2 or array.shape[1] != 4:
            raise ValueError(f"Bboxes expects an (N, 4) array, got shape {array.shape}")
        self.bboxes = array
        self.format = format

    def convert(self, format: str) -> None:
        """Rewrite the boxes in place into another format."""
        _check_format(format)
        if format != self.format:
            self.bboxes = _CONVERTERS[(self.format, format)](self.bboxes)
            self.format = format

    def areas(self) -> np.ndarray:
        """Area of each box, (N,)."""
        b = self.bboxes
        if self.format == "xyxy":
            return (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
        return b[:, 2] * b[:, 3]

    def mul(self, scale: float | Sequence[float]) -> None:
        """Multiply each column by a scalar or by four per-column factors."""
        self.bboxes = self.bboxes * _per_column(scale, "Bboxes.mul", "factors")

    def add(self, offset: float | Sequence[float]) -> None:
        """Add a scalar or four per-column offsets."""
        self.bboxes = self.bboxes + _per_column(offset, "Bboxes.add", "offsets")

    def __len__(self) -> int:
        return self.bboxes.shape[0]

    def __getitem__(self, index) -> Bboxes:
        """A new Bboxes with the selected rows (an int, slice or boolean mask)."""
        return Bboxes(self.bboxes[index].reshape(-1, 4), self.format)

    @classmethod
    def concatenate(cls, boxes_list: Sequence[Bboxes], axis: int = 0) -> Bboxes:
        """Join several Bboxes (all in the same format) into one."""
        if not boxes_list:
            return cls(np.zeros((0, 4), dtype=np.float32))
        return cls(np.concatenate([b.bboxes for b in boxes_list], axis=axis), boxes_list[0].format)


class Instances:
    """The boxes of one image, with their format and whether they are normalised to [0, 1].

    `segments` and `keypoints` exist in the signature for upstream compatibility; anything but
    None or an empty array is refused because this package trains detectors only.
    """

    def __init__(
        self,
        bboxes: np.ndarray,
        segments: np.ndarray | None = None,
        keypoints: np.ndarray | None = None,
        bbox_format: str = "xywh",
        normalized: bool = True,
    ) -> None:
        for name, value in (("segments", segments), ("keypoints", keypoints)):
            if value is not None and len(value):
                raise ValueError(f"Instances: {name} are not supported, this package handles detection boxes only")
        self._set_boxes(Bboxes(bboxes, bbox_format))
        self.normalized = bool(normalized)
        self.keypoints = None

    def _set_boxes(self, boxes: Bboxes) -> None:
        """Install new boxes; `segments` stays an empty (N, 0, 2) placeholder of matching length."""
        self._bboxes = boxes
        self.segments = np.zeros((len(boxes), 0, 2), dtype=np.float32)

    @property
    def bboxes(self) -> np.ndarray:
        """(N, 4) boxes in `bbox_format`."""
        return self._bboxes.bboxes

    @property
    def bbox_format(self) -> str:
        return self._bboxes.format

    def convert_bbox(self, format: str) -> None:
        self._bboxes.convert(format)

    def bbox_areas(self) -> np.ndarray:
        return self._bboxes.areas()

    def scale(self, scale_w: float, scale_h: float, bbox_only: bool = False) -> None:
        """Stretch x by scale_w and y by scale_h (any format; widths scale with x)."""
        self._bboxes.mul((scale_w, scale_h) * 2)

    def denormalize(self, w: int, h: int) -> None:
        """Turn [0, 1] coordinates into pixels of a w x h image; no-op when already in pixels."""
        if self.normalized:
            self._bboxes.mul((w, h) * 2)
            self.normalized = False

    def normalize(self, w: int, h: int) -> None:
        """Turn pixel coordinates of a w x h image into [0, 1]; no-op when already normalised."""
        if not self.normalized:
            self._bboxes.mul((1 / w, 1 / h) * 2)
            self.normalized = True

    def add_padding(self, padw: float, padh: float) -> None:
        """Shift pixel boxes by a border added on the left (padw) and top (padh)."""
        if self.normalized:
            raise ValueError("Instances.add_padding needs pixel coordinates; call denormalize(w, h) first")
        # Corner formats move both corners; centre/left-top formats keep their width and height.
        second = (padw, padh) if self.bbox_format == "xyxy" else (0, 0)
        self._bboxes.add((padw, padh, *second))

    def __getitem__(self, index) -> Instances:
        """The selected boxes (an int, slice or boolean mask) as new Instances."""
        picked = self.bboxes[index].reshape(-1, 4)
        return Instances(picked, bbox_format=self.bbox_format, normalized=self.normalized)

    def flipud(self, h: float) -> None:
        """Mirror top-bottom inside an image of height h (h = 1 for normalised boxes)."""
        self._mirror(axis=1, size=h)

    def fliplr(self, w: float) -> None:
        """Mirror left-right inside an image of width w (w = 1 for normalised boxes)."""
        self._mirror(axis=0, size=w)

    def _mirror(self, axis: int, size: float) -> None:
        """Mirror the x (axis 0) or y (axis 1) coordinates in place; column axis + 2 is x2/y2 or w/h."""
        b = self._bboxes.bboxes
        lo, hi = axis, axis + 2
        if self.bbox_format == "xyxy":
            # The far corner becomes the near one: (x1, x2) -> (size - x2, size - x1).
            b[:, [lo, hi]] = size - b[:, [hi, lo]]
        elif self.bbox_format == "xywh":
            b[:, lo] = size - b[:, lo]
        else:
            b[:, lo] = size - b[:, lo] - b[:, hi]

    def clip(self, w: float, h: float) -> None:
        """Clip boxes to the image; the format is restored afterwards."""
        kept_format = self.bbox_format
        self.convert_bbox("xyxy")
        b = self._bboxes.bboxes
        for cols, limit in (([0, 2], w), ([1, 3], h)):
            b[:, cols] = b[:, cols].clip(0, limit)
        self.convert_bbox(kept_format)

    def remove_zero_area_boxes(self) -> np.ndarray:
        """Drop boxes with no width or height and return the boolean mask of the kept ones."""
        keep = self.bbox_areas() > 0
        if not keep.all():
            self._set_boxes(self._bboxes[keep])
        return keep

    def update(self, bboxes: np.ndarray, segments: np.ndarray | None = None, keypoints: np.ndarray | None = None):
        """Replace the boxes (same format) after a geometric transform."""
        self._set_boxes(Bboxes(bboxes, self.bbox_format))

    def __len__(self) -> int:
        return len(self._bboxes)

    @classmethod
    def concatenate(cls, instances_list: Sequence[Instances], axis: int = 0) -> Instances:
        """Join the instances of several images that share format and normalisation."""
        if not instances_list:
            return cls(np.zeros((0, 4), dtype=np.float32))
        head = instances_list[0]
        joined = np.concatenate([item.bboxes for item in instances_list], axis=axis)
        return cls(joined, bbox_format=head.bbox_format, normalized=head.normalized)
