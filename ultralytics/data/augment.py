"""Detection augmentations that transform an image and its boxes together.

Every transform is a callable on a *labels* dict. Keys used along the pipeline:
  img            (h, w, 3) uint8 BGR numpy image
  instances      Instances with the image's boxes
  cls            (n, 1) float32 class ids
  im_file, ori_shape (h0, w0), resized_shape (h, w), optional ratio_pad, rect_shape, mosaic_border
`Format` is last: it turns img, cls and boxes into tensors ready for `collate_fn`.

Reproducibility: a fixed-seed training run must draw the same random numbers in the same order
whatever the code layout, so every draw below is marked `# draw:` and its position in the call is
part of the behaviour (see tests/test_golden.py).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import reduce
from typing import Any

import cv2
import numpy as np
import torch

from ultralytics.data.instances import Instances

Labels = dict[str, Any]
PAD_VALUE = 114  # grey used for borders, as upstream
_GREY = (PAD_VALUE, PAD_VALUE, PAD_VALUE)


class Compose:
    """A fixed sequence of transforms, applied first to last."""

    def __init__(self, transforms: Sequence[Callable] | Callable) -> None:
        self.transforms = list(transforms) if isinstance(transforms, (list, tuple)) else [transforms]

    def __call__(self, data: Labels) -> Labels:
        return reduce(lambda acc, step: step(acc), self.transforms, data)

    def append(self, transform: Callable) -> None:
        self.transforms += [transform]

    def insert(self, index: int, transform: Callable) -> None:
        self.transforms[index:index] = [transform]

    def __getitem__(self, index: int | list[int]) -> Compose:
        picked = [index] if isinstance(index, int) else list(index)
        return Compose([self.transforms[k] for k in picked])

    def __setitem__(self, index: int, value: Callable) -> None:
        self.transforms[index] = value

    def tolist(self) -> list[Callable]:
        return self.transforms

    def __repr__(self) -> str:
        inner = ", ".join(map(repr, self.transforms))
        return f"{type(self).__name__}({inner})"


def find_transforms(pipeline: Compose, kind: type) -> list:
    """Every transform of class `kind` in `pipeline`, looking inside nested Compose objects."""
    found = []
    for transform in pipeline.transforms:
        if isinstance(transform, Compose):
            found += find_transforms(transform, kind)
        elif isinstance(transform, kind):
            found.append(transform)
    return found


class BaseTransform:
    """A transform made of hooks: the image hook runs first, then the boxes hook; both edit in place."""

    def apply_image(self, labels: Labels) -> None:
        """Change labels["img"]; the base class leaves it alone."""

    def apply_instances(self, labels: Labels) -> None:
        """Change labels["instances"]; the base class leaves them alone."""

    def __call__(self, labels: Labels) -> Labels:
        for hook in (self.apply_image, self.apply_instances):
            hook(labels)
        return labels


class BaseMixTransform:
    """Base of transforms that blend the current sample with partners drawn from the dataset.

    With probability `p` the partners are loaded (all of them first, then each passed through
    `pre_transform` when given), handed to `_mix_transform` under labels["mix_labels"], and the
    key is removed again afterwards.
    """

    def __init__(self, dataset, pre_transform: Callable | None = None, p: float = 0.0) -> None:
        self.dataset = dataset
        self.pre_transform = pre_transform
        self.p = p

    def __call__(self, labels: Labels) -> Labels:
        if random.uniform(0, 1) > self.p:  # draw: one per sample, even when p is 0 or 1
            return labels
        partners = self._load_partners()
        labels["mix_labels"] = partners
        mixed = self._mix_transform(labels)
        mixed.pop("mix_labels", None)
        return mixed

    def _load_partners(self) -> list[Labels]:
        """Load every partner before transforming any: loading updates the dataset's mosaic buffer."""
        chosen = self.get_indexes()
        chosen = [chosen] if isinstance(chosen, int) else chosen
        raw = [self.dataset.get_image_and_label(k) for k in chosen]
        return raw if self.pre_transform is None else [self.pre_transform(item) for item in raw]

    def _mix_transform(self, labels: Labels) -> Labels:
        raise NotImplementedError(f"{type(self).__name__} must implement _mix_transform(labels)")

    def get_indexes(self) -> int | list[int]:
        raise NotImplementedError(f"{type(self).__name__} must implement get_indexes()")


