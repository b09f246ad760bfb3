"""BaseDataset: image discovery, loading, optional caching and rectangular batching."""

from __future__ import annotations

import math
import os
import random
from copy import deepcopy
from multiprocessing.pool import ThreadPool
from pathlib import Path
from typing import Any, Sequence

import cv2
import numpy as np
import psutil
from torch.utils.data import Dataset

from ultralytics.data.utils import FORMATS_HELP_MSG, IMG_FORMATS
from ultralytics.utils import DEFAULT_CFG, LOGGER, NUM_THREADS, TQDM

CACHE_MODES = ("ram", "disk")


def _read_image_list(txt: Path) -> list[str]:
    """Image paths listed one per line; relative lines are taken relative to the list's folder."""
    out = []
    for line in txt.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line:
            p = Path(line)
            out.append(str(p if p.is_absolute() else (txt.parent / p).resolve()))
    return out


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
        self.img_path = img_path
        self.imgsz = imgsz
        self.augment = augment
        self.single_cls = single_cls
        self.prefix = prefix
        self.fraction = fraction
        self.im_files = self.get_img_files(self.img_path)
        self.labels = self.get_labels()
        self.update_labels(include_class=classes)
        self.ni = len(self.labels)
        self.rect = rect
        self.batch_size = 16 if batch_size is None else batch_size  # callers may pass batch=None for val
        self.stride = stride
        self.pad = pad
        if self.rect:
            if self.augment:
                LOGGER.warning(f"{prefix}WARNING ⚠️ rect=True turns mosaic and mixup off for this dataset")
            self.set_rectangle()

        # Recently loaded image indices; Mosaic draws its partner images from here.
        self.buffer: list[int] = []
        self.max_buffer_length = min((self.ni, self.batch_size * 8, 1000)) if self.augment else 0

        self.ims: list[np.ndarray | None] = [None] * self.ni
        self.im_hw0: list[tuple[int, int] | None] = [None] * self.ni
        self.im_hw: list[tuple[int, int] | None] = [None] * self.ni
        self.npy_files = [Path(f).with_suffix(".npy") for f in self.im_files]
        self.cache = self._cache_mode(cache)
        if self.cache == "ram" and not self.check_cache_ram():
            self.cache = None
        if self.cache == "disk" and not self.check_cache_disk():
            self.cache = None
        if self.cache:
            self.cache_images()

        self.transforms = self.build_transforms(hyp=hyp)

    def _cache_mode(self, cache: bool | str | None) -> str | None:
        if cache is None or cache is False:
            return None
        if cache is True:
            return "ram"
        if isinstance(cache, str) and cache.lower() in CACHE_MODES:
            return cache.lower()
        if isinstance(cache, str) and cache.lower() in {"false", "none", ""}:
            return None
        raise ValueError(f"{self.prefix}cache={cache!r} is not valid; use True/'ram', 'disk' or False")

    def get_img_files(self, img_path: str | Path | Sequence[str | Path]) -> list[str]:
        """Image files under folders, listed in .txt files, or given directly; sorted."""
        files: list[str] = []
        for p in img_path if isinstance(img_path, (list, tuple)) else [img_path]:
            p = Path(p)
            if p.is_dir():
                files += [str(x) for x in p.rglob("*.*")]
            elif p.is_file() and p.suffix == ".txt":
                files += _read_image_list(p)
            elif p.is_file():
                files.append(str(p))
            else:
                raise FileNotFoundError(
                    f"{self.prefix}{p} does not exist; a split must be a folder of images, "
                    "a .txt file listing image paths, or a list of those"
                )
        im_files = sorted(x for x in files if x.rsplit(".", 1)[-1].lower() in IMG_FORMATS)
        if not im_files:
            raise FileNotFoundError(f"{self.prefix}No images found in {img_path}. {FORMATS_HELP_MSG}")
        if self.fraction < 1:
            im_files = im_files[: max(1, round(len(im_files) * self.fraction))]
        return im_files

    def update_labels(self, include_class: list[int] | None) -> None:
        """Keep only boxes of include_class (when given) and collapse classes with single_cls."""
        keep_classes = None if include_class is None else np.array(include_class).reshape(1, -1)
        for label in self.labels:
            if keep_classes is not None:
                keep = (label["cls"] == keep_classes).any(1)
                label["cls"] = label["cls"][keep]
                label["bboxes"] = label["bboxes"][keep]
            if self.single_cls:
                label["cls"][:, 0] = 0

    def load_image(self, i: int, rect_mode: bool = True) -> tuple[np.ndarray, tuple[int, int], tuple[int, int]]:
        """Image i as BGR uint8 with (h0, w0) and the resized (h, w).

        rect_mode keeps the aspect ratio (long side = imgsz); otherwise the image is stretched to
        imgsz x imgsz.
        """
        im, f, fn = self.ims[i], self.im_files[i], self.npy_files[i]
        if im is not None:
            return im, self.im_hw0[i], self.im_hw[i]
        if fn.exists():
            try:
                im = np.load(fn)
            except (OSError, ValueError) as e:
                LOGGER.warning(f"{self.prefix}WARNING ⚠️ Removing corrupt *.npy image file {fn} due to: {e}")
                fn.unlink(missing_ok=True)
                im = cv2.imread(f)
        else:
            im = cv2.imread(f)
        if im is None:
            raise FileNotFoundError(f"{self.prefix}Image not found or unreadable: {f}")
        h0, w0 = im.shape[:2]
        if rect_mode:
            r = self.imgsz / max(h0, w0)
            if r != 1:
                w, h = min(math.ceil(w0 * r), self.imgsz), min(math.ceil(h0 * r), self.imgsz)
                im = cv2.resize(im, (w, h), interpolation=cv2.INTER_LINEAR)
        elif not (h0 == w0 == self.imgsz):
            im = cv2.resize(im, (self.imgsz, self.imgsz), interpolation=cv2.INTER_LINEAR)

        if self.augment:
            self.ims[i], self.im_hw0[i], self.im_hw[i] = im, (h0, w0), im.shape[:2]
            self.buffer.append(i)
            if 1 < len(self.buffer) >= self.max_buffer_length:
                j = self.buffer.pop(0)
                if self.cache != "ram":  # ram-cached images stay; others are dropped from memory
                    self.ims[j], self.im_hw0[j], self.im_hw[j] = None, None, None
        return im, (h0, w0), im.shape[:2]

    def cache_images(self) -> None:
        """Load every image into RAM, or write each as .npy beside it for faster reloading."""
        total_bytes = 0
        to_disk = self.cache == "disk"
        fn = self.cache_images_to_disk if to_disk else self.load_image
        with ThreadPool(NUM_THREADS) as pool:
            results = pool.imap(fn, range(self.ni))
            pbar = TQDM(enumerate(results), total=self.ni)
            for i, x in pbar:
                if to_disk:
                    total_bytes += self.npy_files[i].stat().st_size
                else:
                    self.ims[i], self.im_hw0[i], self.im_hw[i] = x
                    total_bytes += self.ims[i].nbytes
                pbar.desc = f"{self.prefix}Caching images ({total_bytes / (1 << 30):.1f}GB {self.cache.upper()})"
            pbar.close()

    def cache_images_to_disk(self, i: int) -> None:
        f = self.npy_files[i]
        if not f.exists():
            im = cv2.imread(self.im_files[i])
            if im is None:
                raise FileNotFoundError(f"{self.prefix}Image not found or unreadable: {self.im_files[i]}")
            np.save(f.as_posix(), im, allow_pickle=False)

    def _sample_sizes(self) -> list[tuple[int, int]]:
        """(bytes once resized to imgsz, bytes at full size) of up to 30 random images."""
        out = []
        for f in random.sample(self.im_files, min(self.ni, 30)):
            im = cv2.imread(f)
            if im is not None:
                ratio = self.imgsz / max(im.shape[0], im.shape[1])
                out.append((int(im.nbytes * ratio**2), im.nbytes))
        return out

    def check_cache_disk(self, safety_margin: float = 0.5) -> bool:
        """Whether the .npy files fit on disk and their folder is writeable."""
        import shutil

        samples = self._sample_sizes()
        if not samples:
            return False
        folder = Path(self.im_files[0]).parent
        if not os.access(folder, os.W_OK):
            LOGGER.info(f"{self.prefix}Skipping caching images to disk, directory {folder} not writeable ⚠️")
            return False
        need = sum(s[1] for s in samples) / len(samples) * self.ni * (1 + safety_margin)  # .npy holds full images
        free = shutil.disk_usage(folder).free
        if need > free:
            LOGGER.info(
                f"{self.prefix}{need / (1 << 30):.1f}GB disk space required, {free / (1 << 30):.1f}GB free, "
                "not caching images to disk ⚠️"
            )
            return False
        return True

    def check_cache_ram(self, safety_margin: float = 0.5) -> bool:
        """Whether the resized images fit in the available memory."""
        samples = self._sample_sizes()
        if not samples:
            return False
        need = sum(s[0] for s in samples) / len(samples) * self.ni * (1 + safety_margin)
        available = psutil.virtual_memory().available
        if need > available:
            LOGGER.info(
                f"{self.prefix}{need / (1 << 30):.1f}GB RAM required to cache images, "
                f"{available / (1 << 30):.1f}GB available, not caching images ⚠️"
            )
            return False
        return True

    def set_rectangle(self) -> None:
        """Sort images by aspect ratio and give each batch one stride-aligned shape (rect=True)."""
        bi = np.floor(np.arange(self.ni) / self.batch_size).astype(int)
        nb = bi[-1] + 1
        s = np.array([x.pop("shape") for x in self.labels])  # (h, w)
        ar = s[:, 0] / s[:, 1]
        order = ar.argsort()
        self.im_files = [self.im_files[i] for i in order]
        self.labels = [self.labels[i] for i in order]
        ar = ar[order]
        shapes = [[1, 1]] * nb
        for i in range(nb):
            ari = ar[bi == i]
            lo, hi = ari.min(), ari.max()
            if hi < 1:
                shapes[i] = [hi, 1]
            elif lo > 1:
                shapes[i] = [1, 1 / lo]
        self.batch_shapes = np.ceil(np.array(shapes) * self.imgsz / self.stride + self.pad).astype(int) * self.stride
        self.batch = bi

    def __getitem__(self, index: int) -> dict:
        return self.transforms(self.get_image_and_label(index))

    def get_image_and_label(self, index: int) -> dict:
        """A deep copy of label `index` with its loaded image, before any transform."""
        label = deepcopy(self.labels[index])
        label.pop("shape", None)
        label["img"], label["ori_shape"], label["resized_shape"] = self.load_image(index)
        label["ratio_pad"] = (
            label["resized_shape"][0] / label["ori_shape"][0],
            label["resized_shape"][1] / label["ori_shape"][1],
        )
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
