"""Hyperparameter search by mutation: train, score, mutate the best, train again.

    yolo tune model=rtdetr-l-FocalModulation.yaml data=shapes.yaml epochs=10 iterations=30
    RTDETR("best.pt").tune(data="shapes.yaml", epochs=10, iterations=30)

Each iteration trains once with the model's own trainer (RTDETRTrainer for RT-DETR, in this
process) and records the run's best fitness (0.1 mAP50 + 0.9 mAP50-95) with its hyperparameters.
The next values come from one parent, drawn from the five fittest rows so far with probability
growing with fitness; each hyperparameter is then scaled, with probability 0.8, by a factor
1 + gain * N(0, 1) * U(0, 1) * 0.2, clipped to [0.3, 3], and the result clipped to the key's bounds.
The first iteration trains with the given (or default) values.

The tune folder (runs/detect/tune, tune2, ...) holds:

    tune_results.csv           fitness, then one column per hyperparameter; a row per iteration
    best_hyperparameters.yaml  the fittest row's values, with a comment header
    tune_scatter_plots.png     every hyperparameter against fitness
    tune_fitness.png           fitness per iteration
    weights/                   the fittest training's weights

Trainings go to runs/detect/train, train2, ...; with cleanup=True those that are not the fittest
so far lose their weights folder.
"""

from __future__ import annotations

import math
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, NamedTuple

import numpy as np
import yaml

from ultralytics.cfg import cfg2dict, get_cfg, get_save_dir
from ultralytics.utils import DEFAULT_CFG, DEFAULT_CFG_DICT, LOGGER, colorstr
from ultralytics.utils.callbacks import get_default_callbacks

class Bound(NamedTuple):
    """Where a hyperparameter may go; `gain` scales how far one mutation moves it (1 for most keys)."""

    low: float
    high: float
    gain: float = 1.0


# Upstream's keys and bounds, in upstream's order (tune_results.csv columns follow it).
SEARCH_SPACE: dict[str, Bound] = {
    # optimisation
    "lr0": Bound(1e-5, 0.1),
    "lrf": Bound(1e-4, 0.1),  # final learning rate, as a fraction of lr0
    "momentum": Bound(0.7, 0.98, gain=0.3),  # SGD momentum / Adam beta1
    "weight_decay": Bound(0.0, 1e-3),
    "warmup_epochs": Bound(0.0, 5.0),
    "warmup_momentum": Bound(0.0, 0.95),
    # loss gains: upstream's keys, kept for its csv layout; RT-DETR's criterion uses its own weights
    "box": Bound(1.0, 20.0),
    "cls": Bound(0.2, 4.0),
    "dfl": Bound(0.4, 6.0),
    # augmentation strengths
    "hsv_h": Bound(0.0, 0.1),
    "hsv_s": Bound(0.0, 0.9),
    "hsv_v": Bound(0.0, 0.9),
    "degrees": Bound(0.0, 45.0),
    "translate": Bound(0.0, 0.9),
    "scale": Bound(0.0, 0.95),
    "shear": Bound(0.0, 10.0),
    "perspective": Bound(0.0, 1e-3),
    # augmentation probabilities
    **dict.fromkeys(("flipud", "fliplr", "bgr", "mosaic", "mixup", "copy_paste"), Bound(0.0, 1.0)),
}


@dataclass(frozen=True)
class Mutation:
    """How a parent becomes the next candidate (upstream's defaults)."""

    parents: int = 5  # the fittest rows a parent is drawn from
    probability: float = 0.8  # chance that a key is mutated
    sigma: float = 0.2  # spread of the scale factor
    factor_range: tuple[float, float] = (0.3, 3.0)  # bounds of the scale factor


def _check_space(space: dict) -> dict[str, Bound]:
    """The space as Bounds; raises unless every key is a training setting with (min, max[, gain]), min <= max."""
    checked = {}
    for key, bounds in space.items():
        if key not in DEFAULT_CFG_DICT:
            raise ValueError(f"tune space key '{key}' is not a training setting; see 'yolo cfg' for the keys")
        if not isinstance(bounds, (tuple, list)) or len(bounds) not in {2, 3} or bounds[0] > bounds[1]:
            raise ValueError(f"tune space['{key}']={bounds!r} must be (min, max) or (min, max, gain) with min <= max")
        checked[key] = Bound(*(float(b) for b in bounds))
    return checked


def _read_results(csv_file: Path) -> tuple[np.ndarray, np.ndarray]:
    """(fitness (n,), hyperparameter values (n, keys)) of tune_results.csv."""
    table = np.loadtxt(csv_file, ndmin=2, delimiter=",", skiprows=1)
    return table[:, 0], table[:, 1:]


