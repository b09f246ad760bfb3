"""The embedded `shapes` demo dataset: deterministic synthetic detection images, generated offline.

Each image is a textured, low-saturation background with 1-6 saturated shapes of six classes
(circle, square, triangle, star, hexagon, cross), randomly sized, rotated and allowed to overlap
partially; about one image in sixteen is background only. Colour hints at the class (each class
has its own hue band) but a third of the objects get a random hue, so the shape itself has to be
learned. Boxes are the tight extent of each drawn shape (including parts later hidden by another
shape). Everything is drawn from a seeded generator per image, so regenerating gives identical
labels and images.

Dataset yamls select a generator by name with a plain key, e.g. `synthetic: shapes`, looked up in
SYNTHETIC_GENERATORS.
"""

from __future__ import annotations

import math
import os
import shutil
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from ultralytics.utils import LOGGER

SHAPE_NAMES = ("circle", "square", "triangle", "star", "hexagon", "cross")
CLASS_HUES = (0, 60, 120, 30, 150, 90)  # OpenCV hue (0-179) centre of each class's colour band
IMAGE_SIZES = ((256, 256), (240, 320), (320, 240))  # (h, w) choices for source images
MAX_OVERLAP_IOU = 0.25  # shapes may overlap, but never hide most of each other
JPEG_QUALITY = 90


def _regular_polygon(n: int, radius: float, angle: float, inner: float | None = None) -> np.ndarray:
    """Vertices (k, 2) around the origin; with `inner`, a star alternating outer and inner radius."""
    if inner is None:
        t = angle + np.arange(n) * 2 * math.pi / n
        return np.stack([radius * np.cos(t), radius * np.sin(t)], 1)
    t = angle + np.arange(2 * n) * math.pi / n
    r = np.where(np.arange(2 * n) % 2 == 0, radius, radius * inner)
    return np.stack([r * np.cos(t), r * np.sin(t)], 1)


def _cross(radius: float, angle: float, arm: float = 0.36) -> np.ndarray:
    """A plus sign (12 vertices) whose arms reach `radius`, rotated by `angle`."""
    a, r = radius * arm / 2, radius
    pts = np.array(
        [[-a, -r], [a, -r], [a, -a], [r, -a], [r, a], [a, a], [a, r], [-a, r], [-a, a], [-r, a], [-r, -a], [-a, -a]],
        dtype=np.float64,
    )
    c, s = math.cos(angle), math.sin(angle)
    return pts @ np.array([[c, s], [-s, c]])


def _shape_polygon(cls: int, radius: float, angle: float, rng: np.random.Generator) -> np.ndarray:
    """Outline (k, 2) of class `cls` centred on the origin."""
    name = SHAPE_NAMES[cls]
    if name == "circle":
        aspect = rng.uniform(0.85, 1.15)  # slightly elliptic, so size alone does not give it away
        t = np.linspace(0, 2 * math.pi, 48, endpoint=False)
        pts = np.stack([radius * np.cos(t), radius * aspect * np.sin(t)], 1)
        c, s = math.cos(angle), math.sin(angle)
        return pts @ np.array([[c, s], [-s, c]])
    if name == "square":
        return _regular_polygon(4, radius, angle)
    if name == "triangle":
        return _regular_polygon(3, radius, angle)
    if name == "star":
        return _regular_polygon(5, radius, angle, inner=0.45)
    if name == "hexagon":
        return _regular_polygon(6, radius, angle)
    return _cross(radius, angle)


