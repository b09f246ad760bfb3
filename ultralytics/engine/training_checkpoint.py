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
    resume_state   ours, after upstream's keys (upstream ignores it): what continues the run exactly

`resume_state` holds what the rounded copies above lose or never had (see `exact_state`): the live
model and the EMA in float32, gradients accumulated since the last optimizer step, the optimizer in
float32, the AMP scaler, the random states of python/numpy/torch, the training loader's shuffle
stream and worker seed, whether mosaic was closed, and the loop's counters. A checkpoint without it
(upstream's, or ours from before) resumes as upstream resumes: from the float16 EMA, with fresh
random states. `train_metrics` also counts the epoch's skipped optimizer steps (`skipped_steps`).

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
from ultralytics.utils.torch_utils import de_parallel, rng_states, set_rng_states

_LICENSE = "AGPL-3.0 (https://ultralytics.com/license)"
_DOCS = "https://docs.ultralytics.com"

# Arguments a resumed run may change; every other argument comes from the checkpoint.
RESUME_OVERRIDABLE = ("imgsz", "batch", "device")

_HOW_TO_RESUME = "pass the last.pt of the run to continue, i.e. 'yolo train resume model=path/to/last.pt'"

RESUME_STATE = "resume_state"  # the key of the exact-resume state


def payload(
    epoch: int,
    best_fitness: Any,
    ema: Any,
    optimizer: torch.optim.Optimizer,
    args: Any,
    metrics: dict,
    fitness: Any,
    results: dict,
    resume_state: dict | None = None,
    skipped_steps: int | None = None,
) -> dict:
    """The checkpoint dict of a run at the end of `epoch` (see the module docstring).

    resume_state: from `exact_state`, stored under RESUME_STATE when given.
    skipped_steps: optimizer steps of this epoch dropped for non-finite values, kept in train_metrics.
    """
    counted = {} if skipped_steps is None else {"skipped_steps": skipped_steps}
    ckpt = {
        "epoch": epoch,
        "best_fitness": best_fitness,
        "model": None,
        "ema": fp16_model_copy(ema.ema),
        "updates": ema.updates,
        "optimizer": convert_optimizer_state_dict_to_fp16(deepcopy(optimizer.state_dict())),
        "train_args": vars(args),
        "train_metrics": {**metrics, "fitness": fitness, **counted},
        "train_results": results,
        "date": datetime.now().isoformat(),
        "version": __version__,
        "license": _LICENSE,
        "docs": _DOCS,
    }
    if resume_state is not None:
        ckpt[RESUME_STATE] = resume_state
    return ckpt


def exact_state(
    model: torch.nn.Module,
    ema: Any,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    loader: Any,
    mosaic_closed: bool,
    loop: dict,
) -> dict:
    """Everything beyond upstream's keys that the next epoch depends on (see the module docstring).

    Reads state only: nothing here draws a random number. `loop` holds the trainer's counters.
    The tensors are serialised at once by `write`, so they are not copied.
    """
    network = de_parallel(model)
    return {
        "model": _float32_state(network),
        "ema": _float32_state(ema.ema),
        "grads": {name: p.grad for name, p in network.named_parameters() if p.grad is not None},
        "optimizer": optimizer.state_dict(),
        "scaler": scaler.state_dict(),
        "rng": rng_states(),
        "loader": loader.state_dict() if hasattr(loader, "state_dict") else {},
        "mosaic_closed": bool(mosaic_closed),
        "loop": loop,
    }


def _float32_state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """state_dict with floating-point tensors in float32 (integer buffers such as counters unchanged)."""
    return {k: v.detach().float() if v.is_floating_point() else v for k, v in module.state_dict().items()}


def restore_exact(
    state: dict,
    model: torch.nn.Module,
    ema: Any,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
) -> None:
    """Put the float32 weights, the optimizer and the scaler of `state` (from `exact_state`) in place.

    The loader, the gradients and the random states are put back by the trainer, each at the moment
    the uninterrupted run had them (`restore_gradients`, `set_rng_states`).
    """
    de_parallel(model).load_state_dict(state["model"])
    if ema:
        ema.ema.load_state_dict(state["ema"])
    optimizer.load_state_dict(state["optimizer"])
    scaler.load_state_dict(state["scaler"])


def restore_gradients(model: torch.nn.Module, grads: dict[str, torch.Tensor]) -> None:
    """Give the parameters the gradients accumulated before the interruption (not yet stepped)."""
    for name, p in de_parallel(model).named_parameters():
        if name in grads:
            p.grad = grads[name].to(device=p.device, dtype=p.dtype).clone()


def restore_random_states(state: dict) -> None:
    """python, numpy and torch random states as the interrupted run left them at its epoch end."""
    set_rng_states(state["rng"])


def write(ckpt: dict, targets: list[Path]) -> None:
    """Serialise `ckpt` once and write it atomically to every path in `targets`."""
    buffer = io.BytesIO()
    torch.save(ckpt, buffer)
    data = buffer.getvalue()
    for target in targets:
        write_atomic(target, data)


def read_train_args(last: Path) -> dict:
    """The `train_args` of a training checkpoint, as a new dict; a clear error for anything else."""
    return read_resume_point(last)[0]


def read_resume_point(last: Path) -> tuple[dict, int]:
    """(`train_args` as a new dict, the last finished 0-based epoch; -1 for a finished, stripped run)."""
    try:
        _, ckpt = attempt_load_one_weight(last)
        return dict(ckpt["train_args"]), int(ckpt.get("epoch", -1))
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
