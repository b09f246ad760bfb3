"""RT-DETR validation: every query is scored (no NMS), and boxes go back to the original image per axis.

RT-DETR stretches each image to imgsz x imgsz instead of letterboxing it, so a box returns to the
original image by two independent gains, width / imgsz along x and height / imgsz along y. The
boxes are scaled but not clipped to the image, which the recorded metrics depend on.
"""

from __future__ import annotations

import torch

from ultralytics.data import RTDETRDataset
from ultralytics.engine.validator import DetectionValidator
from ultralytics.utils import colorstr, ops

__all__ = ("RTDETRValidator", "RTDETRDataset")  # upstream defines RTDETRDataset in this module


def _scale_axes(boxes: torch.Tensor, gain_x: float, gain_y: float) -> torch.Tensor:
    """Multiply the x values (columns 0, 2) and y values (1, 3) of (..., 4) xyxy boxes in place."""
    boxes[..., 0::2] *= gain_x
    boxes[..., 1::2] *= gain_y
    return boxes


class RTDETRValidator(DetectionValidator):
    """Validates RT-DETR detectors.

    Example:
        >>> from ultralytics.models.rtdetr.val import RTDETRValidator
        >>> validator = RTDETRValidator(args=dict(model="best.pt", data="shapes.yaml"))
        >>> validator(model="best.pt")
    """

    def build_dataset(self, img_path: str, mode: str = "val", batch: int | None = None) -> RTDETRDataset:
        """Validation images, stretched to imgsz x imgsz without augmentation."""
        log_prefix = colorstr(f"{mode}: ")
        return RTDETRDataset(
            img_path=img_path,
            imgsz=self.args.imgsz,
            batch_size=batch,
            augment=False,
            hyp=self.args,
            rect=False,  # every image becomes one square: no rectangular batches to build
            cache=self.args.cache if self.args.cache else None,
            prefix=log_prefix,
            data=self.data,
        )

    def postprocess(self, preds: torch.Tensor | tuple | list) -> list[torch.Tensor]:
        """Model output (bs, nq, 4 + nc) -> per image (nq, 6): xyxy pixels at imgsz, score, class.

        Every query is kept, best score first: RT-DETR has a fixed number of queries and needs
        no NMS, and mAP must see the low-score tail too.
        """
        output = preds[0] if isinstance(preds, (list, tuple)) else preds  # exported models return y alone
        boxes, class_scores = output.split((4, output.shape[-1] - 4), dim=-1)  # (bs, nq, 4), (bs, nq, nc)
        boxes = ops.xywh2xyxy(boxes * self.args.imgsz)  # normalised xywh -> stretched-input pixels
        scores, classes = class_scores.max(-1)  # (bs, nq) each
        rows = torch.cat((boxes, scores[..., None], classes[..., None].to(boxes.dtype)), dim=-1)  # (bs, nq, 6)
        return [image_rows[image_scores.argsort(descending=True)] for image_rows, image_scores in zip(rows, scores)]

    def _prepare_batch(self, si: int, batch: dict) -> dict:
        """Labels of image `si` as xyxy pixels of the original image (normalised xywh in the batch)."""
        in_image = batch["batch_idx"] == si
        cls = batch["cls"][in_image].squeeze(-1)  # (M,)
        boxes = batch["bboxes"][in_image]  # (M, 4)
        height, width = batch["ori_shape"][si][:2]
        if len(cls):
            boxes = _scale_axes(ops.xywh2xyxy(boxes), width, height)
        return {
            "cls": cls,
            "bbox": boxes,
            "ori_shape": batch["ori_shape"][si],
            "imgsz": batch["img"].shape[2:],
            "ratio_pad": batch["ratio_pad"][si] if "ratio_pad" in batch else None,
        }

    def _prepare_pred(self, pred: torch.Tensor, pbatch: dict) -> torch.Tensor:
        """Predictions from imgsz x imgsz pixels to original-image pixels, x and y scaled separately."""
        height, width = pbatch["ori_shape"][:2]
        predn = pred.clone()
        _scale_axes(predn[:, :4], width / self.args.imgsz, height / self.args.imgsz)
        return predn.float()
