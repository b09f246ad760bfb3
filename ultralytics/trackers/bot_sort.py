"""BoT-SORT (Aharon et al., arXiv 2206.14651): ByteTrack's two-stage association with a better motion model.

What it changes, per the paper:
- the Kalman state estimates the box width and height directly (x, y, w, h) instead of aspect and height;
- camera-motion compensation: the tracks' predicted states are warped by the frame-to-frame camera
  motion (utils/gmc.py) before they are matched;
- optionally appearance (ReID) features fused with IoU. This package ships no ReID model, so
  `with_reid` stays off; association is by IoU (fused with the detection score).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ultralytics.trackers.byte_tracker import BYTETracker, STrack
from ultralytics.trackers.utils import matching
from ultralytics.trackers.utils.gmc import GMC
from ultralytics.trackers.utils.kalman_filter import KalmanFilterXYWH
from ultralytics.utils import LOGGER


class BOTrack(STrack):
    """A track whose Kalman state is (x, y, w, h), with an optional smoothed appearance feature.

    Args:
        xywh, score, cls, idx: as for STrack.
        feat: the detection's appearance vector, when a ReID model supplies one.
    """

    shared_kalman = KalmanFilterXYWH()
    size_velocity = (6, 7)  # both width and height stop changing while unmatched

    def __init__(
        self,
        xywh: np.ndarray,
        score: float,
        cls: float,
        idx: int = 0,
        feat: np.ndarray | None = None,
    ):
        super().__init__(xywh, score, cls, idx)
        self.smooth_feat: np.ndarray | None = None
        self.curr_feat: np.ndarray | None = None
        self.alpha = 0.9  # weight of the running feature against the new one
        if feat is not None:
            self.update_features(feat)

    def update_features(self, feat: np.ndarray) -> None:
        """Keep a unit-length exponential moving average of the appearance features."""
        feat = feat / np.linalg.norm(feat)
        self.curr_feat = feat
        mixed = feat if self.smooth_feat is None else self.alpha * self.smooth_feat + (1 - self.alpha) * feat
        self.smooth_feat = mixed / np.linalg.norm(mixed)

    @staticmethod
    def to_measurement(xywh: np.ndarray) -> np.ndarray:
        return np.asarray(xywh, dtype=np.float64).copy()

    @staticmethod
    def from_state(mean: np.ndarray) -> np.ndarray:
        return mean[:4].copy()

    def update(self, detection: STrack, frame_id: int) -> None:
        if getattr(detection, "curr_feat", None) is not None:
            self.update_features(detection.curr_feat)
        super().update(detection, frame_id)


class BOTSORT(BYTETracker):
    """ByteTrack's association with BoT-SORT's motion model and camera-motion compensation.

    Args:
        args: the keys of cfg/trackers/botsort.yaml (ByteTrack's plus gmc_method, proximity_thresh,
            appearance_thresh, with_reid).
        frame_rate: frames per second of the source.
    """

    track_class = BOTrack

    def __init__(self, args: Any, frame_rate: int = 30):
        super().__init__(args, frame_rate)
        if args.with_reid:
            LOGGER.warning(
                "WARNING ⚠️ with_reid=True needs an appearance (ReID) model, which this package does not ship; "
                "BoT-SORT associates by IoU only"
            )
        self.encoder = None  # a callable (frame, boxes (n, 4) xyxy) -> features (n, d), when one is supplied
        self.gmc = GMC(method=args.gmc_method)

    def get_kalmanfilter(self) -> KalmanFilterXYWH:
        return KalmanFilterXYWH()

    def init_track(self, boxes: np.ndarray, scores: np.ndarray, cls: np.ndarray, img: np.ndarray | None = None):
        tracks = super().init_track(boxes, scores, cls, img)
        if self.encoder is not None and img is not None and len(boxes):
            for track, feature in zip(tracks, self.encoder(img, boxes)):
                track.update_features(np.asarray(feature, dtype=np.float64))
        return tracks

    def get_dists(self, tracks: list[STrack], detections: list[STrack]) -> np.ndarray:
        """IoU cost fused with the score; with appearance features, the smaller of that and the ReID cost,
        which only counts for pairs that overlap enough (proximity_thresh) and look alike (appearance_thresh)."""
        iou_cost = matching.iou_distance(tracks, detections)
        cost = matching.fuse_score(iou_cost, detections) if getattr(self.args, "fuse_score", True) else iou_cost
        if self.encoder is None or not tracks or not detections:
            return cost
        look = matching.embedding_distance(tracks, detections) / 2.0
        look[(look > self.args.appearance_thresh) | (iou_cost > self.args.proximity_thresh)] = 1.0
        return np.minimum(cost, look)

    def compensate_motion(self, tracks: list[STrack], img: np.ndarray | None, boxes: np.ndarray) -> None:
        """Warp the predicted tracks by the camera motion since the last frame."""
        if img is None:
            return
        warp = self.gmc.apply(img, boxes)
        self.track_class.multi_gmc(tracks, warp)

    def reset(self) -> None:
        super().reset()
        if hasattr(self, "gmc"):
            self.gmc.reset_params()
