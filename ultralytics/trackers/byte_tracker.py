"""ByteTrack (Zhang et al., arXiv 2110.06864): associate every detection box, low scores included.

Low-score boxes are often real objects that are occluded or blurred. ByteTrack first matches the
tracks to the high-score detections by IoU, then gives the tracks left over a second chance with
the low-score detections before declaring them lost; low-score boxes never start a track.
Motion comes from a constant-velocity Kalman filter over (x, y, aspect, height).

    tracker = BYTETracker(args)              # args: the keys of cfg/trackers/bytetrack.yaml
    rows = tracker.update(boxes, frame)      # boxes: .xyxy (n, 4), .conf (n,), .cls (n,)
    # rows: (m, 8) [x1, y1, x2, y2, track_id, score, cls, detection index]
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ultralytics.trackers.basetrack import BaseTrack, TrackState
from ultralytics.trackers.utils import matching
from ultralytics.trackers.utils.kalman_filter import KalmanFilterXYAH

# Cost limits of the two later association stages (the paper's second stage, and new tracks' confirmation).
_LOW_SCORE_MATCH_COST = 0.5
_CONFIRM_MATCH_COST = 0.7
# Tracked and lost tracks closer than this IoU cost are the same object twice; the younger one goes.
_DUPLICATE_COST = 0.15
_REMOVED_KEPT = 1000  # how many removed tracks are remembered


def _xyxy_to_xywh(box: np.ndarray) -> np.ndarray:
    """(..., 4) corners -> centre and size."""
    return np.concatenate([(box[..., :2] + box[..., 2:]) / 2, box[..., 2:] - box[..., :2]], axis=-1)


class STrack(BaseTrack):
    """One object's track with a Kalman state over (x, y, a, h); the filter is shared by all tracks.

    Args:
        xywh: (4,) the detection's centre x, centre y, width, height in pixels.
        score: the detection's confidence.
        cls: its class.
        idx: its row among the frame's detections, reported back so results can be matched up.
    """

    shared_kalman = KalmanFilterXYAH()
    # State entries whose velocity is zeroed while the track is unmatched: the size ones (here h).
    size_velocity = (7,)

    def __init__(self, xywh: np.ndarray, score: float, cls: float, idx: int = 0):
        super().__init__()
        self._xywh = np.asarray(xywh, dtype=np.float64)  # the box as detected, until the filter takes over
        self.kalman_filter = None
        self.mean: np.ndarray | None = None  # (8,)
        self.covariance: np.ndarray | None = None  # (8, 8)
        self.score, self.cls, self.idx = float(score), float(cls), int(idx)
        self.tracklet_len = 0

    # ---- box representations
    @staticmethod
    def to_measurement(xywh: np.ndarray) -> np.ndarray:
        """(4,) centre/size box -> the filter's measurement (x, y, w/h, h)."""
        x, y, w, h = xywh
        return np.array([x, y, w / max(h, 1e-6), h])  # a zero-height box must not make the aspect infinite

    @staticmethod
    def from_state(mean: np.ndarray) -> np.ndarray:
        """(8,) state -> (4,) centre/size box."""
        x, y, aspect, h = mean[:4]
        return np.array([x, y, aspect * h, h])

    @property
    def xywh(self) -> np.ndarray:
        """(4,) centre x, centre y, width, height: the filter's estimate once the track is active."""
        return self._xywh.copy() if self.mean is None else self.from_state(self.mean)

    @property
    def xyxy(self) -> np.ndarray:
        """(4,) corners x1, y1, x2, y2."""
        centre, size = np.split(self.xywh, 2)
        return np.r_[centre - size / 2, centre + size / 2]

    @property
    def tlwh(self) -> np.ndarray:
        """(4,) top-left x, y, width, height."""
        x1, y1, x2, y2 = self.xyxy
        return np.array([x1, y1, x2 - x1, y2 - y1])

    @property
    def result(self) -> list[float]:
        """The output row [x1, y1, x2, y2, track_id, score, cls, idx]."""
        return [*self.xyxy.tolist(), self.track_id, self.score, self.cls, self.idx]

    # ---- motion
    def predict(self) -> None:
        type(self).multi_predict([self])

    @classmethod
    def multi_predict(cls, tracks: list[STrack]) -> None:
        """Move every track one frame ahead in one batched filter step.

        A track that was not matched last frame stops growing: its height velocity is zeroed,
        otherwise a box shrinking or growing while unseen would keep doing so.
        """
        if not tracks:
            return
        means = np.stack([t.mean.copy() for t in tracks])  # (n, 8)
        covariances = np.stack([t.covariance for t in tracks])  # (n, 8, 8)
        unmatched = np.array([t.state != TrackState.Tracked for t in tracks])
        means[np.ix_(unmatched, cls.size_velocity)] = 0
        means, covariances = cls.shared_kalman.multi_predict(means, covariances)
        for track, mean, cov in zip(tracks, means, covariances):
            track.mean, track.covariance = mean, cov

    @staticmethod
    def multi_gmc(tracks: list[STrack], warp: np.ndarray) -> None:
        """Apply a (2, 3) camera warp to the tracks' states: rotation/scale R on every (x, y)-like pair
        of the state and on its covariance blocks, translation t on the centre only."""
        if not tracks:
            return
        rotation, shift = warp[:, :2], warp[:, 2]
        block = np.kron(np.eye(4), rotation)  # (8, 8): R acting on each pair of state entries
        for track in tracks:
            mean = block @ track.mean
            mean[:2] += shift
            track.mean = mean
            track.covariance = block @ track.covariance @ block.T

    # ---- life cycle
    def activate(self, kalman_filter: Any, frame_id: int, track_id: int) -> None:
        """Start the filter from this detection. Only tracks born on the first frame are confirmed at once;
        later ones must be matched again on the next frame."""
        self.kalman_filter = kalman_filter
        self.track_id = track_id
        self.mean, self.covariance = kalman_filter.initiate(self.to_measurement(self._xywh))
        self.tracklet_len = 0
        self.state = TrackState.Tracked
        self.is_activated = frame_id == 1
        self.frame_id = self.start_frame = frame_id

    def update(self, detection: STrack, frame_id: int) -> None:
        """Correct the state with a matched detection and take over its score, class and index."""
        self.frame_id = frame_id
        self.tracklet_len += 1
        self.mean, self.covariance = self.kalman_filter.update(
            self.mean, self.covariance, self.to_measurement(detection.xywh)
        )
        self.state = TrackState.Tracked
        self.is_activated = True
        self.score, self.cls, self.idx = detection.score, detection.cls, detection.idx

    def re_activate(self, detection: STrack, frame_id: int, new_id: int | None = None) -> None:
        """Bring a lost track back with a detection; `new_id` gives it a fresh id."""
        self.update(detection, frame_id)
        self.tracklet_len = 0
        if new_id is not None:
            self.track_id = new_id

    def __repr__(self) -> str:
        return f"OT_{self.track_id}_({self.start_frame}-{self.end_frame})"


