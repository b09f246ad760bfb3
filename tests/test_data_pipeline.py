"""The pieces of the augmentation pipeline, the loaders and the dataloader, one contract at a time.

The random-draw tests pin how many numbers each transform takes from which generator: a seeded
training run depends on that order (tests/test_golden.py checks the whole run).
"""

from __future__ import annotations

import random

import cv2
import numpy as np
import pytest
import torch

from ultralytics.data.augment import (
    Format,
    Mosaic,
    RandomFlip,
    RandomHSV,
    RandomPerspective,
    _tile_span,
)
from ultralytics.data.build import InfiniteDataLoader
from ultralytics.data.instances import Instances
from ultralytics.data.loaders import LoadImagesAndVideos, LoadTensor


def _labels(img: np.ndarray, boxes=((0.5, 0.5, 0.5, 0.5),), cls=(1.0,)) -> dict:
    return {
        "img": img,
        "cls": np.array(cls, np.float32).reshape(-1, 1),
        "instances": Instances(np.array(boxes, np.float32).reshape(-1, 4), bbox_format="xywh", normalized=True),
        "im_file": "x.jpg",
        "ori_shape": img.shape[:2],
        "resized_shape": img.shape[:2],
    }


def _python_draws_after(fn) -> int:
    """How many random.random()-sized steps fn advanced Python's generator (uniform/random take one each)."""
    random.seed(123)
    fn()
    after = random.random()
    random.seed(123)
    for n in range(50):
        if random.random() == after:
            return n
    raise AssertionError("fn took more than 50 draws")


def _numpy_state_after(fn) -> float:
    """The next np.random.rand() after running fn from seed 0."""
    np.random.seed(0)
    fn()
    return np.random.rand()


# ---------------------------------------------------------------- random draws per transform


def test_perspective_takes_eight_uniform_draws_and_no_numpy_draws():
    img = np.zeros((32, 32, 3), np.uint8)
    warp = RandomPerspective(degrees=5, translate=0.1, scale=0.2, shear=2)
    assert _python_draws_after(lambda: warp(_labels(img))) == 8
    assert _numpy_state_after(lambda: warp(_labels(img))) == _numpy_state_after(lambda: None)


def test_flip_and_format_take_one_draw_even_when_they_do_nothing():
    img = np.zeros((8, 8, 3), np.uint8)
    assert _python_draws_after(lambda: RandomFlip(p=0.0, direction="vertical")(_labels(img))) == 1
    assert _python_draws_after(lambda: Format(bgr=0.0)(_labels(img))) == 1


def test_hsv_takes_three_numpy_draws_and_skips_when_gains_are_zero():
    img = np.full((4, 4, 3), 100, np.uint8)
    untouched = _numpy_state_after(lambda: None)
    assert _numpy_state_after(lambda: RandomHSV(0.0, 0.0, 0.0)(_labels(img.copy()))) == untouched
    three = _numpy_state_after(lambda: np.random.uniform(-1, 1, 3))
    assert _numpy_state_after(lambda: RandomHSV(0.5, 0.5, 0.5)(_labels(img.copy()))) == three


def test_hsv_lookup_matches_per_channel_tables():
    gains = np.array([1.3, 0.6, 1.9])
    table = RandomHSV._lookup(gains, np.uint8)
    ramp = np.arange(256, dtype=np.float64)
    assert table.shape == (256, 1, 3)
    assert np.array_equal(table[:, 0, 0], ((ramp * 1.3) % 180).astype(np.uint8))
    assert np.array_equal(table[:, 0, 2], np.clip(ramp * 1.9, 0, 255).astype(np.uint8))


# ---------------------------------------------------------------- geometry


@pytest.mark.parametrize("after", [False, True])
@pytest.mark.parametrize("centre", [10, 32, 50])
def test_tile_span_stays_on_canvas_and_keeps_the_tile_edge_at_the_centre(centre, after):
    c1, c2, i1, i2 = _tile_span(centre, length=40, limit=64, after=after)
    assert 0 <= c1 <= c2 <= 64 and 0 <= i1 <= i2 <= 40
    assert c2 - c1 == i2 - i1  # the copied patch has the same size on both sides
    assert (c1, i1) == (centre, 0) if after else (c2, i2) == (centre, 40)


