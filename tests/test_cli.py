"""The `yolo` command line: parsing, special commands, error messages, and the installed console script."""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

import ultralytics
import ultralytics.models
from ultralytics.cfg import DEFAULT_MODEL, entrypoint, merge_equals_args, parse_key_value_pair, smart_value
from ultralytics.utils import DEFAULT_CFG_DICT, LOGGER, yaml_save

ANSI = re.compile(r"\x1b\[[0-9;]*m")


@pytest.fixture
def log(log_text):
    """Everything LOGGER writes during the test, as one string (ANSI colours removed) via log()."""
    old_level = LOGGER.level
    LOGGER.setLevel(logging.INFO)  # the help text is logged at INFO even when YOLO_VERBOSE=False
    yield lambda: ANSI.sub("", log_text())
    LOGGER.setLevel(old_level)


class FakeRTDETR:
    """Stands in for ultralytics.RTDETR: records what the CLI built and which method it called with what."""

    calls: list = []

    def __init__(self, model):
        self.task = "detect"
        FakeRTDETR.calls.append(("init", model, {}))

    def load(self, weights):
        FakeRTDETR.calls.append(("load", weights, {}))

    def _record(self, mode, kwargs):
        FakeRTDETR.calls.append((mode, None, kwargs))

    def train(self, **kwargs):
        self._record("train", kwargs)

    def val(self, **kwargs):
        self._record("val", kwargs)

    def predict(self, source=None, stream=False, **kwargs):
        self._record("predict", {"source": source, **kwargs})

    def export(self, **kwargs):
        self._record("export", kwargs)


@pytest.fixture
def fake_model(monkeypatch):
    FakeRTDETR.calls = []
    # Package attribute first: ultralytics.RTDETR may be resolved lazily from ultralytics.models, and patching that
    # first would make monkeypatch remember (and later restore) the fake.
    monkeypatch.setattr(ultralytics, "RTDETR", FakeRTDETR, raising=False)
    monkeypatch.setattr(ultralytics.models, "RTDETR", FakeRTDETR)
    return FakeRTDETR


def run(command: str):
    """entrypoint() with a command line written as it would be typed."""
    return entrypoint(command)


# ----------------------------------------------------------------------------------------------
# Pieces of the parser
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "args, expected",
    [
        (["epochs", "=", "3"], ["epochs=3"]),
        (["epochs=", "3"], ["epochs=3"]),
        (["epochs", "=3"], ["epochs=3"]),
        (["imgsz=[320,", "640]", "batch=2"], ["imgsz=[320,640]", "batch=2"]),
        (["train", "lr0", "=", "0.1", "show"], ["train", "lr0=0.1", "show"]),
        (["classes=[0,", "[1,", "2]]"], ["classes=[0,[1,2]]"]),
    ],
)
def test_merge_equals_args(args, expected):
    assert merge_equals_args(args) == expected


@pytest.mark.parametrize(
    "text, expected",
    [
        ("None", None),
        ("none", None),
        ("True", True),
        ("false", False),
        ("3", 3),
        ("0.5", 0.5),
        ("1e-3", 1e-3),
        ("-2", -2),
        ("[320,640]", [320, 640]),
        ("320,640", (320, 640)),
        ("'quoted str'", "quoted str"),
        ("cpu", "cpu"),
        ("shapes.yaml", "shapes.yaml"),
        ("path/to/img.jpg", "path/to/img.jpg"),
        ("__import__('os').getcwd()", "__import__('os').getcwd()"),  # never evaluated
    ],
)
def test_smart_value(text, expected):
    assert smart_value(text) == expected


def test_parse_key_value_pair():
    assert parse_key_value_pair("epochs=3") == ("epochs", 3)
    assert parse_key_value_pair(" imgsz = [64, 96] ") == ("imgsz", [64, 96])
    assert parse_key_value_pair("source=a=b.jpg") == ("source", "a=b.jpg")  # split at the first '=' only
    with pytest.raises(ValueError, match="missing 'epochs' value.*epochs=100"):
        parse_key_value_pair("epochs=")
    with pytest.raises(ValueError, match="no key"):
        parse_key_value_pair("=3")


# ----------------------------------------------------------------------------------------------
# Commands reaching the model
# ----------------------------------------------------------------------------------------------
def test_train_reaches_model_with_typed_overrides(fake_model):
    run("yolo detect train model=m.yaml data=d.yaml epochs = 3 imgsz=64 lr0=1e-3 device=cpu cos_lr=True freeze=None")
    assert fake_model.calls[0] == ("init", "m.yaml", {})
    mode, _, kwargs = fake_model.calls[1]
    assert mode == "train"
    assert kwargs == {
        "mode": "train",
        "model": "m.yaml",
        "data": "d.yaml",
        "epochs": 3,
        "imgsz": 64,
        "lr0": 1e-3,
        "device": "cpu",
        "cos_lr": True,
        "freeze": None,
    }


