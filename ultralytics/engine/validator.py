"""The validation engine: `BaseValidator` runs a model over a split, `DetectionValidator` scores boxes.

Usage:
    $ yolo val model=runs/detect/train/weights/best.pt data=shapes.yaml imgsz=640

During training the trainer calls ``validator(trainer)`` once per epoch with its EMA model; on its
own, ``validator(model=...)`` takes an nn.Module or a checkpoint path.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ultralytics.cfg import get_save_dir
from ultralytics.engine.component import EngineComponent
from ultralytics.utils import LOGGER, TQDM, callbacks, colorstr, ops
from ultralytics.utils.checks import check_imgsz
from ultralytics.utils.metrics import (
    ConfusionMatrix,
    DetMetrics,
    box_iou,
    match_predictions,
)
from ultralytics.utils.ops import Profile
from ultralytics.utils.torch_utils import (
    de_parallel,
    select_device,
    smart_inference_mode,
)


class BaseValidator(EngineComponent):
    """Runs a model over a dataloader and collects metrics, speed, plots and optional JSON.

    Args:
        dataloader: the loader to validate on; built from `data`/`split` when None.
        save_dir: folder for plots and JSON; a new runs/detect/val* folder when None.
        pbar: unused, kept for upstream compatibility.
        args: configuration overrides (dict or namespace).
        _callbacks: event -> [callables] to start from instead of the defaults.
    """

    def __init__(
        self,
        dataloader=None,
        save_dir: Path | None = None,
        pbar: Any = None,
        args: Any = None,
        _callbacks: dict | None = None,
    ):
        self._configure(overrides=args, _callbacks=_callbacks, integrations=False)
        self.dataloader = dataloader
        self.pbar = pbar
        self.stride = None
        self.data = None
        self.device = None
        self.batch_i = None
        self.training = True
        self.names = None
        self.seen = None
        self.stats = None
        self.confusion_matrix = None
        self.nc = None
        self.iouv = None
        self.jdict = None
        self.speed = {"preprocess": 0.0, "inference": 0.0, "loss": 0.0, "postprocess": 0.0}  # ms per image

        self.save_dir = save_dir or get_save_dir(self.args)
        (self.save_dir / "labels" if self.args.save_txt else self.save_dir).mkdir(parents=True, exist_ok=True)
        if self.args.conf is None:
            self.args.conf = 0.001  # validation scores every query, however unsure
        self.args.imgsz = check_imgsz(self.args.imgsz, max_dim=1)

        self.plots = {}

    @smart_inference_mode()
    def __call__(self, trainer: Any = None, model: nn.Module | str | Path | None = None) -> dict[str, float]:
        """Validate; returns {metric: value} (plus val losses when called by a trainer)."""
        self.training = trainer is not None
        augment = self.args.augment and (not self.training)
        if self.training:
            self.device = trainer.device
            self.data = trainer.data
            self.args.half = self.device.type == "cuda" and trainer.amp
            model = trainer.ema.ema or trainer.model
            model = model.half() if self.args.half else model.float()
            self.loss = torch.zeros_like(trainer.loss_items, device=trainer.device)
            self.args.plots &= trainer.stopper.possible_stop or (trainer.epoch == trainer.epochs - 1)
            model.eval()
        else:
            if str(self.args.model).endswith(".yaml") and model is None:
                LOGGER.warning("WARNING ⚠️ validating an untrained model YAML will result in 0 mAP.")
            callbacks.add_integration_callbacks(self)
            model = self._load_model(model if model is not None else self.args.model)
            self.args.imgsz = check_imgsz(self.args.imgsz, stride=int(torch.as_tensor(model.stride).max()) if hasattr(model, "stride") else 32)
            self.data = self._check_dataset()
            if self.device.type in {"cpu", "mps"}:
                self.args.workers = 0  # data loading in the main process is faster here
            self.args.rect = False
            self.stride = model.stride
            self.dataloader = self.dataloader or self.get_dataloader(self.data.get(self.args.split), self.args.batch)
            model.eval()

        self.run_callbacks("on_val_start")
        dt = tuple(Profile(device=self.device) for _ in self.speed)  # preprocess, inference, loss, postprocess
        bar = TQDM(self.dataloader, desc=self.get_desc(), total=len(self.dataloader))
        self.init_metrics(de_parallel(model))
        self.jdict = []
        for batch_i, batch in enumerate(bar):
            self.run_callbacks("on_val_batch_start")
            self.batch_i = batch_i
            with dt[0]:
                batch = self.preprocess(batch)
            with dt[1]:
                preds = model(batch["img"], augment=augment) if augment else model(batch["img"])
            with dt[2]:
                if self.training:
                    self.loss += model.loss(batch, preds)[1]
            with dt[3]:
                preds = self.postprocess(preds)
            self.update_metrics(preds, batch)
            if self.args.plots and batch_i < 3:
                self.plot_val_samples(batch, batch_i)
                self.plot_predictions(batch, preds, batch_i)
            self.run_callbacks("on_val_batch_end")

        stats = self.get_stats()
        self.check_stats(stats)
        n_images = max(len(self.dataloader.dataset), 1)
        self.speed = dict(zip(self.speed.keys(), (x.t / n_images * 1e3 for x in dt)))
        self.finalize_metrics()
        self.print_results()
        self.run_callbacks("on_val_end")
        if self.training:
            model.float()
            results = {**stats, **trainer.label_loss_items(self.loss.cpu() / len(self.dataloader), prefix="val")}
            return {k: round(float(v), 5) for k, v in results.items()}
        LOGGER.info(
            "Speed: %.1fms preprocess, %.1fms inference, %.1fms loss, %.1fms postprocess per image"
            % tuple(self.speed.values())
        )
        if self.args.save_json and self.jdict:
            with open(str(self.save_dir / "predictions.json"), "w", encoding="utf-8") as f:
                LOGGER.info(f"Saving {f.name}...")
                json.dump(self.jdict, f)
            stats = self.eval_json(stats)
        if self.args.plots or self.args.save_json:
            LOGGER.info(f"Results saved to {colorstr('bold', self.save_dir)}")
        return stats

    def _load_model(self, model: nn.Module | str | Path) -> nn.Module:
        """An eval-ready model on the validation device, from a module or a checkpoint file."""
        self.device = select_device(self.args.device, self.args.batch, verbose=False)
        if isinstance(model, nn.Module):
            model = model.to(self.device)
        elif str(model).endswith(".pt"):
            from ultralytics.nn.tasks import attempt_load_one_weight

            model, _ = attempt_load_one_weight(model, device=self.device, fuse=True)
        else:
            # Exported formats (ONNX, TorchScript) go through the multi-backend wrapper.
            from ultralytics.nn.autobackend import AutoBackend

            model = AutoBackend(
                weights=model,
                device=self.device,
                dnn=self.args.dnn,
                data=self.args.data,
                fp16=self.args.half,
            )
            self.device = model.device
            self.args.half = model.fp16
            return model
        self.args.half = self.args.half and self.device.type == "cuda"
        return model.half() if self.args.half else model.float()

    def _check_dataset(self) -> dict:
        """The dataset dict for `data`; only dataset yaml files are accepted."""
        if str(self.args.data).split(".")[-1] not in {"yaml", "yml"}:
            raise FileNotFoundError(
                f"Dataset '{self.args.data}' for task={self.args.task} not found ❌: pass a dataset yaml, "
                "e.g. data=shapes.yaml"
            )
        from ultralytics.data.utils import check_det_dataset

        return check_det_dataset(self.args.data)

    def match_predictions(
        self,
        pred_classes: torch.Tensor,
        true_classes: torch.Tensor,
        iou: torch.Tensor,
        use_scipy: bool = False,
    ) -> torch.Tensor:
        """(N, 10) bool: is each prediction a true positive at each IoU threshold in `self.iouv`.

        Args:
            pred_classes: (N,) predicted class ids.
            true_classes: (M,) ground-truth class ids.
            iou: (M, N) IoU of every ground truth with every prediction.
        """
        return match_predictions(pred_classes, true_classes, iou, self.iouv, use_scipy=use_scipy)

    def get_dataloader(self, dataset_path: str, batch_size: int):
        raise NotImplementedError(f"{type(self).__name__} must implement get_dataloader()")

    def build_dataset(self, img_path: str, mode: str = "val", batch: int | None = None):
        raise NotImplementedError(f"{type(self).__name__} must implement build_dataset()")

    def preprocess(self, batch: dict) -> dict:
        return batch

    def postprocess(self, preds: Any) -> Any:
        return preds

    def init_metrics(self, model: nn.Module) -> None:
        pass

    def update_metrics(self, preds: Any, batch: dict) -> None:
        pass

    def finalize_metrics(self) -> None:
        pass

    def get_stats(self) -> dict:
        return {}

    def check_stats(self, stats: dict) -> None:
        pass

    def print_results(self) -> None:
        pass

    def get_desc(self) -> str:
        return ""

    @property
    def metric_keys(self) -> list[str]:
        return []

    def on_plot(self, name: str | Path, data: Any = None) -> None:
        """Remember a written plot (for callbacks and loggers)."""
        import time

        self.plots[Path(name)] = {"data": data, "timestamp": time.time()}

    def plot_val_samples(self, batch: dict, ni: int) -> None:
        pass

    def plot_predictions(self, batch: dict, preds: Any, ni: int) -> None:
        pass

    def pred_to_json(self, preds: torch.Tensor, filename: str) -> None:
        pass

    def eval_json(self, stats: dict) -> dict:
        return stats


class DetectionValidator(BaseValidator):
    """Box detection metrics: P, R, mAP50 and mAP50-95 over IoU thresholds 0.50:0.05:0.95.

    Subclasses convert predictions and labels to original-image pixels in `_prepare_batch` and
    `_prepare_pred` (RT-DETR stretches images, so x and y scale separately there).
    """

    def __init__(
        self,
        dataloader=None,
        save_dir: Path | None = None,
        pbar: Any = None,
        args: Any = None,
        _callbacks: dict | None = None,
    ):
        super().__init__(dataloader, save_dir, pbar, args, _callbacks)
        self.nt_per_class = None
        self.nt_per_image = None
        self.is_coco = False
        self.class_map = None
        self.args.task = "detect"
        self.metrics = DetMetrics(save_dir=self.save_dir, on_plot=self.on_plot)
        self.iouv = torch.linspace(0.5, 0.95, 10)
        self.niou = self.iouv.numel()

    def preprocess(self, batch: dict) -> dict:
        """uint8 images to float in [0, 1] (half on CUDA with AMP), targets to the device."""
        batch["img"] = batch["img"].to(self.device, non_blocking=self.device.type == "cuda")
        batch["img"] = (batch["img"].half() if self.args.half else batch["img"].float()) / 255
        for k in ("batch_idx", "cls", "bboxes"):
            batch[k] = batch[k].to(self.device)
        return batch

    def init_metrics(self, model: nn.Module) -> None:
        names = model.names
        self.names = names if isinstance(names, dict) else dict(enumerate(names))
        self.nc = len(self.names)
        self.class_map = list(range(1, self.nc + 1))  # COCO-style 1-based category ids in predictions.json
        self.metrics.names = self.names
        self.metrics.plot = self.args.plots
        self.confusion_matrix = ConfusionMatrix(nc=self.nc, conf=self.args.conf)
        self.seen = 0
        self.jdict = []
        self.stats = dict(tp=[], conf=[], pred_cls=[], target_cls=[], target_img=[])

    def get_desc(self) -> str:
        """Header of the results table."""
        return ("%22s" + "%11s" * 6) % ("Class", "Images", "Instances", "Box(P", "R", "mAP50", "mAP50-95)")

    def _prepare_batch(self, si: int, batch: dict) -> dict:
        raise NotImplementedError(f"{type(self).__name__} must implement _prepare_batch()")

    def _prepare_pred(self, pred: torch.Tensor, pbatch: dict) -> torch.Tensor:
        raise NotImplementedError(f"{type(self).__name__} must implement _prepare_pred()")

    def update_metrics(self, preds: list[torch.Tensor], batch: dict) -> None:
        """Match each image's predictions (N, 6: xyxy, conf, cls) against its labels."""
        for si, pred in enumerate(preds):
            self.seen += 1
            npr = len(pred)
            stat = dict(
                conf=torch.zeros(0, device=self.device),
                pred_cls=torch.zeros(0, device=self.device),
                tp=torch.zeros(npr, self.niou, dtype=torch.bool, device=self.device),
            )
            pbatch = self._prepare_batch(si, batch)
            cls, bbox = pbatch.pop("cls"), pbatch.pop("bbox")
            nl = len(cls)
            stat["target_cls"] = cls
            stat["target_img"] = cls.unique()
            if npr == 0:
                if nl:
                    for k in self.stats.keys():
                        self.stats[k].append(stat[k])
                    if self.args.plots:
                        self.confusion_matrix.process_batch(detections=None, gt_bboxes=bbox, gt_cls=cls)
                continue

            if self.args.single_cls:
                pred[:, 5] = 0
            predn = self._prepare_pred(pred, pbatch)
            stat["conf"] = predn[:, 4]
            stat["pred_cls"] = predn[:, 5]
            if nl:
                stat["tp"] = self._process_batch(predn, bbox, cls)
            if self.args.plots:
                self.confusion_matrix.process_batch(predn, bbox, cls)
            for k in self.stats.keys():
                self.stats[k].append(stat[k])

            if self.args.save_json:
                self.pred_to_json(predn, batch["im_file"][si])
            if self.args.save_txt:
                self.save_one_txt(
                    predn,
                    self.args.save_conf,
                    pbatch["ori_shape"],
                    self.save_dir / "labels" / f"{Path(batch['im_file'][si]).stem}.txt",
                )

    def _process_batch(self, detections: torch.Tensor, gt_bboxes: torch.Tensor, gt_cls: torch.Tensor) -> torch.Tensor:
        """(N, 10) true-positive flags for detections (N, 6) against labels (M, 4) xyxy and (M,) classes."""
        iou = box_iou(gt_bboxes, detections[:, :4])
        return self.match_predictions(detections[:, 5], gt_cls, iou)

    def finalize_metrics(self) -> None:
        self.metrics.speed = self.speed
        self.metrics.confusion_matrix = self.confusion_matrix

    def get_stats(self) -> dict[str, float]:
        """Concatenate the per-image statistics and compute P, R, mAP50, mAP50-95 and fitness."""
        stats = {k: torch.cat(v, 0).cpu().numpy() for k, v in self.stats.items()} if self.stats["tp"] else {}
        target_cls = stats.get("target_cls", np.zeros(0)).astype(int)
        target_img = stats.pop("target_img", np.zeros(0)).astype(int)
        self.nt_per_class = np.bincount(target_cls, minlength=self.nc)
        self.nt_per_image = np.bincount(target_img, minlength=self.nc)
        if len(stats) and stats["tp"].any():
            self.metrics.process(**stats)
        return self.metrics.results_dict

    def print_results(self) -> None:
        """The 'all' row, one row per class (standalone, several classes), and the confusion matrix."""
        pf = "%22s" + "%11i" * 2 + "%11.3g" * len(self.metrics.keys)
        LOGGER.info(pf % ("all", self.seen, self.nt_per_class.sum(), *self.metrics.mean_results()))
        if self.nt_per_class.sum() == 0:
            LOGGER.warning(f"WARNING ⚠️ no labels found in {self.args.task} set, can not compute metrics without labels")
        if self.args.verbose and not self.training and self.nc > 1 and len(self.stats):
            for i, c in enumerate(self.metrics.ap_class_index):
                LOGGER.info(pf % (self.names[c], self.nt_per_image[c], self.nt_per_class[c], *self.metrics.class_result(i)))
        if self.args.plots:
            for normalize in True, False:
                self.confusion_matrix.plot(
                    save_dir=self.save_dir,
                    names=self.names.values(),
                    normalize=normalize,
                    on_plot=self.on_plot,
                )

    def get_dataloader(self, dataset_path: str, batch_size: int):
        """An unshuffled DataLoader over `dataset_path`."""
        from ultralytics.data import build_dataloader

        dataset = self.build_dataset(dataset_path, batch=batch_size, mode="val")
        return build_dataloader(dataset, batch_size, self.args.workers, shuffle=False, rank=-1)

    def plot_val_samples(self, batch: dict, ni: int) -> None:
        """val_batch{ni}_labels.jpg."""
        from ultralytics.utils.plotting import plot_images

        plot_images(
            batch["img"],
            batch["batch_idx"],
            batch["cls"].squeeze(-1),
            batch["bboxes"],
            paths=batch["im_file"],
            fname=self.save_dir / f"val_batch{ni}_labels.jpg",
            names=self.names,
            on_plot=self.on_plot,
        )

    def plot_predictions(self, batch: dict, preds: list[torch.Tensor], ni: int) -> None:
        """val_batch{ni}_pred.jpg."""
        from ultralytics.utils.plotting import output_to_target, plot_images

        plot_images(
            batch["img"],
            *output_to_target(preds, max_det=self.args.max_det),
            paths=batch["im_file"],
            fname=self.save_dir / f"val_batch{ni}_pred.jpg",
            names=self.names,
            on_plot=self.on_plot,
        )

    def save_one_txt(self, predn: torch.Tensor, save_conf: bool, shape: tuple[int, int], file: Path) -> None:
        """One `cls xc yc w h [conf]` line per prediction, normalised to the original image."""
        h, w = int(shape[0]), int(shape[1])
        xywhn = ops.xyxy2xywhn(predn[:, :4].clone(), w=w, h=h)
        lines = []
        for box, conf, cls in zip(xywhn.tolist(), predn[:, 4].tolist(), predn[:, 5].tolist()):
            row = (int(cls), *box, conf) if save_conf else (int(cls), *box)
            lines.append(("%g " * len(row)).rstrip() % row)
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")

    def pred_to_json(self, predn: torch.Tensor, filename: str) -> None:
        """COCO result entries: image_id, category_id, bbox as [x, y, w, h] pixels, score."""
        stem = Path(filename).stem
        image_id = int(stem) if stem.isnumeric() else stem
        box = ops.xyxy2ltwh(predn[:, :4])
        for p, b in zip(predn.tolist(), box.tolist()):
            self.jdict.append(
                {
                    "image_id": image_id,
                    "category_id": self.class_map[int(p[5])],
                    "bbox": [round(x, 3) for x in b],
                    "score": round(p[4], 5),
                }
            )

    @property
    def metric_keys(self) -> list[str]:
        return self.metrics.keys
