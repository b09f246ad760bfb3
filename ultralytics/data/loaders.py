"""Inference sources: files, folders, globs, lists, videos, in-memory images and tensors.

Every loader iterates over batches shaped `(paths, images, info)`: three lists of equal length
holding the source path (or a made-up name), the BGR uint8 image (h, w, 3) - or, for
`LoadTensor`, the whole (B, 3, H, W) tensor - and a log prefix such as
"image 2/5 /data/bus.jpg: ".
"""

from __future__ import annotations

import glob
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import cv2
import numpy as np
import torch
from PIL import Image

from ultralytics.utils import LOGGER

from ultralytics.data.utils import IMG_FORMATS, VID_FORMATS

FORMATS_HELP_MSG = (
    f"Supported formats are:\nimages: {sorted(IMG_FORMATS)}\nvideos: {sorted(VID_FORMATS)}"
)
_STREAM_PREFIXES = ("https://", "http://", "rtsp://", "rtmp://", "tcp://")


@dataclass
class SourceTypes:
    """What kind of input a loader serves; the predictor uses it for batching and file naming."""

    stream: bool = False
    screenshot: bool = False
    from_img: bool = False
    tensor: bool = False


def imread_bgr(filename: str | Path, flags: int = cv2.IMREAD_COLOR) -> np.ndarray | None:
    """Read an image as BGR uint8 (h, w, 3), or None when the file cannot be decoded.

    Goes through np.fromfile + cv2.imdecode so that paths with non-ASCII characters work.
    """
    data = np.fromfile(str(filename), np.uint8)
    if data.size == 0:
        return None
    return cv2.imdecode(data, flags)


class LoadImagesAndVideos:
    """Images and videos from a file, folder, glob, list of paths, or a .txt file listing paths.

    Images come first (sorted), then videos frame by frame (every `vid_stride`-th frame).
    Unreadable images are skipped with a warning that names them.
    """

    def __init__(self, path: str | Path | Sequence[str | Path], batch: int = 1, vid_stride: int = 1):
        if batch < 1 or vid_stride < 1:
            raise ValueError(f"batch and vid_stride must be >= 1, got batch={batch}, vid_stride={vid_stride}")
        parent = None
        if isinstance(path, (str, Path)) and Path(path).suffix == ".txt":
            # A .txt source lists one path per line; relative lines are resolved against its folder.
            parent = Path(path).parent
            path = [line.strip() for line in Path(path).read_text().splitlines() if line.strip()]
        entries = sorted(str(p) for p in path) if isinstance(path, (list, tuple)) else [str(path)]

        files: list[str] = []
        for p in entries:
            a = str(Path(p).absolute())
            if "*" in a:
                files.extend(sorted(glob.glob(a, recursive=True)))
            elif os.path.isdir(a):
                found = sorted(glob.glob(os.path.join(a, "*.*")))
                if not any(_suffix(f) in IMG_FORMATS | VID_FORMATS for f in found):
                    raise FileNotFoundError(f"No images or videos found in folder '{p}'. {FORMATS_HELP_MSG}")
                files.extend(found)
            elif os.path.isfile(a):
                files.append(a)
            elif parent is not None and (parent / p).is_file():
                files.append(str((parent / p).absolute()))
            else:
                raise FileNotFoundError(f"Inference source '{p}' does not exist")

        images = [f for f in files if _suffix(f) in IMG_FORMATS]
        videos = [f for f in files if _suffix(f) in VID_FORMATS]
        self.files = images + videos
        self.ni, self.nf = len(images), len(images) + len(videos)
        self.video_flag = [False] * len(images) + [True] * len(videos)
        self.mode = "video" if not images else "image"
        self.vid_stride = vid_stride
        self.bs = batch
        self.cap: cv2.VideoCapture | None = None
        self.frame, self.frames, self.fps = 0, 0, 0
        if self.nf == 0:
            raise FileNotFoundError(f"No images or videos found in '{path}'. {FORMATS_HELP_MSG}")
        if videos:
            self._new_video(videos[0])

    def __iter__(self) -> "LoadImagesAndVideos":
        self.count = 0
        return self

    def __next__(self) -> tuple[list[str], list[np.ndarray], list[str]]:
        paths, imgs, info = [], [], []
        while len(imgs) < self.bs:
            if self.count >= self.nf:
                if imgs:
                    return paths, imgs, info
                raise StopIteration
            path = self.files[self.count]
            if self.video_flag[self.count]:
                self.mode = "video"
                if self.cap is None or not self.cap.isOpened():
                    self._new_video(path)
                ok = False
                for _ in range(self.vid_stride):  # grab() skips frames without decoding them
                    ok = self.cap.grab()
                    if not ok:
                        break
                if ok:
                    ok, im0 = self.cap.retrieve()
                if ok:
                    self.frame += 1
                    paths.append(path)
                    imgs.append(im0)
                    info.append(f"video {self.count + 1}/{self.nf} (frame {self.frame}/{self.frames}) {path}: ")
                    if self.frame == self.frames:
                        self._next_file()
                else:
                    self._next_file()
            else:
                self.mode = "image"
                im0 = imread_bgr(path)
                if im0 is None:
                    LOGGER.warning(f"WARNING ⚠️ Image Read Error {path}: file is unreadable or not an image, skipping")
                else:
                    paths.append(path)
                    imgs.append(im0)
                    info.append(f"image {self.count + 1}/{self.nf} {path}: ")
                self.count += 1
                if self.count >= self.ni and imgs:  # images and videos never share a batch
                    break
        return paths, imgs, info

    def _next_file(self) -> None:
        self.count += 1
        if self.cap is not None:
            self.cap.release()
        self.cap = None

    def _new_video(self, path: str) -> None:
        self.frame = 0
        self.cap = cv2.VideoCapture(path)
        if not self.cap.isOpened():
            raise FileNotFoundError(f"Failed to open video '{path}' with OpenCV")
        self.fps = int(self.cap.get(cv2.CAP_PROP_FPS)) or 30
        self.frames = int(self.cap.get(cv2.CAP_PROP_FRAME_COUNT) / self.vid_stride)

    def __len__(self) -> int:
        return math.ceil(self.nf / self.bs)


