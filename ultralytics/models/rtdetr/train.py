"""RT-DETR training: the detection trainer with RT-DETR's model, dataset and validator."""

from __future__ import annotations

from copy import copy
from typing import Any

from ultralytics.engine.trainer import DetectionTrainer
from ultralytics.utils import RANK, colorstr

from .val import RTDETRDataset, RTDETRValidator

# The three terms of RTDETRDetectionLoss that the trainer logs, in the order the loss returns them.
LOSS_NAMES = ("giou_loss", "cls_loss", "l1_loss")


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

        print_summary = verbose and RANK == -1  # DDP workers stay quiet
        model = RTDETRDetectionModel(cfg, nc=self.data["nc"], verbose=print_summary)
        if weights:
            model.load(weights)
        return model

    def build_dataset(self, img_path: str, mode: str = "val", batch: int | None = None) -> RTDETRDataset:
        """RT-DETR dataset: augmented (mosaic, perspective, HSV, flip) for train, plain stretch for val.

        Only training uses `fraction` of the images; both modes keep square (non-rect) batches.
        """
        training = mode == "train"
        options = self.args
        return RTDETRDataset(
            img_path=img_path,
            imgsz=options.imgsz,
            batch_size=batch,
            augment=training,
            hyp=options,
            rect=False,
            cache=options.cache or None,
            single_cls=bool(options.single_cls),
            prefix=colorstr(f"{mode}: "),
            classes=options.classes,
            data=self.data,
            fraction=options.fraction if training else 1.0,
        )

    def get_validator(self) -> RTDETRValidator:
        """The validator run after each epoch; also names the three logged losses."""
        self.loss_names = LOSS_NAMES
        return RTDETRValidator(dataloader=self.test_loader, save_dir=self.save_dir, args=copy(self.args))
