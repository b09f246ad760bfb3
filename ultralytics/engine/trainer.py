"""The training engine: `BaseTrainer` runs the loop, `DetectionTrainer` adds the detection hooks.

Usage:
    $ yolo train model=rtdetr-l-FocalModulation.yaml data=shapes.yaml epochs=100 imgsz=640 batch=16

A run writes ``<project>/<name>/`` (default ``runs/detect/train``, ``train2``, ...) holding
``args.yaml``, ``results.csv`` (one row per epoch) and ``weights/last.pt`` / ``weights/best.pt``.
"""

from __future__ import annotations

import csv
import gc
import io
import math
import os
import random
import subprocess
import time
import warnings
from copy import copy, deepcopy
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import distributed as dist
from torch import nn, optim

from ultralytics import __version__
from ultralytics.cfg import get_cfg, get_save_dir
from ultralytics.engine.component import EngineComponent
from ultralytics.utils import (
    DEFAULT_CFG,
    LOCAL_RANK,
    LOGGER,
    RANK,
    SETTINGS,
    TQDM,
    callbacks,
    clean_url,
    colorstr,
    yaml_save,
)
from ultralytics.nn.checkpoints import write_atomic
from ultralytics.utils.checks import check_amp, check_file, check_imgsz, print_args
from ultralytics.utils.dist import ddp_cleanup, generate_ddp_command
from ultralytics.utils.files import get_latest_run
from ultralytics.utils.torch_utils import (
    TORCH_2_4,
    EarlyStopping,
    ModelEMA,
    autocast,
    convert_optimizer_state_dict_to_fp16,
    init_seeds,
    one_cycle,
    select_device,
    strip_optimizer,
    torch_distributed_zero_first,
    unset_deterministic,
)

# Optimizer names accepted by `optimizer=`, spelled as upstream prints them.
OPTIMIZERS = ("Adam", "Adamax", "AdamW", "NAdam", "RAdam", "RMSProp", "SGD", "auto")


