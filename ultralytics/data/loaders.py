"""Inference sources: files, folders, globs, lists, videos, live streams, screenshots, in-memory images and tensors.

Every loader iterates over batches shaped `(paths, images, info)`: three lists of equal length
holding the source path (or a made-up name), the BGR uint8 image (h, w, 3) - or, for
`LoadTensor`, the whole (B, 3, H, W) tensor - and a log prefix such as
"image 2/5 /data/bus.jpg: ".
"""

from __future__ import annotations

import glob
import math
import os
import threading
import time
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from PIL import Image

from ultralytics.data.utils import FORMATS_HELP_MSG, IMG_FORMATS, VID_FORMATS
from ultralytics.utils import LOGGER

_STREAM_PREFIXES = ("https://", "http://", "rtsp://", "rtmp://", "tcp://")
_MEDIA_FORMATS = IMG_FORMATS | VID_FORMATS


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


def _suffix(path: str) -> str:
    return path.rsplit(".", 1)[-1].lower()


def _expand_entry(entry: str, listing_dir: Path | None) -> list[str]:
    """The files one source entry stands for: a glob, a folder's media files, or a single file.

    listing_dir is the folder of the .txt file the entry came from; relative entries that do not
    exist from the working directory are looked up there.
    """
    full = str(Path(entry).absolute())
    if "*" in full:
        return sorted(glob.glob(full, recursive=True))
    if os.path.isdir(full):
        inside = sorted(glob.glob(os.path.join(full, "*.*")))
        if not any(_suffix(f) in _MEDIA_FORMATS for f in inside):
            raise FileNotFoundError(f"No images or videos found in folder '{entry}'. {FORMATS_HELP_MSG}")
        return inside
    if os.path.isfile(full):
        return [full]
    if listing_dir is not None and (listing_dir / entry).is_file():
        return [str((listing_dir / entry).absolute())]
    raise FileNotFoundError(f"Inference source '{entry}' does not exist")


def _source_entries(path: str | Path | Sequence[str | Path]) -> tuple[list[str], Path | None]:
    """Entries of a source (a .txt file is read line by line, lists are sorted) and the .txt's folder."""
    listing_dir = None
    if isinstance(path, (str, Path)) and Path(path).suffix == ".txt":
        listing_dir = Path(path).parent
        path = [line.strip() for line in Path(path).read_text().splitlines() if line.strip()]
    if isinstance(path, (list, tuple)):
        return sorted(map(str, path)), listing_dir
    return [str(path)], listing_dir


