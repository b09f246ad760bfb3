"""Prediction results: `Results` for one image and `Boxes` for its detections.

Boxes are stored as one (n, 6) tensor `[x1, y1, x2, y2, conf, cls]` in pixels of the original
image, or (n, 7) `[x1, y1, x2, y2, track_id, conf, cls]` when tracked, as upstream does.
"""

from __future__ import annotations

import json
import os
from copy import deepcopy
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from ultralytics.utils import LINUX, LOGGER
from ultralytics.utils.ops import clip_boxes, xyxy2xywh
from ultralytics.utils.plotting import Annotator, colors, save_one_box

ArrayLike = "torch.Tensor | np.ndarray"

# Result fields that hold per-detection data; RT-DETR fills only `boxes`.
_FIELDS = ("boxes", "masks", "probs", "keypoints", "obb")

# save_crop's default file name. Left at this default (checked by identity), the crops are named
# after the image instead, so an explicit file_name="im.jpg" still means exactly that.
_IMAGE_STEM = Path("im.jpg")


def _without_jpg(name: str) -> str:
    """`name` minus a trailing '.jpg' (any case); other dots stay, as in 'frame.0001'."""
    return name[: -len(".jpg")] if name.lower().endswith(".jpg") else name


def _missing_display() -> str | None:
    """Why no window can be opened here, or None when one may be (the final test is cv2.imshow)."""
    if LINUX and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return "this Linux session has no display ($DISPLAY is not set)"
    return None


class BaseTensor:
    """A tensor or array plus the (h, w) of the image it refers to, movable between devices.

    Every conversion returns a new object of the same class around the converted data; numpy
    data is already on the CPU, so cpu() and numpy() hand it back unchanged.
    """

    def __init__(self, data: torch.Tensor | np.ndarray, orig_shape: tuple[int, int]):
        if not isinstance(data, (torch.Tensor, np.ndarray)):
            kind = type(self).__name__
            raise TypeError(f"{kind} data must be a torch.Tensor or np.ndarray, got {type(data).__name__}")
        self.data = data
        self.orig_shape = orig_shape

    def _rewrap(self, data: torch.Tensor | np.ndarray) -> BaseTensor:
        return type(self)(data, self.orig_shape)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.data.shape)

    def cpu(self) -> BaseTensor:
        on_host = isinstance(self.data, np.ndarray)
        return self if on_host else self._rewrap(self.data.cpu())

    def numpy(self) -> BaseTensor:
        on_host = isinstance(self.data, np.ndarray)
        return self if on_host else self._rewrap(self.data.cpu().numpy())

    def cuda(self) -> BaseTensor:
        return self._rewrap(torch.as_tensor(self.data).cuda())

    def to(self, *args, **kwargs) -> BaseTensor:
        """Like torch.Tensor.to (device and/or dtype); numpy data becomes a tensor first."""
        return self._rewrap(torch.as_tensor(self.data).to(*args, **kwargs))

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, idx) -> BaseTensor:
        return self._rewrap(self.data[idx])


class Boxes(BaseTensor):
    """Detections of one image; every property keeps the leading (n,) dimension."""

    def __init__(self, boxes: torch.Tensor | np.ndarray, orig_shape: tuple[int, int]):
        rows = boxes[None, :] if boxes.ndim == 1 else boxes  # a single box indexed out of a Boxes
        width = rows.shape[-1]
        if width not in {6, 7}:
            raise ValueError(
                "Boxes expects (n, 6) [x1, y1, x2, y2, conf, cls] or (n, 7) with a track id, "
                f"got shape {tuple(rows.shape)}"
            )
        super().__init__(rows, orig_shape)
        self.is_track = width == 7

    @property
    def xyxy(self) -> ArrayLike:
        """(n, 4) pixel corners."""
        return self.data[:, :4]

    @property
    def conf(self) -> ArrayLike:
        """(n,) confidence scores."""
        return self.data[:, -2]

    @property
    def cls(self) -> ArrayLike:
        """(n,) class ids as floats."""
        return self.data[:, -1]

    @property
    def id(self) -> ArrayLike | None:
        """(n,) track ids, or None when not tracked."""
        if not self.is_track:
            return None
        return self.data[:, 4]  # the column between the corners and conf

    @property
    def xywh(self) -> ArrayLike:
        """(n, 4) pixel centre and size."""
        return xyxy2xywh(self.xyxy)

    def _image_scale(self) -> ArrayLike:
        """(4,) [w, h, w, h] of the original image, in the data's type and device."""
        h, w = self.orig_shape[:2]
        if isinstance(self.data, np.ndarray):
            return np.array([w, h, w, h], dtype=self.data.dtype)
        return torch.tensor([w, h, w, h], dtype=self.data.dtype, device=self.data.device)

    @property
    def xyxyn(self) -> ArrayLike:
        """(n, 4) corners divided by the original width and height."""
        return self.xyxy / self._image_scale()

    @property
    def xywhn(self) -> ArrayLike:
        """(n, 4) centre and size divided by the original width and height."""
        return self.xywh / self._image_scale()


