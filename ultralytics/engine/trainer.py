"""The training engine: `BaseTrainer` runs the loop, `DetectionTrainer` adds the detection hooks.

Usage:
    $ yolo train model=rtdetr-l-FocalModulation.yaml data=shapes.yaml epochs=100 imgsz=640 batch=16

A run writes ``<project>/<name>/`` (default ``runs/detect/train``, ``train2``, ...) holding
``args.yaml``, ``results.csv`` (one row per epoch) and ``weights/last.pt`` / ``weights/best.pt``.

The loop, as `_do_train` reads it:

    set up        _setup_train      model on the device, AMP, loaders, validator, EMA, optimizer, resume
    each epoch    _train_epoch      lr step, mosaic switch, one `_train_batch` per batch
      each batch  _train_batch      warm-up, forward + backward, `optimizer_step` every `accumulate` batches
    epoch end     _end_epoch        validate, log results.csv, save checkpoints, early stop, time budget
    tear down     _tear_down        strip and validate best.pt, plots, teardown callbacks

What differs under multi-GPU DDP (launch, process group, rank-0-only work, agreement between ranks)
lives in `ultralytics.engine.distributed.DistributedRun` (``self.distributed``).
"""

from __future__ import annotations

import gc
import math
import os
import random
import signal
import threading
import time
import warnings
from contextlib import contextmanager
from copy import copy
from pathlib import Path
from typing import Any, Callable, Iterator, NamedTuple

import numpy as np
import torch
from torch import nn, optim

from ultralytics.cfg import get_cfg, get_save_dir
from ultralytics.engine import training_checkpoint
from ultralytics.engine.component import EngineComponent
from ultralytics.engine.distributed import DistributedRun
from ultralytics.engine.optimization import (
    OPTIMIZERS,
    auto_settings,
    lr_factor,
    make_optimizer,
    split_parameters,
    warm_up,
    warm_up_accumulation,
)
from ultralytics.models.utils.ops import NonFinitePredictions
from ultralytics.nn.checkpoints import attempt_load_one_weight, strip_optimizer
from ultralytics.utils import (
    DEFAULT_CFG,
    LOGGER,
    RANK,
    SETTINGS,
    TQDM,
    callbacks,
    clean_url,
    colorstr,
    results_csv,
    yaml_save,
)
from ultralytics.utils.autobatch import check_train_batch_size
from ultralytics.utils.checks import check_amp, check_imgsz, print_args
from ultralytics.utils.precision import training_autocast
from ultralytics.utils.torch_utils import (
    EarlyStopping,
    ModelEMA,
    de_parallel,
    init_seeds,
    select_device,
    torch_distributed_zero_first,
    unset_deterministic,
)

__all__ = "OPTIMIZERS", "BaseTrainer", "DetectionTrainer"

# Model attributes the EMA copy keeps in step with the live model (saved with it in checkpoints).
_EMA_ATTRIBUTES = ("yaml", "nc", "args", "names", "stride", "class_weights")

# With warm-up on, it lasts at least this many iterations, however short an epoch is.
_MIN_WARMUP_ITERATIONS = 100

# The first iterations of training (and of the epochs without mosaic) that are drawn with plots=True.
_PLOTTED_BATCHES = (0, 1, 2)


class _Iterations(NamedTuple):
    """Per-run iteration counts: batches in an epoch, and the last warm-up iteration (-1: no warm-up)."""

    per_epoch: int
    warmup: int


class NonFiniteTrainingError(FloatingPointError):
    """Too many optimizer steps in a row were dropped for NaN/inf values: training cannot progress."""


class DatasetError(RuntimeError, ValueError):
    """`data=` could not be turned into a dataset: a usage error (exit code 2 on the command line).

    A RuntimeError, as this was before, and a ValueError, which the CLI reports as the user's mistake.
    """


