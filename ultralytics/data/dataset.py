"""YOLO-format detection datasets: YOLODataset and the stretch-resizing RTDETRDataset."""

from __future__ import annotations

from copy import copy
from itertools import repeat
from multiprocessing.pool import ThreadPool
from pathlib import Path
from typing import Any

import torch

from ultralytics.data.augment import Compose, Format, LetterBox, v8_transforms
from ultralytics.data.base import BaseDataset
from ultralytics.data.instances import Instances
from ultralytics.data.utils import (
    LABEL_FORMAT_HELP,
    get_hash,
    img2label_paths,
    load_dataset_cache_file,
    save_dataset_cache_file,
    verify_image_label,
)
from ultralytics.utils import LOCAL_RANK, LOGGER, NUM_THREADS, TQDM

DATASET_CACHE_VERSION = "1.0.3"  # bump when the cache layout changes, so old caches are rebuilt

# Keys whose per-image tensors are concatenated along the box dimension when collating.
_CAT_KEYS = {"bboxes", "cls", "masks", "keypoints", "segments", "obb"}


class YOLODataset(BaseDataset):
    """Detection dataset reading YOLO .txt labels, with a verified label cache per split.

    `data` is the dict from check_det_dataset (its `names` give the class count used to validate
    labels). Only task="detect" is supported.
    """

    def __init__(self, *args, data: dict | None = None, task: str = "detect", **kwargs) -> None:
        if task != "detect":
            raise ValueError(f"YOLODataset supports task='detect' only, got task='{task}'")
        if not data or "names" not in data:
            raise ValueError("YOLODataset needs data=<dict from check_det_dataset> with a 'names' entry")
        self.use_segments = False
        self.use_keypoints = False
        self.use_obb = False
        self.data = data
        super().__init__(*args, **kwargs)

    def cache_labels(self, path: Path = Path("./labels.cache")) -> dict:
        """Verify every image/label pair, report counts and problems, and save the result to `path`."""
        x: dict[str, Any] = {"labels": []}
        nm, nf, ne, nc, msgs = 0, 0, 0, 0, []
        desc = f"{self.prefix}Scanning {path.parent / path.stem}..."
        total = len(self.im_files)
        with ThreadPool(NUM_THREADS) as pool:
            results = pool.imap(
                func=verify_image_label,
                iterable=zip(
                    self.im_files,
                    self.label_files,
                    repeat(self.prefix),
                    repeat(self.use_keypoints),
                    repeat(len(self.data["names"])),
                    repeat(0),
                    repeat(0),
                ),
            )
            pbar = TQDM(results, desc=desc, total=total)
            for im_file, lb, shape, segments, keypoint, nm_f, nf_f, ne_f, nc_f, msg in pbar:
                nm += nm_f
                nf += nf_f
                ne += ne_f
                nc += nc_f
                if im_file:
                    x["labels"].append(
                        {
                            "im_file": im_file,
                            "shape": shape,  # (h, w)
                            "cls": lb[:, 0:1],  # (n, 1)
                            "bboxes": lb[:, 1:],  # (n, 4) normalised xywh
                            "segments": segments,
                            "keypoints": keypoint,
                            "normalized": True,
                            "bbox_format": "xywh",
                        }
                    )
                if msg:
                    msgs.append(msg)
                pbar.desc = f"{desc} {nf} images, {nm + ne} backgrounds, {nc} corrupt"
            pbar.close()
        if msgs:
            LOGGER.info("\n".join(msgs))
        if nf == 0:
            LOGGER.warning(f"{self.prefix}WARNING ⚠️ No labels found in {path}. {LABEL_FORMAT_HELP}")
        x["hash"] = get_hash(self.label_files + self.im_files)
        x["results"] = nf, nm, ne, nc, len(self.im_files)
        x["msgs"] = msgs
        save_dataset_cache_file(self.prefix, path, x, DATASET_CACHE_VERSION)
        return x

    def get_labels(self) -> list[dict]:
        """Labels from the split's cache when it matches the files on disk, else from a fresh scan."""
        self.label_files = img2label_paths(self.im_files)
        cache_path = Path(self.label_files[0]).parent.with_suffix(".cache")
        cache, exists = None, False
        if cache_path.is_file():
            try:
                cache = load_dataset_cache_file(cache_path)
                exists = (
                    isinstance(cache, dict)
                    and cache.get("version") == DATASET_CACHE_VERSION
                    and cache.get("hash") == get_hash(self.label_files + self.im_files)
                )
            except (OSError, ValueError, EOFError, AttributeError):
                exists = False  # unreadable or foreign cache: rebuild it
        if not exists:
            cache = self.cache_labels(cache_path)

        nf, nm, ne, nc, n = cache.pop("results")
        if exists and LOCAL_RANK in {-1, 0}:
            d = f"Scanning {cache_path}... {nf} images, {nm + ne} backgrounds, {nc} corrupt"
            TQDM(None, desc=self.prefix + d, total=n, initial=n)
            if cache["msgs"]:
                LOGGER.info("\n".join(cache["msgs"]))
        for k in ("hash", "version", "msgs"):
            cache.pop(k, None)

        labels = cache["labels"]
        if not labels:
            raise FileNotFoundError(
                f"{self.prefix}No usable images in {self.img_path}: {n} found, {nc} corrupt "
                f"(see the warnings above; labels cached in {cache_path}). {LABEL_FORMAT_HELP}"
            )
        self.im_files = [lb["im_file"] for lb in labels]
        return labels

    def build_transforms(self, hyp: Any = None):
        """Training: v8_transforms (mosaic off under rect); otherwise letterbox. Then Format."""
        hyp = copy(hyp)  # callers pass their args namespace; never change it behind their back
        if self.augment:
            hyp.mosaic = hyp.mosaic if not self.rect else 0.0
            hyp.mixup = hyp.mixup if not self.rect else 0.0
            transforms = v8_transforms(self, self.imgsz, hyp)
        else:
            transforms = Compose([LetterBox(new_shape=(self.imgsz, self.imgsz), scaleup=False)])
        transforms.append(self._format(hyp))
        return transforms

    def _format(self, hyp: Any) -> Format:
        return Format(
            bbox_format="xywh",
            normalize=True,
            return_mask=self.use_segments,
            return_keypoint=self.use_keypoints,
            return_obb=self.use_obb,
            batch_idx=True,
            mask_ratio=hyp.mask_ratio,
            mask_overlap=hyp.overlap_mask,
            bgr=hyp.bgr if self.augment else 0.0,
        )

    def close_mosaic(self, hyp: Any) -> None:
        """Rebuild the transforms without mosaic, copy-paste and mixup (the last epochs of training)."""
        hyp.mosaic = 0.0
        hyp.copy_paste = 0.0
        hyp.mixup = 0.0
        self.transforms = self.build_transforms(hyp)

    def update_labels_info(self, label: dict) -> dict:
        """Wrap the label's boxes in an Instances object for the transforms."""
        bboxes = label.pop("bboxes")
        label.pop("segments", None)
        label.pop("keypoints", None)
        bbox_format = label.pop("bbox_format")
        normalized = label.pop("normalized")
        label["instances"] = Instances(bboxes, bbox_format=bbox_format, normalized=normalized)
        return label

    @staticmethod
    def collate_fn(batch: list[dict]) -> dict:
        """Samples -> one batch dict.

        img is stacked to (B, 3, H, W) uint8; bboxes (N, 4) and cls (N, 1) are concatenated over
        the batch, and batch_idx (N,) says which image each box belongs to. Other keys become
        tuples. Keys missing from some samples are dropped.
        """
        keys = [k for k in batch[0] if all(k in b for b in batch)]
        new_batch: dict[str, Any] = {}
        for k in keys:
            values = [b[k] for b in batch]
            if k == "img":
                new_batch[k] = torch.stack(values, 0)
            elif k in _CAT_KEYS:
                new_batch[k] = torch.cat(values, 0)
            elif k == "batch_idx":
                new_batch[k] = torch.cat([v + i for i, v in enumerate(values)], 0)
            else:
                new_batch[k] = tuple(values)
        return new_batch


class RTDETRDataset(YOLODataset):
    """YOLODataset for RT-DETR: images are stretched to imgsz x imgsz (no aspect-preserving letterbox)."""

    def __init__(self, *args, data: dict | None = None, **kwargs) -> None:
        super().__init__(*args, data=data, **kwargs)

    def load_image(self, i: int, rect_mode: bool = False):
        """Image i stretched to a square imgsz, with (h0, w0) and (imgsz, imgsz)."""
        return super().load_image(i=i, rect_mode=rect_mode)

    def build_transforms(self, hyp: Any = None):
        """Training: mosaic, perspective, mixup, HSV, flips. Otherwise a stretch to imgsz. Then Format."""
        hyp = copy(hyp)
        if self.augment:
            hyp.mosaic = hyp.mosaic if not self.rect else 0.0
            hyp.mixup = hyp.mixup if not self.rect else 0.0
            transforms = v8_transforms(self, self.imgsz, hyp, stretch=True)
        else:
            transforms = Compose([LetterBox(new_shape=(self.imgsz, self.imgsz), auto=False, scaleFill=True)])
        transforms.append(self._format(hyp))
        return transforms
