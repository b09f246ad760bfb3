"""Prediction: every source kind, box scaling, Results API, saving, streaming memory, bad input.

Most tests use `RectFinder`, a stand-in detector that reports the bounding box of the red pixels it
sees. A red rectangle drawn at a known place in a non-square BGR image must therefore come back at
the same pixel position, which exercises the loaders, BGR->RGB conversion, the stretch to a square
imgsz and the scaling back to the original image in one go.
"""

from __future__ import annotations

import gc
import tracemalloc
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from ultralytics.data.loaders import LoadTensor, StreamOpenError, load_inference_source
from ultralytics.engine.results import Boxes, Results
from ultralytics.models.rtdetr.predict import RTDETRPredictor

H, W = 120, 200  # original image size, deliberately not square
RECT = (40, 30, 100, 90)  # x1, y1, x2, y2 of the red rectangle in original pixels
IMGSZ = 64
TOL = 0.6 * W / IMGSZ  # under one resized pixel, seen in original pixels

# Every test runs in its own tmp_path (saved images and runs land there).
pytestmark = pytest.mark.usefixtures("in_tmp_path")


class RectFinder(torch.nn.Module):
    """Returns (y, None) with y (B, 300, 4 + 3): query 0 boxes the red pixels as class 1, score 0.9."""

    def __init__(self):
        super().__init__()
        self.names = {0: "circle", 1: "square", 2: "triangle"}
        self.stride = torch.tensor([8.0, 16.0, 32.0])
        self.calls = 0

    def forward(self, x: torch.Tensor):
        self.calls += 1
        b, _, h, w = x.shape
        y = torch.zeros(b, 300, 7)
        red = (x[:, 0] > 0.5) & (x[:, 1] < 0.5) & (x[:, 2] < 0.5)  # RGB input: red is channel 0
        for i in range(b):
            rows = torch.where(red[i].any(1))[0]
            cols = torch.where(red[i].any(0))[0]
            if len(rows):
                x1, x2 = cols.min().item(), cols.max().item() + 1
                y1, y2 = rows.min().item(), rows.max().item() + 1
                y[i, 0, :4] = torch.tensor([(x1 + x2) / 2 / w, (y1 + y2) / 2 / h, (x2 - x1) / w, (y2 - y1) / h])
                y[i, 0, 5] = 0.9
        return y, None


class FixedDetector(torch.nn.Module):
    """Three fixed queries: class 1 @0.9, class 2 @0.6, class 0 @0.2; the rest score 0."""

    def __init__(self):
        super().__init__()
        self.names = {0: "circle", 1: "square", 2: "triangle"}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.zeros(x.shape[0], 300, 7)
        y[:, :3, :4] = torch.tensor([[0.5, 0.5, 0.2, 0.2], [0.25, 0.25, 0.1, 0.1], [0.75, 0.75, 0.1, 0.1]])
        y[:, 0, 5], y[:, 1, 6], y[:, 2, 4] = 0.9, 0.6, 0.2
        return y


def make_image(h: int = H, w: int = W) -> np.ndarray:
    im = np.full((h, w, 3), 60, np.uint8)
    x1, y1, x2, y2 = (round(v * w / W) if i % 2 == 0 else round(v * h / H) for i, v in enumerate(RECT))
    im[y1:y2, x1:x2] = (0, 0, 255)  # BGR red
    return im


def make_predictor(tmp_path: Path, model: torch.nn.Module | None = None, **overrides) -> RTDETRPredictor:
    args = {"imgsz": IMGSZ, "batch": 1, "save": False, "verbose": False, "mode": "predict", "project": str(tmp_path / "runs")}
    p = RTDETRPredictor(overrides={**args, **overrides})
    p.setup_model(model or RectFinder(), verbose=False)
    return p


def write_video(path: Path, n: int, h: int = H, w: int = W) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10, (w, h))
    if not writer.isOpened():
        pytest.skip("OpenCV cannot write mp4v video here")
    for _ in range(n):
        writer.write(make_image(h, w))
    writer.release()
    return path


def assert_rect(result: Results, shape: tuple[int, int] = (H, W)) -> None:
    h, w = shape
    assert result.orig_shape == (h, w)
    assert len(result.boxes) == 1
    expected = torch.tensor(RECT, dtype=torch.float32) * torch.tensor([w / W, h / H, w / W, h / H])
    torch.testing.assert_close(result.boxes.xyxy[0].float(), expected, atol=TOL * max(w / W, 1), rtol=0)
    assert int(result.boxes.cls[0]) == 1 and result.names[1] == "square"


