"""COCO-format json annotations -> YOLO label files, and the COCO class-index tables.

    from ultralytics.data.converter import convert_coco
    convert_coco("annotations/", save_dir="coco_converted/")  # -> coco_converted/labels/<split>/*.txt

A YOLO label file holds one line per object, `cls xc yc w h` with the box normalised by the image
size (or `cls x1 y1 x2 y2 ...`, a normalised polygon, with use_segments; or the box followed by
`x y visibility` triplets, with use_keypoints).
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from ultralytics.utils import LOGGER, TQDM
from ultralytics.utils.files import increment_path
from ultralytics.utils.ops import ltwh2xywh

# COCO's 91 category ids (1-91) left 11 unused when the 80 detection classes were published.
_UNUSED_COCO91_IDS = frozenset({12, 26, 29, 30, 45, 66, 68, 69, 71, 83, 91})
_LVIS_IMAGE_HOST = "http://images.cocodataset.org"


def coco80_to_coco91_class() -> list[int]:
    """The COCO category id (1-91) of each of the 80 detection classes, in class order."""
    return [i for i in range(1, 92) if i not in _UNUSED_COCO91_IDS]


def coco91_to_coco80_class() -> list[int | None]:
    """Entry `id - 1` is the 80-class index of COCO category `id` (1-91), or None for the 11 unused ids."""
    to80 = {coco_id: k for k, coco_id in enumerate(coco80_to_coco91_class())}
    return [to80.get(coco_id) for coco_id in range(1, 92)]


# ------------------------------------------------------------------------------------------------
# One annotation -> one label line
# ------------------------------------------------------------------------------------------------
def _nearest_pair(a: np.ndarray, b: np.ndarray) -> tuple[int, int]:
    """Indices (i, j) of the closest points a[i], b[j] of two (n, 2) point lists."""
    gaps = ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)
    i, j = np.unravel_index(int(gaps.argmin()), gaps.shape)
    return int(i), int(j)


def merge_multi_segment(segments: list[list[float]]) -> list[np.ndarray]:
    """Join the polygons of one object (COCO's list of flat [x1, y1, x2, y2, ...]) into one outline.

    Polygon k is linked to polygon k + 1 by a zero-width bridge between their nearest points; the
    outline walks each polygon once and each bridge there and back. Returns the outline as a
    list of (n, 2) point arrays whose concatenation is the single polygon.
    """
    polygons = [np.asarray(s, dtype=np.float64).reshape(-1, 2) for s in segments]
    links = [_nearest_pair(polygons[k], polygons[k + 1]) for k in range(len(polygons) - 1)]

    def walk(k: int, entry: int) -> list[np.ndarray]:
        # Polygon k from its entry point round to the entry point again, detouring into k + 1 at the exit.
        ring = np.roll(polygons[k], -entry, axis=0)
        ring = np.concatenate([ring, ring[:1]])
        if k == len(links):
            return [ring]
        exit_at = (links[k][0] - entry) % len(polygons[k])
        return [ring[: exit_at + 1], *walk(k + 1, links[k][1]), ring[exit_at:]]

    return walk(0, 0)


def _normalised_box(ann: dict, w: int, h: int) -> np.ndarray | None:
    """COCO's pixel (left, top, w, h) -> normalised (xc, yc, w, h); None for an empty box."""
    box = ltwh2xywh(np.asarray(ann["bbox"], dtype=np.float64)) / np.array([w, h, w, h])
    return box if box[2] > 0 and box[3] > 0 else None


def _polygon(ann: dict, w: int, h: int) -> list[float]:
    """The object's outline as normalised flat [x1, y1, x2, y2, ...]; [] when it has none (RLE or empty)."""
    parts = ann.get("segmentation")
    if not isinstance(parts, list) or not parts:
        return []  # run-length encoded crowds and empty lists have no polygon
    points = np.concatenate(merge_multi_segment(parts)) if len(parts) > 1 else np.asarray(parts[0]).reshape(-1, 2)
    return (points / np.array([w, h])).reshape(-1).tolist()


def _label_line(ann: dict, cls: int, box: np.ndarray, size: tuple[int, int], kind: str) -> list[float]:
    """The numbers of one label line: box, polygon (box when it has none) or box plus keypoints."""
    w, h = size
    if kind == "segments":
        polygon = _polygon(ann, w, h)
        return [cls, *(polygon or box.tolist())]
    if kind == "keypoints" and ann.get("keypoints") is not None:
        points = np.asarray(ann["keypoints"], dtype=np.float64).reshape(-1, 3) / np.array([w, h, 1])
        return [cls, *box.tolist(), *points.reshape(-1).tolist()]
    return [cls, *box.tolist()]


def _format_line(numbers: list[float]) -> str:
    return " ".join(f"{v:g}" for v in numbers)


# ------------------------------------------------------------------------------------------------
# One json file
# ------------------------------------------------------------------------------------------------
def _read_json(file: Path) -> dict:
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"convert_coco: {file} is not valid json ({err})") from err
    missing = [key for key in ("images", "annotations") if key not in data]
    if missing:
        raise ValueError(
            f"convert_coco: {file} has no {' or '.join(repr(k) for k in missing)} list; a COCO annotation file "
            f"has 'images' (id, file_name, width, height) and 'annotations' (image_id, category_id, bbox)"
        )
    return data


