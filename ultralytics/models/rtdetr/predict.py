"""RT-DETR prediction: stretch-resize to a square input, then read boxes straight off the 300 queries (no NMS)."""

from __future__ import annotations

import numpy as np
import torch

from ultralytics.data.augment import LetterBox
from ultralytics.engine.predictor import BasePredictor
from ultralytics.engine.results import Results
from ultralytics.utils import ops


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
        if not isinstance(preds, (list, tuple)):
            preds = [preds, None]
        nd = preds[0].shape[-1]
        bboxes, scores = preds[0].split((4, nd - 4), dim=-1)
        if not isinstance(orig_imgs, list):  # a tensor source: its (B, 3, H, W) 0-1 input is the original
            orig_imgs = _tensor_to_bgr_uint8(orig_imgs)

        classes = self.args.classes
        if classes is not None and not isinstance(classes, (list, tuple)):
            classes = [classes]
        results = []
        for bbox, score, orig_img, img_path in zip(bboxes, scores, orig_imgs, self.batch[0]):
            bbox = ops.xywh2xyxy(bbox)  # (nq, 4) normalised corners
            max_score, cls = score.max(-1, keepdim=True)  # (nq, 1) each
            keep = max_score.squeeze(-1) > self.args.conf
            if classes is not None:
                keep &= (cls == torch.tensor(classes, device=cls.device)).any(1)
            pred = torch.cat([bbox, max_score, cls.to(bbox.dtype)], dim=-1)[keep]  # (n, 6)
            if len(pred) > self.args.max_det:
                pred = pred[pred[:, 4].topk(self.args.max_det).indices]
            oh, ow = orig_img.shape[:2]
            pred[..., [0, 2]] *= ow
            pred[..., [1, 3]] *= oh
            results.append(Results(orig_img, path=img_path, names=self.model.names, boxes=pred))
        return results

    def pre_transform(self, im: list[np.ndarray]) -> list[np.ndarray]:
        """Stretch every image to the square imgsz without padding, as RT-DETR was trained."""
        letterbox = LetterBox(self.imgsz, auto=False, scaleFill=True)
        return [letterbox(image=x) for x in im]


def _tensor_to_bgr_uint8(batch: torch.Tensor) -> list[np.ndarray]:
    """(B, 3, H, W) RGB 0-1 tensor -> list of (H, W, 3) BGR uint8 arrays."""
    arr = (batch.permute(0, 2, 3, 1).float() * 255).clamp(0, 255).to(torch.uint8).cpu().numpy()
    return [np.ascontiguousarray(a[..., ::-1]) for a in arr]
