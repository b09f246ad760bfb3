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
EPOCHS = 6

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
    """Train in a forked subprocess. Every checkpoint write appends a line to `marker` and then takes
    0.3 s between its two halves, so the parent can kill it mid-write. Log lines go to `log`."""
    import logging

    torch.set_num_threads(1)
    from ultralytics.nn import checkpoints
    from ultralytics.utils import LOGGER

    handler = logging.FileHandler(log)
    handler.setFormatter(logging.Formatter("%(message)s"))
    LOGGER.addHandler(handler)

    def slow_write(file: Path, data: bytes) -> None:
        with open(marker, "a") as m:
            m.write(f"{file.name}\n")
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

    RTDETRTrainer(overrides=overrides).train()


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


def _writes(marker: Path) -> int:
    return len(marker.read_text().splitlines()) if marker.exists() else 0


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


def test_sigkill_at_many_moments_leaves_a_loadable_last_pt_and_the_run_resumes(forks, tiny_dataset, tmp_path):
    from ultralytics.nn.checkpoints import torch_safe_load

    data = tiny_dataset(n_train=4, n_val=2)
    fresh = _overrides(data, tmp_path / "runs")
    run = tmp_path / "runs" / "run"
    last, marker, log = run / "weights" / "last.pt", tmp_path / "writes.txt", tmp_path / "log.txt"
    draw = random.Random(0)
    mid_write_kills = loaded = 0
    for kill in range(KILLS):
        if not last.exists():
            shutil.rmtree(run, ignore_errors=True)  # no checkpoint yet: the restart is a new run
        overrides = {"resume": str(last), "model": str(last)} if last.exists() else fresh
        process = forks.Process(target=_child, args=(overrides, str(marker), str(log)))
        process.start()
        if kill % 2 == 0:  # while a checkpoint is being written
            before = _writes(marker)
            hit = _wait(lambda: _writes(marker) > before, process, timeout=60)
            time.sleep(draw.uniform(0.0, 0.25))
            mid_write_kills += hit and process.is_alive()
        else:  # anywhere: start-up, a batch, validation, the csv row
            time.sleep(draw.uniform(0.2, 3.0))
        if not process.is_alive():
            break  # finished before this kill
        os.kill(process.pid, signal.SIGKILL)
        process.join()
        assert process.exitcode == -signal.SIGKILL
        if last.exists():
            ckpt, _ = torch_safe_load(last)  # never half a file
            assert ckpt["epoch"] >= 0 and ckpt["resume_state"]["loop"] is not None
            loaded += 1
    assert kill == KILLS - 1, f"the run finished after {kill} kills; make it longer"
    assert mid_write_kills >= KILLS // 2 - 2 and loaded > 0

    process = forks.Process(target=_child, args=({"resume": str(last), "model": str(last)}, str(marker), str(log)))
    process.start()
    process.join(timeout=300)
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
    assert f"'{command}' continues it" in text
    ckpt, _ = torch_safe_load(last)
    done = _epochs_in_csv(run / "results.csv")
    assert ckpt["epoch"] == 0 and done == [1]  # the complete first epoch, nothing of the second
    assert "resume_state" in ckpt

    process = forks.Process(target=_child, args=({"cli": command}, str(marker), str(log)))
    process.start()
    process.join(timeout=300)
    assert process.exitcode == 0
    assert _epochs_in_csv(run / "results.csv") == list(range(1, EPOCHS + 1))
