"""Compare RT-DETR-l (AIFI) with RT-DETR-l-FocalModulation on the same data and print a markdown table.

Columns: parameters, GFLOPs at 640 (thop), median CPU latency of an eval forward (batch 1), and
mAP50 / mAP50-95 on the val split after the same short training run (same seed, data, epochs).

    python examples/compare_aifi_focal.py                         # 3 epochs at 160 px on shapes.yaml
    python examples/compare_aifi_focal.py --epochs 0              # size and speed only, no training
    python examples/compare_aifi_focal.py --epochs 1 --imgsz 96 --fraction 0.25 --latency-imgsz 320
    python examples/compare_aifi_focal.py --epochs 20 --imgsz 128 --batch 4 --recipe deim   # both under DEIM's recipe

--recipe trains both variants under one training recipe (docs/recipes.md); the default is today's.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

from ultralytics import RTDETR
from ultralytics.engine.recipes import RECIPES
from ultralytics.utils.torch_utils import get_flops, get_num_params

from shapes_common import add_training_args, train_and_validate

MODELS = ("rtdetr-l.yaml", "rtdetr-l-FocalModulation.yaml")


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_training_args(p, epochs_help="training epochs per model (0 skips training and mAP)")
    p.add_argument("--latency-imgsz", type=int, default=640, help="image size for the CPU latency measurement")
    p.add_argument("--latency-runs", type=int, default=5, help="timed forwards (after one warm-up) per model")
    p.add_argument("--seed", type=int, default=0, help="training seed, identical for both models")
    p.add_argument("--recipe", choices=list(RECIPES), default="ultralytics", help="training recipe of both models")
    return p.parse_args()


@torch.inference_mode()
def cpu_latency_ms(model: torch.nn.Module, imgsz: int, runs: int) -> float:
    """Median wall time of an eval forward on one random image, in milliseconds."""
    model = model.to("cpu").eval()
    x = torch.rand(1, 3, imgsz, imgsz)
    model(x)  # warm-up: allocations and anchor caches
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        model(x)
        times.append((time.perf_counter() - t) * 1e3)
    return statistics.median(times)


def measure(cfg: str, opt: argparse.Namespace) -> dict[str, float | str]:
    """One table row for model yaml `cfg`: size, GFLOPs and latency, then mAP when --epochs > 0."""
    model = RTDETR(cfg)
    row: dict[str, float | str] = {
        "model": Path(cfg).stem,
        "params": get_num_params(model.model),
        "gflops": get_flops(model.model, 640),
        "latency": cpu_latency_ms(model.model, opt.latency_imgsz, opt.latency_runs),
        "map50": float("nan"),
        "map": float("nan"),
    }
    if opt.epochs > 0:
        suffix = "" if opt.recipe == "ultralytics" else f"-{opt.recipe}"  # runs of the default keep their names
        name = f"compare-{Path(cfg).stem}{suffix}"
        _, metrics = train_and_validate(model, opt, seed=opt.seed, deterministic=True, recipe=opt.recipe, name=name)
        row["map50"], row["map"] = metrics.box.map50, metrics.box.map
    return row


def markdown_table(rows: list[dict[str, float | str]], opt: argparse.Namespace) -> str:
    lines = [
        f"| model | params | GFLOPs (640) | CPU latency ms ({opt.latency_imgsz} px, median) | mAP50 | mAP50-95 |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['params']:,} | {r['gflops']:.1f} | {r['latency']:.0f} | "
            f"{r['map50']:.3f} | {r['map']:.3f} |"
        )
    trained = f"{opt.epochs} epochs at {opt.imgsz} px on {opt.data}, recipe={opt.recipe}"
    trained = trained if opt.epochs > 0 else "no training (--epochs 0)"
    return "\n".join(lines) + f"\n\nmAP after {trained}; torch threads: {torch.get_num_threads()}."


def main() -> None:
    opt = parse_args()
    rows = [measure(cfg, opt) for cfg in MODELS]
    print("\n" + markdown_table(rows, opt))


if __name__ == "__main__":
    main()
