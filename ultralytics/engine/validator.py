"""The validation engine: `BaseValidator` runs a model over a split, `DetectionValidator` scores boxes.

Usage:
    $ yolo val model=runs/detect/train/weights/best.pt data=shapes.yaml imgsz=640

During training the trainer calls ``validator(trainer)`` once per epoch with its EMA model; on its
own, ``validator(model=...)`` takes an nn.Module, a checkpoint path or an exported model.

One run, in order: set-up (from the trainer, or from args when standalone), ``on_val_start``,
then for every batch ``on_val_batch_start`` -> preprocess -> forward -> (loss) -> postprocess ->
update_metrics -> (plots of the first three batches) -> ``on_val_batch_end``; then get_stats,
finalize_metrics, print_results and ``on_val_end``. Subclasses fill in the hooks.
"""

from __future__ import annotations

import json
import time
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
from ultralytics.utils.precision import BF16_AMP, bf16_autocast, choose_cpu_bf16, to_channels_last
from ultralytics.utils.torch_utils import (
    de_parallel,
    select_device,
    smart_inference_mode,
)

PHASES = ("preprocess", "inference", "loss", "postprocess")  # timed per batch; `speed` keeps this order
# Dataset yaml keys that name image splits (check_det_dataset resolves these to absolute paths).
_SPLIT_KEYS = ("train", "val", "test", "minival")
IN_PROCESS_LOADING = {"cpu", "mps"}  # devices where dataloader worker processes only slow validation down
PLOTTED_BATCHES = 3  # label/prediction mosaics are drawn for this many batches


