"""The fixed-seed golden run (tests/golden_run.py) still gives what was recorded before the engine rewrite."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from golden_run import FIXTURE, REPO

TOL = 1e-5


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> tuple[dict, dict]:
    if not FIXTURE.exists():
        pytest.skip(f"{FIXTURE} is missing: record it with `python tests/golden_run.py --write`")
    tmp = tmp_path_factory.mktemp("golden")
    out = tmp / "summary.pt"
    cmd = [sys.executable, str(REPO / "tests" / "golden_run.py"), "--out", str(out), "--workdir", str(tmp / "work")]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return torch.load(FIXTURE, weights_only=True), torch.load(out, weights_only=True)


def test_learning_rates_are_exactly_the_recorded_ones(runs):
    golden, now = runs
    lr_columns = [c for c in golden["csv"] if c.startswith("lr/")]
    assert lr_columns == ["lr/pg0", "lr/pg1", "lr/pg2"]
    for c in lr_columns:
        assert now["csv"][c] == golden["csv"][c], c


def test_losses_and_metrics_match(runs):
    golden, now = runs
    assert list(now["csv"]) == list(golden["csv"])
    for column, values in golden["csv"].items():
        assert len(now["csv"][column]) == len(values) == 2, column
        diff = max(abs(a - b) for a, b in zip(now["csv"][column], values))
        assert diff <= TOL, f"{column}: {now['csv'][column]} vs golden {values}"


def test_final_weights_match(runs):
    golden, now = runs
    assert list(now["weights"]) == list(golden["weights"])
    for name, ref in golden["weights"].items():
        assert now["weights"][name].shape == ref.shape, name
        assert torch.allclose(now["weights"][name], ref, atol=TOL, rtol=0), name


def test_predictions_match(runs):
    golden, now = runs
    assert now["images"] == golden["images"]
    for key in ("boxes", "scores", "classes"):
        for a, b in zip(now[key], golden[key]):
            assert a.shape == b.shape, key
            assert torch.allclose(a, b, atol=TOL, rtol=0), key


def test_callbacks_fire_in_the_recorded_order(runs):
    golden, now = runs
    assert now["events"] == golden["events"]


PRE_REWRITE_LAST = REPO / "tests" / "fixtures" / "pre_rewrite_golden_last.pt"


def test_checkpoint_written_before_the_rewrite_loads_and_predicts_the_same(tmp_path, monkeypatch):
    """The golden run's last.pt as the pre-rewrite engine wrote it: today's loader reads its layout, and
    predicting with it gives the boxes the pre-rewrite predictor recorded in the golden."""
    from ultralytics import RTDETR
    from ultralytics.data.utils import check_det_dataset
    from ultralytics.nn.checkpoints import torch_safe_load

    golden = torch.load(FIXTURE, weights_only=True)
    ckpt, _ = torch_safe_load(PRE_REWRITE_LAST)
    # Training ends by stripping last.pt: the EMA becomes the fp16 model, the optimizer goes, epoch is -1.
    assert ckpt["epoch"] == -1 and ckpt["ema"] is None and ckpt["optimizer"] is None
    assert list(ckpt["train_results"]) == list(golden["csv"])  # written before the time column existed
    ema = {k: v.float() for k, v in ckpt["model"].state_dict().items()}
    for name, ref in golden["weights"].items():
        assert torch.allclose(ema[name], ref.half().float(), atol=TOL, rtol=0), name

    monkeypatch.chdir(tmp_path)
    val_dir = Path(check_det_dataset("shapes.yaml")["val"])
    images = [str(val_dir / name) for name in golden["images"]]
    results = RTDETR(str(PRE_REWRITE_LAST)).predict(images, imgsz=64, conf=0.0, verbose=False)
    for r, boxes, scores, classes in zip(results, golden["boxes"], golden["scores"], golden["classes"]):
        assert torch.allclose(r.boxes.xyxy, boxes, atol=TOL, rtol=0)
        assert torch.allclose(r.boxes.conf, scores, atol=TOL, rtol=0)
        assert torch.equal(r.boxes.cls, classes)
