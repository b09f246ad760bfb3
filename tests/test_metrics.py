"""Box IoU variants, AP, matching, DetMetrics and ConfusionMatrix; mAP cross-checked with pycocotools."""

from __future__ import annotations

import contextlib
import io
import math

import numpy as np
import pytest
import torch

from ultralytics.utils.metrics import (
    ConfusionMatrix,
    DetMetrics,
    Metric,
    ap_per_class,
    bbox_iou,
    box_iou,
    compute_ap,
    match_predictions,
)

IOUV = torch.linspace(0.5, 0.95, 10)


def _xyxy(*b: float) -> torch.Tensor:
    return torch.tensor([b], dtype=torch.float64)


# ----------------------------------------------------------------------------------------- IoU


def test_bbox_iou_identical_boxes_score_one_for_every_variant():
    a = _xyxy(0, 0, 10, 10)
    for flags in ({}, {"GIoU": True}, {"DIoU": True}, {"CIoU": True}):
        assert bbox_iou(a, a, xywh=False, **flags).item() == pytest.approx(1.0, abs=1e-6), flags


def test_bbox_iou_disjoint_boxes():
    a, b = _xyxy(0, 0, 10, 10), _xyxy(20, 0, 30, 10)
    assert bbox_iou(a, b, xywh=False).item() == pytest.approx(0.0, abs=1e-9)
    # enclosing box 30x10 = 300, union 200: GIoU = 0 - 100/300
    assert bbox_iou(a, b, xywh=False, GIoU=True).item() == pytest.approx(-1 / 3, abs=1e-6)
    # centre distance 20 -> rho2 = 400; enclosing diagonal^2 = 30^2 + 10^2 = 1000
    assert bbox_iou(a, b, xywh=False, DIoU=True).item() == pytest.approx(-0.4, abs=1e-6)
    # same aspect ratio: the CIoU penalty v is 0, so CIoU equals DIoU
    assert bbox_iou(a, b, xywh=False, CIoU=True).item() == pytest.approx(-0.4, abs=1e-6)


def test_bbox_iou_nested_boxes():
    a, b = _xyxy(0, 0, 10, 10), _xyxy(2, 2, 6, 6)
    assert bbox_iou(a, b, xywh=False).item() == pytest.approx(16 / 100, abs=1e-6)
    # the enclosing box is the union, so GIoU adds no penalty
    assert bbox_iou(a, b, xywh=False, GIoU=True).item() == pytest.approx(0.16, abs=1e-6)
    # centres (5,5) and (4,4): rho2 = 2, enclosing diagonal^2 = 200
    assert bbox_iou(a, b, xywh=False, DIoU=True).item() == pytest.approx(0.15, abs=1e-6)


def test_bbox_iou_ciou_aspect_ratio_term():
    a, b = _xyxy(0, 0, 10, 10), _xyxy(0, 0, 20, 10)
    iou = 0.5
    rho2_over_c2 = 25 / 500  # centres 5 apart in x; enclosing box 20x10
    v = 4 / math.pi**2 * (math.atan(2.0) - math.atan(1.0)) ** 2
    alpha = v / (v - iou + 1)
    expected = iou - rho2_over_c2 - alpha * v
    assert bbox_iou(a, b, xywh=False, CIoU=True).item() == pytest.approx(expected, abs=1e-6)
    assert bbox_iou(a, b, xywh=False, DIoU=True).item() == pytest.approx(iou - rho2_over_c2, abs=1e-6)


def test_bbox_iou_xywh_matches_xyxy_and_broadcasts():
    xyxy = torch.tensor([[0.0, 0, 10, 10], [5, 5, 15, 15], [2, 2, 6, 6]])
    xywh = torch.cat(((xyxy[:, :2] + xyxy[:, 2:]) / 2, xyxy[:, 2:] - xyxy[:, :2]), 1)
    ref = xyxy[:1]
    for flags in ({}, {"GIoU": True}, {"DIoU": True}, {"CIoU": True}):
        out_xyxy = bbox_iou(ref, xyxy, xywh=False, **flags)
        out_xywh = bbox_iou(xywh[:1], xywh, xywh=True, **flags)
        assert out_xyxy.shape == (3, 1)
        torch.testing.assert_close(out_xyxy, out_xywh, atol=1e-5, rtol=0)
    assert bbox_iou(ref, xyxy, xywh=False)[1].item() == pytest.approx(25 / 175, abs=1e-6)


