"""Non-finite values: predictions with NaN/inf never reach the matcher, skipped steps are counted per
epoch, and too many skipped steps in a row stop training with advice."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
MODEL = REPO / "tests" / "fixtures" / "rtdetr-tiny-FocalModulation.yaml"

pytestmark = pytest.mark.usefixtures("in_tmp_path")


def test_matcher_refuses_non_finite_predictions_before_scipy(monkeypatch):
    from ultralytics.models.utils import ops

    monkeypatch.setattr(ops, "linear_sum_assignment", lambda cost: pytest.fail("scipy reached"))
    boxes, logits = torch.rand(2, 5, 4), torch.randn(2, 5, 3)  # (bs, nq, 4), (bs, nq, nc)
    boxes[0, 1, 2] = float("nan")
    logits[1, 4] = float("inf")  # 3 values
    gt_boxes, gt_cls = torch.rand(3, 4), torch.tensor([0, 1, 2])
    with pytest.raises(ops.NonFinitePredictions, match=r"1 of 40 box values and 3 of 30 class logits") as caught:
        ops.HungarianMatcher()(boxes, logits, gt_boxes, gt_cls, [2, 1])
    assert (caught.value.boxes, caught.value.logits) == (1, 3)


def _poison_first_layer(trainer) -> None:
    """Make the next forward pass of the model produce NaN from its first layer on (one pass only)."""
    first = trainer.model.model[0]

    def to_nan(module, inputs, output):
        handle.remove()
        return torch.full_like(output, float("nan"))

    handle = first.register_forward_hook(to_nan)


def _trainer(data: str, poisoned: set[tuple[int, int]], **kw):
    """A 3-batch-per-epoch trainer stepping every batch, with NaN injected at (epoch, batch) pairs (1-based)."""
    from ultralytics.models.rtdetr.train import RTDETRTrainer

    overrides = dict(model=str(MODEL), data=data, imgsz=64, batch=2, nbs=2, workers=0, device="cpu", plots=False,
                     val=False, project="runs", name="nan", **kw)  # fmt: skip
    trainer = RTDETRTrainer(overrides=overrides)
    saved: list[dict] = []
    trainer.add_callback(
        "on_train_batch_start",
        lambda tr: _poison_first_layer(tr) if (tr.epoch + 1, tr._batch_index + 1) in poisoned else None,
    )
    trainer.add_callback("on_model_save", lambda tr: saved.append(torch.load(tr.last, weights_only=False)))
    return trainer, saved


def test_non_finite_predictions_skip_their_step_and_are_counted(tiny_dataset, captured_log):
    data = tiny_dataset(n_train=6, n_val=2)
    trainer, saved = _trainer(data, poisoned={(1, 2)}, epochs=2)
    with captured_log() as log:
        trainer.train()
    text = "\n".join(log)
    assert "non-finite predictions: " in text and "box values and " in text
    assert "class logits are NaN or inf in epoch 1, batch 2; they are not matched" in text
    assert "optimizer step skipped: a batch since the last step had a non-finite loss" in text
    assert "Epoch 1/2: 1 optimizer step(s) skipped for non-finite values" in text
    assert "Epoch 2/2:" not in text  # nothing skipped in epoch 2
    assert [ckpt["train_metrics"]["skipped_steps"] for ckpt in saved] == [1, 0]
    weights = saved[-1]["resume_state"]["model"]
    assert all(torch.isfinite(v).all() for v in weights.values() if v.is_floating_point())


def test_consecutive_skipped_steps_stop_training_with_advice(tiny_dataset):
    from ultralytics.engine.trainer import NonFiniteTrainingError

    data = tiny_dataset(n_train=6, n_val=2)
    trainer, saved = _trainer(data, poisoned={(2, 1), (2, 2), (2, 3)}, epochs=3)
    trainer.max_skipped_steps = 3
    with pytest.raises(NonFiniteTrainingError) as caught:
        trainer.train()
    message = str(caught.value)
    assert message.startswith("Training stopped in epoch 2, batch 3: the last 3 optimizer steps were all skipped")
    assert f"The last good checkpoint is {trainer.last} (the end of epoch 1)" in message
    assert "amp=False" in message and "lr0" in message and "warmup_epochs" in message
    assert len(saved) == 1 and saved[0]["epoch"] == 0  # last.pt still holds epoch 1
    assert torch.load(trainer.last, weights_only=False)["epoch"] == 0


def test_default_limit_is_documented():
    from ultralytics.engine.trainer import BaseTrainer

    assert BaseTrainer.max_skipped_steps == 10
    assert "max_skipped_steps" in BaseTrainer.__doc__ and "default 10" in BaseTrainer.__doc__
