"""Every plot writes a readable, non-blank image of sensible size; boxes land where they should."""

from __future__ import annotations

import csv
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from ultralytics.utils.metrics import ConfusionMatrix, DetMetrics
from ultralytics.utils.plotting import (
    Annotator,
    colors,
    output_to_target,
    plot_images,
    plot_labels,
    plot_results,
    save_one_box,
)

NAMES = {0: "cat", 1: "dog", 2: "bird"}


def _assert_image(path: Path, min_side: int = 200) -> np.ndarray:
    assert path.is_file(), f"{path} was not written"
    im = cv2.imread(str(path))
    assert im is not None, f"{path} is not a readable image"
    assert min(im.shape[:2]) > min_side, f"{path} is only {im.shape[:2]}"
    assert im.std() > 0, f"{path} is blank"
    return im


def _batch(bs: int = 4, size: int = 160):
    gen = torch.Generator().manual_seed(0)
    images = torch.rand(bs, 3, size, size, generator=gen)
    batch_idx = torch.tensor([0.0, 0.0, 1.0, 2.0, 3.0])
    cls = torch.tensor([0.0, 1.0, 2.0, 0.0, 1.0])
    bboxes = torch.tensor(  # normalised xywh, as the dataloader gives them
        [[0.5, 0.5, 0.4, 0.4], [0.3, 0.3, 0.2, 0.3], [0.5, 0.5, 0.9, 0.9], [0.2, 0.7, 0.1, 0.1], [0.6, 0.4, 0.3, 0.5]]
    )
    return images, batch_idx, cls, bboxes


def test_colors_palette():
    assert colors(0) == (255, 56, 56)
    assert colors(0, bgr=True) == (56, 56, 255)
    assert colors(20) == colors(0)  # the palette wraps around
    assert len({colors(i) for i in range(20)}) == 20


def test_plot_images_labels_and_predictions(tmp_path):
    images, batch_idx, cls, bboxes = _batch()
    before = images.clone()
    paths = [f"im{i}.jpg" for i in range(4)]
    plot_images(images, batch_idx, cls, bboxes, paths=paths, fname=tmp_path / "val_batch0_labels.jpg", names=NAMES)
    assert torch.equal(images, before)  # de-normalising works on a copy
    im = _assert_image(tmp_path / "val_batch0_labels.jpg")
    assert im.shape[:2] == (320, 320)  # 4 images of 160 px tile a 2x2 mosaic

    preds = [
        torch.tensor([[10.0, 10, 80, 90, 0.9, 1], [50, 50, 150, 150, 0.1, 0]]),  # pixel xyxy, conf, cls
        torch.zeros(0, 6),
        torch.tensor([[0.0, 0, 160, 160, 0.5, 2]]),
        torch.zeros(0, 6),
    ]
    seen = []
    plot_images(
        images, *output_to_target(preds), fname=tmp_path / "val_batch0_pred.jpg", names=NAMES, on_plot=seen.append
    )
    _assert_image(tmp_path / "val_batch0_pred.jpg")
    assert seen == [tmp_path / "val_batch0_pred.jpg"]


def test_plot_images_draws_boxes_in_place():
    images = torch.zeros(1, 3, 256, 256)
    out = plot_images(
        images, torch.tensor([0.0]), torch.tensor([3.0]), torch.tensor([[0.5, 0.5, 0.5, 0.5]]), save=False
    )
    assert out.shape == (256, 256, 3)
    # box xyxy = (64, 64, 192, 192): its left edge is drawn in class 3's colour (RGB mosaic)
    np.testing.assert_allclose(out[150, 64].astype(int), colors(3), atol=40)
    assert out[150, 128].sum() == 0  # the inside stays untouched
    # pixel boxes give the same drawing as normalised ones
    out_px = plot_images(
        images, torch.tensor([0.0]), torch.tensor([3.0]), torch.tensor([[128.0, 128, 128, 128]]), save=False
    )
    np.testing.assert_array_equal(out, out_px)


def test_plot_images_downscales_large_batches():
    images, batch_idx, cls, bboxes = _batch(bs=4, size=160)
    out = plot_images(images, batch_idx, cls, bboxes, max_size=200, save=False)
    assert out.shape[:2] == (200, 200)  # 2 tiles of ceil(160 * 200 / 2 / 160) = 100 px


