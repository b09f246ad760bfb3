"""RT-DETR validation: post-processing, stretch rescaling, mAP on perfect predictions, standalone runs."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

# Every test runs in its own tmp_path, with runs/ and datasets/ there.
pytestmark = pytest.mark.usefixtures("in_tmp_path")

NQ = 300  # RT-DETR queries per image


def _validator(tmp_path: Path, **args):
    from ultralytics.models.rtdetr.val import RTDETRValidator

    return RTDETRValidator(save_dir=tmp_path / "val", args={"imgsz": 64, "plots": False, **args})


def _labelled_batch() -> dict:
    """Two non-square images (ori shapes 80x96 and 120x60) stretched to 64x64, four boxes."""
    return {
        "img": torch.zeros(2, 3, 64, 64),
        "batch_idx": torch.tensor([0.0, 0.0, 1.0, 1.0]),
        "cls": torch.tensor([[0.0], [1.0], [1.0], [0.0]]),
        "bboxes": torch.tensor(  # normalised xywh
            [[0.30, 0.40, 0.20, 0.30], [0.70, 0.60, 0.25, 0.50], [0.50, 0.25, 0.60, 0.20], [0.40, 0.75, 0.30, 0.30]]
        ),
        "ori_shape": [(80, 96), (120, 60)],
        "ratio_pad": [None, None],
        "im_file": ["a/0001.jpg", "a/img_b.jpg"],
    }


def _perfect_output(batch: dict, nc: int = 2, junk_score: float = 0.01) -> torch.Tensor:
    """Model output (bs, NQ, 4 + nc) whose first queries are the labels (score 0.9), the rest junk."""
    g = torch.Generator().manual_seed(0)
    bs = batch["img"].shape[0]
    out = torch.zeros(bs, NQ, 4 + nc)
    out[..., :2] = torch.rand(bs, NQ, 2, generator=g) * 0.2 + 0.05  # junk boxes in a corner
    out[..., 2:4] = 0.05
    out[..., 4:] = junk_score
    for b in range(bs):
        idx = (batch["batch_idx"] == b).nonzero().flatten()
        for q, j in enumerate(idx.tolist()):
            out[b, q, :4] = batch["bboxes"][j]
            out[b, q, 4 + int(batch["cls"][j])] = 0.9
    return out


def _score(validator, preds: torch.Tensor, batch: dict, names: dict | None = None) -> dict:
    names = names or {0: "red", 1: "green"}
    validator.device = torch.device("cpu")
    validator.init_metrics(SimpleNamespace(names=names))
    validator.update_metrics(validator.postprocess(preds), batch)
    return validator.get_stats()


def test_postprocess_keeps_all_queries_sorted(tmp_path):
    v = _validator(tmp_path)
    assert v.args.conf == 0.001  # validation default when conf is unset
    out = torch.rand(2, NQ, 4 + 3, generator=torch.Generator().manual_seed(1)) * 0.9
    out[0, 5] = torch.tensor([0.5, 0.5, 0.2, 0.4, 0.0, 0.99, 0.1])  # the best query of image 0
    preds = v.postprocess((out, None))
    assert len(preds) == 2 and preds[0].shape == (NQ, 6)  # nothing dropped, however low the score
    assert torch.all(preds[0][:-1, 4] >= preds[0][1:, 4])
    torch.testing.assert_close(preds[0][0], torch.tensor([0.4 * 64, 0.3 * 64, 0.6 * 64, 0.7 * 64, 0.99, 1.0]))
    assert v.postprocess(out)[1].shape == (NQ, 6)  # a bare tensor (exported model) is accepted too


def test_perfect_predictions_give_map_one(tmp_path, captured_log):
    batch = _labelled_batch()
    v = _validator(tmp_path, verbose=True)
    stats = _score(v, _perfect_output(batch), batch)
    assert set(stats) == {*v.metrics.keys, "fitness"}
    # Upstream's 101-point trapezoid integration tops out at 0.995 for a perfect ranking.
    assert stats["metrics/mAP50-95(B)"] == pytest.approx(0.995, abs=1e-6)
    assert stats["metrics/mAP50(B)"] == pytest.approx(0.995, abs=1e-6)
    assert stats["metrics/recall(B)"] == pytest.approx(1.0, abs=1e-6)
    assert v.nt_per_class.tolist() == [2, 2] and v.seen == 2

    v.training = False
    with captured_log() as log:
        v.print_results()
    rows = [m.split() for m in log]
    assert ["all", "2", "4"] == rows[0][:3]
    assert {r[0] for r in rows[1:]} == {"red", "green"}  # one row per class


def test_stretch_rescaling_is_per_axis(tmp_path):
    """Label and prediction boxes go back to the original (non-square) image with separate x/y gains."""
    batch = _labelled_batch()
    v = _validator(tmp_path)
    pbatch = v._prepare_batch(1, batch)
    # image 1 is 120 high and 60 wide; its first box is xywh (0.5, 0.25, 0.6, 0.2)
    torch.testing.assert_close(pbatch["bbox"][0], torch.tensor([12.0, 18.0, 48.0, 42.0]))
    pred = torch.tensor([[6.4, 9.6, 25.6, 22.4, 0.9, 1.0]])  # the same box in 64x64 input pixels
    torch.testing.assert_close(v._prepare_pred(pred, pbatch)[0, :4], torch.tensor([6.0, 18.0, 24.0, 42.0]))

    # Boxes that are right in the stretched image but then scaled with one gain for both axes miss.
    wrong = _perfect_output(batch)
    wrong[1, :, 1] *= 0.5  # as if y had been scaled like x
    assert _score(_validator(tmp_path), wrong, batch)["metrics/mAP50-95(B)"] < 0.9


def test_wrong_classes_score_zero(tmp_path):
    batch = _labelled_batch()
    out = _perfect_output(batch)
    out[..., 4:] = out[..., 4:].flip(-1)  # every box labelled with the other class
    stats = _score(_validator(tmp_path), out, batch)
    assert stats["metrics/mAP50-95(B)"] == pytest.approx(0.0, abs=1e-6)


def test_standalone_validation_module_and_checkpoint(tmp_path, tiny_yaml, tiny_dataset, captured_log):
    from ultralytics.models.rtdetr.val import RTDETRValidator
    from ultralytics.nn.tasks import RTDETRDetectionModel

    data = tiny_dataset(n_train=2, n_val=3)
    torch.manual_seed(0)
    model = RTDETRDetectionModel(tiny_yaml, nc=2, verbose=False)
    model.names = {0: "red", 1: "green"}
    args = dict(data=data, imgsz=64, batch=2, device="cpu", plots=True, save_json=True)

    v = RTDETRValidator(save_dir=tmp_path / "val", args=args)
    with captured_log() as log:
        stats = v(model=model)
    assert set(stats) == {*v.metrics.keys, "fitness"}
    assert all(0.0 <= x <= 1.0 for x in stats.values())
    assert set(v.speed) == {"preprocess", "inference", "loss", "postprocess"}
    assert v.speed["inference"] > 0 and all(x >= 0 for x in v.speed.values())
    assert any(m.startswith("Speed: ") and "ms inference" in m for m in log)
    assert v.seen == 3
    for name in ("val_batch0_labels.jpg", "val_batch0_pred.jpg", "confusion_matrix.png"):
        assert (tmp_path / "val" / name).is_file(), name
    preds = json.loads((tmp_path / "val" / "predictions.json").read_text())
    assert len(preds) == 3 * NQ
    assert set(preds[0]) == {"image_id", "category_id", "bbox", "score"} and preds[0]["category_id"] in {1, 2}

    # The same model from a checkpoint file (the path final_eval passes) scores the same.
    ckpt = tmp_path / "best.pt"
    torch.save({"model": model.float(), "train_args": {"data": data, "imgsz": 64}}, ckpt)
    v2 = RTDETRValidator(save_dir=tmp_path / "val2", args={**args, "plots": False, "save_json": False})
    stats2 = v2(model=str(ckpt))
    assert stats2 == pytest.approx(stats, abs=1e-3)


def test_non_yaml_data_is_rejected(tmp_path, tiny_yaml):
    from ultralytics.models.rtdetr.val import RTDETRValidator
    from ultralytics.nn.tasks import RTDETRDetectionModel

    model = RTDETRDetectionModel(tiny_yaml, nc=2, verbose=False)
    v = RTDETRValidator(save_dir=tmp_path / "val", args=dict(data="images_folder", imgsz=64, device="cpu"))
    with pytest.raises(FileNotFoundError, match="images_folder.*dataset yaml"):
        v(model=model)


def test_predictions_are_scaled_without_clipping(tmp_path):
    """A predicted box past the image border stays past it: RT-DETR validation scales, never clips."""
    v = _validator(tmp_path)
    pbatch = v._prepare_batch(0, _labelled_batch())  # image 0 is 80 high, 96 wide
    pred = torch.tensor([[-6.4, -3.2, 70.4, 67.2, 0.8, 0.0]])  # input pixels, beyond every edge
    out = v._prepare_pred(pred, pbatch)
    torch.testing.assert_close(out[0, :4], torch.tensor([-9.6, -4.0, 105.6, 84.0]))
    assert out.dtype == torch.float32 and torch.equal(pred[0, :4], torch.tensor([-6.4, -3.2, 70.4, 67.2]))


def test_images_without_predictions_or_labels(tmp_path):
    """No predictions: the labels count as missed; no labels: the predictions are all false positives."""
    batch = _labelled_batch()
    v = _validator(tmp_path)
    v.device = torch.device("cpu")
    v.init_metrics(SimpleNamespace(names={0: "red", 1: "green"}))
    preds = v.postprocess(_perfect_output(batch))
    preds[0] = preds[0][:0]  # image 0 answered nothing
    batch["batch_idx"] = batch["batch_idx"][:2]  # image 1 keeps no label
    for key in ("cls", "bboxes"):
        batch[key] = batch[key][:2]
    v.update_metrics(preds, batch)
    assert v.seen == 2
    assert [len(t) for t in v.stats["tp"]] == [0, NQ] and not v.stats["tp"][1].any()
    assert [len(t) for t in v.stats["target_cls"]] == [2, 0]
    stats = v.get_stats()
    assert v.nt_per_class.tolist() == [1, 1] and v.nt_per_image.tolist() == [1, 1]
    assert stats["metrics/mAP50-95(B)"] == 0.0 and stats["fitness"] == 0.0


def test_save_txt_and_json_rows(tmp_path):
    """labels/<stem>.txt holds `cls xc yc w h conf` normalised to the original image; json holds COCO ltwh."""
    v = _validator(tmp_path, save_txt=True, save_conf=True)
    v.init_metrics(SimpleNamespace(names={0: "red", 1: "green"}))
    predn = torch.tensor([[10.0, 20.0, 50.0, 60.0, 0.875, 1.0]])
    v.save_one_txt(predn, True, (80, 100), tmp_path / "val" / "labels" / "x.txt")
    assert (tmp_path / "val" / "labels" / "x.txt").read_text() == "1 0.3 0.5 0.4 0.5 0.875\n"
    v.pred_to_json(predn, "dir/000042.jpg")
    v.pred_to_json(predn, "dir/cat.jpg")
    assert v.jdict == [
        {"image_id": 42, "category_id": 2, "bbox": [10.0, 20.0, 40.0, 40.0], "score": 0.875},
        {"image_id": "cat", "category_id": 2, "bbox": [10.0, 20.0, 40.0, 40.0], "score": 0.875},
    ]


def test_results_table_header_and_metric_keys(tmp_path):
    v = _validator(tmp_path)
    assert v.get_desc().split() == ["Class", "Images", "Instances", "Box(P", "R", "mAP50", "mAP50-95)"]
    assert v.get_desc() == ("%22s" + "%11s" * 6) % ("Class", "Images", "Instances", "Box(P", "R", "mAP50", "mAP50-95)")
    assert v.metric_keys == ["metrics/precision(B)", "metrics/recall(B)", "metrics/mAP50(B)", "metrics/mAP50-95(B)"]


def test_missing_split_names_the_yaml_and_its_splits_and_writes_nothing(tmp_path, tiny_dataset, tiny_yaml):
    """split='test' on a yaml without a test entry: a ValueError, not a TypeError from the dataset, no run folder."""
    from ultralytics import RTDETR

    data = tiny_dataset(n_train=1, n_val=1)
    model = RTDETR(tiny_yaml)
    for split in ("test", "names"):
        with pytest.raises(ValueError) as e:
            model.val(data=data, split=split, imgsz=64, device="cpu")
        msg = str(e.value)
        assert f"split='{split}'" in msg and data in msg and "['train', 'val']" in msg
    assert not (tmp_path / "runs").exists()
    assert not list(Path(data).parent.rglob("*.cache"))


def test_bad_dataset_yaml_leaves_no_run_folder(tmp_path, tiny_yaml):
    from ultralytics import RTDETR

    (tmp_path / "nonames.yaml").write_text("train: images\nval: images\n")
    with pytest.raises(ValueError, match="nonames.yaml.*'names'"):
        RTDETR(tiny_yaml).val(data=str(tmp_path / "nonames.yaml"), imgsz=64, device="cpu")
    with pytest.raises(FileNotFoundError, match="nothere.yaml"):
        RTDETR(tiny_yaml).val(data=str(tmp_path / "nothere.yaml"), imgsz=64, device="cpu")
    assert not (tmp_path / "runs").exists()
