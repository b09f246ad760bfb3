"""Detection augmentations that transform an image and its boxes together.

Every transform is a callable on a *labels* dict. Keys used along the pipeline:
  img            (h, w, 3) uint8 BGR numpy image
  instances      Instances with the image's boxes
  cls            (n, 1) float32 class ids
  im_file, ori_shape (h0, w0), resized_shape (h, w), optional ratio_pad, rect_shape, mosaic_border
`Format` is last: it turns img, cls and boxes into tensors ready for `collate_fn`.
"""

from __future__ import annotations

import math
import random
from typing import Any, Callable, Sequence

import cv2
import numpy as np
import torch

from ultralytics.data.instances import Instances

Labels = dict[str, Any]
PAD_VALUE = 114  # grey used for borders, as upstream


class Compose:
    """Apply transforms one after another."""

    def __init__(self, transforms: Sequence[Callable] | Callable) -> None:
        self.transforms = list(transforms) if isinstance(transforms, (list, tuple)) else [transforms]

    def __call__(self, data: Labels) -> Labels:
        for t in self.transforms:
            data = t(data)
        return data

    def append(self, transform: Callable) -> None:
        self.transforms.append(transform)

    def insert(self, index: int, transform: Callable) -> None:
        self.transforms.insert(index, transform)

    def __getitem__(self, index: int | list[int]) -> "Compose":
        indices = [index] if isinstance(index, int) else index
        return Compose([self.transforms[i] for i in indices])

    def __setitem__(self, index: int, value: Callable) -> None:
        self.transforms[index] = value

    def tolist(self) -> list[Callable]:
        return self.transforms

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(repr(t) for t in self.transforms)})"


class BaseTransform:
    """Upstream's no-op base: subclasses override the apply_* hooks they need."""

    def apply_image(self, labels: Labels) -> None:
        pass

    def apply_instances(self, labels: Labels) -> None:
        pass

    def __call__(self, labels: Labels) -> Labels:
        self.apply_image(labels)
        self.apply_instances(labels)
        return labels


