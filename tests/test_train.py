"""Training engine: optimizer, warmup, checkpoints, freeze, NaN guard, overfitting, resume, CLI run.

Mechanism tests use a tiny RT-DETR (60k parameters) on a 6+2 image dataset at 64 px; only the
acceptance test builds the article's rtdetr-l-FocalModulation.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

# Every test runs in its own tmp_path, with runs/ and datasets/ there.
pytestmark = pytest.mark.usefixtures("in_tmp_path")

CHECKPOINT_KEYS = {
    "epoch",
    "best_fitness",
    "model",
    "ema",
    "updates",
    "optimizer",
    "train_args",
    "train_metrics",
    "train_results",
    "date",
    "version",
    "license",
    "docs",
    "resume_state",  # ours, after upstream's keys: see engine/training_checkpoint.py
}


@pytest.fixture(scope="module")
def tiny(tiny_yaml, tiny_dataset) -> SimpleNamespace:
    """Paths of the tiny model yaml and a 6 + 2 image dataset (shared by this module's tests)."""
    return SimpleNamespace(data=tiny_dataset(n_train=6, n_val=2), model=tiny_yaml)


def _overrides(tiny: SimpleNamespace, tmp_path: Path, **kw) -> dict:
    base = dict(
        model=tiny.model,
        data=tiny.data,
        epochs=1,
        imgsz=64,
        batch=2,
        workers=0,
        device="cpu",
        plots=False,
        project=str(tmp_path / "runs"),
        name="train",
    )
    return {**base, **kw}


def _trainer(tiny, tmp_path, **kw):
    from ultralytics.models.rtdetr.train import RTDETRTrainer

    return RTDETRTrainer(overrides=_overrides(tiny, tmp_path, **kw))


def _read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


# ------------------------------------------------------------------------------------------------
# Optimizer
# ------------------------------------------------------------------------------------------------
def test_optimizer_auto_and_param_groups(tiny, tmp_path):
    from ultralytics.nn.tasks import RTDETRDetectionModel

    trainer = _trainer(tiny, tmp_path)
    model = RTDETRDetectionModel(tiny.model, nc=2, verbose=False)

    short = trainer.build_optimizer(model, name="auto", lr=0.01, momentum=0.937, decay=5e-4, iterations=100)
    assert type(short).__name__ == "AdamW"
    assert short.param_groups[0]["lr"] == pytest.approx(round(0.002 * 5 / (4 + 2), 6))
    assert short.param_groups[0]["betas"][0] == 0.9
    assert trainer.args.warmup_bias_lr == 0.0  # auto disables the high bias warmup lr

    long = trainer.build_optimizer(model, name="auto", iterations=20000)
    assert type(long).__name__ == "SGD" and long.param_groups[0]["lr"] == 0.01
    assert long.param_groups[0]["nesterov"] is True

    for name, cls in (("sgd", "SGD"), ("Adam", "Adam"), ("AdamW", "AdamW"), ("RMSProp", "RMSprop"), ("NAdam", "NAdam")):
        assert type(trainer.build_optimizer(model, name=name)).__name__ == cls

    opt = trainer.build_optimizer(model, name="SGD", lr=0.02, momentum=0.9, decay=1e-3)
    pg0, pg1, pg2 = opt.param_groups
    names = {id(p): n for n, p in model.named_parameters()}
    norm_ids = {
        id(p) for m in model.modules() if isinstance(m, (torch.nn.BatchNorm2d, torch.nn.LayerNorm)) for p in m.parameters(recurse=False)
    }
    assert all("bias" in names[id(p)] for p in pg0["params"]) and pg0["weight_decay"] == 0.0
    assert all("bias" not in names[id(p)] and id(p) not in norm_ids for p in pg1["params"]) and pg1["weight_decay"] == 1e-3
    assert all(id(p) in norm_ids for p in pg2["params"]) and pg2["weight_decay"] == 0.0
    assert len(pg0["params"]) + len(pg1["params"]) + len(pg2["params"]) == len(list(model.parameters()))

    with pytest.raises(NotImplementedError, match="Lion.*not found.*SGD"):
        trainer.build_optimizer(model, name="Lion")


# ------------------------------------------------------------------------------------------------
# One short run checked from the inside: warmup, checkpoint layout, freeze, CPU-only paths
# ------------------------------------------------------------------------------------------------
def test_training_run_mechanics(tiny, tmp_path, results_columns):
    trainer = _trainer(tiny, tmp_path, optimizer="SGD", lr0=0.02, freeze=[0])
    seen: dict = {}

    def first_batch(tr):
        if "lr" not in seen:
            seen["lr"] = [g["lr"] for g in tr.optimizer.param_groups]
            seen["momentum"] = [g["momentum"] for g in tr.optimizer.param_groups]

    def at_start(tr):
        seen["frozen_before"] = {k: v.detach().clone() for k, v in tr.model.named_parameters() if k.startswith("model.0.")}
        seen["free_before"] = tr.model.model[1].state_dict()["m.0.conv.weight"].clone()

    def on_save(tr):
        seen["ckpt"] = torch.load(tr.last, map_location="cpu", weights_only=False)

    trainer.add_callback("on_train_start", at_start)
    trainer.add_callback("on_train_batch_end", first_batch)
    trainer.add_callback("on_model_save", on_save)
    trainer.train()

    # Warmup at iteration 0: bias lr from warmup_bias_lr, the others from 0, momentum from warmup_momentum.
    assert seen["lr"] == pytest.approx([0.1, 0.0, 0.0])
    assert seen["momentum"] == pytest.approx([0.8, 0.8, 0.8])

    # CPU run: no AMP, the scaler is a no-op.
    assert trainer.amp is False and not trainer.scaler.is_enabled()

    # Freeze: layer 0 gets no gradient and does not move; layer 1 does.
    model = trainer.model
    assert all(not p.requires_grad for k, p in model.named_parameters() if k.startswith("model.0."))
    for k, v in seen["frozen_before"].items():
        assert torch.equal(dict(model.named_parameters())[k].detach(), v), k
    assert not torch.equal(model.model[1].state_dict()["m.0.conv.weight"], seen["free_before"])

    # Checkpoint as written during training (before the final strip).
    ckpt = seen["ckpt"]
    assert set(ckpt) == CHECKPOINT_KEYS
    assert ckpt["model"] is None and ckpt["epoch"] == 0
    assert next(ckpt["ema"].parameters()).dtype == torch.float16
    import ultralytics

    assert ckpt["version"] == ultralytics.__version__
    assert ckpt["train_args"]["data"] == tiny.data and ckpt["train_args"]["epochs"] == 1
    assert ckpt["updates"] == trainer.ema.updates > 0
    states = [t for s in ckpt["optimizer"]["state"].values() for k, t in s.items() if k != "step"]
    assert states and all(t.dtype == torch.float16 for t in states)
    assert list(ckpt["train_results"]) == results_columns

    # Run folder; after the final strip last.pt is an inference checkpoint.
    save_dir = Path(trainer.save_dir)
    assert save_dir == tmp_path / "runs" / "train"
    for f in ("args.yaml", "results.csv", "weights/last.pt", "weights/best.pt"):
        assert (save_dir / f).is_file(), f
    rows = _read_csv(save_dir / "results.csv")
    assert list(rows[0]) == results_columns and [r["epoch"] for r in rows] == ["1"]
    assert all(math.isfinite(float(v)) for v in rows[0].values())
    final = torch.load(save_dir / "weights" / "last.pt", map_location="cpu", weights_only=False)
    assert final["optimizer"] is None and final["epoch"] == -1 and final["model"] is not None

    # A second run with the same project/name gets a new numbered folder.
    assert Path(_trainer(tiny, tmp_path).save_dir).name == "train2"


def test_time_limit_overrides_epochs(tiny, tmp_path):
    """time= (hours) wins over epochs: a budget far below one epoch stops after the first."""
    trainer = _trainer(tiny, tmp_path, epochs=50, time=1e-5, val=False)
    trainer.train()
    assert [r["epoch"] for r in _read_csv(trainer.csv)] == ["1"]
    assert trainer.epochs < 50  # re-estimated from the measured epoch time
    assert (Path(trainer.save_dir) / "weights" / "last.pt").is_file()


def test_atomic_checkpoint_write(tmp_path, monkeypatch):
    """A failed write never leaves a partial file where the checkpoint was."""
    from ultralytics.nn import checkpoints

    target = tmp_path / "last.pt"
    target.write_bytes(b"old checkpoint")
    checkpoints.write_atomic(target, b"new checkpoint")
    assert target.read_bytes() == b"new checkpoint"

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(checkpoints.os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        checkpoints.write_atomic(target, b"x" * 1000)
    assert target.read_bytes() == b"new checkpoint"


# ------------------------------------------------------------------------------------------------
# Non-finite loss guard
# ------------------------------------------------------------------------------------------------
def test_nonfinite_loss_skips_optimizer_step(tiny, tmp_path, captured_log):
    from ultralytics.nn.tasks import RTDETRDetectionModel
    from ultralytics.utils.torch_utils import ModelEMA

    trainer = _trainer(tiny, tmp_path)
    model = RTDETRDetectionModel(tiny.model, nc=2, verbose=False).train()
    trainer.model, trainer.amp = model, False
    trainer.scaler = torch.amp.GradScaler("cuda", enabled=False)
    trainer.optimizer = trainer.build_optimizer(model, name="SGD", lr=0.01)
    trainer.ema = ModelEMA(model)
    batch = {
        "img": torch.rand(2, 3, 64, 64),
        "cls": torch.tensor([[0.0], [1.0]]),
        "bboxes": torch.tensor([[0.3, 0.3, 0.2, 0.2], [0.6, 0.6, 0.3, 0.3]]),
        "batch_idx": torch.tensor([0.0, 1.0]),
    }
    before = [p.detach().clone() for p in model.parameters()]

    loss, _ = model(batch)
    trainer.loss = loss * float("nan")  # the injected failure
    with captured_log() as log:
        assert trainer._check_loss(epoch=0, batch_index=0) is False
        trainer.loss.backward()
        trainer.optimizer_step()
    assert any("non-finite loss" in m for m in log)
    assert any("optimizer step skipped" in m for m in log)
    assert all(torch.equal(a, p.detach()) for a, p in zip(before, model.parameters()))
    assert trainer.ema.updates == 0
    assert all(p.grad is None or not p.grad.any() for p in model.parameters())

    # The next finite batch steps normally.
    trainer.loss, _ = model(batch)
    assert trainer._check_loss(epoch=0, batch_index=1) is True
    trainer.loss.backward()
    trainer.optimizer_step()
    assert any(not torch.equal(a, p.detach()) for a, p in zip(before, model.parameters()))
    assert trainer.ema.updates == 1


# ------------------------------------------------------------------------------------------------
# Overfitting
# ------------------------------------------------------------------------------------------------
def test_overfit_two_images(tiny, tmp_path):
    """60 optimizer steps on two fixed images at least halve the training loss, box terms included."""
    from ultralytics.nn.tasks import RTDETRDetectionModel

    torch.manual_seed(0)
    trainer = _trainer(tiny, tmp_path)
    model = RTDETRDetectionModel(tiny.model, nc=2, verbose=False).train()
    trainer.model, trainer.amp, trainer.ema = model, False, None
    trainer.scaler = torch.amp.GradScaler("cuda", enabled=False)
    trainer.optimizer = trainer.build_optimizer(model, name="AdamW", lr=1e-3, momentum=0.9, decay=0.0)

    g = torch.Generator().manual_seed(0)
    img = torch.rand(2, 3, 64, 64, generator=g) * 0.2
    boxes = torch.tensor([[0.3, 0.3, 0.3, 0.3], [0.7, 0.6, 0.25, 0.4], [0.5, 0.5, 0.5, 0.5]])  # xywh, normalised
    cls = torch.tensor([[0.0], [1.0], [1.0]])
    batch_idx = torch.tensor([0.0, 0.0, 1.0])
    for b, c, i in zip(boxes, cls, batch_idx):
        x0, y0, x1, y1 = (int(v * 64) for v in (b[0] - b[2] / 2, b[1] - b[3] / 2, b[0] + b[2] / 2, b[1] + b[3] / 2))
        img[int(i), int(c), y0:y1, x0:x1] = 1.0  # class 0 red, class 1 green
    batch = {"img": img, "cls": cls, "bboxes": boxes, "batch_idx": batch_idx}

    losses, items = [], []
    for _ in range(60):
        trainer.loss, loss_items = model(batch)
        trainer.loss.backward()
        trainer.optimizer_step()
        losses.append(trainer.loss.item())
        items.append(loss_items)
    first, last = np.mean(losses[:5]), np.mean(losses[-5:])
    assert last <= 0.5 * first, f"loss {first:.3f} -> {last:.3f}"
    box_first = float(items[0][0] + items[0][2])  # giou + l1
    box_last = float(torch.stack(items[-5:])[:, [0, 2]].sum(1).mean())
    assert box_last < 0.8 * box_first, f"box loss {box_first:.3f} -> {box_last:.3f}"


# ------------------------------------------------------------------------------------------------
# Resume
# ------------------------------------------------------------------------------------------------
def test_interrupt_and_resume(tiny, tmp_path, captured_log, results_columns):
    from ultralytics.models.rtdetr.train import RTDETRTrainer

    trainer = _trainer(tiny, tmp_path, epochs=2, close_mosaic=1)

    def interrupt(tr):
        if tr.epoch == 1:
            raise KeyboardInterrupt

    trainer.add_callback("on_train_epoch_start", interrupt)
    with pytest.raises(KeyboardInterrupt):
        trainer.train()
    last = Path(trainer.last)
    saved = torch.load(last, map_location="cpu", weights_only=False)
    assert saved["epoch"] == 0 and saved["optimizer"] is not None  # usable for resume
    assert [r["epoch"] for r in _read_csv(trainer.csv)] == ["1"]

    with pytest.raises(FileNotFoundError, match="missing.pt' does not exist"):
        RTDETRTrainer(overrides={"resume": str(tmp_path / "missing.pt")})
    # resume=True alone finds the newest last.pt under the runs folder.
    assert RTDETRTrainer(overrides={"resume": True}).args.resume == str(last)

    # A row written after the checkpoint (interrupted before saving) must not be duplicated.
    with open(trainer.csv, "a") as f:
        f.write("2" + ",0" * (len(results_columns) - 1) + "\n")

    resumed = RTDETRTrainer(overrides={"resume": str(last), "model": str(last), "workers": 0})
    state: dict = {}

    def after_setup(tr):
        state["start_epoch"] = tr.start_epoch
        state["updates"] = tr.ema.updates
        state["opt_state"] = len(tr.optimizer.state_dict()["state"])

    resumed.add_callback("on_pretrain_routine_end", after_setup)
    with captured_log() as log:
        resumed.train()
    assert any(m.startswith("close_mosaic: ") for m in log)  # close_mosaic=1: the last epoch runs without mosaic

    assert resumed.save_dir == trainer.save_dir  # same run folder
    assert state["start_epoch"] == 1
    assert state["updates"] == saved["updates"] and state["opt_state"] > 0
    rows = _read_csv(Path(resumed.save_dir) / "results.csv")
    assert [r["epoch"] for r in rows] == ["1", "2"]
    # `time` is the run's elapsed seconds: the resumed run continues from the first run's last row.
    assert float(rows[1]["time"]) > float(rows[0]["time"]) > 0
    assert resumed.epoch == 1  # 0-based: the second epoch


# ------------------------------------------------------------------------------------------------
# Multi-GPU launch helpers (command only; running DDP needs several GPUs)
# ------------------------------------------------------------------------------------------------
def test_ddp_command_and_cleanup(tmp_path):
    from ultralytics.utils.dist import ddp_cleanup, find_free_network_port, generate_ddp_command

    from ultralytics.models.rtdetr.train import RTDETRTrainer

    fake = RTDETRTrainer.__new__(RTDETRTrainer)
    fake.args = SimpleNamespace(model="rtdetr-l.yaml", data="shapes.yaml", device="0,1", save_dir=tmp_path / "run")
    fake.resume, fake.save_dir = False, tmp_path / "run"
    fake.save_dir.mkdir()
    cmd, file = generate_ddp_command(2, fake)
    assert not fake.save_dir.exists()  # a fresh DDP run recreates its folder in the workers
    assert cmd[1:4] == ["-m", "torch.distributed.run", "--nproc_per_node"] and cmd[4] == "2"
    assert int(cmd[6]) > 0 and cmd[-1] == file
    text = Path(file).read_text()
    compile(text, file, "exec")
    assert "from ultralytics.models.rtdetr.train import RTDETRTrainer" in text and "'device': '0,1'" in text
    ddp_cleanup(fake, file)
    assert not Path(file).exists()
    assert 0 < find_free_network_port() < 65536


# ------------------------------------------------------------------------------------------------
# CUDA-only paths
# ------------------------------------------------------------------------------------------------
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_amp_training(tiny, tmp_path):
    trainer = _trainer(tiny, tmp_path, device="0", amp=True, batch=4)
    trainer.train()
    assert trainer.device.type == "cuda"
    assert trainer.amp is True and trainer.scaler.is_enabled()
    assert torch.backends.cudnn.benchmark is (not trainer.args.deterministic)
    assert (Path(trainer.save_dir) / "weights" / "best.pt").is_file()
    rows = _read_csv(trainer.csv)
    assert all(math.isfinite(float(v)) for v in rows[-1].values())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_dataloader_pins_memory(tiny, tmp_path):
    trainer = _trainer(tiny, tmp_path, device="cuda:0", workers=2)
    loader = trainer.get_dataloader(trainer.trainset, batch_size=2, rank=-1, mode="train")
    assert loader.pin_memory is True


# ------------------------------------------------------------------------------------------------
# Acceptance: the article's model through `yolo train` on the embedded shapes dataset
# ------------------------------------------------------------------------------------------------
def test_acceptance_yolo_train_focal_modulation(tmp_path, monkeypatch, results_columns):
    from ultralytics import RTDETR
    from ultralytics.cfg import entrypoint
    from ultralytics.engine.model import Model

    captured: dict = {}
    original = Model.train

    def spy_train(self, *args, **kwargs):
        # Keep the trainer's in-memory EMA model for the comparison below.
        def keep_ema(tr):
            captured["ema"] = tr.ema.ema

        self.add_callback("on_train_end", keep_ema)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Model, "train", spy_train)
    entrypoint(
        "yolo train model=rtdetr-l-FocalModulation.yaml data=shapes.yaml epochs=1 imgsz=64 batch=4 workers=0 "
        "device=cpu plots=False"
    )

    run = tmp_path / "runs" / "detect" / "train"
    for f in ("args.yaml", "results.csv", "weights/last.pt", "weights/best.pt"):
        assert (run / f).is_file(), f
    rows = _read_csv(run / "results.csv")
    assert list(rows[0]) == results_columns and len(rows) == 1

    reloaded = RTDETR(str(run / "weights" / "last.pt"))
    assert reloaded.model.nc == 6 and len(reloaded.model.names) == 6  # shapes' classes over the yaml's nc: 1
    net = reloaded.model.float().eval()
    # The checkpoint stores the EMA in fp16 (upstream layout), so compare with the same rounding.
    ema = captured["ema"].half().float().eval()
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        y_loaded, y_ema = net(x)[0], ema(x)[0]
    assert y_loaded.shape == (2, 300, 4 + 6)
    torch.testing.assert_close(y_loaded, y_ema, rtol=0, atol=1e-5)


def test_bad_data_is_reported_before_the_run_folder_exists(tmp_path, tiny):
    """train(data=...) resolves the dataset first: a missing yaml raises a usage error and writes nothing."""
    from ultralytics import RTDETR
    from ultralytics.engine.trainer import DatasetError

    project = tmp_path / "runs"
    with pytest.raises(DatasetError, match="missing.yaml") as caught:
        RTDETR(tiny.model).train(data=str(tmp_path / "missing.yaml"), epochs=1, imgsz=64, project=str(project))
    assert isinstance(caught.value, RuntimeError) and isinstance(caught.value, ValueError)
    assert not project.exists()
