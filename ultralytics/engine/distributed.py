"""What a training run does differently as one of several DDP processes, kept in one object.

A run on one device (CPU, MPS or a single GPU) has ``rank == -1`` and every method here is a no-op or
an identity. With ``device=0,1,...`` the launching process starts one worker per GPU through
``torch.distributed.run`` (see `ultralytics.utils.dist`); each worker has a rank, joins the process
group, wraps its model in DistributedDataParallel, and agrees with rank 0 on the AMP decision, on
skipping an optimizer step and on stopping. Only the main process (rank -1 or 0) validates, logs,
plots and writes files.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import torch
from torch import distributed as dist
from torch import nn

from ultralytics.utils import LOCAL_RANK, LOGGER, RANK, colorstr
from ultralytics.utils.dist import ddp_cleanup, generate_ddp_command

# A stuck collective (one rank crashed) fails after this long instead of hanging the others forever.
_COLLECTIVE_TIMEOUT = timedelta(hours=3)


def count_devices(device: Any) -> int:
    """GPUs a `device=` value asks for: 0 for CPU/MPS, 1 for one GPU, N for ``0,1,...`` or a list of N.

    An empty value means "the first GPU if there is one".
    """
    if isinstance(device, (tuple, list)):
        return len(device)
    if isinstance(device, int):
        return 1
    spec = str(device or "").strip().lower()
    if not spec:
        return int(torch.cuda.is_available())
    if spec in {"cpu", "mps"}:
        return 0
    return sum(1 for part in spec.replace("cuda:", "").split(",") if part.strip())


@dataclass
class DistributedRun:
    """The process's place in a (possibly single-process) run.

    world_size: GPUs taking part (0 on CPU/MPS); rank / local_rank: this process, -1 outside DDP.
    """

    world_size: int
    rank: int = field(default=RANK)
    local_rank: int = field(default=LOCAL_RANK)

    @classmethod
    def for_device(cls, device: Any) -> DistributedRun:
        return cls(world_size=count_devices(device))

    @property
    def is_main(self) -> bool:
        """The process that validates, logs and writes files: the only one, or rank 0."""
        return self.rank in {-1, 0}

    @property
    def is_worker(self) -> bool:
        """Running as one rank of a DDP process group."""
        return self.rank != -1

    @property
    def multi_gpu(self) -> bool:
        return self.world_size > 1

    @property
    def must_launch(self) -> bool:
        """Several GPUs requested but no worker started yet: this process only launches the workers."""
        return self.multi_gpu and "LOCAL_RANK" not in os.environ

    # ---------------------------------------------------------------------------------------------
    # Launch (the parent process) and joining (each worker)
    # ---------------------------------------------------------------------------------------------
    def launch(self, trainer: Any) -> None:
        """Run `trainer` as `world_size` worker processes and wait for them to finish."""
        if trainer.args.rect:
            LOGGER.warning("WARNING ⚠️ rect=True cannot shard batches across GPUs; training with rect=False")
            trainer.args.rect = False
        if trainer.args.batch < 1.0:
            raise ValueError(
                f"batch={trainer.args.batch}: multi-GPU training needs an explicit batch size that is a "
                f"multiple of the GPU count {self.world_size}, e.g. batch={self.world_size * 8}"
            )
        command, script = generate_ddp_command(self.world_size, trainer)
        try:
            LOGGER.info(f"{colorstr('DDP:')} launching {' '.join(command)}")
            subprocess.run(command, check=True)
        finally:
            ddp_cleanup(trainer, str(script))

    def join(self) -> torch.device | None:
        """Join the process group (multi-GPU only); returns this rank's GPU, or None when single-process."""
        if not self.multi_gpu:
            return None
        torch.cuda.set_device(self.rank)
        os.environ["TORCH_NCCL_BLOCKING_WAIT"] = "1"  # so that a stuck rank times out instead of hanging
        dist.init_process_group(
            backend="nccl" if dist.is_nccl_available() else "gloo",
            timeout=_COLLECTIVE_TIMEOUT,
            rank=self.rank,
            world_size=self.world_size,
        )
        return torch.device("cuda", self.rank)

    # ---------------------------------------------------------------------------------------------
    # Per-run and per-epoch set-up
    # ---------------------------------------------------------------------------------------------
    def wrap(self, model: nn.Module) -> nn.Module:
        """DistributedDataParallel around `model` when several GPUs train it."""
        if not self.multi_gpu:
            return model
        return nn.parallel.DistributedDataParallel(model, device_ids=[self.rank], find_unused_parameters=True)

    def batch_per_rank(self, batch: int) -> int:
        """Each rank loads its share of the global batch."""
        return batch // max(self.world_size, 1)

    def loader_workers(self, per_rank: int) -> int:
        """Data-loading processes of the whole run."""
        return per_rank * (self.world_size or 1)

    def start_epoch(self, loader: Any, epoch: int) -> None:
        """Give the DistributedSampler the epoch, so that the shards are reshuffled."""
        if self.is_worker:
            loader.sampler.set_epoch(epoch)

    def scale_loss(self, loss: torch.Tensor) -> torch.Tensor:
        """DDP averages gradients over ranks; scaling the loss by the world size keeps the sum's scale."""
        return loss * self.world_size if self.is_worker else loss

    # ---------------------------------------------------------------------------------------------
    # Agreement between ranks
    # ---------------------------------------------------------------------------------------------
    def rank0_flag(self, flag: bool, device: torch.device) -> bool:
        """Rank 0's value of `flag` on every rank (the AMP check runs on rank 0 only)."""
        value = torch.tensor(flag, device=device)
        if self.is_worker and self.multi_gpu:
            dist.broadcast(value, src=0)
        return bool(value)

    def any_rank(self, flag: bool, device: torch.device) -> bool:
        """True on every rank when `flag` is True on at least one."""
        value = torch.tensor(float(flag), device=device)
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(value, op=dist.ReduceOp.MAX)
        return bool(value.item())

    def rank0_stop(self, stop: bool) -> bool:
        """Rank 0's decision to stop, on every rank (only rank 0 validates and measures patience)."""
        if not self.is_worker:
            return stop
        holder = [stop if self.rank == 0 else None]
        dist.broadcast_object_list(holder, 0)
        return holder[0]