class BaseMixTransform:
    """Base of transforms that blend the current sample with others drawn from the dataset.

    With probability `p` the other samples are fetched (through `pre_transform` when given),
    stored under labels["mix_labels"] and combined by `_mix_transform`.
    """

    def __init__(self, dataset, pre_transform: Callable | None = None, p: float = 0.0) -> None:
        self.dataset = dataset
        self.pre_transform = pre_transform
        self.p = p

    def __call__(self, labels: Labels) -> Labels:
        if random.uniform(0, 1) > self.p:
            return labels
        indexes = self.get_indexes()
        indexes = [indexes] if isinstance(indexes, int) else indexes
        mix_labels = [self.dataset.get_image_and_label(i) for i in indexes]
        if self.pre_transform is not None:
            mix_labels = [self.pre_transform(m) for m in mix_labels]
        labels["mix_labels"] = mix_labels
        labels = self._mix_transform(labels)
        labels.pop("mix_labels", None)
        return labels

    def _mix_transform(self, labels: Labels) -> Labels:
        raise NotImplementedError

    def get_indexes(self) -> int | list[int]:
        raise NotImplementedError


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
        super().__init__(dataset=dataset, p=p)
        self.imgsz = imgsz
        self.border = (-imgsz // 2, -imgsz // 2)  # (y, x) margins cropped away by RandomPerspective
        self.n = n

    def get_indexes(self, buffer: bool = True) -> list[int]:
        """Partners come from the dataset's recently loaded images when it keeps a buffer."""
        pool = getattr(self.dataset, "buffer", None)
        if buffer and pool:
            return random.choices(list(pool), k=self.n - 1)
        return [random.randint(0, len(self.dataset) - 1) for _ in range(self.n - 1)]

    def _mix_transform(self, labels: Labels) -> Labels:
        if labels.get("rect_shape") is not None:
            raise ValueError("Mosaic cannot be combined with rect=True; set mosaic=0.0 or rect=False")
        if not labels.get("mix_labels"):
            raise ValueError("Mosaic found no other images to tile; the dataset needs at least one image")
        return self._mosaic4(labels)

    def _mosaic4(self, labels: Labels) -> Labels:
        s = self.imgsz
        yc, xc = (int(random.uniform(-b, 2 * s + b)) for b in self.border)
        canvas = None
        tiles = []
        for i in range(4):
            patch = labels if i == 0 else labels["mix_labels"][i - 1]
            img = patch["img"]
            h, w = patch.pop("resized_shape")
            if canvas is None:
                canvas = np.full((s * 2, s * 2, img.shape[2]), PAD_VALUE, dtype=np.uint8)
            # (x1a..y2a) is the tile's place on the canvas, (x1b..y2b) the part of the image shown there.
            if i == 0:  # top left
                x1a, y1a, x2a, y2a = max(xc - w, 0), max(yc - h, 0), xc, yc
                x1b, y1b, x2b, y2b = w - (x2a - x1a), h - (y2a - y1a), w, h
            elif i == 1:  # top right
                x1a, y1a, x2a, y2a = xc, max(yc - h, 0), min(xc + w, s * 2), yc
                x1b, y1b, x2b, y2b = 0, h - (y2a - y1a), min(w, x2a - x1a), h
            elif i == 2:  # bottom left
                x1a, y1a, x2a, y2a = max(xc - w, 0), yc, xc, min(s * 2, yc + h)
                x1b, y1b, x2b, y2b = w - (x2a - x1a), 0, w, min(y2a - y1a, h)
            else:  # bottom right
                x1a, y1a, x2a, y2a = xc, yc, min(xc + w, s * 2), min(s * 2, yc + h)
                x1b, y1b, x2b, y2b = 0, 0, min(w, x2a - x1a), min(y2a - y1a, h)
            canvas[y1a:y2a, x1a:x2a] = img[y1b:y2b, x1b:x2b]
            tiles.append(self._shift_labels(patch, x1a - x1b, y1a - y1b))
        merged = self._cat_labels(tiles)
        merged["img"] = canvas
        return merged

    @staticmethod
    def _shift_labels(labels: Labels, padw: int, padh: int) -> Labels:
        """Express a tile's boxes in canvas pixels."""
        nh, nw = labels["img"].shape[:2]
        labels["instances"].convert_bbox(format="xyxy")
        labels["instances"].denormalize(nw, nh)
        labels["instances"].add_padding(padw, padh)
        return labels

    def _cat_labels(self, tiles: list[Labels]) -> Labels:
        side = self.imgsz * 2
        cls = np.concatenate([t["cls"] for t in tiles], 0) if tiles else np.zeros((0, 1), np.float32)
        instances = Instances.concatenate([t["instances"] for t in tiles], axis=0)
        instances.clip(side, side)
        keep = instances.remove_zero_area_boxes()  # boxes that fell outside the canvas
        return {
            "im_file": tiles[0]["im_file"],
            "ori_shape": tiles[0]["ori_shape"],
            "resized_shape": (side, side),
            "cls": cls[keep],
            "instances": instances,
            "mosaic_border": self.border,
        }


class MixUp(BaseMixTransform):
    """Blend the image with another sample's image (Beta(32, 32) weight) and keep both box sets."""

    def __init__(self, dataset, pre_transform: Callable | None = None, p: float = 0.0) -> None:
        super().__init__(dataset=dataset, pre_transform=pre_transform, p=p)

    def get_indexes(self) -> int:
        return random.randint(0, len(self.dataset) - 1)

    def _mix_transform(self, labels: Labels) -> Labels:
        other = labels["mix_labels"][0]
        if other["img"].shape != labels["img"].shape:
            raise ValueError(
                f"MixUp needs images of equal shape, got {labels['img'].shape} and {other['img'].shape}; "
                "it must follow a transform that outputs a fixed size (mosaic + perspective)"
            )
        r = np.random.beta(32.0, 32.0)
        labels["img"] = (labels["img"] * r + other["img"] * (1 - r)).astype(np.uint8)
        labels["instances"] = Instances.concatenate([labels["instances"], other["instances"]], axis=0)
        labels["cls"] = np.concatenate([labels["cls"], other["cls"]], 0)
        return labels


class RandomPerspective:
    """Random rotation, scale, shear, translation and perspective of the image and its boxes.

    Output size is the input size shrunk by `border` on each side (a mosaic's 2s canvas -> s).
    Boxes that end up too small, too thin or mostly outside are dropped (`box_candidates`).
    """

    def __init__(
        self,
        degrees: float = 0.0,
        translate: float = 0.1,
        scale: float = 0.5,
        shear: float = 0.0,
        perspective: float = 0.0,
        border: tuple[int, int] = (0, 0),
        pre_transform: Callable | None = None,
    ) -> None:
        self.degrees = degrees
        self.translate = translate
        self.scale = scale
        self.shear = shear
        self.perspective = perspective
        self.border = border
        self.pre_transform = pre_transform
        self.size = (0, 0)

    def affine_transform(self, img: np.ndarray, border: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, float]:
        """Warp img with a random 3x3 matrix; returns (image, matrix, scale factor)."""
        centre = np.eye(3, dtype=np.float32)
        centre[0, 2] = -img.shape[1] / 2
        centre[1, 2] = -img.shape[0] / 2

        persp = np.eye(3, dtype=np.float32)
        persp[2, 0] = random.uniform(-self.perspective, self.perspective)
        persp[2, 1] = random.uniform(-self.perspective, self.perspective)

        rot = np.eye(3, dtype=np.float32)
        angle = random.uniform(-self.degrees, self.degrees)
        s = random.uniform(1 - self.scale, 1 + self.scale)
        rot[:2] = cv2.getRotationMatrix2D(angle=angle, center=(0, 0), scale=s)

        shear = np.eye(3, dtype=np.float32)
        shear[0, 1] = math.tan(random.uniform(-self.shear, self.shear) * math.pi / 180)
        shear[1, 0] = math.tan(random.uniform(-self.shear, self.shear) * math.pi / 180)

        shift = np.eye(3, dtype=np.float32)
        shift[0, 2] = random.uniform(0.5 - self.translate, 0.5 + self.translate) * self.size[0]
        shift[1, 2] = random.uniform(0.5 - self.translate, 0.5 + self.translate) * self.size[1]

        m = shift @ shear @ rot @ persp @ centre  # applied right to left
        if border[0] != 0 or border[1] != 0 or (m != np.eye(3)).any():
            fill = (PAD_VALUE, PAD_VALUE, PAD_VALUE)
            if self.perspective:
                img = cv2.warpPerspective(img, m, dsize=self.size, borderValue=fill)
            else:
                img = cv2.warpAffine(img, m[:2], dsize=self.size, borderValue=fill)
        return img, m, s

    def apply_bboxes(self, bboxes: np.ndarray, m: np.ndarray) -> np.ndarray:
        """Map xyxy boxes (n, 4) through m and return the axis-aligned hull of their corners."""
        n = len(bboxes)
        if n == 0:
            return bboxes
        corners = np.ones((n * 4, 3), dtype=bboxes.dtype)
        corners[:, :2] = bboxes[:, [0, 1, 2, 3, 0, 3, 2, 1]].reshape(n * 4, 2)
        corners = corners @ m.T
        xy = corners[:, :2] / corners[:, 2:3] if self.perspective else corners[:, :2]
        xy = xy.reshape(n, 8)
        x, y = xy[:, [0, 2, 4, 6]], xy[:, [1, 3, 5, 7]]
        return np.stack((x.min(1), y.min(1), x.max(1), y.max(1)), axis=1).astype(bboxes.dtype)

    def __call__(self, labels: Labels) -> Labels:
        if self.pre_transform is not None and "mosaic_border" not in labels:
            labels = self.pre_transform(labels)
        labels.pop("ratio_pad", None)  # no longer meaningful once the image is warped
        img, cls = labels["img"], labels["cls"]
        instances = labels.pop("instances")
        instances.convert_bbox(format="xyxy")
        instances.denormalize(*img.shape[:2][::-1])

        border = labels.pop("mosaic_border", self.border)
        self.size = (img.shape[1] + border[1] * 2, img.shape[0] + border[0] * 2)  # (w, h)
        img, m, s = self.affine_transform(img, border)

        warped = Instances(self.apply_bboxes(instances.bboxes, m), bbox_format="xyxy", normalized=False)
        warped.clip(*self.size)
        instances.scale(scale_w=s, scale_h=s, bbox_only=True)
        keep = self.box_candidates(box1=instances.bboxes.T, box2=warped.bboxes.T, area_thr=0.10)

        labels["instances"] = warped[keep]
        labels["cls"] = cls[keep]
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
        w1, h1 = box1[2] - box1[0], box1[3] - box1[1]
        w2, h2 = box2[2] - box2[0], box2[3] - box2[1]
        aspect = np.maximum(w2 / (h2 + eps), h2 / (w2 + eps))
        return (w2 > wh_thr) & (h2 > wh_thr) & (w2 * h2 / (w1 * h1 + eps) > area_thr) & (aspect < ar_thr)


class RandomHSV:
    """Scale hue, saturation and value by random factors in [1 - gain, 1 + gain] (in place)."""

    def __init__(self, hgain: float = 0.5, sgain: float = 0.5, vgain: float = 0.5) -> None:
        self.hgain = hgain
        self.sgain = sgain
        self.vgain = vgain

    def __call__(self, labels: Labels) -> Labels:
        img = labels["img"]
        if img.ndim != 3 or img.shape[2] != 3 or not (self.hgain or self.sgain or self.vgain):
            return labels
        gains = np.random.uniform(-1, 1, 3) * [self.hgain, self.sgain, self.vgain] + 1
        hue, sat, val = cv2.split(cv2.cvtColor(img, cv2.COLOR_BGR2HSV))
        x = np.arange(0, 256, dtype=gains.dtype)
        lut_hue = ((x * gains[0]) % 180).astype(img.dtype)  # OpenCV hue spans 0-179
        lut_sat = np.clip(x * gains[1], 0, 255).astype(img.dtype)
        lut_val = np.clip(x * gains[2], 0, 255).astype(img.dtype)
        hsv = cv2.merge((cv2.LUT(hue, lut_hue), cv2.LUT(sat, lut_sat), cv2.LUT(val, lut_val)))
        cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR, dst=img)
        return labels