class BaseValidator(EngineComponent):
    """Runs a model over a dataloader and collects metrics, speed, plots and optional JSON.

    Args:
        dataloader: the loader to validate on; built from `data`/`split` when None.
        save_dir: folder for plots and JSON; a new runs/detect/val* folder when None.
        pbar: unused, kept for upstream compatibility.
        args: configuration overrides (dict or namespace).
        _callbacks: event -> [callables] to start from instead of the defaults.

    Until a run sets them, the run state (data, device, names, nc, seen, stats, jdict, ...) is None.
    """

    stride = None
    data: dict | None = None
    device: torch.device | None = None
    batch_i: int | None = None
    names: dict[int, str] | None = None
    nc: int | None = None
    seen: int | None = None
    stats: dict | None = None
    confusion_matrix: ConfusionMatrix | None = None
    iouv: torch.Tensor | None = None
    jdict: list | None = None
    bf16 = False  # CPU bfloat16 autocast (half=True on a CPU with native bf16, or a run trained with amp=bf16)

    def __init__(
        self,
        dataloader=None,
        save_dir: Path | None = None,
        pbar: Any = None,
        args: Any = None,
        _callbacks: dict | None = None,
    ):
        self._configure(overrides=args, _callbacks=_callbacks, integrations=False)
        self.dataloader, self.pbar = dataloader, pbar
        self.training = True
        self.speed = dict.fromkeys(PHASES, 0.0)  # ms per image
        self.plots: dict[Path, dict] = {}

        self.save_dir = Path(save_dir) if save_dir else get_save_dir(self.args)
        if save_dir:
            # A folder the caller named is theirs to have at once; one picked here waits until the run's
            # inputs are checked (see __call__), so a rejected run leaves no empty runs/detect/valN behind.
            self._make_output_dir()
        # Validation scores every prediction, however unsure, unless the user set a threshold.
        self.args.conf = 0.001 if self.args.conf is None else self.args.conf
        self.args.imgsz = check_imgsz(self.args.imgsz, max_dim=1)

    # ----------------------------------------------------------------------------- the run

    @smart_inference_mode()
    def __call__(self, trainer: Any = None, model: nn.Module | str | Path | None = None) -> dict[str, float]:
        """Validate; returns {metric: value} (plus val losses, rounded, when called by a trainer)."""
        self.training = trainer is not None
        # Test-time augmentation only ever applies to a standalone run.
        augment = bool(self.args.augment) and not self.training
        model = self._setup_from_trainer(trainer) if self.training else self._setup_standalone(model)
        self._make_output_dir()

        self.run_callbacks("on_val_start")
        timers = self._run_batches(model, augment)
        stats = self.get_stats()
        self.check_stats(stats)
        n_images = max(len(self.dataloader.dataset), 1)
        self.speed = {phase: timer.t / n_images * 1e3 for phase, timer in timers.items()}
        self.finalize_metrics()
        self.print_results()
        self.run_callbacks("on_val_end")

        if self.training:
            return self._with_val_losses(stats, trainer, model)
        return self._report_standalone(stats)

    def _setup_from_trainer(self, trainer: Any) -> nn.Module:
        """Borrow the trainer's device, data and EMA model; plots only when this may be the last epoch."""
        self.device = trainer.device
        self.data = trainer.data
        self.args.half = self.device.type == "cuda" and trainer.amp
        self.bf16 = choose_cpu_bf16(trainer.args.amp == BF16_AMP, self.device, what="amp=bf16")
        ema_model = trainer.ema.ema
        model = self._in_precision(ema_model if ema_model is not None else trainer.model)
        self.loss = torch.zeros_like(trainer.loss_items, device=trainer.device)  # summed val loss items
        final_epoch = trainer.epoch == trainer.epochs - 1
        self.args.plots = bool(self.args.plots and (trainer.stopper.possible_stop or final_epoch))
        model.eval()
        return model

    def _setup_standalone(self, model: nn.Module | str | Path | None) -> nn.Module:
        """Load the model, resolve the dataset and build the dataloader from `self.args`."""
        if model is None and str(self.args.model).endswith(".yaml"):
            LOGGER.warning("WARNING ⚠️ a model yaml has no trained weights: expect an mAP of 0.")
        callbacks.add_integration_callbacks(self)
        model = self._load_model(self.args.model if model is None else model)
        stride = int(torch.as_tensor(model.stride).max()) if hasattr(model, "stride") else 32
        self.args.imgsz = check_imgsz(self.args.imgsz, stride=stride)
        self.data = self._check_dataset()
        if self.device.type in IN_PROCESS_LOADING:
            self.args.workers = 0
        self.args.rect = False
        self.stride = model.stride
        if self.dataloader is None:
            self.dataloader = self.get_dataloader(self._split_source(), self.args.batch)
        model.eval()
        return model

    def _make_output_dir(self) -> None:
        """The run folder (its labels/ subfolder with save_txt), created if it is not there yet."""
        out_dir = self.save_dir / "labels" if self.args.save_txt else self.save_dir
        out_dir.mkdir(parents=True, exist_ok=True)

    def _split_source(self) -> str | list[str]:
        """Images of the `split` the user asked for; raises naming the dataset and its splits when absent."""
        wanted = self.args.split
        source = self.data.get(wanted) if wanted in _SPLIT_KEYS else None
        if source:
            return source
        present = [key for key in _SPLIT_KEYS if self.data.get(key)]
        where = self.data.get("yaml_file", self.args.data)
        raise ValueError(
            f"split='{wanted}' is not a split of dataset '{where}': that yaml gives the splits {present}. "
            f"Pass one of those (split=val is the default), or add a '{wanted}:' entry to the yaml."
        )

    def _run_batches(self, model: nn.Module, augment: bool) -> dict[str, Profile]:
        """Every batch through the model and the metric hooks; returns the phase timers."""
        timers = {phase: Profile(device=self.device) for phase in PHASES}
        progress = TQDM(self.dataloader, desc=self.get_desc(), total=len(self.dataloader))
        self.init_metrics(de_parallel(model))
        self.jdict = []
        for batch_i, batch in enumerate(progress):
            self.run_callbacks("on_val_batch_start")
            self.batch_i = batch_i
            with timers["preprocess"]:
                batch = self.preprocess(batch)
            with timers["inference"], bf16_autocast(self.bf16):
                # Only pass `augment` when asked: exported models take the image alone.
                preds = model(batch["img"], augment=True) if augment else model(batch["img"])
            with timers["loss"]:
                if self.training:
                    _, loss_items = model.loss(batch, preds)
                    self.loss += loss_items
            with timers["postprocess"]:
                preds = self.postprocess(preds)
            self.update_metrics(preds, batch)
            if self.args.plots and batch_i < PLOTTED_BATCHES:
                self.plot_val_samples(batch, batch_i)
                self.plot_predictions(batch, preds, batch_i)
            self.run_callbacks("on_val_batch_end")
        return timers

    def _with_val_losses(self, stats: dict, trainer: Any, model: nn.Module) -> dict[str, float]:
        """Metrics plus the mean val loss items, rounded to 5 decimals for results.csv."""
        model.float()
        mean_loss = self.loss.cpu() / len(self.dataloader)
        merged = {**stats, **trainer.label_loss_items(mean_loss, prefix="val")}
        return {key: round(float(value), 5) for key, value in merged.items()}

    def _report_standalone(self, stats: dict) -> dict:
        """Log the speed line, write predictions.json when asked, and say where the outputs went."""
        per_phase = ", ".join(f"{self.speed[phase]:.1f}ms {phase}" for phase in PHASES)
        LOGGER.info(f"Speed: {per_phase} per image")
        if self.args.save_json:
            stats = self._save_json(stats)
        if self.args.plots or self.args.save_json:
            LOGGER.info(f"Plots and predictions are in {colorstr('bold', self.save_dir)}")
        return stats

    def _save_json(self, stats: dict) -> dict:
        """predictions.json, then `eval_json`'s stats; nothing when no image had a prediction."""
        if not self.jdict:
            return stats
        json_file = self.save_dir / "predictions.json"
        LOGGER.info(f"Writing {len(self.jdict)} predictions to {json_file}")
        json_file.write_text(json.dumps(self.jdict), encoding="utf-8")
        return self.eval_json(stats)

    def _in_precision(self, model: nn.Module) -> nn.Module:
        """`model` in half precision when `args.half` is on, else in float32."""
        return model.half() if self.args.half else model.float()

    def _load_model(self, model: nn.Module | str | Path) -> nn.Module:
        """An eval-ready model on the validation device, from a module, a checkpoint or an exported file."""
        self.device = select_device(self.args.device, self.args.batch, verbose=False)
        is_module = isinstance(model, nn.Module)
        if not is_module and not str(model).endswith(".pt"):
            return self._load_exported(model)
        loaded = model.to(self.device) if is_module else self._load_checkpoint(model)
        self.bf16 = choose_cpu_bf16(bool(self.args.half), self.device)  # half=True on CPU: bf16 where native
        self.args.half = bool(self.args.half) and self.device.type == "cuda"  # float16 only on CUDA
        loaded = self._in_precision(loaded)
        return to_channels_last(loaded) if self.bf16 else loaded

    def _load_checkpoint(self, weights: str | Path) -> nn.Module:
        """The fused model of a .pt checkpoint, on the validation device."""
        from ultralytics.nn.tasks import attempt_load_one_weight

        model, _ = attempt_load_one_weight(weights, device=self.device, fuse=True)
        return model

    def _load_exported(self, weights: str | Path) -> nn.Module:
        """ONNX, TorchScript and the other export formats, through the multi-backend wrapper."""
        from ultralytics.nn.autobackend import AutoBackend

        backend = AutoBackend(
            weights=weights,
            device=self.device,
            dnn=self.args.dnn,
            data=self.args.data,
            fp16=self.args.half,
        )
        self.device, self.args.half = backend.device, backend.fp16
        return backend

    def _check_dataset(self) -> dict:
        """The dataset dict for `data`; only dataset yaml files are accepted."""
        suffix = Path(str(self.args.data)).suffix.lower()
        if suffix not in {".yaml", ".yml"}:
            raise FileNotFoundError(
                f"Dataset '{self.args.data}' for task={self.args.task} not found ❌: validation needs a "
                "dataset yaml (.yaml or .yml), e.g. data=shapes.yaml"
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

    # ------------------------------------------------------------------ hooks for subclasses

    def get_dataloader(self, dataset_path: str, batch_size: int):
        """The loader over `dataset_path`; every task-specific validator provides one."""
        raise NotImplementedError(f"{type(self).__name__} must implement get_dataloader()")

    def build_dataset(self, img_path: str, mode: str = "val", batch: int | None = None):
        """The dataset over `img_path`; every task-specific validator provides one."""
        raise NotImplementedError(f"{type(self).__name__} must implement build_dataset()")

    def preprocess(self, batch: dict) -> dict:
        """The batch as the model takes it; unchanged here."""
        return batch

    def postprocess(self, preds: Any) -> Any:
        """Raw model output -> per-image predictions; unchanged here."""
        return preds

    def init_metrics(self, model: nn.Module) -> None:
        """Reset the statistics before the first batch."""

    def update_metrics(self, preds: Any, batch: dict) -> None:
        """Add one batch of predictions to the statistics."""

    def finalize_metrics(self) -> None:
        """Attach speed and other run results to the metrics object."""

    def get_stats(self) -> dict:
        """{metric: value} over the whole split."""
        return {}

    def check_stats(self, stats: dict) -> None:
        """Inspect the statistics before they are printed; nothing to check here."""

    def print_results(self) -> None:
        """Log the results table."""

    def get_desc(self) -> str:
        """Header of the results table, shown on the progress bar."""
        return ""

    @property
    def metric_keys(self) -> list[str]:
        """Names of the metrics `get_stats` returns."""
        return []

    def on_plot(self, name: str | Path, data: Any = None) -> None:
        """Remember a written plot (for callbacks and loggers)."""
        self.plots[Path(name)] = {"data": data, "timestamp": time.time()}

    def plot_val_samples(self, batch: dict, ni: int) -> None:
        """Draw the labels of batch `ni`."""

    def plot_predictions(self, batch: dict, preds: Any, ni: int) -> None:
        """Draw the predictions on batch `ni`."""

    def pred_to_json(self, preds: torch.Tensor, filename: str) -> None:
        """Collect one image's predictions for predictions.json."""

    def eval_json(self, stats: dict) -> dict:
        """Score predictions.json with an external tool; returns `stats` unchanged here."""
        return stats


class DetectionValidator(BaseValidator):
    """Box detection metrics: P, R, mAP50 and mAP50-95 over IoU thresholds 0.50:0.05:0.95.

    Subclasses convert predictions and labels to original-image pixels in `_prepare_batch` and
    `_prepare_pred` (RT-DETR stretches images, so x and y scale separately there).
    """

    # Per-image statistics gathered by update_metrics and concatenated by get_stats.
    STAT_KEYS = ("tp", "conf", "pred_cls", "target_cls", "target_img")

    def __init__(
        self,
        dataloader=None,
        save_dir: Path | None = None,
        pbar: Any = None,
        args: Any = None,
        _callbacks: dict | None = None,
    ):
        super().__init__(dataloader=dataloader, save_dir=save_dir, pbar=pbar, args=args, _callbacks=_callbacks)
        self.args.task = "detect"
        self.nt_per_class = self.nt_per_image = None  # label counts per class: all labels / images holding it
        self.is_coco = False
        self.class_map = None
        self.metrics = DetMetrics(save_dir=self.save_dir, on_plot=self.on_plot)
        self.iouv = torch.linspace(0.5, 0.95, 10)  # the ten COCO IoU thresholds
        self.niou = len(self.iouv)

    def preprocess(self, batch: dict) -> dict:
        """uint8 images to float in [0, 1] (half on CUDA with AMP), targets to the device."""
        images = batch["img"].to(self.device, non_blocking=self.device.type == "cuda")
        batch["img"] = (images.half() if self.args.half else images.float()) / 255
        for key in ("batch_idx", "cls", "bboxes"):
            batch[key] = batch[key].to(self.device)
        return batch

    def init_metrics(self, model: nn.Module) -> None:
        """Class names from the model, a fresh confusion matrix and empty statistics."""
        names = model.names
        self.names = dict(names) if isinstance(names, dict) else dict(enumerate(names))
        self.nc = len(self.names)
        self.class_map = [c + 1 for c in range(self.nc)]  # COCO-style 1-based category ids in predictions.json
        self.metrics.names = self.names
        self.metrics.plot = self.args.plots
        self.confusion_matrix = ConfusionMatrix(nc=self.nc, conf=self.args.conf)
        self.seen = 0
        self.jdict = []
        self.stats = {key: [] for key in self.STAT_KEYS}

    def get_desc(self) -> str:
        """Header of the results table."""
        columns = ("Images", "Instances", "Box(P", "R", "mAP50", "mAP50-95)")
        return f"{'Class':>22}" + "".join(f"{c:>11}" for c in columns)

    def _prepare_batch(self, si: int, batch: dict) -> dict:
        raise NotImplementedError(f"{type(self).__name__} must implement _prepare_batch()")

    def _prepare_pred(self, pred: torch.Tensor, pbatch: dict) -> torch.Tensor:
        raise NotImplementedError(f"{type(self).__name__} must implement _prepare_pred()")

    # -------------------------------------------------------------------- per-image scoring

    def update_metrics(self, preds: list[torch.Tensor], batch: dict) -> None:
        """Match each image's predictions (N, 6: xyxy, conf, cls) against its labels."""
        for si, pred in enumerate(preds):
            self.seen += 1
            labels = self._prepare_batch(si, batch)
            true_cls, true_boxes = labels.pop("cls"), labels.pop("bbox")  # (M,), (M, 4) xyxy
            if len(pred) == 0:
                self._add_unanswered(true_cls, true_boxes)
                continue
            if self.args.single_cls:
                pred[:, 5] = 0  # in place: the prediction plots show the single class too
            predn = self._prepare_pred(pred, labels)  # (N, 6) in original-image pixels
            self._add_scored(predn, true_cls, true_boxes)
            self._write_outputs(predn, labels["ori_shape"], batch["im_file"][si])

    def _add_stats(self, tp: torch.Tensor, conf: torch.Tensor, pred_cls: torch.Tensor, true_cls: torch.Tensor) -> None:
        """One image's rows of the statistics; target_img lists each class present once."""
        row = {"tp": tp, "conf": conf, "pred_cls": pred_cls, "target_cls": true_cls, "target_img": true_cls.unique()}
        for key in self.STAT_KEYS:
            self.stats[key].append(row[key])

    def _add_unanswered(self, true_cls: torch.Tensor, true_boxes: torch.Tensor) -> None:
        """An image without predictions: its labels all count as missed (nothing to add without labels)."""
        if len(true_cls) == 0:
            return
        nothing = torch.zeros(0, device=self.device)
        self._add_stats(torch.zeros(0, self.niou, dtype=torch.bool, device=self.device), nothing, nothing, true_cls)
        if self.args.plots:
            self.confusion_matrix.process_batch(detections=None, gt_bboxes=true_boxes, gt_cls=true_cls)

    def _add_scored(self, predn: torch.Tensor, true_cls: torch.Tensor, true_boxes: torch.Tensor) -> None:
        """An image with predictions: true-positive flags per threshold (all False without labels)."""
        if len(true_cls):
            tp = self._process_batch(predn, true_boxes, true_cls)
        else:
            tp = torch.zeros(len(predn), self.niou, dtype=torch.bool, device=self.device)
        if self.args.plots:
            self.confusion_matrix.process_batch(predn, true_boxes, true_cls)
        self._add_stats(tp, predn[:, 4], predn[:, 5], true_cls)

    def _write_outputs(self, predn: torch.Tensor, ori_shape: tuple[int, int], im_file: str) -> None:
        """predictions.json entries and labels/<stem>.txt, when asked for."""
        if self.args.save_json:
            self.pred_to_json(predn, im_file)
        if self.args.save_txt:
            txt_file = self.save_dir / "labels" / f"{Path(im_file).stem}.txt"
            self.save_one_txt(predn, self.args.save_conf, ori_shape, txt_file)

    def _process_batch(self, detections: torch.Tensor, gt_bboxes: torch.Tensor, gt_cls: torch.Tensor) -> torch.Tensor:
        """(N, 10) true-positive flags for detections (N, 6) against labels (M, 4) xyxy and (M,) classes."""
        overlaps = box_iou(gt_bboxes, detections[:, :4])  # (M, N)
        return self.match_predictions(detections[:, 5], gt_cls, overlaps)

    # --------------------------------------------------------------------- split-level results

    def finalize_metrics(self) -> None:
        """Hand speed and the confusion matrix to the metrics object."""
        self.metrics.speed = self.speed
        self.metrics.confusion_matrix = self.confusion_matrix

    def get_stats(self) -> dict[str, float]:
        """Concatenate the per-image statistics and compute P, R, mAP50, mAP50-95 and fitness."""
        merged = {}
        if self.stats["tp"]:
            merged = {key: torch.cat(parts, 0).cpu().numpy() for key, parts in self.stats.items()}
        images_with = merged.pop("target_img", np.zeros(0)).astype(int)
        labels_of = merged.get("target_cls", np.zeros(0)).astype(int)
        self.nt_per_class = np.bincount(labels_of, minlength=self.nc)
        self.nt_per_image = np.bincount(images_with, minlength=self.nc)
        # Without a single true positive every metric stays 0 and the curves stay unplotted.
        if merged and merged["tp"].any():
            self.metrics.process(**merged)
        return self.metrics.results_dict

    def print_results(self) -> None:
        """The 'all' row, one row per class (standalone, several classes), and the confusion matrix."""
        row = "%22s%11i%11i" + "%11.3g" * len(self.metrics.keys)
        n_labels = self.nt_per_class.sum()
        LOGGER.info(row % ("all", self.seen, n_labels, *self.metrics.mean_results()))
        if n_labels == 0:
            LOGGER.warning(f"WARNING ⚠️ the {self.args.task} split has no labels, so no metric can be computed")
        per_class = self.args.verbose and not self.training and self.nc > 1 and bool(self.stats)
        for i, c in enumerate(self.metrics.ap_class_index if per_class else []):
            counts = (self.nt_per_image[c], self.nt_per_class[c])
            LOGGER.info(row % (self.names[c], *counts, *self.metrics.class_result(i)))
        if self.args.plots:
            self._plot_confusion()

    def _plot_confusion(self) -> None:
        """confusion_matrix_normalized.png, then confusion_matrix.png (raw counts)."""
        matrix = self.confusion_matrix
        for normalize in (True, False):
            matrix.plot(normalize=normalize, save_dir=self.save_dir, names=self.names.values(), on_plot=self.on_plot)

    def get_dataloader(self, dataset_path: str, batch_size: int):
        """An unshuffled DataLoader over `dataset_path`."""
        from ultralytics.data import build_dataloader

        dataset = self.build_dataset(dataset_path, mode="val", batch=batch_size)
        return build_dataloader(dataset, batch=batch_size, workers=self.args.workers, shuffle=False, rank=-1)

    # ---------------------------------------------------------------------------- outputs

    def _mosaic(self, batch: dict, targets: tuple, kind: str, ni: int) -> None:
        """val_batch{ni}_{kind}.jpg: the batch's images with `targets` (batch_idx, cls, xywh[, conf]) drawn."""
        from ultralytics.utils.plotting import plot_images

        plot_images(
            batch["img"],
            *targets,
            paths=batch["im_file"],
            fname=self.save_dir / f"val_batch{ni}_{kind}.jpg",
            names=self.names,
            on_plot=self.on_plot,
        )

    def plot_val_samples(self, batch: dict, ni: int) -> None:
        """val_batch{ni}_labels.jpg."""
        self._mosaic(batch, (batch["batch_idx"], batch["cls"].squeeze(-1), batch["bboxes"]), "labels", ni)

    def plot_predictions(self, batch: dict, preds: list[torch.Tensor], ni: int) -> None:
        """val_batch{ni}_pred.jpg."""
        from ultralytics.utils.plotting import output_to_target

        self._mosaic(batch, output_to_target(preds, max_det=self.args.max_det), "pred", ni)

    def save_one_txt(self, predn: torch.Tensor, save_conf: bool, shape: tuple[int, int], file: Path) -> None:
        """One `cls xc yc w h [conf]` line per prediction, normalised to the original image."""
        height, width = int(shape[0]), int(shape[1])
        boxes = ops.xyxy2xywhn(predn[:, :4].clone(), w=width, h=height).tolist()
        lines = []
        for box, score, cls in zip(boxes, predn[:, 4].tolist(), predn[:, 5].tolist()):
            values = [int(cls), *box] + ([score] if save_conf else [])
            lines.append(" ".join(f"{v:g}" for v in values) + "\n")
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_text("".join(lines), encoding="utf-8")

    def pred_to_json(self, predn: torch.Tensor, filename: str) -> None:
        """COCO result entries: image_id, category_id, bbox as [x, y, w, h] pixels, score."""
        name = Path(filename).stem
        image_id = int(name) if name.isnumeric() else name  # COCO file names are their numeric ids
        ltwh = ops.xyxy2ltwh(predn[:, :4]).tolist()
        for box, score, cls in zip(ltwh, predn[:, 4].tolist(), predn[:, 5].tolist()):
            self.jdict.append(
                {
                    "image_id": image_id,
                    "category_id": self.class_map[int(cls)],
                    "bbox": [round(v, 3) for v in box],
                    "score": round(score, 5),
                }
            )

    @property
    def metric_keys(self) -> list[str]:
        """The four box metric names."""
        return self.metrics.keys
