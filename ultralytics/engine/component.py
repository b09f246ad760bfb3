"""The set-up every engine part shares: resolved arguments and the callback registry.

`BaseTrainer`, `BaseValidator`, `BasePredictor` and `Exporter` all start the same way: merge the
defaults with the caller's overrides into `self.args`, take the caller's callback registry (or a
fresh one) and let integrations add theirs. They inherit that, and the three callback methods,
from `EngineComponent` instead of each keeping its own copy.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from ultralytics.cfg import get_cfg
from ultralytics.utils import DEFAULT_CFG, RANK, callbacks


class EngineComponent:
    """Arguments plus named events; `callback(component)` runs for each event the component emits."""

    args: Any
    callbacks: dict[str, list[Callable[[Any], None]]]

    def _configure(
        self,
        cfg: str | Path | dict | Any = DEFAULT_CFG,
        overrides: dict | None = None,
        _callbacks: dict | None = None,
        integrations: bool = True,
    ) -> None:
        """Resolve `self.args` from `cfg` and `overrides`, and set up `self.callbacks`.

        integrations: let third-party loggers register; only the main process (rank -1 or 0) does.
        """
        self.args = get_cfg(cfg, overrides)
        self.callbacks = _callbacks or callbacks.get_default_callbacks()
        if integrations and RANK in {-1, 0}:
            callbacks.add_integration_callbacks(self)

    def add_callback(self, event: str, callback: Callable) -> None:
        """Run `callback(self)` on `event`, after those already registered."""
        self.callbacks[event].append(callback)

    def set_callback(self, event: str, callback: Callable) -> None:
        """Make `callback` the only one run on `event`."""
        self.callbacks[event] = [callback]

    def run_callbacks(self, event: str) -> None:
        """Call every callback registered for `event`, in registration order."""
        for callback in self.callbacks.get(event, []):
            callback(self)