def _merge(first: list[STrack], second: list[STrack]) -> list[STrack]:
    """Tracks of both lists, each id once, in order."""
    seen = {t.track_id for t in first}
    return [*first, *(t for t in second if t.track_id not in seen)]


def _without(tracks: list[STrack], drop: list[STrack]) -> list[STrack]:
    ids = {t.track_id for t in drop}
    return [t for t in tracks if t.track_id not in ids]


def _split_duplicates(tracked: list[STrack], lost: list[STrack]) -> tuple[list[STrack], list[STrack]]:
    """Drop the shorter-lived track of every tracked/lost pair that covers the same object."""
    overlap_pairs = np.argwhere(matching.iou_distance(tracked, lost) < _DUPLICATE_COST)
    drop_tracked, drop_lost = set(), set()
    for i, j in overlap_pairs:
        age_tracked = tracked[i].frame_id - tracked[i].start_frame
        age_lost = lost[j].frame_id - lost[j].start_frame
        if age_tracked > age_lost:
            drop_lost.add(int(j))
        else:
            drop_tracked.add(int(i))
    keep_tracked = [t for k, t in enumerate(tracked) if k not in drop_tracked]
    keep_lost = [t for k, t in enumerate(lost) if k not in drop_lost]
    return keep_tracked, keep_lost


