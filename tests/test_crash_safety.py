"""Crash safety: durable atomic checkpoint writes, SIGKILL at many moments, Ctrl-C at a step boundary.

The training subprocesses fork from a forkserver that has imported the package once, so that each of
the many starts costs a fork instead of an import.
"""

from __future__ import annotations

import csv
import multiprocessing
import os
import random
import shutil
import signal
import time
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
MODEL = REPO / "tests" / "fixtures" / "rtdetr-tiny-FocalModulation.yaml"
KILLS = 20
EPOCHS = 16  # longer than 20 kills can get through (at most one epoch per kill of kinds 1 and 2)

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="SIGKILL and forkserver need a POSIX system")


# ------------------------------------------------------------------------------------------------
# write_atomic
# ------------------------------------------------------------------------------------------------
def test_write_atomic_syncs_file_and_folder_before_and_after_the_rename(tmp_path, monkeypatch):
    from ultralytics.nn import checkpoints

    calls: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(os, "fsync", lambda fd: (calls.append(f"fsync {os.path.isdir(f'/proc/self/fd/{fd}')}"),
                                                 real_fsync(fd))[1])  # fmt: skip
    monkeypatch.setattr(os, "replace", lambda a, b: (calls.append(f"replace {Path(a).parent == Path(b).parent}"),
                                                     real_replace(a, b))[1])  # fmt: skip
    target = tmp_path / "last.pt"
    checkpoints.write_atomic(target, b"new")
    assert target.read_bytes() == b"new"
    assert calls == ["fsync False", "replace True", "fsync True"]  # file synced, same-folder rename, folder synced


def test_write_atomic_keeps_the_old_file_when_the_write_fails(tmp_path, monkeypatch):
    from ultralytics.nn import checkpoints

    target = tmp_path / "last.pt"
    target.write_bytes(b"old")
    stale = tmp_path / ".last.pt.tmp999999"  # left by a writer killed mid-write
    stale.write_bytes(b"half")

    def fail(fd):
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", fail)
    with pytest.raises(OSError, match="disk full"):
        checkpoints.write_atomic(target, b"new")
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".last.pt.tmp999999", "last.pt"]  # own temp removed
    monkeypatch.undo()
    checkpoints.write_atomic(target, b"new")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]  # the next good write clears stale ones


# ------------------------------------------------------------------------------------------------
# Training subprocesses
# ------------------------------------------------------------------------------------------------
def _child(overrides: dict, marker: str, log: str) -> None:
    """Train in a forked subprocess. Log lines go to `log`; events go to `marker`, one line each:
    'write <file>' as a checkpoint write starts (it then takes 0.3 s between its two halves, so the
    parent can kill it mid-write), 'batch' as a batch starts, 'epoch' as validation starts."""
    import logging

    # Python's own Ctrl-C handler, as in a terminal: a process started as a shell's background job
    # (a CI runner, `cmd &`) inherits SIGINT ignored, and the trainer then rightly leaves it alone.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    torch.set_num_threads(1)
    from ultralytics.nn import checkpoints
    from ultralytics.utils import LOGGER

    handler = logging.FileHandler(log)
    handler.setFormatter(logging.Formatter("%(message)s"))
    LOGGER.addHandler(handler)

    def note(event: str) -> None:
        with open(marker, "a") as m:
            m.write(f"{event}\n")

    def slow_write(file: Path, data: bytes) -> None:
        note(f"write {file.name}")
        half = len(data) // 2
        with open(file, "wb") as f:
            f.write(data[:half])
            f.flush()
            time.sleep(0.3)
            f.write(data[half:])
            f.flush()
            os.fsync(f.fileno())

    checkpoints._write_durably = slow_write
    if "cli" in overrides:
        from ultralytics.cfg import entrypoint

        entrypoint(overrides["cli"])
        return
    from ultralytics.models.rtdetr.train import RTDETRTrainer

    trainer = RTDETRTrainer(overrides=overrides)
    trainer.add_callback("on_train_batch_start", lambda tr: note("batch"))
    trainer.add_callback("on_train_epoch_end", lambda tr: note("epoch"))
    trainer.train()


@pytest.fixture(scope="module")
def forks():
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["torch", "ultralytics.models.rtdetr.train", "ultralytics.cfg"])
    return context


def _overrides(data: str, project: Path) -> dict:
    return dict(
        model=str(MODEL),
        data=data,
        epochs=EPOCHS,
        imgsz=64,
        batch=2,
        workers=0,
        device="cpu",
        plots=False,
        seed=0,
        deterministic=True,
        project=str(project),
        name="run",
        exist_ok=True,
    )


def _events(marker: Path, kind: str) -> int:
    """How many events of `kind` ('write', 'batch', 'epoch') the children noted so far."""
    return sum(line.split()[0] == kind for line in marker.read_text().splitlines()) if marker.exists() else 0


def _writes(marker: Path) -> int:
    return _events(marker, "write")