def test_lists_and_bare_bool_flags(fake_model):
    run("yolo predict model=m.pt source=img.jpg imgsz=[320, 640] classes=[0,2] show save_txt")
    mode, _, kwargs = fake_model.calls[-1]
    assert mode == "predict"
    assert kwargs["imgsz"] == [320, 640] and kwargs["classes"] == [0, 2]
    assert kwargs["show"] is True and kwargs["save_txt"] is True
    assert kwargs["source"] == "img.jpg"


def test_missing_model_defaults_to_article_model_with_warning(fake_model, log):
    run("yolo val data=d.yaml")
    assert fake_model.calls[0] == ("init", DEFAULT_MODEL, {})
    assert f"'model' argument is missing. Using default 'model={DEFAULT_MODEL}'" in log()


def test_missing_mode_data_and_format_get_defaults(fake_model, log):
    run("yolo model=m.yaml data=d.yaml")
    assert fake_model.calls[-1][0] == DEFAULT_CFG_DICT["mode"]
    run("yolo train model=m.yaml")
    assert fake_model.calls[-1][2]["data"] == "shapes.yaml"
    run("yolo export model=m.pt")
    assert fake_model.calls[-1][2]["format"] == "torchscript"
    text = log()
    assert "'mode' argument is missing" in text
    assert "'data' argument is missing. Using default 'data=shapes.yaml'" in text
    assert "'format' argument is missing" in text


def test_resume_does_not_get_default_data(fake_model):
    run("yolo train model=runs/detect/train/weights/last.pt resume=True")
    assert "data" not in fake_model.calls[-1][2]


def test_pretrained_path_is_loaded(fake_model):
    run("yolo train model=m.yaml data=d.yaml pretrained=other.pt")
    assert ("load", "other.pt", {}) in fake_model.calls


def test_leading_dashes_and_trailing_commas_are_forgiven(fake_model, log):
    run("yolo train model=m.yaml data=d.yaml --epochs=2 batch=4,")
    kwargs = fake_model.calls[-1][2]
    assert kwargs["epochs"] == 2 and kwargs["batch"] == 4
    assert "does not require leading dashes" in log() and "trailing comma" in log()


def test_cfg_file_overrides_defaults_and_cli_wins(fake_model, tmp_path, log):
    custom = tmp_path / "custom.yaml"
    yaml_save(custom, {"epochs": 9, "batch": 2, "data": "from-file.yaml"})
    run(f"yolo train model=m.yaml epochs=4 cfg={custom}")
    kwargs = fake_model.calls[-1][2]
    assert (kwargs["epochs"], kwargs["batch"], kwargs["data"]) == (4, 2, "from-file.yaml")
    assert "Overriding" in log() and str(custom) in log()


def test_bad_key_in_cfg_file_is_reported(fake_model, tmp_path, log):
    custom = tmp_path / "custom.yaml"
    yaml_save(custom, {"epcohs": 9})
    with pytest.raises(SystemExit) as e:
        run(f"yolo train cfg={custom}")
    assert e.value.code == 2
    assert "'epcohs' is not a valid YOLO argument" in log() and "epochs=100" in log()
    assert not fake_model.calls


# ----------------------------------------------------------------------------------------------
# Mistakes: clear message, exit status 2, model never built
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "command, fragments",
    [
        ("yolo train epoch=3", ["'epoch' is not a valid YOLO argument", "epochs=100"]),
        ("yolo trian data=d.yaml", ["'trian' is not a valid YOLO argument", "train"]),
        ("yolo train epochs=abc", ["'epochs=abc'", "str", "must be an int"]),
        ("yolo train epochs=2.5", ["'epochs=2.5'", "float", "must be an int"]),
        ("yolo train fliplr=1.5", ["'fliplr=1.5'", "between 0.0 and 1.0"]),
        ("yolo train save=1", ["'save=1'", "int", "must be a bool"]),
        ("yolo train epochs 3", ["'epochs' is a valid YOLO argument but is missing an '=' sign", "epochs=100"]),
        ("yolo train epochs=", ["missing 'epochs' value"]),
        ("yolo mode=dance", ["Invalid 'mode=dance'", "unknown", "train"]),
        ("yolo segment train", ["Invalid 'task=segment'", "detect"]),
        ("yolo task=spot train", ["Invalid 'task=spot'", "detect"]),
        ("yolo hub login", ["'yolo hub'", "does not provide"]),
        ("yolo train cfg=no-such-file.yaml", ["'no-such-file.yaml' does not exist", "searched"]),
    ],
)
def test_mistakes_exit_2_with_a_clear_message(fake_model, log, command, fragments):
    with pytest.raises(SystemExit) as e:
        run(command)
    assert e.value.code == 2
    text = log()
    assert text.startswith("yolo: error:")
    assert "Traceback" not in text
    for fragment in fragments:
        assert fragment in text
    assert not fake_model.calls


def test_missing_model_file_exits_2(monkeypatch, tmp_path, log):
    pytest.importorskip("ultralytics.engine.model")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as e:
        run("yolo val model=no-such-model.yaml data=shapes.yaml")
    assert e.value.code == 2
    assert "no-such-model.yaml" in log()


