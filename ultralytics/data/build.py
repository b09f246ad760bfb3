"""Dataset and dataloader construction for training and validation."""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, distributed

from ultralytics.data.dataset import YOLODataset
from ultralytics.data.utils import PIN_MEMORY
from ultralytics.utils import RANK, colorstr

_SHUFFLE_SEED = 6148914691236517205  # upstream's base seed for the shuffle generator (plus RANK)


class _RepeatSampler:
    """Yield from the wrapped sampler forever, so the loader's workers are never torn down."""

    def __init__(self, sampler) -> None:
        self.sampler = sampler

    def __iter__(self) -> Iterator:
        while True:
            yield from iter(self.sampler)


class InfiniteDataLoader(DataLoader):
    """DataLoader whose worker processes persist across epochs.

    Iterating gives len(self) batches (one epoch) from a single never-ending iterator; `reset()`
    starts a new one, which is needed after the dataset's transforms change (close_mosaic).
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # DataLoader forbids setting batch_sampler after construction; bypass its __setattr__.
        object.__setattr__(self, "batch_sampler", _RepeatSampler(self.batch_sampler))
        self.iterator = super().__iter__()

    def __len__(self) -> int:
        return len(self.batch_sampler.sampler)

    def __iter__(self) -> Iterator:
        for _ in range(len(self)):
            yield next(self.iterator)

    def __del__(self) -> None:
        iterator = self.__dict__.get("iterator")
        if iterator is None or not hasattr(iterator, "_workers"):
            return
        for w in iterator._workers:  # stop worker processes promptly instead of at interpreter exit
            if w.is_alive():
                w.terminate()
        iterator._shutdown_workers()

    def reset(self) -> None:
        self.iterator = self._get_iterator()


def seed_worker(worker_id: int) -> None:
    """Seed numpy and random in a worker from torch's per-worker seed (which the loader derives)."""
    worker_seed = torch.initial_seed() % 2**32
    np.random.seed(worker_seed)
    random.seed(worker_seed)


def build_yolo_dataset(
    cfg: Any,
    img_path: str | Path | Sequence[str | Path],
    batch: int,
    data: dict,
    mode: str = "train",
    rect: bool = False,
    stride: int = 32,
    multi_modal: bool = False,
) -> YOLODataset:
    """YOLODataset for `mode` ('train' augments and uses cfg.fraction; 'val' does neither)."""
    if multi_modal:
        raise ValueError("build_yolo_dataset(multi_modal=True) is not supported; this package trains detectors only")
    return YOLODataset(
        img_path=img_path,
        imgsz=cfg.imgsz,
        batch_size=batch,
        augment=mode == "train",
        hyp=cfg,
        rect=cfg.rect or rect,
        cache=cfg.cache or None,
        single_cls=cfg.single_cls or False,
        stride=int(stride),
        pad=0.0 if mode == "train" else 0.5,
        prefix=colorstr(f"{mode}: "),
        task=cfg.task,
        classes=cfg.classes,
        data=data,
        fraction=cfg.fraction if mode == "train" else 1.0,
    )


def build_dataloader(
    dataset: Dataset,
    batch: int,
    workers: int,
    shuffle: bool = True,
    rank: int = -1,
) -> InfiniteDataLoader:
    """InfiniteDataLoader with seeded workers and shuffling.

    Workers are capped by the CPUs per CUDA device; under DDP (rank != -1) a DistributedSampler
    splits the data and does the shuffling. Memory is pinned only when CUDA is available.
    """
    if batch < 1:
        raise ValueError(f"batch must be a positive integer, got {batch}")
    if workers < 0:
        raise ValueError(f"workers must be >= 0, got {workers}")
    batch = min(batch, len(dataset))
    nd = torch.cuda.device_count()
    nw = min((os.cpu_count() or 1) // max(nd, 1), workers)
    sampler = None if rank == -1 else distributed.DistributedSampler(dataset, shuffle=shuffle)
    generator = torch.Generator()
    generator.manual_seed(_SHUFFLE_SEED + RANK)
    return InfiniteDataLoader(
        dataset=dataset,
        batch_size=batch,
        shuffle=shuffle and sampler is None,
        num_workers=nw,
        sampler=sampler,
        pin_memory=PIN_MEMORY and torch.cuda.is_available(),
        collate_fn=getattr(dataset, "collate_fn", None),
        worker_init_fn=seed_worker,
        generator=generator,
    )