class LoadImagesAndVideos:
    """Images and videos from a file, folder, glob, list of paths, or a .txt file listing paths.

    Images come first (sorted), then videos frame by frame (every `vid_stride`-th frame).
    Unreadable images are skipped with a warning that names them. A batch never mixes images
    with video frames; frames of consecutive videos may share one.
    """

    def __init__(self, path: str | Path | Sequence[str | Path], batch: int = 1, vid_stride: int = 1):
        if batch < 1 or vid_stride < 1:
            raise ValueError(f"batch and vid_stride must be >= 1, got batch={batch}, vid_stride={vid_stride}")
        entries, listing_dir = _source_entries(path)
        found = [f for entry in entries for f in _expand_entry(entry, listing_dir)]
        images = [f for f in found if _suffix(f) in IMG_FORMATS]
        videos = [f for f in found if _suffix(f) in VID_FORMATS]
        if not images and not videos:
            raise FileNotFoundError(f"No images or videos found in '{path}'. {FORMATS_HELP_MSG}")

        self.files = [*images, *videos]
        self.ni = len(images)
        self.nf = len(self.files)
        self.video_flag = [k >= self.ni for k in range(self.nf)]
        self.mode = "image" if images else "video"
        self.vid_stride = vid_stride
        self.bs = batch
        self.cap: cv2.VideoCapture | None = None
        self.frame, self.frames, self.fps = 0, 0, 0
        self.count = 0
        self._items: Iterator = iter(())
        if videos:
            self._new_video(videos[0])

    def __iter__(self) -> LoadImagesAndVideos:
        self.count = 0
        self._items = self._walk()
        return self

    def __next__(self) -> tuple[list[str], list[np.ndarray], list[str]]:
        paths, imgs, info = [], [], []
        for path, im0, note, images_done in self._items:
            if im0 is not None:
                paths.append(path)
                imgs.append(im0)
                info.append(note)
            if len(imgs) >= self.bs or (images_done and imgs):
                return paths, imgs, info
        if not imgs:
            raise StopIteration
        return paths, imgs, info

    def _walk(self) -> Iterator[tuple[str, np.ndarray | None, str, bool]]:
        """(path, image or None if unreadable, log prefix, whether the images are used up) per item.

        The loader's counters are updated before each item is handed out, so they always describe
        what has been read so far.
        """
        while self.count < self.nf:
            path = self.files[self.count]
            if self.video_flag[self.count]:
                yield from self._video_frames(path)
            else:
                yield self._read_image(path)

    def _read_image(self, path: str) -> tuple[str, np.ndarray | None, str, bool]:
        self.mode = "image"
        im0 = imread_bgr(path)
        if im0 is None:
            LOGGER.warning(f"WARNING ⚠️ Image Read Error {path}: file is unreadable or not an image, skipping")
        note = f"image {self.count + 1}/{self.nf} {path}: "
        self.count += 1
        return path, im0, note, self.count >= self.ni

    def _video_frames(self, path: str) -> Iterator[tuple[str, np.ndarray, str, bool]]:
        """Every vid_stride-th frame of one video; moves on to the next file when it ends or fails."""
        self.mode = "video"
        if self.cap is None or not self.cap.isOpened():
            self._new_video(path)
        while self.cap is not None:
            ok = all(self.cap.grab() for _ in range(self.vid_stride))  # grab() skips without decoding
            ok, im0 = self.cap.retrieve() if ok else (False, None)
            if not ok:
                self._next_file()
                return
            self.frame += 1
            note = f"video {self.count + 1}/{self.nf} (frame {self.frame}/{self.frames}) {path}: "
            if self.frame == self.frames:
                self._next_file()
            yield path, im0, note, False

    def _next_file(self) -> None:
        self.count += 1
        if self.cap is not None:
            self.cap.release()
        self.cap = None

    def _new_video(self, path: str) -> None:
        """Open `path` and reset the frame counters; `frames` counts the frames that will be read."""
        capture = cv2.VideoCapture(path)
        if not capture.isOpened():
            raise FileNotFoundError(f"Failed to open video '{path}' with OpenCV")
        self.cap, self.frame = capture, 0
        self.fps = int(capture.get(cv2.CAP_PROP_FPS)) or 30
        self.frames = int(capture.get(cv2.CAP_PROP_FRAME_COUNT) / self.vid_stride)

    def __len__(self) -> int:
        return math.ceil(self.nf / self.bs)


# ----------------------------------------------------------------------------------------------
# Live sources: cameras, network streams, screenshots
# ----------------------------------------------------------------------------------------------
_BUFFERED_FRAMES = 30  # with stream_buffer=True a reader holds at most this many frames, then waits
_POLL_S = 0.005  # how often a waiting reader or consumer looks again


class StreamOpenError(ConnectionError, ValueError):
    """A camera or stream that cannot be opened. A ConnectionError as upstream raises; also a ValueError,
    because it is a bad source= argument, which the command line reports as a usage error."""


def _describe_source(target: int | str) -> str:
    return f"webcam (camera index {target})" if isinstance(target, int) else f"stream '{target}'"


def _open_capture(target: int | str) -> cv2.VideoCapture:
    """A camera index through OpenCV's default backend; a URL or file through its FFmpeg backend."""
    return cv2.VideoCapture(target) if isinstance(target, int) else cv2.VideoCapture(target, cv2.CAP_FFMPEG)


def _usable_fps(value: float) -> float:
    """Cameras and streams often report 0, NaN or absurd rates; those mean the usual 30."""
    return value if math.isfinite(value) and 0 < value <= 1000 else 30.0


