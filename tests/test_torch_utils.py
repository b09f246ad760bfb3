"""Torch helpers: schedules, EMA, early stopping, seeding, devices, fusion and state-dict matching."""

from __future__ import annotations

import math
import os
import random

import numpy as np
import pytest
import torch
import torch.nn as nn

from ultralytics.nn import checkpoints
from ultralytics.utils import torch_utils
from ultralytics.utils.torch_utils import (
    EarlyStopping,
    ModelEMA,
    copy_attr,
    de_parallel,
    fuse_conv_and_bn,
    init_seeds,
    intersect_dicts,
    model_info,
    one_cycle,
    select_device,
)


def test_one_cycle_is_a_cosine_ramp():
    f = one_cycle(1.0, 0.01, steps=10)
    assert f(0) == 1.0
    assert f(10) == pytest.approx(0.01)
    for step in (1, 3, 7):
        assert f(step) == ((1 - math.cos(step * math.pi / 10)) / 2) * (0.01 - 1.0) + 1.0


def test_early_stopping_counts_epochs_without_improvement():
    stopper = EarlyStopping(patience=2)
    assert stopper(0, 0.5) is False
    assert stopper(1, None) is False  # no validation: nothing recorded
    assert stopper(1, 0.4) is False and stopper.possible_stop
    assert stopper(2, 0.3) is True
    assert (stopper.best_epoch, stopper.best_fitness) == (0, 0.5)
    never = EarlyStopping(patience=0)
    assert not any(never(e, 0.0 if e else 1.0) for e in range(50))


def test_model_ema_follows_the_warmed_decay():
    torch.manual_seed(0)
    model = nn.Linear(3, 2)
    ema = ModelEMA(model, decay=0.9, tau=10)
    assert not any(p.requires_grad for p in ema.ema.parameters())
    before = {k: v.clone() for k, v in ema.ema.state_dict().items()}
    with torch.no_grad():
        model.weight.add_(1.0)
    ema.update(model)
    d = 0.9 * (1 - math.exp(-1 / 10))
    assert ema.decay(1) == pytest.approx(d)
    expected = before["weight"] * d + (1 - d) * model.weight
    torch.testing.assert_close(ema.ema.weight, expected)


def test_init_seeds_repeats_every_generator_and_sets_determinism(monkeypatch):
    for name in ("CUBLAS_WORKSPACE_CONFIG", "PYTHONHASHSEED"):
        monkeypatch.delenv(name, raising=False)  # restored afterwards
    try:
        init_seeds(3, deterministic=True)
        first = (random.random(), np.random.rand(), torch.rand(1).item())
        assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8" and os.environ["PYTHONHASHSEED"] == "3"
        assert torch.are_deterministic_algorithms_enabled()
        init_seeds(3)
        assert (random.random(), np.random.rand(), torch.rand(1).item()) == first
        assert not torch.are_deterministic_algorithms_enabled()
        assert "CUBLAS_WORKSPACE_CONFIG" not in os.environ
    finally:
        torch_utils.unset_deterministic()


def test_select_device_cpu_and_bad_requests(monkeypatch):
    threads = []
    monkeypatch.setattr(torch, "set_num_threads", threads.append)
    assert select_device("cpu", verbose=False) == torch.device("cpu")
    assert threads == [torch_utils.NUM_THREADS]
    dev = torch.device("cpu")
    assert select_device(dev) is dev
    with pytest.raises(ValueError, match="Invalid device 'gpu'.*cpu"):
        select_device("gpu", verbose=False)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="Invalid CUDA device '0'"):
            select_device("0", verbose=False)


def test_fuse_conv_and_bn_matches_eval_bn():
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 4, 3, padding=1, bias=False)
    bn = nn.BatchNorm2d(4).eval()
    bn.running_mean.uniform_(-1, 1)
    bn.running_var.uniform_(0.5, 2)
    x = torch.randn(2, 3, 8, 8)
    fused = fuse_conv_and_bn(conv, bn)
    torch.testing.assert_close(fused(x), bn(conv(x)), atol=1e-5, rtol=1e-5)


def test_intersect_dicts_and_copy_attr():
    a = {"w": torch.zeros(2), "b": torch.zeros(3), "head.w": torch.zeros(2)}
    b = {"w": torch.ones(2), "b": torch.ones(4), "head.w": torch.ones(2)}
    assert list(intersect_dicts(a, b, exclude=("head",))) == ["w"]

    class Holder:
        pass

    src, dst = Holder(), Holder()
    src.names, src.args, src._private, src.reducer = {0: "a"}, {"x": 1}, 1, "r"
    copy_attr(dst, src, include=("names", "_private", "reducer"), exclude=("reducer",))
    assert vars(dst) == {"names": {0: "a"}}


def test_model_info_is_silent_when_not_verbose():
    assert model_info(nn.Linear(2, 2), verbose=False) is None
    wrapped = nn.DataParallel(nn.Linear(2, 2))
    assert de_parallel(wrapped) is wrapped.module


def test_fp16_model_copy_leaves_the_model_alone():
    model = nn.Linear(2, 2)
    half = checkpoints.fp16_model_copy(model)
    assert half.weight.dtype == torch.float16 and model.weight.dtype == torch.float32


def test_write_atomic_removes_its_temporary_file_on_failure(tmp_path, monkeypatch):
    target = tmp_path / "last.pt"
    target.write_bytes(b"old")

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(checkpoints.os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        checkpoints.write_atomic(target, b"new")
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]


def test_select_device_cuda_paths_with_a_fake_gpu(monkeypatch):
    """The CUDA branches, on any machine: two fake GPUs; CUDA leaves torch's thread count alone."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda i=0: f"Fake GPU {i}")
    threads = []
    monkeypatch.setattr(torch, "set_num_threads", threads.append)
    assert select_device("") == torch.device("cuda:0")
    assert select_device("cuda:1", verbose=False) == torch.device("cuda:1")
    assert select_device("0,1", batch=4) == torch.device("cuda:0")  # DDP places the other rank
    with pytest.raises(ValueError, match="multiple of the GPU count 2"):
        select_device("0,1", batch=3, verbose=False)
    with pytest.raises(ValueError, match=r"device_count\(\)=2"):
        select_device("2", verbose=False)
    assert threads == []
