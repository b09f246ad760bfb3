"""What a training run does differently as one of several DDP processes, kept in one object.

A run in one process (CPU, MPS or a single GPU) has ``rank == -1`` and every method here is a no-op
or an identity. A process started by ``torchrun`` / ``python -m torch.distributed.run`` (by the user,
on one node or several, or by our own launcher for ``device=0,1,...``) finds its place in the
environment variables RANK, LOCAL_RANK and WORLD_SIZE, joins the process group (nccl on CUDA, gloo on
the CPU), wraps its model in DistributedDataParallel, trains its shard of the data, and agrees with
rank 0 on the AMP decision, on skipping an optimizer step and on stopping. Only the main process
(rank -1 or 0) validates, logs, plots and writes files. See docs/distributed.md.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, NamedTuple

import torch
from torch import distributed as dist
from torch import nn

from ultralytics.utils import LOGGER, NUM_THREADS, colorstr
from ultralytics.utils.dist import ddp_cleanup, generate_ddp_command

# A stuck collective (one rank crashed) fails after this long instead of hanging the others forever.
_COLLECTIVE_TIMEOUT = timedelta(hours=3)

# Where init_process_group's default env:// rendezvous finds rank 0; torchrun sets both.
_RENDEZVOUS_VARIABLES = ("MASTER_ADDR", "MASTER_PORT")


class Placement(NamedTuple):
    """This process's place in a run started by torchrun: global rank, rank on its node, process count."""

    rank: int
    local_rank: int
    world_size: int


def _environment_int(name: str) -> int | None:
    """An integer environment variable, None when unset; a non-integer value is named in the error."""
    text = os.environ.get(name, "").strip()
    if not text:
        return None
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"environment variable {name}={text!r} is not an integer; torchrun sets it to one") from None


def torchrun_placement() -> Placement | None:
    """RANK / LOCAL_RANK / WORLD_SIZE as torch.distributed.run exports them; None outside such a launch.

    LOCAL_RANK may be absent (some schedulers set only the global values); it then equals RANK.
    """
    rank, world_size = _environment_int("RANK"), _environment_int("WORLD_SIZE")
    if rank is None and world_size is None:
        return None
    if rank is None or world_size is None:
        missing = "RANK" if rank is None else "WORLD_SIZE"
        raise ValueError(
            f"environment variable {missing} is not set while {'WORLD_SIZE' if rank is None else 'RANK'} is: "
            "a distributed run needs both; start it with torchrun, e.g. 'torchrun --nproc_per_node 2 train.py' "
            "or 'torchrun --nproc_per_node 2 --no-python yolo train ...', or unset both for one process"
        )
    if not 0 <= rank < world_size:
        raise ValueError(f"RANK={rank} is outside 0..WORLD_SIZE-1 (WORLD_SIZE={world_size})")
    local_rank = _environment_int("LOCAL_RANK")
    return Placement(rank, rank if local_rank is None else local_rank, world_size)


def _device_spec(device: Any) -> str:
    return str("" if device is None else device).strip().lower()


def listed_gpus(device: Any) -> list[int]:
    """The CUDA indices a `device=` value names: [] for '', 'cpu' and 'mps'; [0, 1] for '0,1' or [0, 1]."""
    if isinstance(device, (tuple, list)):
        return [int(index) for index in device]
    if isinstance(device, int):
        return [device]
    spec = _device_spec(device)
    if spec in {"cpu", "mps"}:
        return []
    parts = spec.replace("cuda:", "").strip("[]()").split(",")
    return [int(part) for part in (p.strip(" '") for p in parts) if part.isdigit()]  # select_device rejects the rest


def count_devices(device: Any) -> int:
    """GPUs a `device=` value asks for: 0 for CPU/MPS, 1 for one GPU, N for ``0,1,...`` or a list of N.

    An empty value means "the first GPU if there is one".
    """
    if not isinstance(device, (tuple, list, int)) and _device_spec(device) in {"", "none"}:
        return int(torch.cuda.is_available())
    return len(listed_gpus(device))