@pytest.fixture
def image_dir(tmp_path: Path) -> Path:
    d = tmp_path / "images"
    d.mkdir()
    for name in ("a.jpg", "b.png"):
        cv2.imwrite(str(d / name), make_image())
    return d


# ---------------------------------------------------------------------------------------------
# Every source kind returns correctly scaled boxes
# ---------------------------------------------------------------------------------------------
def test_image_path(tmp_path, image_dir):
    results = make_predictor(tmp_path)(source=str(image_dir / "a.jpg"))
    assert len(results) == 1
    assert_rect(results[0])
    assert results[0].path.endswith("a.jpg")


def test_folder_glob_list_and_txt(tmp_path, image_dir):
    p = make_predictor(tmp_path)
    listing = tmp_path / "list.txt"
    listing.write_text("images/a.jpg\nimages/b.png\n")  # relative to the .txt file's folder
    sources = {
        "folder": str(image_dir),
        "glob": str(image_dir / "*.png"),
        "list": [str(image_dir / "a.jpg"), image_dir / "b.png"],
        "txt": str(listing),
    }
    counts = {}
    for kind, source in sources.items():
        results = p(source=source)
        counts[kind] = len(results)
        for r in results:
            assert_rect(r)
    assert counts == {"folder": 2, "glob": 1, "list": 2, "txt": 2}


def test_numpy_pil_and_mixed_list(tmp_path, image_dir):
    p = make_predictor(tmp_path)
    bgr = make_image()
    pil = Image.fromarray(bgr[..., ::-1].copy())  # PIL holds RGB
    for source in (bgr, pil, [bgr, pil, str(image_dir / "a.jpg")]):
        results = p(source=source)
        assert len(results) == (3 if isinstance(source, list) else 1)
        for r in results:
            assert_rect(r)
            assert r.orig_img.shape == (H, W, 3)


def test_greyscale_numpy_is_accepted(tmp_path):
    results = make_predictor(tmp_path)(source=np.full((H, W), 60, np.uint8))
    assert results[0].orig_img.shape == (H, W, 3)
    assert len(results[0].boxes) == 0  # nothing red


def test_tensor_source_keeps_its_own_size(tmp_path):
    h, w = 96, 160
    im = torch.from_numpy(make_image(h, w)[..., ::-1].copy()).permute(2, 0, 1)[None].float() / 255  # RGB BCHW
    results = make_predictor(tmp_path)(source=torch.cat([im, im]))
    assert len(results) == 2
    for r in results:
        assert_rect(r, (h, w))
        assert r.orig_img.dtype == np.uint8
        assert tuple(r.orig_img[0, 0]) == (60, 60, 60)


def test_video_frames(tmp_path):
    video = write_video(tmp_path / "clip.mp4", n=5)
    results = make_predictor(tmp_path)(source=str(video))
    assert len(results) == 5
    for r in results:
        assert_rect(r)


def test_video_stride_and_batch(tmp_path):
    video = write_video(tmp_path / "clip.mp4", n=6)
    assert len(make_predictor(tmp_path, vid_stride=2)(source=str(video))) == 3
    p = make_predictor(tmp_path, batch=4)
    results = p(source=str(video))
    assert len(results) == 6
    assert p.model.model.calls == 2  # 4 + 2 frames


# ---------------------------------------------------------------------------------------------
# Post-processing: conf, classes, max_det
# ---------------------------------------------------------------------------------------------
def test_conf_classes_and_max_det(tmp_path):
    im = make_image()
    scores = lambda **kw: sorted(round(float(c), 2) for c in make_predictor(tmp_path, FixedDetector(), **kw)(im)[0].boxes.conf)
    assert scores() == [0.6, 0.9]  # default conf 0.25 drops the 0.2 query and the zeros
    assert scores(conf=0.1) == [0.2, 0.6, 0.9]
    assert scores(conf=0.1, classes=[0, 2]) == [0.2, 0.6]
    assert scores(conf=0.1, classes=2) == [0.6]
    assert scores(conf=0.1, max_det=1) == [0.9]
    r = make_predictor(tmp_path, FixedDetector())(im)[0]
    first = r.boxes[r.boxes.conf.argmax()]
    torch.testing.assert_close(first.xyxy[0], torch.tensor([0.4 * W, 0.4 * H, 0.6 * W, 0.6 * H]))


