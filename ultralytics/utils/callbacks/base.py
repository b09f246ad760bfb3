"""The default (empty) callback for every event that trainers, validators, predictors and exporters emit.

A callback is any callable taking the emitting object (trainer, validator, predictor or exporter)
as its only argument. Users add their own with ``model.add_callback(event, fn)``.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Callable


def _nothing(_emitter: Any) -> None:
    """Placeholder so that every known event has a list to append to."""


# Events in the order a training run emits them, then validation, prediction and export.
_EVENTS = (
    # trainer
    "on_pretrain_routine_start",
    "on_pretrain_routine_end",
    "on_train_start",
    "on_train_epoch_start",
    "on_train_batch_start",
    "optimizer_step",
    "on_before_zero_grad",
    "on_train_batch_end",
    "on_train_epoch_end",
    "on_fit_epoch_end",
    "on_model_save",
    "on_train_end",
    "on_params_update",
    "teardown",
    # validator
    "on_val_start",
    "on_val_batch_start",
    "on_val_batch_end",
    "on_val_end",
    # predictor
    "on_predict_start",
    "on_predict_batch_start",
    "on_predict_batch_end",
    "on_predict_postprocess_end",
    "on_predict_end",
    # exporter
    "on_export_start",
    "on_export_end",
)

default_callbacks: dict[str, list[Callable[[Any], None]]] = {event: [_nothing] for event in _EVENTS}


def get_default_callbacks() -> defaultdict[str, list[Callable[[Any], None]]]:
    """A fresh event -> [callbacks] mapping; unknown events give an empty list instead of a KeyError.

    Each event gets its own list, so adding a callback to one registry never changes another.
    """
    registry: defaultdict[str, list[Callable[[Any], None]]] = defaultdict(list)
    for event, functions in default_callbacks.items():
        registry[event] = list(functions)
    return registry


def add_integration_callbacks(instance: Any) -> None:
    """Hook for third-party loggers (upstream: HUB, TensorBoard, W&B, ...).

    This package ships no integrations, so nothing is added; the function exists so that code
    written against upstream's interface keeps working.
    """
