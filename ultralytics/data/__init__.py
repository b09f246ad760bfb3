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
)
