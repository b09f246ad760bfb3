"""Multi-GPU training the way upstream starts it: a generated script run under `torch.distributed.run`.

The launching process writes a small Python file that rebuilds the trainer from its arguments,
then runs ``python -m torch.distributed.run --nproc_per_node N --master_port P file.py``. Each
worker process gets RANK / LOCAL_RANK / WORLD_SIZE from torch and trains one shard.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import sys
import tempfile
from pathlib import Path
from typing import Any, Iterator

from torch.utils.data import distributed

# Generated scripts live here and are deleted after the run (ddp_cleanup).
DDP_DIR = Path(tempfile.gettempdir()) / "Ultralytics" / "DDP"


def find_free_network_port() -> int:
    """A TCP port on localhost that nothing listens on right now (for the DDP rendezvous).

    The OS picks it (port 0); the probe socket is closed again before the workers bind it.
    """
    with socket.create_server(("127.0.0.1", 0)) as probe:
        return probe.getsockname()[1]


def generate_ddp_file(trainer: Any) -> str:
    """Write the worker script for `trainer` and return its path.

    The script recreates the same trainer class from ``vars(trainer.args)``; the trainer's id is
    part of the file name so that ddp_cleanup removes only the file it made.
    """
    module, name = f"{type(trainer).__module__}.{type(trainer).__name__}".rsplit(".", 1)
    # Paths become strings so that the dict's repr is valid Python without imports.
    overrides = {k: str(v) if isinstance(v, Path) else v for k, v in vars(trainer.args).items()}
    content = (
        "# Ultralytics multi-GPU worker script, generated for one run and deleted after it.\n"
        f"overrides = {overrides!r}\n"
        "\n"
        'if __name__ == "__main__":\n'
        f"    from {module} import {name}\n"
        "    from ultralytics.utils import DEFAULT_CFG_DICT\n"
        "\n"
        "    cfg = DEFAULT_CFG_DICT.copy()\n"
        "    cfg.update(save_dir='')  # save_dir is not a default key; the overrides carry the real one\n"
        f"    trainer = {name}(cfg=cfg, overrides=overrides)\n"
        f"    trainer.args.model = {str(trainer.args.model)!r}\n"
        "    trainer.train()\n"
    )
    DDP_DIR.mkdir(parents=True, exist_ok=True)
    # A random part keeps two runs of the same trainer object apart; the id ending is what cleanup checks.
    script = DDP_DIR / f"_temp_{secrets.token_hex(4)}{id(trainer)}.py"
    script.write_text(content, encoding="utf-8")
    return str(script)


def generate_ddp_command(world_size: int, trainer: Any) -> tuple[list[str], str]:
    """The command that launches `world_size` workers, and the worker script it runs.

    A fresh (non-resumed) run's folder is removed first because the workers create it again
    from the same arguments.
    """
    if not trainer.resume:
        shutil.rmtree(trainer.save_dir, ignore_errors=True)
    script = generate_ddp_file(trainer)
    launcher = [sys.executable, "-m", "torch.distributed.run"]
    cmd = launcher + ["--nproc_per_node", str(world_size), "--master_port", str(find_free_network_port()), script]
    return cmd, script


def ddp_cleanup(trainer: Any, file: str) -> None:
    """Delete the worker script if it is the one generated for this trainer."""
    if f"{id(trainer)}.py" in file and os.path.exists(file):
        os.remove(file)


class ShardSampler(distributed.DistributedSampler):
    """DistributedSampler whose every pass over the data is the next epoch's shuffle.

    The training loader keeps one iterator for the whole run, and with workers > 0 it starts the next
    pass (drawing its shard order) while the current epoch is still running, before the trainer's
    set_epoch(e + 1); a plain DistributedSampler would then repeat epoch 0's order every epoch. Here
    pass k uses epoch ``first_epoch + k``. set_epoch only moves ``first_epoch`` while no pass has
    started (a resumed run's first epoch); later calls are already satisfied. With workers=0 the
    orders are exactly those of DistributedSampler with set_epoch every epoch.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.first_epoch = 0  # the epoch of pass 0
        self.passes = 0  # passes started so far

    def __iter__(self) -> Iterator[int]:
        self.epoch = self.first_epoch + self.passes
        self.passes += 1
        return super().__iter__()

    def set_epoch(self, epoch: int) -> None:
        if self.passes == 0:
            self.first_epoch = epoch
