"""Box overlap measures and detection metrics (precision, recall, AP, confusion matrix)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Callable

import matplotlib
import numpy as np
import torch
from matplotlib.figure import Figure

from ultralytics.utils import LOGGER

# numpy 2 renamed trapz to trapezoid and 2.4 dropped the old name.
_trapezoid = getattr(np, "trapezoid", None) or np.trapz


def box_iou(box1: torch.Tensor, box2: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """IoU of every box in ``box1`` with every box in ``box2``.

    Args:
        box1: (N, 4) boxes in xyxy.
        box2: (M, 4) boxes in xyxy.
        eps: added to the union so that degenerate boxes do not divide by zero.

    Returns:
        (N, M) IoU matrix.
    """
    (a1, a2), (b1, b2) = box1.unsqueeze(1).chunk(2, 2), box2.unsqueeze(0).chunk(2, 2)  # (N,1,2), (1,M,2)
    inter = (torch.min(a2, b2) - torch.max(a1, b1)).clamp_(0).prod(2)  # (N, M)
    return inter / ((a2 - a1).prod(2) + (b2 - b1).prod(2) - inter + eps)


def bbox_iou(
    box1: torch.Tensor,
    box2: torch.Tensor,
    xywh: bool = True,
    GIoU: bool = False,
    DIoU: bool = False,
    CIoU: bool = False,
    eps: float = 1e-7,
) -> torch.Tensor:
    """Element-wise IoU (or its generalised/distance/complete variant) of two broadcastable box sets.

    Args:
        box1: (..., 4) boxes.
        box2: (..., 4) boxes, broadcastable against ``box1``.
        xywh: True when boxes are centre-x, centre-y, width, height; False for xyxy.
        GIoU, DIoU, CIoU: which variant to return; at most one should be set, CIoU wins over
            DIoU which wins over GIoU, plain IoU when none is.
        eps: guards the divisions against zero-size boxes.

    Returns:
        (..., 1) overlap values; GIoU/DIoU/CIoU lie in (-1, 1].
    """
    if xywh:
        (x1, y1, w1, h1), (x2, y2, w2, h2) = box1.chunk(4, -1), box2.chunk(4, -1)
        hw1, hh1, hw2, hh2 = w1 / 2, h1 / 2, w2 / 2, h2 / 2
        b1_x1, b1_x2, b1_y1, b1_y2 = x1 - hw1, x1 + hw1, y1 - hh1, y1 + hh1
        b2_x1, b2_x2, b2_y1, b2_y2 = x2 - hw2, x2 + hw2, y2 - hh2, y2 + hh2
    else:
        b1_x1, b1_y1, b1_x2, b1_y2 = box1.chunk(4, -1)
        b2_x1, b2_y1, b2_x2, b2_y2 = box2.chunk(4, -1)
        # eps on the heights keeps CIoU's aspect-ratio term finite for flat boxes.
        w1, h1 = b1_x2 - b1_x1, b1_y2 - b1_y1 + eps
        w2, h2 = b2_x2 - b2_x1, b2_y2 - b2_y1 + eps

    inter = (b1_x2.minimum(b2_x2) - b1_x1.maximum(b2_x1)).clamp_(0) * (
        b1_y2.minimum(b2_y2) - b1_y1.maximum(b2_y1)
    ).clamp_(0)
    union = w1 * h1 + w2 * h2 - inter + eps
    iou = inter / union
    if not (CIoU or DIoU or GIoU):
        return iou

    # Width and height of the smallest box enclosing both.
    cw = b1_x2.maximum(b2_x2) - b1_x1.minimum(b2_x1)
    ch = b1_y2.maximum(b2_y2) - b1_y1.minimum(b2_y1)
    if CIoU or DIoU:
        c2 = cw.pow(2) + ch.pow(2) + eps  # squared diagonal of the enclosing box
        rho2 = ((b2_x1 + b2_x2 - b1_x1 - b1_x2).pow(2) + (b2_y1 + b2_y2 - b1_y1 - b1_y2).pow(2)) / 4
        if CIoU:
            v = (4 / math.pi**2) * ((w2 / h2).atan() - (w1 / h1).atan()).pow(2)
            with torch.no_grad():
                # The trade-off weight is treated as a constant, as in the CIoU paper.
                alpha = v / (v - iou + (1 + eps))
            return iou - (rho2 / c2 + v * alpha)
        return iou - rho2 / c2
    c_area = cw * ch + eps
    return iou - (c_area - union) / c_area


def match_predictions(
    pred_classes: torch.Tensor | np.ndarray,
    true_classes: torch.Tensor | np.ndarray,
    iou: torch.Tensor | np.ndarray,
    iouv: torch.Tensor | np.ndarray,
    use_scipy: bool = False,
) -> torch.Tensor | np.ndarray:
    """Decide, for every prediction and every IoU threshold, whether it is a true positive.

    A prediction can only match a ground truth of its own class. At each threshold every ground
    truth takes at most one prediction and every prediction at most one ground truth; the greedy
    matcher pairs the highest IoUs first, the scipy one maximises the summed IoU.

    Args:
        pred_classes: (N,) predicted class ids.
        true_classes: (M,) ground-truth class ids.
        iou: (M, N) IoU of every ground truth with every prediction.
        iouv: (T,) IoU thresholds, usually 0.50:0.05:0.95.
        use_scipy: match with ``scipy.optimize.linear_sum_assignment`` instead of greedily.

    Returns:
        (N, T) bool, a torch tensor on ``pred_classes``' device when it is a tensor, else numpy.
    """
    pc, tc = _to_numpy(pred_classes).reshape(-1), _to_numpy(true_classes).reshape(-1)
    iou_np = _to_numpy(iou).astype(np.float64)
    thresholds = _to_numpy(iouv).astype(np.float64).reshape(-1)
    if iou_np.shape != (tc.shape[0], pc.shape[0]):
        raise ValueError(
            f"match_predictions: iou must have shape (num_true, num_pred) = ({tc.shape[0]}, {pc.shape[0]}), "
            f"got {tuple(iou_np.shape)}"
        )
    correct = np.zeros((pc.shape[0], thresholds.shape[0]), dtype=bool)
    iou_np = iou_np * (tc[:, None] == pc[None, :])  # cross-class pairs can never match
    for ti, threshold in enumerate(thresholds.tolist()):
        if use_scipy:
            from scipy.optimize import linear_sum_assignment

            cost = iou_np * (iou_np >= threshold)
            if cost.any():
                gt_idx, det_idx = linear_sum_assignment(cost, maximize=True)
                valid = cost[gt_idx, det_idx] > 0
                correct[det_idx[valid], ti] = True
            continue
        matches = np.stack(np.nonzero(iou_np >= threshold), 1)  # (K, 2) of (gt, det)
        if matches.shape[0] > 1:
            matches = matches[iou_np[matches[:, 0], matches[:, 1]].argsort()[::-1]]
            # np.unique keeps the first occurrence, i.e. the highest IoU, of every det then every gt.
            matches = matches[np.unique(matches[:, 1], return_index=True)[1]]
            matches = matches[np.unique(matches[:, 0], return_index=True)[1]]
        correct[matches[:, 1], ti] = True
    if isinstance(pred_classes, torch.Tensor):
        return torch.from_numpy(correct).to(pred_classes.device)
    return correct


def _to_numpy(x: torch.Tensor | np.ndarray) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def _as_names_dict(names: dict[int, str] | list[str] | tuple[str, ...] | None) -> dict[int, str]:
    """Class names as {id: name}; validators pass a dict, a list or tuple is indexed by position."""
    if names is None:
        return {}
    return dict(names) if isinstance(names, dict) else dict(enumerate(names))


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
        self.matrix = np.zeros((nc + 1, nc + 1)) if task == "detect" else np.zeros((nc, nc))
        # Validation runs at conf=0.001 for mAP; a confusion matrix at that threshold would be all
        # false positives, so the usual 0.25 is used instead, as upstream does.
        self.conf = 0.25 if conf in {None, 0.001} else conf
        self.iou_thres = iou_thres

    def process_cls_preds(self, preds: list[torch.Tensor], targets: list[torch.Tensor]) -> None:
        """Classification update: ``preds`` are (N, k) top-k class ids, ``targets`` (N,) true ids."""
        top1, true = torch.cat(preds)[:, 0], torch.cat(targets)
        for p, t in zip(top1.cpu().numpy(), true.cpu().numpy()):
            self.matrix[p][t] += 1

    def process_batch(
        self,
        detections: torch.Tensor | None,
        gt_bboxes: torch.Tensor,
        gt_cls: torch.Tensor,
    ) -> None:
        """Add one image's detections (N, 6) = xyxy, conf, cls and ground truths (M, 4) xyxy, (M,) cls."""
        if gt_cls.shape[0] == 0:
            if detections is not None:
                detections = detections[detections[:, 4] > self.conf]
                for dc in detections[:, 5].int().tolist():
                    self.matrix[dc, self.nc] += 1
            return
        gt_classes = gt_cls.reshape(-1).int().tolist()
        if detections is None:
            for gc in gt_classes:
                self.matrix[self.nc, gc] += 1
            return

        detections = detections[detections[:, 4] > self.conf]
        det_classes = detections[:, 5].int().tolist()
        iou = box_iou(gt_bboxes, detections[:, :4])  # (M, N)
        gi, di = torch.where(iou > self.iou_thres)
        if gi.shape[0]:
            matches = torch.stack((gi.float(), di.float(), iou[gi, di].float()), 1).cpu().numpy()
            if gi.shape[0] > 1:
                # Keep the highest-IoU pair for every detection, then for every ground truth.
                matches = matches[matches[:, 2].argsort()[::-1]]
                matches = matches[np.unique(matches[:, 1], return_index=True)[1]]
                matches = matches[matches[:, 2].argsort()[::-1]]
                matches = matches[np.unique(matches[:, 0], return_index=True)[1]]
        else:
            matches = np.zeros((0, 3))

        m_gt, m_det = matches[:, 0].astype(int), matches[:, 1].astype(int)
        for i, gc in enumerate(gt_classes):
            j = m_gt == i
            if j.sum() == 1:
                self.matrix[det_classes[m_det[j][0]], gc] += 1  # matched; off-diagonal if the class is wrong
            else:
                self.matrix[self.nc, gc] += 1  # missed
        for i, dc in enumerate(det_classes):
            if not (m_det == i).any():
                self.matrix[dc, self.nc] += 1  # detected background

    def tp_fp(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-class true and false positive counts, without the background class."""
        tp = self.matrix.diagonal()
        fp = self.matrix.sum(1) - tp
        return (tp[:-1], fp[:-1]) if self.task == "detect" else (tp, fp)

    def plot(
        self,
        normalize: bool = True,
        save_dir: str | Path = "",
        names: tuple[str, ...] | list[str] | dict[int, str] = (),
        on_plot: Callable[[Path], None] | None = None,
    ) -> None:
        """Write ``confusion_matrix.png`` (or ``confusion_matrix_normalized.png``) into ``save_dir``.

        Normalisation divides every column (true class) by its total, so a column shows where the
        objects of that class ended up.
        """
        names = list(names.values()) if isinstance(names, dict) else list(names)
        array = self.matrix / ((self.matrix.sum(0).reshape(1, -1) + 1e-9) if normalize else 1)
        array = np.where(array < 0.005, np.nan, array)  # blank rather than a wall of '0.00'
        n = array.shape[0]
        use_names = 0 < len(names) < 99 and len(names) == self.nc
        ticks = (names + ["background"])[:n] if use_names else [str(i) for i in range(n)]

        fig = Figure(figsize=(12, 9), tight_layout=True)
        ax = fig.subplots()
        cmap = matplotlib.colormaps["Blues"].with_extremes(bad="white")
        finite = np.nan_to_num(array, nan=0.0)
        im = ax.imshow(np.ma.masked_invalid(array), cmap=cmap, vmin=0.0, vmax=max(finite.max(), 1e-9))
        fig.colorbar(im, ax=ax)
        if self.nc < 30:
            fmt = "{:.2f}" if normalize else "{:.0f}"
            threshold = 0.5 * finite.max()
            for r, c in zip(*np.nonzero(~np.isnan(array))):
                ax.text(
                    c,
                    r,
                    fmt.format(array[r, c]),
                    ha="center",
                    va="center",
                    fontsize=8,
                    color="white" if array[r, c] > threshold else "black",
                )
        if n <= 60 or use_names:
            fontsize = 10 if n < 50 else 6
            ax.set_xticks(range(n), ticks, rotation=90, fontsize=fontsize)
            ax.set_yticks(range(n), ticks, fontsize=fontsize)
        title = "Confusion Matrix" + " Normalized" * normalize
        ax.set_xlabel("True")
        ax.set_ylabel("Predicted")
        ax.set_title(title)
        fname = Path(save_dir) / f"{title.lower().replace(' ', '_')}.png"
        fig.savefig(fname, dpi=250)
        if on_plot:
            on_plot(fname)

    def print(self) -> None:
        """Log the matrix, one row per predicted class."""
        for row in self.matrix:
            LOGGER.info(" ".join(map(str, row)))


def smooth(y: np.ndarray, f: float = 0.05) -> np.ndarray:
    """Moving average over a window of about ``f`` of the length, odd-sized, edges padded by repetition."""
    nf = round(len(y) * f * 2) // 2 + 1
    pad = np.ones(nf // 2)
    yp = np.concatenate((pad * y[0], y, pad * y[-1]), 0)
    return np.convolve(yp, np.ones(nf) / nf, mode="valid")


def plot_pr_curve(
    px: np.ndarray,
    py: np.ndarray | list[np.ndarray],
    ap: np.ndarray,
    save_dir: Path = Path("pr_curve.png"),
    names: dict[int, str] | tuple | list = (),
    on_plot: Callable[[Path], None] | None = None,
) -> None:
    """Precision (``py``, per class (nc, 1000)) against recall ``px``; ``save_dir`` is the file path."""
    names = _as_names_dict(names)
    fig = Figure(figsize=(9, 6), tight_layout=True)
    ax = fig.subplots()
    py = np.stack(py, axis=1) if len(py) else np.zeros((len(px), 0))  # (1000, nc)
    if 0 < len(names) < 21:  # a legend entry per class only while the legend stays readable
        for i, y in enumerate(py.T):
            ax.plot(px, y, linewidth=1, label=f"{names[i]} {ap[i, 0]:.3f}")
    else:
        ax.plot(px, py, linewidth=1, color="grey")
    mean_ap = ap[:, 0].mean() if len(ap) else 0.0
    mean_curve = py.mean(1) if py.shape[1] else np.zeros(len(px))
    ax.plot(px, mean_curve, linewidth=3, color="blue", label=f"all classes {mean_ap:.3f} mAP@0.5")
    _finish_axes(ax, "Recall", "Precision", "Precision-Recall Curve")
    fig.savefig(save_dir, dpi=250)
    if on_plot:
        on_plot(save_dir)


def plot_mc_curve(
    px: np.ndarray,
    py: np.ndarray,
    save_dir: Path = Path("mc_curve.png"),
    names: dict[int, str] | tuple | list = (),
    xlabel: str = "Confidence",
    ylabel: str = "Metric",
    on_plot: Callable[[Path], None] | None = None,
) -> None:
    """A metric (``py``, per class (nc, 1000)) against confidence ``px``, with the smoothed class mean."""
    names = _as_names_dict(names)
    fig = Figure(figsize=(9, 6), tight_layout=True)
    ax = fig.subplots()
    if 0 < len(names) < 21:
        for i, y in enumerate(py):
            ax.plot(px, y, linewidth=1, label=f"{names[i]}")
    else:
        ax.plot(px, py.T, linewidth=1, color="grey")
    y = smooth(py.mean(0), 0.05) if len(py) else np.zeros(len(px))
    ax.plot(px, y, linewidth=3, color="blue", label=f"all classes {y.max():.2f} at {px[y.argmax()]:.3f}")
    _finish_axes(ax, xlabel, ylabel, f"{ylabel}-Confidence Curve")
    fig.savefig(save_dir, dpi=250)
    if on_plot:
        on_plot(save_dir)


def _finish_axes(ax, xlabel: str, ylabel: str, title: str) -> None:
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.legend(bbox_to_anchor=(1.04, 1), loc="upper left")
    ax.set_title(title)


def compute_ap(recall: np.ndarray, precision: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Area under one precision-recall curve, COCO-style 101-point interpolation.

    Args:
        recall: (n,) recall after each detection, in descending-confidence order.
        precision: (n,) precision after each detection.

    Returns:
        ap, the precision envelope (n + 2,) and the recall (n + 2,) with sentinels 0 and 1 added.
    """
    mrec = np.concatenate(([0.0], recall, [1.0]))
    mpre = np.concatenate(([1.0], precision, [0.0]))
    # The envelope makes precision non-increasing in recall: the best precision at any higher recall.
    mpre = np.flip(np.maximum.accumulate(np.flip(mpre)))
    x = np.linspace(0, 1, 101)
    ap = _trapezoid(np.interp(x, mrec, mpre), x)
    return float(ap), mpre, mrec


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
    if tp.ndim == 1:
        tp = tp[:, None]
    if not (tp.shape[0] == conf.shape[0] == pred_cls.shape[0]):
        raise ValueError(
            "ap_per_class: tp, conf and pred_cls must have one row per prediction, got lengths "
            f"{tp.shape[0]}, {conf.shape[0]}, {pred_cls.shape[0]}"
        )
    names = _as_names_dict(names)
    order = np.argsort(-conf, kind="stable")
    tp, conf, pred_cls = tp[order].astype(np.float64), conf[order], pred_cls[order]

    unique_classes, nt = np.unique(target_cls, return_counts=True)
    nc = unique_classes.shape[0]
    x, prec_values = np.linspace(0, 1, 1000), []
    ap, p_curve, r_curve = np.zeros((nc, tp.shape[1])), np.zeros((nc, 1000)), np.zeros((nc, 1000))
    for ci, c in enumerate(unique_classes):
        i = pred_cls == c
        n_l, n_p = nt[ci], i.sum()
        if n_p == 0 or n_l == 0:
            continue
        fpc = (1 - tp[i]).cumsum(0)  # (n_p, T)
        tpc = tp[i].cumsum(0)
        recall = tpc / (n_l + eps)
        precision = tpc / (tpc + fpc)
        # np.interp needs increasing sample points and conf decreases, hence the negations.
        r_curve[ci] = np.interp(-x, -conf[i], recall[:, 0], left=0)
        p_curve[ci] = np.interp(-x, -conf[i], precision[:, 0], left=1)
        for j in range(tp.shape[1]):
            ap[ci, j], mpre, mrec = compute_ap(recall[:, j], precision[:, j])
            if plot and j == 0:
                prec_values.append(np.interp(x, mrec, mpre))
    prec_values = np.array(prec_values)

    f1_curve = 2 * p_curve * r_curve / (p_curve + r_curve + eps)
    # Legends list only the classes that appear in the ground truth, in the curves' row order.
    present = dict(enumerate(v for k, v in names.items() if k in unique_classes))
    if plot:
        save_dir = Path(save_dir)
        plot_pr_curve(x, prec_values, ap, save_dir / f"{prefix}PR_curve.png", present, on_plot=on_plot)
        plot_mc_curve(x, f1_curve, save_dir / f"{prefix}F1_curve.png", present, ylabel="F1", on_plot=on_plot)
        plot_mc_curve(x, p_curve, save_dir / f"{prefix}P_curve.png", present, ylabel="Precision", on_plot=on_plot)
        plot_mc_curve(x, r_curve, save_dir / f"{prefix}R_curve.png", present, ylabel="Recall", on_plot=on_plot)

    best = smooth(f1_curve.mean(0), 0.1).argmax() if nc else 0
    p, r, f1 = p_curve[:, best], r_curve[:, best], f1_curve[:, best]
    tp_count = (r * nt).round()
    fp_count = (tp_count / (p + eps) - tp_count).round()
    return tp_count, fp_count, p, r, f1, ap, unique_classes.astype(int), p_curve, r_curve, f1_curve, x, prec_values


class _Summary:
    """Readable ``str()`` listing the public, non-callable attributes, like upstream's SimpleClass."""

    def __str__(self) -> str:
        lines = []
        for name in dir(self):
            if name.startswith("_"):
                continue
            value = getattr(self, name)
            if callable(value):
                continue
            if isinstance(value, _Summary):
                lines.append(f"{name}: {type(value).__module__}.{type(value).__name__} object")
            else:
                lines.append(f"{name}: {value!r}")
        return f"{type(self).__module__}.{type(self).__name__} object with attributes:\n\n" + "\n".join(lines)

    def __repr__(self) -> str:
        return self.__str__()


class Metric(_Summary):
    """Per-class detection results of one evaluation (boxes), with their class means.

    Attributes:
        p, r, f1: (nc,) precision, recall, F1 per class present in the labels.
        all_ap: (nc, 10) AP per class at IoU 0.50:0.05:0.95.
        ap_class_index: (nc,) class id of each row above.
        nc: number of classes of the model (the length of ``maps``).
    """

    def __init__(self) -> None:
        self.p: np.ndarray | list = []
        self.r: np.ndarray | list = []
        self.f1: np.ndarray | list = []
        self.all_ap: np.ndarray | list = []
        self.ap_class_index: np.ndarray | list = []
        self.nc = 0
        self.p_curve: np.ndarray | list = []
        self.r_curve: np.ndarray | list = []
        self.f1_curve: np.ndarray | list = []
        self.px: np.ndarray | list = []
        self.prec_values: np.ndarray | list = []

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
        return float(self.p.mean()) if len(self.p) else 0.0

    @property
    def mr(self) -> float:
        """Mean recall over classes."""
        return float(self.r.mean()) if len(self.r) else 0.0

    @property
    def map50(self) -> float:
        """mAP at IoU 0.5."""
        return float(self.all_ap[:, 0].mean()) if len(self.all_ap) else 0.0

    @property
    def map75(self) -> float:
        """mAP at IoU 0.75."""
        return float(self.all_ap[:, 5].mean()) if len(self.all_ap) else 0.0

    @property
    def map(self) -> float:
        """mAP averaged over IoU 0.50:0.05:0.95."""
        return float(self.all_ap.mean()) if len(self.all_ap) else 0.0

    def mean_results(self) -> list[float]:
        """[mp, mr, map50, map]."""
        return [self.mp, self.mr, self.map50, self.map]

    def class_result(self, i: int) -> tuple[float, float, float, float]:
        """(p, r, ap50, ap50-95) of the i-th row (see ``ap_class_index`` for its class id)."""
        return self.p[i], self.r[i], self.ap50[i], self.ap[i]

    @property
    def maps(self) -> np.ndarray:
        """(nc,) mAP50-95 per class id; classes absent from the labels get the overall mAP."""
        maps = np.zeros(self.nc) + self.map
        for i, c in enumerate(self.ap_class_index):
            maps[c] = self.ap[i]
        return maps

    def fitness(self) -> float:
        """0.1 * mAP50 + 0.9 * mAP50-95, the score used to pick best.pt."""
        weights = np.array([0.0, 0.0, 0.1, 0.9])
        return float((np.array(self.mean_results()) * weights).sum())

    def update(self, results: tuple) -> None:
        """Store ``ap_per_class(...)[2:]``.

        That is p, r, f1, all_ap, ap_class_index, p_curve, r_curve, f1_curve, px, prec_values.
        """
        (
            self.p,
            self.r,
            self.f1,
            self.all_ap,
            self.ap_class_index,
            self.p_curve,
            self.r_curve,
            self.f1_curve,
            self.px,
            self.prec_values,
        ) = results

    @property
    def curves(self) -> list:
        """Names of the curves (none for a bare Metric; DetMetrics names them)."""
        return []

    @property
    def curves_results(self) -> list[list]:
        """[x, y, xlabel, ylabel] for the PR, F1, P and R curves."""
        return [
            [self.px, self.prec_values, "Recall", "Precision"],
            [self.px, self.f1_curve, "Confidence", "F1"],
            [self.px, self.p_curve, "Confidence", "Precision"],
            [self.px, self.r_curve, "Confidence", "Recall"],
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
        self.speed = {"preprocess": 0.0, "inference": 0.0, "loss": 0.0, "postprocess": 0.0}  # ms per image
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
        )[2:]
        self.box.nc = len(self.names)
        self.box.update(results)

    @property
    def keys(self) -> list[str]:
        """Names of ``mean_results()``' entries, as they appear in results.csv."""
        return ["metrics/precision(B)", "metrics/recall(B)", "metrics/mAP50(B)", "metrics/mAP50-95(B)"]

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
        return dict(zip(self.keys + ["fitness"], self.mean_results() + [self.fitness]))

    @property
    def curves(self) -> list[str]:
        """Names of the four curves of ``curves_results``."""
        return ["Precision-Recall(B)", "F1-Confidence(B)", "Precision-Confidence(B)", "Recall-Confidence(B)"]

    @property
    def curves_results(self) -> list[list]:
        """[x, y, xlabel, ylabel] for each curve named in ``curves``."""
        return self.box.curves_results