class RandomFlip:
    """Mirror the image and its boxes with probability p, horizontally or vertically."""

    def __init__(self, p: float = 0.5, direction: str = "horizontal", flip_idx: Sequence[int] | None = None) -> None:
        if direction not in {"horizontal", "vertical"}:
            raise ValueError(f"RandomFlip direction must be 'horizontal' or 'vertical', got '{direction}'")
        if not 0 <= p <= 1.0:
            raise ValueError(f"RandomFlip probability must be in [0, 1], got {p}")
        self.p = p
        self.direction = direction
        self.flip_idx = flip_idx

    def __call__(self, labels: Labels) -> Labels:
        img = labels["img"]
        instances = labels.pop("instances")
        instances.convert_bbox(format="xywh")
        h, w = img.shape[:2]
        h = 1 if instances.normalized else h
        w = 1 if instances.normalized else w
        if self.direction == "vertical" and random.random() < self.p:
            img = np.flipud(img)
            instances.flipud(h)
        if self.direction == "horizontal" and random.random() < self.p:
            img = np.fliplr(img)
            instances.fliplr(w)
        labels["img"] = np.ascontiguousarray(img)
        labels["instances"] = instances
        return labels


class LetterBox:
    """Resize to new_shape keeping the aspect ratio and pad with grey, or stretch with scaleFill.

    Called with a labels dict it updates boxes and returns the dict; called with `image=` only it
    returns the resized image. `scale_fill` is accepted as a keyword alias of upstream 8.3.50's
    `scaleFill` (later upstream versions renamed it).
    """

    def __init__(
        self,
        new_shape: int | tuple[int, int] = (640, 640),
        auto: bool = False,
        scaleFill: bool = False,
        scaleup: bool = True,
        center: bool = True,
        stride: int = 32,
        *,
        scale_fill: bool | None = None,
    ) -> None:
        self.new_shape = new_shape
        self.auto = auto
        self.scaleFill = scaleFill if scale_fill is None else scale_fill
        self.scaleup = scaleup
        self.center = center
        self.stride = stride

    def __call__(self, labels: Labels | None = None, image: np.ndarray | None = None) -> Labels | np.ndarray:
        labels = {} if labels is None else labels
        img = labels.get("img") if image is None else image
        if img is None:
            raise ValueError("LetterBox needs an image: pass labels with an 'img' entry or image=")
        shape = img.shape[:2]
        new_shape = labels.pop("rect_shape", self.new_shape)
        if isinstance(new_shape, int):
            new_shape = (new_shape, new_shape)

        r = min(new_shape[0] / shape[0], new_shape[1] / shape[1])
        if not self.scaleup:
            r = min(r, 1.0)  # only shrink, which keeps val mAP comparable
        ratio = (r, r)
        new_unpad = (int(round(shape[1] * r)), int(round(shape[0] * r)))  # (w, h)
        dw, dh = new_shape[1] - new_unpad[0], new_shape[0] - new_unpad[1]
        if self.auto:
            dw, dh = np.mod(dw, self.stride), np.mod(dh, self.stride)  # minimum padding to a stride multiple
        elif self.scaleFill:
            dw, dh = 0.0, 0.0
            new_unpad = (new_shape[1], new_shape[0])
            ratio = (new_shape[1] / shape[1], new_shape[0] / shape[0])
        if self.center:
            dw /= 2
            dh /= 2

        if shape[::-1] != new_unpad:
            img = cv2.resize(img, new_unpad, interpolation=cv2.INTER_LINEAR)
        top = int(round(dh - 0.1)) if self.center else 0
        bottom = int(round(dh + 0.1))
        left = int(round(dw - 0.1)) if self.center else 0
        right = int(round(dw + 0.1))
        img = cv2.copyMakeBorder(
            img, top, bottom, left, right, cv2.BORDER_CONSTANT, value=(PAD_VALUE, PAD_VALUE, PAD_VALUE)
        )
        if labels.get("ratio_pad"):
            labels["ratio_pad"] = (labels["ratio_pad"], (left, top))

        if not labels:
            return img
        if "instances" in labels:
            labels = self._update_labels(labels, ratio, left, top)
        labels["img"] = img
        labels["resized_shape"] = new_shape
        return labels

    @staticmethod
    def _update_labels(labels: Labels, ratio: tuple[float, float], padw: float, padh: float) -> Labels:
        labels["instances"].convert_bbox(format="xyxy")
        labels["instances"].denormalize(*labels["img"].shape[:2][::-1])
        labels["instances"].scale(*ratio)
        labels["instances"].add_padding(padw, padh)
        return labels