def _tile_span(centre: int, length: int, limit: int, after: bool) -> tuple[int, int, int, int]:
    """Where a tile of `length` pixels sits along one axis of a mosaic canvas of `limit` pixels.

    The tile touches `centre` from before (left/top) or after (right/bottom) and is cut at the
    canvas edge. Returns (canvas start, canvas end, image start, image end).
    """
    if after:
        start, end = centre, min(centre + length, limit)
        return start, end, 0, end - start
    start, end = max(centre - length, 0), centre
    return start, end, length - (end - start), length


class Mosaic(BaseMixTransform):
    """Tile the current image and three others into a 2*imgsz square around a random centre.

    The result keeps its 2*imgsz size plus labels["mosaic_border"]; RandomPerspective then crops
    it back to imgsz x imgsz.
    """

    def __init__(self, dataset, imgsz: int = 640, p: float = 1.0, n: int = 4) -> None:
        if not 0 <= p <= 1.0:
            raise ValueError(f"Mosaic probability must be in [0, 1], got {p}")
        if n != 4:
            raise ValueError(f"Mosaic supports n=4 tiles only, got n={n}")
        super().__init__(dataset, p=p)
        self.imgsz = imgsz
        margin = -imgsz // 2
        self.border = (margin, margin)  # (y, x) margins cropped away by RandomPerspective
        self.n = n

    def get_indexes(self, buffer: bool = True) -> list[int]:
        """Partners come from the dataset's recently loaded images when it keeps a buffer."""
        recent = getattr(self.dataset, "buffer", None)
        k = self.n - 1
        if buffer and recent:
            return random.choices(list(recent), k=k)  # draw
        last = len(self.dataset) - 1
        return [random.randint(0, last) for _ in range(k)]  # draw: k integers

    def _mix_transform(self, labels: Labels) -> Labels:
        if labels.get("rect_shape") is not None:
            raise ValueError("Mosaic cannot be combined with rect=True; set mosaic=0.0 or rect=False")
        if not labels.get("mix_labels"):
            raise ValueError("Mosaic found no other images to tile; the dataset needs at least one image")
        return self._mosaic4(labels)

    def _mosaic4(self, labels: Labels) -> Labels:
        """Quadrants in order: top-left (the sample itself), top-right, bottom-left, bottom-right."""
        side = 2 * self.imgsz
        yc, xc = (int(random.uniform(-b, side + b)) for b in self.border)  # draw: y then x
        tiles = [labels, *labels["mix_labels"]]
        canvas = np.full((side, side, labels["img"].shape[2]), PAD_VALUE, dtype=np.uint8)
        for quadrant, tile in enumerate(tiles):
            h, w = tile.pop("resized_shape")
            cx1, cx2, ix1, ix2 = _tile_span(xc, w, side, after=quadrant % 2 == 1)
            cy1, cy2, iy1, iy2 = _tile_span(yc, h, side, after=quadrant >= 2)
            canvas[cy1:cy2, cx1:cx2] = tile["img"][iy1:iy2, ix1:ix2]
            self._to_canvas_pixels(tile, dx=cx1 - ix1, dy=cy1 - iy1)
        merged = self._cat_labels(tiles)
        merged["img"] = canvas
        return merged

    @staticmethod
    def _to_canvas_pixels(tile: Labels, dx: int, dy: int) -> None:
        """Express a tile's boxes as xyxy pixels of the canvas (the tile's origin lands at dx, dy)."""
        th, tw = tile["img"].shape[:2]
        boxes = tile["instances"]
        boxes.convert_bbox(format="xyxy")
        boxes.denormalize(tw, th)
        boxes.add_padding(dx, dy)

    def _cat_labels(self, tiles: list[Labels]) -> Labels:
        """One label dict for the canvas; boxes cut to the canvas, and those left empty, are dropped."""
        side = self.imgsz * 2
        classes = np.concatenate([t["cls"] for t in tiles], 0) if tiles else np.zeros((0, 1), np.float32)
        boxes = Instances.concatenate([t["instances"] for t in tiles], axis=0)
        boxes.clip(side, side)
        kept = boxes.remove_zero_area_boxes()
        first = tiles[0]
        return {
            "im_file": first["im_file"],
            "ori_shape": first["ori_shape"],
            "resized_shape": (side, side),
            "cls": classes[kept],
            "instances": boxes,
            "mosaic_border": self.border,
        }


