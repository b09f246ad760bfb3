"""Model families shipped here: RT-DETR (including the article's FocalModulation variants)."""

from .rtdetr import RTDETR

__all__ = ("RTDETR",)