class _StreamReader:
    """One source read by a background thread into a small queue of frames.

    With `buffer` every kept frame is queued (the reader waits when _BUFFERED_FRAMES are pending), so
    nothing is lost but the output may lag behind real time. Without it only the newest frame is
    kept, so the model always sees the present and frames it is too slow for are dropped. Every
    `vid_stride`-th frame is decoded; the ones between are only grabbed.

    A source with a known length (a video file or a URL to one) ends when its frames are read. A live
    source (unknown length) that stops delivering is re-opened up to `reconnects` times,
    `retry_delay` seconds apart, before the reader gives up with a warning.
    """

    def __init__(self, source: str, vid_stride: int, buffer: bool, reconnects: int, retry_delay: float):
        self.source = source
        self.target: int | str = int(source) if source.isnumeric() else source
        self.vid_stride, self.buffer = vid_stride, buffer
        self.reconnects, self.retry_delay = reconnects, retry_delay
        self.cap = _open_capture(self.target)
        if not self.cap.isOpened():
            raise StreamOpenError(
                f"Failed to open {_describe_source(self.target)}: check that the camera is connected and free, "
                "or that the URL is right and reachable"
            )
        self.width = int(self.cap.get(cv2.CAP_PROP_FRAME_WIDTH))
        self.height = int(self.cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        self.fps = _usable_fps(self.cap.get(cv2.CAP_PROP_FPS))
        count = self.cap.get(cv2.CAP_PROP_FRAME_COUNT)
        self.total = int(count) if math.isfinite(count) and count > 0 else math.inf  # inf: live
        ok, first = self.cap.read()
        if not ok or first is None:
            self.cap.release()
            raise StreamOpenError(f"The {_describe_source(self.target)} opened but delivered no frame")
        self.queue: deque[np.ndarray] = deque([first], maxlen=None if buffer else 1)
        self.read = 1  # frames consumed from the source so far, skipped ones included
        self.gave_up = False
        self.running = True
        self.thread = threading.Thread(target=self._run, daemon=True, name=f"stream-{source}")
        self.thread.start()

    @property
    def live(self) -> bool:
        return self.total == math.inf

    def _run(self) -> None:
        while self.running and self.read < self.total:
            if self.buffer and len(self.queue) >= _BUFFERED_FRAMES:
                time.sleep(_POLL_S)  # the consumer is behind: wait rather than drop
                continue
            frame = self._next_frame()
            if frame is None and not (self.live and self._reconnect()):
                break
            if frame is not None:
                self.queue.append(frame)
        self.running = False

    def _next_frame(self) -> np.ndarray | None:
        """Skip vid_stride - 1 frames, decode the next; None when the source fails or has ended."""
        ok = True
        for _ in range(self.vid_stride):
            ok = self.cap.grab()  # grab() moves on without decoding
            if not ok:
                break
            self.read += 1
        ok, frame = self.cap.retrieve() if ok else (False, None)
        if not ok or frame is None:
            if not self.live and self.read < self.total:
                LOGGER.warning(
                    f"WARNING ⚠️ stream '{self.source}' ended early, after {self.read} of {self.total} frames"
                )
            return None
        return frame

    def _reconnect(self) -> bool:
        """Re-open a live source that stopped; queues its first frame and returns True on success."""
        for attempt in range(1, self.reconnects + 1):
            LOGGER.warning(
                f"WARNING ⚠️ stream '{self.source}' is not responding, reconnecting ({attempt}/{self.reconnects})"
            )
            time.sleep(self.retry_delay)
            self.cap.release()
            self.cap = _open_capture(self.target)
            ok, frame = self.cap.read() if self.cap.isOpened() else (False, None)
            if ok and frame is not None:
                self.queue.append(frame)
                return True
        LOGGER.warning(f"WARNING ⚠️ stream '{self.source}' lost: no frame after {self.reconnects} reconnection attempts")
        self.gave_up = True
        return False

    def next_frame(self) -> np.ndarray | None:
        """The oldest queued frame (buffer) or the newest (no buffer), waiting for one; None once ended."""
        while not self.queue:
            if not self.thread.is_alive():
                return None
            time.sleep(_POLL_S)
        return self.queue.popleft()

    def close(self) -> None:
        self.running = False
        self.thread.join(timeout=5)
        self.cap.release()


def _stream_entries(sources: str) -> list[str]:
    """The sources of a .streams file (one per line), or the single source given."""
    if os.path.isfile(sources):
        entries = [line.strip() for line in Path(sources).read_text().splitlines() if line.strip()]
        if not entries:
            raise ValueError(f"Streams file '{sources}' lists no sources; put one camera index or URL per line")
        return entries
    return [sources]


class LoadStreams:
    """Cameras and network streams (rtsp/rtmp/http(s)/tcp), one thread each, read as one batch per step.

    `sources` is a camera index ('0'), a URL, or a `.streams` text file with one of those per line.
    Each batch holds one frame of every source; the run ends when any source ends (see _StreamReader
    for buffering, vid_stride and reconnection).
    """

    reconnects = 3  # attempts to re-open a live source that stopped delivering
    retry_delay = 1.0  # seconds before each attempt

    def __init__(self, sources: str = "file.streams", vid_stride: int = 1, buffer: bool = False):
        if vid_stride < 1:
            raise ValueError(f"vid_stride must be >= 1, got vid_stride={vid_stride}")
        self.sources = _stream_entries(str(sources))
        self.bs = len(self.sources)
        self.mode = "stream"
        self.buffer, self.vid_stride = buffer, vid_stride
        self.count = 0
        self.readers: list[_StreamReader] = []
        for k, source in enumerate(self.sources):
            try:
                reader = _StreamReader(source, vid_stride, buffer, self.reconnects, self.retry_delay)
            except StreamOpenError:
                self.close()
                raise
            self.readers.append(reader)
            frames = "live" if reader.live else f"{reader.total} frames"
            LOGGER.info(
                f"{k + 1}/{self.bs}: {source}... Success ✅ ({frames} of shape {reader.width}x{reader.height} "
                f"at {reader.fps:.2f} FPS)"
            )
        self.fps = [r.fps for r in self.readers]
        self.frames = [r.total for r in self.readers]
        self.shape = [(r.height, r.width, 3) for r in self.readers]
        LOGGER.info("")

    def __iter__(self) -> LoadStreams:
        self.count = -1
        return self

    def __next__(self) -> tuple[list[str], list[np.ndarray], list[str]]:
        self.count += 1
        images = []
        for reader in self.readers:
            frame = reader.next_frame()
            if frame is None:
                LOGGER.info(f"Stream '{reader.source}' ended after {self.count} batches")
                self.close()
                raise StopIteration
            images.append(frame)
        return list(self.sources), images, [""] * self.bs

    def close(self) -> None:
        """Stop every reader thread and release its capture."""
        for reader in getattr(self, "readers", ()):  # also when __init__ stopped before any opened
            reader.close()

    def __del__(self):
        # A consumer that stops early (breaks out of a stream=True loop) never reaches StopIteration;
        # the cameras are released when the loader goes away instead.
        self.close()

    def __len__(self) -> int:
        return self.bs


def _import_mss():
    try:
        import mss
    except ImportError as e:
        raise ModuleNotFoundError(
            "source=screen needs the 'mss' package for screenshots: pip install mss (or pip install -e '.[screen]')"
        ) from e
    return mss


def _open_screen(mss: Any, source: str) -> Any:
    """mss's screen grabber; no display (e.g. $DISPLAY unset) is a StreamOpenError that says so."""
    failure = getattr(getattr(mss, "exception", None), "ScreenShotError", OSError)
    try:
        return mss.mss()
    except failure as e:
        raise StreamOpenError(f"Screenshot source '{source}' cannot reach a display: {e}") from e


def _screen_region(source: str) -> tuple[int, list[int]]:
    """'screen [n [left top width height]]' -> (screen number, [] or the four region numbers)."""
    words = source.split()[1:]
    if len(words) not in {0, 1, 5} or not all(w.lstrip("-").isdigit() for w in words):
        raise ValueError(
            f"Screenshot source '{source}' is not understood; use 'screen', 'screen N' or "
            "'screen N LEFT TOP WIDTH HEIGHT' (integers; the region is relative to monitor N)"
        )
    numbers = [int(w) for w in words]
    return (numbers[0] if numbers else 0), numbers[1:]


class LoadScreenshots:
    """Endless screenshots of a monitor or a region of it, with the optional `mss` package.

    source: 'screen' (monitor 0: every monitor together), 'screen N', or 'screen N LEFT TOP WIDTH HEIGHT'.
    """

    def __init__(self, source: str = "screen"):
        mss = _import_mss()
        self.screen, region = _screen_region(source)
        self.sct = _open_screen(mss, source)
        monitors = self.sct.monitors
        if not 0 <= self.screen < len(monitors):
            raise ValueError(
                f"Screenshot source '{source}': there is no monitor {self.screen}, only 0-{len(monitors) - 1}"
            )
        monitor = monitors[self.screen]
        left, top, width, height = region or (0, 0, monitor["width"], monitor["height"])
        self.left, self.top = monitor["left"] + left, monitor["top"] + top
        self.width, self.height = width, height
        self.monitor = {"left": self.left, "top": self.top, "width": width, "height": height}
        self.mode = "stream"
        self.bs = 1
        self.fps = 30
        self.frame = 0
        self.count = 0

    def __iter__(self) -> LoadScreenshots:
        return self

    def __next__(self) -> tuple[list[str], list[np.ndarray], list[str]]:
        shot = np.asarray(self.sct.grab(self.monitor))  # (h, w, 4) BGRA
        image = np.ascontiguousarray(shot[:, :, :3])
        note = f"screen {self.screen} (LTWH): {self.left},{self.top},{self.width},{self.height}: "
        self.frame += 1
        self.count += 1
        return [str(self.screen)], [image], [note]

    def __len__(self) -> int:
        return self.bs


class _OneBatch:
    """Iteration protocol of the in-memory loaders: exactly one batch, (paths, images, blank notes)."""

    paths: list[str]
    bs: int

    def _batch(self) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must implement _batch()")

    def __iter__(self):
        self.count = 0
        return self

    def __next__(self):
        if self.count:
            raise StopIteration
        self.count = 1
        return self.paths, self._batch(), [""] * self.bs


def _pil_to_bgr(im: Image.Image) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(im.convert("RGB"))[:, :, ::-1])


