"""Dataset and dataloader construction for training and validation."""

from __future__ import annotations

import os
import random
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from ultralytics.data.dataset import YOLODataset
from ultralytics.data.utils import PIN_MEMORY
from ultralytics.utils import RANK, colorstr
from ultralytics.utils.dist import ShardSampler

_SHUFFLE_SEED = 6148914691236517205  # upstream's base seed for the shuffle generator (plus RANK)


class _Endless:
    """A batch sampler that starts over whenever it runs out, so one loader iterator lasts all training."""

    def __init__(self, batches) -> None:
        self.batches = batches

    def __iter__(self) -> Iterator:
        while True:
            yield from self.batches


class InfiniteDataLoader(DataLoader):
    """DataLoader whose worker processes persist across epochs.

    Iterating gives len(self) batches (one epoch) from a single never-ending iterator; `reset()`
    starts a new one, which is needed after the dataset's transforms change (close_mosaic).
    Creating an iterator draws the workers' base seed from the loader's generator, so the number
    of iterators made is part of a seeded run's random stream.
    """

    def __init__(self, *args, **kwargs) -> None:
        DataLoader.__init__(self, *args, **kwargs)
        # DataLoader refuses a new batch_sampler once built; object.__setattr__ goes around that check.
        object.__setattr__(self, "batch_sampler", _Endless(self.batch_sampler))
        self.iterator = DataLoader.__iter__(self)

    def __len__(self) -> int:
        """Batches per epoch (the wrapped batch sampler's length)."""
        return len(self.batch_sampler.batches)

    def __iter__(self) -> Iterator:
        # self.iterator is looked up per batch, so a reset() before the first batch takes effect.
        return (next(self.iterator) for _ in range(len(self)))

    def __del__(self) -> None:
        """Stop worker processes now rather than at interpreter exit."""
        running = self.__dict__.get("iterator")
        workers = getattr(running, "_workers", None)
        if workers is None:
            return
        for proc in workers:
            if proc.is_alive():
                proc.terminate()
        running._shutdown_workers()

    def reset(self) -> None:
        """Start a fresh iterator (and fresh workers) so that they see the dataset's current transforms."""
        self.iterator = self._get_iterator()


def seed_worker(worker_id: int) -> None:
    """Seed numpy and random in a worker from torch's per-worker seed (which the loader derives)."""
    seed = torch.initial_seed() % (1 << 32)  # numpy accepts 32-bit seeds only
    random.seed(seed)
    np.random.seed(seed)


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
    training = mode == "train"
    return YOLODataset(
        img_path=img_path,
        imgsz=cfg.imgsz,
        batch_size=batch,
        augment=training,
        hyp=cfg,
        rect=bool(cfg.rect or rect),
        cache=cfg.cache or None,
        single_cls=bool(cfg.single_cls),
        stride=int(stride),
        pad=0.0 if training else 0.5,  # val batches get half a stride of slack around rect shapes
        prefix=colorstr(f"{mode}: "),
        task=cfg.task,
        classes=cfg.classes,
        data=data,
        fraction=cfg.fraction if training else 1.0,
    )


def _worker_count(requested: int) -> int:
    """requested, capped by the CPUs available to each CUDA device (all CPUs without CUDA)."""
    devices = max(torch.cuda.device_count(), 1)
    return min((os.cpu_count() or 1) // devices, requested)


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
    splitter = ShardSampler(dataset, shuffle=shuffle) if rank != -1 else None
    order = torch.Generator()
    order.manual_seed(_SHUFFLE_SEED + RANK)  # same shuffles on every run of a rank
    return InfiniteDataLoader(
        dataset=dataset,
        batch_size=min(batch, len(dataset)),
        shuffle=shuffle if splitter is None else False,
        num_workers=_worker_count(workers),
        sampler=splitter,
        pin_memory=PIN_MEMORY and torch.cuda.is_available(),
        collate_fn=getattr(dataset, "collate_fn", None),
        worker_init_fn=seed_worker,
        generator=order,
    )


def __getattr__(name: str):
    # Upstream's scripts import load_inference_source from here; it lives in loaders.py with the other
    # inference sources and is imported on first use, as in ultralytics.data.
    if name == "load_inference_source":
        from ultralytics.data.loaders import load_inference_source

        return load_inference_source
    raise AttributeError(f"module 'ultralytics.data.build' has no attribute '{name}'")