# ----------------------------------------------------------------------------------------------
# Special commands
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("command", ["yolo help", "yolo -h", "yolo --help", "yolo"])
def test_help(log, command, fake_model):
    run(command) if command != "yolo" else entrypoint("yolo ")
    text = log()
    assert "yolo TASK MODE ARGS" in text
    assert "['benchmark', 'export', 'predict', 'track', 'train', 'tune', 'val']" in text
    assert DEFAULT_MODEL in text
    assert not fake_model.calls


def test_cfg_prints_default_yaml(log):
    run("yolo cfg")
    text = log()
    for line in ("epochs: 100", "batch: 16", "imgsz: 640", "optimizer: auto", "tracker: botsort.yaml"):
        assert line in text


def test_version(log):
    run("yolo version")
    assert log().strip() == ultralytics.__version__


def test_copy_cfg(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run("yolo copy-cfg")
    copied = tmp_path / "default_copy.yaml"
    assert copied.read_text() == (Path(ultralytics.__file__).parent / "cfg" / "default.yaml").read_text()


def test_checks_prints_environment_summary(log):
    run("yolo checks")
    text = log()
    for fragment in ("Setup complete", "Python", "CPU count", "torch"):
        assert fragment in text


def test_settings_lists_runs_dir(log):
    run("yolo settings")
    assert "runs_dir" in log() and "ULTRALYTICS_RUNS_DIR" in log()


# ----------------------------------------------------------------------------------------------
# The installed console script
# ----------------------------------------------------------------------------------------------
def _yolo(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    exe = shutil.which("yolo")
    if exe is None:
        pytest.skip("the 'yolo' console script is not on PATH (install the package with pip install -e .)")
    env = {**os.environ, "YOLO_VERBOSE": "True"}
    return subprocess.run([exe, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def test_console_script_version_and_help(tmp_path):
    version = _yolo("version", cwd=tmp_path)
    assert version.returncode == 0, version.stderr
    assert version.stdout.strip() == ultralytics.__version__
    helped = _yolo("help", cwd=tmp_path)
    assert helped.returncode == 0, helped.stderr
    assert "yolo TASK MODE ARGS" in helped.stdout


def test_console_script_mistake_has_no_traceback(tmp_path):
    result = _yolo("train", "epoch=3", cwd=tmp_path)
    assert result.returncode == 2
    assert "'epoch' is not a valid YOLO argument" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr


# ----------------------------------------------------------------------------------------------
# End to end with the real model wrapper and predictor
# ----------------------------------------------------------------------------------------------
@pytest.mark.usefixtures("in_tmp_path")
def test_end_to_end_predict_through_cli(tmp_path, tiny_focal_yaml):
    import cv2
    import numpy as np

    rng = np.random.default_rng(0)
    cv2.imwrite(str(tmp_path / "im.jpg"), rng.integers(0, 255, (64, 96, 3), dtype=np.uint8))
    run(f"yolo predict model={tiny_focal_yaml} source=im.jpg imgsz=64 save=True project={tmp_path / 'out'} name=p")
    assert (tmp_path / "out" / "p" / "im.jpg").exists()


@pytest.mark.parametrize(
    "args, fragments",
    [
        (("train", "optimizer=Foo"), ["'optimizer=Foo'", "'Adam', 'AdamW'", "'SGD', 'auto'"]),
        (("val", "data=nonexistent.yaml"), ["nonexistent.yaml", "not found"]),
        (("val", "data=nonames.yaml"), ["nonames.yaml", "'names'", "'nc'"]),
        (("val", "data=noval.yaml"), ["noval.yaml", "'val:'", "required"]),
        (("val", "data=x.yaml", "split=test"), ["split='test'", "x.yaml", "['train', 'val']"]),
        (("train", "data=nonexistent.yaml", "epochs=1"), ["nonexistent.yaml", "could not be prepared", "not found"]),
        (("train", "data=noval.yaml", "epochs=1"), ["noval.yaml", "'val:'", "required"]),
    ],
)
def test_console_script_bad_input_is_a_usage_error_that_writes_nothing(tmp_path, tiny_focal_yaml, args, fragments):
    """Each mistake: one message naming what, where and what is accepted; exit 2; no run folder or cache."""
    (tmp_path / "images").mkdir()
    yaml_save(tmp_path / "nonames.yaml", {"path": str(tmp_path), "train": "images", "val": "images"})
    yaml_save(tmp_path / "noval.yaml", {"path": str(tmp_path), "train": "images", "names": ["a"]})
    yaml_save(tmp_path / "x.yaml", {"path": str(tmp_path), "train": "images", "val": "images", "names": ["a"]})
    before = sorted(tmp_path.rglob("*"))
    result = _yolo(*args, f"model={tiny_focal_yaml}", "imgsz=64", f"project={tmp_path / 'runs'}", cwd=tmp_path)
    out = ANSI.sub("", result.stdout + result.stderr)
    assert result.returncode == 2, out
    assert "Traceback" not in out
    for fragment in fragments:
        assert fragment in out
    assert sorted(tmp_path.rglob("*")) == before  # no run folder, no labels cache
