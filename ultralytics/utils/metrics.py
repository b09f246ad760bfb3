"""Detection metrics: matching predictions to labels, AP and its curves, the confusion matrix, result holders.

Geometry (``box_iou``, ``bbox_iou``) lives in `ultralytics.utils.ops` and is re-exported here under
its old import path. Figures are drawn by `ultralytics.utils.plotting`, imported only when a plot is
asked for, so that importing this module never loads matplotlib.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from ultralytics.utils import LOGGER
from ultralytics.utils.ops import bbox_iou, box_iou

__all__ = (
    "ConfusionMatrix",
    "DetMetrics",
    "Metric",
    "ap_per_class",
    "bbox_iou",
    "box_iou",
    "compute_ap",
    "match_predictions",
    "smooth",
)

# numpy 2 renamed trapz to trapezoid and 2.4 dropped the old name.
_trapezoid = getattr(np, "trapezoid", None) or np.trapz

# The curve drawers used to live here; they are served from plotting on first use.
_MOVED_TO_PLOTTING = ("plot_pr_curve", "plot_mc_curve")

N_GRID = 1000  # points of the confidence (and recall) grid the curves are sampled on


def __getattr__(name: str):
    if name in _MOVED_TO_PLOTTING:
        from ultralytics.utils import plotting

        return getattr(plotting, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _to_numpy(x: torch.Tensor | np.ndarray) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def _as_names_dict(names: dict[int, str] | list[str] | tuple[str, ...] | None) -> dict[int, str]:
    """Class names as {id: name}; validators pass a dict, a list or tuple is indexed by position."""
    if names is None:
        return {}
    return dict(names) if isinstance(names, dict) else dict(enumerate(names))


# ----------------------------------------------------------------------------------- matching


def _best_first(pairs: np.ndarray, overlap: np.ndarray) -> np.ndarray:
    """Rows of `pairs` reordered by decreasing `overlap` (one value per row)."""
    return pairs[overlap.argsort()[::-1]]


def _first_per(pairs: np.ndarray, column: int) -> np.ndarray:
    """Of the rows sharing a value in `column`, only the first; the result is sorted by that value."""
    return pairs[np.unique(pairs[:, column], return_index=True)[1]]


def _greedy_hits(overlap: np.ndarray, threshold: float) -> np.ndarray:
    """Indices of the predictions that a greedy one-to-one matching pairs at `threshold`.

    overlap: (M, N) IoU of every label with every prediction, zero across classes.
    Every prediction first keeps its best label; then every label keeps, of the predictions
    left to it, the one listed first (by prediction index, as upstream does).
    """
    pairs = np.argwhere(overlap >= threshold)  # (K, 2): label, prediction
    if len(pairs) > 1:
        pairs = _best_first(pairs, overlap[pairs[:, 0], pairs[:, 1]])
        pairs = _first_per(_first_per(pairs, 1), 0)
    return pairs[:, 1]


def _optimal_hits(overlap: np.ndarray, threshold: float) -> np.ndarray:
    """Indices of the predictions paired by the assignment that maximises the summed IoU."""
    from scipy.optimize import linear_sum_assignment

    eligible = np.where(overlap >= threshold, overlap, 0.0)
    if not eligible.any():
        return np.zeros(0, dtype=int)
    labels, preds = linear_sum_assignment(eligible, maximize=True)
    return preds[eligible[labels, preds] > 0]


def match_predictions(
    pred_classes: torch.Tensor | np.ndarray,
    true_classes: torch.Tensor | np.ndarray,
    iou: torch.Tensor | np.ndarray,
    iouv: torch.Tensor | np.ndarray,
    use_scipy: bool = False,
) -> torch.Tensor | np.ndarray:
    """Decide, for every prediction and every IoU threshold, whether it is a true positive.

    A prediction can only match a ground truth of its own class, and at each threshold a ground
    truth takes at most one prediction and a prediction at most one ground truth.

    Args:
        pred_classes: (N,) predicted class ids.
        true_classes: (M,) ground-truth class ids.
        iou: (M, N) IoU of every ground truth with every prediction.
        iouv: (T,) IoU thresholds, usually 0.50:0.05:0.95.
        use_scipy: pair by maximum summed IoU (``scipy.optimize.linear_sum_assignment``)
            instead of greedily, highest IoU first.

    Returns:
        (N, T) bool, a torch tensor on ``pred_classes``' device when it is a tensor, else numpy.
    """
    predicted = _to_numpy(pred_classes).reshape(-1)
    actual = _to_numpy(true_classes).reshape(-1)
    overlap = _to_numpy(iou).astype(np.float64)
    if overlap.shape != (actual.shape[0], predicted.shape[0]):
        raise ValueError(
            f"match_predictions: iou must have shape (num_true, num_pred) = ({actual.shape[0]}, "
            f"{predicted.shape[0]}), got {tuple(overlap.shape)}"
        )
    overlap = overlap * (actual[:, None] == predicted[None, :])  # a pair of different classes never matches
    find_hits = _optimal_hits if use_scipy else _greedy_hits
    thresholds = _to_numpy(iouv).astype(np.float64).reshape(-1).tolist()
    correct = np.zeros((predicted.shape[0], len(thresholds)), dtype=bool)
    for column, threshold in enumerate(thresholds):
        correct[find_hits(overlap, threshold), column] = True
    if isinstance(pred_classes, torch.Tensor):
        return torch.from_numpy(correct).to(pred_classes.device)
    return correct


# ----------------------------------------------------------------------------- confusion matrix


class ConfusionMatrix:
    """Detection confusion matrix with an extra 'background' row and column.

    ``matrix[predicted, true]`` counts; row ``nc`` holds ground truths nobody detected (false
    negatives), column ``nc`` holds detections matching no ground truth (false positives).
    """

    def __init__(self, nc: int, conf: float = 0.25, iou_thres: float = 0.45, task: str = "detect") -> None:
        if task not in {"detect", "classify"}:
            raise ValueError(f"ConfusionMatrix task must be 'detect' or 'classify', got {task!r}")
        self.task = task
        self.nc = nc
        size = nc + 1 if task == "detect" else nc
        self.matrix = np.zeros((size, size))
        # Validation runs at conf=0.001 so that mAP sees every score; a matrix at that threshold
        # would be nothing but false positives, so it falls back to the usual 0.25 (upstream does too).
        self.conf = conf if conf not in {None, 0.001} else 0.25
        self.iou_thres = iou_thres

    def process_cls_preds(self, preds: list[torch.Tensor], targets: list[torch.Tensor]) -> None:
        """Classification update: ``preds`` are (N, k) top-k class ids, ``targets`` (N,) true ids."""
        predicted = torch.cat(preds)[:, 0].cpu().numpy()
        actual = torch.cat(targets).cpu().numpy()
        np.add.at(self.matrix, (predicted, actual), 1)

    def _pairs(self, gt_bboxes: torch.Tensor, boxes: torch.Tensor) -> dict[int, int]:
        """{label index: detection index} for overlaps above iou_thres, each side used at most once."""
        iou = box_iou(gt_bboxes, boxes)  # (M, N)
        label_idx, det_idx = torch.where(iou > self.iou_thres)
        if label_idx.shape[0] == 0:
            return {}
        # (K, 3) float rows: label, detection, IoU.
        rows = torch.stack((label_idx.float(), det_idx.float(), iou[label_idx, det_idx].float()), 1).cpu().numpy()
        if len(rows) > 1:
            # Each detection keeps its best label, then each label its best remaining detection.
            rows = _first_per(_best_first(rows, rows[:, 2]), 1)
            rows = _first_per(_best_first(rows, rows[:, 2]), 0)
        return {int(g): int(d) for g, d in rows[:, :2]}

    def process_batch(
        self,
        detections: torch.Tensor | None,
        gt_bboxes: torch.Tensor,
        gt_cls: torch.Tensor,
    ) -> None:
        """Add one image's detections (N, 6) = xyxy, conf, cls and ground truths (M, 4) xyxy, (M,) cls.

        ``detections`` is None for an image without any prediction; only those scoring above
        ``conf`` take part.
        """
        kept = None if detections is None else detections[detections[:, 4] > self.conf]
        det_classes = [] if kept is None else kept[:, 5].int().tolist()
        gt_classes = gt_cls.reshape(-1).int().tolist()
        matched = self._pairs(gt_bboxes, kept[:, :4]) if gt_classes and kept is not None else {}

        background = self.nc
        for label, true_class in enumerate(gt_classes):
            # A match counts where it was predicted (off the diagonal when the class is wrong);
            # a label without one is a miss, in the background row.
            row = det_classes[matched[label]] if label in matched else background
            self.matrix[row, true_class] += 1
        used = set(matched.values())
        for det, pred_class in enumerate(det_classes):
            if det not in used:
                self.matrix[pred_class, background] += 1  # a detection of nothing

    def tp_fp(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-class true and false positive counts, without the background class."""
        hits = self.matrix.diagonal()
        false_alarms = self.matrix.sum(1) - hits
        if self.task == "detect":
            return hits[: self.nc], false_alarms[: self.nc]
        return hits, false_alarms

    def plot(
        self,
        normalize: bool = True,
        save_dir: str | Path = "",
        names: tuple[str, ...] | list[str] | dict[int, str] = (),
        on_plot: Callable[[Path], None] | None = None,
    ) -> None:
        """Write ``confusion_matrix.png`` (or ``confusion_matrix_normalized.png``) into ``save_dir``.

        Normalising divides every column (true class) by its total, so that a column shows where
        the objects of that class ended up.
        """
        from ultralytics.utils.plotting import plot_confusion_matrix

        plot_confusion_matrix(
            self.matrix,
            self.nc,
            normalize=normalize,
            save_dir=save_dir,
            names=names,
            on_plot=on_plot,
        )

    def print(self) -> None:
        """Log the matrix, one row per predicted class."""
        for row in self.matrix:
            LOGGER.info(" ".join(map(str, row)))


