"""RT-DETR prediction: stretch-resize to a square input, then read boxes straight off the queries (no NMS)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from ultralytics.data.augment import LetterBox
from ultralytics.engine.predictor import BasePredictor
from ultralytics.engine.results import Results
from ultralytics.utils import ops


def _as_class_list(classes: int | Sequence[int] | None) -> list[int] | None:
    """`classes=2` and `classes=[2]` mean the same filter; None keeps every class."""
    if classes is None or isinstance(classes, (list, tuple)):
        return classes
    return [classes]


def _select_queries(
    queries: torch.Tensor,
    conf: float,
    classes: list[int] | None,
    max_det: int,
) -> torch.Tensor:
    """One image's queries (nq, 4 + nc), normalised xywh + class scores -> kept (n, 6) normalised xyxy, score, cls.

    A query keeps its best class; it survives when that score beats `conf` and the class is in
    `classes`. Above `max_det` survivors only the highest scores remain, best first.
    """
    corners = ops.xywh2xyxy(queries[:, :4])  # (nq, 4)
    best_score, best_cls = queries[:, 4:].max(-1, keepdim=True)  # (nq, 1) each
    keep = best_score[:, 0] > conf
    if classes is not None:
        wanted = torch.tensor(classes, device=best_cls.device)
        keep &= (best_cls == wanted).any(1)
    kept = torch.cat([corners, best_score, best_cls.to(corners.dtype)], dim=-1)[keep]  # (n, 6)
    if len(kept) > max_det:
        kept = kept[kept[:, 4].topk(max_det).indices]
    return kept


def _scale_to_image(boxes: torch.Tensor, image: np.ndarray) -> torch.Tensor:
    """Normalised corners -> pixels of `image`, in place; the stretch resize makes x and y scale apart."""
    height, width = image.shape[:2]
    boxes[..., [0, 2]] *= width
    boxes[..., [1, 3]] *= height
    return boxes


def _tensor_to_bgr_uint8(batch: torch.Tensor) -> list[np.ndarray]:
    """(B, 3, H, W) RGB 0-1 tensor -> list of (H, W, 3) BGR uint8 arrays."""
    hwc = (batch.permute(0, 2, 3, 1).float() * 255).clamp(0, 255).to(torch.uint8).cpu().numpy()
    return [np.ascontiguousarray(rgb[..., ::-1]) for rgb in hwc]


class RTDETRPredictor(BasePredictor):
    """Predictor for RT-DETR models.

    The model returns, per image, nq queries of `[xc, yc, w, h, score_0 .. score_{nc-1}]` with boxes
    normalised to the (stretched) input. Because the resize is a stretch, normalised coordinates
    map to the original image by multiplying x by its width and y by its height.

        from ultralytics import RTDETR
        results = RTDETR("best.pt").predict("bus.jpg", conf=0.4, classes=[0, 5])
    """

    def postprocess(
        self,
        preds: torch.Tensor | list | tuple,
        img: torch.Tensor,
        orig_imgs: list[np.ndarray] | torch.Tensor,
    ) -> list[Results]:
        """(B, nq, 4 + nc) model output -> one Results per image with pixel xyxy boxes, score and class."""
        queries = preds[0] if isinstance(preds, (list, tuple)) else preds  # PyTorch models add decoder extras
        if isinstance(orig_imgs, torch.Tensor):  # a tensor source: its (B, 3, H, W) 0-1 input is the original
            orig_imgs = _tensor_to_bgr_uint8(orig_imgs)
        classes = _as_class_list(self.args.classes)
        results = []
        for image_queries, image, path in zip(queries, orig_imgs, self.batch[0]):
            kept = _select_queries(image_queries, self.args.conf, classes, self.args.max_det)
            boxes = _scale_to_image(kept, image)
            results.append(Results(image, path=path, names=self.model.names, boxes=boxes))
        return results

    def pre_transform(self, im: list[np.ndarray]) -> list[np.ndarray]:
        """Stretch every image to the square imgsz without padding, as RT-DETR was trained."""
        stretch = LetterBox(self.imgsz, auto=False, scaleFill=True)
        return [stretch(image=x) for x in im]
