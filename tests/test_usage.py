"""What a user sees after training: the run folder's plots, and validation on the demo dataset.

The tiny rtdetr-l-like model from conftest (nc from the dataset: 6) keeps this quick on two CPU cores.
"""

from __future__ import annotations

import csv
from pathlib import Path

import cv2
import pytest

from ultralytics import RTDETR


# Every plot a training run with plots=True leaves in its folder.
TRAIN_PLOTS = [
    "labels.jpg",
    "train_batch0.jpg",
    "train_batch1.jpg",
    "train_batch2.jpg",
    "results.png",
    "val_batch0_labels.jpg",
    "val_batch0_pred.jpg",
    "PR_curve.png",
    "F1_curve.png",
    "P_curve.png",
    "R_curve.png",
    "confusion_matrix.png",
    "confusion_matrix_normalized.png",
]


def _assert_image(path: Path, min_side: int) -> None:
    im = cv2.imread(str(path))
    assert im is not None, f"{path.name} is not a readable image"
    h, w = im.shape[:2]
    assert min(h, w) >= min_side, f"{path.name} is only {w}x{h}"
    assert im.std() > 1, f"{path.name} is blank"


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, tiny_yaml):
    """One short training run on shapes.yaml with every plot switched on."""
    root = tmp_path_factory.mktemp("usage")
    model = RTDETR(tiny_yaml)
    model.train(
        data="shapes.yaml",
        epochs=2,
        imgsz=64,
        batch=8,
        fraction=0.25,  # 32 of the 128 training images: 4 steps an epoch
        workers=0,
        device="cpu",
        plots=True,
        project=str(root / "runs"),
        name="train",
    )
    return model, root / "runs" / "train"


def test_training_writes_every_plot(trained_run):
    _, run = trained_run
    for name in TRAIN_PLOTS:
        assert (run / name).is_file(), f"{name} missing from {sorted(p.name for p in run.iterdir())}"
        # Batch mosaics of 64 px images are small; matplotlib figures are several hundred pixels.
        _assert_image(run / name, min_side=60 if name.startswith(("train_batch", "val_batch")) else 200)
    with open(run / "results.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [int(float(r["epoch"])) for r in rows] == [1, 2]


def test_val_on_shapes_returns_metrics(trained_run, tmp_path):
    model, _ = trained_run
    metrics = model.val(data="shapes.yaml", imgsz=64, batch=16, plots=True, project=str(tmp_path), name="val")
    for value in (metrics.box.map, metrics.box.map50, metrics.box.mp, metrics.box.mr):
        assert 0.0 <= float(value) <= 1.0
    assert len(metrics.box.maps) == 6 and all(0.0 <= float(v) <= 1.0 for v in metrics.box.maps)
    assert {"metrics/precision(B)", "metrics/recall(B)", "metrics/mAP50(B)", "metrics/mAP50-95(B)", "fitness"} <= set(
        metrics.results_dict
    )
    assert set(metrics.speed) >= {"preprocess", "inference", "postprocess"}
    assert all(v >= 0 for v in metrics.speed.values())
    _assert_image(tmp_path / "val" / "confusion_matrix.png", min_side=200)
    _assert_image(tmp_path / "val" / "val_batch0_pred.jpg", min_side=60)
