"""Prediction results: `Results` for one image and `Boxes` for its detections.

Boxes are stored as one (n, 6) tensor `[x1, y1, x2, y2, conf, cls]` in pixels of the original
image, or (n, 7) `[x1, y1, x2, y2, track_id, conf, cls]` when tracked, as upstream does.
"""

from __future__ import annotations

import json
from copy import deepcopy
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from ultralytics.utils import LOGGER
from ultralytics.utils.ops import clip_boxes, xyxy2xywh
from ultralytics.utils.plotting import Annotator, colors, save_one_box

ArrayLike = "torch.Tensor | np.ndarray"


class BaseTensor:
    """A tensor or array plus the (h, w) of the image it refers to, movable between devices."""

    def __init__(self, data: torch.Tensor | np.ndarray, orig_shape: tuple[int, int]):
        if not isinstance(data, (torch.Tensor, np.ndarray)):
            raise TypeError(f"{type(self).__name__} data must be a torch.Tensor or np.ndarray, got {type(data).__name__}")
        self.data = data
        self.orig_shape = orig_shape

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.data.shape)

    def cpu(self) -> "BaseTensor":
        return self if isinstance(self.data, np.ndarray) else self.__class__(self.data.cpu(), self.orig_shape)

    def numpy(self) -> "BaseTensor":
        return self if isinstance(self.data, np.ndarray) else self.__class__(self.data.cpu().numpy(), self.orig_shape)

    def cuda(self) -> "BaseTensor":
        return self.__class__(torch.as_tensor(self.data).cuda(), self.orig_shape)

    def to(self, *args, **kwargs) -> "BaseTensor":
        return self.__class__(torch.as_tensor(self.data).to(*args, **kwargs), self.orig_shape)

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, idx) -> "BaseTensor":
        return self.__class__(self.data[idx], self.orig_shape)


class Boxes(BaseTensor):
    """Detections of one image; every property keeps the leading (n,) dimension."""

    def __init__(self, boxes: torch.Tensor | np.ndarray, orig_shape: tuple[int, int]):
        if boxes.ndim == 1:
            boxes = boxes[None, :]
        n = boxes.shape[-1]
        if n not in {6, 7}:
            raise ValueError(
                f"Boxes expects (n, 6) [x1, y1, x2, y2, conf, cls] or (n, 7) with a track id, got shape {tuple(boxes.shape)}"
            )
        super().__init__(boxes, orig_shape)
        self.is_track = n == 7

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
        return self.data[:, -3] if self.is_track else None

    @property
    def xywh(self) -> ArrayLike:
        """(n, 4) pixel centre and size."""
        return xyxy2xywh(self.xyxy)

    def _gain(self) -> ArrayLike:
        h, w = self.orig_shape[:2]
        gain = [w, h, w, h]
        if isinstance(self.data, torch.Tensor):
            return torch.tensor(gain, dtype=self.data.dtype, device=self.data.device)
        return np.array(gain, dtype=self.data.dtype)

    @property
    def xyxyn(self) -> ArrayLike:
        """(n, 4) corners divided by the original width and height."""
        return self.xyxy / self._gain()

    @property
    def xywhn(self) -> ArrayLike:
        """(n, 4) centre and size divided by the original width and height."""
        return self.xywh / self._gain()


