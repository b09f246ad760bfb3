"""Tracking: the tracker yamls, ByteTrack and BoT-SORT on ground truth plus noise (id switches bounded),
their parts (Kalman filter, assignment, camera-motion compensation), and model.track / yolo track end to end."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import cv2
import moving_shapes as clip
import numpy as np
import pytest
import torch

from ultralytics import RTDETR
from ultralytics.cfg import entrypoint
from ultralytics.engine.results import Results
from ultralytics.models.rtdetr.predict import RTDETRPredictor
from ultralytics.trackers import BOTSORT, BYTETracker, register_tracker
from ultralytics.trackers.track import load_tracker_cfg
from ultralytics.trackers.utils import matching
from ultralytics.trackers.utils.gmc import GMC
from ultralytics.trackers.utils.kalman_filter import KalmanFilterXYAH, KalmanFilterXYWH

REPO = Path(__file__).resolve().parents[1]
TINY = str(REPO / "tests" / "fixtures" / "rtdetr-tiny-FocalModulation.yaml")
N_FRAMES = 40
TRACKERS = {"bytetrack.yaml": BYTETracker, "botsort.yaml": BOTSORT}


# ----------------------------------------------------------------------------------------------
# Ground truth with noise: what a good detector would see in the clip
# ----------------------------------------------------------------------------------------------
def noisy_detections(t: int, rng: np.random.Generator) -> SimpleNamespace:
    """The clip's boxes at frame t with 1 px jitter, scores in 0.5-0.9, 5 % missed, and object 0 at a low
    score (0.15, below track_high_thresh) in frames 10-13, which only ByteTrack's second stage can use."""
    xyxy = clip.boxes(t) + rng.normal(0, 1.0, (3, 4))
    conf = rng.uniform(0.5, 0.9, 3)
    if 10 <= t <= 13:
        conf[0] = 0.15
    seen = rng.random(3) > 0.05
    return SimpleNamespace(xyxy=xyxy[seen], conf=conf[seen], cls=np.zeros(seen.sum()))


def nearest_object(t: int, xyxy: np.ndarray) -> int:
    centre = (xyxy[:2] + xyxy[2:]) / 2
    return int(np.argmin(((clip.centres(t) - centre) ** 2).sum(1)))


class IdSwitches:
    """Counts, per ground-truth object, how often the id reported for it changes."""

    def __init__(self):
        self.last: dict[int, int] = {}
        self.switches = 0
        self.hits = 0

    def add(self, t: int, rows: np.ndarray) -> None:
        """rows: (m, >=5) [x1, y1, x2, y2, track_id, ...] reported for frame t."""
        for row in rows:
            obj, track_id = nearest_object(t, row[:4]), int(row[4])
            self.switches += obj in self.last and self.last[obj] != track_id
            self.last[obj] = track_id
            self.hits += 1


# The id reported for objects 0, 1, 2 in each frame of that sequence (0: none reported), as upstream
# Ultralytics 8.3.50's trackers report them: a missed detection (frames 5, 7, 19) reports nothing for its object.
UPSTREAM_IDS = "123 123 123 123 123 103 123 120 " + "123 " * 11 + "120 " + "123 " * 20


def reported_ids(t: int, rows: np.ndarray) -> str:
    ids = [0, 0, 0]
    for row in rows:
        ids[nearest_object(t, row[:4])] = int(row[4])
    return "".join(map(str, ids))


@pytest.mark.parametrize("name", sorted(TRACKERS))
def test_tracker_reports_the_ids_upstream_reports(name):
    tracker = TRACKERS[name](load_tracker_cfg(name))
    rng = np.random.default_rng(0)
    table = [reported_ids(t, tracker.update(noisy_detections(t, rng), clip.frame(t))) for t in range(N_FRAMES)]
    assert " ".join(table) == UPSTREAM_IDS.strip()


