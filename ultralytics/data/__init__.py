"""Detection datasets, augmentations and dataloaders (``load_inference_source`` lives in loaders.py)."""

from .base import BaseDataset
from .build import InfiniteDataLoader, build_dataloader, build_yolo_dataset, seed_worker
from .dataset import RTDETRDataset, YOLODataset
from .shapes import SYNTHETIC_GENERATORS, generate_shapes_dataset
from .utils import check_det_dataset

__all__ = (
    "BaseDataset",
    "YOLODataset",
    "RTDETRDataset",
    "InfiniteDataLoader",
    "build_dataloader",
    "build_yolo_dataset",
    "seed_worker",
    "check_det_dataset",
    "generate_shapes_dataset",
    "SYNTHETIC_GENERATORS",
    "load_inference_source",
)


def __getattr__(name: str):
    # Upstream exports load_inference_source here; it lives in loaders.py (prediction) and is
    # imported on first use so that training never depends on the prediction code.
    if name == "load_inference_source":
        from .loaders import load_inference_source

        return load_inference_source
    raise AttributeError(f"module 'ultralytics.data' has no attribute '{name}'")