def test_plot_images_hides_low_confidence_predictions():
    images = torch.zeros(1, 3, 256, 256)
    args = torch.tensor([0.0]), torch.tensor([0.0]), torch.tensor([[0.5, 0.5, 0.5, 0.5]])
    low = plot_images(images, *args, confs=torch.tensor([0.2]), save=False)
    high = plot_images(images, *args, confs=torch.tensor([0.9]), save=False)
    assert low[150, 64].sum() == 0 and high[150, 64].sum() > 0


def test_output_to_target_converts_to_xywh():
    out = [torch.tensor([[10.0, 20, 30, 60, 0.7, 2]]), torch.tensor([[0.0, 0, 4, 4, 0.4, 1], [1, 1, 2, 2, 0.3, 0]])]
    batch_idx, cls, xywh, conf = output_to_target(out, max_det=1)
    np.testing.assert_array_equal(batch_idx, [0, 1])  # max_det keeps 1 per image
    np.testing.assert_array_equal(cls, [2, 1])
    np.testing.assert_allclose(xywh, [[20, 40, 20, 40], [2, 2, 4, 4]])
    np.testing.assert_allclose(conf, [0.7, 0.4], rtol=1e-6)


def test_plot_labels(tmp_path):
    rng = np.random.default_rng(0)
    boxes = np.concatenate((rng.uniform(0.2, 0.8, (60, 2)), rng.uniform(0.05, 0.5, (60, 2))), 1)
    cls = rng.integers(0, 3, 60)
    plot_labels(boxes, cls, names=NAMES, save_dir=tmp_path)
    _assert_image(tmp_path / "labels.jpg")
    _assert_image(tmp_path / "labels_correlogram.jpg")


def _write_results_csv(path: Path, header: list[str], epochs: int = 8) -> None:
    rng = np.random.default_rng(0)
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow([f"{h:>20s}" for h in header])  # upstream pads the header
        for e in range(1, epochs + 1):
            writer.writerow([e, *np.round(rng.random(len(header) - 1), 5)])


def test_plot_results(tmp_path, results_columns):
    _write_results_csv(tmp_path / "results.csv", results_columns)
    seen = []
    plot_results(file=tmp_path / "results.csv", on_plot=seen.append)
    _assert_image(tmp_path / "results.png")
    assert seen == [tmp_path / "results.png"]


def test_plot_results_single_epoch_and_missing_file(tmp_path, results_columns):
    _write_results_csv(tmp_path / "results.csv", results_columns, epochs=1)  # too short to smooth, still plotted
    plot_results(dir=tmp_path, file="")
    _assert_image(tmp_path / "results.png")
    with pytest.raises(FileNotFoundError, match="results"):
        plot_results(file=tmp_path / "empty" / "results.csv")


def _results_table(columns: list[str], epochs: int = 8) -> dict[str, list[float]]:
    rng = np.random.default_rng(1)
    table = {c: np.round(rng.random(epochs), 5).tolist() for c in columns}
    table["epoch"] = list(range(1, epochs + 1))
    return table


def _write_table(path: Path, table: dict[str, list[float]]) -> None:
    rows = zip(*table.values())
    path.write_text(",".join(table) + "\n" + "".join(",".join(f"{v:g}" for v in r) + "\n" for r in rows))


def test_plot_results_same_panels_with_and_without_time_column(tmp_path, results_columns):
    """The time column (second, since training records it) gets no panel: both layouts draw the same figure."""
    from ultralytics.utils.plotting import _panel_names

    assert results_columns[:2] == ["epoch", "time"]
    table = _results_table([c for c in results_columns if c != "time"])  # the layout before the time column
    with_time = {"epoch": table["epoch"], "time": [12.5 * e for e in table["epoch"]], **table}
    assert list(with_time)[:2] == ["epoch", "time"]
    old, new = tmp_path / "old", tmp_path / "new"
    for folder, t in ((old, table), (new, with_time)):
        folder.mkdir()
        _write_table(folder / "results.csv", t)
        plot_results(file=folder / "results.csv")

    panels = results_columns[2:]
    assert _panel_names([list(table)]) == panels == _panel_names([list(with_time)])
    a, b = _assert_image(old / "results.png"), _assert_image(new / "results.png")
    assert a.shape == b.shape
    np.testing.assert_array_equal(a, b)  # identical pixels: time is neither a panel nor the x axis


