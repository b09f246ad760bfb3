"""Drawing boxes on images and the plots written by training and validation.

Every figure is rendered with matplotlib's Agg canvas through ``matplotlib.figure.Figure``, never
through pyplot, so plotting works headless and leaves the user's pyplot state alone. Text on
images uses OpenCV's Hershey font or PIL's built-in font: nothing is ever downloaded.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from ultralytics.utils import LOGGER, results_csv
from ultralytics.utils.ops import clip_boxes, xywh2xyxy, xyxy2xywh

OnPlot = Callable[[Path], None] | None


def _figure(**kwargs):
    """A new Agg-backed matplotlib Figure; matplotlib is imported here, on the first plot, not with this module."""
    from matplotlib.figure import Figure

    return Figure(**kwargs)


def _save(fig, fname: Path, dpi: int, on_plot: OnPlot) -> None:
    fig.savefig(fname, dpi=dpi)
    if on_plot:
        on_plot(fname)


# The Ultralytics palette, in the order classes take it.
_PALETTE_HEX = (
    "FF3838",
    "FF9D97",
    "FF701F",
    "FFB21D",
    "CFD231",
    "48F90A",
    "92CC17",
    "3DDB86",
    "1A9334",
    "00D4BB",
    "2C99A8",
    "00C2FF",
    "344593",
    "6473FF",
    "0018EC",
    "8438FF",
    "520085",
    "CB38FF",
    "FF95C8",
    "FF37C7",
)


class Colors:
    """The Ultralytics 20-colour palette; ``colors(i)`` gives colour ``i`` modulo 20 as RGB (or BGR)."""

    def __init__(self) -> None:
        self.palette = [self.hex2rgb(code) for code in _PALETTE_HEX]
        self.n = len(_PALETTE_HEX)

    def __call__(self, i: int, bgr: bool = False) -> tuple[int, int, int]:
        rgb = self.palette[int(i) % self.n]
        return rgb[::-1] if bgr else rgb

    @staticmethod
    def hex2rgb(h: str) -> tuple[int, int, int]:
        """'#RRGGBB' (the '#' optional) -> (R, G, B)."""
        digits = h.lstrip("#")
        return tuple(int(digits[k : k + 2], 16) for k in range(0, 6, 2))


colors = Colors()


def _is_ascii(s: object) -> bool:
    return all(ord(ch) < 128 for ch in str(s))


def _default_font_size(im: np.ndarray | Image.Image) -> int:
    """PIL font size that scales with the image: 3.5 % of its mean side, at least 12."""
    height, width = (im.size[1], im.size[0]) if isinstance(im, Image.Image) else im.shape[:2]
    return max(round((width + height) / 2 * 0.035), 12)


def _check_drawable(im: np.ndarray) -> None:
    if not isinstance(im, np.ndarray) or im.ndim != 3:
        raise ValueError(
            f"Annotator expects an (H, W, 3) numpy image or a PIL image, got {type(im).__name__} "
            f"with shape {getattr(im, 'shape', None)}"
        )
    if not im.flags["C_CONTIGUOUS"]:
        raise ValueError("Annotator needs a contiguous image; pass np.ascontiguousarray(im)")


def _load_font(font: str | Path, size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    """A local TrueType file when ``font`` names one, else PIL's built-in scalable font."""
    if Path(font).is_file():
        return ImageFont.truetype(str(font), size)
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has only the fixed-size bitmap default
        return ImageFont.load_default()


