"""YOLO-format detection datasets: YOLODataset and the stretch-resizing RTDETRDataset."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from copy import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ultralytics.data.augment import Compose, Format, LetterBox, MixUp, Mosaic, find_transforms, v8_transforms
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



def _cat(column: list[torch.Tensor]) -> torch.Tensor:
    return torch.cat(column, 0)


# How collate_fn merges one key over the samples of a batch; keys not listed become tuples.
_COLLATE: dict[str, Callable[[list], Any]] = {
    "img": lambda column: torch.stack(column, 0),
    "batch_idx": lambda column: torch.cat([idx + k for k, idx in enumerate(column)], 0),
    **{key: _cat for key in ("bboxes", "cls", "masks", "keypoints", "segments", "obb")},
}


@dataclass
class _ScanTally:
    """Running counts of a label scan: label files missing, found, empty, and corrupt samples."""

    missing: int = 0
    found: int = 0
    empty: int = 0
    corrupt: int = 0
    msgs: list[str] = field(default_factory=list)

    def add(self, missing: int, found: int, empty: int, corrupt: int, msg: str) -> None:
        self.missing += missing
        self.found += found
        self.empty += empty
        self.corrupt += corrupt
        if msg:
            self.msgs.append(msg)

    def summary(self) -> str:
        # Users and tests read this line: images are label files found; backgrounds have no boxes.
        return f"{self.found} images, {self.missing + self.empty} backgrounds, {self.corrupt} corrupt"


def _log_lines(lines: list[str]) -> None:
    """Warnings collected while scanning labels, one per line."""
    if lines:
        LOGGER.info("\n".join(lines))


def _cached_label(im_file: str, lb: Any, shape: tuple[int, int], segments: list, keypoints: Any) -> dict:
    """One entry of the label cache: (n, 1) classes and (n, 4) normalised xywh boxes."""
    return {
        "im_file": im_file,
        "shape": shape,  # (h, w)
        "cls": lb[:, :1],
        "bboxes": lb[:, 1:],
        "segments": segments,
        "keypoints": keypoints,
        "normalized": True,
        "bbox_format": "xywh",
    }


class YOLODataset(BaseDataset):
    """Detection dataset reading YOLO .txt labels, with a verified label cache per split.

    `data` is the dict from check_det_dataset (its `names` give the class count used to validate
    labels). Only task="detect" is supported.
    """

    _stretch = False  # RT-DETR stretches images to a square instead of letterboxing them

    def __init__(self, *args, data: dict | None = None, task: str = "detect", **kwargs) -> None:
        if task != "detect":
            raise ValueError(f"YOLODataset supports task='detect' only, got task='{task}'")
        if not data or "names" not in data:
            raise ValueError("YOLODataset needs data=<dict from check_det_dataset> with a 'names' entry")
        self.use_segments = self.use_keypoints = self.use_obb = False
        self.data = data
        BaseDataset.__init__(self, *args, **kwargs)

    # ------------------------------------------------------------------ labels and their cache

    def cache_labels(self, path: Path = Path("./labels.cache")) -> dict:
        """Verify every image/label pair, report counts and problems, and save the result to `path`."""
        tally = _ScanTally()
        labels = []
        title = f"{self.prefix}Scanning {path.parent / path.stem}..."
        n_cls = len(self.data["names"])
        # verify_image_label's argument tuple; the two zeros are keypoint counts (unused for detection)
        pairs = zip(self.im_files, self.label_files)
        jobs = [(im, lb, self.prefix, self.use_keypoints, n_cls, 0, 0) for im, lb in pairs]
        with ThreadPoolExecutor(max_workers=NUM_THREADS) as pool:
            bar = TQDM(pool.map(verify_image_label, jobs), desc=title, total=len(jobs))
            for im_file, lb, shape, segments, keypoints, *counts, msg in bar:
                tally.add(*counts, msg)
                if im_file:
                    labels.append(_cached_label(im_file, lb, shape, segments, keypoints))
                bar.desc = f"{title} {tally.summary()}"
            bar.close()
        _log_lines(tally.msgs)
        if not tally.found:
            LOGGER.warning(f"{self.prefix}WARNING ⚠️ No labels found in {path}. {LABEL_FORMAT_HELP}")
        record = {
            "labels": labels,
            "hash": get_hash(self.label_files + self.im_files),
            "results": (tally.found, tally.missing, tally.empty, tally.corrupt, len(self.im_files)),
            "msgs": tally.msgs,
        }
        save_dataset_cache_file(self.prefix, path, record, DATASET_CACHE_VERSION)
        return record

    def _label_cache_path(self) -> Path:
        """images/train/*.jpg -> labels/train.cache, beside the split's label folder."""
        return Path(self.label_files[0]).parent.with_suffix(".cache")

    def _valid_cache(self, path: Path) -> dict | None:
        """The cache at `path` when it is readable, of this version and made from these exact files."""
        try:
            cache = load_dataset_cache_file(path) if path.is_file() else None
        except (OSError, ValueError, EOFError, AttributeError):
            cache = None  # unreadable or foreign: it gets rebuilt
        fresh = (
            isinstance(cache, dict)
            and cache.get("version") == DATASET_CACHE_VERSION
            and cache.get("hash") == get_hash(self.label_files + self.im_files)
        )
        return cache if fresh else None

    def get_labels(self) -> list[dict]:
        """Labels from the split's cache when it matches the files on disk, else from a fresh scan."""
        self.label_files = img2label_paths(self.im_files)
        cache_path = self._label_cache_path()
        cache = self._valid_cache(cache_path)
        reused = cache is not None
        if not reused:
            cache = self.cache_labels(cache_path)

        found, missing, empty, corrupt, total = cache["results"]
        if reused and LOCAL_RANK in {-1, 0}:
            counts = f"{found} images, {missing + empty} backgrounds, {corrupt} corrupt"
            TQDM(None, desc=f"{self.prefix}Scanning {cache_path}... {counts}", total=total, initial=total)
            _log_lines(cache["msgs"])

        labels = cache["labels"]
        if not labels:
            raise FileNotFoundError(
                f"{self.prefix}No usable images in {self.img_path}: {total} found, {corrupt} corrupt "
                f"(see the warnings above; labels cached in {cache_path}). {LABEL_FORMAT_HELP}"
            )
        self.im_files = [entry["im_file"] for entry in labels]
        return labels

    def update_labels_info(self, label: dict) -> dict:
        """Wrap the label's boxes in an Instances object for the transforms."""
        for unused in ("segments", "keypoints"):
            label.pop(unused, None)
        boxes = label.pop("bboxes")
        fmt, normalized = label.pop("bbox_format"), label.pop("normalized")
        label["instances"] = Instances(boxes, bbox_format=fmt, normalized=normalized)
        return label

    # ------------------------------------------------------------------ transforms

    def _plain_transforms(self) -> Compose:
        """Without augmentation: shrink-only letterbox to imgsz."""
        return Compose([LetterBox(new_shape=(self.imgsz, self.imgsz), scaleup=False)])

    def build_transforms(self, hyp: Any = None) -> Compose:
        """Training: v8_transforms (mosaic and mixup off under rect); otherwise the plain resize. Then Format."""
        if not self.augment:
            pipeline = self._plain_transforms()
        else:
            hyp = copy(hyp)  # callers pass their args namespace; never change it behind their back
            if self.rect:
                hyp.mosaic = hyp.mixup = 0.0
            pipeline = v8_transforms(self, self.imgsz, hyp, stretch=self._stretch)
        # Detection only: Format's mask/keypoint/obb outputs stay at their (off) defaults.
        channel_swap = hyp.bgr if self.augment else 0.0
        pipeline.append(Format(bbox_format="xywh", normalize=True, batch_idx=True, bgr=channel_swap))
        return pipeline

    def close_mosaic(self, hyp: Any) -> None:
        """Rebuild the transforms without mosaic, copy-paste and mixup (the last epochs of training).

        `hyp` is edited in place, as upstream does.
        """
        hyp.mosaic = hyp.copy_paste = hyp.mixup = 0.0
        self.transforms = self.build_transforms(hyp)

    def set_mix_probabilities(self, mosaic: float, mixup: float) -> bool:
        """Set the probabilities of the pipeline's Mosaic and MixUp steps; True if any changed.

        For schedules that change them between epochs (dense one-to-one matching). Transforms a
        loader's worker processes already hold keep the old values until the loader is reset.
        """
        changed = False
        for kind, p in ((Mosaic, mosaic), (MixUp, mixup)):
            for transform in find_transforms(self.transforms, kind):
                changed |= transform.p != p
                transform.p = p
        return changed

    def stop_augmentation(self) -> None:
        """Train on the images as validation sees them from now on (the no-augmentation final epochs)."""
        self.augment = False
        self.transforms = self.build_transforms()

    @staticmethod
    def collate_fn(batch: list[dict]) -> dict:
        """Samples -> one batch dict.

        img is stacked to (B, 3, H, W) uint8; bboxes (N, 4) and cls (N, 1) are concatenated over
        the batch, and batch_idx (N,) says which image each box belongs to. Other keys become
        tuples. Keys missing from some samples are dropped.
        """
        shared = [key for key in batch[0] if all(key in sample for sample in batch)]
        return {key: _COLLATE.get(key, tuple)([sample[key] for sample in batch]) for key in shared}


class RTDETRDataset(YOLODataset):
    """YOLODataset for RT-DETR: images are stretched to imgsz x imgsz (no aspect-preserving letterbox)."""

    _stretch = True

    def __init__(self, *args, data: dict | None = None, **kwargs) -> None:
        YOLODataset.__init__(self, *args, data=data, **kwargs)

    def load_image(self, i: int, rect_mode: bool = False):
        """Image i stretched to a square imgsz (the default here), with (h0, w0) and (imgsz, imgsz)."""
        return BaseDataset.load_image(self, i, rect_mode)

    def _plain_transforms(self) -> Compose:
        """Without augmentation: stretch to imgsz x imgsz, as the model was trained."""
        return Compose([LetterBox(new_shape=(self.imgsz, self.imgsz), auto=False, scaleFill=True)])
