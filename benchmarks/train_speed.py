"""Training throughput of rtdetr-l-FocalModulation on shapes.yaml (not a test).

Runs real training iterations of the engine (data loading, /255 pre-processing, forward, RT-DETR
loss with denoising, backward, gradient clipping, optimizer step, EMA update), discards a few
warm-up iterations, and reports the median of the timed ones. For context it also measures a large
float32 matmul on the same device in the same run.

    python benchmarks/train_speed.py                          # CPU, batch 4, imgsz 320
    python benchmarks/train_speed.py --device 0 --batch 16    # a CUDA card

Prints a markdown table row for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time

import torch


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_gflops(device: torch.device, n: int = 2048, repeats: int = 10) -> float:
    """Sustained float32 GFLOP/s of an n x n matmul (2 n^3 flops each)."""
    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)
    for _ in range(2):
        a @ b
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(repeats):
        a @ b
    _sync(device)
    return 2 * n**3 * repeats / (time.perf_counter() - t0) / 1e9


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="rtdetr-l-FocalModulation.yaml")
    parser.add_argument("--data", default="shapes.yaml")
    parser.add_argument("--device", default="cpu", help="cpu, 0, cuda:0")
    parser.add_argument("--imgsz", type=int, default=320)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--warmup", type=int, default=2, help="untimed iterations first")
    parser.add_argument("--iters", type=int, default=5, help="timed iterations")
    opt = parser.parse_args()

    from ultralytics.models.rtdetr.train import RTDETRTrainer
    from ultralytics.utils.torch_utils import autocast

    with tempfile.TemporaryDirectory() as project:
        trainer = RTDETRTrainer(
            overrides=dict(
                model=opt.model,
                data=opt.data,
                imgsz=opt.imgsz,
                batch=opt.batch,
                device=opt.device,
                workers=0,
                epochs=1,
                plots=False,
                project=project,
                name="bench",
            )
        )
        trainer._setup_train(world_size=1 if trainer.device.type == "cuda" else 0)
        trainer.model.train()
        device = trainer.device
        # Full accumulation is 64 / batch iterations; step every iteration so each one pays for a step.
        trainer.accumulate = 1

        step_times, iter_times = [], []
        needed = opt.warmup + opt.iters
        t_iter = time.perf_counter()
        while len(step_times) < needed:
            for batch in trainer.train_loader:
                _sync(device)
                t_step = time.perf_counter()
                with autocast(trainer.amp, device=device.type):
                    batch = trainer.preprocess_batch(batch)
                    trainer.loss, trainer.loss_items = trainer.model(batch)
                trainer.scaler.scale(trainer.loss).backward()
                trainer.optimizer_step()
                _sync(device)
                now = time.perf_counter()
                step_times.append(now - t_step)
                iter_times.append(now - t_iter)
                t_iter = now
                if len(step_times) >= needed:
                    break

    step = statistics.median(step_times[opt.warmup :])
    whole = statistics.median(iter_times[opt.warmup :])
    gflops = matmul_gflops(device)
    name = device_name(device)
    print(f"\nTraining {opt.model} on {opt.data}, imgsz {opt.imgsz}, batch {opt.batch}, AMP {trainer.amp}, {name}")
    print(f"median of {opt.iters} iterations after {opt.warmup} warm-up ones")
    print(
        "\n| device | model | imgsz | batch | step ms (median) | images/s (step) | images/s (with data loading) "
        "| fp32 matmul GFLOP/s |"
    )
    print("|---|---|---|---|---|---|---|---|")
    print(
        f"| {name} | {opt.model} | {opt.imgsz} | {opt.batch} | {step * 1e3:.0f} | {opt.batch / step:.2f} "
        f"| {opt.batch / whole:.2f} | {gflops:.0f} |"
    )


if __name__ == "__main__":
    main()