def _three_channels(im: np.ndarray, i: int) -> np.ndarray:
    """(h, w), (h, w, 1), (h, w, 3) or (h, w, 4) -> contiguous (h, w, 3); greys are repeated, alpha dropped."""
    if im.ndim == 2:
        im = im[:, :, None]
    if im.ndim != 3 or im.shape[2] not in {1, 3, 4}:
        raise ValueError(f"Image {i} has shape {im.shape}; expected (h, w), (h, w, 3) BGR or (h, w, 4) BGRA")
    if im.shape[2] == 1:
        return np.ascontiguousarray(np.repeat(im, 3, axis=2))
    return np.ascontiguousarray(im[:, :, :3]) if im.shape[2] == 4 else im


class LoadPilAndNumpy(_OneBatch):
    """One batch made of in-memory images: PIL images (any mode) or numpy BGR arrays."""

    def __init__(self, im0: Any):
        images = im0 if isinstance(im0, list) else [im0]
        # PIL images opened from disk remember their file name; others get a placeholder.
        self.paths = [getattr(im, "filename", "") or f"image{k}.jpg" for k, im in enumerate(images)]
        self.im0 = [self._single_check(im, k) for k, im in enumerate(images)]
        self.mode = "image"
        self.bs = len(self.im0)
        self.count = 0

    @staticmethod
    def _single_check(im: Any, i: int = 0) -> np.ndarray:
        """Return a contiguous BGR uint8 (h, w, 3) array."""
        if isinstance(im, Image.Image):
            im = _pil_to_bgr(im)
        elif not isinstance(im, np.ndarray):
            raise TypeError(f"Image {i} is a {type(im).__name__}; expected a PIL.Image or a numpy (h, w, 3) BGR array")
        im = _three_channels(im, i)
        if im.dtype != np.uint8:
            raise ValueError(f"Image {i} has dtype {im.dtype}; numpy images must be uint8 0-255 BGR")
        return im

    def _batch(self) -> list[np.ndarray]:
        return self.im0

    def __len__(self) -> int:
        return self.bs