def test_bbox_iou_ciou_gradient_flows_to_boxes():
    pred = torch.tensor([[1.0, 1.0, 9.0, 12.0]], requires_grad=True)
    target = torch.tensor([[0.0, 0.0, 10.0, 10.0]])
    (1 - bbox_iou(pred, target, xywh=False, CIoU=True)).sum().backward()
    assert pred.grad is not None and torch.isfinite(pred.grad).all() and pred.grad.abs().sum() > 0


def test_box_iou_pairwise_shape_and_values():
    a = torch.tensor([[0.0, 0, 10, 10], [5, 5, 15, 15], [100, 100, 110, 110]])
    b = torch.tensor([[0.0, 0, 10, 10], [5, 5, 15, 15], [2, 2, 6, 6], [50, 50, 60, 60], [0, 0, 20, 20]])
    iou = box_iou(a, b)
    assert iou.shape == (3, 5)
    for i in range(3):
        for j in range(5):
            expected = bbox_iou(a[i : i + 1], b[j : j + 1], xywh=False).item()
            assert iou[i, j].item() == pytest.approx(expected, abs=1e-6)
    assert iou[0, 0].item() == pytest.approx(1.0, abs=1e-6)
    assert iou[2].abs().sum().item() == 0.0


# ------------------------------------------------------------------------------------------ AP


def test_compute_ap_hand_computed():
    # Envelope points (recall, precision): (0,1) (0.5,1) (1,0.5) then the sentinel (1,0).
    # Trapezoids over the 101-point grid: [0,0.5] at 1 -> 0.5; [0.5,0.99] linear 1 -> 0.51
    # -> 0.49 * 1.51 / 2 = 0.36995; [0.99,1] falls 0.51 -> 0 -> 0.00255. Total 0.8725.
    ap, mpre, mrec = compute_ap(np.array([0.5, 1.0]), np.array([1.0, 0.5]))
    assert ap == pytest.approx(0.8725, abs=1e-9)
    np.testing.assert_allclose(mrec, [0.0, 0.5, 1.0, 1.0])
    np.testing.assert_allclose(mpre, [1.0, 1.0, 0.5, 0.0])


def test_compute_ap_envelope_lifts_dips():
    # precision 0.5 at recall 0.5 is lifted to 2/3, the best precision at any higher recall
    _, mpre, _ = compute_ap(np.array([0.5, 0.5, 1.0]), np.array([1.0, 0.5, 2 / 3]))
    np.testing.assert_allclose(mpre, [1.0, 1.0, 2 / 3, 2 / 3, 0.0])


def test_ap_per_class_perfect_predictions():
    # Perfect detection gives 0.995, not 1.0: the 101-point trapezoid ends on the (1, 0) sentinel,
    # losing half of the last 0.01 bin. Upstream reports the same 0.995.
    n = 6
    tp = np.ones((n, 10), dtype=bool)
    conf = np.linspace(0.9, 0.4, n)
    cls = np.array([0, 0, 1, 1, 2, 2])
    out = ap_per_class(tp, conf, cls, cls)
    ap, unique = out[5], out[6]
    np.testing.assert_allclose(ap, 0.995, atol=1e-9)
    np.testing.assert_array_equal(unique, [0, 1, 2])
    p, r = out[2], out[3]
    np.testing.assert_allclose(r, 1.0, atol=1e-6)
    np.testing.assert_allclose(p, 1.0, atol=1e-6)
    np.testing.assert_array_equal(out[0], [2, 2, 2])  # tp counts
    np.testing.assert_array_equal(out[1], [0, 0, 0])  # fp counts


def test_ap_per_class_all_wrong_predictions():
    tp = np.zeros((4, 10), dtype=bool)
    conf = np.array([0.9, 0.8, 0.7, 0.6])
    pred_cls = np.array([0, 0, 1, 1])
    target_cls = np.array([0, 1, 1])
    out = ap_per_class(tp, conf, pred_cls, target_cls)
    np.testing.assert_allclose(out[5], 0.0)
    np.testing.assert_allclose(out[3], 0.0)  # recall


