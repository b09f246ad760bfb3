"""results.csv, the per-epoch table of a training run: written, read, trimmed and plotted only through here.

Layout, as upstream 8.3.50 writes it: a header row, then one row per finished epoch. The first column
is ``epoch`` (1-based), the second ``time`` (seconds since the run started, at the end of that epoch),
then the losses, metrics and learning rates by name. Values are written with 5 significant digits.
Files written before the ``time`` column existed have no such column; every reader here accepts both.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Callable, Mapping

import numpy as np

EPOCH = "epoch"
TIME = "time"
INDEX_COLUMNS = (EPOCH, TIME)  # bookkeeping columns: not losses or metrics, never plotted


def _rows(path: Path) -> list[list[str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return [row for row in csv.reader(f) if row]


def _number(text: str) -> float:
    return float(text) if text.strip() else math.nan


def read_table(path: str | Path) -> tuple[list[str], np.ndarray]:
    """The stripped header and a (epochs, columns) float64 array; empty cells read as NaN.

    Raises FileNotFoundError for a missing file and ValueError for one without a header row.
    """
    rows = _rows(Path(path))
    if not rows:
        raise ValueError(f"{path} is empty; a results.csv needs a header row and at least one epoch row")
    header = [name.strip() for name in rows[0]]
    values = np.array([[_number(v) for v in row] for row in rows[1:]], dtype=np.float64)
    return header, values.reshape(len(rows) - 1, len(header))


def read(path: str | Path) -> dict[str, list[float]]:
    """{column: [value per epoch]}; {} when the file is missing or empty (a run that has not finished an epoch)."""
    path = Path(path)
    if not path.is_file() or not _rows(path):
        return {}
    header, values = read_table(path)
    return {name: values[:, j].tolist() for j, name in enumerate(header)}


def plotted_columns(header: list[str]) -> list[int]:
    """Indices of the columns worth a panel in results.png: everything but epoch and time."""
    return [j for j, name in enumerate(header) if name not in INDEX_COLUMNS]


def append(path: str | Path, epoch: int, metrics: Mapping[str, float], elapsed: float | None = None) -> None:
    """Add the row of `epoch` (1-based); a new file gets the header first.

    elapsed: seconds since the run started; when given, it fills the ``time`` column after ``epoch``.
    """
    path = Path(path)
    names = [EPOCH] + ([TIME] if elapsed is not None else []) + list(metrics)
    values = [epoch] + ([elapsed] if elapsed is not None else []) + [float(v) for v in metrics.values()]
    lines = [] if path.exists() and path.stat().st_size else [",".join(names)]
    lines.append(",".join(f"{v:.5g}" for v in values))
    with open(path, "a", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")


def trim(path: str | Path, last_epoch: int) -> int:
    """Keep the header and the rows of epochs up to `last_epoch`; returns how many rows were dropped.

    A resumed run starts after the epoch its checkpoint holds; rows written after that checkpoint
    (an interruption between the row and the checkpoint) would otherwise appear twice.
    """
    path = Path(path)
    if not path.is_file():
        return 0
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    kept = lines[:1] + [line for line in lines[1:] if line.strip() and float(line.split(",")[0]) <= last_epoch]
    if len(kept) != len(lines):
        path.write_text("".join(kept), encoding="utf-8")
    return len(lines) - len(kept)


def plot(path: str | Path, on_plot: Callable[[Path], None] | None = None) -> None:
    """Draw results.png beside `path` (see `ultralytics.utils.plotting.plot_results`)."""
    from ultralytics.utils.plotting import plot_results

    plot_results(file=path, on_plot=on_plot)


def elapsed(path: str | Path) -> float:
    """The ``time`` of the last row: seconds the run had spent when it was interrupted.

    0.0 for a missing file, one without rows, or one written before the ``time`` column existed.
    """
    times = read(path).get(TIME) or [0.0]
    return times[-1] if math.isfinite(times[-1]) else 0.0
