"""Training-step speed of rtdetr-l-FocalModulation, optionally against upstream Ultralytics (not a test).

Two measurements, each in its own subprocess:

* ``step``: one optimizer step on a fixed synthetic batch, exactly what the trainer does per batch
  minus data loading: ``model.loss(batch)`` (forward, Hungarian matching, losses with denoising),
  backward, gradient clipping at 10, the optimizer the package's trainer builds (AdamW with its
  three parameter groups) and the EMA update. Forward+loss, backward and optimizer+EMA are timed
  separately. With ``--upstream DIR`` the same code runs on upstream's package; our runs and
  upstream's alternate ``--rounds`` times and the tables show medians, so that load from other
  processes hits both alike.
* ``engine`` (ours only; skip with ``--no-engine``): real iterations of our trainer on
  ``shapes.yaml`` with ``workers=0``, so the figure includes data loading and augmentation.

For context every round also times an n x n float32 matmul in the driver process.

Threads: by default each worker calls its package's ``select_device`` as the trainer does, so each
package runs at its own CPU thread policy (upstream 8.3.50 sets ``min(8, cpu_count - 1)`` threads,
i.e. 1 on a 2-core machine); ``--threads N`` then sets the same count for both. On a CPU shared
with other busy processes, more than one thread can be several times slower (OpenMP threads wait
for each other after every op), so compare at the same thread count and state the load average.

Upstream for comparison: ``pip download --no-deps ultralytics==8.3.50 -d /tmp/whl``, unzip the
wheel into DIR, and apply the article's three edits there (``nn/AddModules/FocalModulation.py``,
its ``__init__.py``, the import and the ``elif m in {FocalModulation}`` branch in ``nn/tasks.py``);
without them compare on ``--model rtdetr-l.yaml``. Upstream runs offline (YOLO_OFFLINE) with a
throw-away HOME and config folder and downloads nothing. Both packages build the model from the
same yaml file (ours), so the architectures are identical.

    python benchmarks/train_speed.py                                   # CPU, batch 4, imgsz 320
    python benchmarks/train_speed.py --batch 8 --imgsz 160 --upstream /tmp/upstream --rounds 3
    python benchmarks/train_speed.py --device 0 --batch 16 --no-engine # a CUDA card

Prints markdown tables for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

from machine import cpu_name, load_average  # benchmarks/machine.py, beside this script

REPO = Path(__file__).resolve().parents[1]
RESULT_TAG = "TRAIN_SPEED_RESULT "  # prefix of the one stdout line a worker reports on
MODES = ("float32", "bf16", "bf16-channels_last")  # how our step runs; upstream's always runs float32
BOXES_PER_IMAGE = 5  # synthetic ground truth: 5 boxes per image gives 20 denoising groups (200 dn queries)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="rtdetr-l-FocalModulation.yaml", help="a yaml of ours (name or path)")
    parser.add_argument("--nc", type=int, default=6, help="classes of the synthetic batch (shapes.yaml has 6)")
    parser.add_argument("--data", default="shapes.yaml", help="dataset of the engine measurement")
    parser.add_argument("--device", default="cpu", help="cpu, 0, cuda:0")
    parser.add_argument("--imgsz", type=int, default=320)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps first, in every run")
    parser.add_argument("--iters", type=int, default=3, help="timed steps per run (median reported)")
    parser.add_argument("--rounds", type=int, default=2, help="runs per package, ours and upstream alternating")
    parser.add_argument(
        "--threads",
        type=int,
        default=0,
        help="torch.set_num_threads in every run; 0 leaves it to each package's select_device, as its trainer does",
    )
    parser.add_argument("--matmul", type=int, default=2048, help="side n of the float32 matmul reference")
    parser.add_argument(
        "--upstream",
        type=Path,
        default=None,
        help="folder holding upstream's unpacked `ultralytics` package: also time its training step",
    )
    parser.add_argument(
        "--modes",
        nargs="+",
        choices=MODES,
        default=["float32"],
        help="our step's precision: bf16 = CPU bfloat16 autocast around forward+loss (what amp=bf16 trains with), "
        "bf16-channels_last also puts weights and images in channels_last; upstream runs float32",
    )
    parser.add_argument("--mode", choices=MODES, default="float32", help=argparse.SUPPRESS)  # a worker's mode
    parser.add_argument("--no-engine", action="store_true", help="skip the engine (data loading) measurement")
    parser.add_argument("--worker", choices=("step", "engine"), default=None, help=argparse.SUPPRESS)
    parser.add_argument("--expect-root", default=None, help=argparse.SUPPRESS)
    opt = parser.parse_args(argv)
    if opt.upstream is not None and not (opt.upstream / "ultralytics" / "__init__.py").is_file():
        parser.error(
            f"--upstream {opt.upstream}: no ultralytics/__init__.py there; unzip upstream's wheel into that folder"
        )
    if opt.imgsz % 32:
        parser.error(f"--imgsz {opt.imgsz}: RT-DETR needs a multiple of 32")
    if opt.upstream is not None and sum((opt.imgsz // s) ** 2 for s in (8, 16, 32)) < 300:
        # upstream's decoder takes the top 300 of the strides-8/16/32 anchors and fails with fewer
        parser.error(f"--imgsz {opt.imgsz}: upstream's RT-DETR needs imgsz >= 128 (300 anchors), got {opt.imgsz}")
    for name in ("batch", "iters", "rounds"):
        if getattr(opt, name) < 1:
            parser.error(f"--{name} must be at least 1, got {getattr(opt, name)}")
    return opt


# ----------------------------------------------------------------------------------------------
# helpers shared by driver and workers
# ----------------------------------------------------------------------------------------------


def _sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_gflops(device, n: int = 2048, repeats: int = 5) -> float:
    """Sustained float32 GFLOP/s of an n x n matmul (2 n^3 flops each) on a torch.device."""
    import torch

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




def _torch_device(spec: str):
    import torch

    spec = str(spec)
    return torch.device(f"cuda:{spec}" if spec.isdigit() else spec)


def _report(result: dict) -> None:
    print(RESULT_TAG + json.dumps(result), flush=True)


# ----------------------------------------------------------------------------------------------
# workers
# ----------------------------------------------------------------------------------------------


def synthetic_batch(bs: int, imgsz: int, nc: int, device) -> dict:
    """The same batch in every run: images in [0, 1] and BOXES_PER_IMAGE random boxes per image.

    Returns img (bs, 3, imgsz, imgsz), batch_idx (N,), cls (N, 1), bboxes (N, 4) normalised cxcywh,
    as the RT-DETR dataset collates them after pre-processing.
    """
    import torch

    g = torch.Generator().manual_seed(0)
    n = bs * BOXES_PER_IMAGE
    centres = torch.rand(n, 2, generator=g) * 0.6 + 0.2
    sizes = torch.rand(n, 2, generator=g) * 0.3 + 0.05
    batch = {
        "img": torch.rand(bs, 3, imgsz, imgsz, generator=g),
        "batch_idx": torch.arange(bs).repeat_interleave(BOXES_PER_IMAGE).float(),
        "cls": torch.randint(0, nc, (n, 1), generator=g).float(),
        "bboxes": torch.cat([centres, sizes], 1),
    }
    return {k: v.to(device) for k, v in batch.items()}


def step_worker(opt: argparse.Namespace) -> None:
    """Time `model.loss` + backward + clip + optimizer + EMA with whichever `ultralytics` is importable.

    Only names that exist in both our package and upstream 8.3.50 are used.
    """
    import torch

    import ultralytics
    from ultralytics.engine.trainer import BaseTrainer
    from ultralytics.nn.tasks import RTDETRDetectionModel
    from ultralytics.utils.torch_utils import ModelEMA, select_device

    root = Path(ultralytics.__file__).resolve().parents[1]
    if opt.expect_root and root != Path(opt.expect_root).resolve():
        raise RuntimeError(f"imported ultralytics from {root}, expected {opt.expect_root}; check PYTHONPATH")
    # As in the trainer: select_device applies the package's CPU thread policy (upstream 8.3.50 sets
    # torch.set_num_threads(min(8, cpu_count - 1))); --threads then overrides it for both packages alike.
    device = select_device(opt.device, verbose=False)
    if opt.threads:
        torch.set_num_threads(opt.threads)
    torch.manual_seed(0)
    model = RTDETRDetectionModel(opt.model, nc=opt.nc, verbose=False).to(device)
    model.nc = opt.nc  # upstream's loss reads the attribute its trainer sets
    model.train()
    # build_optimizer reads trainer state only for name="auto"; an explicit AdamW needs just `args`.
    fake_trainer = SimpleNamespace(args=SimpleNamespace(lr0=0.01, momentum=0.9, warmup_bias_lr=0.0))
    optimizer = BaseTrainer.build_optimizer(fake_trainer, model, name="AdamW", lr=1e-4, momentum=0.9, decay=1e-4)
    ema = ModelEMA(model)
    batch = synthetic_batch(opt.batch, opt.imgsz, opt.nc, device)
    bf16 = opt.mode.startswith("bf16")
    if opt.mode.endswith("channels_last"):
        model.to(memory_format=torch.channels_last)
        batch["img"] = batch["img"].contiguous(memory_format=torch.channels_last)
    precision = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
    dtype = torch.bfloat16 if bf16 else torch.float32
    reference = [torch.randn(opt.matmul, opt.matmul, device=device, dtype=dtype) for _ in range(2)]
    matmul_rates = []

    def one_step() -> tuple[float, float, float]:
        matmul_rates.append(_one_matmul_gflops(*reference))
        _sync(device)
        t0 = time.perf_counter()
        with precision:
            loss, _ = model.loss(batch)
        _sync(device)
        t1 = time.perf_counter()
        loss.backward()
        _sync(device)
        t2 = time.perf_counter()
        torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=10.0)
        optimizer.step()
        optimizer.zero_grad()
        ema.update(model)
        _sync(device)
        return t1 - t0, t2 - t1, time.perf_counter() - t2

    for _ in range(opt.warmup):
        one_step()
    times = [one_step() for _ in range(opt.iters)]
    forward, backward, update = (statistics.median(t[i] for t in times) for i in range(3))
    step = statistics.median(sum(t) for t in times)
    # A training step costs about 3x the forward's FLOPs (forward, then gradients of inputs and weights).
    step_gflops = 3 * _forward_gflops(model, opt.imgsz) * opt.batch
    fractions = [step_gflops / sum(t) / rate for t, rate in zip(times, matmul_rates[opt.warmup :])]
    _report(
        {
            "package": str(root),
            "version": ultralytics.__version__,
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "forward_loss": forward,
            "backward": backward,
            "optimizer_ema": update,
            "step": step,
            "mode": opt.mode,
            "matmul_gflops": statistics.median(matmul_rates),
            "fraction": statistics.median(fractions) if step_gflops else None,
        }
    )


def _one_matmul_gflops(a, b) -> float:
    """GFLOP/s of one a @ b, timed right before a step so that both see the same load."""
    _sync(a.device)
    t0 = time.perf_counter()
    a @ b
    _sync(a.device)
    return 2 * a.shape[0] ** 3 / (time.perf_counter() - t0) / 1e9


def _forward_gflops(model, imgsz: int) -> float:
    """thop's forward GFLOPs of one image (0.0 where thop is not installed)."""
    import copy

    import torch

    try:
        import thop
    except ImportError:
        return 0.0
    clone = copy.deepcopy(model).float().eval().to(memory_format=torch.contiguous_format)
    with torch.no_grad():
        macs = thop.profile(clone, inputs=[torch.zeros(1, 3, imgsz, imgsz, device=next(model.parameters()).device)], verbose=False)[0]
    return 2 * macs / 1e9