class Annotator:
    """Draws boxes, labels and text on one image, with OpenCV (default) or PIL.

    Args:
        im: (H, W, 3) uint8 numpy image (BGR or RGB; colours are used as given) or a PIL image.
        line_width: box line width in pixels; default scales with the image size.
        font_size: PIL font size; default scales with the image size.
        font: path of a local TrueType font for PIL mode; when absent PIL's built-in font is used.
        pil: draw with PIL; forced on when ``example`` contains non-ASCII characters.
        example: sample of the label text, used only to detect non-ASCII labels.
    """

    def __init__(
        self,
        im: np.ndarray | Image.Image,
        line_width: int | None = None,
        font_size: int | None = None,
        font: str = "Arial.ttf",
        pil: bool = False,
        example: str = "abc",
    ) -> None:
        given_pil = isinstance(im, Image.Image)
        if not given_pil:
            _check_drawable(im)
        self.pil = pil or given_pil or not _is_ascii(example)
        # Line width from the mean of the summed dimensions (a numpy image's channels included).
        dims_total = sum(im.size) if given_pil else sum(im.shape)
        self.lw = line_width or max(round(dims_total / 2 * 0.003), 2)
        if self.pil:
            self.font = _load_font(font, font_size or _default_font_size(im))
            self.fromarray(im)
            return
        self.im = im if im.flags.writeable else im.copy()  # never draw on a read-only buffer
        self.tf = max(self.lw - 1, 1)  # OpenCV text thickness
        self.sf = self.lw / 3  # OpenCV text scale

    def _text_size(self, text: str) -> tuple[int, int]:
        """(width, height) of ``text`` in pixels with the current font."""
        if self.pil:
            _, _, right, bottom = self.font.getbbox(text)
            return right, bottom
        return cv2.getTextSize(text, 0, fontScale=self.sf, thickness=self.tf)[0]

    def box_label(
        self,
        box: Sequence[float] | torch.Tensor | np.ndarray,
        label: str = "",
        color: tuple[int, int, int] = (128, 128, 128),
        txt_color: tuple[int, int, int] = (255, 255, 255),
        rotated: bool = False,
    ) -> None:
        """Draw one xyxy box (or, with ``rotated``, a 4-point polygon) and its label above it."""
        if isinstance(box, (torch.Tensor, np.ndarray)):
            box = box.tolist()
        if self.pil or not _is_ascii(label):
            if not self.pil:
                self.fromarray(self.im)
            if rotated:
                p1 = box[0]
                self.draw.polygon([tuple(b) for b in box], width=self.lw, outline=color)
            else:
                p1 = (box[0], box[1])
                self.draw.rectangle(box, width=self.lw, outline=color)
            if label:
                w, h = self._text_size(label)
                outside = p1[1] - h >= 0  # room for the label above the box
                top = p1[1] - h if outside else p1[1]
                self.draw.rectangle((p1[0], top, p1[0] + w + 1, top + h + 1), fill=color)
                self.draw.text((p1[0], top), label, fill=txt_color, font=self.font)
            return
        if rotated:
            p1 = [int(b) for b in box[0]]
            cv2.polylines(self.im, [np.asarray(box, dtype=int)], True, color, self.lw)
        else:
            p1, p2 = (int(box[0]), int(box[1])), (int(box[2]), int(box[3]))
            cv2.rectangle(self.im, p1, p2, color, thickness=self.lw, lineType=cv2.LINE_AA)
        if label:
            w, h = self._text_size(label)
            outside = p1[1] - h >= 3
            p2 = p1[0] + w, p1[1] - h - 3 if outside else p1[1] + h + 3
            cv2.rectangle(self.im, tuple(p1), p2, color, -1, cv2.LINE_AA)
            org = (p1[0], p1[1] - 2 if outside else p1[1] + h + 2)
            cv2.putText(self.im, label, org, 0, self.sf, txt_color, thickness=self.tf, lineType=cv2.LINE_AA)

    def rectangle(
        self,
        xy: Sequence[float],
        fill: tuple[int, int, int] | None = None,
        outline: tuple[int, int, int] | None = None,
        width: int = 1,
    ) -> None:
        """Draw an xyxy rectangle, filled and/or outlined."""
        if self.pil:
            self.draw.rectangle(xy, fill, outline, width)
            return
        p1, p2 = (int(xy[0]), int(xy[1])), (int(xy[2]), int(xy[3]))
        if fill is not None:
            cv2.rectangle(self.im, p1, p2, fill, -1)
        if outline is not None:
            cv2.rectangle(self.im, p1, p2, outline, width)

    def text(
        self,
        xy: Sequence[int],
        text: str,
        txt_color: tuple[int, int, int] = (255, 255, 255),
        anchor: str = "top",
        box_style: bool = False,
    ) -> None:
        """Write ``text`` at ``xy`` (its top-left, or bottom-left with ``anchor='bottom'``).

        With ``box_style`` the text is white on a filled box of ``txt_color``.
        """
        x, y = int(xy[0]), int(xy[1])
        w, h = self._text_size(text)
        if anchor == "bottom":
            y += 1 - h
        if box_style:
            if self.pil:
                self.draw.rectangle((x, y, x + w + 1, y + h + 1), fill=txt_color)
            else:
                cv2.rectangle(self.im, (x, y), (x + w, y + h + 3), txt_color, -1, cv2.LINE_AA)
            txt_color = (255, 255, 255)
        if self.pil:
            for line in text.split("\n"):
                self.draw.text((x, y), line, fill=txt_color, font=self.font)
                y += h
        else:
            # cv2.putText anchors at the text baseline, so shift down by the text height.
            cv2.putText(self.im, text, (x, y + h), 0, self.sf, txt_color, thickness=self.tf, lineType=cv2.LINE_AA)

    def fromarray(self, im: np.ndarray | Image.Image) -> None:
        """Continue drawing with PIL on ``im``."""
        image = im if isinstance(im, Image.Image) else Image.fromarray(im)
        self.im = image if image.mode == "RGB" else image.convert("RGB")
        self.draw = ImageDraw.Draw(self.im)
        self.pil = True
        if not hasattr(self, "font"):  # switched from OpenCV mid-way: the built-in font at the default size
            self.font = _load_font("", _default_font_size(self.im))

    def result(self) -> np.ndarray:
        """The annotated image as an (H, W, 3) uint8 array."""
        return np.asarray(self.im)

    def save(self, filename: str | Path = "image.jpg") -> None:
        """Write the annotated image; PIL mode images are RGB, OpenCV mode ones are written as given."""
        if self.pil:
            self.im.save(filename)
        else:
            cv2.imwrite(str(filename), self.im)


