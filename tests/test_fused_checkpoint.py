"""Issue 8, point 5: a fused model saved to disk loads again with the restricted loader, and only that.

fuse() sets `layer.forward = layer.forward_fuse`, which pickles as `builtins.getattr(layer, "forward_fuse")`.
The loader lets that one lookup through and refuses every other getattr a file may ask for.
"""

from __future__ import annotations

from copy import deepcopy
from pathlib import Path

import numpy as np
import pytest
import torch

from ultralytics import RTDETR
from ultralytics.nn.checkpoints import UnsafeCheckpointError, attempt_load_one_weight, torch_safe_load
from ultralytics.nn.modules import Conv

TINY = str(Path(__file__).parent / "fixtures" / "rtdetr-tiny-FocalModulation.yaml")


@pytest.fixture
def images() -> torch.Tensor:
    return torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))


def _fused_layers(model) -> list:
    return [m for m in model.modules() if isinstance(m, Conv) and "forward" in vars(m)]


def test_fuse_then_save_loads_with_identical_outputs(tmp_path, images):
    torch.manual_seed(0)
    model = RTDETR(TINY).fuse()
    path = tmp_path / "fused.pt"
    model.save(path)

    loaded, _ = attempt_load_one_weight(path)
    assert loaded.is_fused() and _fused_layers(loaded), "the loaded layers keep their fused forward"
    # save() writes an fp16 copy; the same rounding applied in memory must give the very same numbers.
    expected = deepcopy(model.model).half().float().eval()
    with torch.no_grad():
        assert torch.equal(loaded(images)[0], expected(images)[0])


def test_saved_after_predict_loads_again(tmp_path):
    torch.manual_seed(0)
    model = RTDETR(TINY)
    image = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    model.predict(image, imgsz=64, verbose=False, save=False)
    assert _fused_layers(model.model), "predict fuses the model in place, so the saved file holds fused layers"
    path = tmp_path / "after_predict.pt"
    model.save(path)

    loaded, _ = attempt_load_one_weight(path)
    reloaded = RTDETR(str(path))
    assert reloaded.predict(image, imgsz=64, verbose=False, save=False)[0].boxes is not None
    assert type(loaded).__name__ == "RTDETRDetectionModel"


def test_other_lookups_are_refused(tmp_path):
    """A bound method other than a fused forward (here the model's own `info`) must not be unpickled."""
    model = RTDETR(TINY).model
    model.model[0].sneaky = model.info  # pickles as builtins.getattr(<RTDETRDetectionModel>, 'info')
    path = tmp_path / "sneaky.pt"
    torch.save({"model": model}, path)

    with pytest.raises(UnsafeCheckpointError, match=r"refused getattr\(ultralytics\.nn\.tasks\.RTDETRDetectionModel, 'info'\)"):
        torch_safe_load(path, trusted=False)
    ckpt, _ = torch_safe_load(path, trusted=True)  # a file the user trusts is still unpickled fully
    assert ckpt["model"].model[0].sneaky.__name__ == "info"


def test_fused_forward_of_a_foreign_object_is_refused(tmp_path):
    """forward_fuse is allowed only on this package's layers, not on, say, a torch layer given that name."""
    model = RTDETR(TINY).model
    linear = torch.nn.Linear(2, 2)
    linear.forward_fuse = linear.forward  # a torch class never defines forward_fuse
    model.model[0].odd = linear.forward_fuse
    path = tmp_path / "foreign.pt"
    torch.save({"model": model}, path)

    with pytest.raises(UnsafeCheckpointError, match=r"refused getattr\(torch\.nn\.modules\.linear\.Linear, 'forward'\)"):
        torch_safe_load(path, trusted=False)