@pytest.mark.parametrize("name", sorted(TRACKERS))
def test_tracker_follows_ground_truth(name):
    tracker = TRACKERS[name](load_tracker_cfg(name))
    rng = np.random.default_rng(0)
    count = IdSwitches()
    low_score_frames = []
    for t in range(N_FRAMES):
        rows = tracker.update(noisy_detections(t, rng), clip.frame(t))
        assert rows.shape[1] == 8  # x1, y1, x2, y2, id, score, cls, idx
        count.add(t, rows)
        if 10 <= t <= 13:
            low_score_frames.append(any(nearest_object(t, r[:4]) == 0 for r in rows))
    assert count.switches <= 1
    assert count.hits >= 0.85 * 3 * N_FRAMES  # every object is reported in almost every frame
    assert sorted(count.last) == [0, 1, 2] and len(set(count.last.values())) == 3
    assert sum(low_score_frames) >= 3  # the low-score boxes kept object 0's track alive


def test_output_rows_point_at_their_detection():
    tracker = BYTETracker(load_tracker_cfg("bytetrack.yaml"))
    rng = np.random.default_rng(1)
    for t in range(5):
        dets = noisy_detections(t, rng)
        rows = tracker.update(dets, None)
    for row in rows:
        idx = int(row[7])
        assert row[5] == pytest.approx(dets.conf[idx], abs=1e-6)  # the score of the detection at row idx
        assert np.abs(row[:4] - dets.xyxy[idx]).max() < 3  # the filtered box stays near the detection


def test_lost_track_is_found_again_within_the_buffer():
    tracker = BYTETracker(load_tracker_cfg("bytetrack.yaml"))
    box = np.array([[40.0, 40, 60, 60]])
    seen = SimpleNamespace(xyxy=box, conf=np.array([0.9]), cls=np.zeros(1))
    nothing = SimpleNamespace(xyxy=np.zeros((0, 4)), conf=np.zeros(0), cls=np.zeros(0))
    first = tracker.update(seen)[0, 4]
    for _ in range(5):
        assert len(tracker.update(nothing)) == 0
    assert tracker.update(seen)[0, 4] == first
    tracker.reset()
    assert tracker.update(seen)[0, 4] == 1 and tracker.frame_id == 1


# ----------------------------------------------------------------------------------------------
# The yamls and their checks
# ----------------------------------------------------------------------------------------------
COMMON = {
    "track_high_thresh": 0.25,
    "track_low_thresh": 0.1,
    "new_track_thresh": 0.25,
    "track_buffer": 30,
    "match_thresh": 0.8,
    "fuse_score": True,
}


def test_tracker_yamls_have_upstreams_keys_and_defaults():
    assert vars(load_tracker_cfg("bytetrack.yaml")) == {"tracker_type": "bytetrack", **COMMON}
    reid = {"gmc_method": "sparseOptFlow", "proximity_thresh": 0.5, "appearance_thresh": 0.25, "with_reid": False}
    assert vars(load_tracker_cfg("botsort.yaml")) == {"tracker_type": "botsort", **COMMON, **reid}


def test_bad_tracker_yamls_say_what_is_accepted(tmp_path):
    wrong_type = tmp_path / "deepsort.yaml"
    wrong_type.write_text("tracker_type: deepsort\n")
    with pytest.raises(ValueError, match=r"tracker_type='deepsort'.*\['botsort', 'bytetrack'\]"):
        load_tracker_cfg(str(wrong_type))
    incomplete = tmp_path / "short.yaml"
    incomplete.write_text("tracker_type: bytetrack\ntrack_high_thresh: 0.5\n")
    with pytest.raises(ValueError, match="lacks.*track_low_thresh"):
        load_tracker_cfg(str(incomplete))
    with pytest.raises(FileNotFoundError, match="nope.yaml"):
        load_tracker_cfg("nope.yaml")


