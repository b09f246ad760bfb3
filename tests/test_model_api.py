"""The Model wrapper's plumbing and the pieces the predictor and exporter are built from.

Model.save's checkpoint layout, the guard on nn.Module-only methods, argument layering, callback
order of predict and export, the RT-DETR query selection, and the shared release stamp.
"""

from __future__ import annotations

import re
from datetime import datetime

import numpy as np
import pytest
import torch

from ultralytics import RTDETR, __version__
from ultralytics.engine.exporter import Exporter
from ultralytics.engine.model import _launched_as_cli_predict, _layer
from ultralytics.engine.release import release_stamp
from ultralytics.models.rtdetr.predict import _as_class_list, _scale_to_image, _select_queries
from ultralytics.nn.autobackend import check_class_names, parse_metadata
from ultralytics.nn.checkpoints import torch_safe_load

pytestmark = pytest.mark.usefixtures("in_tmp_path")

PREDICT_EVENTS = ["on_predict_start", "on_predict_batch_start", "on_predict_postprocess_end", "on_predict_batch_end"]


def test_release_stamp_keys_and_values():
    stamp = release_stamp()
    assert list(stamp) == ["date", "version", "license", "docs"]
    assert stamp["version"] == __version__ and datetime.fromisoformat(stamp["date"])
    assert "AGPL-3.0" in stamp["license"] and stamp["docs"].startswith("https://")


def test_save_keeps_checkpoint_and_overlays_fp16_model_and_stamp(tiny_focal_yaml, tmp_path):
    first = tmp_path / "first.pt"
    RTDETR(tiny_focal_yaml).save(first)
    ckpt, _ = torch_safe_load(first)
    assert list(ckpt) == ["model", "date", "version", "license", "docs"]  # built from yaml: no checkpoint below
    assert all(p.dtype == torch.float16 for p in ckpt["model"].parameters())

    extra = dict(ckpt, epoch=-1, train_args={"imgsz": 64})
    torch.save(extra, tmp_path / "with_args.pt")
    loaded = RTDETR(str(tmp_path / "with_args.pt"))
    loaded.save(tmp_path / "second.pt")
    again, _ = torch_safe_load(tmp_path / "second.pt")
    assert list(again) == ["model", "date", "version", "license", "docs", "epoch", "train_args"]
    assert again["train_args"] == {"imgsz": 64} and again["version"] == __version__


def test_exported_file_supports_only_predict_and_val(tiny_focal_yaml, tmp_path):
    source = RTDETR(tiny_focal_yaml)
    exported = source.export(format="torchscript", imgsz=64)
    model = RTDETR(exported)
    assert model.device is None and model.ckpt is None and model.task == "detect"
    for call in (model.info, model.fuse, model.reset_weights, lambda: model.save(tmp_path / "x.pt"), model.export):
        with pytest.raises(TypeError, match=re.escape(exported)):
            call()
    assert model.names == source.names and model.predictor is None  # read from the file, nothing run yet
    model.predict(np.zeros((64, 64, 3), np.uint8), imgsz=64)
    assert model.names == source.names and len(model.names) == 3  # from the embedded metadata


def test_argument_layers_and_cli_detection():
    assert _layer({"a": 1, "b": 1}, {"b": 2}, {"c": 3}, {"a": 4}) == {"a": 4, "b": 2, "c": 3}
    assert _launched_as_cli_predict(["/usr/bin/yolo", "predict", "model=m.pt"])
    assert _launched_as_cli_predict(["ultralytics", "mode=predict"])
    assert not _launched_as_cli_predict(["/usr/bin/yolo", "val"])
    assert not _launched_as_cli_predict(["pytest", "predict"]) and not _launched_as_cli_predict([])


def test_predict_callback_order_and_clear(tiny_focal_yaml):
    model = RTDETR(tiny_focal_yaml)
    events: list[str] = []
    for event in [*PREDICT_EVENTS, "on_predict_end"]:
        model.add_callback(event, lambda _predictor, e=event: events.append(e))
    images = [np.zeros((48, 64, 3), np.uint8), np.zeros((64, 48, 3), np.uint8)]
    model.predict(images, imgsz=64)
    # One batch of two in-memory images.
    assert events == [*PREDICT_EVENTS, "on_predict_end"]
    model.clear_callback("on_predict_batch_start")
    events.clear()
    model.predict(images, imgsz=64)
    assert "on_predict_batch_start" not in events and events[-1] == "on_predict_end"


def test_export_callbacks_fire_once_each(tiny_focal_yaml):
    from ultralytics.nn.tasks import RTDETRDetectionModel

    seen: list[str] = []
    exporter = Exporter(overrides={"format": "torchscript", "imgsz": 64, "mode": "export"})
    for event in ("on_export_start", "on_export_end"):
        exporter.add_callback(event, lambda _e, name=event: seen.append(name))
    exporter(model=RTDETRDetectionModel(tiny_focal_yaml, verbose=False))
    assert seen == ["on_export_start", "on_export_end"]


def test_reset_weights_makes_everything_trainable(tiny_focal_yaml):
    model = RTDETR(tiny_focal_yaml)
    model.model.requires_grad_(False)
    assert model.reset_weights() is model
    assert all(p.requires_grad for p in model.model.parameters())


def test_select_queries_threshold_classes_and_max_det():
    # Four queries (xywh normalised + 2 class scores).
    queries = torch.tensor(
        [
            [0.5, 0.5, 0.2, 0.2, 0.1, 0.8],
            [0.5, 0.5, 0.2, 0.2, 0.3, 0.2],
            [0.5, 0.5, 0.2, 0.2, 0.9, 0.0],
            [0.5, 0.5, 0.2, 0.2, 0.05, 0.1],
        ]
    )
    kept = _select_queries(queries, conf=0.25, classes=None, max_det=300)
    assert kept[:, 4].tolist() == pytest.approx([0.8, 0.3, 0.9]) and kept[:, 5].tolist() == [1, 0, 0]
    torch.testing.assert_close(kept[0, :4], torch.tensor([0.4, 0.4, 0.6, 0.6]))
    assert _select_queries(queries, 0.25, [1], 300)[:, 4].tolist() == pytest.approx([0.8])
    assert _select_queries(queries, 0.25, None, 2)[:, 4].tolist() == pytest.approx([0.9, 0.8])  # best first
    assert _as_class_list(3) == [3] and _as_class_list((1, 2)) == (1, 2) and _as_class_list(None) is None
    pixels = _scale_to_image(kept[:1].clone(), np.zeros((100, 200, 3)))
    torch.testing.assert_close(pixels[0, :4], torch.tensor([80.0, 40.0, 120.0, 60.0]))


def test_metadata_parsing_and_class_names():
    meta = parse_metadata({"stride": "32", "batch": "2", "imgsz": "[64, 96]", "names": "{0: 'a', 1: 'b'}", "x": "y"})
    assert meta == {"stride": 32, "batch": 2, "imgsz": [64, 96], "names": {0: "a", 1: "b"}, "x": "y"}
    assert check_class_names(["a", "b"]) == {0: "a", 1: "b"}
    with pytest.raises(KeyError, match="0-1"):
        check_class_names({0: "a", 5: "b"})
    with pytest.raises(TypeError, match="str"):
        check_class_names("ab")
