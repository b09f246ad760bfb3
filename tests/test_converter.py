"""Data tools: COCO json -> YOLO labels, autosplit, zip_directory / unzip_file, on files the tests write."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest

from ultralytics.data.converter import (
    coco80_to_coco91_class,
    coco91_to_coco80_class,
    convert_coco,
    merge_multi_segment,
)
from ultralytics.data.utils import autosplit
from ultralytics.utils.downloads import unzip_file, zip_directory

pytestmark = pytest.mark.usefixtures("in_tmp_path")


def _write_coco(folder: Path, name: str, annotations: list[dict], images: list[dict] | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    images = images or [
        {"id": 1, "file_name": "a.jpg", "width": 200, "height": 100},
        {"id": 2, "file_name": "b.jpg", "width": 100, "height": 100},
        {"id": 3, "file_name": "empty.jpg", "width": 50, "height": 50},
    ]
    file = folder / name
    file.write_text(json.dumps({"images": images, "annotations": annotations}))
    return file


BOXES = [
    # image 1: COCO category 1 (person) and 13 (stop sign: index 11 of the 80 classes)
    {"id": 1, "image_id": 1, "category_id": 1, "bbox": [20, 10, 40, 20], "iscrowd": 0},
    {"id": 2, "image_id": 1, "category_id": 13, "bbox": [100, 50, 100, 50], "iscrowd": 0},
    {"id": 3, "image_id": 1, "category_id": 13, "bbox": [100, 50, 100, 50], "iscrowd": 0},  # duplicate: one line
    {"id": 4, "image_id": 1, "category_id": 1, "bbox": [0, 0, 200, 100], "iscrowd": 1},  # crowd: skipped
    {"id": 5, "image_id": 2, "category_id": 90, "bbox": [0, 0, 10, 0], "iscrowd": 0},  # zero height: skipped
    {"id": 6, "image_id": 2, "category_id": 90, "bbox": [10, 20, 30, 40], "iscrowd": 0},  # toothbrush: 79
]


def _rows(file: Path) -> list[list[float]]:
    return [[float(v) for v in line.split()] for line in file.read_text().splitlines()]


def test_class_tables():
    to80 = coco91_to_coco80_class()
    assert len(to80) == 91 and sum(v is not None for v in to80) == 80
    assert to80[0] == 0 and to80[11] is None and to80[12] == 11 and to80[89] == 79 and to80[90] is None
    to91 = coco80_to_coco91_class()
    assert len(to91) == 80 and all(to80[coco_id - 1] == k for k, coco_id in enumerate(to91))


def test_convert_coco_boxes_layout_and_values(tmp_path):
    _write_coco(tmp_path / "annotations", "instances_val2017.json", BOXES)
    out = convert_coco(tmp_path / "annotations", save_dir=tmp_path / "converted")
    assert out == tmp_path / "converted" and (out / "images").is_dir()
    labels = out / "labels" / "val2017"
    assert sorted(p.name for p in labels.iterdir()) == ["a.txt", "b.txt"]  # no annotations, no file
    a = _rows(labels / "a.txt")
    np.testing.assert_allclose(a, [[0, 0.2, 0.2, 0.2, 0.2], [11, 0.75, 0.75, 0.5, 0.5]], atol=1e-6)
    np.testing.assert_allclose(_rows(labels / "b.txt"), [[79, 0.25, 0.4, 0.3, 0.4]], atol=1e-6)

    again = convert_coco(tmp_path / "annotations", save_dir=tmp_path / "converted", cls91to80=False)
    assert again == tmp_path / "converted2"  # an existing save_dir is not overwritten
    assert [row[0] for row in _rows(again / "labels" / "val2017" / "a.txt")] == [0, 12]  # category_id - 1


def test_convert_coco_segments_merges_polygons(tmp_path):
    square = [10, 10, 30, 10, 30, 30, 10, 30]
    far = [60, 60, 80, 60, 80, 80, 60, 80]
    anns = [
        {"id": 1, "image_id": 2, "category_id": 1, "bbox": [10, 10, 20, 20], "segmentation": [square]},
        {"id": 2, "image_id": 2, "category_id": 2, "bbox": [10, 10, 70, 70], "segmentation": [square, far]},
        {"id": 3, "image_id": 2, "category_id": 3, "bbox": [40, 40, 10, 10], "segmentation": {"counts": "x"}},  # RLE
    ]
    _write_coco(tmp_path / "ann", "instances_train.json", anns)
    out = convert_coco(tmp_path / "ann", save_dir=tmp_path / "seg", use_segments=True)
    rows = _rows(out / "labels" / "train" / "b.txt")
    assert rows[0] == [0, 0.1, 0.1, 0.3, 0.1, 0.3, 0.3, 0.1, 0.3]
    merged = np.array(rows[1][1:]).reshape(-1, 2) * 100
    # Every corner of both squares is on the one outline, joined at their nearest corners (30,30)-(60,60).
    corners = {tuple(p) for p in np.array(square + far).reshape(-1, 2)}
    assert corners <= {tuple(p) for p in np.round(merged)}
    assert rows[2] == [2, 0.45, 0.45, 0.1, 0.1]  # no polygon: the box is written


def test_merge_multi_segment_bridges_nearest_points():
    outline = np.concatenate(merge_multi_segment([[0, 0, 1, 0, 1, 1], [5, 5, 6, 5, 6, 6]]))
    steps = np.linalg.norm(np.diff(outline, axis=0), axis=1)
    longest = np.sort(steps)[-2:]
    np.testing.assert_allclose(longest, [np.hypot(4, 4)] * 2)  # the bridge (1,1)-(5,5), there and back


def test_segments_on_detection_json_is_refused_before_writing(tmp_path):
    _write_coco(tmp_path / "ann", "instances_val.json", BOXES)
    with pytest.raises(ValueError, match=r"use_segments=True.*no annotation.*'segmentation'.*use_segments=False"):
        convert_coco(tmp_path / "ann", save_dir=tmp_path / "out", use_segments=True)
    with pytest.raises(ValueError, match=r"use_keypoints=True.*'keypoints'"):
        convert_coco(tmp_path / "ann", save_dir=tmp_path / "out", use_keypoints=True)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("annotations", "message"),
    [
        ([{"id": 1, "image_id": 7, "category_id": 1, "bbox": [0, 0, 1, 1]}], r"image ids \[7\]"),
        ([{"id": 1, "image_id": 1, "category_id": 95, "bbox": [0, 0, 1, 1]}], r"category ids \[95\].*cls91to80=False"),
    ],
)
def test_bad_references_are_refused(tmp_path, annotations, message):
    _write_coco(tmp_path / "ann", "x.json", annotations)
    with pytest.raises(ValueError, match=message):
        convert_coco(tmp_path / "ann", save_dir=tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_missing_or_broken_json(tmp_path):
    with pytest.raises(FileNotFoundError, match="no \\*.json"):
        convert_coco(tmp_path / "nowhere", save_dir=tmp_path / "out")
    (tmp_path / "ann").mkdir()
    (tmp_path / "ann" / "x.json").write_text('{"images": []}')
    with pytest.raises(ValueError, match="no 'annotations' list"):
        convert_coco(tmp_path / "ann", save_dir=tmp_path / "out")


def test_keypoints_follow_the_box(tmp_path):
    anns = [{"id": 1, "image_id": 2, "category_id": 1, "bbox": [0, 0, 50, 50], "keypoints": [10, 20, 2, 0, 0, 0]}]
    _write_coco(tmp_path / "ann", "person_keypoints_val.json", anns)
    out = convert_coco(tmp_path / "ann", save_dir=tmp_path / "kp", use_keypoints=True)
    assert _rows(out / "labels" / "person_keypoints_val" / "b.txt") == [[0, 0.25, 0.25, 0.5, 0.5, 0.1, 0.2, 2, 0, 0, 0]]


def test_lvis_layout(tmp_path):
    images = [{"id": 1, "coco_url": "http://images.cocodataset.org/val2017/000001.jpg", "width": 100, "height": 100}]
    anns = [{"id": 1, "image_id": 1, "category_id": 5, "bbox": [0, 0, 10, 10]}]
    _write_coco(tmp_path / "ann", "lvis_v1_val.json", anns, images)
    out = convert_coco(tmp_path / "ann", save_dir=tmp_path / "lvis", cls91to80=False, lvis=True)
    assert _rows(out / "labels" / "val2017" / "000001.txt") == [[4, 0.05, 0.05, 0.1, 0.1]]
    assert (out / "val.txt").read_text() == "./images/val2017/000001.jpg\n"


# ------------------------------------------------------------------------------------------------ autosplit
def _image_folder(root: Path, n: int, labelled: set[int]) -> Path:
    images = root / "images"
    images.mkdir(parents=True)
    (root / "labels").mkdir()
    for i in range(n):
        cv2.imwrite(str(images / f"im{i:02d}.jpg"), np.full((8, 8, 3), i, np.uint8))
        if i in labelled:
            (root / "labels" / f"im{i:02d}.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    (images / "notes.txt").write_text("not an image")
    return images


def _listed(file: Path) -> list[str]:
    return file.read_text().splitlines() if file.exists() else []


def test_autosplit_lists_every_image_once_reproducibly(tmp_path):
    images = _image_folder(tmp_path / "ds", 40, labelled=set(range(0, 40, 2)))
    autosplit(images, weights=(0.7, 0.2, 0.1))
    splits = [_listed(tmp_path / "ds" / f"autosplit_{s}.txt") for s in ("train", "val", "test")]
    everything = sorted(sum(splits, []))
    assert everything == [f"./images/im{i:02d}.jpg" for i in range(40)]
    assert len(splits[0]) > len(splits[1]) > 0 and len(splits[2]) > 0
    autosplit(images, weights=(0.7, 0.2, 0.1))  # old lists are replaced, not appended to
    assert [_listed(tmp_path / "ds" / f"autosplit_{s}.txt") for s in ("train", "val", "test")] == splits

    autosplit(images, weights=(1, 0, 0), annotated_only=True)
    assert _listed(tmp_path / "ds" / "autosplit_train.txt") == [f"./images/im{i:02d}.jpg" for i in range(0, 40, 2)]
    assert not (tmp_path / "ds" / "autosplit_val.txt").exists()


@pytest.mark.parametrize("weights", [(0.9, 0.1), (1, -1, 0), (0, 0, 0)])
def test_autosplit_bad_weights(tmp_path, weights):
    images = _image_folder(tmp_path / "ds", 2, labelled=set())
    with pytest.raises(ValueError, match="three non-negative fractions"):
        autosplit(images, weights=weights)


def test_autosplit_without_images(tmp_path):
    with pytest.raises(FileNotFoundError, match="no images found"):
        autosplit(tmp_path)


# ------------------------------------------------------------------------------------------------ zip / unzip
def _folder_with_files(root: Path) -> Path:
    (root / "sub").mkdir(parents=True)
    (root / "a.txt").write_text("a")
    (root / "sub" / "b.txt").write_text("b" * 1000)
    (root / ".DS_Store").write_text("clutter")
    return root


@pytest.mark.parametrize("compress", [True, False])
def test_zip_and_unzip_round_trip(tmp_path, compress):
    folder = _folder_with_files(tmp_path / "data")
    archive = zip_directory(folder, compress=compress, progress=False)
    assert archive == tmp_path / "data.zip"
    with zipfile.ZipFile(archive) as zf:
        assert sorted(zf.namelist()) == ["a.txt", "sub/b.txt"]
        assert {i.compress_type for i in zf.infolist()} == {zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED}
    out = unzip_file(archive, path=tmp_path / "elsewhere", progress=False)
    assert out == tmp_path / "elsewhere" / "data"
    assert (out / "sub" / "b.txt").read_text() == "b" * 1000 and not (out / ".DS_Store").exists()


def test_unzip_one_top_folder_exist_ok_and_unsafe_entries(tmp_path, log_text):
    archive = tmp_path / "pack.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("shapes/images/x.txt", "1")
        zf.writestr("shapes/../../escape.txt", "bad")
    out = unzip_file(archive, path=tmp_path / "dst", progress=False)
    assert out == tmp_path / "dst" / "shapes" and (out / "images" / "x.txt").read_text() == "1"
    assert not (tmp_path / "escape.txt").exists() and "outside" in log_text()

    (out / "images" / "x.txt").write_text("changed")
    assert unzip_file(archive, path=tmp_path / "dst", progress=False) == out
    assert (out / "images" / "x.txt").read_text() == "changed" and "not empty" in log_text()
    unzip_file(archive, path=tmp_path / "dst", exist_ok=True, progress=False)
    assert (out / "images" / "x.txt").read_text() == "1"


def test_zip_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        zip_directory(tmp_path / "missing")
    (tmp_path / "fake.zip").write_text("not a zip")
    with pytest.raises(zipfile.BadZipFile, match="not a zip archive"):
        unzip_file(tmp_path / "fake.zip")