def test_ap_per_class_rejects_mismatched_lengths():
    with pytest.raises(ValueError, match="one row per prediction"):
        ap_per_class(np.ones((3, 10), bool), np.ones(2), np.zeros(3), np.zeros(3))


# ------------------------------------------------------------------------------------ matching


def test_match_predictions_greedy_highest_iou_first_and_class_aware():
    pred_cls = torch.tensor([0.0, 0.0, 1.0])
    true_cls = torch.tensor([0.0, 1.0])
    iou = torch.tensor([[0.8, 0.6, 0.0], [0.0, 0.0, 0.93]])  # (num_true, num_pred)
    correct = match_predictions(pred_cls, true_cls, iou, IOUV)
    assert correct.dtype == torch.bool and correct.shape == (3, 10)
    # pred 0 matches gt 0 up to IoU 0.80 (thresholds 0.50..0.80 = 7 of them)
    assert correct[0].tolist() == [True] * 7 + [False] * 3
    assert not correct[1].any()  # duplicate of gt 0 with a lower IoU
    assert correct[2].tolist() == [True] * 9 + [False]


def test_match_predictions_never_crosses_classes():
    correct = match_predictions(torch.tensor([1.0]), torch.tensor([0.0]), torch.tensor([[0.99]]), IOUV)
    assert not correct.any()


def test_match_predictions_scipy_maximises_total_iou():
    # greedy takes (gt0, pred0) = 0.9 and leaves gt1 unmatched; the optimal assignment pairs
    # gt0-pred1 and gt1-pred0 (0.6 + 0.7 > 0.9)
    pred_cls = np.array([0, 0])
    true_cls = np.array([0, 0])
    iou = np.array([[0.9, 0.6], [0.7, 0.0]])
    greedy = match_predictions(pred_cls, true_cls, iou, np.array([0.5]))
    optimal = match_predictions(pred_cls, true_cls, iou, np.array([0.5]), use_scipy=True)
    assert isinstance(greedy, np.ndarray)
    assert greedy[:, 0].tolist() == [True, False]
    assert optimal[:, 0].tolist() == [True, True]


def test_match_predictions_rejects_transposed_iou():
    with pytest.raises(ValueError, match="num_true, num_pred"):
        match_predictions(torch.zeros(3), torch.zeros(2), torch.zeros(3, 2), IOUV)


# ---------------------------------------------------------------------------------- DetMetrics


def test_det_metrics_results_and_fitness(tmp_path):
    tp = np.array([[1] * 10, [1] * 5 + [0] * 5, [0] * 10, [1] * 10], dtype=bool)
    conf = np.array([0.9, 0.8, 0.7, 0.6])
    pred_cls = np.array([0, 1, 1, 0])
    target_cls = np.array([0, 0, 1, 1])
    names = {0: "a", 1: "b", 2: "never_seen"}
    m = DetMetrics(save_dir=tmp_path, plot=True, names=names)
    m.process(tp, conf, pred_cls, target_cls)

    assert m.keys == ["metrics/precision(B)", "metrics/recall(B)", "metrics/mAP50(B)", "metrics/mAP50-95(B)"]
    rd = m.results_dict
    assert list(rd) == m.keys + ["fitness"]
    assert rd["fitness"] == pytest.approx(0.1 * m.box.map50 + 0.9 * m.box.map)
    assert all(0.0 <= v <= 1.0 for v in rd.values())
    assert m.box.map50 > m.box.map > 0  # some matches fail at the stricter IoU thresholds
    np.testing.assert_array_equal(m.ap_class_index, [0, 1])
    assert m.maps.shape == (3,)
    assert m.maps[2] == pytest.approx(m.box.map)  # a class without labels gets the overall mAP
    assert m.box.map75 == pytest.approx(m.box.all_ap[:, 5].mean())
    assert len(m.class_result(0)) == 4
    assert len(m.curves) == len(m.curves_results) == 4
    for name in ("PR_curve.png", "F1_curve.png", "P_curve.png", "R_curve.png"):
        assert (tmp_path / name).is_file(), name
    assert "DetMetrics object" in str(m)


