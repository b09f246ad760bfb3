"""Tracking as two predictor callbacks: trackers are made when a run starts and fed after each batch.

`register_tracker(model, persist)` hooks them into a model; `Model.track` does that and then predicts
with mode='track'. The callbacks do nothing in runs of another mode, so `model.predict` on the same
model afterwards is plain prediction again.

- on_predict_start: one tracker per stream of the source (one for files and videos), built from
  the yaml named by the `tracker` argument. With persist=True the trackers of an earlier call are
  kept, so ids carry on across calls on successive frames.
- on_predict_postprocess_end: each result's detections go through its tracker; the result keeps the
  tracked boxes only, as (n, 7) [x1, y1, x2, y2, track_id, conf, cls], so `boxes.id` is set. Without
  persist a tracker starts afresh when its source moves on to another video.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import torch

from ultralytics.trackers.bot_sort import BOTSORT
from ultralytics.trackers.byte_tracker import BYTETracker
from ultralytics.utils import IterableSimpleNamespace, yaml_load
from ultralytics.utils.checks import check_yaml

TRACKER_MAP = {"bytetrack": BYTETracker, "botsort": BOTSORT}

_COMMON_KEYS = ("track_high_thresh", "track_low_thresh", "new_track_thresh", "track_buffer", "match_thresh")
_REQUIRED_KEYS = {
    "bytetrack": _COMMON_KEYS,
    "botsort": (*_COMMON_KEYS, "gmc_method", "proximity_thresh", "appearance_thresh", "with_reid"),
}


def load_tracker_cfg(tracker: str) -> IterableSimpleNamespace:
    """Read and check a tracker yaml (a path, or a name shipped in cfg/trackers/)."""
    path = check_yaml(tracker)
    cfg = yaml_load(path)
    kind = cfg.get("tracker_type")
    if kind not in TRACKER_MAP:
        raise ValueError(
            f"tracker_type={kind!r} in '{path}' is not supported; use one of {sorted(TRACKER_MAP)} "
            "(or pass tracker=bytetrack.yaml / tracker=botsort.yaml)"
        )
    missing = [k for k in _REQUIRED_KEYS[kind] if k not in cfg]
    if missing:
        raise ValueError(f"Tracker file '{path}' lacks {missing}; a {kind} file sets {list(_REQUIRED_KEYS[kind])}")
    return IterableSimpleNamespace(**cfg)


def _is_tracking(predictor: Any) -> bool:
    return getattr(predictor.args, "mode", None) == "track"


def _stream_count(predictor: Any) -> int:
    """How many independent sequences one batch holds: one per stream, else one."""
    return predictor.dataset.bs if predictor.source_type.stream else 1


def on_predict_start(predictor: Any, persist: bool = False) -> None:
    """Give the predictor its trackers (`predictor.trackers`), unless persist keeps the earlier ones."""
    if not _is_tracking(predictor):
        return
    n = _stream_count(predictor)
    if persist and len(getattr(predictor, "trackers", ())) == n:
        return
    cfg = load_tracker_cfg(predictor.args.tracker)
    predictor.trackers = [TRACKER_MAP[cfg.tracker_type](args=cfg, frame_rate=30) for _ in range(n)]
    predictor.vid_path = [None] * n  # the video each tracker last saw


def on_predict_postprocess_end(predictor: Any, persist: bool = False) -> None:
    """Replace each result's detections by its tracker's confirmed tracks of this frame."""
    if not _is_tracking(predictor):
        return
    paths, originals, _ = predictor.batch
    streams = predictor.source_type.stream
    for i, result in enumerate(predictor.results):
        k = i if streams else 0
        tracker = predictor.trackers[k]
        if not persist and not streams and predictor.vid_path[k] != paths[i]:
            tracker.reset()  # a new video is a new sequence
        predictor.vid_path[k] = paths[i]
        detections = result.boxes.cpu().numpy()
        tracks = tracker.update(detections, originals[i]) if len(detections) else None
        if tracks is None or not len(tracks):
            continue  # nothing confirmed: the result keeps its plain detections
        kept = result[torch.as_tensor(tracks[:, -1]).long()]
        kept.update(boxes=torch.as_tensor(tracks[:, :-1]))
        predictor.results[i] = kept


def _tracking_callbacks(persist: bool) -> dict[str, Callable]:
    return {
        "on_predict_start": partial(on_predict_start, persist=persist),
        "on_predict_postprocess_end": partial(on_predict_postprocess_end, persist=persist),
    }


def _is_ours(callback: Callable) -> bool:
    return isinstance(callback, partial) and callback.func in {on_predict_start, on_predict_postprocess_end}


def register_tracker(model: Any, persist: bool) -> None:
    """Add the tracking callbacks to `model` (a Model or a predictor), replacing ones registered before,
    so that the latest `persist` applies and each runs once per event."""
    for event, callback in _tracking_callbacks(persist).items():
        model.callbacks[event] = [c for c in model.callbacks.get(event, []) if not _is_ours(c)]
        model.add_callback(event, callback)
