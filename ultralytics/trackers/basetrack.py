"""The life cycle every track goes through, and the fields a tracker keeps per track."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np


class TrackState:
    """New (seen once, not yet confirmed) -> Tracked -> Lost (missed for a while) -> Removed."""

    New = 0
    Tracked = 1
    Lost = 2
    Removed = 3


class BaseTrack:
    """One object's track: its id, state and the frames it was first and last seen in.

    Ids are handed out by the tracker that owns the track (see `BYTETracker.next_id`), so two
    trackers, e.g. one per stream, number their tracks independently, each from 1.
    """

    def __init__(self):
        self.track_id = 0
        self.is_activated = False
        self.state = TrackState.New
        self.history = OrderedDict()
        self.features: list = []
        self.curr_feature = None
        self.score = 0.0
        self.start_frame = 0
        self.frame_id = 0
        self.time_since_update = 0
        self.location = (np.inf, np.inf)

    @property
    def end_frame(self) -> int:
        """The last frame this track was matched in."""
        return self.frame_id

    def mark_lost(self) -> None:
        self.state = TrackState.Lost

    def mark_removed(self) -> None:
        self.state = TrackState.Removed