class MixUp(BaseMixTransform):
    """Blend the image with another sample's image (Beta(32, 32) weight) and keep both box sets."""

    def __init__(self, dataset, pre_transform: Callable | None = None, p: float = 0.0) -> None:
        super().__init__(dataset, pre_transform, p)

    def get_indexes(self) -> int:
        return random.randint(0, len(self.dataset) - 1)  # draw

    def _mix_transform(self, labels: Labels) -> Labels:
        partner = labels["mix_labels"][0]
        mine, theirs = labels["img"], partner["img"]
        if mine.shape != theirs.shape:
            raise ValueError(
                f"MixUp needs images of equal shape, got {mine.shape} and {theirs.shape}; "
                "it must follow a transform that outputs a fixed size (mosaic + perspective)"
            )
        weight = np.random.beta(32.0, 32.0)  # draw
        labels["img"] = (mine * weight + theirs * (1 - weight)).astype(np.uint8)
        labels["instances"] = Instances.concatenate([labels["instances"], partner["instances"]], axis=0)
        labels["cls"] = np.concatenate([labels["cls"], partner["cls"]], 0)
        return labels


def _translation(dx: float, dy: float) -> np.ndarray:
    """3x3 float32 homogeneous shift."""
    m = np.eye(3, dtype=np.float32)
    m[0, 2], m[1, 2] = dx, dy
    return m


@dataclass(eq=False)
class RandomPerspective:
    """Random rotation, scale, shear, translation and perspective of the image and its boxes.

    Output size is the input size shrunk by `border` on each side (a mosaic's 2s canvas -> s).
    Boxes that end up too small, too thin or mostly outside are dropped (`box_candidates`).
    """

    degrees: float = 0.0
    translate: float = 0.1
    scale: float = 0.5
    shear: float = 0.0
    perspective: float = 0.0
    border: tuple[int, int] = (0, 0)
    pre_transform: Callable | None = None
    size: tuple[int, int] = field(default=(0, 0), init=False)  # (w, h) of the current output

    def _random_matrix(self, img_hw: tuple[int, int]) -> tuple[np.ndarray, float]:
        """Draw the warp for an image of img_hw; returns the 3x3 float32 matrix and the scale factor.

        The eight draws happen in a fixed order: perspective x, y; angle; scale; shear x, y;
        translation x, y.
        """
        u = random.uniform
        to_origin = _translation(-img_hw[1] / 2, -img_hw[0] / 2)

        persp = np.eye(3, dtype=np.float32)
        persp[2, 0] = u(-self.perspective, self.perspective)  # draw
        persp[2, 1] = u(-self.perspective, self.perspective)  # draw

        angle = u(-self.degrees, self.degrees)  # draw
        factor = u(1 - self.scale, 1 + self.scale)  # draw
        rotate = np.eye(3, dtype=np.float32)
        rotate[:2] = cv2.getRotationMatrix2D(angle=angle, center=(0, 0), scale=factor)

        skew = np.eye(3, dtype=np.float32)
        skew[0, 1], skew[1, 0] = (math.tan(u(-self.shear, self.shear) * math.pi / 180) for _ in "xy")  # draw x2

        lo, hi = 0.5 - self.translate, 0.5 + self.translate
        place = _translation(u(lo, hi) * self.size[0], u(lo, hi) * self.size[1])  # draw x2
        # Rightmost first: centre on the origin, perspective, rotate+scale, shear, move into place.
        matrix = reduce(np.matmul, (place, skew, rotate, persp, to_origin))
        return matrix, factor

    def affine_transform(self, img: np.ndarray, border: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, float]:
        """Warp img with a random 3x3 matrix into self.size; returns (image, matrix, scale factor)."""
        matrix, factor = self._random_matrix(img.shape[:2])
        identity = not any(border) and np.array_equal(matrix, np.eye(3))
        if identity:
            return img, matrix, factor
        if self.perspective:
            warped = cv2.warpPerspective(img, matrix, dsize=self.size, borderValue=_GREY)
        else:
            warped = cv2.warpAffine(img, matrix[:2], dsize=self.size, borderValue=_GREY)
        return warped, matrix, factor

    def apply_bboxes(self, bboxes: np.ndarray, m: np.ndarray) -> np.ndarray:
        """Map xyxy boxes (n, 4) through m and return the axis-aligned hull of their corners (n, 4)."""
        count = len(bboxes)
        if count == 0:
            return bboxes
        # Corners per box, in this row order: (x1, y1), (x2, y2), (x1, y2), (x2, y1).
        corners = np.stack([bboxes[:, [0, 1]], bboxes[:, [2, 3]], bboxes[:, [0, 3]], bboxes[:, [2, 1]]], axis=1)
        points = np.concatenate([corners.reshape(-1, 2), np.ones((count * 4, 1), bboxes.dtype)], axis=1)
        points = points @ m.T  # (4n, 3)
        planar = points[:, :2] / points[:, 2:3] if self.perspective else points[:, :2]
        planar = planar.reshape(count, 4, 2)
        return np.concatenate([planar.min(1), planar.max(1)], axis=1).astype(bboxes.dtype)

    def __call__(self, labels: Labels) -> Labels:
        if self.pre_transform is not None and "mosaic_border" not in labels:
            labels = self.pre_transform(labels)
        labels.pop("ratio_pad", None)  # no longer meaningful once the image is warped
        img, classes = labels["img"], labels["cls"]
        before = labels.pop("instances")
        before.convert_bbox(format="xyxy")
        before.denormalize(img.shape[1], img.shape[0])

        border = labels.pop("mosaic_border", self.border)
        self.size = (img.shape[1] + 2 * border[1], img.shape[0] + 2 * border[0])
        img, matrix, factor = self.affine_transform(img, border)

        after = Instances(self.apply_bboxes(before.bboxes, matrix), bbox_format="xyxy", normalized=False)
        after.clip(*self.size)
        before.scale(scale_w=factor, scale_h=factor, bbox_only=True)  # the area each box should have now
        kept = self.box_candidates(box1=before.bboxes.T, box2=after.bboxes.T, area_thr=0.10)

        labels["instances"] = after[kept]
        labels["cls"] = classes[kept]
        labels["img"] = img
        labels["resized_shape"] = img.shape[:2]
        return labels

    @staticmethod
    def box_candidates(
        box1: np.ndarray,
        box2: np.ndarray,
        wh_thr: float = 2,
        ar_thr: float = 100,
        area_thr: float = 0.1,
        eps: float = 1e-16,
    ) -> np.ndarray:
        """Which boxes survive a warp: box1 before (scaled), box2 after, both (4, n) xyxy.

        Kept: wider and taller than wh_thr pixels, aspect ratio below ar_thr, and at least
        area_thr of the pre-warp area still inside the image.
        """
        (old_w, old_h), (new_w, new_h) = (b[2:4] - b[0:2] for b in (box1, box2))
        elongation = np.maximum(new_w / (new_h + eps), new_h / (new_w + eps))
        big_enough = (new_w > wh_thr) & (new_h > wh_thr)
        visible = new_w * new_h / (old_w * old_h + eps) > area_thr
        return big_enough & visible & (elongation < ar_thr)


