"""RT-DETR: model wrapper, trainer, validator and predictor."""

from .model import RTDETR

__all__ = ("RTDETR",)
