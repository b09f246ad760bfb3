"""Drop-in versions of a few OpenCV and torch calls that misbehave in ordinary situations.

- OpenCV's `imread` / `imwrite` take a `char*` path and fail silently (None / False) on Windows
  for names outside the system code page (e.g. `数据/图片.jpg`). Reading the bytes with numpy and
  decoding in memory, or encoding in memory and writing the bytes, sidesteps the path handling.
- `imshow` window titles go through the same narrow path, so they are escaped first.
- `torch.save` onto a network or synced folder can fail for a moment (a lock held elsewhere);
  `torch_save` tries again after a growing pause before giving up.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

# Pauses before the 2nd, 3rd and 4th attempt of torch_save, in seconds.
_SAVE_PAUSES = (1.0, 2.0, 4.0)


def imread(filename: str | Path, flags: int = cv2.IMREAD_COLOR) -> np.ndarray | None:
    """cv2.imread for any path: the image (BGR for colour flags), or None when it cannot be decoded."""
    try:
        raw = np.fromfile(str(filename), dtype=np.uint8)
    except OSError:
        return None  # missing or unreadable, as cv2.imread reports it
    return cv2.imdecode(raw, flags) if raw.size else None


def imwrite(filename: str | Path, img: np.ndarray, params: list[int] | None = None) -> bool:
    """cv2.imwrite for any path; the encoder is chosen by the suffix. True when the file was written."""
    suffix = Path(filename).suffix
    try:
        ok, encoded = cv2.imencode(suffix, img, params or [])
    except cv2.error:
        return False  # no encoder for this suffix, or an image OpenCV cannot encode
    if not ok:
        return False
    try:
        encoded.tofile(str(filename))
    except OSError:
        return False
    return True


def imshow(winname: str, mat: np.ndarray) -> None:
    """cv2.imshow with the window title escaped, so that non-ASCII names open a window instead of failing."""
    cv2.imshow(winname.encode("unicode_escape").decode(), mat)


def torch_save(*args: Any, **kwargs: Any) -> None:
    """torch.save(obj, f, ...) that retries on a RuntimeError (a file momentarily locked or a flaky share).

    The last failure is raised once every pause in _SAVE_PAUSES has been waited out.
    """
    for pause in (*_SAVE_PAUSES, None):
        try:
            return torch.save(*args, **kwargs)
        except RuntimeError:
            if pause is None:
                raise
            time.sleep(pause)
