"""Shared pytest fixtures: the shared/ reference folder, log capture and one big model per session."""

from __future__ import annotations

import io
import logging
import os
import tempfile
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Callable, Iterator

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
FOCAL_YAML = "rtdetr-l-FocalModulation.yaml"

# The suite never reads or writes the user's own settings.json (~/.config/Ultralytics): every test, and
# every subprocess a test starts, sees an empty config folder of its own unless the test sets another.
os.environ["YOLO_CONFIG_DIR"] = tempfile.mkdtemp(prefix="ultralytics-test-config-")

# Two cores in CI: more threads than cores only adds contention.
torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """The read-only shared/ folder beside the repository (absent in users' clones)."""
    if not SHARED.is_dir():
        pytest.skip(f"reference data folder {SHARED} is absent (it exists only beside the project's own checkout)")
    return SHARED


@pytest.fixture
def log_text():
    """Collects what the package logger prints while the test runs; call it to read the text."""
    from ultralytics.utils import LOGGER

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(message)s"))
    LOGGER.addHandler(handler)
    yield stream.getvalue
    LOGGER.removeHandler(handler)


@pytest.fixture(scope="session")
def focal_model():
    """rtdetr-l-FocalModulation built once per test session (takes a few seconds); do not modify it."""
    from ultralytics.nn.tasks import RTDETRDetectionModel

    torch.manual_seed(0)
    return RTDETRDetectionModel(FOCAL_YAML, verbose=False)


@pytest.fixture(autouse=True)
def _isolated_dirs(tmp_path_factory, monkeypatch):
    """Keep datasets and runs that tests create out of the working tree."""
    root = tmp_path_factory.getbasetemp()
    monkeypatch.setenv("ULTRALYTICS_DATASETS_DIR", str(root / "datasets"))
    monkeypatch.setenv("ULTRALYTICS_RUNS_DIR", str(root / "runs"))


# ------------------------------------------------------------------------------------------------
# Tiny models, a tiny dataset, per-test working folders and log capture shared by the engine tests
# ------------------------------------------------------------------------------------------------
# HGNet stem and blocks, AIFI, one decoder layer: the layout of rtdetr-l in miniature (about 60k parameters).
TINY_AIFI_YAML = """\
nc: 2
backbone:
  - [-1, 1, HGStem, [8, 16]] # 0-P2/4
  - [-1, 1, HGBlock, [8, 16, 3]] # 1
  - [-1, 1, DWConv, [32, 3, 2, 1, False]] # 2-P3/8
  - [-1, 1, HGBlock, [16, 32, 3]] # 3
  - [-1, 1, DWConv, [32, 3, 2, 1, False]] # 4-P4/16
  - [-1, 1, HGBlock, [16, 32, 3]] # 5
  - [-1, 1, DWConv, [32, 3, 2, 1, False]] # 6-P5/32
  - [-1, 1, HGBlock, [16, 32, 3]] # 7
head:
  - [-1, 1, Conv, [32, 1, 1, None, 1, 1, False]] # 8
  - [-1, 1, AIFI, [64, 2]] # 9
  - [-1, 1, Conv, [32, 1, 1]] # 10
  - [[3, 5, 10], 1, RTDETRDecoder, [nc, 32, 300, 4, 4, 1, 64]] # 11: hd 32, 1 decoder layer, ffn 64
"""

# Plain strided convolutions and the article's FocalModulation in place of AIFI.
TINY_FOCAL_YAML = """\
nc: 3
backbone:
  - [-1, 1, Conv, [8, 3, 2]] # 0-P1/2
  - [-1, 1, Conv, [16, 3, 2]] # 1-P2/4
  - [-1, 1, Conv, [16, 3, 2]] # 2-P3/8
  - [-1, 1, Conv, [32, 3, 2]] # 3-P4/16
  - [-1, 1, Conv, [32, 3, 2]] # 4-P5/32
head:
  - [-1, 1, FocalModulation, []] # 5
  - [[2, 3, 5], 1, RTDETRDecoder, [nc, 32, 300, 4, 2, 1, 64]] # 6
"""


