"""Accuracy of bfloat16 inference against float32 on a model trained on shapes.yaml (not a test).

The same weights are evaluated twice on the shapes val split, once in float32 and once under CPU
bfloat16 autocast (the path `half=True` takes on a CPU with AVX512-BF16 or AMX), and the script
reports:

* mAP50 and mAP50-95 of both runs and their difference (target: within 0.005);
* for the top detections of every val image, the largest box-corner difference between the two
  runs, rescaled to pixels of a 640 px image (target: within 1 px);
* the eval-mode loss (giou + cls + l1 against the val labels) of both runs (target: within 1 %).

Weights: `--weights best.pt` evaluates a trained checkpoint; without it the script first trains
`--model` (default: a small FocalModulation RT-DETR defined below, cheap enough for a CPU) on
shapes.yaml for `--epochs` epochs or `--hours` hours into a temporary folder. No weights are
written into the repository.

On a CPU without native bf16 the autocast kernels are emulated (correct results, but one or two
orders of magnitude slower); `--force` runs the bf16 side anyway there, which is how the figures in
docs/benchmarks.md were measured on an AVX2-only machine.

    python benchmarks/bf16_accuracy.py --weights runs/detect/train/weights/best.pt --imgsz 640
    python benchmarks/bf16_accuracy.py --epochs 60 --imgsz 128 --force
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

# Small enough to train on a CPU in well under an hour at 128 px, large enough to learn shapes.yaml:
# the article's layout (HGNet stem and blocks, FocalModulation on P5, RepC3 neck) at a quarter of the
# widths, a 128-wide decoder with 100 queries and 3 layers.
SMALL_MODEL_YAML = """\
nc: 6
backbone:
  - [-1, 1, HGStem, [16, 32]] # 0-P2/4
  - [-1, 1, HGBlock, [16, 64, 3]] # 1
  - [-1, 1, DWConv, [64, 3, 2, 1, False]] # 2-P3/8
  - [-1, 1, HGBlock, [32, 128, 3]] # 3
  - [-1, 1, DWConv, [128, 3, 2, 1, False]] # 4-P4/16
  - [-1, 1, HGBlock, [64, 256, 5, True, False]] # 5
  - [-1, 1, DWConv, [256, 3, 2, 1, False]] # 6-P5/32
  - [-1, 1, HGBlock, [128, 512, 5, True, False]] # 7
head:
  - [-1, 1, Conv, [128, 1, 1, None, 1, 1, False]] # 8
  - [-1, 1, FocalModulation, []] # 9
  - [-1, 1, Conv, [128, 1, 1]] # 10 Y5
  - [-1, 1, nn.Upsample, [None, 2, "nearest"]] # 11
  - [5, 1, Conv, [128, 1, 1, None, 1, 1, False]] # 12
  - [[-2, -1], 1, Concat, [1]] # 13
  - [-1, 1, RepC3, [128]] # 14
  - [-1, 1, Conv, [128, 1, 1]] # 15 Y4
  - [-1, 1, nn.Upsample, [None, 2, "nearest"]] # 16
  - [3, 1, Conv, [128, 1, 1, None, 1, 1, False]] # 17
  - [[-2, -1], 1, Concat, [1]] # 18
  - [-1, 1, RepC3, [128]] # 19 X3
  - [-1, 1, Conv, [128, 3, 2]] # 20
  - [[-1, 15], 1, Concat, [1]] # 21
  - [-1, 1, RepC3, [128]] # 22 F4
  - [-1, 1, Conv, [128, 3, 2]] # 23
  - [[-1, 10], 1, Concat, [1]] # 24
  - [-1, 1, RepC3, [128]] # 25 F5
  - [[19, 22, 25], 1, RTDETRDecoder, [nc, 128, 100, 4, 4, 3, 512]] # 26 hd, nq, ndp, nh, ndl, d_ffn