# ----------------------------------------------------------------------------------------------
# Parts
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "kf_class, to_z",
    [(KalmanFilterXYAH, lambda x, w, h: [x, 50, w / h, h]), (KalmanFilterXYWH, lambda x, w, h: [x, 50, w, h])],
)
def test_kalman_filter_learns_a_constant_velocity(kf_class, to_z):
    kf = kf_class()
    mean, cov = kf.initiate(np.array(to_z(10.0, 20.0, 30.0)))
    for t in range(1, 15):
        mean, cov = kf.predict(mean, cov)
        mean, cov = kf.update(mean, cov, np.array(to_z(10.0 + 4 * t, 20.0, 30.0)))
    ahead, _ = kf.predict(mean, cov)
    assert ahead[0] == pytest.approx(10 + 4 * 15, abs=0.5)  # x moves 4 px per frame
    assert ahead[4] == pytest.approx(4.0, abs=0.2)
    means, covs = kf.multi_predict(np.stack([mean, mean]), np.stack([cov, cov]))
    assert np.allclose(means[1], ahead) and covs.shape == (2, 8, 8)
    near, far = kf.gating_distance(mean, cov, np.array([to_z(10 + 4 * 14, 20, 30), to_z(150, 20, 30)]))
    assert near < 1 < far


@pytest.mark.parametrize("use_lap", [False, True])
def test_linear_assignment_respects_the_threshold(use_lap):
    if use_lap and matching.lap is None:
        pytest.skip("the optional 'lap' package is not installed (pip install lap)")
    cost = np.array([[0.1, 0.9, 0.95], [0.8, 0.2, 0.9], [0.9, 0.9, 0.9]])
    pairs, rows, cols = matching.linear_assignment(cost, thresh=0.5, use_lap=use_lap)
    assert sorted(map(tuple, pairs.tolist())) == [(0, 0), (1, 1)]
    assert rows.tolist() == [2] and cols.tolist() == [2]
    pairs, rows, cols = matching.linear_assignment(np.zeros((0, 3)), thresh=0.5, use_lap=use_lap)
    assert len(pairs) == 0 and len(rows) == 0 and cols.tolist() == [0, 1, 2]


def test_iou_distance_and_fused_score():
    a = np.array([[0.0, 0, 10, 10]])
    b = np.array([[0.0, 0, 10, 10], [5.0, 0, 15, 10], [20.0, 20, 30, 30]])
    cost = matching.iou_distance(a, b)
    assert cost == pytest.approx(np.array([[0.0, 1 - 50 / 150, 1.0]]), abs=1e-6)
    dets = [SimpleNamespace(score=s) for s in (0.5, 1.0, 1.0)]
    assert matching.fuse_score(cost, dets)[0, 0] == pytest.approx(0.5)


def _textured(shift: tuple[int, int] = (0, 0)) -> np.ndarray:
    rng = np.random.default_rng(3)
    base = cv2.GaussianBlur(rng.integers(0, 255, (200, 200), dtype=np.uint8), (5, 5), 0)
    moved = np.roll(base, shift, axis=(0, 1))
    return cv2.cvtColor(moved[20:180, 20:180], cv2.COLOR_GRAY2BGR)


@pytest.mark.parametrize("method", ["sparseOptFlow", "ecc", "orb"])
def test_gmc_measures_a_camera_pan(method):
    gmc = GMC(method=method, downscale=1)
    assert np.allclose(gmc.apply(_textured()), np.eye(2, 3))  # the first frame has nothing to compare with
    warp = gmc.apply(_textured(shift=(2, 3)))  # content moved 3 px right and 2 px down
    assert warp[:, 2] == pytest.approx([3, 2], abs=0.6)
    assert warp[:, :2] == pytest.approx(np.eye(2), abs=0.05)


def test_gmc_rejects_unknown_methods():
    assert np.allclose(GMC("none").apply(_textured()), np.eye(2, 3))
    with pytest.raises(ValueError, match="gmc_method='flow'.*sparseOptFlow"):
        GMC("flow")


# ----------------------------------------------------------------------------------------------
# model.track: ground-truth detections through the real predictor, then the tiny model end to end
# ----------------------------------------------------------------------------------------------
class OraclePredictor(RTDETRPredictor):
    """Reports the clip's true boxes (plus noise) instead of the network's: frames are counted as they come."""

    frame_index = 0
    rng = np.random.default_rng(0)

    def postprocess(self, preds, img, orig_imgs):
        results = []
        for k, image in enumerate(orig_imgs):
            dets = noisy_detections(type(self).frame_index, type(self).rng)
            type(self).frame_index += 1
            boxes = np.c_[dets.xyxy, dets.conf, dets.cls]
            results.append(Results(image, path=self.batch[0][k], names=self.model.names, boxes=torch.tensor(boxes)))
        return results


