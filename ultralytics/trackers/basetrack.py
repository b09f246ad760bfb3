"""The life cycle every track goes through, and what a tracker keeps per track."""

from __future__ import annotations

from dataclasses import dataclass


class TrackState:
    """New (seen once, not yet confirmed) -> Tracked -> Lost (missed for a while) -> Removed."""

    New, Tracked, Lost, Removed = range(4)


@dataclass(eq=False)  # tracks compare by identity: two tracks are never "equal"
class BaseTrack:
    """One object's track: its id, state, latest score, and the frames it was first and last matched in.

    Ids are handed out by the tracker that owns the track (see `BYTETracker.next_id`), so two
    trackers, e.g. one per stream, number their tracks independently, each from 1.
    """

    track_id: int = 0
    state: int = TrackState.New
    is_activated: bool = False  # confirmed: matched on two frames, or born on the first one
    score: float = 0.0
    start_frame: int = 0
    frame_id: int = 0  # the last frame it was matched in

    @property
    def end_frame(self) -> int:
        return self.frame_id