"""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", default=None, help="a trained .pt; without it the script trains --model first")
    parser.add_argument("--model", default=None, help="yaml to train (default: the small model in this script)")
    parser.add_argument("--data", default="shapes.yaml")
    parser.add_argument("--imgsz", type=int, default=128, help="train and val image size")
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--hours", type=float, default=None, help="stop training after this many hours")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--lr0", type=float, default=1e-3, help="AdamW learning rate for the training run")
    parser.add_argument("--project", default=None, help="folder for the training run (default: a temporary one)")
    parser.add_argument("--top", type=int, default=10, help="detections per image compared box by box")
    parser.add_argument("--force", action="store_true", help="run bf16 even where the CPU has no native bf16")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    return parser.parse_args(argv)


def train(opt: argparse.Namespace) -> Path:
    """Train the model on the dataset in float32 and return the path of its best.pt."""
    from ultralytics import RTDETR

    model_yaml = opt.model
    project = Path(opt.project or tempfile.mkdtemp(prefix="bf16_accuracy_"))
    if model_yaml is None:
        model_yaml = project / "rtdetr-small-FocalModulation.yaml"
        project.mkdir(parents=True, exist_ok=True)
        model_yaml.write_text(SMALL_MODEL_YAML, encoding="utf-8")
    model = RTDETR(str(model_yaml))
    extra = {"time": opt.hours} if opt.hours else {}
    model.train(
        data=opt.data,
        epochs=opt.epochs,
        imgsz=opt.imgsz,
        batch=opt.batch,
        optimizer="AdamW",
        lr0=opt.lr0,
        workers=0,
        project=str(project),
        name="train",
        plots=False,
        **extra,
    )
    return Path(model.trainer.best)


def map_scores(weights: Path, opt: argparse.Namespace, half: bool) -> tuple[float, float]:
    """(mAP50, mAP50-95) of a standalone `val` run; half=True is the CPU bf16 path."""
    from ultralytics import RTDETR

    metrics = RTDETR(str(weights)).val(
        data=opt.data, imgsz=opt.imgsz, batch=8, half=half, device="cpu", plots=False, workers=0, verbose=False
    )
    return float(metrics.box.map50), float(metrics.box.map)


def _val_batches(opt: argparse.Namespace):
    """The val split as the validator batches and pre-processes it (float32 images in [0, 1])."""
    import torch

    from ultralytics.data.utils import check_det_dataset
    from ultralytics.models.rtdetr.val import RTDETRValidator

    validator = RTDETRValidator(args={"data": opt.data, "imgsz": opt.imgsz, "batch": 8, "workers": 0})
    validator.device, validator.data = torch.device("cpu"), check_det_dataset(opt.data)
    for batch in validator.get_dataloader(validator.data["val"], 8):
        yield validator.preprocess(batch)


def _top_box_errors(fp32: torch.Tensor, bf16: torch.Tensor, top: int) -> list[float]:
    """For each image's `top` best float32 detections, the largest coordinate difference (pixels at 640)
    to the nearest bf16 detection of the same class. fp32, bf16: (bs, nq, 4 + nc)."""
    errors = []
    for a, b in zip(fp32, bf16):
        scores, classes = a[:, 4:].max(-1)
        b_classes = b[:, 4:].argmax(-1)
        for q in scores.topk(min(top, len(scores))).indices:
            same = b[b_classes == classes[q], :4]
            if len(same):
                errors.append(640 * float((same - a[q, :4]).abs().max(-1).values.min()))
            else:
                errors.append(float("inf"))  # bf16 has no detection of that class at all
    return errors


def compare_outputs(weights: Path, opt: argparse.Namespace) -> dict:
    """Box differences of the top detections and the eval-mode loss, float32 against bf16 autocast."""
    import torch

    from ultralytics.nn.tasks import attempt_load_one_weight

    model, _ = attempt_load_one_weight(str(weights), device=torch.device("cpu"), fuse=True)
    model = model.float().eval()
    errors, losses = [], {"float32": 0.0, "bf16": 0.0}
    with torch.inference_mode():
        for batch in _val_batches(opt):
            outputs = {}
            for name, autocast in (("float32", False), ("bf16", True)):
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
                    preds = model(batch["img"])
                outputs[name] = preds[0]
                losses[name] += float(model.loss(batch, preds)[1].sum())  # giou + cls + l1
            errors += _top_box_errors(outputs["float32"], outputs["bf16"], opt.top)
    errors.sort()
    return {
        "box_max_px": errors[-1],
        "box_median_px": errors[len(errors) // 2],
        "box_p95_px": errors[int(0.95 * (len(errors) - 1))],
        "box_within_1px": sum(e <= 1 for e in errors) / len(errors),
        "n_boxes": len(errors),
        **losses,
    }


def report(weights: Path, opt: argparse.Namespace) -> str:
    """The markdown lines for docs/benchmarks.md."""
    fp32_map = map_scores(weights, opt, half=False)
    bf16_map = map_scores(weights, opt, half=True)
    out = compare_outputs(weights, opt)
    loss_change = (out["bf16"] - out["float32"]) / out["float32"]
    rows = [
        f"Weights {weights}, {opt.data} val split at imgsz {opt.imgsz}, CPU bfloat16 autocast vs float32.",
        "",
        "| measure | float32 | bf16 | difference | target |",
        "|---|---:|---:|---:|---|",
        f"| mAP50 | {fp32_map[0]:.4f} | {bf16_map[0]:.4f} | {bf16_map[0] - fp32_map[0]:+.4f} | within 0.005 |",
        f"| mAP50-95 | {fp32_map[1]:.4f} | {bf16_map[1]:.4f} | {bf16_map[1] - fp32_map[1]:+.4f} | within 0.005 |",
        f"| eval-mode loss (sum over batches) | {out['float32']:.4f} | {out['bf16']:.4f} | {100 * loss_change:+.2f} % "
        "| within 1 % |",
        f"| top-{opt.top} detections per image: largest box-coordinate difference to the nearest bf16 box of the "
        f"same class (px at 640), over {out['n_boxes']} boxes | | | median {out['box_median_px']:.2f}, "
        f"95th percentile {out['box_p95_px']:.2f}, max {out['box_max_px']:.2f}; "
        f"{100 * out['box_within_1px']:.0f} % within 1 px | within 1 px |",
    ]
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> None:
    opt = parse_args(argv)
    import torch

    from ultralytics.utils import precision

    if opt.threads:
        torch.set_num_threads(opt.threads)
    if opt.force and not precision.cpu_has_native_bf16():
        print("--force: no native bf16 on this CPU; bf16 kernels are emulated (slow)", file=sys.stderr)
        precision.cpu_has_native_bf16 = lambda: True  # let half=True take the bf16 path here too
    weights = Path(opt.weights) if opt.weights else train(opt)
    print(report(weights, opt))


if __name__ == "__main__":
    main()