def _wrap_field(name: str, data: Any, orig_shape: tuple[int, int]) -> BaseTensor | None:
    """Boxes for `boxes`, a plain BaseTensor for the other tasks' fields, None for no data."""
    if data is None:
        return None
    return Boxes(data, orig_shape) if name == "boxes" else BaseTensor(data, orig_shape)


def _box_label(names: dict, cls: int, track: int | None, score: float, conf: bool, labels: bool) -> str | None:
    """'id:3 square 0.91', 'square 0.91', 'square' or None, as the plot flags ask."""
    if not labels:
        return None
    name = str(names.get(cls, cls)) if track is None else f"id:{track} {names.get(cls, cls)}"
    return f"{name} {score:.2f}" if conf else name


class Results:
    """Everything predicted for one image, with helpers to draw, save and serialise it.

    Only `boxes` is produced by RT-DETR; masks, probs, keypoints and obb are accepted for
    signature compatibility and kept as plain `BaseTensor`s.
    """

    _keys = _FIELDS

    def __init__(
        self,
        orig_img: np.ndarray,
        path: str,
        names: dict[int, str],
        boxes: torch.Tensor | np.ndarray | None = None,
        masks: torch.Tensor | None = None,
        probs: torch.Tensor | None = None,
        keypoints: torch.Tensor | None = None,
        obb: torch.Tensor | None = None,
        speed: dict[str, float | None] | None = None,
    ):
        self.orig_img = orig_img  # BGR uint8 (h, w, 3)
        self.orig_shape = tuple(orig_img.shape[:2])
        given = {"boxes": boxes, "masks": masks, "probs": probs, "keypoints": keypoints, "obb": obb}
        for name, data in given.items():
            setattr(self, name, _wrap_field(name, data, self.orig_shape))
        self.speed = dict.fromkeys(("preprocess", "inference", "postprocess")) if speed is None else speed
        self.names = names
        self.path = path
        self.save_dir: str | None = None

    def _present(self) -> list[tuple[str, BaseTensor]]:
        """(name, value) of every field that holds data."""
        return [(k, getattr(self, k)) for k in self._keys if getattr(self, k) is not None]

    def __getitem__(self, idx) -> Results:
        """The detections selected by `idx` (int, slice, mask or index tensor), as a new Results."""
        return self._apply("__getitem__", idx)

    def __len__(self) -> int:
        present = self._present()
        return len(present[0][1]) if present else 0

    def __repr__(self) -> str:
        count = 0 if self.boxes is None else len(self.boxes)
        fields = f"path={self.path!r}, orig_shape={self.orig_shape}, boxes={count}, speed={self.speed}"
        return f"{type(self).__name__}({fields})"

    def update(
        self,
        boxes: torch.Tensor | None = None,
        masks: torch.Tensor | None = None,
        probs: torch.Tensor | None = None,
        obb: torch.Tensor | None = None,
    ) -> None:
        """Replace the given fields; new boxes are clipped to the image."""
        if boxes is not None:
            boxes = clip_boxes(boxes, self.orig_shape)
        for name, data in (("boxes", boxes), ("masks", masks), ("probs", probs), ("obb", obb)):
            if data is not None:
                setattr(self, name, _wrap_field(name, data, self.orig_shape))

    def _apply(self, fn: str, *args, **kwargs) -> Results:
        """A new Results whose fields are `field.<fn>(*args, **kwargs)` of this one's."""
        out = self.new()
        for name, value in self._present():
            setattr(out, name, getattr(value, fn)(*args, **kwargs))
        return out

    def cpu(self) -> Results:
        return self._apply("cpu")

    def numpy(self) -> Results:
        return self._apply("numpy")

    def cuda(self) -> Results:
        return self._apply("cuda")

    def to(self, *args, **kwargs) -> Results:
        return self._apply("to", *args, **kwargs)

    def new(self) -> Results:
        """An empty Results for the same image, path, names and speed."""
        return type(self)(self.orig_img, path=self.path, names=self.names, speed=self.speed)

    # ------------------------------------------------------------------------------------------
    # Drawing
    # ------------------------------------------------------------------------------------------
    def plot(
        self,
        conf: bool = True,
        line_width: float | None = None,
        font_size: float | None = None,
        font: str = "Arial.ttf",
        pil: bool = False,
        img: np.ndarray | None = None,
        im_gpu: torch.Tensor | None = None,
        kpt_radius: int = 5,
        kpt_line: bool = True,
        labels: bool = True,
        boxes: bool = True,
        masks: bool = True,
        probs: bool = True,
        show: bool = False,
        save: bool = False,
        filename: str | None = None,
        color_mode: str = "class",
    ) -> np.ndarray:
        """Draw the boxes on a copy of the image and return it as a BGR uint8 (h, w, 3) array.

        `im_gpu`, `kpt_*`, `masks` and `probs` only matter for other tasks and are accepted for
        compatibility; `color_mode` is "class" (one colour per class) or "instance".
        """
        if color_mode not in {"class", "instance"}:
            raise ValueError(f"plot(color_mode={color_mode!r}) is not supported; use 'class' or 'instance'")
        canvas = np.ascontiguousarray(deepcopy(self.orig_img if img is None else img))
        annotator = Annotator(canvas, line_width, font_size, font, pil, example=str(self.names))
        if boxes and self.boxes is not None:
            self._draw_boxes(annotator, conf, labels, by_class=color_mode == "class")
        drawn = annotator.result()
        if show:
            self.show_image(drawn)
        if save:
            self._write_image(drawn, filename)
        return drawn

    def _draw_boxes(self, annotator: Annotator, conf: bool, labels: bool, by_class: bool) -> None:
        """Last detection first, so that the most confident (first) boxes end up on top."""
        for index in range(len(self.boxes) - 1, -1, -1):
            box = self.boxes[index]
            cls = int(box.cls[0])
            track = None if box.id is None else int(box.id[0])
            text = _box_label(self.names, cls, track, float(box.conf[0]), conf, labels)
            if by_class:
                colour_key = cls
            else:
                colour_key = index if track is None else track
            annotator.box_label(box.xyxy[0], text, color=colors(colour_key, True))

    @staticmethod
    def _write_image(image: np.ndarray, filename: str | None) -> None:
        if not filename:
            raise ValueError("plot(save=True) needs a filename")
        Path(filename).parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(filename), image)

    def show(self, *args, **kwargs) -> None:
        """Display the annotated image (plot() arguments) in a window.

        Where no window can open (Linux without $DISPLAY, or an OpenCV build without GUI support) this
        logs why and how to save the image instead, rather than raising.
        """
        drawn = self.plot(*args, **kwargs)
        reason = _missing_display()
        if reason is None:
            try:
                self.show_image(drawn)
                return
            except cv2.error as e:
                reason = f"cv2.imshow() failed: {str(e).strip().splitlines()[-1]}"
        LOGGER.warning(
            f"WARNING ⚠️ Results.show() displayed nothing for '{self.path}' because {reason}. "
            "Write the annotated image to disk instead: result.save('out.jpg'), or predict(..., save=True)."
        )

    def show_image(self, im: np.ndarray) -> None:
        """Show `im` in a window named after the source path, for half a second."""
        cv2.imshow(str(self.path), im)
        cv2.waitKey(500)

    def save(self, filename: str | None = None, *args, **kwargs) -> str:
        """Write the annotated image (default name `results_<image name>`) and return the path."""
        target = filename or "results_" + Path(self.path).name
        self.plot(*args, save=True, filename=target, **kwargs)
        return target

    # ------------------------------------------------------------------------------------------
    # Text and files
    # ------------------------------------------------------------------------------------------
    def verbose(self) -> str:
        """Per-class counts for the log line, e.g. "2 persons, 1 bus, " or "(no detections), "."""
        if len(self) == 0:
            return "" if self.probs is not None else "(no detections), "
        if self.boxes is None:
            return ""
        classes, counts = torch.as_tensor(self.boxes.cls).unique(return_counts=True)  # sorted by class
        return "".join(
            f"{n} {self.names[int(c)]}{'s' * (n > 1)}, " for c, n in zip(classes.tolist(), counts.tolist())
        )

    def save_txt(self, txt_file: str | Path, save_conf: bool = False) -> str:
        """Append one `cls xc yc w h [conf] [track_id]` line (normalised) per box to txt_file."""
        rows = [] if self.boxes is None else [self._label_row(box, save_conf) for box in self.boxes]
        if rows:
            target = Path(txt_file)
            target.parent.mkdir(parents=True, exist_ok=True)
            with target.open("a", encoding="utf-8") as f:
                f.write("".join(f"{row}\n" for row in rows))
        return str(txt_file)

    @staticmethod
    def _label_row(box: Boxes, save_conf: bool) -> str:
        """One box as 'cls xc yc w h[ conf][ track_id]', numbers in %g form."""
        values = [int(box.cls[0]), *(float(v) for v in box.xywhn.reshape(-1))]
        if save_conf:
            values.append(float(box.conf[0]))
        if box.id is not None:
            values.append(int(box.id[0]))
        return " ".join(f"{v:g}" for v in values)

    def save_crop(self, save_dir: str | Path, file_name: str | Path = _IMAGE_STEM) -> None:
        """Save each detection as `save_dir/<class name>/<file_name>.jpg` (a slightly padded crop).

        `file_name` defaults to the image's stem; a trailing '.jpg' in it is not doubled. Further
        boxes of one class in one image are numbered: stem.jpg, stem2.jpg, stem3.jpg, ...
        """
        if self.boxes is None:
            LOGGER.warning("WARNING ⚠️ save_crop: no boxes to crop")
            return
        stem = Path(self.path).stem if file_name is _IMAGE_STEM else _without_jpg(str(Path(file_name)))
        for box in self.boxes:
            folder = Path(save_dir) / str(self.names[int(box.cls[0])])
            # save_one_box appends '.jpg' and moves on to stem2.jpg, ... when the name is taken
            target = folder / f"{stem}.jpg"
            save_one_box(torch.as_tensor(box.xyxy[0]), self.orig_img.copy(), file=target, BGR=True)

    def summary(self, normalize: bool = False, decimals: int = 5) -> list[dict[str, Any]]:
        """One dict per detection: name, class, confidence, box {x1, y1, x2, y2} (and track_id)."""
        if self.boxes is None:
            return []
        height, width = self.orig_shape if normalize else (1, 1)
        scale = (width, height, width, height)
        rows = []
        for box in self.boxes:
            cls = int(box.cls[0])
            corners = [float(v) for v in box.xyxy[0]]
            entry = {
                "name": self.names[cls],
                "class": cls,
                "confidence": round(float(box.conf[0]), decimals),
                "box": {k: round(v / s, decimals) for k, v, s in zip(("x1", "y1", "x2", "y2"), corners, scale)},
            }
            if box.is_track:
                entry["track_id"] = int(box.id[0])
            rows.append(entry)
        return rows

    def to_json(self, normalize: bool = False, decimals: int = 5) -> str:
        """summary() as an indented JSON string."""
        return json.dumps(self.summary(normalize=normalize, decimals=decimals), indent=2)

    def to_df(self, normalize: bool = False, decimals: int = 5):
        """summary() as a pandas DataFrame: one row per detection, columns name, class, confidence, box.

        pandas is optional (`pip install pandas`); to_json needs nothing extra.
        """
        try:
            import pandas as pd
        except ImportError as err:
            raise ImportError(
                "Results.to_df and Results.to_csv need pandas: pip install pandas (Results.to_json works without it)"
            ) from err
        return pd.DataFrame(self.summary(normalize=normalize, decimals=decimals))

    def to_csv(self, normalize: bool = False, decimals: int = 5, *args, **kwargs) -> str | None:
        """to_df() written by DataFrame.to_csv: the CSV text, or None when a path is passed on to it."""
        return self.to_df(normalize=normalize, decimals=decimals).to_csv(*args, **kwargs)
