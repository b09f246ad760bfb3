"""Association costs between tracks and detections, and the assignment that solves them.

Costs are (n_tracks, n_detections) arrays in [0, 1] where lower means a better match; a pair is
only accepted when its cost does not exceed the stage's threshold.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

from ultralytics.utils.ops import box_iou

try:  # the Jonker-Volgenant solver is faster on large problems; scipy serves otherwise
    import lap
except ImportError:
    lap = None


def _empty_match(n_rows: int, n_cols: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return np.empty((0, 2), dtype=int), np.arange(n_rows), np.arange(n_cols)


def linear_assignment(
    cost_matrix: np.ndarray,
    thresh: float,
    use_lap: bool = True,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Minimum-cost one-to-one matching of rows (tracks) to columns (detections).

    Returns (matches (k, 2) of [row, col], unmatched rows (r,), unmatched cols (c,)). Pairs whose
    cost exceeds `thresh` are left unmatched, as if their cost were infinite.
    """
    n_rows, n_cols = cost_matrix.shape
    if cost_matrix.size == 0:
        return _empty_match(n_rows, n_cols)
    if use_lap and lap is not None:
        _, row_to_col, _ = lap.lapjv(cost_matrix, extend_cost=True, cost_limit=thresh)
        pairs = np.array([[r, c] for r, c in enumerate(row_to_col) if c >= 0], dtype=int).reshape(-1, 2)
    else:
        rows, cols = linear_sum_assignment(cost_matrix)
        pairs = np.stack([rows, cols], axis=1)
        pairs = pairs[cost_matrix[rows, cols] <= thresh]
    unmatched_rows = np.setdiff1d(np.arange(n_rows), pairs[:, 0])
    unmatched_cols = np.setdiff1d(np.arange(n_cols), pairs[:, 1])
    return pairs, unmatched_rows, unmatched_cols


def _corners(items: Sequence[Any]) -> np.ndarray:
    """(n, 4) xyxy of tracks (their `.xyxy`) or of boxes given directly as arrays."""
    if len(items) == 0:
        return np.zeros((0, 4))
    if isinstance(items, np.ndarray):
        return items.reshape(-1, 4)
    return np.stack([item.xyxy if hasattr(item, "xyxy") else np.asarray(item) for item in items])


def iou_distance(atracks: Sequence[Any], btracks: Sequence[Any]) -> np.ndarray:
    """(n, m) cost 1 - IoU between two sets of tracks or xyxy boxes."""
    a, b = _corners(atracks), _corners(btracks)
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)))
    overlap = box_iou(torch.from_numpy(a).double(), torch.from_numpy(b).double()).numpy()
    return 1.0 - overlap


def fuse_score(cost_matrix: np.ndarray, detections: Sequence[Any]) -> np.ndarray:
    """Blend the detection scores into an IoU cost: 1 - IoU * score, so confident detections match first."""
    if cost_matrix.size == 0:
        return cost_matrix
    scores = np.array([det.score for det in detections])[None, :]  # (1, m)
    return 1.0 - (1.0 - cost_matrix) * scores


def embedding_distance(tracks: Sequence[Any], detections: Sequence[Any], metric: str = "cosine") -> np.ndarray:
    """(n, m) appearance cost between the tracks' smoothed features and the detections' features, >= 0."""
    cost = np.zeros((len(tracks), len(detections)))
    if cost.size == 0:
        return cost
    from scipy.spatial.distance import cdist

    track_features = np.stack([t.smooth_feat for t in tracks]).astype(np.float32)
    det_features = np.stack([d.curr_feat for d in detections]).astype(np.float32)
    return np.maximum(0.0, cdist(track_features, det_features, metric))