class _FourColours:
    """A stand-in dataset: image k is filled with 50 * (k + 1) and has one centred box."""

    def __init__(self) -> None:
        self.buffer: list[int] = []  # empty: Mosaic falls back to random indices

    def __len__(self) -> int:
        return 4

    def get_image_and_label(self, k: int) -> dict:
        return _labels(np.full((32, 32, 3), 50 * (k + 1), np.uint8))


def test_mosaic_puts_each_partner_in_its_quadrant():
    mosaic = Mosaic(_FourColours(), imgsz=32, p=1.0)
    random.seed(0)
    out = mosaic(_labels(np.full((32, 32, 3), 30, np.uint8)))
    canvas = out["img"]
    assert canvas.shape == (64, 64, 3) and out["mosaic_border"] == (-16, -16)
    yc, xc = np.argwhere(canvas[..., 0] == 30).max(0) + 1  # the sample itself ends at the centre
    assert 16 <= yc <= 48 and 16 <= xc <= 48
    partners = [int(canvas[y, x, 0]) for y, x in ((yc - 1, xc), (yc, xc - 1), (yc, xc))]
    assert all(v in {50, 100, 150, 200} for v in partners)  # right, below and diagonal: partner tiles
    assert len(out["cls"]) == len(out["instances"]) == 4
    assert (out["instances"].bboxes >= 0).all() and (out["instances"].bboxes <= 64).all()


def test_identity_perspective_keeps_image_and_boxes():
    img = np.random.default_rng(0).integers(0, 255, (24, 40, 3), dtype=np.uint8)
    warp = RandomPerspective(degrees=0, translate=0.0, scale=0.0, shear=0, perspective=0)
    out = warp(_labels(img, boxes=((0.5, 0.5, 0.5, 0.5),)))
    assert out["img"] is img
    assert np.allclose(out["instances"].bboxes, [[10, 6, 30, 18]])


def test_instances_mirror_in_every_format():
    for fmt, box, mirrored in (
        ("xyxy", [2, 1, 6, 3], [4, 1, 8, 3]),
        ("xywh", [4, 2, 4, 2], [6, 2, 4, 2]),
        ("ltwh", [2, 1, 4, 2], [4, 1, 4, 2]),
    ):
        ins = Instances(np.array([box], np.float32), bbox_format=fmt, normalized=False)
        ins.fliplr(10)
        assert ins.bboxes.tolist() == [mirrored], fmt


# ---------------------------------------------------------------- loaders


def _clip(path, n: int) -> None:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10, (64, 48))
    if not writer.isOpened():
        pytest.skip("OpenCV cannot write mp4v video here")
    for k in range(n):
        writer.write(np.full((48, 64, 3), 20 * k, np.uint8))
    writer.release()


def test_batches_never_mix_images_with_video_frames(tmp_path):
    for k in range(3):
        cv2.imwrite(str(tmp_path / f"im{k}.jpg"), np.full((16, 16, 3), 10, np.uint8))
    _clip(tmp_path / "clip.mp4", 5)
    loader = LoadImagesAndVideos(str(tmp_path), batch=2)
    kinds = []
    for paths, images, info in loader:
        assert len(paths) == len(images) == len(info)
        kinds.append([note.split()[0] for note in info])
    assert kinds == [["image", "image"], ["image"], ["video", "video"], ["video", "video"], ["video"]]
    assert loader.mode == "video" and loader.count == loader.nf


def test_tensor_source_names_one_path_per_image():
    loader = LoadTensor(torch.zeros(3, 32, 32))  # CHW gets a batch dimension
    paths, batch, info = next(iter(loader))
    assert batch.shape == (1, 3, 32, 32) and paths == ["image0.jpg"] and info == [""]


# ---------------------------------------------------------------- dataloader


def test_infinite_loader_gives_one_epoch_per_iteration_and_resets():
    data = list(range(10))
    loader = InfiniteDataLoader(data, batch_size=4, shuffle=False, num_workers=0)
    assert len(loader) == 3
    first = [b.tolist() for b in loader]
    second = [b.tolist() for b in loader]
    assert first == second == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    next(iter(loader))  # stop mid-epoch
    loader.reset()
    assert next(iter(loader)).tolist() == [0, 1, 2, 3]