class LoadPilAndNumpy:
    """One batch made of in-memory images: PIL images (any mode) or numpy BGR arrays."""

    def __init__(self, im0: Any):
        if not isinstance(im0, list):
            im0 = [im0]
        # PIL images opened from disk remember their file name; others get a placeholder.
        self.paths = [getattr(im, "filename", "") or f"image{i}.jpg" for i, im in enumerate(im0)]
        self.im0 = [self._single_check(im, i) for i, im in enumerate(im0)]
        self.mode = "image"
        self.bs = len(self.im0)

    @staticmethod
    def _single_check(im: Any, i: int = 0) -> np.ndarray:
        """Return a contiguous BGR uint8 (h, w, 3) array."""
        if isinstance(im, Image.Image):
            im = np.ascontiguousarray(np.asarray(im.convert("RGB"))[:, :, ::-1])
        elif not isinstance(im, np.ndarray):
            raise TypeError(f"Image {i} is a {type(im).__name__}; expected a PIL.Image or a numpy (h, w, 3) BGR array")
        if im.ndim == 2:  # greyscale
            im = np.ascontiguousarray(np.repeat(im[:, :, None], 3, axis=2))
        if im.ndim != 3 or im.shape[2] not in {1, 3, 4}:
            raise ValueError(f"Image {i} has shape {im.shape}; expected (h, w), (h, w, 3) BGR or (h, w, 4) BGRA")
        if im.shape[2] == 1:
            im = np.ascontiguousarray(np.repeat(im, 3, axis=2))
        elif im.shape[2] == 4:
            im = np.ascontiguousarray(im[:, :, :3])
        if im.dtype != np.uint8:
            raise ValueError(f"Image {i} has dtype {im.dtype}; numpy images must be uint8 0-255 BGR")
        return im

    def __len__(self) -> int:
        return len(self.im0)

    def __next__(self) -> tuple[list[str], list[np.ndarray], list[str]]:
        if self.count == 1:
            raise StopIteration
        self.count += 1
        return self.paths, self.im0, [""] * self.bs

    def __iter__(self) -> "LoadPilAndNumpy":
        self.count = 0
        return self


class LoadTensor:
    """One batch from a (B, 3, H, W) float tensor in 0-1, RGB, sides multiples of `stride`."""

    def __init__(self, im0: torch.Tensor):
        self.im0 = self._single_check(im0)
        self.bs = self.im0.shape[0]
        self.mode = "image"
        self.paths = [getattr(im, "filename", f"image{i}.jpg") for i, im in enumerate(im0)]

    @staticmethod
    def _single_check(im: torch.Tensor, stride: int = 32) -> torch.Tensor:
        rule = (
            f"torch.Tensor sources must be BCHW, e.g. shape (1, 3, 640, 640), with H and W multiples of {stride}, "
            "float values in 0.0-1.0 and RGB channel order"
        )
        if im.ndim == 3:
            LOGGER.warning(f"WARNING ⚠️ got a tensor of shape {tuple(im.shape)}; adding a batch dimension. {rule}")
            im = im.unsqueeze(0)
        if im.ndim != 4 or im.shape[1] != 3:
            raise ValueError(f"Tensor source has shape {tuple(im.shape)}. {rule}")
        if im.shape[2] % stride or im.shape[3] % stride:
            raise ValueError(f"Tensor source has shape {tuple(im.shape)}, not divisible by {stride}. {rule}")
        if not im.is_floating_point():
            raise ValueError(f"Tensor source has dtype {im.dtype}. {rule}")
        if im.numel() and im.max() > 1.0 + torch.finfo(im.dtype).eps:
            raise ValueError(f"Tensor source has values up to {im.max().item():.4g}. {rule}")
        return im

    def __iter__(self) -> "LoadTensor":
        self.count = 0
        return self

    def __next__(self) -> tuple[list[str], torch.Tensor, list[str]]:
        if self.count == 1:
            raise StopIteration
        self.count += 1
        return self.paths, self.im0, [""] * self.bs

    def __len__(self) -> int:
        return self.bs