class Results:
    """Everything predicted for one image, with helpers to draw, save and serialise it.

    Only `boxes` is produced by RT-DETR; masks, probs, keypoints and obb are accepted for
    signature compatibility and kept as plain `BaseTensor`s.
    """

    _keys = ("boxes", "masks", "probs", "keypoints", "obb")

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
        self.boxes = Boxes(boxes, self.orig_shape) if boxes is not None else None
        self.masks = BaseTensor(masks, self.orig_shape) if masks is not None else None
        self.probs = BaseTensor(probs, self.orig_shape) if probs is not None else None
        self.keypoints = BaseTensor(keypoints, self.orig_shape) if keypoints is not None else None
        self.obb = BaseTensor(obb, self.orig_shape) if obb is not None else None
        self.speed = speed if speed is not None else {"preprocess": None, "inference": None, "postprocess": None}
        self.names = names
        self.path = path
        self.save_dir: str | None = None

    def __getitem__(self, idx) -> "Results":
        return self._apply("__getitem__", idx)

    def __len__(self) -> int:
        for k in self._keys:
            v = getattr(self, k)
            if v is not None:
                return len(v)
        return 0

    def __repr__(self) -> str:
        n = len(self.boxes) if self.boxes is not None else 0
        return f"{type(self).__name__}(path={self.path!r}, orig_shape={self.orig_shape}, boxes={n}, speed={self.speed})"

    def update(
        self,
        boxes: torch.Tensor | None = None,
        masks: torch.Tensor | None = None,
        probs: torch.Tensor | None = None,
        obb: torch.Tensor | None = None,
    ) -> None:
        """Replace the given fields; new boxes are clipped to the image."""
        if boxes is not None:
            self.boxes = Boxes(clip_boxes(boxes, self.orig_shape), self.orig_shape)
        if masks is not None:
            self.masks = BaseTensor(masks, self.orig_shape)
        if probs is not None:
            self.probs = BaseTensor(probs, self.orig_shape)
        if obb is not None:
            self.obb = BaseTensor(obb, self.orig_shape)

    def _apply(self, fn: str, *args, **kwargs) -> "Results":
        r = self.new()
        for k in self._keys:
            v = getattr(self, k)
            if v is not None:
                setattr(r, k, getattr(v, fn)(*args, **kwargs))
        return r

    def cpu(self) -> "Results":
        return self._apply("cpu")

    def numpy(self) -> "Results":
        return self._apply("numpy")

    def cuda(self) -> "Results":
        return self._apply("cuda")

    def to(self, *args, **kwargs) -> "Results":
        return self._apply("to", *args, **kwargs)

    def new(self) -> "Results":
        """An empty Results for the same image, path, names and speed."""
        return Results(orig_img=self.orig_img, path=self.path, names=self.names, speed=self.speed)

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
        if self.boxes is not None and boxes:
            # Drawn in reverse so the most confident (first) detections end up on top.
            for i, d in reversed(list(enumerate(self.boxes))):
                c = int(d.cls[0])
                track = None if d.id is None else int(d.id[0])
                name = ("" if track is None else f"id:{track} ") + str(self.names.get(c, c))
                label = (f"{name} {float(d.conf[0]):.2f}" if conf else name) if labels else None
                key = c if color_mode == "class" else (track if track is not None else i)
                annotator.box_label(d.xyxy[0], label, color=colors(key, True))
        out = annotator.result()
        if show:
            self.show_image(out)
        if save:
            if not filename:
                raise ValueError("plot(save=True) needs a filename")
            Path(filename).parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(filename), out)
        return out

    def show(self, *args, **kwargs) -> None:
        """Display the annotated image in a window."""
        self.plot(show=True, *args, **kwargs)

    def show_image(self, im: np.ndarray) -> None:
        cv2.imshow(str(self.path), im)
        cv2.waitKey(500)

    def save(self, filename: str | None = None, *args, **kwargs) -> str:
        """Write the annotated image (default name `results_<image name>`) and return the path."""
        if not filename:
            filename = f"results_{Path(self.path).name}"
        self.plot(*args, save=True, filename=filename, **kwargs)
        return filename

    def verbose(self) -> str:
        """Per-class counts for the log line, e.g. "2 persons, 1 bus, " or "(no detections), "."""
        if len(self) == 0:
            return "" if self.probs is not None else "(no detections), "
        out = ""
        if self.boxes is not None:
            cls = torch.as_tensor(self.boxes.cls)
            for c in cls.unique():
                n = int((cls == c).sum())
                out += f"{n} {self.names[int(c)]}{'s' * (n > 1)}, "
        return out

    def save_txt(self, txt_file: str | Path, save_conf: bool = False) -> str:
        """Append one `cls xc yc w h [conf] [track_id]` line (normalised) per box to txt_file."""
        lines = []
        if self.boxes is not None:
            for d in self.boxes:
                row = (int(d.cls[0]), *[float(v) for v in d.xywhn.reshape(-1)])
                row += (float(d.conf[0]),) * save_conf + (() if d.id is None else (int(d.id[0]),))
                lines.append(("%g " * len(row)).rstrip() % row)
        if lines:
            Path(txt_file).parent.mkdir(parents=True, exist_ok=True)
            with open(txt_file, "a", encoding="utf-8") as f:
                f.writelines(line + "\n" for line in lines)
        return str(txt_file)

    def save_crop(self, save_dir: str | Path, file_name: str | Path = Path("im.jpg")) -> None:
        """Save each detection as `save_dir/<class name>/<file_name>.jpg` (a slightly padded crop)."""
        if self.boxes is None:
            LOGGER.warning("WARNING ⚠️ save_crop: no boxes to crop")
            return
        for d in self.boxes:
            target = Path(save_dir) / str(self.names[int(d.cls[0])]) / f"{Path(file_name)}.jpg"
            save_one_box(torch.as_tensor(d.xyxy[0]), self.orig_img.copy(), file=target, BGR=True)

    def summary(self, normalize: bool = False, decimals: int = 5) -> list[dict[str, Any]]:
        """One dict per detection: name, class, confidence, box {x1, y1, x2, y2} (and track_id)."""
        out = []
        if self.boxes is None:
            return out
        h, w = self.orig_shape if normalize else (1, 1)
        for row in self.boxes:
            c = int(row.cls[0])
            x1, y1, x2, y2 = (float(v) for v in row.xyxy[0])
            item = {
                "name": self.names[c],
                "class": c,
                "confidence": round(float(row.conf[0]), decimals),
                "box": {
                    "x1": round(x1 / w, decimals),
                    "y1": round(y1 / h, decimals),
                    "x2": round(x2 / w, decimals),
                    "y2": round(y2 / h, decimals),
                },
            }
            if row.is_track:
                item["track_id"] = int(row.id[0])
            out.append(item)
        return out

    def to_json(self, normalize: bool = False, decimals: int = 5) -> str:
        """summary() as an indented JSON string."""
        return json.dumps(self.summary(normalize=normalize, decimals=decimals), indent=2)