def _write_model_yaml(folder: Path, text: str) -> str:
    # Every tiny model file is called tiny-rtdetr.yaml: exported files and run names derive from it.
    path = folder / "tiny-rtdetr.yaml"
    path.write_text(text)
    return str(path)


@pytest.fixture(scope="session")
def tiny_yaml(tmp_path_factory) -> str:
    """Path of a tiny RT-DETR yaml with the rtdetr-l layout (HGStem, HGBlock, AIFI; nc: 2, 300 queries)."""
    return _write_model_yaml(tmp_path_factory.mktemp("tiny-aifi"), TINY_AIFI_YAML)


@pytest.fixture(scope="session")
def tiny_focal_yaml(tmp_path_factory) -> str:
    """Path of a tiny RT-DETR yaml with FocalModulation on a plain Conv backbone (nc: 3, 300 queries)."""
    return _write_model_yaml(tmp_path_factory.mktemp("tiny-focal"), TINY_FOCAL_YAML)


def _write_split(root: Path, split: str, n: int, seed: int) -> None:
    """n images (80 high, 96 wide) with two filled rectangles each: red = class 0, green = class 1."""
    import cv2
    import numpy as np

    (root / "images" / split).mkdir(parents=True, exist_ok=True)
    (root / "labels" / split).mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        img = np.full((80, 96, 3), 40, np.uint8)
        rows = []
        for _ in range(2):
            c = int(rng.integers(0, 2))
            x0, y0 = int(rng.integers(5, 50)), int(rng.integers(5, 40))
            w, h = int(rng.integers(15, 35)), int(rng.integers(15, 35))
            cv2.rectangle(img, (x0, y0), (x0 + w, y0 + h), (0, 0, 255) if c == 0 else (0, 255, 0), -1)
            rows.append(f"{c} {(x0 + w / 2) / 96:.5f} {(y0 + h / 2) / 80:.5f} {w / 96:.5f} {h / 80:.5f}")
        cv2.imwrite(str(root / "images" / split / f"im{i}.jpg"), img)
        (root / "labels" / split / f"im{i}.txt").write_text("\n".join(rows) + "\n")


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory) -> Callable[..., str]:
    """Writes a two-class dataset (red/green rectangles) on each call and returns its data yaml path.

    Call it as `tiny_dataset(n_train=6, n_val=2)`; each call gets a folder of its own.
    """

    def write(n_train: int = 6, n_val: int = 2) -> str:
        root = tmp_path_factory.mktemp("tiny-dataset")
        _write_split(root, "train", n_train, seed=0)
        _write_split(root, "val", n_val, seed=1)
        data = root / "data.yaml"
        data.write_text(f"path: {root}\ntrain: images/train\nval: images/val\nnames:\n  0: red\n  1: green\n")
        return str(data)

    return write


@pytest.fixture
def in_tmp_path(tmp_path, monkeypatch) -> Path:
    """Run the test inside tmp_path, with runs and datasets folders of its own there."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ULTRALYTICS_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("ULTRALYTICS_DATASETS_DIR", str(tmp_path / "datasets"))
    return tmp_path


@contextmanager
def _collect_log_messages() -> Iterator[list[str]]:
    from ultralytics.utils import LOGGER

    messages: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: messages.append(record.getMessage())
    LOGGER.addHandler(handler)
    try:
        yield messages
    finally:
        LOGGER.removeHandler(handler)


@pytest.fixture
def captured_log() -> Callable[[], AbstractContextManager[list[str]]]:
    """`with captured_log() as messages:` collects what the package logger sends inside the block, one str each.

    Unlike `log_text` this sees only the block, so a test can check the lines of one call.
    """
    return _collect_log_messages


@pytest.fixture
def results_columns() -> list[str]:
    """The columns of a detection run's results.csv, in upstream 8.3.50's order (`time`: elapsed seconds)."""
    return [
        "epoch",
        "time",
        "train/giou_loss",
        "train/cls_loss",
        "train/l1_loss",
        "metrics/precision(B)",
        "metrics/recall(B)",
        "metrics/mAP50(B)",
        "metrics/mAP50-95(B)",
        "val/giou_loss",
        "val/cls_loss",
        "val/l1_loss",
        "lr/pg0",
        "lr/pg1",
        "lr/pg2",
    ]
