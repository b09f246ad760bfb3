"""mAP per epoch of the same model, data, seed and epochs under two training recipes (not a test).

Each recipe trains in its own subprocess, by default all at once with ``--threads`` threads each
so that they share a loaded CPU alike. Every run writes its usual folder ``OUT/<recipe>/``
(``results.csv`` grows by one row per epoch), so a run that is stopped or still going can be
reported on: ``--report`` reads whatever epochs the folders hold and writes

- ``OUT/convergence.csv``: epoch, then mAP50 and mAP50-95 per recipe;
- ``OUT/convergence.md``: the same as a markdown table;
- ``OUT/convergence.png``: the curves overlaid (matplotlib).

    python benchmarks/convergence.py                                   # shapes.yaml, 128 px, 20 epochs, CPU
    python benchmarks/convergence.py --report --out benchmarks/results/convergence
    python benchmarks/convergence.py --device 0 --imgsz 640 --epochs 72 --threads 8   # a CUDA card

Recipes are `recipe=` values (docs/recipes.md); the first is the reference.
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import time
from pathlib import Path

from machine import cpu_name, load_average  # benchmarks/machine.py, beside this script

REPO = Path(__file__).resolve().parents[1]
METRICS = {"mAP50": "metrics/mAP50(B)", "mAP50-95": "metrics/mAP50-95(B)"}

# What each training subprocess runs; the settings arrive as one repr'd dict in argv[1].
_TRAIN = """
import ast, sys
from ultralytics import RTDETR
settings = ast.literal_eval(sys.argv[1])
RTDETR(settings.pop("model")).train(**settings)
"""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="rtdetr-l-FocalModulation.yaml")
    parser.add_argument("--data", default="shapes.yaml")
    parser.add_argument("--recipes", nargs="+", default=["ultralytics", "deim"])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--imgsz", type=int, default=128)
    parser.add_argument("--batch", type=int, default=4, help="4: 32 optimizer steps per epoch on shapes.yaml under deim")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1, help="torch/OpenMP threads of each training process")
    parser.add_argument("--sequential", action="store_true", help="one recipe after the other instead of at once")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "convergence")
    parser.add_argument("--report", action="store_true", help="only write the table and plot from OUT's run folders")
    return parser.parse_args(argv)


def train_settings(args: argparse.Namespace, recipe: str) -> dict:
    """The keyword arguments of RTDETR.train for one recipe; only `recipe` differs between runs."""
    return dict(
        model=args.model,
        data=args.data,
        epochs=args.epochs,
        imgsz=args.imgsz,
        batch=args.batch,
        seed=args.seed,
        device=args.device,
        recipe=recipe,
        plots=False,
        project=str(args.out.resolve()),
        name=recipe,
        exist_ok=True,
    )


def launch(args: argparse.Namespace, recipe: str) -> subprocess.Popen:
    """Start one recipe's training; its output goes to OUT/<recipe>.log."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads)}
    log = open(args.out / f"{recipe}.log", "w", encoding="utf-8")  # closed when the process ends
    command = [sys.executable, "-c", _TRAIN, repr(train_settings(args, recipe))]
    return subprocess.Popen(command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)


def train_all(args: argparse.Namespace) -> None:
    """Run every recipe (at once unless --sequential); raises if one of them fails."""
    started = time.time()
    running = []
    for recipe in args.recipes:
        running.append((recipe, launch(args, recipe)))
        if args.sequential:
            running[-1][1].wait()
    failed = [recipe for recipe, process in running if process.wait() != 0]
    print(f"trained {len(args.recipes)} recipes in {(time.time() - started) / 60:.1f} min")
    if failed:
        raise RuntimeError(f"training failed for recipe(s) {failed}; see {args.out}/<recipe>.log")


def read_curves(out: Path, recipes: list[str]) -> dict[str, dict[str, list[float]]]:
    """{recipe: {'mAP50': [per epoch], 'mAP50-95': [...], 'time': [...]}} from OUT/<recipe>/results.csv."""
    sys.path.insert(0, str(REPO))
    from ultralytics.utils import results_csv

    curves = {}
    for recipe in recipes:
        table = results_csv.read(out / recipe / "results.csv")
        curves[recipe] = {label: table.get(column, []) for label, column in METRICS.items()}
        curves[recipe]["time"] = table.get("time", [])
    return curves


def write_table(out: Path, curves: dict[str, dict[str, list[float]]]) -> str:
    """convergence.csv and convergence.md (an empty cell: that epoch has not finished); returns the markdown."""
    epochs = max((len(c["mAP50"]) for c in curves.values()), default=0)
    header = ["epoch"] + [f"{recipe} {label}" for recipe in curves for label in METRICS]
    rows = []
    for e in range(epochs):
        cells = [str(e + 1)]
        for curve in curves.values():
            cells += [f"{curve[label][e]:.4f}" if e < len(curve[label]) else "" for label in METRICS]
        rows.append(cells)
    with open(out / "convergence.csv", "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([header, *rows])
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cells) + " |" for cells in rows]
    markdown = "\n".join(lines) + "\n"
    (out / "convergence.md").write_text(markdown, encoding="utf-8")
    return markdown


def plot_curves(out: Path, curves: dict[str, dict[str, list[float]]], title: str) -> Path:
    """convergence.png: mAP50 (left) and mAP50-95 (right) per epoch, one line per recipe."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    fig, axes = plt.subplots(1, len(METRICS), figsize=(10, 4), tight_layout=True)
    for ax, label in zip(axes, METRICS):
        for recipe, curve in curves.items():
            values = curve[label]
            ax.plot(range(1, len(values) + 1), values, marker=".", label=f"recipe={recipe}")
        ax.set(xlabel="epoch", ylabel=label, title=label)
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    path = out / "convergence.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    if not args.report:
        train_all(args)
    curves = read_curves(args.out, args.recipes)
    title = f"{Path(args.model).stem} on {Path(args.data).stem}, {args.imgsz} px, seed {args.seed}"
    print(write_table(args.out, curves))
    print(f"plot: {plot_curves(args.out, curves, title)}")
    print(f"machine: {cpu_name()}, {os.cpu_count()} cores, load average {load_average()}")


if __name__ == "__main__":
    main()