def engine_worker(opt: argparse.Namespace) -> None:
    """Median step and iteration (data loading included) times of our trainer on `opt.data`."""
    import torch

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
        if opt.threads:
            torch.set_num_threads(opt.threads)  # after the trainer's select_device, which may set its own
        trainer._setup_train(world_size=1 if trainer.device.type == "cuda" else 0)
        trainer.model.train()
        device = trainer.device
        # Full accumulation is 64 / batch iterations; step every iteration so each one pays for a step.
        trainer.accumulate = 1

        step_times, iter_times = [], []
        # The first iterations of a fresh trainer are slower (allocator and caches warming up).
        warmup = max(opt.warmup, 2)
        needed = warmup + opt.iters
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
    _report(
        {
            "threads": torch.get_num_threads(),
            "amp": bool(trainer.amp),
            "step": statistics.median(step_times[warmup:]),
            "iteration": statistics.median(iter_times[warmup:]),
        }
    )


# ----------------------------------------------------------------------------------------------
# driver
# ----------------------------------------------------------------------------------------------


def _resolve_model(model: str) -> str:
    """Absolute path of the yaml in our package, so upstream builds the very same file."""
    path = Path(model)
    if path.is_file():
        return str(path.resolve())
    candidate = REPO / "ultralytics" / "cfg" / "models" / "rt-detr" / path.name
    if candidate.is_file():
        return str(candidate)
    raise SystemExit(f"--model {model}: no such file, and no {path.name} in {candidate.parent}")