def _cpu_threads_per_rank() -> int:
    """Threads for one CPU rank: OMP_NUM_THREADS when given (torchrun sets 1), else the host's share."""
    given = _environment_int("OMP_NUM_THREADS")
    if given:
        return given
    on_this_node = _environment_int("LOCAL_WORLD_SIZE") or 1
    return max(1, NUM_THREADS // on_this_node)


def _check_rendezvous() -> None:
    """The env:// rendezvous needs rank 0's address: say which variable is missing and which launcher sets it."""
    missing = [name for name in _RENDEZVOUS_VARIABLES if not os.environ.get(name)]
    if missing:
        raise ValueError(
            f"distributed training: {', '.join(missing)} not set. RANK and WORLD_SIZE are, so this process "
            "expects a launcher; start it with 'torchrun --nproc_per_node N script.py' (one node) or add "
            "'--nnodes M --rdzv-endpoint HOST:PORT' (several), which set MASTER_ADDR and MASTER_PORT"
        )


def _env_rank(name: str) -> int:
    value = _environment_int(name)
    return -1 if value is None else value


def _check_rebuildable(trainer: Any, world_size: int) -> None:
    """The launcher's worker script imports the trainer class; one defined in the running script cannot be."""
    cls = type(trainer)
    if cls.__module__ == "__main__":
        raise ValueError(
            f"device={trainer.args.device}: the trainer class {cls.__name__} is defined in the script being run "
            "(__main__), which the DDP worker processes cannot import. Move the class into a module, or start "
            f"the script with 'torchrun --nproc_per_node {world_size} script.py', "
            "where every process builds its own trainer (see docs/distributed.md)"
        )


def _added_callbacks(trainer: Any) -> list[str]:
    """Callbacks added to `trainer` beyond the defaults, as 'event: name' (the worker script has only defaults)."""
    from ultralytics.utils.callbacks import default_callbacks

    registry = getattr(trainer, "callbacks", None) or {}
    return [
        f"{event}: {getattr(fn, '__name__', fn)}"
        for event, functions in registry.items()
        for fn in functions
        if fn not in default_callbacks.get(event, [])
    ]


@dataclass
class DistributedRun:
    """The process's place in a (possibly single-process) run.

    world_size: processes taking part (GPUs requested when this process has to launch them; 0 on
    CPU/MPS outside torchrun); rank / local_rank: this process, -1 outside DDP; device: this rank's
    device once it joined the process group.
    """

    world_size: int
    rank: int = field(default_factory=lambda: _env_rank("RANK"))
    local_rank: int = field(default_factory=lambda: _env_rank("LOCAL_RANK"))
    device: torch.device | None = None

    @classmethod
    def for_device(cls, device: Any) -> DistributedRun:
        """From torchrun's variables when they are set (any device), else from the GPUs `device` names."""
        placement = torchrun_placement()
        if placement is None:
            return cls(world_size=count_devices(device), rank=-1, local_rank=-1)
        return cls(world_size=placement.world_size, rank=placement.rank, local_rank=placement.local_rank)

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
        return self.multi_gpu and not self.is_worker and "LOCAL_RANK" not in os.environ

    # ---------------------------------------------------------------------------------------------
    # Launch (the parent process), joining and leaving (each worker)
    # ---------------------------------------------------------------------------------------------
    def launch(self, trainer: Any) -> None:
        """Run `trainer` as `world_size` worker processes and wait for them to finish."""
        self.settle_arguments(trainer.args)
        if trainer.args.batch < 1.0:
            raise ValueError(
                f"batch={trainer.args.batch}: multi-GPU training needs an explicit batch size that is a "
                f"multiple of the GPU count {self.world_size}, e.g. batch={self.world_size * 8}"
            )
        _check_rebuildable(trainer, self.world_size)
        lost = _added_callbacks(trainer)
        if lost:
            LOGGER.warning(
                f"WARNING ⚠️ callbacks added to this run do not reach the DDP worker processes: {', '.join(lost)}. "
                f"To keep them, start the script with 'torchrun --nproc_per_node {self.world_size} script.py'"
            )
        command, script = generate_ddp_command(self.world_size, trainer)
        try:
            LOGGER.info(f"{colorstr('DDP:')} launching {' '.join(command)}")
            subprocess.run(command, check=True)
        finally:
            ddp_cleanup(trainer, str(script))

    def settle_arguments(self, args: Any) -> None:
        """Check and adapt the run's arguments before anything is written.

        A batch that does not split evenly over the ranks is an error; rect=True is turned off, because
        rect batches are built in one fixed order and per-rank shards are not.
        """
        if self.is_worker and args.batch >= 1:
            self.batch_per_rank(int(args.batch))  # raises for a batch that is not a multiple of WORLD_SIZE
        if (self.multi_gpu or self.is_worker) and args.rect:
            LOGGER.warning("WARNING ⚠️ rect=True cannot be split into per-rank shards; training with rect=False")
            args.rect = False

    def join(self, requested: Any = None) -> torch.device | None:
        """Join the process group as this rank; returns the rank's device (None outside DDP).

        requested: the run's `device=` value. CUDA ranks use nccl and one GPU each (the LOCAL_RANK-th of
        a listed ``0,1,...``, else cuda:LOCAL_RANK); CPU ranks use gloo. Joining twice is harmless.
        """
        if not self.is_worker:
            return None
        if dist.is_initialized():
            return self.device
        self.device = self._rank_device(requested)
        _check_rendezvous()
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)
            os.environ["TORCH_NCCL_BLOCKING_WAIT"] = "1"  # so that a stuck rank times out instead of hanging
        else:
            torch.set_num_threads(_cpu_threads_per_rank())  # ranks share the host's cores
        backend = "nccl" if self.device.type == "cuda" and dist.is_nccl_available() else "gloo"
        dist.init_process_group(backend, world_size=self.world_size, rank=self.rank, timeout=_COLLECTIVE_TIMEOUT)
        LOGGER.info(f"{colorstr('DDP:')} {self.world_size} processes, {backend} backend, rank 0 on {self.device}")
        return self.device

    def _rank_device(self, requested: Any) -> torch.device:
        """The device this rank trains on, from the run's `device=` value and LOCAL_RANK."""
        spec = _device_spec(requested)
        if spec == "mps":
            raise ValueError("device=mps cannot train distributed (neither gloo nor nccl reaches MPS); use cpu or CUDA")
        gpus = listed_gpus(requested)
        if spec == "cpu" or not (gpus or torch.cuda.is_available()):
            return torch.device("cpu")
        if len(gpus) > 1 and self.local_rank >= len(gpus):
            raise ValueError(
                f"device={requested} lists {len(gpus)} GPUs but this process has LOCAL_RANK={self.local_rank}: "
                "list one GPU per process on the node (--nproc_per_node), or leave device empty for cuda:LOCAL_RANK"
            )
        index = gpus[self.local_rank] if len(gpus) > 1 else self.local_rank
        if index >= torch.cuda.device_count():
            raise ValueError(
                f"rank {self.rank} (LOCAL_RANK={self.local_rank}) needs cuda:{index}, but this node has "
                f"{torch.cuda.device_count()} CUDA devices; start at most that many processes per node"
            )
        return torch.device("cuda", index)

    def leave(self) -> None:
        """Leave the process group at the end of training, so that the next run can join a new one."""
        if self.is_worker and dist.is_initialized():
            dist.destroy_process_group()

    # ---------------------------------------------------------------------------------------------
    # Per-run and per-epoch set-up
    # ---------------------------------------------------------------------------------------------
    def wrap(self, model: nn.Module) -> nn.Module:
        """DistributedDataParallel around `model` when it trains as one rank of several."""
        if not self.is_worker:
            return model
        on_gpu = self.device is not None and self.device.type == "cuda"
        # Some layers (e.g. denoising embeddings) get no gradient in some steps; DDP must not wait for them.
        return nn.parallel.DistributedDataParallel(
            model,
            device_ids=[self.device.index] if on_gpu else None,
            find_unused_parameters=True,
        )

    def batch_per_rank(self, batch: int) -> int:
        """Each rank loads an equal share of the global `batch`."""
        if not self.is_worker:
            return batch
        if batch % self.world_size:
            suggestion = self.world_size * max(1, round(batch / self.world_size))
            raise ValueError(
                f"batch={batch} is the total over all {self.world_size} processes (WORLD_SIZE) and must divide "
                f"evenly among them; use a multiple of {self.world_size}, e.g. batch={suggestion}"
            )
        return batch // self.world_size

    def loader_workers(self, per_rank: int) -> int:
        """Data-loading processes of the whole run."""
        return per_rank * (self.world_size if self.is_worker else 1)

    def start_epoch(self, loader: Any, epoch: int) -> None:
        """Give the DistributedSampler the epoch, so that the shards are reshuffled."""
        set_epoch = getattr(getattr(loader, "sampler", None), "set_epoch", None)
        if self.is_worker and set_epoch is not None:
            set_epoch(epoch)

    def scale_loss(self, loss: torch.Tensor) -> torch.Tensor:
        """DDP averages gradients over ranks; scaling the loss by the world size keeps the sum's scale."""
        return loss * self.world_size if self.is_worker else loss

    # ---------------------------------------------------------------------------------------------
    # Agreement between ranks
    # ---------------------------------------------------------------------------------------------
    def rank0_flag(self, flag: bool, device: torch.device) -> bool:
        """Rank 0's value of `flag` on every rank (the AMP check runs on rank 0 only)."""
        value = torch.tensor(int(flag), device=device)  # gloo has no bool collectives
        if self.is_worker and dist.is_initialized():
            dist.broadcast(value, src=0)
        return bool(value.item())

    def any_rank(self, flag: bool, device: torch.device) -> bool:
        """True on every rank when `flag` is True on at least one."""
        value = torch.tensor(float(flag), device=device)
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(value, op=dist.ReduceOp.MAX)
        return bool(value.item())

    def rank0_value(self, value: Any) -> Any:
        """Rank 0's `value` (any picklable object) on every rank; the value itself outside DDP."""
        if not (self.is_worker and dist.is_initialized()):
            return value
        holder = [value if self.rank == 0 else None]
        dist.broadcast_object_list(holder, src=0)
        return holder[0]

    def rank0_stop(self, stop: bool) -> bool:
        """Rank 0's decision to stop, on every rank (only rank 0 validates and measures patience)."""
        return bool(self.rank0_value(stop))
