"""TensorBoard: each epoch's results.csv row (losses, metrics, learning rates) as scalars in the run folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from ultralytics import utils
from ultralytics.utils import results_csv
from ultralytics.utils.callbacks import base, tensorboard
from ultralytics.utils.callbacks.base import add_integration_callbacks, get_default_callbacks

TINY_YAML = Path(__file__).parent / "fixtures" / "rtdetr-tiny-FocalModulation.yaml"
pytestmark = pytest.mark.usefixtures("in_tmp_path")


def _train(data: str, tmp_path: Path, epochs: int):
    from ultralytics.models.rtdetr.train import RTDETRTrainer

    overrides = dict(model=str(TINY_YAML), data=data, epochs=epochs, imgsz=64, batch=2, workers=0, device="cpu",
                     plots=False, project=str(tmp_path / "runs"), name="train")
    trainer = RTDETRTrainer(overrides=overrides)
    trainer.train()
    return trainer


def test_every_results_column_is_a_scalar_per_epoch(tiny_dataset, tmp_path, results_columns):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    trainer = _train(tiny_dataset(n_train=4, n_val=2), tmp_path, epochs=2)
    events = list(Path(trainer.save_dir).glob("events.out.tfevents.*"))
    assert len(events) == 1  # in the run folder, next to results.csv

    accumulator = EventAccumulator(str(trainer.save_dir)).Reload()
    logged = set(accumulator.Tags()["scalars"])
    assert logged == set(results_columns) - {"epoch"}
    assert {"lr/pg0", "lr/pg1", "lr/pg2", "metrics/mAP50-95(B)", "train/giou_loss"} <= logged
    table = results_csv.read(trainer.csv)
    for name in logged:
        scalars = accumulator.Scalars(name)
        assert [s.step for s in scalars] == [1, 2], name
        assert [s.value for s in scalars] == pytest.approx(table[name], rel=1e-6, abs=1e-9), name


def test_yolo_settings_tensorboard_false_adds_no_callbacks(monkeypatch, tmp_path):
    from ultralytics.cfg import entrypoint

    monkeypatch.setenv("YOLO_CONFIG_DIR", str(tmp_path / "config"))
    assert tensorboard.tensorboard_setting() is True  # upstream's default, before any settings file exists
    assert "on_fit_epoch_end" in tensorboard.callbacks()

    entrypoint("yolo settings tensorboard=False")
    assert tensorboard.tensorboard_setting() is False
    assert tensorboard.callbacks() == {}
    holder = type("Engine", (), {"callbacks": get_default_callbacks()})()
    add_integration_callbacks(holder)
    assert holder.callbacks == get_default_callbacks()

    entrypoint("yolo settings reset")
    assert tensorboard.tensorboard_setting() is True


def test_other_loggers_plug_in_once(monkeypatch):
    seen = []

    def my_logger(trainer):
        seen.append(trainer)

    monkeypatch.setattr(base, "INTEGRATIONS", [lambda: {"on_fit_epoch_end": my_logger}])
    holder = type("Engine", (), {"callbacks": get_default_callbacks()})()
    add_integration_callbacks(holder)
    add_integration_callbacks(holder)  # engine parts of one Model share a registry: no duplicates
    assert holder.callbacks["on_fit_epoch_end"].count(my_logger) == 1