@dataclass(eq=False)
class RandomHSV:
    """Scale hue, saturation and value by random factors in [1 - gain, 1 + gain] (in place)."""

    hgain: float = 0.5
    sgain: float = 0.5
    vgain: float = 0.5

    def __call__(self, labels: Labels) -> Labels:
        img = labels["img"]
        colour = img.ndim == 3 and img.shape[2] == 3
        if not colour or not any((self.hgain, self.sgain, self.vgain)):
            return labels
        gains = 1 + np.random.uniform(-1, 1, 3) * np.array([self.hgain, self.sgain, self.vgain])  # draw x3
        hsv = cv2.cvtColor(img, cv2.COLOR_BGR2HSV)
        cv2.cvtColor(cv2.LUT(hsv, self._lookup(gains, img.dtype)), cv2.COLOR_HSV2BGR, dst=img)
        return labels

    @staticmethod
    def _lookup(gains: np.ndarray, dtype: np.dtype) -> np.ndarray:
        """(256, 1, 3) table: hue wraps at 180 (OpenCV's 8-bit hue range), saturation/value saturate."""
        ramp = np.arange(256, dtype=gains.dtype)
        hue = np.mod(ramp * gains[0], 180)
        sat, val = (np.clip(ramp * g, 0, 255) for g in gains[1:])
        return np.stack([c.astype(dtype) for c in (hue, sat, val)], axis=1)[:, None, :]


# direction -> (numpy flip of the image, Instances method, which image side the mirror spans)
_FLIPS = {"vertical": (np.flipud, "flipud", 0), "horizontal": (np.fliplr, "fliplr", 1)}


