"""Multi-object trackers for `model.track`: ByteTrack and BoT-SORT, fed by predictor callbacks."""

from ultralytics.trackers.bot_sort import BOTSORT
from ultralytics.trackers.byte_tracker import BYTETracker
from ultralytics.trackers.track import register_tracker

__all__ = "BOTSORT", "BYTETracker", "register_tracker"