class BYTETracker:
    """Multi-object tracker: call `update` once per frame with that frame's detections.

    Args:
        args: the tracker settings (track_high_thresh, track_low_thresh, new_track_thresh, track_buffer,
            match_thresh, fuse_score), e.g. the loaded bytetrack.yaml.
        frame_rate: frames per second of the source; a lost track is kept track_buffer frames at 30 fps.
    """

    track_class = STrack

    def __init__(self, args: Any, frame_rate: int = 30):
        self.args = args
        self.max_time_lost = int(frame_rate / 30.0 * args.track_buffer)
        self.reset()

    def get_kalmanfilter(self) -> KalmanFilterXYAH:
        return KalmanFilterXYAH()

    def reset(self) -> None:
        """Forget every track and restart the frame count and the ids at 1."""
        self.tracked_stracks: list[STrack] = []
        self.lost_stracks: list[STrack] = []
        self.removed_stracks: list[STrack] = []
        self.frame_id = 0
        self._last_id = 0
        self.kalman_filter = self.get_kalmanfilter()

    def next_id(self) -> int:
        self._last_id += 1
        return self._last_id

    def reset_id(self) -> None:
        """Number the next new track 1 again."""
        self._last_id = 0

    # ---- hooks BoT-SORT changes
    def init_track(self, boxes: np.ndarray, scores: np.ndarray, cls: np.ndarray, img: np.ndarray | None = None):
        """One STrack per detection: boxes (n, 4) xyxy, scores (n,), cls (n,)."""
        centres = _xyxy_to_xywh(boxes)
        return [self.track_class(b, s, c, k) for k, (b, s, c) in enumerate(zip(centres, scores, cls))]

    def get_dists(self, tracks: list[STrack], detections: list[STrack]) -> np.ndarray:
        """(n, m) matching cost: 1 - IoU, blended with the detection score when fuse_score is on."""
        cost = matching.iou_distance(tracks, detections)
        return matching.fuse_score(cost, detections) if getattr(self.args, "fuse_score", True) else cost

    def multi_predict(self, tracks: list[STrack]) -> None:
        self.track_class.multi_predict(tracks)

    def compensate_motion(self, tracks: list[STrack], img: np.ndarray | None, boxes: np.ndarray) -> None:
        """Camera-motion compensation before association; ByteTrack assumes a static camera."""

    # ---- one frame
    def update(self, results: Any, img: np.ndarray | None = None) -> np.ndarray:
        """Associate this frame's detections (.xyxy (n, 4), .conf (n,), .cls (n,)) with the tracks.

        Returns (m, 8) [x1, y1, x2, y2, track_id, score, cls, idx] for every confirmed track seen in
        this frame, idx being the row of its detection in `results`.
        """
        self.frame_id += 1
        boxes, scores, classes = (np.asarray(v, dtype=np.float64) for v in (results.xyxy, results.conf, results.cls))
        boxes = boxes.reshape(-1, 4)
        detections = self.init_track(boxes, scores, classes, img)
        high = [d for d in detections if d.score >= self.args.track_high_thresh]
        low = [d for d in detections if self.args.track_low_thresh < d.score < self.args.track_high_thresh]

        confirmed = [t for t in self.tracked_stracks if t.is_activated]
        unconfirmed = [t for t in self.tracked_stracks if not t.is_activated]
        pool = _merge(confirmed, self.lost_stracks)
        self.multi_predict(pool)
        self.compensate_motion([*pool, *unconfirmed], img, boxes)

        matched, leftover, high_left = self._associate_high(pool, high)
        matched += self._associate_low(leftover, low)
        confirmed_now, high_left = self._confirm_new(unconfirmed, high_left)
        self._start_tracks(high_left)
        self._retire_lost()
        self._update_lists([*matched, *confirmed_now])
        return np.asarray([t.result for t in self.tracked_stracks if t.is_activated], dtype=np.float32).reshape(-1, 8)

    def _match(self, tracks: list[STrack], dets: list[STrack], cost: np.ndarray, limit: float):
        """Assign and apply: matched tracks take their detection (lost ones come back).

        Returns (tracks matched, tracks left, detections left)."""
        pairs, rest_tracks, rest_dets = matching.linear_assignment(cost, thresh=limit)
        for i, j in pairs:
            track = tracks[i]
            if track.state == TrackState.Tracked:
                track.update(dets[j], self.frame_id)
            else:
                track.re_activate(dets[j], self.frame_id)
        return [tracks[i] for i in pairs[:, 0]], [tracks[i] for i in rest_tracks], [dets[j] for j in rest_dets]

    def _associate_high(self, pool: list[STrack], high: list[STrack]):
        """Stage 1: confirmed and lost tracks against the high-score detections."""
        return self._match(pool, high, self.get_dists(pool, high), self.args.match_thresh)

    def _associate_low(self, leftover: list[STrack], low: list[STrack]) -> list[STrack]:
        """Stage 2: tracks still unmatched (and not already lost) against the low-score detections, by IoU
        only; the tracks left after that are lost."""
        active = [t for t in leftover if t.state == TrackState.Tracked]
        matched, missed, _ = self._match(active, low, matching.iou_distance(active, low), _LOW_SCORE_MATCH_COST)
        for track in missed:
            track.state = TrackState.Lost
        return matched

    def _confirm_new(self, unconfirmed: list[STrack], high_left: list[STrack]):
        """Tracks born last frame are confirmed by a second high-score match, or dropped.

        Returns (tracks confirmed, high-score detections nobody took)."""
        cost = self.get_dists(unconfirmed, high_left)
        matched, missed, rest = self._match(unconfirmed, high_left, cost, _CONFIRM_MATCH_COST)
        for track in missed:
            track.state = TrackState.Removed
        return matched, rest

    def _start_tracks(self, candidates: list[STrack]) -> None:
        """Unmatched high-score detections above new_track_thresh start (unconfirmed) tracks."""
        for det in candidates:
            if det.score >= self.args.new_track_thresh:
                det.activate(self.kalman_filter, self.frame_id, self.next_id())
                self.tracked_stracks.append(det)

    def _retire_lost(self) -> None:
        for track in self.lost_stracks:
            if self.frame_id - track.end_frame > self.max_time_lost:
                track.state = TrackState.Removed

    def _update_lists(self, matched: list[STrack]) -> None:
        """Sort every track into the tracked, lost and removed lists by its state after this frame."""
        everyone = _merge(_merge(self.tracked_stracks, matched), self.lost_stracks)
        tracked = [t for t in everyone if t.state == TrackState.Tracked]
        lost = [t for t in everyone if t.state == TrackState.Lost]
        removed = [t for t in everyone if t.state == TrackState.Removed]
        self.tracked_stracks, self.lost_stracks = _split_duplicates(tracked, lost)
        self.removed_stracks = [*self.removed_stracks, *removed][-_REMOVED_KEPT:]
