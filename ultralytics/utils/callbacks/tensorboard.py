"""TensorBoard curves of a training run: each results.csv column as a scalar per epoch, in the run folder.

Active when the `tensorboard` package is installed (pip install tensorboard, or the `logging` extra)
and the `tensorboard` setting is on; `yolo settings tensorboard=False` turns it off. View with

    tensorboard --logdir runs/detect/train

The scalars are the columns of results.csv (losses, metrics, learning rates lr/pg0..2, and the
elapsed `time`) under their results.csv names, with the 1-based epoch as the step. They are read
from the row the trainer has just written, so the curves and results.csv can never disagree.
"""

from __future__ import annotations

import importlib.util
import weakref
from dataclasses import dataclass
from typing import Any, Callable

from ultralytics.utils import LOGGER, colorstr, results_csv

PREFIX = colorstr("TensorBoard: ")


@dataclass
class _RunLog:
    """The event writer of one trainer and the last epoch it has written."""

    writer: Any  # torch.utils.tensorboard.SummaryWriter
    logged_epochs: int = 0


# One writer per trainer; an entry goes when its trainer is garbage-collected.
_RUNS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def tensorboard_setting() -> bool:
    """The `tensorboard` setting of settings.json (`yolo settings tensorboard=False`), on by default as upstream."""
    from ultralytics import utils

    return bool(utils.SETTINGS["tensorboard"])


def _start_writer(trainer: Any) -> None:
    """on_pretrain_routine_start: open an event file in the run folder."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as error:  # tensorboard present but unusable (e.g. a broken install): train without it
        LOGGER.warning(f"{PREFIX}WARNING ⚠️ not logging to TensorBoard: {error}")
        return
    _RUNS[trainer] = _RunLog(SummaryWriter(str(trainer.save_dir)))
    LOGGER.info(f"{PREFIX}Start with 'tensorboard --logdir {trainer.save_dir}', view at http://localhost:6006/")


def _skip_earlier_epochs(trainer: Any) -> None:
    """on_train_start: a resumed run's earlier epochs are already in the event files of its first part."""
    run = _RUNS.get(trainer)
    if run is not None:
        run.logged_epochs = trainer.start_epoch


def _log_new_rows(trainer: Any) -> None:
    """on_fit_epoch_end: write every results.csv row not yet logged, one scalar per column."""
    run = _RUNS.get(trainer)
    if run is None:
        return
    table = results_csv.read(trainer.csv)
    epochs = [int(e) for e in table.pop(results_csv.EPOCH, [])]
    for row, epoch in enumerate(epochs):
        if epoch <= run.logged_epochs:
            continue
        for name, values in table.items():
            run.writer.add_scalar(name, values[row], epoch)
        run.logged_epochs = epoch
    run.writer.flush()


def _close_writer(trainer: Any) -> None:
    """teardown: close the event file."""
    run = _RUNS.pop(trainer, None)
    if run is not None:
        run.writer.close()


def callbacks() -> dict[str, Callable[[Any], None]]:
    """The trainer events this logger handles; empty when tensorboard is missing or switched off."""
    if importlib.util.find_spec("tensorboard") is None or not tensorboard_setting():
        return {}
    return {
        "on_pretrain_routine_start": _start_writer,
        "on_train_start": _skip_earlier_epochs,
        "on_fit_epoch_end": _log_new_rows,
        "teardown": _close_writer,
    }