def _background(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """Low-saturation textured background: tinted grey, smooth blotches, fine noise, grey clutter."""
    base = rng.uniform(70, 190)
    tint = rng.uniform(-12, 12, 3)
    coarse = rng.normal(0, 18, (max(2, h // 40), max(2, w // 40), 1))
    coarse = cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC)[..., None]
    img = base + tint + coarse + rng.normal(0, 6, (h, w, 3))
    img = np.clip(img, 0, 255).astype(np.uint8)
    for _ in range(int(rng.integers(0, 4))):  # grey lines as clutter the detector must ignore
        p1 = (int(rng.integers(0, w)), int(rng.integers(0, h)))
        p2 = (int(rng.integers(0, w)), int(rng.integers(0, h)))
        g = int(rng.uniform(40, 220))
        cv2.line(img, p1, p2, (g, g, g), int(rng.integers(1, 3)), cv2.LINE_AA)
    return img


def _object_colour(cls: int, rng: np.random.Generator) -> tuple[int, int, int]:
    """A saturated BGR colour: the class's hue band two times in three, any hue otherwise."""
    if rng.random() < 2 / 3:
        hue = (CLASS_HUES[cls] + rng.integers(-8, 9)) % 180
    else:
        hue = rng.integers(0, 180)
    hsv = np.array([[[hue, rng.integers(170, 256), rng.integers(150, 256)]]], dtype=np.uint8)
    b, g, r = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0]
    return int(b), int(g), int(r)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of two xyxy boxes."""
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def make_shapes_image(seed: tuple[int, ...]) -> tuple[np.ndarray, list[tuple[int, float, float, float, float]]]:
    """One image (h, w, 3) BGR and its labels [(cls, xc, yc, w, h) normalised], from `seed`."""
    rng = np.random.default_rng(list(seed))
    h, w = IMAGE_SIZES[int(rng.integers(0, len(IMAGE_SIZES)))]
    img = _background(h, w, rng)
    n_objects = 0 if rng.random() < 1 / 16 else int(rng.integers(1, 7))
    boxes: list[np.ndarray] = []
    labels = []
    side = min(h, w)
    for _ in range(n_objects):
        for _attempt in range(20):  # look for a place that does not overlap too much
            cls = int(rng.integers(0, len(SHAPE_NAMES)))
            radius = rng.uniform(0.06, 0.2) * side
            poly = _shape_polygon(cls, radius, rng.uniform(0, 2 * math.pi), rng)
            lo, hi = poly.min(0), poly.max(0)
            cx = rng.uniform(-lo[0] + 1, w - hi[0] - 1)
            cy = rng.uniform(-lo[1] + 1, h - hi[1] - 1)
            pts = np.round(poly + [cx, cy]).astype(np.int32)
            mask = np.zeros((h, w), dtype=np.uint8)
            cv2.fillPoly(mask, [pts], 1)
            ys, xs = np.nonzero(mask)
            if len(xs) == 0:
                continue
            box = np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], dtype=np.float64)
            if all(_iou(box, other) <= MAX_OVERLAP_IOU for other in boxes):
                break
        else:
            continue  # no room left in this image
        cv2.fillPoly(img, [pts], _object_colour(cls, rng), cv2.LINE_8)
        boxes.append(box)
        x1, y1, x2, y2 = box
        labels.append((cls, (x1 + x2) / 2 / w, (y1 + y2) / 2 / h, (x2 - x1) / w, (y2 - y1) / h))
    return img, labels


def _write_split(root: Path, split: str, count: int, seed: int, split_id: int) -> None:
    images, labels = root / "images" / split, root / "labels" / split
    images.mkdir(parents=True, exist_ok=True)
    labels.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        img, rows = make_shapes_image((seed, split_id, i))
        name = f"{split}_{i:04d}"
        if not cv2.imwrite(str(images / f"{name}.jpg"), img, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY]):
            raise OSError(f"Could not write {images / f'{name}.jpg'}")
        text = "".join(f"{c} {xc:.6f} {yc:.6f} {bw:.6f} {bh:.6f}\n" for c, xc, yc, bw, bh in rows)
        (labels / f"{name}.txt").write_text(text, encoding="utf-8")


def generate_shapes_dataset(root: str | Path, n_train: int = 128, n_val: int = 32, seed: int = 0) -> Path:
    """Write the shapes dataset in YOLO layout (images/{train,val}, labels/{train,val}) at `root`.

    The files are written to a temporary sibling folder and moved into place at the end, so a
    concurrent or interrupted run never leaves a half-written dataset at `root`.
    """
    if n_train < 1 or n_val < 1:
        raise ValueError(f"shapes dataset needs at least one train and one val image, got {n_train} and {n_val}")
    root = Path(root)
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = root.with_name(f".{root.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    _write_split(tmp, "train", n_train, seed, 0)
    _write_split(tmp, "val", n_val, seed, 1)
    try:
        tmp.rename(root)
    except OSError:
        if not root.exists():
            raise
        shutil.rmtree(tmp, ignore_errors=True)  # another process finished first; keep its copy
    LOGGER.info(f"Generated shapes dataset ({n_train} train, {n_val} val images) in {root}")
    return root


SYNTHETIC_GENERATORS: dict[str, Callable[[Path], Path]] = {"shapes": generate_shapes_dataset}
