"""Bad or awkward inputs around results and exported models: crop names, show() without a display,
.names of an exported file before predicting, check_requirements() without a requirements.txt."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from ultralytics.engine.results import Results
from ultralytics.utils import checks

NAMES = {0: "circle", 1: "square"}


def _result(path: str = "pics/street.jpg") -> Results:
    """A 40x60 image with two circles and one square."""
    image = np.full((40, 60, 3), 127, dtype=np.uint8)
    boxes = torch.tensor(
        [
            [2.0, 2.0, 20.0, 20.0, 0.9, 0.0],
            [30.0, 5.0, 50.0, 30.0, 0.8, 1.0],
            [10.0, 20.0, 25.0, 38.0, 0.7, 0.0],
        ]
    )
    return Results(image, path=path, names=dict(NAMES), boxes=boxes)


def _files(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


# ------------------------------------------------------------------------------------------------
# 1. save_crop file names
# ------------------------------------------------------------------------------------------------
def test_save_crop_defaults_to_the_image_stem_and_numbers_repeats(tmp_path):
    _result().save_crop(tmp_path)
    assert _files(tmp_path) == ["circle/street.jpg", "circle/street2.jpg", "square/street.jpg"]
    crop = cv2.imread(str(tmp_path / "square" / "street.jpg"))
    assert crop is not None and crop.shape[2] == 3


@pytest.mark.parametrize("file_name", ["crop", "crop.jpg", Path("crop.jpg"), "crop.JPG"])
def test_save_crop_file_name_never_doubles_jpg(tmp_path, file_name):
    _result().save_crop(tmp_path, file_name=file_name)
    assert _files(tmp_path) == ["circle/crop.jpg", "circle/crop2.jpg", "square/crop.jpg"]


def test_save_crop_keeps_dots_inside_the_name(tmp_path):
    _result().save_crop(tmp_path, file_name="frame.0001")
    assert "square/frame.0001.jpg" in _files(tmp_path)


def test_save_crop_explicit_im_jpg_is_taken_literally(tmp_path):
    _result().save_crop(tmp_path, file_name="im.jpg")
    assert _files(tmp_path) == ["circle/im.jpg", "circle/im2.jpg", "square/im.jpg"]


def test_save_crop_twice_continues_the_numbering(tmp_path):
    _result().save_crop(tmp_path)
    _result().save_crop(tmp_path)
    assert _files(tmp_path)[:4] == ["circle/street.jpg", "circle/street2.jpg", "circle/street3.jpg", "circle/street4.jpg"]
    assert "square/street2.jpg" in _files(tmp_path)


# ------------------------------------------------------------------------------------------------
# 2. show() where no window can open
# ------------------------------------------------------------------------------------------------
def test_show_without_display_warns_instead_of_raising(monkeypatch, captured_log):
    import ultralytics.engine.results as results_module

    monkeypatch.setattr(results_module, "LINUX", True)
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    opened = []
    monkeypatch.setattr(cv2, "imshow", lambda *a: opened.append(a))
    with captured_log() as messages:
        _result().show()
    assert not opened  # no window attempted at all
    text = " ".join(messages)
    assert "DISPLAY" in text and "street.jpg" in text
    assert "result.save(" in text and "save=True" in text


def test_show_when_imshow_fails_warns_with_the_cv2_reason(monkeypatch, captured_log):
    monkeypatch.setenv("DISPLAY", ":0")

    def broken_imshow(*args):
        raise cv2.error("OpenCV(4.10) window.cpp:1301: error: (-2:Unspecified error) The function is not implemented")

    monkeypatch.setattr(cv2, "imshow", broken_imshow)
    with captured_log() as messages:
        _result().show(conf=False)
    text = " ".join(messages)
    assert "cv2.imshow() failed" in text and "not implemented" in text
    assert "result.save(" in text and "save=True" in text


def test_show_with_a_display_opens_the_window(monkeypatch, captured_log):
    monkeypatch.setenv("DISPLAY", ":0")
    shown = []
    monkeypatch.setattr(cv2, "imshow", lambda title, im: shown.append((title, im.shape)))
    monkeypatch.setattr(cv2, "waitKey", lambda ms: -1)
    with captured_log() as messages:
        _result().show()
    assert shown == [("pics/street.jpg", (40, 60, 3))]
    assert not any("displayed nothing" in m for m in messages)


def test_show_still_rejects_bad_plot_arguments(monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    with pytest.raises(ValueError, match="color_mode"):
        _result().show(color_mode="rainbow")


# ------------------------------------------------------------------------------------------------
# 3. .names of an exported model before any prediction
# ------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def exported(tmp_path_factory, tiny_yaml) -> dict[str, str]:
    """The tiny model with NAMES exported once to TorchScript and (when onnx is installed) ONNX."""
    import importlib.util

    from ultralytics.engine.exporter import Exporter
    from ultralytics.nn.tasks import RTDETRDetectionModel

    torch.manual_seed(0)
    model = RTDETRDetectionModel(tiny_yaml, verbose=False).eval()
    model.names = dict(NAMES)
    folder = tmp_path_factory.mktemp("exported")
    files = {}
    formats = ["torchscript"] + (["onnx"] if importlib.util.find_spec("onnx") else [])
    for fmt in formats:
        args = {"imgsz": 64, "batch": 1, "mode": "export", "format": fmt, "project": str(folder)}
        made = Path(Exporter(overrides=args)(model=model))
        files[fmt] = str(made.rename(folder / made.name))
    return files


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:FutureWarning")
@pytest.mark.parametrize("fmt", ["torchscript", "onnx"])
def test_exported_model_names_before_predict(exported, fmt, monkeypatch):
    from ultralytics import RTDETR
    from ultralytics.nn import autobackend

    if fmt not in exported:
        pytest.skip("onnx is not installed")

    def no_backend(*args, **kwargs):
        raise AssertionError("reading .names must not prepare the model for inference")

    monkeypatch.setattr(autobackend, "_load_torchscript", no_backend)
    if fmt == "torchscript":
        monkeypatch.setattr(autobackend, "_load_onnx", no_backend)
    model = RTDETR(exported[fmt])
    assert model.predictor is None
    assert model.names == NAMES
    model.names[0] = "edited"  # the caller's copy; the next read is fresh
    assert model.names == NAMES


def test_read_embedded_metadata_reads_both_formats(exported):
    from ultralytics.nn.autobackend import read_embedded_metadata

    for file in exported.values():
        meta = read_embedded_metadata(file)
        assert meta["names"] == NAMES and meta["stride"] == 32 and list(meta["imgsz"]) == [64, 64]


def test_read_embedded_metadata_rejects_other_suffixes(tmp_path):
    from ultralytics.nn.autobackend import read_embedded_metadata

    weights = tmp_path / "best.pt"
    weights.write_bytes(b"")
    with pytest.raises(ValueError, match=r"\.torchscript and \.onnx"):
        read_embedded_metadata(weights)


# ------------------------------------------------------------------------------------------------
# 4. check_requirements() without a requirements.txt
# ------------------------------------------------------------------------------------------------
def _point_default_at(monkeypatch, listing: Path) -> None:
    """Make check_requirements()'s no-argument listing `listing` (the default and the module constant)."""
    monkeypatch.setattr(checks, "_DEFAULT_REQUIREMENTS", listing)
    defaults = checks.check_requirements.__defaults__
    monkeypatch.setattr(checks.check_requirements, "__defaults__", (listing, *defaults[1:]))


def test_check_requirements_without_arguments_and_no_file(tmp_path, monkeypatch, captured_log):
    _point_default_at(monkeypatch, tmp_path / "requirements.txt")
    with captured_log() as messages:
        assert checks.check_requirements() is True
    assert any("nothing to check" in m for m in messages)


def test_check_requirements_explicit_missing_file_still_raises(tmp_path, monkeypatch):
    _point_default_at(monkeypatch, tmp_path / "requirements.txt")
    with pytest.raises(FileNotFoundError, match="requirements.txt"):
        checks.check_requirements(tmp_path / "other" / "requirements.txt")


def test_check_requirements_default_file_is_read_when_present(tmp_path, monkeypatch):
    listing = tmp_path / "requirements.txt"
    listing.write_text("numpy>=1.0\nsurely-not-installed-pkg\n")
    _point_default_at(monkeypatch, listing)
    with pytest.raises(ModuleNotFoundError, match="surely-not-installed-pkg"):
        checks.check_requirements()


def test_check_requirements_in_this_checkout_does_not_raise():
    assert checks.check_requirements() is True
