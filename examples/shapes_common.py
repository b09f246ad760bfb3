"""Options and the train-then-validate step that the example scripts share.

Imported by the scripts next to it (`python examples/<script>.py` puts this folder on sys.path).
"""

from __future__ import annotations

import argparse
from typing import Any

from ultralytics import RTDETR


def add_training_args(parser: argparse.ArgumentParser, epochs_help: str = "training epochs") -> None:
    """--data, --epochs, --imgsz, --batch, --fraction, --device, --workers, with defaults for a short CPU run."""
    parser.add_argument("--data", default="shapes.yaml", help="dataset yaml")
    parser.add_argument("--epochs", type=int, default=3, help=epochs_help)
    parser.add_argument("--imgsz", type=int, default=160, help="square train/val image size, a multiple of 32")
    parser.add_argument("--batch", type=int, default=4, help="images per batch")
    parser.add_argument("--fraction", type=float, default=1.0, help="fraction of the training images to use")
    parser.add_argument("--device", default="cpu", help="cpu, 0, cuda:0, ...")
    parser.add_argument("--workers", type=int, default=0, help="dataloader worker processes")


def train_and_validate(model: RTDETR, opt: argparse.Namespace, **train_args: Any) -> tuple[RTDETR, Any]:
    """Train `model` with the shared options (plus `train_args`), then validate its best.pt on the val split.

    The best weights are reloaded from disk, as a user would, so the metrics are those of the saved file.
    Returns the reloaded model and its validation metrics (`.box.map50`, `.box.map`).
    """
    model.train(
        data=opt.data,
        epochs=opt.epochs,
        imgsz=opt.imgsz,
        batch=opt.batch,
        fraction=opt.fraction,
        device=opt.device,
        workers=opt.workers,
        **train_args,
    )
    best = RTDETR(str(model.trainer.best))
    metrics = best.val(data=opt.data, imgsz=opt.imgsz, batch=opt.batch, device=opt.device, workers=opt.workers)
    return best, metrics
