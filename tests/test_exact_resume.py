"""Exact resume: a run interrupted after epoch k and resumed gives the uninterrupted run's results.

Tiny fixture model (tests/fixtures/rtdetr-tiny-FocalModulation.yaml), 6 + 2 images at 64 px, 3 epochs,
seed 0, deterministic=True, CPU, workers=0; close_mosaic=1, so mosaic closes in the last epoch and
k=1 resumes before it closes while k=2 resumes after.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
MODEL = REPO / "tests" / "fixtures" / "rtdetr-tiny-FocalModulation.yaml"
EPOCHS = 3
TOL = 1e-6


def _overrides(data: str, project: Path, name: str) -> dict:
    return dict(
        model=str(MODEL),
        data=data,
        epochs=EPOCHS,
        imgsz=64,
        batch=2,
        workers=0,
        device="cpu",
        plots=False,
        seed=0,
        deterministic=True,
        close_mosaic=1,
        project=str(project),
        name=name,
    )


def _weights(trainer) -> dict[str, torch.Tensor]:
    """The live model's and the EMA's float32 weights at the end of training."""
    live = {f"model.{k}": v.detach().float().clone() for k, v in trainer.model.state_dict().items()}
    ema = {f"ema.{k}": v.detach().float().clone() for k, v in trainer.ema.ema.state_dict().items()}
    return {**live, **ema}


def _rows(path: Path) -> list[dict[str, float]]:
    """results.csv rows without the `time` column."""
    with open(path, newline="") as f:
        return [{k.strip(): float(v) for k, v in row.items() if k.strip() != "time"} for row in csv.DictReader(f)]


def _train(overrides: dict, stop_at: int | None = None):
    """Train; with stop_at, interrupt (Ctrl-C) as epoch `stop_at` (0-based) starts. Returns the trainer and its
    final weights (None when interrupted)."""
    from ultralytics.models.rtdetr.train import RTDETRTrainer

    trainer = RTDETRTrainer(overrides=overrides)
    final: dict = {}
    trainer.add_callback("on_train_end", lambda tr: final.update(_weights(tr)))

    def interrupt(tr):
        if tr.epoch == stop_at:
            raise KeyboardInterrupt

    if stop_at is None:
        trainer.train()
        return trainer, final
    trainer.add_callback("on_train_epoch_start", interrupt)
    with pytest.raises(KeyboardInterrupt):
        trainer.train()
    return trainer, None


@pytest.fixture(scope="module")
def data(tiny_dataset) -> str:
    return tiny_dataset(n_train=6, n_val=2)


@pytest.fixture(scope="module")
def uninterrupted(data, tmp_path_factory):
    """(rows, final weights, last.pt) of the uninterrupted run."""
    trainer, final = _train(_overrides(data, tmp_path_factory.mktemp("runs"), "full"))
    return _rows(trainer.csv), final, Path(trainer.last)


@pytest.fixture(scope="module")
def first_epoch(data, tmp_path_factory) -> Path:
    """last.pt of a run interrupted after its first epoch (tests only read it)."""
    trainer, _ = _train(_overrides(data, tmp_path_factory.mktemp("runs"), "first"), stop_at=1)
    return Path(trainer.last)


@pytest.mark.parametrize("k", [1, 2])
def test_interrupted_and_resumed_run_equals_uninterrupted_run(uninterrupted, data, tmp_path, k):
    from ultralytics.models.rtdetr.train import RTDETRTrainer

    reference_rows, reference_weights, _ = uninterrupted
    interrupted, _ = _train(_overrides(data, tmp_path, f"k{k}"), stop_at=k)
    saved = torch.load(interrupted.last, map_location="cpu", weights_only=False)
    assert saved["epoch"] == k - 1 and saved["resume_state"]["mosaic_closed"] is (k > EPOCHS - 1)

    resumed = RTDETRTrainer(overrides={"resume": str(interrupted.last), "model": str(interrupted.last)})
    final: dict = {}
    resumed.add_callback("on_train_end", lambda tr: final.update(_weights(tr)))
    resumed.train()

    rows = _rows(resumed.csv)
    assert [r["epoch"] for r in rows] == [r["epoch"] for r in reference_rows]
    for got, want in zip(rows, reference_rows):
        assert list(got) == list(want)
        for column in want:
            assert got[column] == pytest.approx(want[column], abs=TOL, rel=0), (got["epoch"], column)
    assert list(final) == list(reference_weights)
    for name, tensor in reference_weights.items():
        torch.testing.assert_close(final[name], tensor, atol=TOL, rtol=0, msg=name)


def test_checkpoint_keeps_upstream_keys_and_adds_the_resume_state(first_epoch):
    from ultralytics.nn.checkpoints import torch_safe_load

    ckpt, _ = torch_safe_load(first_epoch)  # our restricted loader reads the new key without new classes
    upstream_keys = ["epoch", "best_fitness", "model", "ema", "updates", "optimizer", "train_args",
                     "train_metrics", "train_results", "date", "version", "license", "docs"]  # fmt: skip
    assert list(ckpt)[: len(upstream_keys)] == upstream_keys and list(ckpt)[-1] == "resume_state"
    assert next(ckpt["ema"].parameters()).dtype == torch.float16  # upstream's copy, unchanged
    state = ckpt["resume_state"]
    assert {v.dtype for v in state["model"].values() if v.is_floating_point()} == {torch.float32}
    assert {v.dtype for v in state["ema"].values() if v.is_floating_point()} == {torch.float32}
    assert set(state["rng"]) == {"python", "numpy", "torch", "cuda"}
    assert state["loader"]["served"] == 3 and isinstance(state["loader"]["worker_base_seed"], int)
    assert ckpt["train_metrics"]["skipped_steps"] == 0


def test_checkpoint_without_resume_state_resumes_as_before(data, tmp_path):
    from ultralytics.models.rtdetr.train import RTDETRTrainer

    trainer, _ = _train(_overrides(data, tmp_path, "old"), stop_at=2)
    ckpt = torch.load(trainer.last, map_location="cpu", weights_only=False)
    del ckpt["resume_state"]  # as upstream, or this package before, wrote it
    torch.save(ckpt, trainer.last)
    resumed = RTDETRTrainer(overrides={"resume": str(trainer.last), "model": str(trainer.last)})
    resumed.train()
    assert [r["epoch"] for r in _rows(resumed.csv)] == [1.0, 2.0, 3.0]


def test_finished_run_cannot_be_extended_by_resume(uninterrupted):
    from ultralytics.models.rtdetr.train import RTDETRTrainer

    last = uninterrupted[2]
    runs = last.parents[2]
    folders = sorted(p.name for p in runs.iterdir())
    with pytest.raises(ValueError, match=r"finished run \(3 epochs\).*'yolo train model=.*last\.pt data=.* epochs=5'"):
        RTDETRTrainer(overrides={"resume": str(last), "model": str(last), "epochs": 5})
    assert sorted(p.name for p in runs.iterdir()) == folders  # no new run folder


def test_unfinished_run_refuses_other_epochs(first_epoch):
    from ultralytics.models.rtdetr.train import RTDETRTrainer

    with pytest.raises(ValueError, match=r"epochs=3; epochs=6 cannot be changed on resume"):
        RTDETRTrainer(overrides={"resume": str(first_epoch), "model": str(first_epoch), "epochs": 6})
    same = RTDETRTrainer(overrides={"resume": str(first_epoch), "model": str(first_epoch), "epochs": EPOCHS})
    assert same.args.epochs == EPOCHS
