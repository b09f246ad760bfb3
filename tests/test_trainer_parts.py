"""The trainer's parts on their own: distributed context, optimizer set-up, checkpoint layout, callbacks."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn


# ------------------------------------------------------------------------------------------------
# engine/distributed.py
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "device, expected",
    [("cpu", 0), ("mps", 0), ("0", 1), ("cuda:0", 1), ("0,1", 2), ("0, 1,2", 3), (0, 1), ([0, 1], 2), ((2, 3), 2)],
)
def test_count_devices(device, expected):
    from ultralytics.engine.distributed import count_devices

    assert count_devices(device) == expected


def test_single_process_run_is_the_identity():
    from ultralytics.engine.distributed import DistributedRun

    run = DistributedRun(world_size=0, rank=-1, local_rank=-1)
    assert run.is_main and not run.is_worker and not run.multi_gpu and not run.must_launch
    model = nn.Linear(2, 2)
    assert run.wrap(model) is model
    assert run.join() is None
    loss = torch.tensor(2.5)
    assert run.scale_loss(loss) is loss
    assert run.rank0_stop(True) is True and run.rank0_stop(False) is False
    assert run.any_rank(True, torch.device("cpu")) and not run.any_rank(False, torch.device("cpu"))
    assert run.rank0_flag(True, torch.device("cpu")) is True
    assert run.batch_per_rank(16) == 16 and run.loader_workers(4) == 4


def test_worker_of_a_two_gpu_run(monkeypatch):
    from ultralytics.engine.distributed import DistributedRun

    monkeypatch.delenv("LOCAL_RANK", raising=False)
    parent = DistributedRun(world_size=2, rank=-1, local_rank=-1)
    assert parent.must_launch  # the launching process only starts workers
    worker = DistributedRun(world_size=2, rank=1, local_rank=1)
    assert worker.is_worker and not worker.is_main
    assert worker.batch_per_rank(16) == 8 and worker.loader_workers(3) == 6
    assert float(worker.scale_loss(torch.tensor(1.5))) == 3.0  # DDP averages gradients over 2 ranks


# ------------------------------------------------------------------------------------------------
# engine/optimization.py
# ------------------------------------------------------------------------------------------------
def _toy_model() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.LayerNorm(4), nn.Linear(4, 2))


def test_split_parameters_into_the_three_groups():
    from ultralytics.engine.optimization import split_parameters

    model = _toy_model()
    groups = split_parameters(model)
    names = {id(p): n for n, p in model.named_parameters()}
    assert [names[id(p)] for p in groups.biases] == ["0.bias", "1.bias", "3.bias", "4.bias"]
    assert [names[id(p)] for p in groups.weights] == ["0.weight", "4.weight"]
    assert [names[id(p)] for p in groups.norms] == ["1.weight", "3.weight"]


def test_auto_settings_and_unknown_names():
    from ultralytics.engine.optimization import (
        auto_settings,
        canonical_name,
        make_optimizer,
        split_parameters,
    )

    assert auto_settings(10000, nc=6) == ("AdamW", round(0.002 * 5 / 10, 6), 0.9)
    assert auto_settings(10001, nc=6) == ("SGD", 0.01, 0.9)
    assert canonical_name("adamw") == "AdamW" and canonical_name("RMSPROP") == "RMSProp"
    with pytest.raises(NotImplementedError, match="optimizer='auto' not found"):
        canonical_name("auto")  # build_optimizer resolves auto before it gets here
    opt = make_optimizer("sgd", split_parameters(_toy_model()), lr=0.1, momentum=0.8, decay=1e-3)
    assert [g["weight_decay"] for g in opt.param_groups] == [0.0, 1e-3, 0.0]
    assert opt.param_groups[0]["momentum"] == 0.8 and opt.param_groups[0]["nesterov"] is True


def test_lr_factor_linear_follows_the_current_epoch_count():
    from ultralytics.engine.optimization import lr_factor

    epochs = [10]
    linear = lr_factor(False, 0.01, lambda: epochs[0])
    assert linear(0) == 1.0 and linear(10) == pytest.approx(0.01) and linear(20) == pytest.approx(0.01)
    assert linear(5) == max(1 - 5 / 10, 0) * (1.0 - 0.01) + 0.01
    epochs[0] = 20  # a resumed fine-tuning run extends the schedule
    assert linear(10) == max(1 - 10 / 20, 0) * (1.0 - 0.01) + 0.01
    cosine = lr_factor(True, 0.01, lambda: 10)
    assert cosine(0) == pytest.approx(1.0) and cosine(10) == pytest.approx(0.01)


def test_warm_up_ramps_lr_momentum_and_accumulation():
    from ultralytics.engine.optimization import (
        make_optimizer,
        split_parameters,
        warm_up,
        warm_up_accumulation,
    )

    opt = make_optimizer("SGD", split_parameters(_toy_model()), lr=0.02, momentum=0.9, decay=0.0)
    for group in opt.param_groups:
        group["initial_lr"] = 0.02
    warm_up(opt, step=0, steps=100, scheduled=0.5, bias_lr=0.1, momentum=(0.8, 0.9))
    assert [g["lr"] for g in opt.param_groups] == [0.1, 0.0, 0.0]
    assert [g["momentum"] for g in opt.param_groups] == [0.8, 0.8, 0.8]
    warm_up(opt, step=100, steps=100, scheduled=0.5, bias_lr=0.1, momentum=(0.8, 0.9))
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([0.01, 0.01, 0.01])
    assert [g["momentum"] for g in opt.param_groups] == pytest.approx([0.9, 0.9, 0.9])
    assert [warm_up_accumulation(s, 100, 8.0) for s in (0, 50, 100)] == [1, 4, 8]


# ------------------------------------------------------------------------------------------------
# engine/training_checkpoint.py
# ------------------------------------------------------------------------------------------------
def test_payload_layout_and_restore(tmp_path):
    from types import SimpleNamespace

    from ultralytics.engine import training_checkpoint
    from ultralytics.utils.torch_utils import ModelEMA

    model = _toy_model()
    ema = ModelEMA(model)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model(torch.rand(2, 3, 3, 3)).sum().backward()
    opt.step()
    ckpt = training_checkpoint.payload(
        epoch=3,
        best_fitness=0.5,
        ema=ema,
        optimizer=opt,
        args=SimpleNamespace(epochs=10),
        metrics={"metrics/mAP50(B)": 0.4},
        fitness=0.5,
        results={"epoch": [1.0]},
    )
    assert list(ckpt) == [
        "epoch", "best_fitness", "model", "ema", "updates", "optimizer", "train_args",
        "train_metrics", "train_results", "date", "version", "license", "docs",
    ]  # fmt: skip
    assert ckpt["model"] is None and next(ckpt["ema"].parameters()).dtype == torch.float16
    assert ckpt["train_metrics"] == {"metrics/mAP50(B)": 0.4, "fitness": 0.5}

    targets = [tmp_path / "last.pt", tmp_path / "best.pt"]
    training_checkpoint.write(ckpt, targets)
    assert targets[0].read_bytes() == targets[1].read_bytes()

    fresh_opt = torch.optim.AdamW(_toy_model().parameters(), lr=1e-3)
    fresh_ema = ModelEMA(_toy_model())
    assert training_checkpoint.restore(ckpt, fresh_opt, fresh_ema) == 0.5
    assert fresh_ema.updates == ema.updates and len(fresh_opt.state_dict()["state"]) > 0
    assert training_checkpoint.restore({**ckpt, "optimizer": None}, fresh_opt, None) == 0.0


def test_resolve_resume_errors(tmp_path):
    from ultralytics.engine import training_checkpoint

    with pytest.raises(FileNotFoundError, match="gone.pt' does not exist"):
        training_checkpoint.resolve_resume(str(tmp_path / "gone.pt"), str(tmp_path))
    with pytest.raises(FileNotFoundError, match="resume=True found no last.pt"):
        training_checkpoint.resolve_resume(True, str(tmp_path))
    (tmp_path / "run" / "weights").mkdir(parents=True)
    (tmp_path / "run" / "weights" / "last.pt").write_bytes(b"")
    assert training_checkpoint.resolve_resume(True, str(tmp_path)).name == "last.pt"
    with pytest.raises(FileNotFoundError, match="not a readable training checkpoint"):
        training_checkpoint.read_train_args(tmp_path / "run" / "weights" / "last.pt")


# ------------------------------------------------------------------------------------------------
# results_csv.elapsed: where a resumed run's `time` column continues
# ------------------------------------------------------------------------------------------------
def test_elapsed_of_files_with_and_without_time(tmp_path):
    from ultralytics.utils import results_csv

    assert results_csv.elapsed(tmp_path / "absent.csv") == 0.0
    with_time = tmp_path / "with.csv"
    results_csv.append(with_time, 1, {"a": 1.0}, elapsed=12.5)
    results_csv.append(with_time, 2, {"a": 1.0}, elapsed=30.25)
    assert results_csv.elapsed(with_time) == 30.25
    without = tmp_path / "without.csv"
    results_csv.append(without, 1, {"a": 1.0})
    assert results_csv.elapsed(without) == 0.0
    (tmp_path / "blank.csv").write_text("epoch,time,a\n1,,2\n")
    assert results_csv.elapsed(tmp_path / "blank.csv") == 0.0 and not math.isnan(results_csv.elapsed(with_time))


# ------------------------------------------------------------------------------------------------
# callbacks
# ------------------------------------------------------------------------------------------------
def test_callback_registries_are_independent():
    from ultralytics.utils.callbacks import default_callbacks, get_default_callbacks

    first, second = get_default_callbacks(), get_default_callbacks()
    first["on_train_start"].append(print)
    assert print not in second["on_train_start"] and print not in default_callbacks["on_train_start"]
    assert list(first) == list(default_callbacks) and second["no_such_event"] == []
