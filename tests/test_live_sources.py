"""Live sources: a video served over HTTP on 127.0.0.1, a fake camera (lost and regained connections),
a .streams file of two sources predicted as one batch, stream_buffer and vid_stride, and screenshots."""

from __future__ import annotations

import functools
import http.server
import sys
import threading
import types
from pathlib import Path
from typing import ClassVar

import cv2
import moving_shapes as clip
import numpy as np
import pytest
import torch

from ultralytics import RTDETR
from ultralytics.cfg import entrypoint
from ultralytics.data.loaders import LoadScreenshots, LoadStreams, StreamOpenError, load_inference_source

REPO = Path(__file__).resolve().parents[1]
TINY = str(REPO / "tests" / "fixtures" / "rtdetr-tiny-FocalModulation.yaml")
N_FRAMES = 12


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return RTDETR(TINY)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep the test log to the package's own lines
        pass


@pytest.fixture(scope="module")
def http_videos(tmp_path_factory):
    """A local HTTP server (127.0.0.1, a free port) serving v.mp4 and w.mp4 of N_FRAMES frames; yields its base URL."""
    folder = tmp_path_factory.mktemp("served")
    clip.write_video(folder / "v.mp4", N_FRAMES)
    clip.write_video(folder / "w.mp4", N_FRAMES)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=folder))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join()


# ----------------------------------------------------------------------------------------------
# Network streams
# ----------------------------------------------------------------------------------------------
def test_http_video_is_predicted_frame_by_frame(model, http_videos, tmp_path):
    url = f"{http_videos}/v.mp4"
    results = list(
        model.predict(
            url, imgsz=64, stream=True, stream_buffer=True, save=True, project=str(tmp_path), name="h", verbose=False
        )
    )
    assert len(results) == N_FRAMES  # buffered: no frame dropped
    assert model.predictor.source_type.stream and model.predictor.dataset.mode == "stream"
    assert all(r.path == url and r.orig_shape == (clip.SIZE, clip.SIZE) for r in results)
    assert clip.count_frames(tmp_path / "h" / "v.mp4") == N_FRAMES


def test_vid_stride_skips_stream_frames(http_videos):
    loader = load_inference_source(f"{http_videos}/v.mp4", vid_stride=3, buffer=True)
    assert loader.frames == [N_FRAMES] and loader.fps == [30.0]
    images = [batch[1][0] for batch in loader]
    assert len(images) == N_FRAMES // 3  # frames 1, 4, 7, 10
    # the shapes move 3.5 px per frame: each image is closest to the frame it should be
    for image, expected in zip(images, (0, 3, 6, 9)):
        gaps = [np.abs(image.astype(int) - clip.frame(t).astype(int)).mean() for t in range(N_FRAMES)]
        assert int(np.argmin(gaps)) == expected


def test_streams_file_predicts_its_sources_as_one_batch(model, http_videos, tmp_path):
    listing = tmp_path / "two.streams"
    listing.write_text(f"{http_videos}/v.mp4\n\n{http_videos}/w.mp4\n")
    batches = []
    model.add_callback("on_predict_batch_end", lambda p: batches.append(list(p.batch[0])))
    try:
        results = list(model.predict(str(listing), imgsz=64, stream=True, stream_buffer=True, verbose=False))
    finally:
        model.callbacks["on_predict_batch_end"].pop()
    assert len(results) == 2 * N_FRAMES
    assert batches[0] == [f"{http_videos}/v.mp4", f"{http_videos}/w.mp4"]
    assert len(batches) == N_FRAMES


def test_tracking_a_streams_file_keeps_one_tracker_per_stream(model, http_videos, tmp_path):
    listing = tmp_path / "two.streams"
    listing.write_text(f"{http_videos}/v.mp4\n{http_videos}/w.mp4\n")
    results = list(model.track(str(listing), imgsz=64, conf=0.01, stream=True, stream_buffer=True, verbose=False))
    assert len(model.predictor.trackers) == 2
    assert all(t.frame_id == N_FRAMES for t in model.predictor.trackers)
    assert results[0].boxes.is_track and results[1].boxes.is_track


def test_unreachable_url_and_empty_streams_file_say_what_is_wrong(tmp_path):
    with pytest.raises(StreamOpenError, match="Failed to open stream 'http://127.0.0.1:9/none.mp4'"):
        LoadStreams("http://127.0.0.1:9/none.mp4")
    assert issubclass(StreamOpenError, ConnectionError) and issubclass(StreamOpenError, ValueError)
    empty = tmp_path / "empty.streams"
    empty.write_text("\n")
    with pytest.raises(ValueError, match="lists no sources"):
        LoadStreams(str(empty))


# ----------------------------------------------------------------------------------------------
# A camera: a fake capture device in place of cv2.VideoCapture
# ----------------------------------------------------------------------------------------------
class FakeCamera:
    """Serves the clip's frames as a live camera (no frame count). After `fail_at` frames it stops; re-opening
    works `reopen_ok` times. Every instance shares the frame counter, as one physical device would."""

    opened_with: ClassVar[list] = []  # (target, api) of every open; the camera fixture gives each test its own
    served = 0
    fail_at = 8
    reopen_ok = 0
    limit = 10_000

    def __init__(self, target, *api):
        cls = type(self)
        self.alive = not cls.opened_with or cls.reopen_ok > 0
        if cls.opened_with and self.alive:
            cls.reopen_ok -= 1
            cls.fail_at = cls.limit
        cls.opened_with.append((target, api))

    def isOpened(self):
        return self.alive

    def get(self, prop):
        return {cv2.CAP_PROP_FRAME_WIDTH: clip.SIZE, cv2.CAP_PROP_FRAME_HEIGHT: clip.SIZE, cv2.CAP_PROP_FPS: 0.0}.get(
            prop, 0.0
        )

    def grab(self):
        cls = type(self)
        if not self.alive or cls.served >= min(cls.fail_at, cls.limit):
            self.alive = False
            return False
        cls.served += 1
        return True

    def retrieve(self):
        return True, clip.frame(type(self).served - 1)

    def read(self):
        return (True, self.retrieve()[1]) if self.grab() else (False, None)

    def release(self):
        self.alive = False


