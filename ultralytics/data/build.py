"""Dataset and dataloader construction for training and validation."""

from __future__ import annotations

import os
import random
from collections import deque
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

# Passes whose start the batch sampler remembers: prefetching workers run at most a few passes ahead.
_REMEMBERED_PASSES = 8


class _Endless:
    """A batch sampler that starts over whenever it runs out, so one loader iterator lasts all training.

    Each pass over `batches` is one epoch. For every recent pass it remembers the shuffle generator's
    state before the pass drew anything, and how many batches came before it: from these a resumed
    run replays the index draws up to any position (no data is loaded) and continues the stream there.
    """

    def __init__(self, batches, generator: torch.Generator | None = None) -> None:
        self.batches = batches
        self.generator = generator
        self.pulled = 0  # batches this stream has handed out (to the loader's iterator, prefetch included)
        self._starts: deque[tuple[int, torch.Tensor]] = deque(maxlen=_REMEMBERED_PASSES)
        self._prepared: Iterator | None = None  # a replayed stream the next iterator takes over

    def __iter__(self) -> Iterator:
        if self._prepared is not None:
            stream, self._prepared = self._prepared, None
            return stream
        self.pulled, self._starts = 0, deque(maxlen=_REMEMBERED_PASSES)
        return self._stream()

    def _stream(self) -> Iterator:
        while True:
            if self.generator is not None:
                self._starts.append((self.pulled, self.generator.get_state()))  # reading it draws nothing
            for batch in self.batches:
                self.pulled += 1
                yield batch

    def position(self, consumed: int) -> tuple[torch.Tensor, int] | None:
        """(generator state at the start of the pass holding batch `consumed`, batches of it before that)."""
        for start, state in reversed(self._starts):
            if start <= consumed:
                return state, consumed - start
        return None

    def replay(self, pass_start: torch.Tensor, served: int) -> None:
        """Redo the index draws of a pass up to `served` batches; the next iterator continues from there."""
        self.generator.set_state(pass_start)
        self.pulled, self._starts = 0, deque(maxlen=_REMEMBERED_PASSES)
        stream = self._stream()
        for _ in range(served):
            next(stream)
        self._prepared = stream


class InfiniteDataLoader(DataLoader):
    """DataLoader whose worker processes persist across epochs.

    Iterating gives len(self) batches (one epoch) from a single never-ending iterator; `reset()`
    starts a new one, which is needed after the dataset's transforms change (close_mosaic).
    Creating an iterator draws the workers' base seed from the loader's generator, so the number
    of iterators made is part of a seeded run's random stream. `state_dict()` / `load_state_dict()`
    carry that stream (shuffle order and worker seeds) across an interrupted run, at epoch ends.
    """

    def __init__(self, *args, **kwargs) -> None:
        DataLoader.__init__(self, *args, **kwargs)
        # DataLoader refuses a new batch_sampler once built; object.__setattr__ goes around that check.
        object.__setattr__(self, "batch_sampler", _Endless(self.batch_sampler, self.generator))
        self.iterator = self._new_iterator()

    def __len__(self) -> int:
        """Batches per epoch (the wrapped batch sampler's length)."""
        return len(self.batch_sampler.batches)

    def __iter__(self) -> Iterator:
        # self.iterator is looked up per batch, so a reset() before the first batch takes effect.
        for _ in range(len(self)):
            batch = next(self.iterator)
            self._consumed += 1
            yield batch

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
        self.iterator = self._new_iterator()

    def _new_iterator(self) -> Iterator:
        # The generator state before the iterator draws its workers' base seed, so that a resumed run
        # can draw the same seed again.
        self._seed_state = self.generator.get_state() if self.generator is not None else None
        self._consumed = 0  # batches the training loop took from this iterator's stream
        return DataLoader._get_iterator(self)

    def state_dict(self) -> dict:
        """Where the shuffle stream and the worker seeds stand ({} without a generator).

        The position is that of the batches the loop consumed; workers may have prefetched further.
        """
        found = self.batch_sampler.position(self._consumed) if self.generator is not None else None
        if found is None:
            return {}
        pass_start, served = found
        return {
            "pass_start": pass_start,
            "served": served,
            "seed_state": self._seed_state,
            "worker_base_seed": int(self.iterator._base_seed),
            "mosaic_buffer": list(getattr(self.dataset, "buffer", [])),
        }

    def load_state_dict(self, state: dict) -> None:
        """Continue the stream `state` describes: same worker base seed, same next shuffles."""
        if not state or self.generator is None:
            return
        self.batch_sampler.replay(state["pass_start"], state["served"])
        after_replay = self.generator.get_state()
        self.generator.set_state(state["seed_state"])
        self.reset()  # takes the replayed stream over and draws the saved base seed again
        self.generator.set_state(after_replay)
        self._consumed = state["served"]
        _refill_buffer(self.dataset, state.get("mosaic_buffer", []))


def _refill_buffer(dataset: Dataset, indices: list[int]) -> None:
    """Give `dataset` the mosaic buffer an interrupted run had: partners are drawn from it.

    Images are read again (that draws no random numbers) and join the buffer in the saved order.
    With workers, each worker keeps a buffer of its own, which the main process cannot restore.
    """
    if not hasattr(dataset, "buffer"):
        return
    dataset.buffer.clear()
    for i in indices:
        if dataset.ims[i] is None:
            dataset.load_image(i)  # reads image i and appends it to the buffer
        else:
            dataset.buffer.append(i)

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