class BaseTrainer(EngineComponent):
    """A training run: configuration, run folder, model, data, optimizer, loop, checkpoints.

    Subclasses fill in the task hooks (``get_model``, ``get_dataloader``, ``build_dataset``,
    ``get_validator``, ...); the loop itself is task independent.

    Args:
        cfg: default configuration (path, dict or namespace).
        overrides: keys that replace the defaults, e.g. ``{"epochs": 3, "data": "shapes.yaml"}``.
        _callbacks: event -> [callables] to start from instead of the defaults.
    """

    def __init__(
        self,
        cfg: str | Path | dict | Any = DEFAULT_CFG,
        overrides: dict | None = None,
        _callbacks: dict | None = None,
    ):
        self._configure(cfg, overrides, _callbacks)
        self.check_resume(overrides or {})
        self.device = select_device(self.args.device, self.args.batch)
        self.validator = None
        self.metrics = None
        self.plots = {}
        init_seeds(self.args.seed + 1 + RANK, deterministic=self.args.deterministic)

        # Run folder
        self.save_dir = get_save_dir(self.args)
        self.args.name = self.save_dir.name  # the incremented name, e.g. train2
        self.wdir = self.save_dir / "weights"
        if RANK in {-1, 0}:
            self.wdir.mkdir(parents=True, exist_ok=True)
            self.args.save_dir = str(self.save_dir)
            yaml_save(self.save_dir / "args.yaml", vars(self.args))
        self.last, self.best = self.wdir / "last.pt", self.wdir / "best.pt"
        self.save_period = self.args.save_period

        self.batch_size = self.args.batch
        self.epochs = self.args.epochs or 100  # epochs=None is allowed together with time=
        self.start_epoch = 0
        if RANK == -1:
            print_args(vars(self.args))

        # Data loading in the main process is faster on CPU, where the model dominates the time.
        if self.device.type in {"cpu", "mps"}:
            self.args.workers = 0

        self.model = self.args.model
        with torch_distributed_zero_first(LOCAL_RANK):  # rank 0 prepares (e.g. generates) the dataset first
            self.trainset, self.testset = self.get_dataset()
        self.ema = None

        # Optimisation
        self.lf: Callable[[float], float] | None = None
        self.scheduler = None

        # Epoch-level state
        self.best_fitness = None
        self.fitness = None
        self.loss = None
        self.loss_items = None
        self.tloss = None
        self.loss_names = ["Loss"]
        self.csv = self.save_dir / "results.csv"
        self.plot_idx = [0, 1, 2]
        self.stop = False
        self._skip_step = False  # set by a non-finite loss; the next optimizer step is dropped


    # ------------------------------------------------------------------------------------------
    # Callbacks
    # ------------------------------------------------------------------------------------------
    def run_callbacks(self, event: str) -> None:
        for callback in self.callbacks.get(event, []):
            callback(self)

    # ------------------------------------------------------------------------------------------
    # Entry point
    # ------------------------------------------------------------------------------------------
    def _world_size(self) -> int:
        """Number of GPUs the run uses: 0 on CPU/MPS, 1 for one GPU, N for `device=0,1,...`."""
        device = self.args.device
        if isinstance(device, (tuple, list)):
            return len(device)
        if isinstance(device, int):
            return 1
        text = str(device or "").strip().lower()
        if text in {"cpu", "mps"}:
            return 0
        if text:
            return len([x for x in text.replace("cuda:", "").split(",") if x.strip()])
        return 1 if torch.cuda.is_available() else 0

    def train(self) -> None:
        """Train; with several GPUs, relaunch this run as DDP worker processes and wait for them."""
        world_size = self._world_size()
        if world_size > 1 and "LOCAL_RANK" not in os.environ:
            if self.args.rect:
                LOGGER.warning("WARNING ⚠️ 'rect=True' is incompatible with Multi-GPU training, setting 'rect=False'")
                self.args.rect = False
            if self.args.batch < 1.0:
                raise ValueError(
                    f"batch={self.args.batch}: multi-GPU training needs an explicit batch size that is a "
                    f"multiple of the GPU count {world_size}, e.g. batch={world_size * 8}"
                )
            cmd, file = generate_ddp_command(world_size, self)
            try:
                LOGGER.info(f"{colorstr('DDP:')} debug command {' '.join(cmd)}")
                subprocess.run(cmd, check=True)
            finally:
                ddp_cleanup(self, str(file))
        else:
            self._do_train(world_size)

    # ------------------------------------------------------------------------------------------
    # Setup
    # ------------------------------------------------------------------------------------------
    def _setup_scheduler(self) -> None:
        """Learning-rate factor per epoch: linear 1 -> lrf, or a cosine ramp with `cos_lr`."""
        if self.args.cos_lr:
            self.lf = one_cycle(1, self.args.lrf, self.epochs)
        else:
            self.lf = lambda x: max(1 - x / self.epochs, 0) * (1.0 - self.args.lrf) + self.args.lrf
        self.scheduler = optim.lr_scheduler.LambdaLR(self.optimizer, lr_lambda=self.lf)

    def _setup_ddp(self, world_size: int) -> None:
        """Join the process group started by torch.distributed.run (one process per GPU)."""
        torch.cuda.set_device(RANK)
        self.device = torch.device("cuda", RANK)
        os.environ["TORCH_NCCL_BLOCKING_WAIT"] = "1"  # so that a stuck rank times out instead of hanging
        dist.init_process_group(
            backend="nccl" if dist.is_nccl_available() else "gloo",
            timeout=timedelta(seconds=10800),
            rank=RANK,
            world_size=world_size,
        )

    def _freeze_layers(self) -> None:
        """Stop gradients for `freeze` (first N layers, or a list of layer indices)."""
        freeze = self.args.freeze
        if isinstance(freeze, int):
            freeze_list = range(freeze)
        elif isinstance(freeze, (list, tuple)):
            freeze_list = freeze
        elif freeze is None:
            freeze_list = []
        else:
            raise TypeError(f"freeze={freeze!r} is not valid; use an int N (first N layers) or a list of layer indices")
        freeze_layer_names = [f"model.{x}." for x in freeze_list] + [".dfl"]  # DFL weights are fixed by design
        for k, v in self.model.named_parameters():
            if any(x in k for x in freeze_layer_names):
                LOGGER.info(f"Freezing layer '{k}'")
                v.requires_grad = False
            elif not v.requires_grad and v.dtype.is_floating_point:
                LOGGER.info(
                    f"WARNING ⚠️ setting 'requires_grad=True' for frozen layer '{k}'. "
                    "To freeze it, add its layer index to the 'freeze' argument."
                )
                v.requires_grad = True

    def _setup_train(self, world_size: int) -> None:
        """Build everything the loop needs: model on device, AMP, loaders, validator, EMA, optimizer."""
        self.run_callbacks("on_pretrain_routine_start")
        ckpt = self.setup_model()
        self.model = self.model.to(self.device)
        self.set_model_attributes()
        self._freeze_layers()

        # Mixed precision only exists on CUDA; CPU runs never construct a CUDA scaler or autocast.
        cuda = self.device.type == "cuda"
        self.amp = torch.tensor(bool(self.args.amp) and cuda, device=self.device)
        if self.amp and RANK in {-1, 0}:
            callbacks_backup = callbacks.default_callbacks.copy()  # check_amp may run callbacks
            self.amp = torch.tensor(check_amp(self.model), device=self.device)
            callbacks.default_callbacks = callbacks_backup
        if RANK > -1 and world_size > 1:
            dist.broadcast(self.amp, src=0)  # every rank uses rank 0's decision
        self.amp = bool(self.amp)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp)
        if cuda:
            torch.backends.cudnn.benchmark = not self.args.deterministic  # fixed input size: let cuDNN pick kernels
        if world_size > 1:
            self.model = nn.parallel.DistributedDataParallel(self.model, device_ids=[RANK], find_unused_parameters=True)

        gs = max(int(self.model.stride.max() if hasattr(self.model, "stride") else 32), 32)
        self.args.imgsz = check_imgsz(self.args.imgsz, stride=gs, floor=gs, max_dim=1)
        self.stride = gs

        if self.batch_size < 1:
            raise ValueError(
                f"batch={self.batch_size}: automatic batch sizing (batch=-1 or a fraction) is not supported; "
                "pass a positive integer such as batch=16"
            )

        batch_size = self.batch_size // max(world_size, 1)
        self.train_loader = self.get_dataloader(self.trainset, batch_size=batch_size, rank=LOCAL_RANK, mode="train")
        if RANK in {-1, 0}:
            self.test_loader = self.get_dataloader(self.testset, batch_size=batch_size * 2, rank=-1, mode="val")
            self.validator = self.get_validator()
            metric_keys = self.validator.metrics.keys + self.label_loss_items(prefix="val")
            self.metrics = dict(zip(metric_keys, [0] * len(metric_keys)))
            self.ema = ModelEMA(self.model)
            if self.args.plots:
                self.plot_training_labels()

        # Gradients are accumulated to an effective batch of `nbs`, and weight decay scaled to match.
        self.accumulate = max(round(self.args.nbs / self.batch_size), 1)
        weight_decay = self.args.weight_decay * self.batch_size * self.accumulate / self.args.nbs
        iterations = math.ceil(len(self.train_loader.dataset) / max(self.batch_size, self.args.nbs)) * self.epochs
        self.optimizer = self.build_optimizer(
            model=self.model,
            name=self.args.optimizer,
            lr=self.args.lr0,
            momentum=self.args.momentum,
            decay=weight_decay,
            iterations=iterations,
        )
        self._setup_scheduler()
        self.stopper, self.stop = EarlyStopping(patience=self.args.patience), False
        self.resume_training(ckpt)
        self.scheduler.last_epoch = self.start_epoch - 1  # the first scheduler.step() lands on start_epoch
        self.run_callbacks("on_pretrain_routine_end")

    # ------------------------------------------------------------------------------------------
    # Loop
    # ------------------------------------------------------------------------------------------
    def _do_train(self, world_size: int = 1) -> None:
        """The epoch loop: train, validate, log, checkpoint; then the final validation of best.pt."""
        if world_size > 1:
            self._setup_ddp(world_size)
        self._setup_train(world_size)

        nb = len(self.train_loader)
        nw = max(round(self.args.warmup_epochs * nb), 100) if self.args.warmup_epochs > 0 else -1
        last_opt_step = -1
        self.epoch_time = None
        self.epoch_time_start = time.time()
        self.train_time_start = time.time()
        self.run_callbacks("on_train_start")
        LOGGER.info(
            f"Image sizes {self.args.imgsz} train, {self.args.imgsz} val\n"
            f"Using {self.train_loader.num_workers * (world_size or 1)} dataloader workers\n"
            f"Logging results to {colorstr('bold', self.save_dir)}\n"
            f"Starting training for " + (f"{self.args.time} hours..." if self.args.time else f"{self.epochs} epochs...")
        )
        if self.args.close_mosaic:
            base_idx = (self.epochs - self.args.close_mosaic) * nb
            self.plot_idx.extend([base_idx, base_idx + 1, base_idx + 2])
        epoch = self.start_epoch
        self.optimizer.zero_grad()
        try:
            while True:
                self.epoch = epoch
                self.run_callbacks("on_train_epoch_start")
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # "scheduler.step() before optimizer.step()" is intended
                    self.scheduler.step()

                self.model.train()
                if RANK != -1:
                    self.train_loader.sampler.set_epoch(epoch)
                pbar = enumerate(self.train_loader)
                if epoch == (self.epochs - self.args.close_mosaic):
                    self._close_dataloader_mosaic()
                    self.train_loader.reset()

                if RANK in {-1, 0}:
                    LOGGER.info(self.progress_string())
                    pbar = TQDM(enumerate(self.train_loader), total=nb)
                self.tloss = None
                for i, batch in pbar:
                    self.run_callbacks("on_train_batch_start")
                    ni = i + nb * epoch
                    if ni <= nw:
                        self._warmup(ni, nw, epoch)

                    with autocast(self.amp):
                        batch = self.preprocess_batch(batch)
                        self.loss, self.loss_items = self.model(batch)
                        if RANK != -1:
                            self.loss *= world_size  # DDP averages gradients; keep the sum-over-ranks scale
                    if self._loss_is_finite(epoch, i, world_size):
                        self.tloss = (
                            (self.tloss * i + self.loss_items) / (i + 1) if self.tloss is not None else self.loss_items
                        )
                    self.scaler.scale(self.loss).backward()

                    if ni - last_opt_step >= self.accumulate:
                        self.optimizer_step()
                        last_opt_step = ni
                        if self.args.time:
                            self.stop = (time.time() - self.train_time_start) > (self.args.time * 3600)
                            self._broadcast_stop()
                            if self.stop:
                                break

                    if RANK in {-1, 0} and self.tloss is not None:
                        loss_length = self.tloss.shape[0] if len(self.tloss.shape) else 1
                        pbar.set_description(
                            ("%11s" * 2 + "%11.4g" * (2 + loss_length))
                            % (
                                f"{epoch + 1}/{self.epochs}",
                                f"{self._get_memory():.3g}G",
                                *(self.tloss if loss_length > 1 else torch.unsqueeze(self.tloss, 0)),
                                batch["cls"].shape[0],
                                batch["img"].shape[-1],
                            )
                        )
                        self.run_callbacks("on_batch_end")
                        if self.args.plots and ni in self.plot_idx:
                            self.plot_training_samples(batch, ni)
                    self.run_callbacks("on_train_batch_end")

                self.lr = {f"lr/pg{ir}": x["lr"] for ir, x in enumerate(self.optimizer.param_groups)}
                self.run_callbacks("on_train_epoch_end")
                if RANK in {-1, 0}:
                    final_epoch = epoch + 1 >= self.epochs
                    self.ema.update_attr(self.model, include=["yaml", "nc", "args", "names", "stride", "class_weights"])
                    if self.args.val or final_epoch or self.stopper.possible_stop or self.stop:
                        self.metrics, self.fitness = self.validate()
                    # An epoch whose every batch had a non-finite loss still gets a (NaN) row.
                    tloss = self.tloss if self.tloss is not None else torch.full((len(self.loss_names),), float("nan"))
                    self.save_metrics(metrics={**self.label_loss_items(tloss), **self.metrics, **self.lr})
                    self.stop |= self.stopper(epoch + 1, self.fitness) or final_epoch
                    if self.args.time:
                        self.stop |= (time.time() - self.train_time_start) > (self.args.time * 3600)
                    if self.args.save or final_epoch:
                        self.save_model()
                        self.run_callbacks("on_model_save")

                t = time.time()
                self.epoch_time = t - self.epoch_time_start
                self.epoch_time_start = t
                if self.args.time:
                    # Re-estimate how many epochs fit in the time budget and stretch the schedule to it.
                    mean_epoch_time = (t - self.train_time_start) / (epoch - self.start_epoch + 1)
                    self.epochs = self.args.epochs = math.ceil(self.args.time * 3600 / mean_epoch_time)
                    self._setup_scheduler()
                    self.scheduler.last_epoch = self.epoch
                    self.stop |= epoch >= self.epochs
                self.run_callbacks("on_fit_epoch_end")
                self._clear_memory()
                self._broadcast_stop()
                if self.stop:
                    break
                epoch += 1
        except KeyboardInterrupt:
            # last.pt was written at the end of the previous epoch, so `resume=True` continues from it.
            if RANK in {-1, 0}:
                LOGGER.info(
                    f"\nTraining interrupted during epoch {epoch + 1}. Continue with "
                    f"'yolo train resume model={self.last}'" + ("" if self.last.exists() else " once an epoch has finished")
                )
            raise

        if RANK in {-1, 0}:
            seconds = time.time() - self.train_time_start
            LOGGER.info(f"\n{epoch - self.start_epoch + 1} epochs completed in {seconds / 3600:.3f} hours.")
            self.final_eval()
            if self.args.plots:
                self.plot_metrics()
            self.run_callbacks("on_train_end")
        self._clear_memory()
        unset_deterministic()
        self.run_callbacks("teardown")

    def _warmup(self, ni: int, nw: int, epoch: int) -> None:
        """Ramp lr, momentum and the accumulation count over the first `nw` iterations.

        The bias group (pg0) falls from warmup_bias_lr, the others rise from 0, all to their
        scheduled value; SGD momentum rises from warmup_momentum to momentum.
        """
        xi = [0, nw]
        self.accumulate = max(1, int(np.interp(ni, xi, [1, self.args.nbs / self.batch_size]).round()))
        for j, x in enumerate(self.optimizer.param_groups):
            x["lr"] = np.interp(ni, xi, [self.args.warmup_bias_lr if j == 0 else 0.0, x["initial_lr"] * self.lf(epoch)])
            if "momentum" in x:
                x["momentum"] = np.interp(ni, xi, [self.args.warmup_momentum, self.args.momentum])

    def _loss_is_finite(self, epoch: int, i: int, world_size: int) -> bool:
        """Check the batch loss; a NaN/inf one is replaced so that backward adds nothing, and the
        next optimizer step is skipped (a single bad batch would otherwise poison weights and EMA)."""
        if bool(torch.isfinite(self.loss).all()):
            return True
        LOGGER.warning(
            f"WARNING ⚠️ non-finite loss {self.loss.detach().float().sum().item()} at epoch {epoch + 1} batch {i + 1}, "
            "skipping this optimizer step"
        )
        self._skip_step = True
        # A zero that still depends on every trainable weight: backward runs (DDP ranks stay in step)
        # but contributes nothing.
        params = [p for p in self.model.parameters() if p.requires_grad]
        self.loss = sum((p.sum() * 0.0 for p in params), torch.zeros((), device=self.device))
        return False

    def _broadcast_stop(self) -> None:
        """Make every DDP rank agree with rank 0 on `self.stop`."""
        if RANK != -1:
            broadcast_list = [self.stop if RANK == 0 else None]
            dist.broadcast_object_list(broadcast_list, 0)
            self.stop = broadcast_list[0]

    def optimizer_step(self) -> None:
        """Unscale, clip gradients to norm 10, step, update EMA; skip the step after a non-finite loss."""
        skip = torch.tensor(float(self._skip_step), device=self.device)
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(skip, op=dist.ReduceOp.MAX)  # one rank's bad batch skips the step everywhere
        self._skip_step = False
        if skip.item():
            LOGGER.warning("WARNING ⚠️ optimizer step skipped: a batch since the last step had a non-finite loss")
            self.optimizer.zero_grad()
            return
        self.scaler.unscale_(self.optimizer)
        norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), max_norm=10.0)
        if not self.amp and not torch.isfinite(norm):
            # With AMP the GradScaler drops such a step itself; without it we must.
            LOGGER.warning(f"WARNING ⚠️ optimizer step skipped: non-finite gradient norm {norm.item()}")
            self.optimizer.zero_grad()
            return
        scale = self.scaler.get_scale() if self.amp else 1.0
        self.scaler.step(self.optimizer)
        self.scaler.update()
        if self.amp and self.scaler.get_scale() < scale:
            LOGGER.warning("WARNING ⚠️ AMP: non-finite gradients, optimizer step skipped and loss scale reduced")
        self.optimizer.zero_grad()
        if self.ema:
            self.ema.update(self.model)

    def _get_memory(self) -> float:
        """Accelerator memory reserved by torch, in GB (0 on CPU)."""
        if self.device.type == "mps":
            memory = torch.mps.driver_allocated_memory()
        elif self.device.type == "cpu":
            memory = 0
        else:
            memory = torch.cuda.memory_reserved()
        return memory / 1e9

    def _clear_memory(self) -> None:
        gc.collect()
        if self.device.type == "mps":
            torch.mps.empty_cache()
        elif self.device.type == "cuda":
            torch.cuda.empty_cache()

    # ------------------------------------------------------------------------------------------
    # Results and checkpoints
    # ------------------------------------------------------------------------------------------
    def read_results_csv(self) -> dict[str, list[float]]:
        """results.csv as {column: [value per epoch]}."""
        if not self.csv.exists():
            return {}
        with open(self.csv, newline="", encoding="utf-8") as f:
            rows = list(csv.reader(f))
        if not rows:
            return {}
        header = [h.strip() for h in rows[0]]
        columns: dict[str, list[float]] = {h: [] for h in header}
        for row in rows[1:]:
            for h, v in zip(header, row):
                columns[h].append(float(v))
        return columns

    def save_model(self) -> None:
        """Write last.pt (and best.pt when this epoch is the best, and epochN.pt every save_period).

        The checkpoint is serialised once and each file is written to a temporary name, then
        renamed, so an interruption never leaves a truncated checkpoint behind.
        """
        buffer = io.BytesIO()
        torch.save(
            {
                "epoch": self.epoch,
                "best_fitness": self.best_fitness,
                "model": None,  # the EMA below is the model; resume rebuilds the live one from it
                "ema": deepcopy(self.ema.ema).half(),
                "updates": self.ema.updates,
                "optimizer": convert_optimizer_state_dict_to_fp16(deepcopy(self.optimizer.state_dict())),
                "train_args": vars(self.args),
                "train_metrics": {**self.metrics, **{"fitness": self.fitness}},
                "train_results": self.read_results_csv(),
                "date": datetime.now().isoformat(),
                "version": __version__,
                "license": "AGPL-3.0 (https://ultralytics.com/license)",
                "docs": "https://docs.ultralytics.com",
            },
            buffer,
        )
        serialized = buffer.getvalue()
        write_atomic(self.last, serialized)
        if self.best_fitness == self.fitness:
            write_atomic(self.best, serialized)
        if (self.save_period > 0) and (self.epoch % self.save_period == 0):
            write_atomic(self.wdir / f"epoch{self.epoch}.pt", serialized)

    def save_metrics(self, metrics: dict[str, float]) -> None:
        """Append this epoch's row to results.csv (writing the header first on a new file)."""
        keys, vals = list(metrics.keys()), list(metrics.values())
        n = len(metrics) + 1
        header = "" if self.csv.exists() else (("%s," * n % tuple(["epoch"] + keys)).rstrip(",") + "\n")
        with open(self.csv, "a", encoding="utf-8") as f:
            f.write(header + ("%.5g," * n % tuple([self.epoch + 1] + [float(v) for v in vals])).rstrip(",") + "\n")

    # ------------------------------------------------------------------------------------------
    # Data and model
    # ------------------------------------------------------------------------------------------
    def get_dataset(self) -> tuple[Any, Any]:
        """Resolve `data` (e.g. shapes.yaml) and return the train and val entries of the dataset dict."""
        from ultralytics.data.utils import check_det_dataset

        try:
            data = check_det_dataset(self.args.data)
        except (FileNotFoundError, ValueError, KeyError, TypeError, OSError) as e:
            raise RuntimeError(f"Dataset '{clean_url(str(self.args.data))}' error ❌ {e}") from e
        if "yaml_file" in data:
            self.args.data = data["yaml_file"]
        self.data = data
        return data["train"], data.get("val") or data.get("test")

    def setup_model(self) -> dict | None:
        """Build `self.model` unless it is a module already; return the checkpoint dict it came from."""
        if isinstance(self.model, nn.Module):
            return None
        from ultralytics.nn.tasks import attempt_load_one_weight

        cfg, weights, ckpt = self.model, None, None
        if str(self.model).endswith(".pt"):
            weights, ckpt = attempt_load_one_weight(self.model)
            cfg = weights.yaml
        elif isinstance(self.args.pretrained, (str, Path)):
            weights, _ = attempt_load_one_weight(self.args.pretrained)
        self.model = self.get_model(cfg=cfg, weights=weights, verbose=RANK == -1)
        return ckpt

    def validate(self) -> tuple[dict[str, float], float]:
        """Validate the EMA model; track the best fitness (the negative loss if metrics give none)."""
        metrics = self.validator(self)
        fitness = metrics.pop("fitness", -self.loss.detach().cpu().numpy())
        if not self.best_fitness or self.best_fitness < fitness:
            self.best_fitness = fitness
        return metrics, fitness

    def get_model(self, cfg: str | dict | None = None, weights: Any = None, verbose: bool = True) -> nn.Module:
        raise NotImplementedError(f"{type(self).__name__} must implement get_model()")

    def get_validator(self):
        raise NotImplementedError(f"{type(self).__name__} must implement get_validator()")

    def get_dataloader(self, dataset_path: str, batch_size: int = 16, rank: int = 0, mode: str = "train"):
        raise NotImplementedError(f"{type(self).__name__} must implement get_dataloader()")

    def build_dataset(self, img_path: str, mode: str = "train", batch: int | None = None):
        raise NotImplementedError(f"{type(self).__name__} must implement build_dataset()")

    def preprocess_batch(self, batch: dict) -> dict:
        return batch

    def set_model_attributes(self) -> None:
        self.model.names = self.data["names"]

    def label_loss_items(self, loss_items: torch.Tensor | None = None, prefix: str = "train"):
        """{'train/loss': value} for logging, or the key list when no values are given."""
        return {"loss": loss_items} if loss_items is not None else ["loss"]

    def build_targets(self, preds, targets):
        pass

    def progress_string(self) -> str:
        return ""

    def plot_training_samples(self, batch: dict, ni: int) -> None:
        pass

    def plot_training_labels(self) -> None:
        pass

    def plot_metrics(self) -> None:
        pass

    def on_plot(self, name: str | Path, data: Any = None) -> None:
        """Remember a written plot (for callbacks and loggers)."""
        self.plots[Path(name)] = {"data": data, "timestamp": time.time()}

    def final_eval(self) -> None:
        """Strip the optimizer from last.pt and best.pt, then validate best.pt."""
        ckpt = {}
        for f in self.last, self.best:
            if f.exists():
                if f is self.last:
                    ckpt = strip_optimizer(f)
                elif f is self.best:
                    k = "train_results"
                    strip_optimizer(f, updates={k: ckpt[k]} if k in ckpt else None)
                    LOGGER.info(f"\nValidating {f}...")
                    self.validator.args.plots = self.args.plots
                    self.metrics = self.validator(model=f)
                    self.metrics.pop("fitness", None)
                    self.run_callbacks("on_fit_epoch_end")

    # ------------------------------------------------------------------------------------------
    # Resume
    # ------------------------------------------------------------------------------------------
    def check_resume(self, overrides: dict) -> None:
        """With `resume`, replace the arguments by those saved in the checkpoint to resume from.

        `resume=True` takes the newest last.pt under the runs folder; `resume=path/last.pt` (or
        `model=path/last.pt resume=True` through the Model API) takes that file. imgsz, batch and
        device may still be overridden.
        """
        resume = self.args.resume
        if resume:
            from ultralytics.nn.tasks import attempt_load_one_weight

            if isinstance(resume, (str, Path)):
                if not Path(resume).exists():
                    raise FileNotFoundError(
                        f"resume='{resume}' does not exist. Pass the last.pt of the run to continue, "
                        "i.e. 'yolo train resume model=path/to/last.pt', or resume=True for the newest run"
                    )
                last = Path(check_file(resume))
            else:
                root = self._runs_root()
                latest = get_latest_run(root)
                if not latest:
                    raise FileNotFoundError(
                        f"resume=True found no last.pt under '{Path(root).resolve()}'. Pass the checkpoint, "
                        "i.e. 'yolo train resume model=path/to/last.pt'"
                    )
                last = Path(latest)
            try:
                _, ckpt = attempt_load_one_weight(last)
                ckpt_args = dict(ckpt["train_args"])
            except (FileNotFoundError, KeyError, TypeError, OSError, RuntimeError) as e:
                raise FileNotFoundError(
                    f"Resume checkpoint '{last}' is not a readable training checkpoint ({e}). Pass the last.pt "
                    "of the run to continue, i.e. 'yolo train resume model=path/to/last.pt'"
                ) from e
            if not Path(str(ckpt_args["data"])).exists():
                ckpt_args["data"] = self.args.data  # e.g. an embedded dataset name such as shapes.yaml
            resume = True
            self.args = get_cfg(ckpt_args)
            self.args.model = self.args.resume = str(last)
            for k in "imgsz", "batch", "device":
                if k in overrides:
                    setattr(self.args, k, overrides[k])
        self.resume = resume

    def _runs_root(self) -> str:
        """Where `resume=True` looks for the newest last.pt: the project folder, else the runs folder."""
        root = self.args.project or os.getenv("ULTRALYTICS_RUNS_DIR") or SETTINGS["runs_dir"]
        return str(root) if Path(root).exists() else "."

    def resume_training(self, ckpt: dict | None) -> None:
        """Restore optimizer, best fitness, EMA and the epoch counter from a training checkpoint."""
        if ckpt is None or not self.resume:
            return
        best_fitness = 0.0
        start_epoch = ckpt.get("epoch", -1) + 1
        if ckpt.get("optimizer") is not None:
            self.optimizer.load_state_dict(ckpt["optimizer"])
            best_fitness = ckpt["best_fitness"]
        if self.ema and ckpt.get("ema"):
            self.ema.ema.load_state_dict(ckpt["ema"].float().state_dict())
            self.ema.updates = ckpt["updates"]
        if start_epoch <= 0:
            raise ValueError(
                f"{self.args.model} training to {self.epochs} epochs is finished, nothing to resume.\n"
                f"Start a new training without resuming, i.e. 'yolo train model={self.args.model}'"
            )
        LOGGER.info(f"Resuming training {self.args.model} from epoch {start_epoch + 1} to {self.epochs} total epochs")
        if self.epochs < start_epoch:
            LOGGER.info(
                f"{self.model} has been trained for {ckpt['epoch']} epochs. Fine-tuning for {self.epochs} more epochs."
            )
            self.epochs += ckpt["epoch"]
        self.best_fitness = best_fitness
        self.start_epoch = start_epoch
        self._trim_results_csv(start_epoch)
        if start_epoch > (self.epochs - self.args.close_mosaic):
            self._close_dataloader_mosaic()

    def _trim_results_csv(self, epochs_done: int) -> None:
        """Drop results.csv rows of epochs after the checkpoint (an interruption between writing the
        row and the checkpoint would otherwise leave a row that the resumed run writes again)."""
        if RANK not in {-1, 0} or not self.csv.exists():
            return
        lines = self.csv.read_text(encoding="utf-8").splitlines(keepends=True)
        kept = lines[:1] + [line for line in lines[1:] if line.strip() and float(line.split(",")[0]) <= epochs_done]
        if len(kept) != len(lines):
            LOGGER.info(f"Removed {len(lines) - len(kept)} row(s) after epoch {epochs_done} from {self.csv}")
            self.csv.write_text("".join(kept), encoding="utf-8")

    def _close_dataloader_mosaic(self) -> None:
        """Turn mosaic off for the remaining epochs (`close_mosaic`)."""
        dataset = self.train_loader.dataset
        if hasattr(dataset, "mosaic"):
            dataset.mosaic = False
        if hasattr(dataset, "close_mosaic"):
            LOGGER.info("Closing dataloader mosaic")
            dataset.close_mosaic(hyp=copy(self.args))

    # ------------------------------------------------------------------------------------------
    # Optimizer
    # ------------------------------------------------------------------------------------------
    def build_optimizer(
        self,
        model: nn.Module,
        name: str = "auto",
        lr: float = 0.001,
        momentum: float = 0.9,
        decay: float = 1e-5,
        iterations: float = 1e5,
    ) -> optim.Optimizer:
        """The optimizer with three parameter groups: pg0 biases (no decay), pg1 weights (decay),
        pg2 normalisation weights (no decay).

        `auto` picks AdamW with lr 0.002 * 5 / (4 + nc) for runs of at most 10,000 iterations,
        otherwise SGD with lr 0.01, momentum 0.9, ignoring lr0 and momentum.
        """
        g: tuple[list, list, list] = ([], [], [])
        bn = tuple(v for k, v in nn.__dict__.items() if "Norm" in k)  # BatchNorm2d, LayerNorm, GroupNorm, ...
        if name == "auto":
            LOGGER.info(
                f"{colorstr('optimizer:')} 'optimizer=auto' found, "
                f"ignoring 'lr0={self.args.lr0}' and 'momentum={self.args.momentum}' and "
                f"determining best 'optimizer', 'lr0' and 'momentum' automatically... "
            )
            nc = getattr(model, "nc", 10)
            lr_fit = round(0.002 * 5 / (4 + nc), 6)
            name, lr, momentum = ("SGD", 0.01, 0.9) if iterations > 10000 else ("AdamW", lr_fit, 0.9)
            self.args.warmup_bias_lr = 0.0  # no high bias lr for Adam-type warmup

        for module_name, module in model.named_modules():
            for param_name, param in module.named_parameters(recurse=False):
                fullname = f"{module_name}.{param_name}" if module_name else param_name
                if "bias" in fullname:
                    g[0].append(param)
                elif isinstance(module, bn):
                    g[2].append(param)
                else:
                    g[1].append(param)

        canonical = {x.lower(): x for x in OPTIMIZERS}.get(str(name).lower())
        # On CPU, PyTorch's default Adam/AdamW/SGD update runs one pass per operation and tensor; the fused
        # kernel does the same arithmetic in one pass (~3x faster for RT-DETR-l). CUDA keeps the default.
        on_cpu = all(p.device.type == "cpu" for p in g[0] + g[1] + g[2])
        fused = {"fused": True} if on_cpu and TORCH_2_4 and canonical in {"Adam", "AdamW", "SGD"} else {}
        if canonical in {"Adam", "Adamax", "AdamW", "NAdam", "RAdam"}:
            optimizer = getattr(optim, canonical)(g[0], lr=lr, betas=(momentum, 0.999), weight_decay=0.0, **fused)
        elif canonical == "RMSProp":
            optimizer = optim.RMSprop(g[0], lr=lr, momentum=momentum)
        elif canonical == "SGD":
            optimizer = optim.SGD(g[0], lr=lr, momentum=momentum, nesterov=True, **fused)
        else:
            raise NotImplementedError(
                f"Optimizer '{name}' not found in list of available optimizers {set(OPTIMIZERS)}. "
                "Request support for addition optimizers at https://github.com/ultralytics/ultralytics."
            )
        optimizer.add_param_group({"params": g[1], "weight_decay": decay})
        optimizer.add_param_group({"params": g[2], "weight_decay": 0.0})
        LOGGER.info(
            f"{colorstr('optimizer:')} {type(optimizer).__name__}(lr={lr}, momentum={momentum}) with parameter groups "
            f"{len(g[2])} weight(decay=0.0), {len(g[1])} weight(decay={decay}), {len(g[0])} bias(decay=0.0)"
        )
        return optimizer