def _check_requested_fields(file: Path, data: dict, use_segments: bool, use_keypoints: bool) -> None:
    """Refuse segments or keypoints from a file whose annotations carry none (a detection-only file)."""
    wanted = ((use_segments, "segmentation", "use_segments"), (use_keypoints, "keypoints", "use_keypoints"))
    for asked, key, flag in wanted:
        if asked and data["annotations"] and not any(ann.get(key) for ann in data["annotations"]):
            raise ValueError(
                f"convert_coco({flag}=True): no annotation in {file} has a '{key}' field, so it is a "
                f"detection-only dataset and has no {key} to convert. Call convert_coco with {flag}=False "
                f"to write box labels, or pass the annotation file that has {key} (e.g. instances_*.json "
                f"for segments, person_keypoints_*.json for keypoints)."
            )


def _check_references(file: Path, data: dict, cls91to80: bool) -> None:
    """Every annotation names a listed image and, with cls91to80, a COCO category id 1-91."""
    image_ids = {image["id"] for image in data["images"]}
    orphans = sorted({ann["image_id"] for ann in data["annotations"]} - image_ids, key=str)
    if orphans:
        raise ValueError(f"convert_coco: {file} has annotations for image ids {orphans[:5]} that 'images' does not list")
    outside = sorted({ann["category_id"] for ann in data["annotations"]} - set(range(1, 92)))
    if cls91to80 and outside:
        raise ValueError(
            f"convert_coco(cls91to80=True): {file} has category ids {outside[:5]} outside COCO's 1-91; "
            f"pass cls91to80=False for a dataset with its own categories (class = category_id - 1)"
        )


def _class_of(category_id: int, coco80: list[int | None] | None) -> int | None:
    """The 80-class index of a COCO id (None for an unused one), or category_id - 1 without the table."""
    return coco80[category_id - 1] if coco80 is not None else category_id - 1


def _image_lines(image: dict, anns: list[dict], coco80: list[int | None] | None, kind: str) -> list[str]:
    """The distinct label lines of one image; crowd regions, empty boxes and unused classes are left out."""
    size = (image["width"], image["height"])
    lines: list[str] = []
    for ann in anns:
        box = None if ann.get("iscrowd") else _normalised_box(ann, *size)
        cls = None if box is None else _class_of(ann["category_id"], coco80)
        if cls is None:
            continue
        line = _format_line(_label_line(ann, cls, box, size, kind))
        if line not in lines:
            lines.append(line)
    return lines


def _label_target(image: dict, folder: Path, lvis: bool) -> tuple[Path, str | None]:
    """Where an image's label file goes and, for LVIS, the image path its split list names."""
    if not lvis:
        return (folder / image["file_name"]).with_suffix(".txt"), None
    relative = Path(image["coco_url"].replace(_LVIS_IMAGE_HOST, "").lstrip("/"))  # e.g. train2017/0001.jpg
    return (folder / relative).with_suffix(".txt"), f"./images/{relative.as_posix()}"


def _convert_file(file: Path, data: dict, save_dir: Path, coco80, kind: str, lvis: bool) -> int:
    """Write the label files of one json; returns how many images got one."""
    folder = save_dir / "labels" / ("" if lvis else file.stem.replace("instances_", ""))
    images = {image["id"]: image for image in data["images"]}
    per_image: dict[Any, list[dict]] = defaultdict(list)
    for ann in data["annotations"]:
        per_image[ann["image_id"]].append(ann)
    listed = []
    for image_id, anns in TQDM(per_image.items(), desc=f"Annotations {file}"):
        target, image_path = _label_target(images[image_id], folder, lvis)
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(target, "a", encoding="utf-8") as out:
            out.writelines(f"{line}\n" for line in _image_lines(images[image_id], anns, coco80, kind))
        listed += [image_path] if image_path else []
    if lvis:
        split_list = save_dir / file.name.replace("lvis_v1_", "").replace(".json", ".txt")
        with open(split_list, "a", encoding="utf-8") as out:
            out.writelines(f"{line}\n" for line in listed)
    return len(per_image)


def convert_coco(
    labels_dir: str | Path = "../coco/annotations/",
    save_dir: str | Path = "coco_converted/",
    use_segments: bool = False,
    use_keypoints: bool = False,
    cls91to80: bool = True,
    lvis: bool = False,
) -> Path:
    """Convert every COCO json in labels_dir into YOLO label files under save_dir; returns save_dir.

    Layout: save_dir/labels/<json stem without 'instances_'>/<image file stem>.txt and an empty
    save_dir/images/ for the images; save_dir becomes save_dir2, 3, ... when it exists. With lvis,
    labels go to save_dir/labels/<train2017|val2017>/ and save_dir/<split>.txt lists the images.
    cls91to80 maps COCO's category ids 1-91 to the 80 class indices; otherwise class = id - 1.
    Every json is read and checked before anything is written.
    """
    files = sorted(Path(labels_dir).resolve().glob("*.json"))
    if not files:
        raise FileNotFoundError(f"convert_coco: no *.json annotation files in labels_dir='{labels_dir}'")
    loaded = [(file, _read_json(file)) for file in files]
    for file, data in loaded:
        _check_requested_fields(file, data, use_segments, use_keypoints)
        _check_references(file, data, cls91to80)
    save_dir = increment_path(save_dir)
    for sub in ("labels", "images"):
        (save_dir / sub).mkdir(parents=True, exist_ok=True)
    kind = "segments" if use_segments else "keypoints" if use_keypoints else "boxes"
    coco80 = coco91_to_coco80_class() if cls91to80 else None
    for file, data in loaded:
        _convert_file(file, data, save_dir, coco80, kind, lvis)
    LOGGER.info(f"{'LVIS' if lvis else 'COCO'} data converted successfully.\nResults saved to {save_dir.resolve()}")
    return save_dir
