"""RT-DETR training: the detection trainer with RT-DETR's model, dataset and validator."""

from __future__ import annotations

from copy import copy
from pathlib import Path
from typing import Any

from torch import optim

from ultralytics.cfg import get_cfg
from ultralytics.engine import recipes
from ultralytics.engine.optimization import flat_cosine_factor, separate_backbone
from ultralytics.engine.trainer import DetectionTrainer
from ultralytics.utils import DEFAULT_CFG, LOGGER, RANK, colorstr
from ultralytics.utils.torch_utils import de_parallel

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

    def __init__(
        self,
        cfg: str | Path | dict | Any = DEFAULT_CFG,
        overrides: dict | None = None,
        _callbacks: dict | None = None,
    ):
        # the recipe (recipe=..., see engine/recipes.py) fills in the keys the user did not set
        overrides = dict(overrides or {})
        overrides.update(recipes.recipe_settings(vars(get_cfg(cfg, overrides)), explicit=set(overrides)))
        super().__init__(cfg, overrides, _callbacks)

    def get_model(self, cfg: str | dict | None = None, weights: Any = None, verbose: bool = True):
        """An RTDETRDetectionModel for the dataset's class count, with `weights` loaded when given."""
        from ultralytics.models.utils.loss import RTDETRDetectionLoss
        from ultralytics.nn.tasks import RTDETRDetectionModel

        print_summary = verbose and RANK == -1  # DDP workers stay quiet
        model = RTDETRDetectionModel(cfg, nc=self.data["nc"], verbose=print_summary)
        if weights:
            model.load(weights)
        if self.args.cls_loss == "mal":  # otherwise the model builds its default (varifocal) criterion
            model.criterion = RTDETRDetectionLoss(nc=self.data["nc"], use_vfl=True, mal_gamma=self.args.mal_gamma)
        return model

    def build_optimizer(self, model, name: str = "auto", lr: float = 0.001, **kwargs) -> optim.Optimizer:
        """The trainer's three groups; with lr_backbone != 1, the backbone's parameters in twin groups
        at lr_backbone * lr (RT-DETRv2 trains its backbone at a tenth of the rest)."""
        optimizer = super().build_optimizer(model, name=name, lr=lr, **kwargs)
        ratio = self.args.lr_backbone
        if ratio != 1.0:
            bare = de_parallel(model)
            layers = bare.model[: len(bare.yaml["backbone"])]
            separate_backbone(optimizer, list(layers.parameters()), ratio)
            groups = len(optimizer.param_groups)
            LOGGER.info(f"{colorstr('optimizer:')} backbone at lr_backbone={ratio} x lr, {groups} groups")
        return optimizer

    def _setup_scheduler(self) -> None:
        """With flat_lr_epochs > 0, DEIM's flat-then-cosine lr factor; otherwise the default schedule."""
        if not self.args.flat_lr_epochs:
            super()._setup_scheduler()
            return
        options = self.args
        self.lf = flat_cosine_factor(options.lrf, options.flat_lr_epochs, options.no_aug_epochs, lambda: self.epochs)
        self.scheduler = optim.lr_scheduler.LambdaLR(self.optimizer, lr_lambda=self.lf)

    def _train_epoch(self, epoch: int, iterations) -> None:
        """The epoch, after bringing the augmentation in line with it (dense_o2o, no_aug_epochs)."""
        if recipes.schedule_augmentation(self.args, self.train_loader.dataset, epoch, self.epochs):
            self.train_loader.reset()  # the loader's iterator still holds the previous transforms
        super()._train_epoch(epoch, iterations)

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
