"""RT-DETR training: the detection trainer with RT-DETR's model, dataset and validator."""

from __future__ import annotations

from copy import copy
from typing import Any

from ultralytics.engine.trainer import DetectionTrainer
from ultralytics.utils import RANK, colorstr

from .val import RTDETRDataset, RTDETRValidator


class RTDETRTrainer(DetectionTrainer):
    """Trains RT-DETR models (including the FocalModulation variant) with the standard engine.

    Example:
        >>> from ultralytics.models.rtdetr.train import RTDETRTrainer
        >>> trainer = RTDETRTrainer(overrides=dict(model="rtdetr-l-FocalModulation.yaml", data="shapes.yaml", epochs=3))
        >>> trainer.train()
    """

    def get_model(self, cfg: str | dict | None = None, weights: Any = None, verbose: bool = True):
        """An RTDETRDetectionModel for the dataset's class count, with `weights` loaded when given."""
        from ultralytics.nn.tasks import RTDETRDetectionModel

        model = RTDETRDetectionModel(cfg, nc=self.data["nc"], verbose=verbose and RANK == -1)
        if weights:
            model.load(weights)
        return model

    def build_dataset(self, img_path: str, mode: str = "val", batch: int | None = None) -> RTDETRDataset:
        """RT-DETR dataset: augmented (mosaic, perspective, HSV, flip) for train, plain stretch for val."""
        return RTDETRDataset(
            img_path=img_path,
            imgsz=self.args.imgsz,
            batch_size=batch,
            augment=mode == "train",
            hyp=self.args,
            rect=False,
            cache=self.args.cache or None,
            single_cls=self.args.single_cls or False,
            prefix=colorstr(f"{mode}: "),
            classes=self.args.classes,
            data=self.data,
            fraction=self.args.fraction if mode == "train" else 1.0,
        )

    def get_validator(self) -> RTDETRValidator:
        """The validator run after each epoch; also names the three logged losses."""
        self.loss_names = "giou_loss", "cls_loss", "l1_loss"
        return RTDETRValidator(self.test_loader, save_dir=self.save_dir, args=copy(self.args))
