"""Benchmark: every export format exported, validated and timed into upstream's table; failures become rows."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from ultralytics import RTDETR
from ultralytics.cfg import entrypoint
from ultralytics.utils import benchmarks
from ultralytics.utils.benchmarks import COLUMNS, benchmark

pytestmark = pytest.mark.usefixtures("in_tmp_path")
TINY_YAML = Path(__file__).parent / "fixtures" / "rtdetr-tiny-FocalModulation.yaml"
HAS_ALL = all(importlib.util.find_spec(m) for m in ("onnx", "onnxruntime", "openvino", "pandas"))


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> str:
    from ultralytics.nn.tasks import RTDETRDetectionModel

    torch.manual_seed(0)
    model = RTDETRDetectionModel(str(TINY_YAML), nc=2, verbose=False).eval()
    model.names = {0: "red", 1: "green"}
    file = tmp_path_factory.mktemp("bench") / "best.pt"
    torch.save({"epoch": -1, "model": model, "ema": None, "train_args": {"imgsz": 64}}, file)
    return str(file)


@pytest.fixture(scope="module")
def self_labelled(tmp_path_factory, weights) -> str:
    """A dataset whose labels are the PyTorch model's own three best boxes per image.

    The random model then scores a high mAP on it, and so does every export that detects what it detects.
    """
    import cv2

    root = tmp_path_factory.mktemp("self-labelled")
    (root / "images").mkdir()
    (root / "labels").mkdir()
    network = torch.load(weights, weights_only=False)["model"]
    rng = np.random.default_rng(0)
    for i in range(2):
        image = rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)
        cv2.imwrite(str(root / "images" / f"im{i}.png"), image)  # lossless: the validator sees these pixels
        x = torch.from_numpy(image[..., ::-1].copy()).permute(2, 0, 1)[None].float() / 255  # BGR -> RGB
        with torch.inference_mode():
            y = network(x)[0][0]  # (nq, 4 + nc): normalised xywh, class scores
        scores, classes = y[:, 4:].max(1)
        rows = [f"{int(classes[q])} " + " ".join(f"{v:.6f}" for v in y[q, :4].clamp(0.001, 0.999).tolist())
                for q in scores.argsort(descending=True)[:3]]
        (root / "labels" / f"im{i}.txt").write_text("\n".join(rows) + "\n")
    data = root / "data.yaml"
    data.write_text(f"path: {root}\ntrain: images\nval: images\nnames:\n  0: red\n  1: green\n")
    return str(data)


@pytest.mark.skipif(not HAS_ALL, reason="needs onnx, onnxruntime, openvino and pandas (the dev extra)")
def test_every_format_gets_a_measured_row(weights, self_labelled, log_text):
    table = RTDETR(weights).benchmark(data=self_labelled, imgsz=64, device="cpu")
    assert list(table.columns) == list(COLUMNS)
    assert list(table["Format"]) == ["PyTorch", "TorchScript", "ONNX", "OpenVINO"]
    assert list(table["Status❔"]) == ["✅"] * 4, table.attrs["errors"]
    maps = table["metrics/mAP50-95(B)"].tolist()
    # Labels are PyTorch's own detections, so every export that detects the same boxes scores as high.
    assert min(maps) > 0.5
    assert max(maps) - min(maps) <= 0.01
    for ms, fps in zip(table["Inference time (ms/im)"], table["FPS"]):
        assert ms > 0 and fps == pytest.approx(1000 / (ms + 1e-3), rel=0.02)
    assert all(size > 0 for size in table["Size (MB)"])
    assert "Benchmarks complete for best.pt" in log_text()
    assert "Benchmarks complete" in Path("benchmarks.log").read_text(encoding="utf-8")


def test_a_failing_format_is_a_row_not_an_exception(weights, tiny_dataset, monkeypatch):
    pytest.importorskip("pandas")
    data = tiny_dataset(n_train=2, n_val=2)
    monkeypatch.setitem(sys.modules, "onnx", None)  # the ONNX export cannot import its package
    table = benchmark(model=weights, data=data, imgsz=64, format="onnx")
    row = table.iloc[0].to_dict()
    assert row["Format"] == "ONNX" and row["Status❔"] == "❌"
    assert all(row[c] is None or math.isnan(row[c]) for c in COLUMNS[3:])
    assert "pip install onnx" in table.attrs["errors"]["ONNX"]


def test_without_pandas_rows_are_dicts(weights, tiny_dataset, monkeypatch, log_text):
    monkeypatch.setitem(sys.modules, "pandas", None)
    rows = benchmark(model=weights, data=tiny_dataset(n_train=2, n_val=2), imgsz=64, format="pytorch")
    assert "pandas is not installed" in log_text()
    assert [list(r) for r in rows] == [list(COLUMNS)]
    assert rows[0]["Format"] == "PyTorch" and rows[0]["Status❔"] == "✅"
    assert rows[0]["FPS"] > 0 and rows[0]["Size (MB)"] > 0


def test_unknown_format_names_the_accepted_ones(weights):
    with pytest.raises(ValueError, match=r"format='tflite'.*\['pytorch', 'torchscript', 'onnx', 'openvino'\]"):
        benchmark(model=weights, data="shapes.yaml", imgsz=64, format="tflite")


def test_cli_benchmark_mode(weights, tiny_dataset, monkeypatch):
    seen = {}
    monkeypatch.setattr(benchmarks, "benchmark", lambda **kw: seen.update(kw))
    data = tiny_dataset(n_train=2, n_val=2)
    entrypoint(f"yolo benchmark model={weights} data={data} imgsz=64 format=torchscript")
    assert seen["data"] == data and seen["imgsz"] == 64 and seen["format"] == "torchscript"
    assert isinstance(seen["model"], RTDETR)
