"""BaseDataset: image discovery, loading, optional caching and rectangular batching."""

from __future__ import annotations

import math
import os
import random
import shutil
from collections.abc import Sequence
from copy import deepcopy
from multiprocessing.pool import ThreadPool
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import psutil
from torch.utils.data import Dataset

from ultralytics.data.utils import FORMATS_HELP_MSG, IMG_FORMATS
from ultralytics.utils import DEFAULT_CFG, LOGGER, NUM_THREADS, TQDM

CACHE_MODES = ("ram", "disk")
_GIB = 1 << 30
_NO_CACHE = {"false", "none", ""}


def _read_image_list(txt: Path) -> list[str]:
    """Image paths listed one per line; relative lines are taken relative to the list's folder."""
    entries = (Path(line.strip()) for line in txt.read_text(encoding="utf-8").splitlines() if line.strip())
    return [str(p if p.is_absolute() else (txt.parent / p).resolve()) for p in entries]


def _split_entry_files(entry: Path, prefix: str) -> list[str]:
    """Candidate files of one split entry: a folder (searched recursively), a .txt list or a file."""
    if entry.is_dir():
        return [str(x) for x in entry.rglob("*.*")]
    if entry.is_file():
        return _read_image_list(entry) if entry.suffix == ".txt" else [str(entry)]
    raise FileNotFoundError(
        f"{prefix}{entry} does not exist; a split must be a folder of images, a .txt file listing image paths, "
        "or a list of those"
    )


def _cache_mode(cache: bool | str | None, prefix: str) -> str | None:
    """The `cache` argument as 'ram', 'disk' or None."""
    if cache is True:
        return "ram"
    if cache is None or cache is False:
        return None
    word = cache.lower() if isinstance(cache, str) else None
    if word in CACHE_MODES:
        return word
    if word in _NO_CACHE:
        return None
    raise ValueError(f"{prefix}cache={cache!r} is not valid; use True/'ram', 'disk' or False")


def _batch_shape(aspects: np.ndarray) -> list[float]:
    """(h, w) of a batch relative to imgsz: the widest or tallest image sets it; mixed batches stay square."""
    lo, hi = aspects.min(), aspects.max()
    if hi < 1:
        return [hi, 1]
    if lo > 1:
        return [1, 1 / lo]
    return [1, 1]