@pytest.fixture
def oracle(monkeypatch):
    monkeypatch.setattr(OraclePredictor, "frame_index", 0)
    monkeypatch.setattr(OraclePredictor, "rng", np.random.default_rng(0))
    torch.manual_seed(0)
    return RTDETR(TINY)


def _rows(result: Results) -> np.ndarray:
    data = result.boxes.data.numpy()
    return data[:, :5] if result.boxes.is_track else np.zeros((0, 5))


@pytest.mark.parametrize("tracker", ["bytetrack.yaml", "botsort.yaml"])
def test_model_track_on_a_video_follows_the_objects(oracle, tmp_path, tracker):
    video = clip.write_video(tmp_path / "clip.mp4", N_FRAMES)
    results = oracle.track(str(video), tracker=tracker, imgsz=64, predictor=OraclePredictor, verbose=False)
    assert len(results) == N_FRAMES
    count = IdSwitches()
    for t, result in enumerate(results):
        count.add(t, _rows(result))
    assert count.switches <= 1 and count.hits >= 0.85 * 3 * N_FRAMES


def test_persist_keeps_ids_across_calls_on_successive_frames(oracle):
    persisted, restarted = IdSwitches(), IdSwitches()
    for t in range(N_FRAMES):
        (result,) = oracle.track(clip.frame(t), persist=True, imgsz=64, predictor=OraclePredictor, verbose=False)
        persisted.add(t, _rows(result))
    assert persisted.switches <= 1 and len(set(persisted.last.values())) == 3
    assert oracle.predictor.trackers[0].frame_id == N_FRAMES
    for t in range(5):  # without persist every call is a new sequence whose ids start at 1 again
        (result,) = oracle.track(clip.frame(t), persist=False, imgsz=64, verbose=False)
        restarted.add(t, _rows(result))
        assert oracle.predictor.trackers[0].frame_id == 1
    assert set(restarted.last.values()) <= {1, 2, 3}


def test_track_end_to_end_with_the_tiny_model(tmp_path):
    torch.manual_seed(0)
    model = RTDETR(TINY)
    video = clip.write_video(tmp_path / "clip.mp4", 12)
    results = model.track(str(video), imgsz=64, conf=0.01, save=True, project=str(tmp_path), name="t", verbose=False)
    assert len(results) == 12
    first = results[0]
    assert first.boxes.is_track and first.boxes.data.shape[1] == 7
    assert first.boxes.id.tolist() == list(range(1, len(first.boxes) + 1))  # frame 1 confirms every track
    assert all(r.boxes.is_track for r in results)
    plain = Results(first.orig_img, first.path, first.names, boxes=first.boxes.data[:, [0, 1, 2, 3, 5, 6]])
    assert not np.array_equal(first.plot(), plain.plot())  # the labels now carry 'id:N'
    assert clip.count_frames(tmp_path / "t" / "clip.mp4") == 12
    again = model.predict(str(video), imgsz=64, conf=0.01, verbose=False, stream=True)
    assert not next(iter(again)).boxes.is_track  # predict after track is plain prediction


def test_register_tracker_replaces_its_earlier_callbacks():
    model = RTDETR(TINY)
    register_tracker(model, persist=False)
    register_tracker(model, persist=True)
    starts = [c for c in model.callbacks["on_predict_start"] if getattr(c, "keywords", None)]
    assert len(starts) == 1 and starts[0].keywords == {"persist": True}


def test_yolo_track_command_saves_the_tracked_video(tmp_path, monkeypatch):
    video = clip.write_video(tmp_path / "cli.mp4", 6)
    monkeypatch.setattr("sys.argv", ["yolo", "track"])
    entrypoint(
        f"yolo track model={TINY} source={video} imgsz=64 conf=0.01 tracker=bytetrack.yaml "
        f"project={tmp_path} name=cli verbose=False"
    )
    assert clip.count_frames(tmp_path / "cli" / "cli.mp4") == 6
