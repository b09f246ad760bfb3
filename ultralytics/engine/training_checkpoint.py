"""The training checkpoint (last.pt, best.pt, epochN.pt): what it holds, and how a run resumes from one.

Layout (upstream 8.3.50's, which its tools read), in this key order:

    epoch          0-based epoch just finished
    best_fitness   best validation fitness so far
    model          None: the EMA below is the model; resume rebuilds the live one from it
    ema            the EMA model in float16
    updates        EMA update count
    optimizer      optimizer state dict, float32 tensors halved
    train_args     the run's arguments (dict)
    train_metrics  this epoch's validation metrics plus "fitness"
    train_results  results.csv as {column: [value per epoch]}
    date, version, license, docs

Files are read and written only through `ultralytics.nn.checkpoints`.
"""

from __future__ import annotations

import io
from copy import deepcopy
from datetime import datetime
from pathlib import Path
from typing import Any

import torch

from ultralytics import __version__
from ultralytics.nn.checkpoints import (
    attempt_load_one_weight,
    convert_optimizer_state_dict_to_fp16,
    fp16_model_copy,
    write_atomic,
)
from ultralytics.utils.checks import check_file
from ultralytics.utils.files import get_latest_run

_LICENSE = "AGPL-3.0 (https://ultralytics.com/license)"
_DOCS = "https://docs.ultralytics.com"

# Arguments a resumed run may change; every other argument comes from the checkpoint.
RESUME_OVERRIDABLE = ("imgsz", "batch", "device")

_HOW_TO_RESUME = "pass the last.pt of the run to continue, i.e. 'yolo train resume model=path/to/last.pt'"


def payload(
    epoch: int,
    best_fitness: Any,
    ema: Any,
    optimizer: torch.optim.Optimizer,
    args: Any,
    metrics: dict,
    fitness: Any,
    results: dict,
) -> dict:
    """The checkpoint dict of a run at the end of `epoch` (see the module docstring)."""
    return {
        "epoch": epoch,
        "best_fitness": best_fitness,
        "model": None,
        "ema": fp16_model_copy(ema.ema),
        "updates": ema.updates,
        "optimizer": convert_optimizer_state_dict_to_fp16(deepcopy(optimizer.state_dict())),
        "train_args": vars(args),
        "train_metrics": {**metrics, "fitness": fitness},
        "train_results": results,
        "date": datetime.now().isoformat(),
        "version": __version__,
        "license": _LICENSE,
        "docs": _DOCS,
    }


def write(ckpt: dict, targets: list[Path]) -> None:
    """Serialise `ckpt` once and write it atomically to every path in `targets`."""
    buffer = io.BytesIO()
    torch.save(ckpt, buffer)
    data = buffer.getvalue()
    for target in targets:
        write_atomic(target, data)


def read_train_args(last: Path) -> dict:
    """The `train_args` of a training checkpoint, as a new dict; a clear error for anything else."""
    try:
        _, ckpt = attempt_load_one_weight(last)
        return dict(ckpt["train_args"])
    except (FileNotFoundError, KeyError, TypeError, OSError, RuntimeError) as e:
        raise FileNotFoundError(f"Resume checkpoint '{last}' is not a readable training checkpoint ({e}); "
                                f"{_HOW_TO_RESUME}") from e


def resolve_resume(resume: Any, runs_root: str) -> Path:
    """The checkpoint `resume=` points at: the given path, or for `resume=True` the newest last.pt under `runs_root`."""
    if isinstance(resume, (str, Path)):
        if not Path(resume).exists():
            raise FileNotFoundError(f"resume='{resume}' does not exist; {_HOW_TO_RESUME}, or resume=True for the newest run")
        return Path(check_file(resume))
    newest = get_latest_run(runs_root)
    if not newest:
        raise FileNotFoundError(f"resume=True found no last.pt under '{Path(runs_root).resolve()}'; {_HOW_TO_RESUME}")
    return Path(newest)


def restore(ckpt: dict, optimizer: torch.optim.Optimizer, ema: Any) -> float:
    """Load the optimizer and EMA state of `ckpt` in place; returns the best fitness it recorded.

    A checkpoint without an optimizer (an inference one) restores nothing and reports fitness 0.
    """
    best_fitness = 0.0
    if ckpt.get("optimizer") is not None:
        optimizer.load_state_dict(ckpt["optimizer"])
        best_fitness = ckpt["best_fitness"]
    if ema and ckpt.get("ema"):
        ema.ema.load_state_dict(ckpt["ema"].float().state_dict())
        ema.updates = ckpt["updates"]
    return best_fitness