def test_metric_is_empty_before_update():
    m = Metric()
    assert m.mean_results() == [0.0, 0.0, 0.0, 0.0]
    assert m.fitness() == 0.0
    assert list(m.ap50) == [] and list(m.ap) == []


# ----------------------------------------------------------------------------- ConfusionMatrix


def test_confusion_matrix_counts():
    cm = ConfusionMatrix(nc=3)
    gt_boxes = torch.tensor([[0.0, 0, 50, 50], [100, 100, 150, 150], [200, 200, 250, 250]])
    gt_cls = torch.tensor([0, 1, 2])
    det = torch.tensor(
        [
            [1, 1, 50, 50, 0.9, 0],  # TP for gt 0
            [100, 100, 151, 150, 0.8, 2],  # on gt 1 but the wrong class
            [300, 300, 350, 350, 0.7, 1],  # on nothing: false positive
            [0, 0, 49, 49, 0.1, 0],  # below conf 0.25: ignored
        ]
    )
    cm.process_batch(det, gt_boxes, gt_cls)
    expected = np.zeros((4, 4))
    expected[0, 0] = 1  # predicted 0, true 0
    expected[2, 1] = 1  # predicted 2, true 1
    expected[3, 2] = 1  # gt 2 missed: background row
    expected[1, 3] = 1  # predicted 1 on background: background column
    np.testing.assert_array_equal(cm.matrix, expected)
    tp, fp = cm.tp_fp()
    np.testing.assert_array_equal(tp, [1, 0, 0])
    np.testing.assert_array_equal(fp, [0, 1, 1])


def test_confusion_matrix_images_without_labels_or_detections():
    cm = ConfusionMatrix(nc=2, conf=0.001)  # 0.001 (the val default) is raised to 0.25
    assert cm.conf == 0.25
    dets = torch.tensor([[0, 0, 10, 10, 0.9, 1], [0, 0, 10, 10, 0.2, 0]])
    cm.process_batch(dets, torch.zeros(0, 4), torch.zeros(0))
    cm.process_batch(None, torch.tensor([[0.0, 0, 10, 10]]), torch.tensor([0]))
    expected = np.zeros((3, 3))
    expected[1, 2] = 1  # the confident detection on an empty image
    expected[2, 0] = 1  # the ground truth with no detections at all
    np.testing.assert_array_equal(cm.matrix, expected)


def test_confusion_matrix_duplicate_detection_is_a_false_positive():
    cm = ConfusionMatrix(nc=1)
    det = torch.tensor([[0, 0, 10, 10, 0.9, 0], [0, 0, 10, 9, 0.8, 0]])
    cm.process_batch(det, torch.tensor([[0.0, 0, 10, 10]]), torch.tensor([0]))
    np.testing.assert_array_equal(cm.matrix, [[1, 1], [0, 0]])


# ------------------------------------------------------------------------ mAP vs pycocotools


def _iou(a: list[float], b: list[float]) -> float:
    return box_iou(torch.tensor([a], dtype=torch.float64), torch.tensor([b], dtype=torch.float64)).item()


def _jitter(rng, cx: float, cy: float, w: float, h: float, shift: float, scale: tuple[float, float]) -> list[float]:
    """An xyxy box around (cx, cy) moved by up to ``shift`` of its size and rescaled per axis."""
    dx, dy = rng.uniform(-shift, shift, 2) * np.array([w, h])
    sx, sy = rng.uniform(*scale, 2)
    return [cx + dx - sx * w / 2, cy + dy - sy * h / 2, cx + dx + sx * w / 2, cy + dy + sy * h / 2]