# ----------------------------------------------------------------------------------------- AP


def smooth(y: np.ndarray, f: float = 0.05) -> np.ndarray:
    """Moving average over an odd window of about ``f`` of the length; the ends repeat the edge values."""
    window = round(len(y) * f * 2) // 2 + 1
    margin = window // 2
    padded = np.concatenate((np.full(margin, y[0]), y, np.full(margin, y[-1])))
    return np.convolve(padded, np.ones(window) / window, mode="valid")


def compute_ap(recall: np.ndarray, precision: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Area under one precision-recall curve, COCO-style 101-point interpolation.

    Args:
        recall: (n,) recall after each detection, in descending-confidence order.
        precision: (n,) precision after each detection.

    Returns:
        ap, the precision envelope (n + 2,) and the recall (n + 2,), both with the end points
        (recall 0, precision 1) and (recall 1, precision 0) added.
    """
    recall_pts = np.concatenate(([0.0], recall, [1.0]))
    envelope = np.concatenate(([1.0], precision, [0.0]))
    # Best precision reachable at this recall or any higher one: a running max from the right.
    envelope = np.maximum.accumulate(envelope[::-1])[::-1]
    grid = np.linspace(0, 1, 101)
    area = _trapezoid(np.interp(grid, recall_pts, envelope), grid)
    return float(area), envelope, recall_pts


def _running_pr(hits: np.ndarray, n_labels: int, eps: float) -> tuple[np.ndarray, np.ndarray]:
    """Recall and precision after each of a class's detections (best first): both (n, T)."""
    found = hits.cumsum(0)
    ranks = np.arange(1, len(hits) + 1, dtype=np.float64)[:, None]  # detections made so far
    return found / (n_labels + eps), found / ranks


class _ClassCurves:
    """What ap_per_class gathers per class: AP per threshold and P/R on the confidence grid."""

    def __init__(self, n_classes: int, n_thresholds: int, keep_pr: bool) -> None:
        self.grid = np.linspace(0, 1, N_GRID)
        self.ap = np.zeros((n_classes, n_thresholds))
        self.precision = np.zeros((n_classes, N_GRID))
        self.recall = np.zeros((n_classes, N_GRID))
        self.keep_pr = keep_pr
        self.pr_rows: list[np.ndarray] = []  # precision against recall at the first threshold

    def add(self, row: int, hits: np.ndarray, scores: np.ndarray, n_labels: int, eps: float) -> None:
        """hits (n, T) and scores (n,) of one class's detections, best first."""
        recall, precision = _running_pr(hits, n_labels, eps)
        # np.interp wants increasing x and the scores decrease, hence the negations.
        self.recall[row] = np.interp(-self.grid, -scores, recall[:, 0], left=0)
        self.precision[row] = np.interp(-self.grid, -scores, precision[:, 0], left=1)
        for t in range(hits.shape[1]):
            self.ap[row, t], envelope, recall_pts = compute_ap(recall[:, t], precision[:, t])
            if t == 0 and self.keep_pr:
                self.pr_rows.append(np.interp(self.grid, recall_pts, envelope))


def _draw_curves(curves: _ClassCurves, f1: np.ndarray, save_dir: Path, prefix: str, names: dict, on_plot) -> None:
    """PR_curve.png, F1_curve.png, P_curve.png and R_curve.png, in that order."""
    from ultralytics.utils.plotting import plot_mc_curve, plot_pr_curve

    grid, save_dir = curves.grid, Path(save_dir)
    plot_pr_curve(grid, np.array(curves.pr_rows), curves.ap, save_dir / f"{prefix}PR_curve.png", names, on_plot=on_plot)
    for stem, values, label in (("F1", f1, "F1"), ("P", curves.precision, "Precision"), ("R", curves.recall, "Recall")):
        plot_mc_curve(grid, values, save_dir / f"{prefix}{stem}_curve.png", names, ylabel=label, on_plot=on_plot)


def ap_per_class(
    tp: np.ndarray,
    conf: np.ndarray,
    pred_cls: np.ndarray,
    target_cls: np.ndarray,
    plot: bool = False,
    on_plot: Callable[[Path], None] | None = None,
    save_dir: Path = Path(),
    names: dict[int, str] | None = None,
    eps: float = 1e-16,
    prefix: str = "",
) -> tuple[np.ndarray, ...]:
    """Precision, recall, F1 and AP per class from every prediction of a dataset.

    Args:
        tp: (N, T) bool, prediction is a true positive at each of T IoU thresholds.
        conf: (N,) prediction scores.
        pred_cls: (N,) predicted class ids.
        target_cls: (M,) class id of every ground truth in the dataset.
        plot: write PR_curve.png, F1_curve.png, P_curve.png and R_curve.png into ``save_dir``.
        on_plot: called with each written plot's path.
        save_dir: folder for the plots.
        names: {class id: name}, used for the plot legends.
        eps: guards divisions by zero.
        prefix: prepended to the plot file names.

    Returns:
        tp, fp, p, r, f1 (each (nc,), at the confidence maximising the class-mean F1), ap (nc, T),
        unique_classes (nc,) int, p_curve, r_curve, f1_curve (each (nc, 1000) against confidence),
        x (1000,) the confidence/recall grid, prec_values (nc, 1000) precision against recall at
        the first threshold (filled only when ``plot``). nc counts the classes present in ``target_cls``.
    """
    tp, conf, pred_cls, target_cls = (_to_numpy(a) for a in (tp, conf, pred_cls, target_cls))
    tp = tp[:, None] if tp.ndim == 1 else tp
    if not (tp.shape[0] == conf.shape[0] == pred_cls.shape[0]):
        raise ValueError(
            "ap_per_class: tp, conf and pred_cls must have one row per prediction, got lengths "
            f"{tp.shape[0]}, {conf.shape[0]}, {pred_cls.shape[0]}"
        )
    # Step 1: every prediction, most confident first (stable, so ties keep their input order).
    order = np.argsort(-conf, kind="stable")
    tp, conf, pred_cls = tp[order].astype(np.float64), conf[order], pred_cls[order]

    # Step 2: per class present in the labels, AP at each threshold and P/R against confidence.
    classes, label_counts = np.unique(target_cls, return_counts=True)
    curves = _ClassCurves(len(classes), tp.shape[1], keep_pr=plot)
    for row, c in enumerate(classes):
        mine = pred_cls == c
        if mine.any() and label_counts[row]:
            curves.add(row, tp[mine], conf[mine], label_counts[row], eps)
    p_curve, r_curve = curves.precision, curves.recall
    f1_curve = 2 * p_curve * r_curve / (p_curve + r_curve + eps)

    if plot:
        # Legends list only the classes present in the labels, in the rows' order.
        present = dict(enumerate(name for k, name in _as_names_dict(names).items() if k in classes))
        _draw_curves(curves, f1_curve, save_dir, prefix, present, on_plot)

    # Step 3: read P, R and F1 at the confidence where the smoothed class-mean F1 peaks.
    best = smooth(f1_curve.mean(0), 0.1).argmax() if len(classes) else 0
    p, r, f1 = p_curve[:, best], r_curve[:, best], f1_curve[:, best]
    tp_count = (r * label_counts).round()
    fp_count = (tp_count / (p + eps) - tp_count).round()
    per_class = (p, r, f1, curves.ap, classes.astype(int))
    return (tp_count, fp_count, *per_class, p_curve, r_curve, f1_curve, curves.grid, np.array(curves.pr_rows))


# ----------------------------------------------------------------------------- result holders


class _Summary:
    """A readable ``str()``: the public, non-callable attributes, one per line (as upstream prints them)."""

    def _public_fields(self) -> list[str]:
        fields = []
        for name in (n for n in dir(self) if not n.startswith("_")):
            value = getattr(self, name)
            if callable(value):
                continue
            if isinstance(value, _Summary):
                fields.append(f"{name}: {type(value).__module__}.{type(value).__name__} object")
            else:
                fields.append(f"{name}: {value!r}")
        return fields

    def __str__(self) -> str:
        kind = f"{type(self).__module__}.{type(self).__name__}"
        return f"{kind} object with attributes:\n\n" + "\n".join(self._public_fields())

    def __repr__(self) -> str:
        return self.__str__()


def _column_mean(values: np.ndarray | list, column: int | None = None) -> float:
    """Mean over classes (of one IoU column when given); 0.0 before any update."""
    if not len(values):
        return 0.0
    return float((values if column is None else values[:, column]).mean())


class Metric(_Summary):
    """Per-class detection results of one evaluation (boxes), with their class means.

    Attributes:
        p, r, f1: (nc,) precision, recall, F1 per class present in the labels.
        all_ap: (nc, 10) AP per class at IoU 0.50:0.05:0.95.
        ap_class_index: (nc,) class id of each row above.
        nc: number of classes of the model (the length of ``maps``).
        p_curve, r_curve, f1_curve: (nc, 1000) against the confidence grid ``px``.
        prec_values: (nc, 1000) precision against recall (``px``) at IoU 0.5.
    """

    # The order in which ap_per_class(...)[2:] hands its results to update().
    _FIELDS = ("p", "r", "f1", "all_ap", "ap_class_index", "p_curve", "r_curve", "f1_curve", "px", "prec_values")

    def __init__(self) -> None:
        for field in self._FIELDS:
            setattr(self, field, [])
        self.nc = 0

    def update(self, results: tuple) -> None:
        """Take ``ap_per_class(...)[2:]``: p, r, f1, all_ap, ap_class_index, p/r/f1 curves, px, prec_values."""
        if len(results) != len(self._FIELDS):
            raise ValueError(
                f"Metric.update expects the {len(self._FIELDS)} results {', '.join(self._FIELDS)} "
                f"(ap_per_class(...)[2:]), got {len(results)}"
            )
        for field, value in zip(self._FIELDS, results):
            setattr(self, field, value)

    @property
    def ap50(self) -> np.ndarray | list:
        """(nc,) AP at IoU 0.5, or [] before any update."""
        return self.all_ap[:, 0] if len(self.all_ap) else []

    @property
    def ap(self) -> np.ndarray | list:
        """(nc,) AP averaged over IoU 0.50:0.95, or [] before any update."""
        return self.all_ap.mean(1) if len(self.all_ap) else []

    @property
    def mp(self) -> float:
        """Mean precision over classes."""
        return _column_mean(self.p)

    @property
    def mr(self) -> float:
        """Mean recall over classes."""
        return _column_mean(self.r)

    @property
    def map50(self) -> float:
        """mAP at IoU 0.5."""
        return _column_mean(self.all_ap, 0)

    @property
    def map75(self) -> float:
        """mAP at IoU 0.75 (the sixth threshold)."""
        return _column_mean(self.all_ap, 5)

    @property
    def map(self) -> float:
        """mAP averaged over IoU 0.50:0.05:0.95."""
        return _column_mean(self.all_ap)

    def mean_results(self) -> list[float]:
        """[mp, mr, map50, map]."""
        return [self.mp, self.mr, self.map50, self.map]

    def class_result(self, i: int) -> tuple[float, float, float, float]:
        """(p, r, ap50, ap50-95) of the i-th row (see ``ap_class_index`` for its class id)."""
        return self.p[i], self.r[i], self.ap50[i], self.ap[i]

    @property
    def maps(self) -> np.ndarray:
        """(nc,) mAP50-95 per class id; classes absent from the labels get the overall mAP."""
        per_class = np.full(self.nc, self.map, dtype=np.float64)
        per_class[np.asarray(self.ap_class_index, dtype=int)] = self.ap
        return per_class

    def fitness(self) -> float:
        """0.1 * mAP50 + 0.9 * mAP50-95, the score used to pick best.pt."""
        weights = np.array([0.0, 0.0, 0.1, 0.9])
        return float((np.array(self.mean_results()) * weights).sum())

    @property
    def curves(self) -> list:
        """Names of the curves (none for a bare Metric; DetMetrics names them)."""
        return []

    @property
    def curves_results(self) -> list[list]:
        """[x, y, xlabel, ylabel] for the PR, F1, P and R curves."""
        by_confidence = [(self.f1_curve, "F1"), (self.p_curve, "Precision"), (self.r_curve, "Recall")]
        return [[self.px, self.prec_values, "Recall", "Precision"]] + [
            [self.px, values, "Confidence", label] for values, label in by_confidence
        ]


class DetMetrics(_Summary):
    """Detection metrics of a validation run: box precision, recall, mAP50, mAP50-95 and speed.

    Args:
        save_dir: folder for the PR/F1/P/R curve plots.
        plot: write those plots in ``process``.
        on_plot: called with each written plot's path.
        names: {class id: name}; its length sets ``box.nc``.
    """

    def __init__(
        self,
        save_dir: Path = Path("."),
        plot: bool = False,
        on_plot: Callable[[Path], None] | None = None,
        names: dict[int, str] | None = None,
    ) -> None:
        self.save_dir = save_dir
        self.plot = plot
        self.on_plot = on_plot
        self.names = _as_names_dict(names)
        self.box = Metric()
        self.speed = dict.fromkeys(("preprocess", "inference", "loss", "postprocess"), 0.0)  # ms per image
        self.task = "detect"

    def process(self, tp: np.ndarray, conf: np.ndarray, pred_cls: np.ndarray, target_cls: np.ndarray) -> None:
        """Compute the metrics from all predictions of the dataset (see ``ap_per_class``)."""
        results = ap_per_class(
            tp,
            conf,
            pred_cls,
            target_cls,
            plot=self.plot,
            save_dir=Path(self.save_dir),
            names=self.names,
            on_plot=self.on_plot,
        )
        self.box.nc = len(self.names)
        self.box.update(results[2:])  # the tp/fp counts are not kept

    @property
    def keys(self) -> list[str]:
        """Names of ``mean_results()``' entries, as they appear in results.csv."""
        return [f"metrics/{name}(B)" for name in ("precision", "recall", "mAP50", "mAP50-95")]

    def mean_results(self) -> list[float]:
        """[precision, recall, mAP50, mAP50-95] averaged over classes."""
        return self.box.mean_results()

    def class_result(self, i: int) -> tuple[float, float, float, float]:
        """(p, r, ap50, ap50-95) of the i-th class present in the labels."""
        return self.box.class_result(i)

    @property
    def maps(self) -> np.ndarray:
        """(nc,) mAP50-95 per class id."""
        return self.box.maps

    @property
    def fitness(self) -> float:
        """0.1 * mAP50 + 0.9 * mAP50-95."""
        return self.box.fitness()

    @property
    def ap_class_index(self) -> np.ndarray | list:
        """Class ids of the rows of the per-class results."""
        return self.box.ap_class_index

    @property
    def results_dict(self) -> dict[str, float]:
        """{key: value} for the four mean results plus 'fitness'."""
        return {**dict(zip(self.keys, self.mean_results())), "fitness": self.fitness}

    @property
    def curves(self) -> list[str]:
        """Names of the four curves of ``curves_results``."""
        kinds = ("Precision-Recall", "F1-Confidence", "Precision-Confidence", "Recall-Confidence")
        return [f"{kind}(B)" for kind in kinds]

    @property
    def curves_results(self) -> list[list]:
        """[x, y, xlabel, ylabel] for each curve named in ``curves``."""
        return self.box.curves_results
