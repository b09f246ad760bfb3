"""A generated clip of coloured squares on known straight paths, two of them crossing, for the tracking
and live-source tests: its frames, the ground-truth boxes of every frame, and an mp4 writer."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

SIZE = 160  # frame side in pixels
HALF = 10  # half the side of every square
COLOURS = ((0, 0, 255), (0, 255, 0), (255, 0, 0))  # BGR, one per object


def centres(t: int) -> np.ndarray:
    """(3, 2) centres at frame t: object 0 moves right and object 1 left along nearly the same row, so they
    cross around frame 20; object 2 moves down through the middle."""
    return np.array([[10 + 3.5 * t, 50.0], [150 - 3.5 * t, 58.0], [80.0, 12 + 3.2 * t]])


def boxes(t: int) -> np.ndarray:
    """(3, 4) ground-truth xyxy boxes at frame t."""
    c = centres(t)
    return np.concatenate([c - HALF, c + HALF], axis=1)


def frame(t: int) -> np.ndarray:
    """(SIZE, SIZE, 3) BGR frame t; later objects are drawn over earlier ones where they overlap."""
    image = np.full((SIZE, SIZE, 3), 40, np.uint8)
    for (x1, y1, x2, y2), colour in zip(boxes(t).round().astype(int), COLOURS):
        cv2.rectangle(image, (x1, y1), (x2, y2), colour, thickness=-1)
    return image


def write_video(path: Path, n_frames: int = 40, fps: int = 30) -> Path:
    """The clip as an mp4v file of n_frames frames."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (SIZE, SIZE))
    for t in range(n_frames):
        writer.write(frame(t))
    writer.release()
    return path


def count_frames(path: Path) -> int:
    """Frames OpenCV can decode from a video file."""
    capture = cv2.VideoCapture(str(path))
    n = 0
    while capture.read()[0]:
        n += 1
    capture.release()
    return n