class Tuner:
    """Search the hyperparameters of `space` (default SEARCH_SPACE) by mutation; see the module docstring.

    `space` maps training settings to (min, max) or (min, max, gain), as upstream's does.

    Args:
        args: training settings (data, epochs, imgsz, ...), plus an optional `space` dict.
        _callbacks: callbacks every training of the search runs.
    """

    def __init__(self, args: dict | Any = DEFAULT_CFG, _callbacks: dict | None = None, mutation: Mutation = Mutation()):
        settings = dict(cfg2dict(args))
        self.space = _check_space(settings.pop("space", None) or SEARCH_SPACE)
        self.args = get_cfg(overrides=settings)
        self.tune_dir = get_save_dir(self.args, name=self.args.name or "tune")
        self.args.name = None  # the trainings are named train, train2, ...
        self.tune_csv = self.tune_dir / "tune_results.csv"
        self.callbacks = _callbacks or get_default_callbacks()
        self.mutation = mutation
        self.rng = np.random.default_rng()  # its own generator: each training re-seeds the global ones
        self.prefix = colorstr("Tuner: ")
        LOGGER.info(
            f"{self.prefix}Initialized Tuner instance with 'tune_dir={self.tune_dir}'\n"
            f"{self.prefix}💡 Learn about tuning at https://docs.ultralytics.com/guides/hyperparameter-tuning"
        )

    # ------------------------------------------------------------------------------------------
    # Candidates
    # ------------------------------------------------------------------------------------------
    def _mutate(self) -> dict[str, float]:
        """The next candidate: the settings as given for the first iteration, then a mutated parent."""
        if self.tune_csv.is_file():
            fitness, values = _read_results(self.tune_csv)
            parent = self._pick_parent(fitness, values)
            candidate = parent * self._scale_factors()
        else:
            candidate = np.array([float(getattr(self.args, key)) for key in self.space])
        bounds = self.space.values()
        return {key: round(float(np.clip(v, b.low, b.high)), 5) for key, v, b in zip(self.space, candidate, bounds)}

    def _pick_parent(self, fitness: np.ndarray, values: np.ndarray) -> np.ndarray:
        """One of the fittest rows, drawn with weight (fitness - lowest fitness among them + 1e-6)."""
        best = np.argsort(-fitness)[: self.mutation.parents]
        weights = fitness[best] - fitness[best].min() + 1e-6
        return values[self.rng.choice(best, p=weights / weights.sum())]

    def _scale_factors(self) -> np.ndarray:
        """A factor per key, at least one of them different from 1 (see the module docstring)."""
        gains = np.array([bound.gain for bound in self.space.values()])
        m = self.mutation
        factors = np.ones(len(gains))
        while np.all(factors == 1):
            mutated = self.rng.random(len(gains)) < m.probability
            step = gains * mutated * self.rng.standard_normal(len(gains)) * self.rng.random() * m.sigma
            factors = (step + 1).clip(*m.factor_range)
        return factors

    # ------------------------------------------------------------------------------------------
    # The search
    # ------------------------------------------------------------------------------------------
    def __call__(self, model: Any = None, iterations: int = 10, cleanup: bool = True) -> dict[str, float]:
        """Run `iterations` trainings; returns the best hyperparameters found (also in best_hyperparameters.yaml)."""
        if not isinstance(iterations, int) or iterations < 1:
            raise ValueError(f"tune iterations={iterations!r} must be a positive int, e.g. iterations=10")
        started = time.time()
        self.tune_dir.mkdir(parents=True, exist_ok=True)
        trainer_class = model._smart_load("trainer") if model is not None else _rtdetr_trainer()
        best_run = None
        for i in range(iterations):
            candidate = self._mutate()
            LOGGER.info(f"{self.prefix}Starting iteration {i + 1}/{iterations} with hyperparameters: {candidate}")
            fitness, run_dir = self._train(trainer_class, candidate)
            self._append(fitness, candidate)
            fitnesses, _ = _read_results(self.tune_csv)
            if fitnesses.argmax() == i:
                best_run = run_dir
                shutil.copytree(run_dir / "weights", self.tune_dir / "weights", dirs_exist_ok=True)
            elif cleanup:
                shutil.rmtree(run_dir / "weights", ignore_errors=True)
            plot_tune_results(self.tune_csv)
            self._write_best(i + 1, iterations, time.time() - started, best_run)
        return yaml.safe_load((self.tune_dir / "best_hyperparameters.yaml").read_text(encoding="utf-8"))

    def _train(self, trainer_class: type, candidate: dict[str, float]) -> tuple[float, Path]:
        """One training with the candidate values; (its best fitness, its run folder).

        A training that fails (a non-finite loss, out of memory, ...) scores 0 and the search goes on;
        a mistake in the settings (ValueError, TypeError, missing file) stops it.
        """
        overrides = {**vars(self.args), **candidate, "mode": "train"}
        overrides.pop("save_dir", None)
        trainer = trainer_class(overrides=overrides, _callbacks=self.callbacks)
        try:
            trainer.train()
        except (ValueError, TypeError, SyntaxError, FileNotFoundError):
            raise
        except Exception as error:  # one failed candidate must not end the search
            LOGGER.warning(f"WARNING ❌️ training failure for hyperparameter tuning iteration: {error}")
            return 0.0, Path(trainer.save_dir)
        return float(trainer.best_fitness or 0.0), Path(trainer.save_dir)

    def _append(self, fitness: float, candidate: dict[str, float]) -> None:
        """One row of tune_results.csv; the header is written with the first."""
        lines = [] if self.tune_csv.is_file() else [",".join(["fitness", *self.space])]
        lines.append(",".join(str(v) for v in [round(fitness, 5), *candidate.values()]))
        with open(self.tune_csv, "a", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")

    def _write_best(self, done: int, iterations: int, seconds: float, best_run: Path | None) -> None:
        """best_hyperparameters.yaml, with a header saying where and when the best fitness was seen."""
        fitness, values = _read_results(self.tune_csv)
        best = int(fitness.argmax())
        header = [
            f"{done}/{iterations} iterations complete ✅ ({seconds:.2f}s)",
            f"Results saved to {self.tune_dir}",
            f"Best fitness={fitness[best]} observed at iteration {best + 1}",
            f"Best fitness model is {best_run}",
            "Best fitness hyperparameters are printed below.",
        ]
        LOGGER.info("\n".join(f"{self.prefix}{line}" for line in header))
        hyperparameters = {key: float(values[best, j]) for j, key in enumerate(self.space)}
        text = "".join(f"# {line}\n" for line in header) + "\n" + yaml.safe_dump(hyperparameters, sort_keys=False)
        (self.tune_dir / "best_hyperparameters.yaml").write_text(text, encoding="utf-8")
        LOGGER.info(yaml.safe_dump(hyperparameters, sort_keys=False))


def _rtdetr_trainer() -> type:
    from ultralytics.models.rtdetr.train import RTDETRTrainer

    return RTDETRTrainer


# ----------------------------------------------------------------------------------------------
# Plots
# ----------------------------------------------------------------------------------------------
def plot_tune_results(csv_file: str | Path, on_plot: Callable[[Path], None] | None = None) -> None:
    """tune_scatter_plots.png (each hyperparameter against fitness) and tune_fitness.png, beside `csv_file`."""
    csv_file = Path(csv_file)
    keys = csv_file.read_text(encoding="utf-8").splitlines()[0].split(",")[1:]
    fitness, values = _read_results(csv_file)
    _scatter_plots(keys, fitness, values, csv_file.with_name("tune_scatter_plots.png"), on_plot)
    _fitness_plot(fitness, csv_file.with_name("tune_fitness.png"), on_plot)


def _scatter_plots(keys: list[str], fitness: np.ndarray, values: np.ndarray, file: Path, on_plot) -> None:
    """One panel per key: its value in every iteration against the fitness, the fittest marked with +."""
    from ultralytics.utils.plotting import _figure, _save

    columns = math.ceil(len(keys) ** 0.5)
    rows = math.ceil(len(keys) / columns)
    fig = _figure(figsize=(columns * 2.5, rows * 2.5), tight_layout=True)
    best = int(fitness.argmax())
    shade = fitness / max(float(fitness.max()), 1e-9)  # darker points are fitter
    for j, key in enumerate(keys):
        ax = fig.add_subplot(rows, columns, j + 1)
        ax.scatter(values[:, j], fitness, c=shade, cmap="viridis", alpha=0.8, edgecolors="none")
        ax.plot(values[best, j], fitness[best], "k+", markersize=15)
        ax.set_title(f"{key} = {values[best, j]:.3g}", fontdict={"size": 9})
        ax.tick_params(axis="both", labelsize=8)
        if j % columns:
            ax.set_yticklabels([])
    _save(fig, file, dpi=200, on_plot=on_plot)
    LOGGER.info(f"Saved {file}")


def _fitness_plot(fitness: np.ndarray, file: Path, on_plot) -> None:
    """Fitness per iteration, with a smoothed line once there are enough points."""
    from scipy.ndimage import gaussian_filter1d

    from ultralytics.utils.plotting import _figure, _save

    fig = _figure(figsize=(10, 6), tight_layout=True)
    ax = fig.add_subplot(1, 1, 1)
    iterations = np.arange(1, len(fitness) + 1)
    ax.plot(iterations, fitness, marker="o", linestyle="none", label="fitness")
    if len(fitness) > 1:
        ax.plot(iterations, gaussian_filter1d(fitness, sigma=3), ":", label="smoothed", linewidth=2)
    ax.set_title("Fitness vs Iteration")
    ax.set_xlabel("Iteration")
    ax.set_ylabel("Fitness")
    ax.grid(True)
    ax.legend()
    _save(fig, file, dpi=200, on_plot=on_plot)
    LOGGER.info(f"Saved {file}")