def _wait(predicate, process, timeout: float) -> bool:
    """Poll until predicate() or the process ends; True when predicate() held."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.is_alive():
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def _epochs_in_csv(path: Path) -> list[int]:
    if not path.exists():
        return []
    with open(path, newline="") as f:
        return [int(float(row["epoch"])) for row in csv.DictReader(f)]


def _kill_moment(kill: int, draw: random.Random, marker: Path, process) -> bool:
    """Wait for the moment of kill number `kill`; True when it falls inside a checkpoint write.

    In turn: during the first write of this process (last.pt of its first epoch: nothing gained),
    during its second write (best.pt or the next last.pt: the first is complete), in a batch of the
    epoch after the first write, and during start-up, the first batches or the first validation.
    Moments are counted in events, not seconds, so that a fast machine gets no further per kill.
    """
    writes, batches, epochs = _writes(marker), _events(marker, "batch"), _events(marker, "epoch")
    kind = kill % 4
    if kind in (0, 1):
        hit = _wait(lambda: _writes(marker) > writes + kind, process, timeout=120)
        time.sleep(draw.uniform(0.0, 0.2))  # the write takes 0.3 s
        return hit and process.is_alive()
    if kind == 2:
        _wait(lambda: _writes(marker) > writes, process, timeout=120)
        after = _events(marker, "batch") + draw.randint(1, 2)
        _wait(lambda: _events(marker, "batch") >= after, process, timeout=120)
    elif draw.random() < 0.5:
        _wait(lambda: _events(marker, "epoch") > epochs, process, timeout=120)  # validation has started
        time.sleep(draw.uniform(0.0, 0.1))
    else:
        started = batches + draw.randint(-1, 1)  # -1: kill during start-up
        _wait(lambda: _events(marker, "batch") > started, process, timeout=120)
    return False


def test_sigkill_at_many_moments_leaves_a_loadable_last_pt_and_the_run_resumes(forks, tiny_dataset, tmp_path):
    from ultralytics.nn.checkpoints import torch_safe_load

    data = tiny_dataset(n_train=4, n_val=2)
    fresh = _overrides(data, tmp_path / "runs")
    run = tmp_path / "runs" / "run"
    last, marker, log = run / "weights" / "last.pt", tmp_path / "writes.txt", tmp_path / "log.txt"
    draw = random.Random(0)
    mid_write_kills = loaded = 0
    epochs_saved: list[int] = []
    for kill in range(KILLS):
        if not last.exists():
            shutil.rmtree(run, ignore_errors=True)  # no checkpoint yet: the restart is a new run
        overrides = {"resume": str(last), "model": str(last)} if last.exists() else fresh
        process = forks.Process(target=_child, args=(overrides, str(marker), str(log)))
        process.start()
        mid_write_kills += _kill_moment(kill, draw, marker, process)
        assert process.is_alive(), f"the run finished before kill {kill + 1}; make it longer"
        os.kill(process.pid, signal.SIGKILL)
        process.join()
        assert process.exitcode == -signal.SIGKILL
        if last.exists():
            ckpt, _ = torch_safe_load(last)  # never half a file
            assert ckpt["epoch"] >= 0 and ckpt["resume_state"]["loop"] is not None
            epochs_saved.append(ckpt["epoch"])
            loaded += 1
    assert mid_write_kills >= KILLS // 2 - 2 and loaded >= KILLS // 2
    assert epochs_saved == sorted(epochs_saved)  # a kill never takes a run back

    process = forks.Process(target=_child, args=({"resume": str(last), "model": str(last)}, str(marker), str(log)))
    process.start()
    process.join(timeout=600)
    assert process.exitcode == 0
    assert _epochs_in_csv(run / "results.csv") == list(range(1, EPOCHS + 1))
    ckpt, _ = torch_safe_load(last)
    assert ckpt["epoch"] == -1  # finished and stripped
    assert not list(last.parent.glob(".*.tmp*"))  # no temporary files left behind


def test_ctrl_c_stops_at_a_step_boundary_and_prints_the_resume_command(forks, tiny_dataset, tmp_path):
    from ultralytics.nn.checkpoints import torch_safe_load

    data = tiny_dataset(n_train=4, n_val=2)
    run = tmp_path / "runs" / "run"
    last, marker, log = run / "weights" / "last.pt", tmp_path / "writes.txt", tmp_path / "log.txt"
    process = forks.Process(target=_child, args=(_overrides(data, tmp_path / "runs"), str(marker), str(log)))
    process.start()
    assert _wait(lambda: _writes(marker) >= 1, process, timeout=120)  # the first checkpoint is being written
    os.kill(process.pid, signal.SIGINT)  # arrives mid-write: the write completes, the loop stops after it
    process.join(timeout=120)
    assert process.exitcode == 1  # KeyboardInterrupt

    text = log.read_text()
    assert "Ctrl-C: stopping after the current step" in text
    command = f"yolo train resume model={last}"
    assert f"{last} holds epoch 1; '{command}' continues it" in text
    ckpt, _ = torch_safe_load(last)
    done = _epochs_in_csv(run / "results.csv")
    assert ckpt["epoch"] == 0 and done == [1]  # the complete first epoch, nothing of the second
    assert "resume_state" in ckpt

    process = forks.Process(target=_child, args=({"cli": command}, str(marker), str(log)))
    process.start()
    process.join(timeout=300)
    assert process.exitcode == 0
    assert _epochs_in_csv(run / "results.csv") == list(range(1, EPOCHS + 1))
