"""Export: TorchScript and ONNX files, embedded metadata, reload through AutoBackend / RTDETR, parity, bad input."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from ultralytics.engine.exporter import Exporter, export_formats, get_latest_opset
from ultralytics.nn.autobackend import AutoBackend
from ultralytics.nn.tasks import RTDETRDetectionModel

NAMES = {0: "circle", 1: "square", 2: "triangle"}

# Every test runs in its own tmp_path (exported files land in the working folder).
pytestmark = pytest.mark.usefixtures("in_tmp_path")


@pytest.fixture
def tiny(tiny_focal_yaml: str) -> RTDETRDetectionModel:
    torch.manual_seed(0)
    model = RTDETRDetectionModel(tiny_focal_yaml, verbose=False).eval()
    model.names = dict(NAMES)
    return model


def export(model: torch.nn.Module, **overrides) -> str:
    args = {"imgsz": 64, "batch": 1, "mode": "export", **overrides}
    return Exporter(overrides=args)(model=model)


def reference(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.inference_mode():
        out = model(x)
    return out[0] if isinstance(out, (list, tuple)) else out


def check_metadata(meta: dict) -> None:
    assert {int(k): v for k, v in meta["names"].items()} == NAMES  # JSON turns int keys into strings
    assert list(meta["imgsz"]) == [64, 64]
    assert int(meta["stride"]) == 32 and int(meta["batch"]) == 1
    assert meta["task"] == "detect" and meta["author"] == "Ultralytics"
    assert meta["version"] and meta["date"] and "tiny-rtdetr" in meta["description"]


def test_export_formats_table():
    table = export_formats()
    assert list(table) == ["Format", "Argument", "Suffix", "CPU", "GPU", "Arguments"]
    assert table["Argument"] == ("-", "torchscript", "onnx", "openvino")
    assert table["Suffix"] == (".pt", ".torchscript", ".onnx", "_openvino_model")
    assert 12 <= get_latest_opset() <= 30


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:FutureWarning")
def test_torchscript_metadata_and_parity(tiny, tmp_path):
    f = export(tiny, format="torchscript")
    assert Path(f) == Path("tiny-rtdetr.torchscript") and (tmp_path / f).is_file()

    extra = {"config.txt": ""}
    torch.jit.load(f, _extra_files=extra)
    meta = json.loads(extra["config.txt"])
    check_metadata(meta)

    backend = AutoBackend(f)
    assert backend.jit and backend.names == NAMES and backend.stride == 32 and backend.imgsz == [64, 64]
    x = torch.rand(1, 3, 64, 64)
    y = backend(x)
    assert y.shape == (1, 300, 7)
    torch.testing.assert_close(y, reference(tiny, x), atol=1e-4, rtol=0)


def test_onnx_metadata_and_parity(tiny):
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    f = export(tiny, format="onnx")
    assert Path(f).name == "tiny-rtdetr.onnx"

    graph = onnx.load(f)
    meta = {p.key: p.value for p in graph.metadata_props}
    assert {"description", "author", "date", "version", "stride", "task", "batch", "imgsz", "names"} <= set(meta)
    assert [i.name for i in graph.graph.input] == ["images"] and [o.name for o in graph.graph.output] == ["output0"]

    backend = AutoBackend(f)
    check_metadata({**backend.metadata, "names": backend.names})
    assert backend.onnx and not backend.dynamic
    x = torch.rand(1, 3, 64, 64)
    torch.testing.assert_close(backend(x), reference(tiny, x), atol=1e-4, rtol=0)
    # Batches larger than the exported fixed batch run one exported batch at a time.
    x2 = torch.rand(3, 3, 64, 64)
    torch.testing.assert_close(backend(x2), reference(tiny, x2), atol=1e-4, rtol=0)
    with pytest.raises(ValueError, match="dynamic=True"):
        backend(torch.rand(1, 3, 96, 64))


def test_onnx_dynamic_batch(tiny):
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    f = export(tiny, format="onnx", dynamic=True, simplify=False)
    shape = ort.InferenceSession(f, providers=["CPUExecutionProvider"]).get_inputs()[0].shape
    assert isinstance(shape[0], str) and shape[1:] == [3, 64, 64]  # RT-DETR: height and width stay fixed
    backend = AutoBackend(f)
    assert backend.dynamic and backend.static_hw
    for bs in (2, 5):
        x = torch.rand(bs, 3, 64, 64)
        torch.testing.assert_close(backend(x), reference(tiny, x), atol=1e-4, rtol=0)
    with pytest.raises(ValueError, match=r"imgsz=\[64, 64\]"):
        backend(torch.rand(1, 3, 96, 128))


def test_checkpoint_export_and_predict_parity(tiny, tmp_path):
    """RTDETR('weights/best.pt').export() writes weights/best.<fmt>; RTDETR(<file>).predict gives the same boxes."""
    from ultralytics import RTDETR

    weights = tmp_path / "weights"
    weights.mkdir()
    ckpt = {"epoch": -1, "model": tiny, "ema": None, "train_args": {"data": "shapes.yaml", "imgsz": 64}}
    torch.save(ckpt, weights / "best.pt")

    model = RTDETR(str(weights / "best.pt"))
    image = np.random.default_rng(0).integers(0, 255, (80, 144, 3), dtype=np.uint8)
    expected = model.predict(image, imgsz=64, conf=0.0)[0].boxes.data

    has_onnx = all(importlib.util.find_spec(m) is not None for m in ("onnx", "onnxruntime"))
    formats = ["torchscript", "onnx"] if has_onnx else ["torchscript"]
    for fmt in formats:
        f = RTDETR(str(weights / "best.pt")).export(format=fmt)  # imgsz comes from the checkpoint's train args
        assert Path(f) == weights / f"best.{'onnx' if fmt == 'onnx' else 'torchscript'}"
        got = RTDETR(f).predict(image, imgsz=64, conf=0.0)[0].boxes.data
        assert got.shape == expected.shape == (300, 6)
        # Pixel boxes of a 144-wide image: 1e-4 in normalised units is 0.0144 px.
        torch.testing.assert_close(got[:, :4], expected[:, :4], atol=0.0144, rtol=0)
        torch.testing.assert_close(got[:, 4], expected[:, 4], atol=1e-4, rtol=0)
        assert torch.equal(got[:, 5], expected[:, 5])
        # A different imgsz is replaced by the exported one (with a warning) instead of failing in the runtime.
        resized = RTDETR(f).predict(image, imgsz=128, conf=0.0)[0].boxes.data
        torch.testing.assert_close(resized, got)
    meta = AutoBackend(str(weights / "best.torchscript")).metadata
    assert "trained on shapes.yaml" in meta["description"]


def test_unknown_format_lists_supported(tiny):
    with pytest.raises(ValueError, match=r"Valid formats are \('torchscript', 'onnx', 'openvino'\)") as e:
        export(tiny, format="tflite")
    assert "format='tflite'" in str(e.value)
    with pytest.raises(ValueError, match="Did you mean format='onnx'"):
        export(tiny, format="onnnx")


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:FutureWarning")
def test_half_on_cpu_falls_back_to_fp32(tiny, log_text):
    f = export(tiny, format="torchscript", half=True, device="cpu")
    assert "half=True only compatible with GPU export" in log_text()
    ts = torch.jit.load(f)
    assert all(p.dtype == torch.float32 for p in ts.parameters())
    with pytest.raises(ValueError, match="half=True is not compatible with dynamic=True"):
        export(tiny, format="onnx", half=True, dynamic=True, device="cpu")


def test_onnx_without_onnxslim_notes_and_still_exports(tiny, monkeypatch, log_text):
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    monkeypatch.setitem(sys.modules, "onnxslim", None)  # makes `import onnxslim` fail
    f = export(tiny, format="onnx", simplify=True)
    assert "onnxslim not installed" in log_text()
    x = torch.rand(1, 3, 64, 64)
    torch.testing.assert_close(AutoBackend(f)(x), reference(tiny, x), atol=1e-4, rtol=0)


def test_unsupported_model_file(tmp_path):
    (tmp_path / "model.tflite").write_bytes(b"\0")
    with pytest.raises(ValueError, match=r"\.pt, \.torchscript, \.onnx"):
        AutoBackend(str(tmp_path / "model.tflite"))
    with pytest.raises(FileNotFoundError, match="missing.onnx"):
        AutoBackend(str(tmp_path / "missing.onnx"))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_onnx_half_on_cuda(tiny):
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    f = export(tiny, format="onnx", half=True, device=0)
    inp = ort.InferenceSession(f, providers=["CPUExecutionProvider"]).get_inputs()[0]
    assert "float16" in inp.type