@dataclass(eq=False)
class RandomFlip:
    """Mirror the image and its boxes with probability p, horizontally or vertically."""

    p: float = 0.5
    direction: str = "horizontal"
    flip_idx: Sequence[int] | None = None

    def __post_init__(self) -> None:
        if self.direction not in _FLIPS:
            raise ValueError(f"RandomFlip direction must be 'horizontal' or 'vertical', got '{self.direction}'")
        if not 0 <= self.p <= 1.0:
            raise ValueError(f"RandomFlip probability must be in [0, 1], got {self.p}")

    def __call__(self, labels: Labels) -> Labels:
        img = labels["img"]
        boxes = labels.pop("instances")
        boxes.convert_bbox(format="xywh")
        flip_image, method, axis = _FLIPS[self.direction]
        if random.random() < self.p:  # draw
            extent = 1 if boxes.normalized else img.shape[axis]
            getattr(boxes, method)(extent)
            img = flip_image(img)
        labels["img"] = np.ascontiguousarray(img)
        labels["instances"] = boxes
        return labels


def _split_padding(pad: float, centred: bool) -> tuple[int, int]:
    """(before, after) border pixels for `pad` per side (centred) or all of it after the image.

    round(x -/+ 0.1) splits an odd total (x.5 per side) as x before and x + 1 after.
    """
    before = int(round(pad - 0.1)) if centred else 0
    return before, int(round(pad + 0.1))


@dataclass(eq=False)
class LetterBox:
    """Resize to new_shape keeping the aspect ratio and pad with grey, or stretch with scaleFill.

    Called with a labels dict it updates boxes and returns the dict; called with `image=` only it
    returns the resized image. `scale_fill` is accepted as a keyword alias of upstream 8.3.50's
    `scaleFill` (later upstream versions renamed it).
    """

    new_shape: int | tuple[int, int] = (640, 640)
    auto: bool = False
    scaleFill: bool = False
    scaleup: bool = True
    center: bool = True
    stride: int = 32
    scale_fill: bool | None = field(default=None, kw_only=True)

    def __post_init__(self) -> None:
        if self.scale_fill is not None:
            self.scaleFill = self.scale_fill

    def _plan(
        self,
        shape: tuple[int, int],
        target: tuple[int, int],
    ) -> tuple[tuple[int, int], tuple[float, float], tuple[int, int, int, int]]:
        """Resize size (w, h), box ratio (rx, ry) and borders (top, bottom, left, right) for an image of `shape`."""
        r = min(target[0] / shape[0], target[1] / shape[1])
        if not self.scaleup:
            r = min(r, 1.0)  # only shrink, which keeps val mAP comparable
        ratio = (r, r)
        size = (int(round(shape[1] * r)), int(round(shape[0] * r)))
        pad_w, pad_h = target[1] - size[0], target[0] - size[1]
        if self.auto:  # only what is needed to reach a multiple of the stride
            pad_w, pad_h = np.mod(pad_w, self.stride), np.mod(pad_h, self.stride)
        elif self.scaleFill:  # stretch, no border
            pad_w, pad_h = 0.0, 0.0
            size = (target[1], target[0])
            ratio = (target[1] / shape[1], target[0] / shape[0])
        if self.center:
            pad_w, pad_h = pad_w / 2, pad_h / 2
        top, bottom = _split_padding(pad_h, self.center)
        left, right = _split_padding(pad_w, self.center)
        return size, ratio, (top, bottom, left, right)

    def __call__(self, labels: Labels | None = None, image: np.ndarray | None = None) -> Labels | np.ndarray:
        labels = {} if labels is None else labels
        source = labels.get("img") if image is None else image
        if source is None:
            raise ValueError("LetterBox needs an image: pass labels with an 'img' entry or image=")
        target = labels.pop("rect_shape", self.new_shape)
        target = (target, target) if isinstance(target, int) else target

        size, ratio, (top, bottom, left, right) = self._plan(source.shape[:2], target)
        out = source if source.shape[1::-1] == size else cv2.resize(source, size, interpolation=cv2.INTER_LINEAR)
        out = cv2.copyMakeBorder(out, top, bottom, left, right, cv2.BORDER_CONSTANT, value=_GREY)
        if labels.get("ratio_pad"):
            labels["ratio_pad"] = (labels["ratio_pad"], (left, top))
        if not labels:
            return out
        if "instances" in labels:
            labels = self._update_labels(labels, ratio, left, top)
        labels["img"] = out
        labels["resized_shape"] = target
        return labels

    @staticmethod
    def _update_labels(labels: Labels, ratio: tuple[float, float], padw: float, padh: float) -> Labels:
        """Boxes in pixels of the letterboxed image: scaled like the image, shifted by the top-left border."""
        src_h, src_w = labels["img"].shape[:2]
        boxes = labels["instances"]
        boxes.convert_bbox(format="xyxy")
        boxes.denormalize(src_w, src_h)
        boxes.scale(*ratio)
        boxes.add_padding(padw, padh)
        return labels


