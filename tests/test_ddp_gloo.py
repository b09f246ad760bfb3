"""Distributed training that really runs: two CPU ranks under torchrun with the gloo backend.

One module-scoped run trains the tiny fixture model for 2 epochs at 64 px on 8 images with
`python -m torch.distributed.run --nproc_per_node 2` started as a user would (each rank one thread);
a probe script records what each rank trained on, its parameters and every file it wrote under the
run folder. A second, smaller run goes through the launcher that `device=0,1` uses. The other tests
check how a process reads its place from torchrun's variables, and a gloo group of one in-process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
TINY_MODEL = REPO / "tests" / "fixtures" / "rtdetr-tiny-FocalModulation.yaml"
N_TRAIN = 8  # divisible by the 2 ranks, so that DistributedSampler pads nothing and the shards are disjoint
EPOCHS = 2
STATES = ("params", "start")  # the probe's files per rank: final weights, weights at on_train_start

# Run under torchrun, once per rank. argv: data yaml, project folder, folder for the probe's records.
PROBE = '''
import json
import os
import sys
from pathlib import Path

import torch

WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
data, project, records = sys.argv[1:4]
rank = int(os.environ["RANK"])
writes = []


def audit(event, args):
    """Every file or folder this rank creates, changes or removes under the project folder."""
    if event == "open":
        path, mode, flags = args
        writing = any(c in (mode or "") for c in "wax+") or bool((flags or 0) & WRITE_FLAGS)
        paths = [path] if writing else []
    elif event in {"os.mkdir", "os.remove", "os.rmdir", "shutil.rmtree", "os.rename", "os.replace"}:
        paths = [args[0]] + ([args[1]] if event in {"os.rename", "os.replace"} else [])
    else:
        return
    for path in paths:
        if isinstance(path, (str, os.PathLike)) and str(Path(os.fspath(path)).absolute()).startswith(project):
            writes.append(f"{event} {path}")


sys.addaudithook(audit)

from ultralytics import RTDETR
from ultralytics.models.rtdetr.train import RTDETRTrainer
from ultralytics.utils.torch_utils import de_parallel

seen = {}


class ProbeTrainer(RTDETRTrainer):
    def preprocess_batch(self, batch):
        seen.setdefault(self.epoch, []).extend(Path(f).name for f in batch["im_file"])
        return super().preprocess_batch(batch)


def parameters(trainer):
    return {name: p.detach().clone() for name, p in de_parallel(trainer.model).named_parameters()}


def snapshot(trainer):
    """on_train_start: the weights as training begins (DDP has broadcast rank 0's by then)."""
    torch.save(parameters(trainer), Path(records) / f"start{rank}.pt")


def dump(trainer):
    """teardown runs on every rank (on_train_end only on rank 0): record this rank's final state."""
    torch.save(parameters(trainer), Path(records) / f"params{rank}.pt")
    record = {
        "seen": seen,
        "writes": writes,
        "save_dir": str(trainer.save_dir),
        "backend": torch.distributed.get_backend(),
        "world_size": torch.distributed.get_world_size(),
        "threads": torch.get_num_threads(),
        "batch_size": trainer.train_loader.batch_size,
        "rect": trainer.args.rect,
    }
    (Path(records) / f"rank{rank}.json").write_text(json.dumps(record))


model = RTDETR(TINY_MODEL)
model.add_callback("on_train_start", snapshot)
model.add_callback("teardown", dump)
model.train(
    trainer=ProbeTrainer, data=data, epochs=EPOCHS, imgsz=64, batch=4, workers=0, device="cpu",
    project=project, name="train", plots=False, seed=0, rect=True,  # rect batches cannot be sharded: turned off
)
'''


def _free_port() -> int:
    from ultralytics.utils.dist import find_free_network_port

    return find_free_network_port()


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory, tiny_dataset) -> SimpleNamespace:
    """The 2-rank run's run folder and each rank's records (seen images, writes, parameters)."""
    root = tmp_path_factory.mktemp("ddp")
    project, records = root / "runs", root / "records"
    records.mkdir()
    script = root / "probe.py"
    script.write_text(PROBE.replace("TINY_MODEL", repr(str(TINY_MODEL))).replace("EPOCHS", str(EPOCHS)))
    data = tiny_dataset(n_train=N_TRAIN, n_val=2)
    launcher = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2"]
    rendezvous = ["--master_addr", "127.0.0.1", "--master_port", str(_free_port())]
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
        "ULTRALYTICS_RUNS_DIR": str(root / "default-runs"),
        "ULTRALYTICS_DATASETS_DIR": str(root / "datasets"),
    }
    command = [*launcher, *rendezvous, str(script), data, str(project), str(records)]
    proc = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    ranks = [json.loads((records / f"rank{r}.json").read_text()) for r in range(2)]
    params, start = ([torch.load(records / f"{kind}{r}.pt", weights_only=True) for r in (0, 1)] for kind in STATES)
    return SimpleNamespace(project=project, run=project / "train", ranks=ranks, params=params, start=start)


def test_ranks_join_one_gloo_group_on_the_cpu(ddp_run):
    for record in ddp_run.ranks:
        assert record["backend"] == "gloo" and record["world_size"] == 2
        assert record["threads"] == 1  # OMP_NUM_THREADS is honoured, not replaced by the host's thread count
        assert record["batch_size"] == 2  # batch=4 is the global batch: 2 images per rank
        assert record["rect"] is False


def test_each_rank_trains_on_a_disjoint_shard(ddp_run):
    first, second = (record["seen"] for record in ddp_run.ranks)
    assert sorted(first) == sorted(second) == [str(e) for e in range(EPOCHS)]
    for epoch in first:
        a, b = first[epoch], second[epoch]
        assert len(a) == len(set(a)) == N_TRAIN // 2 and len(b) == len(set(b)) == N_TRAIN // 2
        assert not set(a) & set(b), f"epoch {epoch}: both ranks trained on {sorted(set(a) & set(b))}"
        assert set(a) | set(b) == {f"im{i}.jpg" for i in range(N_TRAIN)}
    assert first["0"] != first["1"]  # set_epoch reshuffles the shards every epoch


def test_parameters_are_identical_on_both_ranks(ddp_run):
    rank0, rank1 = ddp_run.params
    assert list(rank0) == list(rank1) and len(rank0) > 10
    differing = [name for name in rank0 if not torch.equal(rank0[name], rank1[name])]
    assert not differing, f"parameters differ between the ranks: {differing[:5]}"
    start0, start1 = ddp_run.start
    assert all(torch.equal(start0[name], start1[name]) for name in start0)  # DDP starts both from rank 0's
    trained = [name for name in rank0 if not torch.equal(rank0[name], start0[name])]
    assert len(trained) > len(rank0) // 2  # the optimizer did step: equality is not from untouched weights


def test_only_rank_0_writes_the_run_folder(ddp_run):
    rank0, rank1 = ddp_run.ranks
    assert rank1["writes"] == [], rank1["writes"][:10]
    assert any("results.csv" in write for write in rank0["writes"])  # the probe does see writes
    assert rank0["save_dir"] == rank1["save_dir"] == str(ddp_run.run)  # ranks agree on the run folder
    assert [p.name for p in ddp_run.project.iterdir()] == ["train"]
    assert {p.name for p in (ddp_run.run / "weights").iterdir()} == {"best.pt", "last.pt"}


def test_results_csv_has_one_row_per_epoch(ddp_run):
    from ultralytics.utils import results_csv

    table = results_csv.read(ddp_run.run / "results.csv")
    assert table["epoch"] == [float(e + 1) for e in range(EPOCHS)]


def test_best_pt_loads_and_predicts(ddp_run):
    import numpy as np

    from ultralytics import RTDETR

    model = RTDETR(str(ddp_run.run / "weights" / "best.pt"))
    image = np.full((64, 64, 3), 40, np.uint8)
    image[10:40, 12:44] = (0, 0, 255)
    (result,) = model.predict(image, imgsz=64, conf=0.0, device="cpu", verbose=False)
    assert result.boxes.data.shape[1] == 6 and len(result.boxes) > 0
    assert set(model.names.values()) == {"red", "green"}


# ------------------------------------------------------------------------------------------------
# Reading the process's place from torchrun's environment (no process group needed)
# ------------------------------------------------------------------------------------------------
def _placement_env(monkeypatch, **values: str) -> None:
    for name in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in values.items():
        monkeypatch.setenv(name, value)


def test_placement_comes_from_torchrun_variables(monkeypatch):
    from ultralytics.engine.distributed import DistributedRun

    _placement_env(monkeypatch, RANK="3", LOCAL_RANK="1", WORLD_SIZE="4")  # 2 nodes x 2 processes, node 1
    run = DistributedRun.for_device("cpu")
    assert (run.rank, run.local_rank, run.world_size) == (3, 1, 4)
    assert run.is_worker and not run.is_main and not run.must_launch  # torchrun started it: never relaunch
    assert run.batch_per_rank(16) == 4
    with pytest.raises(ValueError, match=r"batch=10 .* 4 processes .* e\.g\. batch=8"):
        run.batch_per_rank(10)

    _placement_env(monkeypatch)
    alone = DistributedRun.for_device("cpu")
    assert (alone.rank, alone.world_size, alone.is_worker) == (-1, 0, False)


@pytest.mark.parametrize(
    "values, message",
    [
        ({"RANK": "0"}, "WORLD_SIZE is not set while RANK is"),
        ({"RANK": "x", "WORLD_SIZE": "2"}, "RANK='x' is not an integer"),
        ({"RANK": "2", "WORLD_SIZE": "2"}, r"RANK=2 is outside 0\.\.WORLD_SIZE-1"),
    ],
)
def test_inconsistent_torchrun_variables_are_named(monkeypatch, values, message):
    from ultralytics.engine.distributed import DistributedRun

    _placement_env(monkeypatch, **values)
    with pytest.raises(ValueError, match=message):
        DistributedRun.for_device("cpu")


def test_rank_devices(monkeypatch):
    from ultralytics.engine.distributed import DistributedRun, listed_gpus

    assert listed_gpus("0, 2") == [0, 2] and listed_gpus([1, 3]) == [1, 3] and listed_gpus("cpu") == []
    run = DistributedRun(world_size=2, rank=1, local_rank=1)
    assert run._rank_device("cpu") == torch.device("cpu")
    with pytest.raises(ValueError, match="device=mps cannot train distributed"):
        run._rank_device("mps")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    assert run._rank_device("2,3") == torch.device("cuda", 3)  # the LOCAL_RANK-th listed GPU
    assert run._rank_device("") == torch.device("cuda", 1)  # one GPU per process by LOCAL_RANK
    third = DistributedRun(world_size=3, rank=2, local_rank=2)
    with pytest.raises(ValueError, match="lists 2 GPUs but this process has LOCAL_RANK=2"):
        third._rank_device("0,1")


def test_join_without_a_launcher_says_how_to_start(monkeypatch):
    from ultralytics.engine.distributed import DistributedRun

    for name in ("MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ValueError, match="MASTER_ADDR, MASTER_PORT not set.*torchrun --nproc_per_node"):
        DistributedRun(world_size=2, rank=0, local_rank=0).join("cpu")


def test_launcher_runs_its_generated_script_as_two_ranks(tmp_path, tiny_dataset, monkeypatch):
    """What `device=0,1` does, on the CPU: DistributedRun.launch writes the worker script and runs it under
    torch.distributed.run; the workers rebuild the trainer from its arguments and train as 2 gloo ranks."""
    from ultralytics.engine.distributed import DistributedRun
    from ultralytics.models.rtdetr.train import RTDETRTrainer

    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    overrides = dict(model=str(TINY_MODEL), data=tiny_dataset(n_train=4, n_val=2), epochs=1, imgsz=64, batch=2)
    overrides.update(workers=0, device="cpu", plots=False, val=False, project=str(tmp_path / "runs"), name="train")
    trainer = RTDETRTrainer(overrides=overrides)
    launched, real_run = [], subprocess.run

    def run_and_keep(command, **kwargs):
        launched.append(real_run(command, capture_output=True, text=True, **kwargs))
        return launched[-1]

    monkeypatch.setattr(subprocess, "run", run_and_keep)
    DistributedRun(world_size=2, rank=-1, local_rank=-1).launch(trainer)
    (done,) = launched
    command = done.args
    assert "2 processes, gloo backend" in done.stdout, done.stdout[-3000:]  # the workers joined as 2 ranks
    assert command[3:5] == ["--nproc_per_node", "2"] and not Path(command[-1]).exists()  # script removed
    rows = (trainer.save_dir / "results.csv").read_text().splitlines()
    assert len(rows) == 2 and (trainer.save_dir / "weights" / "last.pt").exists()  # header + epoch 1


def test_one_rank_group_in_process(monkeypatch):
    """join / agreement / wrap / leave on a real gloo group of one (torchrun --nproc_per_node 1)."""
    from ultralytics.engine.distributed import DistributedRun

    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", str(_free_port()))
    monkeypatch.setenv("OMP_NUM_THREADS", str(torch.get_num_threads()))  # leave this process's threads as they are
    run = DistributedRun(world_size=1, rank=0, local_rank=0)
    try:
        assert run.join("cpu") == torch.device("cpu") and torch.distributed.get_backend() == "gloo"
        assert run.join("cpu") == torch.device("cpu")  # a second join (from _do_train) keeps the group
        assert run.rank0_flag(True, run.device) is True and run.rank0_value({"dir": "runs/train"}) == {"dir": "runs/train"}
        assert run.any_rank(True, run.device) and not run.any_rank(False, run.device)
        assert isinstance(run.wrap(torch.nn.Linear(2, 2)), torch.nn.parallel.DistributedDataParallel)
    finally:
        run.leave()
    assert not torch.distributed.is_initialized()


def _fake_parent_trainer(cls, tmp_path: Path):
    """A trainer object as the launching process holds it, without building data or a model."""
    from ultralytics.utils.callbacks import get_default_callbacks

    trainer = cls.__new__(cls)
    trainer.args = SimpleNamespace(model="rtdetr-l.yaml", data="shapes.yaml", device="0,1", rect=False, batch=4)
    trainer.args.save_dir = trainer.save_dir = tmp_path / "run"
    trainer.resume, trainer.callbacks = False, get_default_callbacks()
    return trainer


def test_launcher_refuses_a_trainer_class_from_main(tmp_path):
    from ultralytics.engine.distributed import DistributedRun
    from ultralytics.models.rtdetr.train import RTDETRTrainer

    in_script = type("MyTrainer", (RTDETRTrainer,), {"__module__": "__main__"})
    with pytest.raises(ValueError, match=r"MyTrainer is defined in the script being run .*torchrun --nproc_per_node 2"):
        DistributedRun(world_size=2, rank=-1, local_rank=-1).launch(_fake_parent_trainer(in_script, tmp_path))


def test_launcher_warns_that_added_callbacks_stay_behind(tmp_path, monkeypatch, captured_log):
    from ultralytics.engine.distributed import DistributedRun
    from ultralytics.models.rtdetr.train import RTDETRTrainer

    def log_epoch(trainer):
        pass

    trainer = _fake_parent_trainer(RTDETRTrainer, tmp_path)
    trainer.callbacks["on_fit_epoch_end"].append(log_epoch)
    launched = []
    monkeypatch.setattr(subprocess, "run", lambda command, **kwargs: launched.append(command))
    with captured_log() as messages:
        DistributedRun(world_size=2, rank=-1, local_rank=-1).launch(trainer)
    assert len(launched) == 1
    warning = [m for m in messages if "do not reach the DDP worker processes" in m]
    assert warning and "on_fit_epoch_end: log_epoch" in warning[0] and "on_train_start" not in warning[0]


class _Numbers(torch.utils.data.Dataset):
    def __len__(self) -> int:
        return 8

    def __getitem__(self, index: int) -> int:
        return index


def test_shard_orders_follow_the_epochs_with_prefetching_workers(monkeypatch):
    """With workers > 0 the loader draws the next epoch's shard before set_epoch; each epoch still gets its
    own order, the same as with workers=0 and as DistributedSampler.set_epoch(e) gives."""
    from torch.utils.data import DistributedSampler

    from ultralytics.data.build import build_dataloader
    from ultralytics.utils.dist import ShardSampler

    reference = DistributedSampler(_Numbers(), num_replicas=1, rank=0)
    expected = []
    for epoch in range(3):
        reference.set_epoch(epoch)
        expected.append(list(reference))
    assert expected[0] != expected[1] != expected[2]

    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", str(_free_port()))
    torch.distributed.init_process_group("gloo", rank=0, world_size=1)
    try:
        for workers in (0, 2):
            loader = build_dataloader(_Numbers(), batch=4, workers=workers, shuffle=True, rank=0)
            orders = []
            for epoch in range(3):
                loader.sampler.set_epoch(epoch)
                orders.append([int(i) for batch in loader for i in batch])
            assert orders == expected, f"workers={workers}"
    finally:
        torch.distributed.destroy_process_group()

    resumed = ShardSampler(_Numbers(), num_replicas=2, rank=1)
    resumed.set_epoch(5)  # a run resumed at epoch 5: the first pass is epoch 5's
    plain = DistributedSampler(_Numbers(), num_replicas=2, rank=1)
    plain.set_epoch(5)
    assert list(resumed) == list(plain)
    resumed.set_epoch(6)  # the trainer's next call changes nothing: the next pass is epoch 6 already
    plain.set_epoch(6)
    assert list(resumed) == list(plain)


def test_uneven_batch_is_refused_before_the_run_folder_exists(tmp_path, tiny_dataset, monkeypatch):
    from ultralytics.models.rtdetr.train import RTDETRTrainer

    _placement_env(monkeypatch, RANK="0", LOCAL_RANK="0", WORLD_SIZE="2")
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", str(_free_port()))
    monkeypatch.setattr(torch.distributed, "init_process_group", lambda *a, **k: None)  # no second rank comes
    overrides = dict(model=str(TINY_MODEL), data=tiny_dataset(n_train=2, n_val=1), imgsz=64, batch=5, device="cpu")
    monkeypatch.setenv("OMP_NUM_THREADS", str(torch.get_num_threads()))
    with pytest.raises(ValueError, match=r"batch=5 is the total over all 2 processes .* e\.g\. batch=4"):
        RTDETRTrainer(overrides={**overrides, "project": str(tmp_path / "runs")})
    assert not (tmp_path / "runs").exists()
