"""OpenVINO export: <name>_openvino_model/ with metadata, loaded by AutoBackend and RTDETR; fp32 parity, fp16 weights."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from ultralytics import RTDETR
from ultralytics.engine.exporter import Exporter, export_formats
from ultralytics.nn.autobackend import AutoBackend, read_embedded_metadata
from ultralytics.nn.tasks import RTDETRDetectionModel
from ultralytics.utils import yaml_load

NAMES = {0: "circle", 1: "square", 2: "triangle"}
pytestmark = pytest.mark.usefixtures("in_tmp_path")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, tiny_focal_yaml: str) -> tuple[RTDETRDetectionModel, Path]:
    """The tiny FocalModulation model (fixed random weights, named classes) and weights/best.pt holding it."""
    torch.manual_seed(0)
    network = RTDETRDetectionModel(tiny_focal_yaml, verbose=False).eval()
    network.names = dict(NAMES)
    weights = tmp_path_factory.mktemp("openvino") / "weights" / "best.pt"
    weights.parent.mkdir()
    torch.save({"epoch": -1, "model": network, "ema": None, "train_args": {"imgsz": 64}}, weights)
    return network, weights


def test_openvino_is_an_export_format():
    table = export_formats()
    row = table["Argument"].index("openvino")
    assert table["Format"][row] == "OpenVINO" and table["Suffix"][row] == "_openvino_model"
    assert table["CPU"][row] and not table["GPU"][row]


def test_fp32_export_matches_pytorch_and_predicts(checkpoint):
    pytest.importorskip("openvino")
    tiny, weights = checkpoint
    folder = Path(RTDETR(str(weights)).export(format="openvino"))
    assert folder == weights.parent / "best_openvino_model"
    assert {p.name for p in folder.iterdir()} == {"best.xml", "best.bin", "metadata.yaml"}
    meta = yaml_load(folder / "metadata.yaml")
    assert meta["names"] == NAMES and meta["imgsz"] == [64, 64] and meta["stride"] == 32 and meta["batch"] == 1
    assert read_embedded_metadata(folder)["names"] == NAMES

    backend = AutoBackend(str(folder))
    assert backend.xml and not (backend.onnx or backend.jit or backend.pt)
    assert backend.names == NAMES and backend.imgsz == [64, 64] and backend.static_hw and not backend.dynamic
    for n in (1, 3):  # three images run one at a time through the batch-1 graph
        x = torch.rand(n, 3, 64, 64)
        with torch.inference_mode():
            expected = tiny(x)[0]
        torch.testing.assert_close(backend(x), expected, atol=1e-4, rtol=0)

    image = np.random.default_rng(0).integers(0, 255, (80, 144, 3), dtype=np.uint8)
    expected = RTDETR(str(weights)).predict(image, imgsz=64, conf=0.0)[0].boxes.data
    model = RTDETR(str(folder))
    assert model.names == NAMES  # from metadata.yaml, before any prediction
    got = model.predict(image, imgsz=64, conf=0.0)[0].boxes.data
    torch.testing.assert_close(got[:, :4], expected[:, :4], atol=0.0144, rtol=0)  # 1e-4 of a 144-px width
    torch.testing.assert_close(got[:, 4], expected[:, 4], atol=1e-4, rtol=0)
    assert torch.equal(got[:, 5], expected[:, 5])


def test_half_export_stores_fp16_weights_on_cpu(checkpoint):
    pytest.importorskip("openvino")
    folder = Path(Exporter(overrides={"format": "openvino", "half": True, "imgsz": 64, "device": "cpu"})(checkpoint[0]))
    xml = (folder / "tiny-rtdetr.xml").read_text()
    assert 'element_type="f16"' in xml  # compressed weight constants
    y = AutoBackend(str(folder))(torch.rand(2, 3, 64, 64))
    assert y.shape == (2, 300, 7) and y.dtype == torch.float32 and torch.isfinite(y).all()
    assert yaml_load(folder / "metadata.yaml")["names"] == NAMES


def test_missing_openvino_says_how_to_install(checkpoint, monkeypatch):
    monkeypatch.setitem(sys.modules, "openvino", None)  # makes `import openvino` fail
    with pytest.raises(ImportError, match=r"pip install openvino"):
        Exporter(overrides={"format": "openvino", "imgsz": 64})(checkpoint[0])
    assert not Path("tiny-rtdetr_openvino_model").exists()


def test_int8_is_refused_with_the_format_named(checkpoint):
    with pytest.raises(ValueError, match="int8=True quantisation is not supported for openvino"):
        Exporter(overrides={"format": "openvino", "int8": True, "imgsz": 64})(checkpoint[0])