class LoadTensor(_OneBatch):
    """One batch from a (B, 3, H, W) float tensor in 0-1, RGB, sides multiples of `stride`."""

    def __init__(self, im0: torch.Tensor):
        self.im0 = self._single_check(im0)
        self.bs = len(self.im0)
        self.mode = "image"
        self.paths = [f"image{k}.jpg" for k in range(self.bs)]
        self.count = 0

    @staticmethod
    def _single_check(im: torch.Tensor, stride: int = 32) -> torch.Tensor:
        """The tensor as (B, 3, H, W), after checking layout, divisibility, dtype and value range."""
        rule = (
            f"torch.Tensor sources must be BCHW, e.g. shape (1, 3, 640, 640), with H and W multiples of {stride}, "
            "float values in 0.0-1.0 and RGB channel order"
        )
        if im.ndim == 3:
            LOGGER.warning(f"WARNING ⚠️ got a tensor of shape {tuple(im.shape)}; adding a batch dimension. {rule}")
            im = im[None]
        shape = tuple(im.shape)
        if len(shape) != 4 or shape[1] != 3:
            raise ValueError(f"Tensor source has shape {shape}. {rule}")
        if shape[2] % stride or shape[3] % stride:
            raise ValueError(f"Tensor source has shape {shape}, not divisible by {stride}. {rule}")
        if not im.is_floating_point():
            raise ValueError(f"Tensor source has dtype {im.dtype}. {rule}")
        peak = im.max().item() if im.numel() else 0.0
        if peak > 1.0 + torch.finfo(im.dtype).eps:
            raise ValueError(f"Tensor source has values up to {peak:.4g}. {rule}")
        return im

    def _batch(self) -> torch.Tensor:
        return self.im0

    def __len__(self) -> int:
        return self.bs