class Format:
    """Turn the numpy sample into tensors: img (3, h, w) uint8 RGB, cls (n, 1), bboxes (n, 4).

    With normalize the boxes are divided by the image size; with batch_idx a zeros (n,) tensor is
    added that `collate_fn` fills with each box's image index. Only detection is supported, so
    return_mask, return_keypoint and return_obb must stay False.
    """

    def __init__(
        self,
        bbox_format: str = "xywh",
        normalize: bool = True,
        return_mask: bool = False,
        return_keypoint: bool = False,
        return_obb: bool = False,
        mask_ratio: int = 4,
        mask_overlap: bool = True,
        batch_idx: bool = True,
        bgr: float = 0.0,
    ) -> None:
        unsupported = {"return_mask": return_mask, "return_keypoint": return_keypoint, "return_obb": return_obb}
        for name, value in unsupported.items():
            if value:
                raise ValueError(f"Format({name}=True) is not supported: this package handles detection boxes only")
        self.bbox_format = bbox_format
        self.normalize = normalize
        self.return_mask = return_mask
        self.return_keypoint = return_keypoint
        self.return_obb = return_obb
        self.mask_ratio = mask_ratio
        self.mask_overlap = mask_overlap
        self.batch_idx = batch_idx
        self.bgr = bgr

    def __call__(self, labels: Labels) -> Labels:
        img = labels.pop("img")
        h, w = img.shape[:2]
        cls = labels.pop("cls")
        instances = labels.pop("instances")
        instances.convert_bbox(format=self.bbox_format)
        instances.denormalize(w, h)
        nl = len(instances)

        labels["img"] = self._format_img(img)
        if nl:
            labels["cls"] = torch.from_numpy(np.asarray(cls, dtype=np.float32).reshape(-1, 1))
            boxes = torch.from_numpy(np.array(instances.bboxes, dtype=np.float32))  # a copy, safe to edit
        else:
            labels["cls"] = torch.zeros((0, 1))
            boxes = torch.zeros((0, 4))
        if self.normalize and nl:
            boxes[:, [0, 2]] /= w
            boxes[:, [1, 3]] /= h
        labels["bboxes"] = boxes
        if self.batch_idx:
            labels["batch_idx"] = torch.zeros(nl)
        return labels

    def _format_img(self, img: np.ndarray) -> torch.Tensor:
        """HWC BGR -> CHW RGB (kept BGR with probability `bgr`)."""
        if img.ndim < 3:
            img = np.expand_dims(img, -1)
        chw = img.transpose(2, 0, 1)
        chw = chw[::-1] if random.uniform(0, 1) > self.bgr else chw
        return torch.from_numpy(np.ascontiguousarray(chw))


def v8_transforms(dataset, imgsz: int, hyp, stretch: bool = False) -> Compose:
    """The training pipeline: mosaic + perspective, mixup, HSV jitter, vertical and horizontal flips.

    With stretch (RT-DETR) images arrive already resized to imgsz x imgsz, so no letterbox runs
    before the perspective warp.
    """
    mosaic = Mosaic(dataset, imgsz=imgsz, p=hyp.mosaic)
    affine = RandomPerspective(
        degrees=hyp.degrees,
        translate=hyp.translate,
        scale=hyp.scale,
        shear=hyp.shear,
        perspective=hyp.perspective,
        pre_transform=None if stretch else LetterBox(new_shape=(imgsz, imgsz)),
    )
    pre_transform = Compose([mosaic, affine])
    return Compose(
        [
            pre_transform,
            MixUp(dataset, pre_transform=pre_transform, p=hyp.mixup),
            RandomHSV(hgain=hyp.hsv_h, sgain=hyp.hsv_s, vgain=hyp.hsv_v),
            RandomFlip(direction="vertical", p=hyp.flipud),
            RandomFlip(direction="horizontal", p=hyp.fliplr),
        ]
    )
