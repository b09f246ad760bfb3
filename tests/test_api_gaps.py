"""Upstream names scripts import, auto batch size, Model.reset_callbacks / transforms, Results.to_df/csv/json."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from ultralytics.engine.results import Results


# ------------------------------------------------------------------------------------------------
# Names
# ------------------------------------------------------------------------------------------------
def test_top_level_names():
    import ultralytics
    from ultralytics import ASSETS, checks, settings
    from ultralytics.utils import SETTINGS, WEIGHTS_DIR
    from ultralytics.utils.checks import check_yolo

    assert ASSETS.is_dir() and len(list(ASSETS.glob("*.jpg"))) == 2
    # Any dict-like settings object will do, as long as it names the folders the package uses.
    assert Path(settings["weights_dir"]) == WEIGHTS_DIR and Path(settings["datasets_dir"]) == Path(SETTINGS["datasets_dir"])
    assert checks is check_yolo
    with pytest.raises(AttributeError, match="no attribute 'nothing_here'"):
        ultralytics.nothing_here  # noqa: B018


def test_load_inference_source_is_importable_from_build():
    from ultralytics.data import build, loaders

    assert build.load_inference_source is loaders.load_inference_source
    with pytest.raises(AttributeError):
        build.not_a_name  # noqa: B018


def test_environment_helpers(monkeypatch, tmp_path):
    import ultralytics.utils as utils

    for key in ("GITHUB_ACTIONS", "GITHUB_WORKFLOW", "RUNNER_OS"):
        monkeypatch.setenv(key, "x")
    assert utils.is_github_action_running()
    monkeypatch.delenv("RUNNER_OS")
    assert not utils.is_github_action_running()
    assert isinstance(utils.ONLINE, bool)

    monkeypatch.setattr(utils, "ROOT", tmp_path)  # not a git checkout
    assert utils.get_git_branch() is None and utils.get_git_origin_url() is None


def test_ops_names():
    from ultralytics.utils.ops import ltwh2xywh, ltwh2xyxy, make_divisible, xywh2ltwh, xyxy2ltwh

    ltwh = np.array([[10.0, 20.0, 30.0, 40.0]])
    np.testing.assert_allclose(ltwh2xywh(ltwh), [[25, 40, 30, 40]])
    np.testing.assert_allclose(ltwh2xyxy(ltwh), [[10, 20, 40, 60]])
    t = torch.tensor(ltwh)
    assert torch.allclose(xywh2ltwh(ltwh2xywh(t)), t) and torch.allclose(xyxy2ltwh(ltwh2xyxy(t)), t)
    assert ltwh[0, 0] == 10.0  # the input is left as it was
    assert make_divisible(33, 8) == 40 and make_divisible(64, 8) == 64
    assert make_divisible(33, torch.tensor([8.0, 16.0, 32.0])) == 64  # strides: the largest counts
    with pytest.raises(ValueError, match="4 values"):
        ltwh2xyxy(np.zeros((2, 3)))


def test_profile_and_torch_profiler_flops(captured_log):
    from ultralytics.utils.torch_utils import get_flops_with_torch_profiler, profile

    conv = torch.nn.Conv2d(4, 8, 3, 1, 1)
    x = torch.randn(2, 4, 16, 16)
    with captured_log() as lines:
        rows = profile(x, [conv, torch.nn.Identity()], n=2, device="cpu")
    assert "Params" in lines[0] and "forward (ms)" in lines[0] and len(lines) == 3
    params, gflops, mem, forward, backward, s_in, s_out = rows[0]
    assert params == 8 * 4 * 9 + 8 and gflops == pytest.approx(2 * 2 * 8 * 4 * 9 * 16 * 16 / 1e9, rel=1e-3)
    assert forward > 0 and backward > 0 and (s_in, s_out) == ("(2, 4, 16, 16)", "(2, 8, 16, 16)") and mem == 0.0
    assert not x.requires_grad  # the caller's tensor is untouched

    # torch.profiler counts conv FLOPs as 2 x MACs on the whole image.
    gflops = get_flops_with_torch_profiler(torch.nn.Sequential(conv), imgsz=32)
    assert gflops == pytest.approx(2 * 8 * 4 * 9 * 32 * 32 / 1e9, rel=1e-3)


# ------------------------------------------------------------------------------------------------
# patches
# ------------------------------------------------------------------------------------------------
def test_patches_unicode_paths(tmp_path):
    from ultralytics.utils.patches import imread, imwrite

    image = np.zeros((12, 16, 3), np.uint8)
    image[2:6, 3:9] = (0, 0, 255)
    target = tmp_path / "数据 é" / "图片.png"
    target.parent.mkdir()
    assert imwrite(target, image)
    np.testing.assert_array_equal(imread(target), image)
    assert imread(tmp_path / "missing.jpg") is None
    assert imwrite(tmp_path / "x.notaformat", image) is False


def test_torch_save_retries_then_raises(tmp_path, monkeypatch):
    from ultralytics.utils import patches

    calls, pauses = [], []
    real_save = torch.save

    def flaky(obj, f, *a, **k):
        calls.append(f)
        if len(calls) < 3:
            raise RuntimeError("file locked")
        return real_save(obj, f, *a, **k)

    monkeypatch.setattr(patches.torch, "save", flaky)
    monkeypatch.setattr(patches.time, "sleep", pauses.append)
    patches.torch_save({"a": 1}, tmp_path / "x.pt")
    assert len(calls) == 3 and pauses == [1.0, 2.0]
    assert torch.load(tmp_path / "x.pt") == {"a": 1}

    monkeypatch.setattr(patches.torch, "save", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("disk gone")))
    with pytest.raises(RuntimeError, match="disk gone"):
        patches.torch_save({"a": 1}, tmp_path / "y.pt")


# ------------------------------------------------------------------------------------------------
# Auto batch size
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("batch", [-1, 0.5])
def test_autobatch_on_cpu_falls_back_to_16(batch, captured_log):
    from ultralytics.utils.autobatch import check_train_batch_size

    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3))
    with captured_log() as lines:
        assert check_train_batch_size(model, imgsz=64, amp=False, batch=batch) == 16
    assert any("intended for CUDA devices, using default batch-size 16" in line for line in lines)
    assert any(f"at {(batch if batch > 0 else 0.6) * 100}% CUDA memory" in line for line in lines)


class _FakeProps:
    name, total_memory = "Fake GPU", 8 << 30


@pytest.fixture
def fake_cuda(monkeypatch):
    """A 8 GB device with 0.25 GB allocated whose training step needs 0.5 GB + 0.25 GB per image."""
    from ultralytics.utils import autobatch

    memory = {"limit": None}

    def step(_model, images, _device):
        b = images.shape[0]
        return None if memory["limit"] and b >= memory["limit"] else 0.5 + 0.25 * b

    monkeypatch.setattr(autobatch, "_step_memory", step)
    monkeypatch.setattr(autobatch.torch.cuda, "get_device_properties", lambda _d: _FakeProps)
    monkeypatch.setattr(autobatch.torch.cuda, "memory_reserved", lambda _d: 0.25 * (1 << 30))
    monkeypatch.setattr(autobatch.torch.cuda, "memory_allocated", lambda _d: 0.25 * (1 << 30))
    monkeypatch.setattr(autobatch.torch, "empty", lambda *shape, **_k: torch.zeros(shape[0], 1))
    return memory


def test_autobatch_solves_the_measured_line(fake_cuda, captured_log):
    from ultralytics.utils.autobatch import _fit_batch

    device = torch.device("cuda", 0)
    # 0.6 * 8 GB - 0.25 GB allocated = 4.55 GB for the batch: (4.55 - 0.5) / 0.25 = 16.2 images
    with captured_log() as lines:
        assert _fit_batch(None, 64, 0.6, 16, device) == 16
    assert any("Using batch-size 16" in line and "4.75G/8.00G (59%)" in line for line in lines)
    assert _fit_batch(None, 64, 0.9, 16, device) == 25  # (7.2 - 0.25 - 0.5) / 0.25 = 25.8
    fake_cuda["limit"] = 8  # batch 8 ran out of memory: stay at the last size that fitted
    assert _fit_batch(None, 64, 0.9, 16, device) == 4
    fake_cuda["limit"] = 2  # one point is no line
    with pytest.raises(ValueError, match="only 1 batch size"):
        _fit_batch(None, 64, 0.9, 16, device)


def test_trainer_resolves_batch_minus_one(tiny_yaml, tiny_dataset, tmp_path, captured_log):
    from ultralytics.models.rtdetr.train import RTDETRTrainer

    overrides = dict(model=tiny_yaml, data=tiny_dataset(n_train=4, n_val=2), epochs=1, imgsz=64, batch=-1,
                     workers=0, device="cpu", plots=False, val=False, time=1e-5, project=str(tmp_path), name="ab")
    trainer = RTDETRTrainer(overrides=overrides)
    with captured_log() as lines:
        trainer.train()
    assert trainer.batch_size == trainer.args.batch == 16
    assert any("AutoBatch" in line and "default batch-size 16" in line for line in lines)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_autobatch_measures_on_cuda(tiny_yaml):
    from ultralytics.nn.tasks import RTDETRDetectionModel
    from ultralytics.utils.autobatch import check_train_batch_size

    model = RTDETRDetectionModel(tiny_yaml, verbose=False).cuda()
    small = check_train_batch_size(model, imgsz=160, amp=True, batch=0.05)
    large = check_train_batch_size(model, imgsz=160, amp=True, batch=0.5)
    assert 1 <= small <= large <= 1024 and large > 16
    assert all(p.grad is None for p in model.parameters())  # a copy was measured


# ------------------------------------------------------------------------------------------------
# Model and Results API
# ------------------------------------------------------------------------------------------------
def test_reset_callbacks_and_transforms(tiny_yaml):
    from ultralytics import RTDETR
    from ultralytics.utils.callbacks.base import default_callbacks

    model = RTDETR(tiny_yaml)
    shared = model.callbacks
    model.add_callback("on_train_start", print)
    model.add_callback("on_predict_end", print)
    model.reset_callbacks()
    assert model.callbacks is shared  # engines holding the registry see the reset
    assert {event: model.callbacks[event] for event in default_callbacks} == default_callbacks
    assert model.transforms is None  # a property, as upstream


def _result() -> Results:
    boxes = torch.tensor([[10.0, 20.0, 50.0, 60.0, 0.75, 1.0], [0.0, 0.0, 100.0, 50.0, 0.5, 0.0]])
    return Results(np.zeros((50, 100, 3), np.uint8), path="im.jpg", names={0: "circle", 1: "square"}, boxes=boxes)


def test_results_to_json_df_csv():
    pytest.importorskip("pandas")
    result = _result()
    rows = json.loads(result.to_json())
    assert rows[0] == {"name": "square", "class": 1, "confidence": 0.75,
                       "box": {"x1": 10.0, "y1": 20.0, "x2": 50.0, "y2": 60.0}}
    assert json.loads(result.to_json(normalize=True, decimals=2))[1]["box"] == {"x1": 0.0, "y1": 0.0, "x2": 1.0, "y2": 1.0}
    df = result.to_df()
    assert list(df.columns) == ["name", "class", "confidence", "box"] and len(df) == 2
    assert df["box"][0] == {"x1": 10.0, "y1": 20.0, "x2": 50.0, "y2": 60.0}
    text = result.to_csv()
    assert text.splitlines()[0] == ",name,class,confidence,box" and "square" in text
    assert result.to_csv(index=False).splitlines()[0] == "name,class,confidence,box"


def test_results_to_df_without_pandas(monkeypatch):
    monkeypatch.setitem(sys.modules, "pandas", None)  # import pandas now fails
    result = _result()
    assert len(json.loads(result.to_json())) == 2
    with pytest.raises(ImportError, match="pip install pandas"):
        result.to_df()
    with pytest.raises(ImportError, match="to_json works without it"):
        result.to_csv()
