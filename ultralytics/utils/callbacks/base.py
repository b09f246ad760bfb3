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


# Loggers that add callbacks to every engine part: each returns {event: callback}, empty when inactive.
# Append your own provider to log elsewhere (it is asked each time an engine part is created).
INTEGRATIONS: list[Callable[[], dict[str, Callable[[Any], None]]]] = []


def _builtin_integrations() -> list[Callable[[], dict[str, Callable[[Any], None]]]]:
    from . import tensorboard  # imported here: it reads the settings, which import this package

    return [tensorboard.callbacks]


def add_integration_callbacks(instance: Any) -> None:
    """Add the callbacks of every active logger (TensorBoard, then INTEGRATIONS) to `instance.callbacks`.

    A callback already registered is not added again: engine parts built by one Model share its
    registry, and each of them calls this.
    """
    for provider in (*_builtin_integrations(), *INTEGRATIONS):
        for event, callback in provider().items():
            registered = instance.callbacks.setdefault(event, [])
            if callback not in registered:
                registered.append(callback)