class DetectionTrainer(BaseTrainer):
    """The detection hooks shared by detectors (upstream keeps them in models/yolo/detect/train.py)."""

    def get_dataloader(self, dataset_path: str, batch_size: int = 16, rank: int = 0, mode: str = "train"):
        """A DataLoader over `dataset_path`; shuffled for training."""
        from ultralytics.data import build_dataloader

        if mode not in {"train", "val"}:
            raise ValueError(f"get_dataloader: mode='{mode}' is not valid; use 'train' or 'val'")
        with torch_distributed_zero_first(rank):  # build (and cache labels) once under DDP
            dataset = self.build_dataset(dataset_path, mode, batch_size)
        shuffle = mode == "train"
        if getattr(dataset, "rect", False) and shuffle:
            LOGGER.warning("WARNING ⚠️ 'rect=True' is incompatible with DataLoader shuffle, setting shuffle=False")
            shuffle = False
        workers = self.args.workers if mode == "train" else self.args.workers * 2
        return build_dataloader(dataset, batch_size, workers, shuffle, rank)

    def preprocess_batch(self, batch: dict) -> dict:
        """uint8 images to float in [0, 1] on the training device; optional multi-scale resize."""
        batch["img"] = batch["img"].to(self.device, non_blocking=self.device.type == "cuda").float() / 255
        if self.args.multi_scale:
            imgs = batch["img"]
            sz = (
                random.randrange(int(self.args.imgsz * 0.5), int(self.args.imgsz * 1.5 + self.stride))
                // self.stride
                * self.stride
            )
            sf = sz / max(imgs.shape[2:])
            if sf != 1:
                ns = [math.ceil(x * sf / self.stride) * self.stride for x in imgs.shape[2:]]
                imgs = nn.functional.interpolate(imgs, size=ns, mode="bilinear", align_corners=False)
            batch["img"] = imgs
        return batch

    def set_model_attributes(self) -> None:
        """The dataset's classes win over the model yaml's; the model also keeps the run's args."""
        self.model.nc = self.data["nc"]
        self.model.names = self.data["names"]
        self.model.args = self.args

    def label_loss_items(self, loss_items: torch.Tensor | None = None, prefix: str = "train"):
        """{'train/giou_loss': v, ...} for logging, or only the keys when `loss_items` is None."""
        keys = [f"{prefix}/{x}" for x in self.loss_names]
        if loss_items is not None:
            return dict(zip(keys, [round(float(x), 5) for x in loss_items]))
        return keys

    def progress_string(self) -> str:
        """Header of the per-epoch progress bar."""
        return ("\n" + "%11s" * (4 + len(self.loss_names))) % (
            "Epoch",
            "GPU_mem",
            *self.loss_names,
            "Instances",
            "Size",
        )

    def plot_training_samples(self, batch: dict, ni: int) -> None:
        """train_batch{ni}.jpg: the augmented images with their boxes."""
        from ultralytics.utils.plotting import plot_images

        plot_images(
            images=batch["img"],
            batch_idx=batch["batch_idx"],
            cls=batch["cls"].squeeze(-1),
            bboxes=batch["bboxes"],
            paths=batch["im_file"],
            fname=self.save_dir / f"train_batch{ni}.jpg",
            on_plot=self.on_plot,
        )

    def plot_metrics(self) -> None:
        """results.png from results.csv."""
        from ultralytics.utils.plotting import plot_results

        plot_results(file=self.csv, on_plot=self.on_plot)

    def plot_training_labels(self) -> None:
        """labels.jpg: class counts and box statistics of the training set."""
        from ultralytics.utils.plotting import plot_labels

        labels = self.train_loader.dataset.labels
        boxes = np.concatenate([lb["bboxes"] for lb in labels], 0)
        cls = np.concatenate([lb["cls"] for lb in labels], 0)
        plot_labels(boxes, cls.squeeze(), names=self.data["names"], save_dir=self.save_dir, on_plot=self.on_plot)