def _to_numpy(x: torch.Tensor | np.ndarray | None) -> np.ndarray | None:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().float().numpy() if x.is_floating_point() else x.detach().cpu().numpy()
    return x


def plot_images(
    images: torch.Tensor | np.ndarray,
    batch_idx: torch.Tensor | np.ndarray,
    cls: torch.Tensor | np.ndarray,
    bboxes: torch.Tensor | np.ndarray | None = None,
    confs: torch.Tensor | np.ndarray | None = None,
    masks: torch.Tensor | np.ndarray | None = None,
    kpts: torch.Tensor | np.ndarray | None = None,
    paths: Sequence[str] | None = None,
    fname: str | Path = "images.jpg",
    names: dict[int, str] | None = None,
    on_plot: OnPlot = None,
    max_size: int = 1920,
    max_subplots: int = 16,
    save: bool = True,
    conf_thres: float = 0.25,
) -> np.ndarray | None:
    """Tile a batch into a square mosaic and draw its labels or predictions.

    Args:
        images: (B, 3, H, W) RGB batch, floats in [0, 1] or [0, 255].
        batch_idx: (N,) image index of every box.
        cls: (N,) class of every box.
        bboxes: (N, 4) xywh boxes, normalised (all <= 1.1) or in pixels of the (H, W) input;
            None or empty writes only the class names on each tile.
        confs: (N,) scores; when given, boxes are predictions, drawn only above ``conf_thres``.
        masks, kpts: accepted for upstream's call signature; detection draws neither.
        paths: image files, their names are written on the tiles.
        fname: output file.
        names: {class id: name} for the labels.
        on_plot: called with ``fname`` after saving.
        max_size: longest side of the mosaic before it is downscaled.
        max_subplots: at most this many images are drawn.
        save: write ``fname``; otherwise return the mosaic.
        conf_thres: minimum score of a drawn prediction.

    Returns:
        The (H', W', 3) RGB mosaic when ``save`` is False, else None.
    """
    images = np.array(_to_numpy(images), dtype=np.float32)  # a copy: de-normalising must not touch the caller's
    batch_idx, cls, bboxes, confs = (_to_numpy(a) for a in (batch_idx, cls, bboxes, confs))
    bboxes = np.zeros((0, 4), dtype=np.float32) if bboxes is None else bboxes
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"plot_images expects images of shape (B, 3, H, W), got {tuple(images.shape)}")
    cls = cls.reshape(-1) if len(cls) else cls
    batch_idx = batch_idx.reshape(-1) if len(batch_idx) else batch_idx

    n_images = min(images.shape[0], max_subplots)
    per_side = int(np.ceil(n_images**0.5))
    if n_images and images[0].max() <= 1:
        images *= 255
    mosaic = _tile(images, n_images, per_side)

    h, w = images.shape[2:]
    scale = max_size / per_side / max(h, w)
    if scale < 1:
        h, w = math.ceil(scale * h), math.ceil(scale * w)
        mosaic = cv2.resize(mosaic, (w * per_side, h * per_side))

    fs = int((h + w) * per_side * 0.01)
    annotator = Annotator(mosaic, line_width=round(fs / 10), font_size=fs, pil=True, example=str(names))
    targets = _Targets(batch_idx, cls, bboxes, confs)
    for i in range(n_images):
        origin = _tile_origin(i, per_side, w, h)
        annotator.rectangle([*origin, origin[0] + w, origin[1] + h], None, (255, 255, 255), width=2)
        if paths:
            annotator.text((origin[0] + 5, origin[1] + 5), text=Path(paths[i]).name[:40], txt_color=(220, 220, 220))
        if len(cls):
            _annotate_tile(annotator, targets.of_image(i), origin, (w, h), scale, names, conf_thres)

    if not save:
        return annotator.result()
    annotator.im.save(fname)
    if on_plot:
        on_plot(Path(fname))
    return None