def spawn(
    opt: argparse.Namespace,
    worker: str,
    package_root: Path,
    home: Path,
    upstream: bool,
    mode: str = "float32",
) -> dict:
    """Run one worker with `package_root` first on PYTHONPATH and return its result dict."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(package_root), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    if upstream:
        # upstream writes a settings file under the user's config folder and may try the network
        env.update(HOME=str(home), YOLO_CONFIG_DIR=str(home), YOLO_OFFLINE="true")
    args = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--worker",
        worker,
        "--expect-root",
        str(package_root),
        *("--model", opt.model, "--nc", str(opt.nc), "--data", opt.data, "--device", str(opt.device)),
        *("--imgsz", str(opt.imgsz), "--batch", str(opt.batch), "--threads", str(opt.threads)),
        *("--warmup", str(opt.warmup), "--iters", str(opt.iters), "--matmul", str(opt.matmul), "--mode", mode),
    ]
    proc = subprocess.run(args, env=env, capture_output=True, text=True, cwd=home)
    for line in proc.stdout.splitlines():
        if line.startswith(RESULT_TAG):
            return json.loads(line[len(RESULT_TAG) :])
    hint = ""
    if upstream and "FocalModulation" in proc.stderr:
        hint = "\n(upstream lacks the article's FocalModulation edits: apply them there, or use --model rtdetr-l.yaml)"
    raise SystemExit(
        f"the {worker} run on {package_root} failed with exit code {proc.returncode}:\n{proc.stderr[-3000:]}{hint}"
    )




def _median(runs: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def _rate_columns(label_runs: list[dict]) -> str:
    """'matmul GFLOP/s (dtype) | fraction' cells; the fraction takes a step as 3x thop's forward FLOPs."""
    dtype = "bfloat16" if label_runs[0].get("mode", "float32").startswith("bf16") else "float32"
    if "matmul_gflops" not in label_runs[0]:
        return "- | -"
    fractions = [r["fraction"] for r in label_runs if r.get("fraction") is not None]
    fraction = f"{statistics.median(fractions):.2f}" if fractions else "-"
    return f"{_median(label_runs, 'matmul_gflops'):.1f} ({dtype}) | {fraction}"