@dataclass(eq=False)
class Format:
    """Turn the numpy sample into tensors: img (3, h, w) uint8 RGB, cls (n, 1), bboxes (n, 4).

    With normalize the boxes are divided by the image size; with batch_idx a zeros (n,) tensor is
    added that `collate_fn` fills with each box's image index. Only detection is supported, so
    return_mask, return_keypoint and return_obb must stay False.
    """

    bbox_format: str = "xywh"
    normalize: bool = True
    return_mask: bool = False
    return_keypoint: bool = False
    return_obb: bool = False
    mask_ratio: int = 4
    mask_overlap: bool = True
    batch_idx: bool = True
    bgr: float = 0.0

    def __post_init__(self) -> None:
        asked = [k for k in ("return_mask", "return_keypoint", "return_obb") if getattr(self, k)]
        if asked:
            raise ValueError(f"Format({asked[0]}=True) is not supported: this package handles detection boxes only")

    def __call__(self, labels: Labels) -> Labels:
        img = labels.pop("img")
        h, w = img.shape[:2]
        classes = labels.pop("cls")
        boxes = labels.pop("instances")
        boxes.convert_bbox(format=self.bbox_format)
        boxes.denormalize(w, h)
        count = len(boxes)

        labels["img"] = self._format_img(img)
        labels["cls"], labels["bboxes"] = self._targets(classes, boxes.bboxes, w, h)
        if self.batch_idx:
            labels["batch_idx"] = torch.zeros(count)  # image index, filled in by collate_fn
        return labels

    def _targets(self, classes: np.ndarray, bboxes: np.ndarray, w: int, h: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(n, 1) class and (n, 4) box tensors; boxes divided by the image size when normalising."""
        if not len(bboxes):
            return torch.zeros((0, 1)), torch.zeros((0, 4))
        cls_t = torch.from_numpy(np.asarray(classes, dtype=np.float32).reshape(-1, 1))
        box_t = torch.from_numpy(np.array(bboxes, dtype=np.float32))  # a copy: the division below is in place
        if self.normalize:
            box_t[:, [0, 2]] /= w
            box_t[:, [1, 3]] /= h
        return cls_t, box_t

    def _format_img(self, img: np.ndarray) -> torch.Tensor:
        """HWC BGR -> CHW RGB (kept BGR with probability `bgr`)."""
        planes = (img if img.ndim == 3 else img[..., None]).transpose(2, 0, 1)
        if random.uniform(0, 1) > self.bgr:  # draw: one per sample, also in validation
            planes = planes[::-1]
        return torch.from_numpy(np.ascontiguousarray(planes))


def v8_transforms(dataset, imgsz: int, hyp, stretch: bool = False) -> Compose:
    """The training pipeline: mosaic + perspective, mixup, HSV jitter, vertical and horizontal flips.

    With stretch (RT-DETR) images arrive already resized to imgsz x imgsz, so no letterbox runs
    before the perspective warp.
    """
    warp = RandomPerspective(
        degrees=hyp.degrees,
        translate=hyp.translate,
        scale=hyp.scale,
        shear=hyp.shear,
        perspective=hyp.perspective,
        pre_transform=None if stretch else LetterBox(new_shape=(imgsz, imgsz)),
    )
    # MixUp's partner goes through the same mosaic + warp as the sample itself.
    geometry = Compose([Mosaic(dataset, imgsz=imgsz, p=hyp.mosaic), warp])
    colour_and_flips = [
        RandomHSV(hgain=hyp.hsv_h, sgain=hyp.hsv_s, vgain=hyp.hsv_v),
        RandomFlip(direction="vertical", p=hyp.flipud),
        RandomFlip(direction="horizontal", p=hyp.fliplr),
    ]
    return Compose([geometry, MixUp(dataset, pre_transform=geometry, p=hyp.mixup), *colour_and_flips])
