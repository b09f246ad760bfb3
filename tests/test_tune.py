"""Tune: mutation search over upstream's keys with the RT-DETR trainer; results csv, best yaml, plots, weights."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import yaml

from ultralytics import RTDETR
from ultralytics.cfg import entrypoint
from ultralytics.engine.tuner import SEARCH_SPACE, Tuner, plot_tune_results

TINY_YAML = Path(__file__).parent / "fixtures" / "rtdetr-tiny-FocalModulation.yaml"
pytestmark = pytest.mark.usefixtures("in_tmp_path")

UPSTREAM_KEYS = [
    "lr0", "lrf", "momentum", "weight_decay", "warmup_epochs", "warmup_momentum", "box", "cls", "dfl", "hsv_h",
    "hsv_s", "hsv_v", "degrees", "translate", "scale", "shear", "perspective", "flipud", "fliplr", "bgr", "mosaic",
    "mixup", "copy_paste",
]


def _rows(file: Path) -> list[dict[str, float]]:
    with open(file, newline="") as f:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]


def test_two_iterations_with_the_rtdetr_trainer(tiny_dataset, tmp_path):
    from ultralytics.models.rtdetr.train import RTDETRTrainer
    from ultralytics.nn.tasks import RTDETRDetectionModel

    trainers = []
    model = RTDETR(str(TINY_YAML))
    model.add_callback("on_train_start", lambda trainer: trainers.append((type(trainer), type(trainer.model))))
    best = model.tune(data=tiny_dataset(n_train=4, n_val=2), iterations=2, epochs=1, imgsz=64, batch=2, workers=0,
                      device="cpu", plots=False)

    assert trainers == [(RTDETRTrainer, RTDETRDetectionModel)] * 2  # not a YOLO trainer or model
    tune_dir = tmp_path / "runs" / "detect" / "tune"
    for name in ("tune_results.csv", "best_hyperparameters.yaml", "tune_scatter_plots.png", "tune_fitness.png"):
        assert (tune_dir / name).is_file(), name
    assert any((tune_dir / "weights").glob("*.pt"))

    rows = _rows(tune_dir / "tune_results.csv")
    assert len(rows) == 2 and list(rows[0]) == ["fitness", *UPSTREAM_KEYS]
    defaults = yaml.safe_load((Path(__file__).parents[1] / "ultralytics/cfg/default.yaml").read_text())
    assert all(rows[0][k] == pytest.approx(min(max(defaults[k], lo), hi)) for k, (lo, hi, *_) in SEARCH_SPACE.items())
    assert any(rows[1][k] != rows[0][k] for k in UPSTREAM_KEYS)  # the second candidate is a mutation
    for row in rows:
        assert all(lo <= row[k] <= hi for k, (lo, hi, *_) in SEARCH_SPACE.items())

    fittest = max(rows, key=lambda r: r["fitness"])
    text = (tune_dir / "best_hyperparameters.yaml").read_text(encoding="utf-8")
    assert text.startswith("# 2/2 iterations complete")
    assert best == yaml.safe_load(text) == {k: fittest[k] for k in UPSTREAM_KEYS}
    assert (tmp_path / "runs" / "detect" / "train2").is_dir()  # each iteration is a training run of its own


def _write_results(file: Path, fitness: list[float], values: np.ndarray, keys: list[str]) -> None:
    lines = [",".join(["fitness", *keys])] + [",".join(map(str, [f, *v])) for f, v in zip(fitness, values)]
    file.write_text("\n".join(lines) + "\n")


def test_mutation_starts_from_a_fit_parent_and_stays_in_bounds():
    space = {"lr0": (1e-5, 1e-1), "momentum": (0.7, 0.98, 0.3), "mosaic": (0.0, 1.0)}
    tuner = Tuner(args={"data": "shapes.yaml", "space": space})
    tuner.tune_dir.mkdir(parents=True)
    # Row 0 is by far the fittest; rows 1-5 are equal and the lowest, so they get (almost) no weight.
    values = np.array([[0.01, 0.9, 0.5]] + [[0.09, 0.75, 0.9]] * 5)
    _write_results(tuner.tune_csv, [0.9, 0.1, 0.1, 0.1, 0.1, 0.1], values, list(space))
    tuner.rng = np.random.default_rng(0)
    for _ in range(50):
        candidate = tuner._mutate()
        assert list(candidate) == list(space)
        assert all(lo <= candidate[k] <= hi for k, (lo, hi, *_) in space.items())
        factors = np.array([candidate[k] for k in space]) / values[0]
        assert np.all((factors >= 0.3 - 1e-4) & (factors <= 3.0 + 1e-4) | (factors == 0))
        assert any(candidate[k] != v for k, v in zip(space, values[0]))


def test_plots_from_a_results_file(tmp_path):
    keys = ["lr0", "mosaic"]
    _write_results(tmp_path / "tune_results.csv", [0.2, 0.5, 0.4], np.array([[0.01, 1.0], [0.02, 0.5], [0.03, 0.0]]), keys)
    plot_tune_results(tmp_path / "tune_results.csv")
    assert (tmp_path / "tune_scatter_plots.png").stat().st_size > 0
    assert (tmp_path / "tune_fitness.png").stat().st_size > 0


def test_bad_space_and_iterations_are_refused():
    with pytest.raises(ValueError, match="'nope' is not a training setting"):
        Tuner(args={"data": "shapes.yaml", "space": {"nope": (0, 1)}})
    with pytest.raises(ValueError, match=r"must be \(min, max\)"):
        Tuner(args={"data": "shapes.yaml", "space": {"lr0": (0.1, 0.01)}})
    with pytest.raises(ValueError, match="iterations=0 must be a positive int"):
        Tuner(args={"data": "shapes.yaml"})(iterations=0)
    with pytest.raises(ValueError, match="use_ray=True"):
        RTDETR(str(TINY_YAML)).tune(use_ray=True)


@pytest.mark.parametrize(
    "command, message",
    [
        ("yolo tune data=shapes.yaml iterations=0", "'iterations=0' must be a positive int"),
        ("yolo train data=shapes.yaml iterations=2", "argument of 'yolo tune' only"),
    ],
)
def test_cli_iterations_mistakes_are_usage_errors(command, message, captured_log):
    with captured_log() as messages, pytest.raises(SystemExit) as stop:
        entrypoint(f"{command} model={TINY_YAML}")
    assert stop.value.code == 2
    assert any(message in m for m in messages)
    assert not Path("runs").exists()
