"""RT-DETR validation: scores all queries, no NMS, boxes scaled back per axis (images are stretched)."""

from __future__ import annotations

import torch

from ultralytics.data import RTDETRDataset
from ultralytics.engine.validator import DetectionValidator
from ultralytics.utils import colorstr, ops

__all__ = ("RTDETRValidator", "RTDETRDataset")  # upstream defines RTDETRDataset in this module


class RTDETRValidator(DetectionValidator):
    """Validates RT-DETR detectors.

    Example:
        >>> from ultralytics.models.rtdetr.val import RTDETRValidator
        >>> validator = RTDETRValidator(args=dict(model="best.pt", data="shapes.yaml"))
        >>> validator(model="best.pt")
    """

    def build_dataset(self, img_path: str, mode: str = "val", batch: int | None = None) -> RTDETRDataset:
        """Validation images, stretched to imgsz x imgsz without augmentation."""
        return RTDETRDataset(
            img_path=img_path,
            imgsz=self.args.imgsz,
            batch_size=batch,
            augment=False,
            hyp=self.args,
            rect=False,
            cache=self.args.cache or None,
            prefix=colorstr(f"{mode}: "),
            data=self.data,
        )

    def postprocess(self, preds: torch.Tensor | tuple | list) -> list[torch.Tensor]:
        """Model output (bs, nq, 4 + nc) -> per image (nq, 6): xyxy pixels at imgsz, score, class.

        Every query is kept (sorted by score): RT-DETR has a fixed number of queries and needs no
        NMS, and mAP must see the low-score tail too.
        """
        if not isinstance(preds, (list, tuple)):  # exported models return only y
            preds = [preds, None]
        bs, _, nd = preds[0].shape
        bboxes, scores = preds[0].split((4, nd - 4), dim=-1)
        bboxes = bboxes * self.args.imgsz  # normalised xywh -> pixels of the stretched input
        outputs = [torch.zeros((0, 6), device=bboxes.device)] * bs
        for i, bbox in enumerate(bboxes):
            bbox = ops.xywh2xyxy(bbox)
            score, cls = scores[i].max(-1)  # (nq,), (nq,)
            pred = torch.cat([bbox, score[..., None], cls[..., None].to(bbox.dtype)], dim=-1)
            outputs[i] = pred[score.argsort(descending=True)]
        return outputs

    def _prepare_batch(self, si: int, batch: dict) -> dict:
        """Labels of image `si` as xyxy pixels of the original image (normalised xywh in the batch)."""
        idx = batch["batch_idx"] == si
        cls = batch["cls"][idx].squeeze(-1)
        bbox = batch["bboxes"][idx]
        ori_shape = batch["ori_shape"][si]
        imgsz = batch["img"].shape[2:]
        ratio_pad = batch["ratio_pad"][si] if "ratio_pad" in batch else None
        if len(cls):
            bbox = ops.xywh2xyxy(bbox)
            bbox[..., [0, 2]] *= ori_shape[1]
            bbox[..., [1, 3]] *= ori_shape[0]
        return {"cls": cls, "bbox": bbox, "ori_shape": ori_shape, "imgsz": imgsz, "ratio_pad": ratio_pad}

    def _prepare_pred(self, pred: torch.Tensor, pbatch: dict) -> torch.Tensor:
        """Predictions from imgsz x imgsz pixels to original-image pixels, x and y scaled separately."""
        predn = pred.clone()
        predn[..., [0, 2]] *= pbatch["ori_shape"][1] / self.args.imgsz
        predn[..., [1, 3]] *= pbatch["ori_shape"][0] / self.args.imgsz
        return predn.float()
