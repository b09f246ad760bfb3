"""The fixed-seed golden run that pins the engine's numerical behaviour across rewrites.

The tiny fixture model (`tests/fixtures/rtdetr-tiny-FocalModulation.yaml`) trains 2 epochs on
`shapes.yaml` at 64 px, seed 0, `deterministic=True`, on CPU with one thread and no data workers, so
that every random draw (model init, augmentation, sampler order, denoising noise) comes from the
main process in a fixed order. What the run leaves is summarised as plain tensors and lists:

- ``csv``: results.csv as {column: [value per epoch]}, without the ``time`` column;
- ``weights``: the final EMA weights in float32 (name -> tensor);
- ``boxes`` / ``scores`` / ``classes``: what `last.pt` predicts on two val images at conf=0 (every query);
- ``events``: every callback event in the order it fired.

    python tests/golden_run.py --write   # record tests/fixtures/golden_tiny_shapes.pt (before a rewrite only)
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FIXTURE = REPO / "tests" / "fixtures" / "golden_tiny_shapes.pt"
MODEL_YAML = REPO / "tests" / "fixtures" / "rtdetr-tiny-FocalModulation.yaml"


def _read_csv(path: Path) -> dict[str, list[float]]:
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    columns = [c.strip() for c in rows[0]] if rows else []
    return {c: [float(r[k]) for r in rows] for c, k in zip(columns, rows[0]) if c != "time"}


def run(workdir: Path) -> dict:
    """Train the golden run inside `workdir` and return its summary (see the module docstring)."""
    import torch

    # One thread whatever the machine: reduction order, and so the last bits, depend on the thread count.
    torch.set_num_threads(1)
    torch.set_num_threads = lambda n: None  # the engine's select_device would raise it again

    from ultralytics import RTDETR
    from ultralytics.utils.callbacks.base import get_default_callbacks

    workdir.mkdir(parents=True, exist_ok=True)
    os.chdir(workdir)
    os.environ["ULTRALYTICS_RUNS_DIR"] = str(workdir / "runs")
    os.environ.setdefault("ULTRALYTICS_DATASETS_DIR", str(workdir / "datasets"))

    events: list[str] = []
    final: dict = {}
    torch.manual_seed(0)
    model = RTDETR(str(MODEL_YAML))
    for event in get_default_callbacks():
        model.add_callback(event, lambda _owner, e=event: events.append(e))
    model.add_callback(
        "on_train_end",
        lambda trainer: final.update(
            weights={k: v.detach().float().clone() for k, v in trainer.ema.ema.state_dict().items()},
            save_dir=Path(trainer.save_dir),
        ),
    )
    model.train(
        data="shapes.yaml",
        epochs=2,
        imgsz=64,
        batch=8,
        workers=0,
        device="cpu",
        seed=0,
        deterministic=True,
        plots=False,
        amp=False,
        exist_ok=True,
        name="golden",
    )

    from ultralytics.data.utils import check_det_dataset

    val_dir = Path(check_det_dataset("shapes.yaml")["val"])
    images = sorted(p for p in val_dir.iterdir() if p.suffix == ".jpg")[:2]
    results = RTDETR(str(final["save_dir"] / "weights" / "last.pt")).predict(
        [str(p) for p in images], imgsz=64, conf=0.0, verbose=False
    )
    return {
        "csv": _read_csv(final["save_dir"] / "results.csv"),
        "weights": final["weights"],
        "boxes": [r.boxes.xyxy.clone() for r in results],
        "scores": [r.boxes.conf.clone() for r in results],
        "classes": [r.boxes.cls.clone() for r in results],
        "images": [p.name for p in images],
        "events": events,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--write", action="store_true", help=f"record the golden into {FIXTURE.relative_to(REPO)}")
    ap.add_argument("--out", type=Path, help="write this run's summary here (used by the test)")
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/golden-run"))
    args = ap.parse_args()
    sys.path.insert(0, str(REPO))
    import torch

    summary = run(args.workdir.resolve())
    target = FIXTURE if args.write else args.out
    if target is None:
        sys.exit("golden_run: pass --write or --out PATH")
    torch.save(summary, target)
    print(f"golden summary written to {target}")


if __name__ == "__main__":
    main()
