"""Train, validate, predict and export the article's model on the embedded shapes dataset, on CPU.

    python examples/train_shapes.py                      # rtdetr-l-FocalModulation, 3 epochs at 160 px
    python examples/train_shapes.py --epochs 1 --imgsz 96 --fraction 0.25   # a quick smoke run

Everything lands under ./runs/detect (train, val, predict folders) and the ONNX file next to
the run's best.pt. The dataset is generated under ./datasets/shapes on first use (no download).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ultralytics import RTDETR
from ultralytics.data.utils import check_det_dataset

from shapes_common import add_training_args, train_and_validate


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="rtdetr-l-FocalModulation.yaml", help="model yaml or checkpoint")
    add_training_args(p)
    p.add_argument("--demo-images", type=int, default=3, help="validation images to predict on")
    return p.parse_args()


def main() -> None:
    opt = parse_args()
    trained, metrics = train_and_validate(RTDETR(opt.model), opt)
    print(f"\nbest checkpoint: {trained.ckpt_path}")
    print(f"val mAP50 {metrics.box.map50:.3f}  mAP50-95 {metrics.box.map:.3f}")

    # Predict on a few validation images; annotated copies go to runs/detect/predict*.
    data = check_det_dataset(opt.data)
    val_dir = Path(data["val"][0] if isinstance(data["val"], list) else data["val"])
    images = sorted(str(p) for p in val_dir.glob("*.jpg"))[: opt.demo_images]
    for r in trained.predict(images, imgsz=opt.imgsz, conf=0.25, save=True, device=opt.device):
        print(f"{Path(r.path).name}: {r.verbose() or 'no detections'}")

    # Export to ONNX and check that onnxruntime finds the same number of boxes.
    try:
        onnx_file = trained.export(format="onnx", imgsz=opt.imgsz)
    except ImportError as e:
        print(f"ONNX export skipped: {e}")
        return
    onnx_results = RTDETR(onnx_file).predict(images, imgsz=opt.imgsz, conf=0.25)
    torch_results = trained.predict(images, imgsz=opt.imgsz, conf=0.25, device=opt.device)
    for a, b in zip(torch_results, onnx_results):
        print(f"{Path(a.path).name}: PyTorch {len(a.boxes)} boxes, ONNX Runtime {len(b.boxes)} boxes")
    print(f"\nexported: {onnx_file}")


if __name__ == "__main__":
    main()