class BaseDataset(Dataset):
    """Images and labels of one split, with loading, buffering for mosaic, caching and rect batching.

    Subclasses provide get_labels() (a list of dicts with im_file, shape, cls, bboxes, ...) and
    build_transforms(hyp). Items are whatever the transforms return for
    get_image_and_label(index).
    """

    def __init__(
        self,
        img_path: str | Path | Sequence[str | Path],
        imgsz: int = 640,
        cache: bool | str = False,
        augment: bool = True,
        hyp: Any = DEFAULT_CFG,
        prefix: str = "",
        rect: bool = False,
        batch_size: int | None = 16,
        stride: int = 32,
        pad: float = 0.5,
        single_cls: bool = False,
        classes: list[int] | None = None,
        fraction: float = 1.0,
    ) -> None:
        super().__init__()
        if not isinstance(imgsz, int) or imgsz < 1:
            raise ValueError(f"{prefix}imgsz must be a positive integer for datasets, got {imgsz!r}")
        if not 0 < fraction <= 1:
            raise ValueError(f"{prefix}fraction must be in (0, 1], got {fraction}")
        self.img_path, self.imgsz, self.prefix = img_path, imgsz, prefix
        self.augment, self.single_cls, self.fraction = augment, single_cls, fraction

        # 1. files and labels
        self.im_files = self.get_img_files(img_path)
        self.labels = self.get_labels()
        self.update_labels(include_class=classes)
        self.ni = len(self.labels)

        # 2. batching (rect sorts the images, so it must come before the per-image slots)
        self.rect, self.stride, self.pad = rect, stride, pad
        self.batch_size = batch_size if batch_size is not None else 16  # val callers may pass None
        if rect:
            if augment:
                LOGGER.warning(f"{prefix}WARNING ⚠️ rect=True turns mosaic and mixup off for this dataset")
            self.set_rectangle()

        # 3. image slots, the mosaic buffer of recently loaded indices, optional cache
        self.buffer: list[int] = []
        self.max_buffer_length = min(self.ni, self.batch_size * 8, 1000) if augment else 0
        self.ims: list[np.ndarray | None] = [None] * self.ni
        self.im_hw0: list[tuple[int, int] | None] = [None] * self.ni
        self.im_hw: list[tuple[int, int] | None] = [None] * self.ni
        self.npy_files = [Path(f).with_suffix(".npy") for f in self.im_files]
        self.cache = self._usable_cache(_cache_mode(cache, prefix))
        if self.cache:
            self.cache_images()

        # 4. transforms
        self.transforms = self.build_transforms(hyp=hyp)

    def _usable_cache(self, mode: str | None) -> str | None:
        """mode, or None when the images would not fit (in RAM or on disk)."""
        fits = {"ram": self.check_cache_ram, "disk": self.check_cache_disk}
        return mode if mode is not None and fits[mode]() else None

    def get_img_files(self, img_path: str | Path | Sequence[str | Path]) -> list[str]:
        """Image files under folders, listed in .txt files, or given directly; sorted."""
        entries = img_path if isinstance(img_path, (list, tuple)) else [img_path]
        found = [f for e in entries for f in _split_entry_files(Path(e), self.prefix)]
        images = sorted(f for f in found if f.rsplit(".", 1)[-1].lower() in IMG_FORMATS)
        if not images:
            raise FileNotFoundError(f"{self.prefix}No images found in {img_path}. {FORMATS_HELP_MSG}")
        if self.fraction < 1:
            images = images[: max(1, round(len(images) * self.fraction))]
        return images

    def update_labels(self, include_class: list[int] | None) -> None:
        """Keep only boxes of include_class (when given) and collapse classes with single_cls."""
        wanted = None if include_class is None else np.array(include_class).reshape(1, -1)
        for label in self.labels:
            if wanted is not None:
                rows = (label["cls"] == wanted).any(1)
                label["cls"], label["bboxes"] = label["cls"][rows], label["bboxes"][rows]
            if self.single_cls:
                label["cls"][:, 0] = 0

    # ------------------------------------------------------------------ image loading

    def _read_from_disk(self, i: int) -> np.ndarray:
        """Image i as stored: its .npy copy when one was cached, else the decoded image file."""
        npy, path = self.npy_files[i], self.im_files[i]
        im = None
        if npy.exists():
            try:
                im = np.load(npy)
            except (OSError, ValueError) as e:
                LOGGER.warning(f"{self.prefix}WARNING ⚠️ Deleting unreadable cached image {npy}: {e}")
                npy.unlink(missing_ok=True)
        if im is None:
            im = cv2.imread(path)
        if im is None:
            raise FileNotFoundError(f"{self.prefix}Image not found or unreadable: {path}")
        return im

    def _fit(self, im: np.ndarray, rect_mode: bool) -> np.ndarray:
        """Resize to the training size: long side imgsz (rect_mode) or a stretched imgsz square."""
        h0, w0 = im.shape[:2]
        side = self.imgsz
        if not rect_mode:
            return im if h0 == w0 == side else cv2.resize(im, (side, side), interpolation=cv2.INTER_LINEAR)
        r = side / max(h0, w0)
        if r == 1:
            return im
        size = (min(math.ceil(w0 * r), side), min(math.ceil(h0 * r), side))
        return cv2.resize(im, size, interpolation=cv2.INTER_LINEAR)

    def _remember(self, i: int, im: np.ndarray, hw0: tuple[int, int]) -> None:
        """Keep image i in memory for mosaic partners; the oldest one leaves the buffer when it is full."""
        self.ims[i], self.im_hw0[i], self.im_hw[i] = im, hw0, im.shape[:2]
        self.buffer.append(i)
        if 1 < len(self.buffer) >= self.max_buffer_length:
            oldest = self.buffer.pop(0)
            if self.cache != "ram":  # ram-cached images stay; others are dropped from memory
                self.ims[oldest] = self.im_hw0[oldest] = self.im_hw[oldest] = None

    def load_image(self, i: int, rect_mode: bool = True) -> tuple[np.ndarray, tuple[int, int], tuple[int, int]]:
        """Image i as BGR uint8 with (h0, w0) and the resized (h, w).

        rect_mode keeps the aspect ratio (long side = imgsz); otherwise the image is stretched to
        imgsz x imgsz.
        """
        if self.ims[i] is not None:
            return self.ims[i], self.im_hw0[i], self.im_hw[i]
        raw = self._read_from_disk(i)
        hw0 = raw.shape[:2]
        im = self._fit(raw, rect_mode)
        if self.augment:
            self._remember(i, im, hw0)
        return im, hw0, im.shape[:2]

    # ------------------------------------------------------------------ caching

    def cache_images(self) -> None:
        """Load every image into RAM, or write each as .npy beside it for faster reloading."""
        on_disk = self.cache == "disk"
        work = self.cache_images_to_disk if on_disk else self.load_image
        total = 0
        with ThreadPool(NUM_THREADS) as pool:
            bar = TQDM(enumerate(pool.imap(work, range(self.ni))), total=self.ni)
            for i, loaded in bar:
                if on_disk:
                    total += self.npy_files[i].stat().st_size
                else:
                    self.ims[i], self.im_hw0[i], self.im_hw[i] = loaded
                    total += loaded[0].nbytes
                bar.desc = f"{self.prefix}Caching images ({total / _GIB:.1f}GB {self.cache.upper()})"
            bar.close()

    def cache_images_to_disk(self, i: int) -> None:
        """Save image i as a .npy file beside it, unless one is there already."""
        target = self.npy_files[i]
        if target.exists():
            return
        im = cv2.imread(self.im_files[i])
        if im is None:
            raise FileNotFoundError(f"{self.prefix}Image not found or unreadable: {self.im_files[i]}")
        np.save(target.as_posix(), im, allow_pickle=False)

    def _sample_sizes(self) -> list[tuple[int, int]]:
        """(bytes once resized to imgsz, bytes at full size) of up to 30 random images."""
        sizes = []
        for path in random.sample(self.im_files, min(self.ni, 30)):
            im = cv2.imread(path)
            if im is not None:
                shrink = self.imgsz / max(im.shape[0], im.shape[1])
                sizes.append((int(im.nbytes * shrink**2), im.nbytes))
        return sizes

    def _estimate_bytes(self, which: int, safety_margin: float) -> float | None:
        """Bytes for the whole split from a sample (which=0 resized, 1 full size), with a margin; None if unknown."""
        samples = self._sample_sizes()
        if not samples:
            return None
        return sum(s[which] for s in samples) / len(samples) * self.ni * (1 + safety_margin)

    def check_cache_disk(self, safety_margin: float = 0.5) -> bool:
        """Whether the .npy files fit on disk and their folder is writeable."""
        need = self._estimate_bytes(1, safety_margin)  # .npy files hold full-size images
        if need is None:
            return False
        folder = Path(self.im_files[0]).parent
        if not os.access(folder, os.W_OK):
            LOGGER.info(f"{self.prefix}Not caching images to disk: {folder} is not writeable ⚠️")
            return False
        free = shutil.disk_usage(folder).free
        if need > free:
            LOGGER.info(
                f"{self.prefix}Not caching images to disk: they need {need / _GIB:.1f}GB "
                f"and only {free / _GIB:.1f}GB is free ⚠️"
            )
            return False
        return True

    def check_cache_ram(self, safety_margin: float = 0.5) -> bool:
        """Whether the resized images fit in the available memory."""
        need = self._estimate_bytes(0, safety_margin)
        if need is None:
            return False
        available = psutil.virtual_memory().available
        if need > available:
            LOGGER.info(
                f"{self.prefix}Not caching images in RAM: they need {need / _GIB:.1f}GB "
                f"and only {available / _GIB:.1f}GB is available ⚠️"
            )
            return False
        return True

    # ------------------------------------------------------------------ rect batching and items

    def set_rectangle(self) -> None:
        """Sort images by aspect ratio and give each batch one stride-aligned shape (rect=True)."""
        batch_of = np.floor(np.arange(self.ni) / self.batch_size).astype(int)
        hw = np.array([label.pop("shape") for label in self.labels])  # (n, 2) original (h, w)
        aspect = hw[:, 0] / hw[:, 1]
        order = aspect.argsort()
        self.im_files = [self.im_files[k] for k in order]
        self.labels = [self.labels[k] for k in order]
        aspect = aspect[order]
        relative = [_batch_shape(aspect[batch_of == b]) for b in range(batch_of[-1] + 1)]
        self.batch_shapes = np.ceil(np.array(relative) * self.imgsz / self.stride + self.pad).astype(int) * self.stride
        self.batch = batch_of

    def __getitem__(self, index: int) -> dict:
        return self.transforms(self.get_image_and_label(index))

    def get_image_and_label(self, index: int) -> dict:
        """A deep copy of label `index` with its loaded image, before any transform."""
        label = deepcopy(self.labels[index])
        label.pop("shape", None)
        im, hw0, hw = self.load_image(index)
        label.update(img=im, ori_shape=hw0, resized_shape=hw, ratio_pad=(hw[0] / hw0[0], hw[1] / hw0[1]))
        if self.rect:
            label["rect_shape"] = self.batch_shapes[self.batch[index]]
        return self.update_labels_info(label)

    def __len__(self) -> int:
        return len(self.labels)

    def update_labels_info(self, label: dict) -> dict:
        """Hook for subclasses to reshape a label dict (e.g. wrap boxes in Instances)."""
        return label

    def build_transforms(self, hyp: Any = None):
        raise NotImplementedError(f"{type(self).__name__} must implement build_transforms(hyp)")

    def get_labels(self) -> list[dict]:
        raise NotImplementedError(f"{type(self).__name__} must implement get_labels()")