LOADERS = (LoadImagesAndVideos, LoadPilAndNumpy, LoadTensor)


def autocast_list(source: Sequence[Any]) -> list[np.ndarray | Image.Image]:
    """Turn a mixed list of paths, PIL images and numpy arrays into in-memory images."""
    files = []
    for i, im in enumerate(source):
        if isinstance(im, (str, Path)):
            arr = imread_bgr(im) if Path(im).is_file() else None
            if arr is None:
                raise FileNotFoundError(f"Source list item {i} '{im}' does not exist or is not a readable image")
            files.append(arr)
        elif isinstance(im, (Image.Image, np.ndarray)):
            files.append(im)
        else:
            raise TypeError(
                f"Source list item {i} is a {type(im).__name__}; list items must be paths, PIL images or numpy arrays"
            )
    return files


def check_source(source: Any) -> tuple[Any, bool, bool, bool, bool, bool]:
    """Classify a source: returns (source, webcam, screenshot, from_img, in_memory, tensor)."""
    webcam = screenshot = from_img = in_memory = tensor = False
    if isinstance(source, (str, int, Path)):
        source = str(source)
        is_url = source.lower().startswith(_STREAM_PREFIXES)
        webcam = source.isnumeric() or source.endswith(".streams") or is_url
        screenshot = source.lower() == "screen"
    elif isinstance(source, LOADERS):
        in_memory = True
    elif isinstance(source, (list, tuple)):
        if source and all(isinstance(s, (str, Path)) for s in source):
            source = [str(s) for s in source]  # plain paths: read lazily, videos allowed
        else:
            source = autocast_list(source)
            from_img = True
    elif isinstance(source, (Image.Image, np.ndarray)):
        from_img = True
    elif isinstance(source, torch.Tensor):
        tensor = True
    else:
        raise TypeError(
            f"Unsupported source type {type(source).__name__}. Accepted: a path, folder, glob or .txt list (str/Path), "
            "a list of those or of images, a PIL image, a numpy BGR array or a BCHW torch.Tensor"
        )
    return source, webcam, screenshot, from_img, in_memory, tensor


def load_inference_source(
    source: Any = None,
    batch: int = 1,
    vid_stride: int = 1,
    buffer: bool = False,
) -> LoadImagesAndVideos | LoadPilAndNumpy | LoadTensor:
    """Pick the loader for `source` and tag it with a `source_type` (SourceTypes).

    `buffer` only matters for live streams, which this package does not read (no network).
    """
    if source is None:
        raise ValueError("No inference source given: pass source=... (an image, folder, glob, video, list, array)")
    source, stream, screenshot, from_img, in_memory, tensor = check_source(source)
    if stream or screenshot:
        raise ValueError(
            f"Source '{source}' is a webcam, URL, stream list or screenshot; this package predicts on local files, "
            "folders, globs, lists, PIL images, numpy arrays and tensors only"
        )
    source_type = source.source_type if in_memory else SourceTypes(stream, screenshot, from_img, tensor)
    if tensor:
        dataset = LoadTensor(source)
    elif in_memory:
        dataset = source
    elif from_img:
        dataset = LoadPilAndNumpy(source)
    else:
        dataset = LoadImagesAndVideos(source, batch=batch, vid_stride=vid_stride)
    dataset.source_type = source_type
    return dataset


def _suffix(path: str) -> str:
    return path.rsplit(".", 1)[-1].lower()


__all__ = (
    "SourceTypes",
    "LoadImagesAndVideos",
    "LoadPilAndNumpy",
    "LoadTensor",
    "LOADERS",
    "autocast_list",
    "check_source",
    "load_inference_source",
    "imread_bgr",
    "FORMATS_HELP_MSG",
)