def _coco_fixture(seed: int = 0):
    """Images with well separated ground truths and scored predictions of varied quality.

    Ground truths sit in distinct cells of a 3x3 grid, and every prediction stays inside its
    object's cell, so no prediction overlaps two ground truths. A duplicate always has both a lower
    score and a lower IoU than the prediction it duplicates. Under these conditions COCO's
    score-ordered matching and the greedy IoU-ordered matching pick the same pairs.
    """
    rng = np.random.default_rng(seed)
    size, cell, nc = 600, 200, 3
    images = []
    for _ in range(6):
        gts, dets = [], []
        for k in rng.choice(9, size=int(rng.integers(2, 5)), replace=False):
            cx, cy = (k % 3) * cell + cell / 2, (k // 3) * cell + cell / 2
            w, h = rng.uniform(110, 150, 2)  # area > 96^2: COCO 'large'
            c = int(rng.integers(nc))
            gts.append(([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], c))
            fate = rng.random()
            if fate < 0.15:
                continue  # missed
            if fate < 0.25:
                dets.append(([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], (c + 1) % nc, rng.uniform(0.3, 0.9)))
                continue  # found with the wrong class
            # a true detection with a random shift and scale: IoUs spread over ~0.45-1.0
            box = _jitter(rng, cx, cy, w, h, shift=0.15, scale=(0.85, 1.1))
            score = rng.uniform(0.5, 0.99)
            dets.append((box, c, score))
            if rng.random() < 0.3:  # a duplicate, kept only when clearly worse than the first
                dup = _jitter(rng, cx, cy, w, h, shift=0.25, scale=(0.7, 1.3))
                gt_box = gts[-1][0]
                if _iou(dup, gt_box) < _iou(box, gt_box) - 0.02:
                    dets.append((dup, c, score * rng.uniform(0.3, 0.9)))
        for _ in range(int(rng.integers(5, 15))):  # low-scored background clutter
            x, y = rng.uniform(0, size - 60, 2)
            dets.append(([x, y, x + 55, y + 55], int(rng.integers(nc)), rng.uniform(0.01, 0.4)))
        images.append((gts, dets))
    return images, nc, size


def _ours(images, nc):
    """mAP50 and mAP50-95 through match_predictions + ap_per_class, as the validator does it."""
    tps, confs, pcls, tcls = [], [], [], []
    for gts, dets in images:
        gt_boxes = torch.tensor([g[0] for g in gts], dtype=torch.float32)
        gt_cls = torch.tensor([g[1] for g in gts], dtype=torch.float32)
        det_boxes = torch.tensor([d[0] for d in dets], dtype=torch.float32)
        det_cls = torch.tensor([d[1] for d in dets], dtype=torch.float32)
        tps.append(match_predictions(det_cls, gt_cls, box_iou(gt_boxes, det_boxes), IOUV).numpy())
        confs.append(np.array([d[2] for d in dets]))
        pcls.append(det_cls.numpy())
        tcls.append(gt_cls.numpy())
    tp, conf, pred_cls, target_cls = (np.concatenate(a, 0) for a in (tps, confs, pcls, tcls))
    m = DetMetrics(names={i: str(i) for i in range(nc)})
    m.process(tp, conf, pred_cls, target_cls)
    return m.box.map50, m.box.map, (tp, conf, pred_cls, target_cls)


def _coco_style_ap(tp, conf, pred_cls, target_cls):
    """COCO's own AP formula (envelope sampled as a step at 101 recall points) on our matches."""
    rec_thrs = np.linspace(0, 1, 101)
    aps = np.zeros((len(np.unique(target_cls)), tp.shape[1]))
    for ci, c in enumerate(np.unique(target_cls)):
        i = pred_cls == c
        order = np.argsort(-conf[i], kind="mergesort")
        t = tp[i][order].astype(float)
        n_gt = (target_cls == c).sum()
        for j in range(tp.shape[1]):
            tpc, fpc = t[:, j].cumsum(), (1 - t[:, j]).cumsum()
            rc, pr = tpc / n_gt, tpc / (tpc + fpc + np.spacing(1))
            pr = np.maximum.accumulate(pr[::-1])[::-1]
            idx = np.searchsorted(rc, rec_thrs, side="left")
            q = np.where(idx < len(pr), pr[np.minimum(idx, len(pr) - 1)], 0.0)
            aps[ci, j] = q.mean()
    return aps[:, 0].mean(), aps.mean()


def _cocoeval(images, nc, size):
    pytest.importorskip("pycocotools", reason="pycocotools is not installed (pip install pycocotools)")
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    gt = {"images": [], "annotations": [], "categories": [{"id": c + 1, "name": str(c)} for c in range(nc)]}
    results = []
    for img_id, (gts, dets) in enumerate(images, 1):
        gt["images"].append({"id": img_id, "width": size, "height": size})
        for box, c in gts:
            w, h = box[2] - box[0], box[3] - box[1]
            gt["annotations"].append(
                {
                    "id": len(gt["annotations"]) + 1,
                    "image_id": img_id,
                    "category_id": c + 1,
                    "bbox": [box[0], box[1], w, h],
                    "area": w * h,
                    "iscrowd": 0,
                }
            )
        for box, c, s in dets:
            xywh = [box[0], box[1], box[2] - box[0], box[3] - box[1]]
            results.append({"image_id": img_id, "category_id": c + 1, "bbox": xywh, "score": float(s)})
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress and the table
        coco_gt = COCO()
        coco_gt.dataset = gt
        coco_gt.createIndex()
        coco_dt = coco_gt.loadRes(results)
        ev = COCOeval(coco_gt, coco_dt, "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev.stats[1], ev.stats[0]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_map_agrees_with_pycocotools(seed):
    images, nc, size = _coco_fixture(seed)
    assert all(len(dets) <= 100 for _, dets in images)  # COCO keeps only 100 detections per image
    coco50, coco50_95 = _cocoeval(images, nc, size)
    ours50, ours50_95, matched = _ours(images, nc)

    # 1) Same matches: COCO's formula applied to our true-positive matrix reproduces COCOeval
    #    to float precision, so match_predictions pairs exactly what COCO pairs.
    ref50, ref50_95 = _coco_style_ap(*matched)
    assert ref50 == pytest.approx(coco50, abs=1e-6)
    assert ref50_95 == pytest.approx(coco50_95, abs=1e-6)

    # 2) Same metric up to the interpolation. Upstream integrates the envelope with a trapezoid
    #    over linearly interpolated 101 points, ending on a (recall 1, precision 0) sentinel; COCO
    #    averages the envelope sampled as a right-continuous step. Linear interpolation between
    #    recall steps can only add area (the envelope decreases), the tail beyond the last recall
    #    adds at most (1 - R) * p_end / 2 where the clutter keeps the final precision p_end small,
    #    and the final half bin removes at most 0.005. On these fixtures ours is 0.01-0.03 higher;
    #    the band [-0.006, +0.05] leaves room for that while still catching a wrong threshold, a
    #    lost class or a matching bug, each of which moves mAP by 0.1 or more here.
    assert coco50 - 0.006 <= ours50 <= coco50 + 0.05
    assert coco50_95 - 0.006 <= ours50_95 <= coco50_95 + 0.05
    assert 0.2 < coco50_95 < coco50 < 1.0  # the fixture is neither trivial nor hopeless


# ------------------------------------------------------------------------------ module layout


def test_iou_helpers_live_in_ops_and_are_re_exported_from_metrics():
    from ultralytics.utils import metrics, ops

    assert metrics.bbox_iou is ops.bbox_iou and metrics.box_iou is ops.box_iou
    a, b = torch.tensor([[0.0, 0, 10, 10]]), torch.tensor([[5.0, 0, 15, 10]])
    assert ops.box_iou(a, b).item() == pytest.approx(50 / 150, abs=1e-6)
    assert ops.bbox_iou(a, b, xywh=False).item() == pytest.approx(50 / 150, abs=1e-6)


def test_curve_plotters_keep_their_metrics_import_path():
    from ultralytics.utils import metrics, plotting
    from ultralytics.utils.metrics import plot_mc_curve, plot_pr_curve

    assert plot_pr_curve is plotting.plot_pr_curve and plot_mc_curve is plotting.plot_mc_curve
    with pytest.raises(AttributeError, match="no attribute 'plot_nothing'"):
        metrics.plot_nothing  # noqa: B018


def test_geometry_and_metrics_import_without_matplotlib():
    import subprocess
    import sys

    code = (
        "import sys, ultralytics.utils.ops, ultralytics.utils.metrics, ultralytics.utils.plotting\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] == 'matplotlib')\n"
        "assert not loaded, loaded\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_confusion_matrix_plot_lands_in_plotting(tmp_path):
    from ultralytics.utils.plotting import plot_confusion_matrix

    matrix = np.array([[3.0, 0, 1], [1, 2, 0], [0, 1, 0]])
    out = plot_confusion_matrix(matrix, nc=2, normalize=False, save_dir=tmp_path, names={0: "a", 1: "b"})
    assert out == tmp_path / "confusion_matrix.png" and out.is_file()