# ---------------------------------------------------------------------------------------------
# Results API
# ---------------------------------------------------------------------------------------------
def test_results_api(tmp_path):
    r = make_predictor(tmp_path, FixedDetector())(make_image())[0]
    b = r.boxes
    assert len(r) == len(b) == 2 and b.shape == (2, 6)
    i = int(b.conf.argmax())
    torch.testing.assert_close(b.xywh[i], torch.tensor([0.5 * W, 0.5 * H, 0.2 * W, 0.2 * H]))
    torch.testing.assert_close(b.xywhn[i], torch.tensor([0.5, 0.5, 0.2, 0.2]))
    torch.testing.assert_close(b.xyxyn[i], torch.tensor([0.4, 0.4, 0.6, 0.6]))
    assert b.id is None and not b.is_track
    assert isinstance(b.numpy().data, np.ndarray) and isinstance(r.cpu().boxes.data, torch.Tensor)
    assert isinstance(r.numpy().boxes.xywhn, np.ndarray)
    assert len(r[i]) == 1 and float(r[i].boxes.conf[0]) == pytest.approx(0.9)
    assert set(r.speed) == {"preprocess", "inference", "postprocess"} and all(v >= 0 for v in r.speed.values())
    assert r.verbose() == "1 square, 1 triangle, "

    summary = r.summary(normalize=True)
    top = next(s for s in summary if s["class"] == 1)
    assert top["name"] == "square" and top["confidence"] == pytest.approx(0.9)
    assert top["box"] == pytest.approx({"x1": 0.4, "y1": 0.4, "x2": 0.6, "y2": 0.6})
    assert '"name": "square"' in r.to_json()

    plotted = r.plot()
    assert plotted.shape == (H, W, 3) and plotted.dtype == np.uint8
    assert not np.array_equal(plotted, r.orig_img)  # boxes were drawn
    assert np.array_equal(r.orig_img, make_image())  # on a copy
    out = r.save(str(tmp_path / "annotated.jpg"))
    assert cv2.imread(out).shape == (H, W, 3)

    txt = tmp_path / "labels.txt"
    r.save_txt(txt, save_conf=True)
    rows = sorted(line.split() for line in txt.read_text().splitlines())
    assert rows[0][0] == "1" and [float(v) for v in rows[0][1:]] == pytest.approx([0.5, 0.5, 0.2, 0.2, 0.9])


def test_results_empty_and_update():
    im = make_image()
    r = Results(im, path="x.jpg", names={0: "a"}, boxes=torch.zeros(0, 6))
    assert len(r) == 0 and r.verbose() == "(no detections), " and r.summary() == []
    r.update(boxes=torch.tensor([[-5.0, 10.0, 500.0, 50.0, 0.5, 0.0]]))
    assert r.boxes.xyxy.tolist() == [[0.0, 10.0, float(W), 50.0]]  # clipped to the image
    with pytest.raises(ValueError, match="n, 6"):
        Boxes(torch.zeros(2, 5), (H, W))


# ---------------------------------------------------------------------------------------------
# Saving
# ---------------------------------------------------------------------------------------------
def test_save_images_txt_and_crops(tmp_path, image_dir):
    p = make_predictor(tmp_path, save=True, save_txt=True, save_conf=True, save_crop=True)
    p(source=str(image_dir))
    save_dir = tmp_path / "runs" / "predict"
    assert p.save_dir == save_dir
    for stem in ("a", "b"):
        annotated = cv2.imread(str(save_dir / f"{stem}.jpg"))
        assert annotated is not None and annotated.shape == (H, W, 3)
        assert not np.array_equal(annotated, make_image())
        cls, *rest = (save_dir / "labels" / f"{stem}.txt").read_text().split()
        assert cls == "1" and len(rest) == 5
        assert (save_dir / "crops" / "square" / f"{stem}.jpg").is_file()
    # A second predictor picks the next free folder instead of overwriting.
    assert make_predictor(tmp_path, save=True).save_dir == tmp_path / "runs" / "predict2"


def test_save_video(tmp_path):
    video = write_video(tmp_path / "clip.mp4", n=4)
    p = make_predictor(tmp_path, save=True, save_txt=True)
    p(source=str(video))
    out = p.save_dir / "clip.mp4"
    cap = cv2.VideoCapture(str(out))
    frames = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    ok, frame = cap.read()
    cap.release()
    assert frames == 4 and ok and frame.shape == (H, W, 3)
    assert sorted(f.name for f in (p.save_dir / "labels").iterdir()) == [f"clip_{i}.txt" for i in range(1, 5)]


