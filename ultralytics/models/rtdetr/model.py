"""RT-DETR (Real-Time DEtection TRansformer) behind the common Model interface.

    from ultralytics import RTDETR
    model = RTDETR("rtdetr-l-FocalModulation.yaml")
    model.train(data="shapes.yaml", epochs=3, imgsz=160)
"""

from __future__ import annotations

from pathlib import Path

from ultralytics.engine.model import Model
from ultralytics.nn.tasks import RTDETRDetectionModel


def _detect_engines() -> dict[str, type]:
    """The network and the three engines of RT-DETR detection.

    Imported on call: the trainer, validator and predictor pull in data and plotting code that
    building or loading a model does not need.
    """
    from .predict import RTDETRPredictor
    from .train import RTDETRTrainer
    from .val import RTDETRValidator

    return dict(model=RTDETRDetectionModel, trainer=RTDETRTrainer, validator=RTDETRValidator, predictor=RTDETRPredictor)


class RTDETR(Model):
    """An RT-DETR detector from a model yaml, a checkpoint or an exported file; the task is always 'detect'."""

    def __init__(self, model: str | Path = "rtdetr-l.yaml", task: str | None = None, verbose: bool = False):
        super().__init__(model=model, task="detect", verbose=verbose)  # `task` is accepted for API parity only

    @property
    def task_map(self) -> dict:
        """{'detect': {'model', 'trainer', 'validator', 'predictor': class}}."""
        return {"detect": _detect_engines()}