def _tile_origin(i: int, per_side: int, w: int, h: int) -> tuple[int, int]:
    """Top-left pixel of tile i; tiles fill the mosaic column by column, as upstream's do."""
    return w * (i // per_side), h * (i % per_side)


def _tile(images: np.ndarray, count: int, per_side: int) -> np.ndarray:
    """The first `count` of (B, 3, H, W) images in [0, 255] as a white (per_side*H, per_side*W, 3) uint8 mosaic."""
    h, w = images.shape[2:]
    mosaic = np.full((per_side * h, per_side * w, 3), 255, dtype=np.uint8)
    for i in range(count):
        x, y = _tile_origin(i, per_side, w, h)
        mosaic[y : y + h, x : x + w] = images[i].transpose(1, 2, 0).clip(0, 255).astype(np.uint8)
    return mosaic


class _Targets(NamedTuple):
    """The boxes of a whole batch: (N,) image index and class, (N, 4) xywh or none, (N,) scores for predictions."""

    batch_idx: np.ndarray
    cls: np.ndarray
    bboxes: np.ndarray
    confs: np.ndarray | None

    def of_image(self, i: int) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
        """Classes, xywh boxes (None when the batch has no boxes) and scores of image i."""
        mine = self.batch_idx == i
        boxes = self.bboxes[mine] if len(self.bboxes) else None
        return self.cls[mine].astype(int), boxes, None if self.confs is None else self.confs[mine]


def _class_name(names: dict[int, str] | None, c: int) -> str | int:
    return names.get(c, c) if names else c


def _to_mosaic_pixels(xywh: np.ndarray, origin: tuple[int, int], tile: tuple[int, int], scale: float) -> np.ndarray:
    """(n, 4) xywh, normalised or in input pixels, -> (n, 4) int64 xyxy in mosaic pixels."""
    boxes = xywh2xyxy(np.asarray(xywh, dtype=np.float32))
    if len(boxes) and boxes.max() <= 1.1:  # normalised, with a tolerance for boxes past the border
        boxes[:, 0::2] *= tile[0]
        boxes[:, 1::2] *= tile[1]
    elif len(boxes) and scale < 1:  # input pixels follow the downscaled mosaic
        boxes *= scale
    boxes[:, 0::2] += origin[0]
    boxes[:, 1::2] += origin[1]
    return boxes.astype(np.int64)


def _annotate_tile(annotator, image_targets: tuple, origin, tile, scale: float, names, conf_thres: float) -> None:
    """Labels ('name') or predictions above conf_thres ('name 0.9') on one tile; class names alone without boxes."""
    classes, xywh, confs = image_targets
    if xywh is None:
        for c in classes:
            annotator.text(origin, f"{_class_name(names, int(c))}", txt_color=colors(c), box_style=True)
        return
    for j, box in enumerate(_to_mosaic_pixels(xywh, origin, tile, scale).tolist()):
        c = int(classes[j])
        if confs is None:
            annotator.box_label(box, f"{_class_name(names, c)}", color=colors(c))
        elif confs[j] > conf_thres:
            annotator.box_label(box, f"{_class_name(names, c)} {confs[j]:.1f}", color=colors(c))


def output_to_target(
    output: Sequence[torch.Tensor],
    max_det: int = 300,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per-image predictions (n_i, 6) = xyxy, conf, cls -> plot_images' batch_idx, cls, xywh, conf."""
    targets = []
    for i, o in enumerate(output):
        box, conf, cl = o[:max_det, :6].detach().cpu().float().split((4, 1, 1), 1)
        j = torch.full((conf.shape[0], 1), float(i))
        targets.append(torch.cat((j, cl, xyxy2xywh(box), conf), 1))
    t = torch.cat(targets, 0).numpy() if targets else np.zeros((0, 7), dtype=np.float32)
    return t[:, 0], t[:, 1], t[:, 2:-1], t[:, -1]


def _strip_spines(ax) -> None:
    for side in ("top", "right", "left", "bottom"):
        ax.spines[side].set_visible(False)


def plot_labels(
    boxes: np.ndarray,
    cls: np.ndarray,
    names: dict[int, str] | Sequence[str] = (),
    save_dir: Path = Path(""),
    on_plot: OnPlot = None,
) -> None:
    """Write ``labels.jpg`` and ``labels_correlogram.jpg`` summarising a dataset's labels.

    Args:
        boxes: (N, 4) normalised xywh of every label.
        cls: (N,) class of every label.
        names: {class id: name}, used on the class histogram when fewer than 30.
        save_dir: output folder.
        on_plot: called with the labels.jpg path.
    """
    save_dir = Path(save_dir)
    boxes = np.asarray(_to_numpy(boxes), dtype=np.float64).reshape(-1, 4)[:1_000_000]
    cls = np.asarray(_to_numpy(cls)).reshape(-1).astype(int)[:1_000_000]
    names = dict(names) if isinstance(names, dict) else dict(enumerate(names))
    LOGGER.info(f"Plotting labels to {save_dir / 'labels.jpg'}... ")
    nc = int(cls.max() + 1) if len(cls) else 0

    _plot_correlogram(boxes, save_dir / "labels_correlogram.jpg")

    fig = _figure(figsize=(8, 8), tight_layout=True)
    ax = fig.subplots(2, 2).ravel()
    counts = np.bincount(cls, minlength=nc) if nc else np.zeros(0)
    ax[0].bar(range(nc), counts, width=0.8, color=[tuple(v / 255 for v in colors(i)) for i in range(nc)])
    ax[0].set_ylabel("instances")
    if 0 < len(names) < 30:
        ax[0].set_xticks(range(len(names)), list(names.values()), rotation=90, fontsize=10)
    else:
        ax[0].set_xlabel("classes")

    # Every box drawn centred, so the overlay shows the spread of shapes and sizes.
    canvas = Image.fromarray(np.full((1000, 1000, 3), 255, dtype=np.uint8))
    draw = ImageDraw.Draw(canvas)
    centred = boxes[:500].copy()
    centred[:, :2] = 0.5
    for c, box in zip(cls[:500], xywh2xyxy(centred) * 1000):
        draw.rectangle(box.tolist(), width=1, outline=colors(c))
    ax[1].imshow(np.asarray(canvas))
    ax[1].axis("off")

    for a, (xi, yi, xl, yl) in zip(ax[2:], ((0, 1, "x", "y"), (2, 3, "width", "height"))):
        if len(boxes):
            a.hist2d(boxes[:, xi], boxes[:, yi], bins=50, cmap="Blues", cmin=1)
        a.set_xlabel(xl)
        a.set_ylabel(yl)
    for a in ax:
        _strip_spines(a)

    _save(fig, save_dir / "labels.jpg", 200, on_plot)


_BOX_FIELDS = ("x", "y", "width", "height")


def _correlogram_cell(ax, boxes: np.ndarray, row: int, col: int) -> None:
    """One cell below or on the diagonal: a histogram of a field, or a 2-D histogram of two."""
    if not len(boxes):
        return
    if row == col:
        ax.hist(boxes[:, col], bins=50, color="steelblue")
    else:
        ax.hist2d(boxes[:, col], boxes[:, row], bins=50, cmap="Blues", cmin=1)


def _plot_correlogram(boxes: np.ndarray, fname: Path) -> None:
    """Lower-triangle grid of x, y, width, height: histograms on the diagonal, 2-D histograms below."""
    fig = _figure(figsize=(8, 8), tight_layout=True)
    grid = fig.subplots(4, 4)
    for (row, col), ax in np.ndenumerate(grid):
        if col > row:
            ax.axis("off")  # the upper triangle would only mirror the lower one
            continue
        _correlogram_cell(ax, boxes, row, col)
        if row == 3:
            ax.set_xlabel(_BOX_FIELDS[col])
        if col == 0 and row > 0:
            ax.set_ylabel(_BOX_FIELDS[row])
    _save(fig, fname, 200, None)


# ------------------------------------------------------------------------- metric curves


def _legend_axes(ax, xlabel: str, ylabel: str, title: str) -> None:
    """Unit square axes with labels, title and the legend outside on the right."""
    ax.set(xlabel=xlabel, ylabel=ylabel, xlim=(0, 1), ylim=(0, 1), title=title)
    ax.legend(bbox_to_anchor=(1.04, 1), loc="upper left")


def _per_class_lines(ax, px: np.ndarray, rows: np.ndarray, labels: list[str] | None) -> None:
    """One thin line per class (rows: (nc, n)); labelled only while a legend entry per class stays readable."""
    if labels is None:
        if len(rows):
            ax.plot(px, rows.T, linewidth=1, color="grey")
        return
    for row, label in zip(rows, labels):
        ax.plot(px, row, linewidth=1, label=label)


def _class_labels(names: dict[int, str] | Sequence[str], count: int, suffix=lambda i: "") -> list[str] | None:
    """Legend labels for `count` curves, or None when there are no names or more than 20."""
    names = dict(names) if isinstance(names, dict) else dict(enumerate(names))
    if not 0 < len(names) <= 20:
        return None
    return [f"{names[i]}{suffix(i)}" for i in range(count)]


def plot_pr_curve(
    px: np.ndarray,
    py: np.ndarray | list[np.ndarray],
    ap: np.ndarray,
    save_dir: Path = Path("pr_curve.png"),
    names: dict[int, str] | tuple | list = (),
    on_plot: OnPlot = None,
) -> None:
    """Precision against recall ``px``: ``py`` (nc, n) per class, ``ap`` (nc, T); ``save_dir`` is the file."""
    rows = np.asarray(py, dtype=np.float64).reshape(-1, len(px))  # (nc, n)
    fig = _figure(figsize=(9, 6), tight_layout=True)
    ax = fig.subplots()
    _per_class_lines(ax, px, rows, _class_labels(names, len(rows), lambda i: f" {ap[i, 0]:.3f}"))
    mean_ap = ap[:, 0].mean() if len(ap) else 0.0
    mean_row = rows.mean(0) if len(rows) else np.zeros(len(px))
    ax.plot(px, mean_row, linewidth=3, color="blue", label=f"all classes {mean_ap:.3f} mAP@0.5")
    _legend_axes(ax, "Recall", "Precision", "Precision-Recall Curve")
    _save(fig, save_dir, 250, on_plot)


def plot_mc_curve(
    px: np.ndarray,
    py: np.ndarray,
    save_dir: Path = Path("mc_curve.png"),
    names: dict[int, str] | tuple | list = (),
    xlabel: str = "Confidence",
    ylabel: str = "Metric",
    on_plot: OnPlot = None,
) -> None:
    """A metric against confidence ``px``: ``py`` (nc, n) per class, plus the smoothed class mean and its peak."""
    from ultralytics.utils.metrics import smooth

    rows = np.asarray(py, dtype=np.float64).reshape(-1, len(px))
    fig = _figure(figsize=(9, 6), tight_layout=True)
    ax = fig.subplots()
    _per_class_lines(ax, px, rows, _class_labels(names, len(rows)))
    mean_row = smooth(rows.mean(0), 0.05) if len(rows) else np.zeros(len(px))
    peak = mean_row.argmax()
    ax.plot(px, mean_row, linewidth=3, color="blue", label=f"all classes {mean_row[peak]:.2f} at {px[peak]:.3f}")
    _legend_axes(ax, xlabel, ylabel, f"{ylabel}-Confidence Curve")
    _save(fig, save_dir, 250, on_plot)


def _matrix_ticks(names, nc: int, n: int) -> list[str] | None:
    """Tick labels of an n x n confusion matrix: class names plus 'background', or indices; None for none."""
    names = list(names.values()) if isinstance(names, dict) else list(names)
    named = 0 < len(names) < 99 and len(names) == nc
    if not (named or n <= 60):
        return None  # too many unnamed classes to label legibly
    return (names + ["background"])[:n] if named else [str(i) for i in range(n)]


def _annotate_cells(ax, shown: np.ndarray, normalize: bool) -> None:
    """Write each visible cell's value, white on dark cells and black on light ones."""
    fmt = "{:.2f}" if normalize else "{:.0f}"
    dark_from = 0.5 * np.nanmax(shown, initial=0.0)
    for r, c in zip(*np.nonzero(~np.isnan(shown))):
        value = shown[r, c]
        colour = "white" if value > dark_from else "black"
        ax.text(c, r, fmt.format(value), ha="center", va="center", fontsize=8, color=colour)


def plot_confusion_matrix(
    matrix: np.ndarray,
    nc: int,
    normalize: bool = True,
    save_dir: str | Path = "",
    names: Sequence[str] | dict[int, str] = (),
    on_plot: OnPlot = None,
) -> Path:
    """Draw a ConfusionMatrix's counts (rows predicted, columns true) to confusion_matrix[_normalized].png.

    Normalising divides every column by its total. Cells under 0.005 are left blank. Returns the file.
    """
    import matplotlib

    shown = matrix / (matrix.sum(0).reshape(1, -1) + 1e-9) if normalize else matrix / 1
    shown = np.where(shown < 0.005, np.nan, shown)
    fig = _figure(figsize=(12, 9), tight_layout=True)
    ax = fig.subplots()
    palette = matplotlib.colormaps["Blues"].with_extremes(bad="white")
    top = max(np.nanmax(shown, initial=0.0), 1e-9)
    fig.colorbar(ax.imshow(np.ma.masked_invalid(shown), cmap=palette, vmin=0.0, vmax=top), ax=ax)
    if nc < 30:
        _annotate_cells(ax, shown, normalize)
    n = shown.shape[0]
    ticks = _matrix_ticks(names, nc, n)
    if ticks is not None:
        fontsize = 10 if n < 50 else 6
        ax.set_xticks(range(n), ticks, rotation=90, fontsize=fontsize)
        ax.set_yticks(range(n), ticks, fontsize=fontsize)
    title = "Confusion Matrix Normalized" if normalize else "Confusion Matrix"
    ax.set(xlabel="True", ylabel="Predicted", title=title)
    fname = Path(save_dir) / f"{title.lower().replace(' ', '_')}.png"
    _save(fig, fname, 250, on_plot)
    return fname


# ----------------------------------------------------------------------------- results.png


def _panel_names(headers: list[list[str]]) -> list[str]:
    """The columns that get a panel, in first-seen order over all files; never epoch or time."""
    names: list[str] = []
    for header in headers:
        names += [header[j] for j in results_csv.plotted_columns(header) if header[j] not in names]
    return names


def _draw_run(axes: dict, label: str, header: list[str], values: np.ndarray) -> None:
    """One results file onto the panels of `axes` ({column name: ax}), raw and Gaussian-smoothed."""
    from scipy.ndimage import gaussian_filter1d

    epochs = values[:, header.index(results_csv.EPOCH)] if results_csv.EPOCH in header else values[:, 0]
    for j in results_csv.plotted_columns(header):
        ax, y = axes[header[j]], values[:, j]
        ax.plot(epochs, y, marker=".", label=label, linewidth=2, markersize=8)
        if len(y) > 1 and np.isfinite(y).all():
            ax.plot(epochs, gaussian_filter1d(y, sigma=3), ":", label="smooth", linewidth=2)


def plot_results(
    file: str | Path = "path/to/results.csv",
    dir: str | Path = "",
    on_plot: OnPlot = None,
) -> None:
    """Write ``results.png``: one panel per loss, metric and learning rate, against the epoch.

    Every ``results*.csv`` in the folder of ``file`` (or in ``dir`` when ``file`` is empty) is
    drawn, each with a dotted Gaussian-smoothed copy. The ``epoch`` and ``time`` columns get no
    panel, so files written with and without ``time`` give the same figure.
    """
    folder = Path(dir) if not file else Path(file).parent
    files = sorted(folder.glob("results*.csv"))
    if not files:
        raise FileNotFoundError(f"No results*.csv files found in {folder.resolve()}, nothing to plot.")
    tables = [(f.stem, *results_csv.read_table(f)) for f in files]
    panels = _panel_names([header for _, header, _ in tables])
    if not panels:
        raise ValueError(f"{files[0]} has no loss or metric column to plot, only {tables[0][1]}")
    n_cols = math.ceil(len(panels) / 2)
    fig = _figure(figsize=(max(12, 2.4 * n_cols), 6), tight_layout=True)
    grid = np.atleast_1d(fig.subplots(2, n_cols)).ravel()
    axes = dict(zip(panels, grid))
    for name, ax in axes.items():
        ax.set_title(name, fontsize=12)
    for label, header, values in tables:
        _draw_run(axes, label, header, values)
    for ax in grid[len(panels) :]:
        ax.axis("off")
    grid[min(1, len(panels) - 1)].legend()
    _save(fig, folder / "results.png", 200, on_plot)


def _next_free_path(path: Path) -> Path:
    """``path`` itself when free, else the first free ``stem2.suffix``, ``stem3.suffix``, ..."""
    if not path.exists():
        return path
    n = 2
    while (candidate := path.with_name(f"{path.stem}{n}{path.suffix}")).exists():
        n += 1
    return candidate


def save_one_box(
    xyxy: torch.Tensor | Sequence[float],
    im: np.ndarray,
    file: Path = Path("im.jpg"),
    gain: float = 1.02,
    pad: int = 10,
    square: bool = False,
    BGR: bool = False,
    save: bool = True,
) -> np.ndarray:
    """Crop one xyxy box from a BGR image, enlarged by ``gain`` and ``pad`` pixels.

    Returns the crop (BGR when ``BGR`` else RGB); with ``save`` it is also written as a jpg at
    ``file``, or at the next free numbered name beside it.
    """
    b = xyxy2xywh(torch.as_tensor(xyxy, dtype=torch.float32).view(-1, 4))
    if square:
        b[:, 2:] = b[:, 2:].max(1, keepdim=True).values
    b[:, 2:] = b[:, 2:] * gain + pad
    box = clip_boxes(xywh2xyxy(b).long(), im.shape)
    x1, y1, x2, y2 = (int(v) for v in box[0])
    crop = im[y1:y2, x1:x2, :: (1 if BGR else -1)]
    if save:
        file = Path(file)
        file.parent.mkdir(parents=True, exist_ok=True)
        out = _next_free_path(file.with_suffix(".jpg"))
        # PIL with no chroma subsampling keeps small crops sharper than cv2.imwrite's default.
        rgb = crop if not BGR else crop[..., ::-1]
        Image.fromarray(np.ascontiguousarray(rgb)).save(out, quality=95, subsampling=0)
    return crop


# ------------------------------------------------------------------------------------------------
# Feature maps (predict visualize=True)
# ------------------------------------------------------------------------------------------------
# Layers whose output is not a feature map (queries, class scores) are not drawn.
_NOT_FEATURE_MAPS = ("Detect", "Segment", "Pose", "Classify", "OBB", "RTDETRDecoder")
_TILE_SIDE = 96  # each channel is drawn at least this many pixels high
_GRID_COLUMNS = 8


def _to_uint8(maps: torch.Tensor) -> np.ndarray:
    """(N, h, w) float -> (N, h, w) uint8, each map stretched over 0-255 on its own (a flat map is 0)."""
    flat = maps.float().flatten(1)
    low, high = flat.min(1, keepdim=True).values, flat.max(1, keepdim=True).values
    scaled = (flat - low) / (high - low).clamp(min=1e-12)
    return (scaled * 255).round().to(torch.uint8).view(maps.shape).cpu().numpy()


def _channel_grid(channels: np.ndarray) -> np.ndarray:
    """(n, h, w) uint8 -> one BGR image: the maps in rows of 8, viridis-coloured, 2 px apart."""
    n, h, w = channels.shape
    zoom = max(1, math.ceil(_TILE_SIDE / h))
    tile_h, tile_w, gap = h * zoom, w * zoom, 2
    rows = math.ceil(n / _GRID_COLUMNS)
    columns = min(n, _GRID_COLUMNS)
    grid = np.full((rows * (tile_h + gap) - gap, columns * (tile_w + gap) - gap, 3), 255, dtype=np.uint8)
    for k, channel in enumerate(channels):
        top, left = (k // _GRID_COLUMNS) * (tile_h + gap), (k % _GRID_COLUMNS) * (tile_w + gap)
        big = cv2.resize(channel, (tile_w, tile_h), interpolation=cv2.INTER_NEAREST)
        grid[top : top + tile_h, left : left + tile_w] = cv2.applyColorMap(big, cv2.COLORMAP_VIRIDIS)
    return grid


def feature_visualization(
    x: torch.Tensor,
    module_type: str,
    stage: int,
    n: int = 32,
    save_dir: Path = Path("runs/detect/exp"),
) -> Path | None:
    """Draw the first `n` channels of image 0 of a layer's (B, C, h, w) output as one grid image.

    Writes `stage{stage}_{Module}_features.png` and the full (C, h, w) maps as a `.npy` of the same
    name into save_dir, and returns the png path. Outputs that are not feature maps (lists, the
    decoder's queries, 1 x 1 maps) are skipped and give None.
    """
    name = module_type.split(".")[-1]
    if any(head in name for head in _NOT_FEATURE_MAPS):
        return None
    if not isinstance(x, torch.Tensor) or x.dim() != 4 or min(x.shape[2:]) <= 1:
        return None
    save_dir.mkdir(parents=True, exist_ok=True)
    target = save_dir / f"stage{stage}_{name}_features.png"
    maps = x[0].detach()  # (C, h, w)
    shown = min(n, maps.shape[0])
    LOGGER.info(f"Saving {target}... ({shown}/{maps.shape[0]})")
    cv2.imwrite(str(target), _channel_grid(_to_uint8(maps[:shown])))
    np.save(target.with_suffix(".npy"), maps.float().cpu().numpy())
    return target


def _overlay(image_bgr: np.ndarray, heat: np.ndarray, caption: str) -> np.ndarray:
    """A uint8 (h, w) map blown up to the image, jet-coloured, blended half and half, with a caption."""
    height, width = image_bgr.shape[:2]
    big = cv2.resize(heat, (width, height), interpolation=cv2.INTER_LINEAR)
    blended = cv2.addWeighted(image_bgr, 0.5, cv2.applyColorMap(big, cv2.COLORMAP_JET), 0.5, 0)
    scale = max(0.35, width / 640)
    cv2.putText(blended, caption, (4, int(16 * scale) + 2), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1)
    return blended


def plot_focal_maps(
    image: torch.Tensor,
    maps: dict[str, torch.Tensor],
    stage: int,
    save_dir: Path = Path("runs/detect/exp"),
) -> list[Path]:
    """Overlay one FocalModulation layer's modulator magnitude and gates on the model input.

    image: (3, H, W) RGB in 0-1, the input of image 0. maps: {'gates': (B, L + 1, h, w),
    'modulator': (B, C, h, w)} as nn.tasks.record_focal_maps notes them; only image 0 is drawn.
    Writes stage{i}_FocalModulation_modulator.png (the L2 norm over channels of h(ctx_all): where
    the context changes the query most), one gate{l}.png per focal level l and gate_global.png for
    the global level, and the raw (L + 2, h, w) maps [modulator, gates...] as
    stage{i}_FocalModulation_focal_maps.npy. Returns the png paths.
    """
    magnitude = maps["modulator"][0].float().norm(dim=0, keepdim=True)  # (1, h, w)
    gates = maps["gates"][0].float()  # (L + 1, h, w)
    levels = gates.shape[0] - 1
    names = ["modulator", *(f"gate{level}" for level in range(levels)), "gate_global"]
    captions = ["|modulator|", *(f"gate, focal level {level}" for level in range(levels)), "gate, global level"]
    raw = torch.cat([magnitude, gates])  # (L + 2, h, w)
    rgb = (image.detach().float().clamp(0, 1) * 255).byte().permute(1, 2, 0).cpu().numpy()
    background = np.ascontiguousarray(rgb[..., ::-1])  # (H, W, 3) BGR
    save_dir.mkdir(parents=True, exist_ok=True)
    stem = f"stage{stage}_FocalModulation"
    written = []
    for heat, name, caption in zip(_to_uint8(raw), names, captions):
        target = save_dir / f"{stem}_{name}.png"
        cv2.imwrite(str(target), _overlay(background, heat, caption))
        written.append(target)
    np.save(save_dir / f"{stem}_focal_maps.npy", raw.cpu().numpy())
    LOGGER.info(f"Saving {save_dir / stem}_*.png... (modulator and {levels + 1} gate maps)")
    return written