# ---------------------------------------------------------------------------------------------
# Streaming keeps memory flat
# ---------------------------------------------------------------------------------------------
def _stream_peak(tmp_path: Path, n: int) -> tuple[int, int]:
    video = write_video(tmp_path / f"clip{n}.mp4", n=n, h=240, w=320)  # 230 kB per frame
    p = make_predictor(tmp_path)
    gen = p(source=str(video), stream=True)
    assert not isinstance(gen, list)
    gc.collect()
    tracemalloc.start()
    count = 0
    for r in gen:
        assert r.orig_shape == (240, 320)
        count += 1
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return count, peak


def test_stream_memory_is_flat(tmp_path):
    n10, peak10 = _stream_peak(tmp_path, 10)
    n40, peak40 = _stream_peak(tmp_path, 40)
    assert (n10, n40) == (10, 40)
    # Holding all frames would add 30 x 230 kB = 6.9 MB; allow a quarter of that for noise.
    assert peak40 - peak10 < 1.7e6, f"peak grew from {peak10} to {peak40} bytes"


# ---------------------------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------------------------
def test_missing_source_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.jpg"):
        make_predictor(tmp_path)(source=str(tmp_path / "nowhere.jpg"))


def test_unreadable_image_is_skipped_with_warning(tmp_path, image_dir, log_text):
    (image_dir / "broken.jpg").write_bytes(b"this is not a jpeg")
    results = make_predictor(tmp_path)(source=str(image_dir))
    assert sorted(Path(r.path).name for r in results) == ["a.jpg", "b.png"]
    for r in results:
        assert_rect(r)
    assert any("broken.jpg" in line and "WARNING" in line for line in log_text().splitlines())


def test_empty_folder(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.md").write_text("no images here")
    with pytest.raises(FileNotFoundError, match="empty") as e:
        make_predictor(tmp_path)(source=str(empty))
    assert "jpg" in str(e.value) and "mp4" in str(e.value)  # says what is accepted


@pytest.mark.parametrize(
    "tensor, message",
    [
        (torch.rand(1, 3, 60, 64), "divisible by 32"),
        (torch.rand(1, 1, 64, 64), "BCHW"),
        (torch.rand(1, 3, 64, 64) * 255, "0.0-1.0"),
        (torch.zeros(1, 3, 64, 64, dtype=torch.uint8), "dtype"),
    ],
)
def test_bad_tensor_sources(tensor, message):
    with pytest.raises(ValueError, match=message):
        LoadTensor(tensor)


def test_unsupported_sources():
    with pytest.raises(TypeError, match="Unsupported source type dict"):
        load_inference_source({"image": 1})
    # This machine has no camera: opening index 0 is a StreamOpenError that names it
    with pytest.raises(StreamOpenError, match="webcam"):
        load_inference_source(0)
    with pytest.raises(TypeError, match="list item 1"):
        load_inference_source([make_image(), 3.5])
    with pytest.raises(ValueError, match="No inference source"):
        load_inference_source(None)


# ---------------------------------------------------------------------------------------------
# Through the public model API with a real (tiny) RT-DETR
# ---------------------------------------------------------------------------------------------
def test_rtdetr_model_predict(image_dir, tiny_focal_yaml):
    from ultralytics import RTDETR

    model = RTDETR(tiny_focal_yaml)
    results = model.predict([str(image_dir / "a.jpg"), make_image(80, 160)], imgsz=64, conf=0.0)
    assert [r.orig_shape for r in results] == [(H, W), (80, 160)]
    for r in results:
        assert len(r.boxes) == 300
        xyxy = r.boxes.xyxy
        assert (xyxy[:, 2] >= xyxy[:, 0]).all() and (xyxy[:, 3] >= xyxy[:, 1]).all()
        assert xyxy[:, [0, 2]].max() <= r.orig_shape[1] + 1e-3 and xyxy[:, [1, 3]].max() <= r.orig_shape[0] + 1e-3
        assert set(r.boxes.cls.long().tolist()) <= {0, 1, 2}
    streamed = list(model.predict(str(image_dir), imgsz=64, conf=0.0, stream=True))
    assert len(streamed) == 2
