"""A fixed-batch ONNX export (batch=2, dynamic=False) predicts any number of images, as the PyTorch model does."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from ultralytics import RTDETR
from ultralytics.nn.autobackend import AutoBackend, run_in_fixed_batches
from ultralytics.nn.tasks import RTDETRDetectionModel

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
pytestmark = pytest.mark.usefixtures("in_tmp_path")


@pytest.fixture(scope="module")
def exported(tmp_path_factory, tiny_focal_yaml: str) -> tuple[str, str]:
    """(best.pt, best.onnx exported with batch=2) of the tiny FocalModulation model."""
    torch.manual_seed(0)
    model = RTDETRDetectionModel(tiny_focal_yaml, verbose=False).eval()
    model.names = {0: "circle", 1: "square", 2: "triangle"}
    weights = tmp_path_factory.mktemp("static-onnx") / "best.pt"
    torch.save({"epoch": -1, "model": model, "ema": None, "train_args": {"imgsz": 64}}, weights)
    onnx_file = RTDETR(str(weights)).export(format="onnx", batch=2, dynamic=False, simplify=False)
    return str(weights), onnx_file


def images(n: int) -> list[np.ndarray]:
    rng = np.random.default_rng(n)
    return [rng.integers(0, 255, (72, 96, 3), dtype=np.uint8) for _ in range(n)]


def boxes(results) -> list[torch.Tensor]:
    return [r.boxes.data for r in results]


def test_backend_pads_and_splits_to_the_exported_batch(exported):
    pt_file, onnx_file = exported
    backend = AutoBackend(onnx_file)
    assert backend.onnx and not backend.dynamic and backend.batch == 2
    reference = AutoBackend(pt_file)
    for n in (1, 2, 3, 5):
        x = torch.rand(n, 3, 64, 64)
        y = backend(x)
        assert y.shape == (n, 300, 7)
        torch.testing.assert_close(y, reference(x), atol=1e-4, rtol=0)


@pytest.mark.parametrize("n, batch", [(1, 1), (2, 2), (3, 1), (3, 2), (3, 3)])
def test_predict_any_number_of_images(exported, n, batch):
    pt_file, onnx_file = exported
    source = images(n)
    expected = boxes(RTDETR(pt_file).predict(source, imgsz=64, conf=0.0, batch=batch))
    got = boxes(RTDETR(onnx_file).predict(source, imgsz=64, conf=0.0, batch=batch))
    assert len(got) == len(expected) == n
    for g, e in zip(got, expected):
        assert g.shape == e.shape == (300, 6)
        torch.testing.assert_close(g[:, :5], e[:, :5], atol=0.01, rtol=0)  # pixels of a 96-wide image, scores
        assert torch.equal(g[:, 5], e[:, 5])


def test_fixed_batch_helper_drops_the_padding():
    seen_sizes = []

    def run(group: np.ndarray) -> np.ndarray:
        seen_sizes.append(len(group))
        return group.sum(axis=(1, 2, 3))

    im = np.arange(5 * 3 * 2 * 2, dtype=np.float32).reshape(5, 3, 2, 2)
    out = run_in_fixed_batches(run, im, size=2)
    assert seen_sizes == [2, 2, 2]  # the fifth image went with one blank
    np.testing.assert_array_equal(out, im.sum(axis=(1, 2, 3)))


def test_wrong_image_size_still_names_the_fix(exported):
    with pytest.raises(ValueError, match=r"imgsz=\[64, 64\]"):
        AutoBackend(exported[1])(torch.rand(2, 3, 96, 64))
    assert Path(exported[1]).suffix == ".onnx"