def _against_upstream_float32(runs: dict[str, list[dict]]) -> list[str]:
    """Each of our modes' step time over upstream's float32 step time, median of per-round ratios."""
    lines = ["", "| our mode | our step time / upstream float32 step time | per round |", "|---|---:|---|"]
    for label, label_runs in runs.items():
        if label == "upstream":
            continue
        ratios = [o["step"] / u["step"] for o, u in zip(label_runs, runs["upstream"])]
        per_round = ", ".join(f"{r:.2f}" for r in ratios)
        lines.append(f"| {label_runs[0].get('mode', 'float32')} | {statistics.median(ratios):.2f} | {per_round} |")
    return lines


def markdown(opt: argparse.Namespace, runs: dict[str, list[dict]], engine: dict | None, gflops: list[float]) -> str:
    """The results as markdown tables, with our/upstream ratios where both were measured."""
    import torch

    first = next(iter(runs.values()))[0]
    device = _torch_device(opt.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_name()
    lines = [
        f"Training step of {Path(opt.model).name} (nc={opt.nc}), batch {opt.batch}, imgsz {opt.imgsz}, "
        f"{BOXES_PER_IMAGE} boxes per image, on {name}; torch {first['torch']}, "
        f"float32 matmul {statistics.median(gflops):.0f} GFLOP/s (n={opt.matmul}, median of {len(gflops)}), "
        f"load average {load_average()}. Medians over {opt.rounds} run(s) per package x {opt.iters} timed steps.",
        "",
        "| package | threads | forward+loss s | backward s | optimizer+EMA s | step s | images/s "
        "| matmul GFLOP/s | fraction of matmul |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for label, label_runs in runs.items():
        step = _median(label_runs, "step")
        version = label_runs[0]["version"]
        parts = [_median(label_runs, k) for k in ("forward_loss", "backward", "optimizer_ema")]
        lines.append(
            f"| {label} ({version}) | {label_runs[0]['threads']} | "
            + " | ".join(f"{t:.3f}" for t in parts)
            + f" | {step:.3f} | {opt.batch / step:.2f} | {_rate_columns(label_runs)} |"
        )
    if "upstream" in runs:
        lines += _against_upstream_float32(runs)
    if "upstream" in runs and "ours" in runs:
        # Per round, so that both sides of a ratio saw similar load.
        ratios = [u["step"] / o["step"] for o, u in zip(runs["ours"], runs["upstream"])]
        lines += [
            "",
            f"upstream step time / our step time: {statistics.median(ratios):.2f} "
            f"(per round: {', '.join(f'{r:.2f}' for r in ratios)}; above 1 means ours is faster)",
        ]
    if engine is not None:
        lines += [
            "",
            f"Our trainer on {opt.data} (workers=0, {engine['threads']} threads, AMP {engine['amp']}): "
            f"step {engine['step']:.3f} s "
            f"({opt.batch / engine['step']:.2f} images/s), whole iteration with data loading "
            f"{engine['iteration']:.3f} s ({opt.batch / engine['iteration']:.2f} images/s).",
        ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    opt = parse_args(argv)
    if opt.worker == "step":
        step_worker(opt)
        return
    if opt.worker == "engine":
        engine_worker(opt)
        return

    import torch

    if opt.threads:
        torch.set_num_threads(opt.threads)
    opt.model = _resolve_model(opt.model)
    labels = {("ours" if mode == "float32" else f"ours {mode}"): mode for mode in opt.modes}
    runs: dict[str, list[dict]] = {label: [] for label in labels}
    if opt.upstream is not None:
        runs["upstream"] = []
    gflops = []
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        for r in range(opt.rounds):
            gflops.append(matmul_gflops(_torch_device(opt.device), opt.matmul))
            for label in runs:
                print(f"round {r + 1}/{opt.rounds}: {label} ...", file=sys.stderr, flush=True)
                upstream = label == "upstream"
                root = opt.upstream.resolve() if upstream else REPO
                mode = labels.get(label, "float32")
                runs[label].append(spawn(opt, "step", root, home, upstream=upstream, mode=mode))
        engine = None
        if not opt.no_engine:
            print(f"engine run on {opt.data} ...", file=sys.stderr, flush=True)
            engine = spawn(opt, "engine", REPO, home, upstream=False)
    print(markdown(opt, runs, engine, gflops))


if __name__ == "__main__":
    main()