LOADERS = (LoadImagesAndVideos, LoadPilAndNumpy, LoadTensor, LoadStreams, LoadScreenshots)


def _read_list_item(i: int, item: Any) -> np.ndarray | Image.Image:
    if isinstance(item, (Image.Image, np.ndarray)):
        return item
    if not isinstance(item, (str, Path)):
        raise TypeError(
            f"Source list item {i} is a {type(item).__name__}; list items must be paths, PIL images or numpy arrays"
        )
    im = imread_bgr(item) if Path(item).is_file() else None
    if im is None:
        raise FileNotFoundError(f"Source list item {i} '{item}' does not exist or is not a readable image")
    return im


def autocast_list(source: Sequence[Any]) -> list[np.ndarray | Image.Image]:
    """Turn a mixed list of paths, PIL images and numpy arrays into in-memory images."""
    return [_read_list_item(i, item) for i, item in enumerate(source)]


def _is_live(text: str) -> bool:
    """Webcam index, .streams list or network URL."""
    return text.isnumeric() or text.endswith(".streams") or text.lower().startswith(_STREAM_PREFIXES)


def check_source(source: Any) -> tuple[Any, bool, bool, bool, bool, bool]:
    """Classify a source: returns (source, webcam, screenshot, from_img, in_memory, tensor)."""
    if isinstance(source, (str, int, Path)):
        text = str(source)
        screen = text.lower().split(" ", 1)[0] == "screen"  # 'screen' or 'screen N [LEFT TOP WIDTH HEIGHT]'
        return text, _is_live(text), screen, False, False, False
    if isinstance(source, LOADERS):
        return source, False, False, False, True, False
    if isinstance(source, (list, tuple)):
        if source and all(isinstance(s, (str, Path)) for s in source):
            return [str(s) for s in source], False, False, False, False, False  # read lazily; videos allowed
        return autocast_list(source), False, False, True, False, False
    if isinstance(source, (Image.Image, np.ndarray)):
        return source, False, False, True, False, False
    if isinstance(source, torch.Tensor):
        return source, False, False, False, False, True
    raise TypeError(
        f"Unsupported source type {type(source).__name__}. Accepted: a path, folder, glob or .txt list (str/Path), "
        "a list of those or of images, a PIL image, a numpy BGR array or a BCHW torch.Tensor"
    )


def load_inference_source(
    source: Any = None,
    batch: int = 1,
    vid_stride: int = 1,
    buffer: bool = False,
) -> LoadImagesAndVideos | LoadPilAndNumpy | LoadTensor | LoadStreams | LoadScreenshots:
    """Pick the loader for `source` and tag it with a `source_type` (SourceTypes).

    Cameras, URLs and .streams files get LoadStreams (`buffer` is stream_buffer), 'screen...' gets
    LoadScreenshots; `batch` applies to files only, a stream batch holding one frame per source.
    """
    if source is None:
        raise ValueError("No inference source given: pass source=... (an image, folder, glob, video, list, array)")
    source, live, screen, from_img, in_memory, tensor = check_source(source)
    if in_memory:
        loader, kind = source, source.source_type
    else:
        kind = SourceTypes(stream=live, screenshot=screen, from_img=from_img, tensor=tensor)
        loader = _new_loader(source, kind, batch, vid_stride, buffer)
    loader.source_type = kind
    return loader


def _new_loader(source: Any, kind: SourceTypes, batch: int, vid_stride: int, buffer: bool):
    if kind.tensor:
        return LoadTensor(source)
    if kind.from_img:
        return LoadPilAndNumpy(source)
    if kind.stream:
        return LoadStreams(source, vid_stride=vid_stride, buffer=buffer)
    if kind.screenshot:
        return LoadScreenshots(source)
    return LoadImagesAndVideos(source, batch=batch, vid_stride=vid_stride)


__all__ = (
    "SourceTypes",
    "LoadImagesAndVideos",
    "LoadPilAndNumpy",
    "LoadTensor",
    "LoadStreams",
    "LoadScreenshots",
    "StreamOpenError",
    "LOADERS",
    "autocast_list",
    "check_source",
    "load_inference_source",
    "imread_bgr",
    "FORMATS_HELP_MSG",
)