def test_plot_results_time_only_is_rejected(tmp_path):
    (tmp_path / "results.csv").write_text("epoch,time\n1,3.5\n")
    with pytest.raises(ValueError, match="no loss or metric column"):
        plot_results(file=tmp_path / "results.csv")


def test_confusion_matrix_plots(tmp_path):
    cm = ConfusionMatrix(nc=3)
    cm.process_batch(
        torch.tensor([[0, 0, 50, 50, 0.9, 0], [100, 100, 150, 150, 0.8, 2], [300, 300, 350, 350, 0.7, 1]]),
        torch.tensor([[0.0, 0, 50, 50], [100, 100, 150, 150], [200, 200, 250, 250]]),
        torch.tensor([0, 1, 2]),
    )
    seen = []
    cm.plot(normalize=True, save_dir=tmp_path, names=tuple(NAMES.values()), on_plot=seen.append)
    cm.plot(normalize=False, save_dir=tmp_path, names=NAMES)
    _assert_image(tmp_path / "confusion_matrix_normalized.png")
    _assert_image(tmp_path / "confusion_matrix.png")
    assert seen == [tmp_path / "confusion_matrix_normalized.png"]


def test_metric_curves_plots(tmp_path):
    rng = np.random.default_rng(0)
    n = 40
    tp = rng.random((n, 10)) < np.linspace(0.9, 0.3, 10)
    m = DetMetrics(save_dir=tmp_path, plot=True, names=NAMES)
    m.process(tp, rng.random(n), rng.integers(0, 3, n), rng.integers(0, 3, 30))
    for name in ("PR_curve.png", "F1_curve.png", "P_curve.png", "R_curve.png"):
        _assert_image(tmp_path / name)


def test_annotator_cv2_and_pil():
    im = np.zeros((240, 320, 3), dtype=np.uint8)
    a = Annotator(im.copy())
    a.box_label([10, 40, 120, 200], "person 0.91", color=colors(3, bgr=True))
    a.text((150, 20), "hello")
    a.rectangle([200, 100, 250, 150], fill=(0, 255, 0))
    out = a.result()
    assert out.shape == im.shape and out.dtype == np.uint8
    assert out[120, 10].tolist() == list(colors(3, bgr=True))  # left edge of the box
    assert out[125, 225].tolist() == [0, 255, 0]
    assert out[20:40, 10:60].sum() > 0  # the label above the box

    p = Annotator(im.copy(), pil=True)
    p.box_label([10, 40, 120, 200], "person", color=(255, 0, 0))
    assert p.result()[120, 10].tolist() == [255, 0, 0]
    # non-ASCII labels switch to PIL; the built-in font is used, nothing is downloaded
    assert Annotator(im.copy(), example="кошка").pil


def test_annotator_rejects_bad_input():
    with pytest.raises(ValueError, match="contiguous"):
        Annotator(np.zeros((3, 64, 64), dtype=np.uint8).transpose(1, 2, 0))
    with pytest.raises(ValueError, match="H, W, 3"):
        Annotator(np.zeros((64, 64), dtype=np.uint8))


def test_save_one_box(tmp_path):
    im = np.zeros((100, 120, 3), dtype=np.uint8)
    im[..., 0] = 255  # pure blue in BGR
    crop = save_one_box(torch.tensor([10.0, 20, 50, 60]), im, file=tmp_path / "crops" / "a.jpg", BGR=True)
    # 40 px * 1.02 + 10 = 50.8 px around centre (30, 40): x 4.6..55.4 -> 4..55 after truncation
    assert crop.shape == (51, 51, 3)
    saved = cv2.imread(str(tmp_path / "crops" / "a.jpg"))
    assert saved is not None and saved[..., 0].mean() > 200 and saved[..., 2].mean() < 50  # still blue
    save_one_box(torch.tensor([10.0, 20, 50, 60]), im, file=tmp_path / "crops" / "a.jpg", BGR=True)
    assert (tmp_path / "crops" / "a2.jpg").is_file()  # a second crop never overwrites the first