class BaseTrainer(EngineComponent):
    """A training run: configuration, run folder, model, data, optimizer, loop, checkpoints.

    Subclasses fill in the task hooks (``get_model``, ``get_dataloader``, ``build_dataset``,
    ``get_validator``, ...); the loop itself is task independent.

    A step whose loss or predictions are not finite is dropped; after ``max_skipped_steps`` dropped
    steps in a row (default 10) training stops with NonFiniteTrainingError. Set the attribute on a
    trainer, or in a subclass, for another limit.

    Args:
        cfg: default configuration (path, dict or namespace).
        overrides: keys that replace the defaults, e.g. ``{"epochs": 3, "data": "shapes.yaml"}``.
        _callbacks: event -> [callables] to start from instead of the defaults.
    """

    max_skipped_steps: int = 10

    def __init__(
        self,
        cfg: str | Path | dict | Any = DEFAULT_CFG,
        overrides: dict | None = None,
        _callbacks: dict | None = None,
    ):
        # 1. arguments (a resumed run takes those saved in its checkpoint) and devices
        self._configure(cfg, overrides, _callbacks)
        self.check_resume(overrides or {})
        self.distributed = DistributedRun.for_device(self.args.device)
        self.device = select_device(self.args.device, self.args.batch)
        # A rank started by torchrun joins the others now, so that rank 0 alone prepares data and the run folder.
        self.device = self.distributed.join(self.args.device) or self.device
        self.distributed.settle_arguments(self.args)
        self.validator = None
        self.metrics = None
        self.plots = {}
        init_seeds(self.args.seed + 1 + self.distributed.rank, deterministic=self.args.deterministic)
        settings = dict(vars(self.args))  # what args.yaml records: the run's settings before data resolution

        # 2. data, before anything is written, so that a missing or broken `data=` leaves no run folder;
        # loading in the main process is faster on CPU, where the model dominates the time
        if self.device.type != "cuda":
            self.args.workers = 0
        self.model = self.args.model
        with torch_distributed_zero_first(self.distributed.local_rank):  # rank 0 prepares the dataset first
            self.trainset, self.testset = self.get_dataset()

        # 3. run folder and the loop's bookkeeping
        recorded = self._make_run_folder(settings)
        self._reset_loop_state()
        if not self.distributed.is_worker:
            print_args(recorded)

    def _make_run_folder(self, settings: dict) -> dict:
        """save_dir (numbered, e.g. train2), weights/, and args.yaml written by the main process.

        settings: the arguments to record; the run's numbered name and folder are filled in. Returns them.
        """
        run = Path(self.distributed.rank0_value(str(get_save_dir(self.args))))  # under DDP: rank 0's numbering
        self.save_dir, self.wdir = run, run / "weights"
        self.args.name = run.name  # the numbered name actually used
        self.last, self.best = (self.wdir / f"{stem}.pt" for stem in ("last", "best"))
        self.csv = run / "results.csv"
        recorded = {**settings, "name": run.name}
        if self.distributed.is_main:
            self.wdir.mkdir(parents=True, exist_ok=True)
            self.args.save_dir = recorded["save_dir"] = str(run)
            yaml_save(run / "args.yaml", recorded)
        return recorded

    def _reset_loop_state(self) -> None:
        """Attributes the loop, the hooks and callbacks read; filled in by set-up and each epoch."""
        self.save_period = self.args.save_period
        self.batch_size = self.args.batch
        self.epochs = self.args.epochs or 100  # epochs=None is allowed together with time=
        self.start_epoch = 0
        self.ema = None
        self.lf: Callable[[float], float] | None = None
        self.scheduler = None
        self.best_fitness = None
        self.fitness = None
        self.loss = None
        self.loss_items = None
        self.tloss = None  # running mean of this epoch's loss items
        self.loss_names = ["Loss"]
        self.plot_idx = list(_PLOTTED_BATCHES)  # iterations drawn to train_batch{ni}.jpg
        self.stop = False
        self._skip_step = False  # set by a non-finite loss: the next optimizer step is dropped
        self._elapsed_before = 0.0  # seconds an interrupted run had spent (results.csv `time`)
        self._last_opt_step = -1  # iteration of the last optimizer step
        self._skipped_in_a_row = 0  # optimizer steps dropped since the last applied one
        self._skipped_this_epoch = 0
        self._batch_index = 0  # 0-based batch of the epoch being trained (for messages)
        self._mosaic_closed = False
        self._saved_epochs = 0  # epochs that last.pt holds (1-based number of the last one)
        self._pending_exact: dict | None = None  # resume state put back once the loop starts
        self._interrupt_requested = False  # Ctrl-C seen: stop at the next step boundary

    @contextmanager
    def _between(self, opening: str, closing: str) -> Iterator[None]:
        """Emit `opening`, run the block, emit `closing`; an exception in the block skips `closing`."""
        self.run_callbacks(opening)
        yield
        self.run_callbacks(closing)

    # ------------------------------------------------------------------------------------------
    # Entry point and the loop
    # ------------------------------------------------------------------------------------------
    def train(self) -> None:
        """Train; with several GPUs, relaunch this run as DDP worker processes and wait for them."""
        if self.distributed.must_launch:
            self.distributed.launch(self)
        else:
            self._do_train(self.distributed.world_size)

    def _do_train(self, world_size: int = 1) -> None:
        """One run: set up, the epochs until a stop condition, tear down."""
        self.distributed.world_size = world_size
        self.device = self.distributed.join(self.args.device) or self.device
        self._setup_train(world_size)
        iterations = self._start_training()
        epoch = self.start_epoch
        try:
            with self._interrupts_at_step_boundaries():
                while True:
                    self.epoch = epoch
                    with self._between("on_train_epoch_start", "on_train_epoch_end"):
                        self._train_epoch(epoch, iterations)
                    self._end_epoch(epoch)
                    self._stop_if_interrupted()
                    if self.stop:
                        break
                    epoch += 1
        except KeyboardInterrupt:
            self._report_interrupt(epoch)
            raise
        self._tear_down(epoch)

    @contextmanager
    def _interrupts_at_step_boundaries(self) -> Iterator[None]:
        """Ctrl-C (SIGINT) during the loop stops it at the next step boundary instead of mid-step.

        A step, a validation or a checkpoint write in progress finishes first, so last.pt is always
        a complete epoch; a second Ctrl-C stops at once. Only where Python's own handler is installed
        (the main thread, no handler of the user's).
        """
        ours = threading.current_thread() is threading.main_thread()
        ours = ours and signal.getsignal(signal.SIGINT) is signal.default_int_handler
        if ours:
            signal.signal(signal.SIGINT, self._on_sigint)
        try:
            yield
        finally:
            if ours:
                signal.signal(signal.SIGINT, signal.default_int_handler)

    def _on_sigint(self, signum: int, frame: Any) -> None:
        if self._interrupt_requested:
            raise KeyboardInterrupt
        self._interrupt_requested = True
        LOGGER.info("\nCtrl-C: stopping after the current step (press Ctrl-C again to stop at once)")

    def _stop_if_interrupted(self) -> None:
        """At a step boundary: end the loop (as a KeyboardInterrupt) if Ctrl-C was pressed."""
        if self._interrupt_requested:
            raise KeyboardInterrupt

    # ------------------------------------------------------------------------------------------
    # Set up
    # ------------------------------------------------------------------------------------------
    def _setup_train(self, world_size: int) -> None:
        """Build everything the loop needs: model on device, AMP, loaders, validator, EMA, optimizer."""
        self.distributed.world_size = world_size
        with self._between("on_pretrain_routine_start", "on_pretrain_routine_end"):
            ckpt = self.setup_model()
            self._place_model()
            self._build_loaders()
            self._build_optimization()
            self.resume_training(ckpt)
            self.scheduler.last_epoch = self.start_epoch - 1  # the first scheduler.step() lands on start_epoch

    def _place_model(self) -> None:
        """Model on the device with the dataset's attributes, frozen layers, AMP decided, DDP-wrapped."""
        self.model = self.model.to(self.device)
        self.set_model_attributes()
        self._freeze_layers()
        self.amp = self._decide_amp()
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp)
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = not self.args.deterministic  # fixed input size: let cuDNN pick kernels
        self.model = self.distributed.wrap(self.model)
        strides = getattr(self.model, "stride", None)  # a DDP wrapper has none: use the minimum, 32
        self.stride = max(int(strides.max()) if strides is not None else 32, 32)
        self.args.imgsz = check_imgsz(self.args.imgsz, stride=self.stride, floor=self.stride, max_dim=1)

    def _decide_amp(self) -> bool:
        """Mixed precision only on CUDA, and only if rank 0's check that AMP gives sane outputs passes."""
        wanted = bool(self.args.amp) and self.device.type == "cuda"
        if wanted and self.distributed.is_main:
            saved = callbacks.default_callbacks.copy()  # check_amp may run callbacks; keep ours untouched
            wanted = check_amp(self.model)
            callbacks.default_callbacks = saved
        return self.distributed.rank0_flag(wanted, self.device)

    def _freeze_layers(self) -> None:
        """Stop gradients for `freeze` (first N layers, or a list of layer indices)."""
        freeze = self.args.freeze
        if freeze is None:
            indices = []
        elif isinstance(freeze, int):
            indices = range(freeze)
        elif isinstance(freeze, (list, tuple)):
            indices = freeze
        else:
            raise TypeError(f"freeze={freeze!r} is not valid; use an int N (first N layers) or a list of layer indices")
        prefixes = [f"model.{index}." for index in indices] + [".dfl"]  # DFL weights are fixed by design
        for name, param in self.model.named_parameters():
            if any(prefix in name for prefix in prefixes):
                LOGGER.info(f"freeze: no gradients for '{name}'")
                param.requires_grad = False
            elif not param.requires_grad and param.dtype.is_floating_point:
                LOGGER.info(f"WARNING ⚠️ '{name}' came frozen; training it (add its layer index to freeze= to keep it)")
                param.requires_grad = True

    def _build_loaders(self) -> None:
        """The train loader on every rank; the val loader, validator, metrics and EMA on the main one."""
        if self.batch_size < 1:  # batch=-1 or a fraction: measured on CUDA, the default 16 elsewhere
            self.args.batch = self.batch_size = check_train_batch_size(
                self.model, imgsz=self.args.imgsz, amp=self.amp, batch=self.batch_size
            )
        per_rank = self.distributed.batch_per_rank(self.batch_size)
        rank = self.distributed.local_rank
        self.train_loader = self.get_dataloader(self.trainset, batch_size=per_rank, rank=rank, mode="train")
        if not self.distributed.is_main:
            return
        self.test_loader = self.get_dataloader(self.testset, batch_size=per_rank * 2, rank=-1, mode="val")
        self.validator = self.get_validator()
        self.metrics = {key: 0 for key in self.validator.metrics.keys + self.label_loss_items(prefix="val")}
        self.ema = ModelEMA(self.model, decay=self.args.ema_decay, tau=self.args.ema_tau)
        if self.args.plots:
            self.plot_training_labels()

    def _build_optimization(self) -> None:
        """Gradient accumulation to an effective batch of `nbs`, optimizer, lr schedule, early stopping."""
        nbs, batch = self.args.nbs, self.batch_size
        self.accumulate = max(round(nbs / batch), 1)
        decay = self.args.weight_decay * batch * self.accumulate / nbs  # weight decay scaled to the effective batch
        steps = math.ceil(len(self.train_loader.dataset) / max(batch, nbs)) * self.epochs
        self.optimizer = self.build_optimizer(
            model=self.model,
            name=self.args.optimizer,
            lr=self.args.lr0,
            momentum=self.args.momentum,
            decay=decay,
            iterations=steps,
        )
        self._setup_scheduler()
        self.stopper = EarlyStopping(patience=self.args.patience)

    def _setup_scheduler(self) -> None:
        """Learning-rate factor per epoch: linear 1 -> lrf, or a cosine ramp with `cos_lr`."""
        self.lf = lr_factor(self.args.cos_lr, self.args.lrf, lambda: self.epochs)
        self.scheduler = optim.lr_scheduler.LambdaLR(self.optimizer, lr_lambda=self.lf)

    def _start_training(self) -> _Iterations:
        """Start the clocks and announce the run; returns the iteration counts the epochs use."""
        per_epoch = len(self.train_loader)
        warmup_epochs = self.args.warmup_epochs
        warmup = max(round(warmup_epochs * per_epoch), _MIN_WARMUP_ITERATIONS) if warmup_epochs > 0 else -1
        self.stop = False
        self.epoch_time = None
        self.epoch_time_start = self.train_time_start = time.time()
        self.run_callbacks("on_train_start")
        workers = self.distributed.loader_workers(self.train_loader.num_workers)
        length = f"{self.args.time} hours" if self.args.time else f"{self.epochs} epochs"
        LOGGER.info(
            f"Training at imgsz={self.args.imgsz} (validation too) with {workers} dataloader workers\n"
            f"Run folder {colorstr('bold', self.save_dir)}\n"
            f"Training for {length}..."
        )
        if self.args.close_mosaic:  # also draw the first batches without mosaic
            first_plain = (self.epochs - self.args.close_mosaic) * per_epoch
            self.plot_idx += [first_plain + k for k in _PLOTTED_BATCHES]
        self.optimizer.zero_grad()
        self._continue_exactly()
        return _Iterations(per_epoch, warmup)

    # ------------------------------------------------------------------------------------------
    # One epoch, one batch
    # ------------------------------------------------------------------------------------------
    def _train_epoch(self, epoch: int, iterations: _Iterations) -> None:
        """Step the lr schedule, switch mosaic off when due, and train on every batch of the epoch.

        Leaves the epoch's learning rates in `self.lr` ({'lr/pg0': ..., ...}).
        """
        with warnings.catch_warnings():
            # The schedule steps at the start of each epoch, before any optimizer step: intended.
            warnings.filterwarnings("ignore", message=r".*(lr_scheduler|optimizer)\.step\(\)", category=UserWarning)
            self.scheduler.step()
        self.model.train()
        self.distributed.start_epoch(self.train_loader, epoch)
        if epoch == self.epochs - self.args.close_mosaic:
            self._close_dataloader_mosaic()
            self.train_loader.reset()  # the loader's iterator still holds the mosaic transforms
        batches = enumerate(self.train_loader)
        if self.distributed.is_main:
            LOGGER.info(self.progress_string())
            batches = self._progress_bar = TQDM(batches, total=iterations.per_epoch)
        self.tloss = None
        self._skipped_this_epoch = 0
        for i, batch in batches:
            if not self._train_batch(epoch, i, batch, iterations):
                break
        self.lr = {f"lr/pg{index}": group["lr"] for index, group in enumerate(self.optimizer.param_groups)}
        if self._skipped_this_epoch:
            LOGGER.info(
                f"Epoch {epoch + 1}/{self.epochs}: {self._skipped_this_epoch} optimizer step(s) skipped "
                "for non-finite values"
            )

    def _train_batch(self, epoch: int, i: int, batch: dict, iterations: _Iterations) -> bool:
        """Warm-up, forward and backward, and an optimizer step when enough batches accumulated.

        Returns False when the time budget ran out, which ends the epoch early.
        """
        self._batch_index = i
        self.run_callbacks("on_train_batch_start")
        ni = i + iterations.per_epoch * epoch  # iterations since the start of training
        if ni <= iterations.warmup:
            self._warmup(ni, iterations.warmup, epoch)
        batch = self._forward_backward(batch, epoch, i)
        if ni - self._last_opt_step >= self.accumulate:
            self.optimizer_step()
            self._last_opt_step = ni
            if self.args.time:
                self.stop = self.distributed.rank0_stop(self._time_is_up())
                if self.stop:
                    return False
        if self.distributed.is_main and self.tloss is not None:
            self._show_progress(batch, epoch, ni)
        self.run_callbacks("on_train_batch_end")
        self._stop_if_interrupted()
        return True

    def _forward_backward(self, batch: dict, epoch: int, i: int) -> dict:
        """Loss of one batch (under autocast), folded into the epoch mean, and its gradients."""
        with training_autocast(self.amp, self.args.amp, self.device):
            batch = self.preprocess_batch(batch)
            finite = self._forward(batch, epoch, i)
        if finite:
            self.tloss = self.loss_items if self.tloss is None else (self.tloss * i + self.loss_items) / (i + 1)
        self.scaler.scale(self.loss).backward()
        return batch

    def _forward(self, batch: dict, epoch: int, i: int) -> bool:
        """`self.loss` and `self.loss_items` of the batch; False, with a zero loss, when not finite."""
        try:
            self.loss, self.loss_items = self.model(batch)
        except NonFinitePredictions as e:
            LOGGER.warning(
                f"WARNING ⚠️ {e} in epoch {epoch + 1}, batch {i + 1}; they are not matched and the optimizer "
                "step that includes this batch will be skipped"
            )
            self._drop_step()
            return False
        self.loss = self.distributed.scale_loss(self.loss)
        return self._check_loss(epoch, i)

    def _warmup(self, ni: int, nw: int, epoch: int) -> None:
        """Ramp accumulation, lr and momentum over the first `nw` iterations (see optimization.warm_up)."""
        self.accumulate = warm_up_accumulation(ni, nw, self.args.nbs / self.batch_size)
        warm_up(
            self.optimizer,
            step=ni,
            steps=nw,
            scheduled=self.lf(epoch),
            bias_lr=self.args.warmup_bias_lr,
            momentum=(self.args.warmup_momentum, self.args.momentum),
        )

    def _check_loss(self, epoch: int, batch_index: int) -> bool:
        """True for a finite loss. A NaN/inf one is replaced so that backward adds nothing, and the next
        optimizer step is skipped (a single bad batch would otherwise poison weights and EMA)."""
        if bool(torch.isfinite(self.loss).all()):
            return True
        value = self.loss.detach().float().sum().item()
        LOGGER.warning(
            f"WARNING ⚠️ non-finite loss {value} in epoch {epoch + 1}, batch {batch_index + 1}; "
            "the optimizer step that includes it will be skipped"
        )
        self._drop_step()
        return False

    def _drop_step(self) -> None:
        """Mark the pending optimizer step as skipped; the loss becomes a zero that still depends on
        every trainable weight, so backward runs (DDP ranks stay in step) but contributes nothing."""
        self._skip_step = True
        trainable = [p for p in self.model.parameters() if p.requires_grad]
        self.loss = sum((p.sum() * 0.0 for p in trainable), torch.zeros((), device=self.device))

    def _show_progress(self, batch: dict, epoch: int, ni: int) -> None:
        """Progress-bar line (Epoch, GPU_mem, the mean losses, Instances, Size) and training plots."""
        texts = [f"{epoch + 1}/{self.epochs}", f"{self._get_memory():.3g}G"]
        numbers = [*self.tloss.reshape(-1).tolist(), batch["cls"].shape[0], batch["img"].shape[-1]]
        self._progress_bar.set_description("".join(f"{t:>11}" for t in texts) + "".join(f"{n:11.4g}" for n in numbers))
        self.run_callbacks("on_batch_end")
        if self.args.plots and ni in self.plot_idx:
            self.plot_training_samples(batch, ni)

    # ------------------------------------------------------------------------------------------
    # The optimizer step
    # ------------------------------------------------------------------------------------------
    def optimizer_step(self) -> None:
        """Apply the accumulated gradients: unscale, clip to norm `clip_grad` (10), step, clear them, update the EMA.

        The step is dropped (gradients cleared, weights and EMA untouched) after a non-finite loss on
        any rank, or for a non-finite gradient norm without AMP (AMP's scaler drops those itself).
        """
        blocked = self._step_blocker()
        if blocked:
            LOGGER.warning(f"WARNING ⚠️ optimizer step skipped: {blocked}")
            self._repair_buffers()
            self._count_skipped_step()
        else:
            self._skipped_in_a_row = 0
            scale = self.scaler.get_scale() if self.amp else 1.0
            self.scaler.step(self.optimizer)
            self.scaler.update()
            if self.amp and self.scaler.get_scale() < scale:
                LOGGER.warning("WARNING ⚠️ AMP found non-finite gradients: step skipped, loss scale lowered")
        self.optimizer.zero_grad()
        if self.ema and not blocked:
            self.ema.update(self.model)

    def _repair_buffers(self) -> None:
        """A non-finite forward pass also leaves NaN/inf in BatchNorm running statistics, which the
        skipped step does not undo: take those buffers back from the EMA (finite: it skips such steps)."""
        if not self.ema:
            return  # DDP ranks other than 0: their buffers are broadcast from rank 0 at each forward
        averaged = self.ema.ema.state_dict()
        for name, buffer in de_parallel(self.model).named_buffers():
            if buffer.is_floating_point() and not bool(torch.isfinite(buffer).all()):
                buffer.copy_(averaged[name])

    def _count_skipped_step(self) -> None:
        """Count a dropped step; after `max_skipped_steps` in a row, stop with advice."""
        self._skipped_this_epoch += 1
        self._skipped_in_a_row += 1
        if self._skipped_in_a_row < self.max_skipped_steps:
            return
        epoch = getattr(self, "epoch", self.start_epoch)
        if self.last.exists():
            saved = f"The last good checkpoint is {self.last} (the end of epoch {self._saved_epochs})"
        else:
            saved = "No checkpoint was written yet (the first epoch did not finish)"
        raise NonFiniteTrainingError(
            f"Training stopped in epoch {epoch + 1}, batch {self._batch_index + 1}: the last "
            f"{self._skipped_in_a_row} optimizer steps were all skipped for non-finite (NaN/inf) loss, "
            f"predictions or gradients. {saved}. Try amp=False, a lower lr0 (now {self.args.lr0}) or a longer "
            f"warm-up (warmup_epochs, now {self.args.warmup_epochs}), e.g. starting from the last good weights "
            f"with 'yolo train model={self.last} amp=False lr0={self.args.lr0 / 10:g}'."
        )

    def _step_blocker(self) -> str:
        """Why the pending step must not be applied ('' when it may); unscales and clips gradients."""
        bad_loss = self.distributed.any_rank(self._skip_step, self.device)
        self._skip_step = False
        if bad_loss:
            return "a batch since the last step had a non-finite loss"
        self.scaler.unscale_(self.optimizer)
        norm = nn.utils.clip_grad_norm_(self.model.parameters(), max_norm=self.args.clip_grad)
        if not self.amp and not torch.isfinite(norm):
            return f"non-finite gradient norm {norm.item()}"
        return ""

    # ------------------------------------------------------------------------------------------
    # End of an epoch
    # ------------------------------------------------------------------------------------------
    def _end_epoch(self, epoch: int) -> None:
        """Validate, log and save on the main process; time the epoch; agree on stopping."""
        if self.distributed.is_main:
            self._validate_log_save(epoch)
        self._time_epoch(epoch)
        self.run_callbacks("on_fit_epoch_end")
        self._clear_memory()
        self.stop = self.distributed.rank0_stop(self.stop)

    def _validate_log_save(self, epoch: int) -> None:
        """Validation (when due), the results.csv row, early stopping and the checkpoints."""
        final_epoch = epoch + 1 >= self.epochs
        self.ema.update_attr(self.model, include=list(_EMA_ATTRIBUTES))
        if self._validation_due(final_epoch):
            self.metrics, self.fitness = self.validate()
        # An epoch whose every batch had a non-finite loss still gets a (NaN) row.
        losses = self.tloss if self.tloss is not None else torch.full((len(self.loss_names),), float("nan"))
        self.save_metrics(metrics={**self.label_loss_items(losses), **self.metrics, **self.lr})
        patience_over = self.stopper(epoch + 1, self.fitness)  # always called: it tracks the best epoch
        self.stop |= patience_over or final_epoch
        if self.args.time:
            self.stop |= self._time_is_up()
        if self.args.save or final_epoch:
            self.save_model()
            self.run_callbacks("on_model_save")

    def _validation_due(self, final_epoch: bool) -> bool:
        """Every epoch with val=True; otherwise only when it decides something: the last epoch, or a stop."""
        return bool(self.args.val) or final_epoch or self.stopper.possible_stop or self.stop

    def _time_epoch(self, epoch: int) -> None:
        """Epoch duration; with a time budget, fit the number of epochs (and the lr schedule) to it."""
        now = time.time()
        self.epoch_time, self.epoch_time_start = now - self.epoch_time_start, now
        if not self.args.time:
            return
        mean_epoch = (now - self.train_time_start) / (epoch - self.start_epoch + 1)
        self.epochs = self.args.epochs = math.ceil(self.args.time * 3600 / mean_epoch)
        self._setup_scheduler()
        self.scheduler.last_epoch = self.epoch
        self.stop |= epoch >= self.epochs

    def _time_is_up(self) -> bool:
        return time.time() - self.train_time_start > self.args.time * 3600

    # ------------------------------------------------------------------------------------------
    # Tear down
    # ------------------------------------------------------------------------------------------
    def _tear_down(self, last_epoch: int) -> None:
        """Final validation of best.pt and plots on the main process, then release memory."""
        if self.distributed.is_main:
            hours = (time.time() - self.train_time_start) / 3600
            LOGGER.info(f"\nTraining done: {last_epoch - self.start_epoch + 1} epochs in {hours:.3f} hours.")
            self.final_eval()
            if self.args.plots:
                self.plot_metrics()
            self.run_callbacks("on_train_end")
        self._clear_memory()
        unset_deterministic()
        self.run_callbacks("teardown")
        self.distributed.leave()

    def _report_interrupt(self, epoch: int) -> None:
        """Ctrl-C: last.pt holds the previous epoch, so `resume` continues from there."""
        if not self.distributed.is_main:
            return
        if self.last.exists():
            held, when = f"{self.last} holds epoch {self._saved_epochs}; ", ""
        else:
            held, when = "", " once an epoch has finished"
        LOGGER.info(
            f"\nTraining stopped by the user in epoch {epoch + 1}; {held}"
            f"'yolo train resume model={self.last}' continues it{when}"
        )

    def _get_memory(self) -> float:
        """Accelerator memory reserved by torch, in GB (0 on CPU)."""
        kind = self.device.type
        if kind == "cuda":
            return torch.cuda.memory_reserved() / 1e9
        if kind == "mps":
            return torch.mps.driver_allocated_memory() / 1e9
        return 0.0

    def _clear_memory(self) -> None:
        """Collect garbage and return cached accelerator memory between epochs."""
        gc.collect()
        cache = {"cuda": torch.cuda, "mps": torch.mps}.get(self.device.type)
        if cache is not None:
            cache.empty_cache()

    # ------------------------------------------------------------------------------------------
    # Results and checkpoints
    # ------------------------------------------------------------------------------------------
    def read_results_csv(self) -> dict[str, list[float]]:
        """results.csv as {column: [value per epoch]} ({} before the first epoch ends)."""
        return results_csv.read(self.csv)

    def save_metrics(self, metrics: dict[str, float]) -> None:
        """Append this epoch's row to results.csv, with the run's elapsed seconds as `time`."""
        elapsed = self._elapsed_before + time.time() - self.train_time_start
        results_csv.append(self.csv, self.epoch + 1, metrics, elapsed=elapsed)

    def save_model(self) -> None:
        """Write last.pt, best.pt when this epoch has the best fitness, and epochN.pt every save_period.

        The checkpoint is serialised once; each file is written atomically (see nn.checkpoints.write_atomic).
        """
        ckpt = training_checkpoint.payload(
            epoch=self.epoch,
            best_fitness=self.best_fitness,
            ema=self.ema,
            optimizer=self.optimizer,
            args=self.args,
            metrics=self.metrics,
            fitness=self.fitness,
            results=self.read_results_csv(),
            resume_state=self._exact_state(),
            skipped_steps=self._skipped_this_epoch,
        )
        targets = [self.last]
        if self.best_fitness == self.fitness:
            targets.append(self.best)
        if self.save_period > 0 and self.epoch % self.save_period == 0:
            targets.append(self.wdir / f"epoch{self.epoch}.pt")
        training_checkpoint.write(ckpt, targets)
        self._saved_epochs = self.epoch + 1

    def _exact_state(self) -> dict:
        """What continues this run exactly after the epoch just finished (training_checkpoint.exact_state)."""
        loop = {
            "last_opt_step": self._last_opt_step,
            "accumulate": self.accumulate,
            "skipped_in_a_row": self._skipped_in_a_row,
            "skip_step": self._skip_step,
            "stopper": {"best_fitness": self.stopper.best_fitness, "best_epoch": self.stopper.best_epoch},
        }
        return training_checkpoint.exact_state(
            model=self.model,
            ema=self.ema,
            optimizer=self.optimizer,
            scaler=self.scaler,
            loader=self.train_loader,
            mosaic_closed=self._mosaic_closed,
            loop=loop,
        )

    def final_eval(self) -> None:
        """Strip the optimizer (and the exact-resume state) from last.pt and best.pt, then validate best.pt."""
        finished = {training_checkpoint.RESUME_STATE: None}  # a finished run is not resumed
        stripped = strip_optimizer(self.last, updates=finished) if self.last.exists() else {}
        if not self.best.exists():
            return
        # best.pt may be older than last.pt: give it the whole run's results table.
        results = {"train_results": stripped["train_results"]} if "train_results" in stripped else {}
        strip_optimizer(self.best, updates={**results, **finished})
        LOGGER.info(f"\nFinal validation of {self.best}...")
        self.validator.args.plots = self.args.plots
        self.metrics = self.validator(model=self.best)
        self.metrics.pop("fitness", None)
        self.run_callbacks("on_fit_epoch_end")

    # ------------------------------------------------------------------------------------------
    # Data and model hooks
    # ------------------------------------------------------------------------------------------
    def get_dataset(self) -> tuple[Any, Any]:
        """Resolve `data` (e.g. shapes.yaml) and return the train and val entries of the dataset dict."""
        from ultralytics.data.utils import check_det_dataset

        try:
            self.data = check_det_dataset(self.args.data)
        except (FileNotFoundError, ValueError, KeyError, TypeError, OSError) as e:
            raise DatasetError(f"Dataset '{clean_url(str(self.args.data))}' could not be prepared: {e}") from e
        self.args.data = self.data.get("yaml_file", self.args.data)
        return self.data["train"], self.data.get("val") or self.data.get("test")

    def setup_model(self) -> dict | None:
        """Build `self.model` unless it is a module already; return the checkpoint dict it came from."""
        if isinstance(self.model, nn.Module):
            return None
        cfg, weights, ckpt = self._model_sources()
        self.model = self.get_model(cfg=cfg, weights=weights, verbose=RANK == -1)
        return ckpt

    def _model_sources(self) -> tuple[Any, nn.Module | None, dict | None]:
        """(cfg, weights, checkpoint) for get_model: from `model=*.pt`, else yaml + `pretrained=` weights."""
        source = self.model
        if str(source).endswith(".pt"):
            loaded, ckpt = attempt_load_one_weight(source)
            return loaded.yaml, loaded, ckpt
        if isinstance(self.args.pretrained, (str, Path)):
            return source, attempt_load_one_weight(self.args.pretrained)[0], None
        return source, None, None

    def validate(self) -> tuple[dict[str, float], float]:
        """Validate the EMA model; track the best fitness (the negative loss if metrics give none)."""
        metrics = self.validator(self)
        if "fitness" in metrics:
            fitness = metrics.pop("fitness")
        else:
            fitness = -self.loss.detach().cpu().numpy()
        if not self.best_fitness or fitness > self.best_fitness:
            self.best_fitness = fitness
        return metrics, fitness

    def get_model(self, cfg: str | dict | None = None, weights: Any = None, verbose: bool = True) -> nn.Module:
        raise NotImplementedError(f"{type(self).__name__}.get_model() is missing: a trainer must build its model")

    def get_validator(self):
        raise NotImplementedError(f"{type(self).__name__}.get_validator() is missing: a trainer must validate")

    def get_dataloader(self, dataset_path: str, batch_size: int = 16, rank: int = 0, mode: str = "train"):
        raise NotImplementedError(f"{type(self).__name__}.get_dataloader() is missing: a trainer must load data")

    def build_dataset(self, img_path: str, mode: str = "train", batch: int | None = None):
        raise NotImplementedError(f"{type(self).__name__}.build_dataset() is missing: a trainer must build data")

    def preprocess_batch(self, batch: dict) -> dict:
        """Hook: adapt a loader batch for the model (the default passes it through)."""
        return batch

    def set_model_attributes(self) -> None:
        """Hook: copy dataset facts onto the model before training (the default: class names)."""
        self.model.names = self.data["names"]

    def label_loss_items(self, loss_items: torch.Tensor | None = None, prefix: str = "train"):
        """{'train/loss': value} for logging, or the key list when no values are given."""
        if loss_items is None:
            return ["loss"]
        return {"loss": loss_items}

    def build_targets(self, preds, targets):
        """Hook kept for upstream compatibility; detection losses build their own targets."""

    def progress_string(self) -> str:
        """Hook: the header printed above each epoch's progress bar (none by default)."""
        return ""

    def plot_training_samples(self, batch: dict, ni: int) -> None:
        """Hook: draw batch `ni` as the model sees it."""

    def plot_training_labels(self) -> None:
        """Hook: draw statistics of the training labels."""

    def plot_metrics(self) -> None:
        """Hook: draw the per-epoch results."""

    def on_plot(self, name: str | Path, data: Any = None) -> None:
        """Remember a written plot (for callbacks and loggers)."""
        self.plots[Path(name)] = {"data": data, "timestamp": time.time()}

    # ------------------------------------------------------------------------------------------
    # Resume
    # ------------------------------------------------------------------------------------------
    def check_resume(self, overrides: dict) -> None:
        """With `resume`, replace the arguments by those saved in the checkpoint to resume from.

        `resume=True` takes the newest last.pt under the runs folder; `resume=path/last.pt` (or
        `model=path/last.pt resume=True` through the Model API) takes that file. imgsz, batch and
        device may still be overridden.
        """
        if not self.args.resume:
            self.resume = self.args.resume
            return
        last = training_checkpoint.resolve_resume(self.args.resume, self._runs_root())
        saved, epoch = training_checkpoint.read_resume_point(last)
        _check_resumable(last, saved, epoch, overrides)
        if not Path(str(saved["data"])).exists():
            saved["data"] = self.args.data  # e.g. an embedded dataset name such as shapes.yaml
        self.args = get_cfg(saved)
        self.args.model = self.args.resume = str(last)
        for key in training_checkpoint.RESUME_OVERRIDABLE:
            if key in overrides:
                setattr(self.args, key, overrides[key])
        self.resume = True

    def _runs_root(self) -> str:
        """Where `resume=True` looks for the newest last.pt: the project folder, else the runs folder."""
        root = self.args.project or os.getenv("ULTRALYTICS_RUNS_DIR") or SETTINGS["runs_dir"]
        return str(root) if Path(root).exists() else "."

    def resume_training(self, ckpt: dict | None) -> None:
        """Restore optimizer, best fitness, EMA and the epoch counter from a training checkpoint.

        A checkpoint with our exact-resume state also restores the float32 weights, the loop's
        counters, the loader's stream and (when the loop starts) gradients and random states.
        """
        if ckpt is None or not self.resume:
            return
        next_epoch = ckpt.get("epoch", -1) + 1
        best_fitness = training_checkpoint.restore(ckpt, self.optimizer, self.ema)
        if next_epoch <= 0:
            raise ValueError(
                f"{self.args.model} already finished its {self.epochs} epochs; there is nothing to resume. "
                f"Start a new run without resume, i.e. 'yolo train model={self.args.model}'"
            )
        LOGGER.info(f"Resuming {self.args.model}: epochs {next_epoch + 1} to {self.epochs}")
        if self.epochs < next_epoch:  # fine-tuning a finished run: `epochs` more on top
            LOGGER.info(f"{self.model} already trained {ckpt['epoch']} epochs; training {self.epochs} more")
            self.epochs += ckpt["epoch"]
        self.best_fitness, self.start_epoch = best_fitness, next_epoch
        self._saved_epochs = next_epoch
        self._continue_results_csv(next_epoch)
        exact = ckpt.get(training_checkpoint.RESUME_STATE)
        closed = exact["mosaic_closed"] if exact else next_epoch > self.epochs - self.args.close_mosaic
        if closed:
            self._close_dataloader_mosaic()
        if exact:
            self._restore_exact(exact, ckpt)

    def _restore_exact(self, state: dict, ckpt: dict) -> None:
        """Weights, optimizer, scaler, counters and loader stream from our exact-resume state."""
        training_checkpoint.restore_exact(state, self.model, self.ema, self.optimizer, self.scaler)
        loop = state["loop"]
        self._last_opt_step, self.accumulate = loop["last_opt_step"], loop["accumulate"]
        self._skipped_in_a_row, self._skip_step = loop["skipped_in_a_row"], loop["skip_step"]
        stopper = loop["stopper"]
        self.stopper.best_fitness, self.stopper.best_epoch = stopper["best_fitness"], stopper["best_epoch"]
        metrics = dict(ckpt.get("train_metrics") or {})
        metrics.pop("skipped_steps", None)
        self.fitness = metrics.pop("fitness", None)
        self.metrics = {**self.metrics, **metrics} if self.metrics is not None else metrics
        if self.distributed.world_size > 1:
            LOGGER.info("Resuming under DDP: each rank's random and shuffle states start afresh")
            return
        self.train_loader.load_state_dict(state["loader"])
        self._pending_exact = state

    def _continue_exactly(self) -> None:
        """Last step of a resume, when the loop is about to start: the gradients accumulated since the
        last optimizer step and the random states, as they were when the checkpoint was written."""
        state, self._pending_exact = self._pending_exact, None
        if state is None:
            return
        training_checkpoint.restore_gradients(self.model, state["grads"])
        training_checkpoint.restore_random_states(state)

    def _continue_results_csv(self, epochs_done: int) -> None:
        """Drop rows of epochs after the checkpoint (an interruption between writing the row and the
        checkpoint leaves one that the resumed run writes again); continue the `time` column."""
        if not self.distributed.is_main:
            return
        dropped = results_csv.trim(self.csv, epochs_done)
        if dropped:
            LOGGER.info(f"{self.csv}: {dropped} row(s) after epoch {epochs_done} removed, they are trained again")
        self._elapsed_before = results_csv.elapsed(self.csv)

    def _close_dataloader_mosaic(self) -> None:
        """Turn mosaic off for the remaining epochs (`close_mosaic`)."""
        self._mosaic_closed = True
        dataset = self.train_loader.dataset
        if hasattr(dataset, "mosaic"):
            dataset.mosaic = False
        rebuild = getattr(dataset, "close_mosaic", None)
        if rebuild is not None:
            LOGGER.info(f"close_mosaic: the last {self.args.close_mosaic} epochs train without mosaic")
            rebuild(hyp=copy(self.args))

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
        if name == "auto":
            name, lr, momentum = auto_settings(iterations, getattr(model, "nc", 10))
            LOGGER.info(
                f"{colorstr('optimizer:')} optimizer=auto chose {name}(lr={lr}, momentum={momentum}) for "
                f"{iterations:g} iterations; lr0={self.args.lr0} and momentum={self.args.momentum} are not used"
            )
            self.args.warmup_bias_lr = 0.0  # no high bias lr for Adam-type warmup
        groups = split_parameters(model)
        optimizer = make_optimizer(name, groups, lr=lr, momentum=momentum, decay=decay)
        LOGGER.info(
            f"{colorstr('optimizer:')} {type(optimizer).__name__}(lr={lr}, momentum={momentum}); "
            f"{len(groups.norms)} norm weights and {len(groups.biases)} biases without decay, "
            f"{len(groups.weights)} weights with decay {decay}"
        )
        return optimizer