@pytest.fixture
def camera(monkeypatch):
    monkeypatch.setattr(cv2, "VideoCapture", FakeCamera)
    monkeypatch.setattr(LoadStreams, "retry_delay", 0.0)
    monkeypatch.setattr(FakeCamera, "opened_with", [])
    monkeypatch.setattr(FakeCamera, "served", 0)
    return FakeCamera


def test_camera_index_until_the_connection_is_lost(model, camera, log_text):
    results = list(model.predict(0, imgsz=64, stream=True, stream_buffer=True, verbose=False))
    assert len(results) == camera.fail_at
    assert camera.opened_with[0] == (0, ())  # an index goes to OpenCV's default camera backend
    assert len(camera.opened_with) == 1 + LoadStreams.reconnects  # then every reconnection attempt failed
    assert f"no frame after {LoadStreams.reconnects} reconnection attempts" in log_text()
    assert model.predictor.dataset.fps == [30.0]  # a camera reporting 0 FPS is taken as 30


def test_camera_comes_back_after_a_reconnection(camera, monkeypatch, log_text):
    monkeypatch.setattr(FakeCamera, "reopen_ok", 1)
    monkeypatch.setattr(FakeCamera, "limit", 14)
    loader = load_inference_source("0", buffer=True)
    frames = [images[0] for _, images, _ in loader]
    assert len(frames) == 14  # 8 before the drop, 6 after
    assert "reconnecting (1/3)" in log_text()
    assert np.array_equal(frames[-1], clip.frame(13))


def test_without_stream_buffer_only_the_newest_frame_is_kept(camera, monkeypatch):
    monkeypatch.setattr(FakeCamera, "fail_at", 6)
    monkeypatch.setattr(LoadStreams, "reconnects", 0)
    loader = LoadStreams("0", buffer=False)
    reader = loader.readers[0]
    reader.thread.join(timeout=5)  # the reader runs ahead of a consumer that has not asked yet
    assert len(reader.queue) == 1 and np.array_equal(reader.next_frame(), clip.frame(5))
    assert reader.next_frame() is None  # the camera is gone


# ----------------------------------------------------------------------------------------------
# Screenshots through a stand-in for the optional mss package
# ----------------------------------------------------------------------------------------------
def _fake_mss():
    class Grabber:
        monitors: ClassVar[list] = [
            {"left": 0, "top": 0, "width": 96, "height": 64},
            {"left": 0, "top": 0, "width": 96, "height": 64},
        ]

        def grab(self, monitor):
            shot = np.zeros((monitor["height"], monitor["width"], 4), np.uint8)
            shot[..., 1] = monitor["left"]  # the region's position shows in the pixels
            return shot

    return types.SimpleNamespace(mss=Grabber)


def test_screen_source_is_predicted(model, monkeypatch):
    monkeypatch.setitem(sys.modules, "mss", _fake_mss())
    results = model.predict("screen", imgsz=64, stream=True, verbose=False)
    first = [next(results) for _ in range(3)]
    results.close()
    assert model.predictor.source_type.screenshot
    assert [r.orig_shape for r in first] == [(64, 96)] * 3
    region = LoadScreenshots("screen 1 8 4 32 16")
    _, (image,), (note,) = next(iter(region))
    assert image.shape == (16, 32, 3) and image[0, 0, 1] == 8
    assert note == "screen 1 (LTWH): 8,4,32,16: "


def test_screen_source_errors(monkeypatch):
    monkeypatch.setitem(sys.modules, "mss", None)  # as if mss were not installed
    with pytest.raises(ModuleNotFoundError, match="pip install mss"):
        LoadScreenshots("screen")
    monkeypatch.setitem(sys.modules, "mss", _fake_mss())
    with pytest.raises(ValueError, match="no monitor 5, only 0-1"):
        LoadScreenshots("screen 5")
    with pytest.raises(ValueError, match="'screen N LEFT TOP WIDTH HEIGHT'"):
        LoadScreenshots("screen 1 2")

    class NoDisplay(Exception):
        pass

    def refuse():
        raise NoDisplay("display is unset")

    headless = types.SimpleNamespace(mss=refuse, exception=types.SimpleNamespace(ScreenShotError=NoDisplay))
    monkeypatch.setitem(sys.modules, "mss", headless)
    with pytest.raises(StreamOpenError, match="'screen' cannot reach a display: display is unset"):
        LoadScreenshots("screen")


def test_yolo_predict_on_an_unreachable_stream_is_a_usage_error(log_text):
    with pytest.raises(SystemExit) as exc:
        entrypoint(f"yolo predict model={TINY} source=http://127.0.0.1:9/gone.mp4 imgsz=64")
    assert exc.value.code == 2
    assert "yolo: error: Failed to open stream 'http://127.0.0.1:9/gone.mp4'" in log_text()
    assert "Traceback" not in log_text()
