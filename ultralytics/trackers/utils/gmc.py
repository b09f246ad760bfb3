"""Global motion compensation: how the camera moved between two frames, as a 2x3 affine matrix.

BoT-SORT (arXiv 2206.14651, section 3.2) warps every track's predicted state with the camera's motion
before association, so that a panning or shaking camera does not look like every object moving at
once. The motion is estimated on a downscaled greyscale frame with OpenCV:

- `sparseOptFlow` (default): corners tracked by pyramidal Lucas-Kanade optical flow;
- `orb` / `sift`: keypoints matched between frames;
- `ecc`: the enhanced correlation coefficient maximisation of the whole image;
- `none`: a static camera (identity).

Each method fits a partial affine model (rotation, uniform scale, translation) robustly with RANSAC.
"""

from __future__ import annotations

import cv2
import numpy as np

from ultralytics.utils import LOGGER

GMC_METHODS = ("sparseOptFlow", "orb", "sift", "ecc", "none")


def _identity() -> np.ndarray:
    return np.eye(2, 3, dtype=np.float64)


class GMC:
    """Estimates the camera motion from each frame to the next.

    Args:
        method: one of GMC_METHODS ('None' is accepted for 'none').
        downscale: work on frames shrunk by this integer factor; translations are scaled back.
    """

    def __init__(self, method: str = "sparseOptFlow", downscale: int = 2):
        method = "none" if method in {None, "None"} else method
        if method not in GMC_METHODS:
            raise ValueError(f"gmc_method={method!r} is not supported; use one of {list(GMC_METHODS)}")
        self.method = method
        self.downscale = max(1, int(downscale))
        self._previous: np.ndarray | None = None  # the last grey frame (downscaled)
        self._previous_points: np.ndarray | None = None  # its corners or keypoint descriptors

    def reset_params(self) -> None:
        """Forget the previous frame: the next one starts a new sequence."""
        self._previous = self._previous_points = None

    def apply(self, raw_frame: np.ndarray, detections: list | None = None) -> np.ndarray:
        """(2, 3) affine warp taking the previous frame's pixels to this BGR frame's (h, w, 3)."""
        if self.method == "none":
            return _identity()
        grey = self._prepare(raw_frame)
        previous, self._previous = self._previous, grey
        if previous is None or previous.shape != grey.shape:
            self._remember_points(grey)
            return _identity()  # nothing to compare with yet
        warp = self._estimate(previous, grey)
        if warp is None:
            return _identity()
        warp[:, 2] *= self.downscale  # the translation was measured on the small frame
        return warp

    def _prepare(self, frame: np.ndarray) -> np.ndarray:
        grey = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY) if frame.ndim == 3 else frame
        if self.downscale > 1:
            height, width = grey.shape[:2]
            grey = cv2.resize(grey, (width // self.downscale, height // self.downscale))
        return grey

    def _estimate(self, previous: np.ndarray, current: np.ndarray) -> np.ndarray | None:
        if self.method == "ecc":
            return _ecc_warp(previous, current)
        if self.method == "sparseOptFlow":
            return self._flow_warp(previous, current)
        return self._keypoint_warp(current)

    def _remember_points(self, grey: np.ndarray) -> None:
        """Corners (sparseOptFlow) or keypoints and descriptors (orb/sift) of the frame just seen."""
        if self.method == "sparseOptFlow":
            self._previous_points = _corners(grey)
        elif self.method in {"orb", "sift"}:
            self._previous_points = _describe(grey, self.method)

    def _flow_warp(self, previous: np.ndarray, current: np.ndarray) -> np.ndarray | None:
        """Track last frame's corners into this frame and fit the motion to the tracked pairs."""
        start = self._previous_points
        self._previous_points = _corners(current)
        if start is None or len(start) < 4:
            return None
        end, found, _ = cv2.calcOpticalFlowPyrLK(previous, current, start, None)
        kept = found.reshape(-1).astype(bool)
        return _fit_partial_affine(start[kept], end[kept])

    def _keypoint_warp(self, current: np.ndarray) -> np.ndarray | None:
        """Match last frame's keypoint descriptors to this frame's and fit the motion to the matches."""
        before, after = self._previous_points, _describe(current, self.method)
        self._previous_points = after
        if before is None or before[1] is None or after[1] is None:
            return None
        norm = cv2.NORM_HAMMING if self.method == "orb" else cv2.NORM_L2
        pairs = cv2.BFMatcher(norm).knnMatch(before[1], after[1], k=2)
        good = [m[0] for m in pairs if len(m) == 2 and m[0].distance < 0.9 * m[1].distance]  # Lowe's ratio test
        start = np.float32([before[0][m.queryIdx].pt for m in good])
        end = np.float32([after[0][m.trainIdx].pt for m in good])
        return _fit_partial_affine(start, end)


def _corners(grey: np.ndarray) -> np.ndarray | None:
    """(n, 1, 2) float32 strong corners of a grey image, or None when it has none."""
    return cv2.goodFeaturesToTrack(grey, maxCorners=1000, qualityLevel=0.01, minDistance=1, blockSize=3)


def _describe(grey: np.ndarray, method: str) -> tuple:
    """(keypoints, descriptors) of a grey image with ORB or SIFT."""
    detector = cv2.ORB_create() if method == "orb" else cv2.SIFT_create()
    return detector.detectAndCompute(grey, None)


def _fit_partial_affine(start: np.ndarray, end: np.ndarray) -> np.ndarray | None:
    """(2, 3) rotation + uniform scale + translation taking `start` (n, ..., 2) points to `end`, by RANSAC."""
    if len(start) < 4:
        return None
    warp, _ = cv2.estimateAffinePartial2D(start.reshape(-1, 2), end.reshape(-1, 2), method=cv2.RANSAC)
    return None if warp is None else warp.astype(np.float64)


def _ecc_warp(previous: np.ndarray, current: np.ndarray) -> np.ndarray | None:
    """(2, 3) Euclidean warp maximising the correlation of the two images; None when ECC does not converge."""
    warp = np.eye(2, 3, dtype=np.float32)
    criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 100, 1e-5)
    try:
        _, warp = cv2.findTransformECC(previous, current, warp, cv2.MOTION_EUCLIDEAN, criteria, None, 1)
    except cv2.error as e:
        LOGGER.warning(f"WARNING ⚠️ GMC ecc found no camera motion for this frame, assuming none: {e}")
        return None
    return warp.astype(np.float64)