def _check_resumable(last: Path, saved: dict, epoch: int, overrides: dict) -> None:
    """Refuse to resume a finished run, or with an `epochs=` other than the run's own.

    last: the checkpoint; saved: its train_args; epoch: its last finished 0-based epoch (-1: finished).
    """
    planned = saved.get("epochs")
    wanted = overrides.get("epochs")
    fine_tune = (
        f"To train on from its weights, start a new run from it, e.g. "
        f"'yolo train model={last} data={saved.get('data')} epochs={wanted or planned}'"
    )
    if epoch < 0:
        raise ValueError(f"{last} is from a finished run ({planned} epochs); resume cannot extend it. {fine_tune}")
    if wanted is not None and wanted != planned:
        raise ValueError(
            f"resume continues the run in {last} with its own settings, epochs={planned}; epochs={wanted} "
            f"cannot be changed on resume. Resume without epochs=, or, once it has finished: {fine_tune}"
        )


class DetectionTrainer(BaseTrainer):
    """The detection hooks shared by detectors (upstream keeps them in models/yolo/detect/train.py)."""

    def get_dataloader(self, dataset_path: str, batch_size: int = 16, rank: int = 0, mode: str = "train"):
        """A DataLoader over `dataset_path`; shuffled for training (unless the dataset is rect)."""
        from ultralytics.data import build_dataloader

        if mode not in {"train", "val"}:
            raise ValueError(f"get_dataloader: mode='{mode}' is not valid; use 'train' or 'val'")
        with torch_distributed_zero_first(rank):  # build (and cache labels) once under DDP
            dataset = self.build_dataset(dataset_path, mode, batch_size)
        training = mode == "train"
        rect = bool(getattr(dataset, "rect", False))
        if training and rect:
            LOGGER.warning("WARNING ⚠️ rect=True keeps images in aspect-ratio order; training batches are not shuffled")
        workers = self.args.workers * (1 if training else 2)
        return build_dataloader(dataset, batch_size, workers, training and not rect, rank)

    def preprocess_batch(self, batch: dict) -> dict:
        """uint8 images to float in [0, 1] on the training device; optional multi-scale resize."""
        images = batch["img"].to(self.device, non_blocking=self.device.type == "cuda").float() / 255
        batch["img"] = self._random_rescale(images) if self.args.multi_scale else images
        return batch

    def _random_rescale(self, images: torch.Tensor) -> torch.Tensor:
        """(bs, 3, h, w) resized so that the long side is a random stride multiple in [0.5, 1.5] * imgsz."""
        stride, imgsz = self.stride, self.args.imgsz
        long_side = random.randrange(int(imgsz * 0.5), int(imgsz * 1.5 + stride)) // stride * stride
        factor = long_side / max(images.shape[2:])
        if factor == 1:
            return images
        size = [math.ceil(side * factor / stride) * stride for side in images.shape[2:]]
        return nn.functional.interpolate(images, size=size, mode="bilinear", align_corners=False)

    def set_model_attributes(self) -> None:
        """The dataset's classes win over the model yaml's; the model also keeps the run's args."""
        for key in ("nc", "names"):
            setattr(self.model, key, self.data[key])
        self.model.args = self.args

    def label_loss_items(self, loss_items: torch.Tensor | None = None, prefix: str = "train"):
        """{'train/giou_loss': v, ...} for logging, or only the keys when `loss_items` is None."""
        keys = [f"{prefix}/{name}" for name in self.loss_names]
        if loss_items is None:
            return keys
        return {key: round(float(value), 5) for key, value in zip(keys, loss_items)}

    def progress_string(self) -> str:
        """Header of the per-epoch progress bar: Epoch, GPU_mem, the loss names, Instances, Size."""
        columns = ("Epoch", "GPU_mem", *self.loss_names, "Instances", "Size")
        return "\n" + "".join(f"{column:>11}" for column in columns)

    def plot_training_samples(self, batch: dict, ni: int) -> None:
        """train_batch{ni}.jpg: the augmented images with their boxes."""
        from ultralytics.utils.plotting import plot_images

        plot_images(
            batch["img"],
            batch["batch_idx"],
            batch["cls"].squeeze(-1),
            bboxes=batch["bboxes"],
            paths=batch["im_file"],
            fname=self.save_dir / f"train_batch{ni}.jpg",
            on_plot=self.on_plot,
        )

    def plot_metrics(self) -> None:
        """results.png from results.csv."""
        results_csv.plot(self.csv, on_plot=self.on_plot)

    def plot_training_labels(self) -> None:
        """labels.jpg: class counts and box statistics of the training set."""
        from ultralytics.utils.plotting import plot_labels

        labels = self.train_loader.dataset.labels
        boxes, classes = (np.concatenate([label[key] for label in labels], 0) for key in ("bboxes", "cls"))
        plot_labels(boxes, classes.squeeze(), names=self.data["names"], save_dir=self.save_dir, on_plot=self.on_plot)
