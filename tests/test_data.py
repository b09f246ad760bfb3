"""Datasets, label verification, augmentation, collation, dataloaders and the synthetic shapes set."""

from __future__ import annotations

import os
from copy import copy
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from ultralytics.data import RTDETRDataset, YOLODataset, build_dataloader, check_det_dataset
from ultralytics.data.augment import LetterBox, Mosaic
from ultralytics.data.instances import Instances
from ultralytics.data.shapes import SHAPE_NAMES, generate_shapes_dataset
from ultralytics.data.utils import img2label_paths
from ultralytics.utils import DEFAULT_CFG


NAMES = {0: "a", 1: "b", 2: "c"}


@pytest.fixture(scope="module")
def shapes_data(tmp_path_factory):
    """check_det_dataset('shapes.yaml') generating the dataset into a private datasets folder."""
    root = tmp_path_factory.mktemp("datasets")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ULTRALYTICS_DATASETS_DIR", str(root))
        data = check_det_dataset("shapes.yaml")
    return data


def _write_image(path: Path, h: int = 64, w: int = 64, seed: int = 0) -> np.ndarray:
    path.parent.mkdir(parents=True, exist_ok=True)
    img = np.random.default_rng(seed).integers(0, 255, (h, w, 3), dtype=np.uint8)
    cv2.imwrite(str(path), img)
    return img


def _write_pair(root: Path, split: str, name: str, label: str | None, seed: int = 0, h: int = 64, w: int = 64) -> Path:
    im = root / "images" / split / f"{name}.jpg"
    _write_image(im, h, w, seed)
    if label is not None:
        lb = root / "labels" / split / f"{name}.txt"
        lb.parent.mkdir(parents=True, exist_ok=True)
        lb.write_text(label)
    return im


def _hyp(**overrides):
    hyp = copy(DEFAULT_CFG)
    for k, v in overrides.items():
        setattr(hyp, k, v)
    return hyp


def _yaml(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


# ---------------------------------------------------------------- shapes dataset


def test_shapes_generation_is_deterministic_and_labels_match_pixels(tmp_path):
    a = generate_shapes_dataset(tmp_path / "a", n_train=12, n_val=3)
    b = generate_shapes_dataset(tmp_path / "b", n_train=12, n_val=3)
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert len([f for f in files if f.suffix == ".jpg"]) == 15
    assert files == sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    for f in files:
        assert (a / f).read_bytes() == (b / f).read_bytes(), f

    n_boxes = 0
    for lb in sorted((a / "labels" / "train").glob("*.txt")):
        text = lb.read_text().split()
        rows = np.array(text, dtype=float).reshape(-1, 5)
        im = cv2.imread(str(a / "images" / "train" / f"{lb.stem}.jpg"))
        h, w = im.shape[:2]
        if not len(rows):
            continue
        assert set(rows[:, 0]) <= set(range(len(SHAPE_NAMES)))
        assert (rows[:, 1:] > 0).all() and (rows[:, 1:] <= 1).all()
        xyxy = np.stack(
            [(rows[:, 1] - rows[:, 3] / 2) * w, (rows[:, 2] - rows[:, 4] / 2) * h,
             (rows[:, 1] + rows[:, 3] / 2) * w, (rows[:, 2] + rows[:, 4] / 2) * h], 1)
        assert (xyxy[:, :2] >= -0.5).all() and (xyxy[:, 2] <= w + 0.5).all() and (xyxy[:, 3] <= h + 0.5).all()
        sat = cv2.cvtColor(im, cv2.COLOR_BGR2HSV)[..., 1].astype(float)
        background = np.ones((h, w), bool)
        for x1, y1, x2, y2 in xyxy.round().astype(int):
            background[y1:y2, x1:x2] = False
        bg_limit = np.percentile(sat[background], 99)
        for xc, yc in zip(rows[:, 1] * w, rows[:, 2] * h):
            patch = sat[int(yc) - 1 : int(yc) + 2, int(xc) - 1 : int(xc) + 2]
            assert patch.mean() > bg_limit + 30, f"{lb.name}: no shape at box centre ({xc:.0f}, {yc:.0f})"
            n_boxes += 1
    assert n_boxes >= 20  # several objects per image on average


def test_check_det_dataset_shapes_yaml_generates_and_resolves(shapes_data):
    assert shapes_data["nc"] == 6
    assert shapes_data["names"] == dict(enumerate(SHAPE_NAMES))
    root = Path(shapes_data["path"])
    assert Path(shapes_data["train"]) == root / "images" / "train"
    assert len(list(Path(shapes_data["train"]).glob("*.jpg"))) == 128
    assert len(list(Path(shapes_data["val"]).glob("*.jpg"))) == 32
    assert shapes_data["yaml_file"].endswith("shapes.yaml")


def test_check_det_dataset_folder_txt_and_list(tmp_path, monkeypatch):
    monkeypatch.setenv("ULTRALYTICS_DATASETS_DIR", str(tmp_path / "elsewhere"))
    root = tmp_path / "mydata"
    for i in range(3):
        _write_pair(root, "train", f"t{i}", "0 0.5 0.5 0.2 0.2\n", seed=i)
    _write_pair(root, "val", "v0", "1 0.5 0.5 0.2 0.2\n")
    (root / "train.txt").write_text("./images/train/t0.jpg\nimages/train/t1.jpg\n")

    # no 'path': the yaml's folder is the root; names as a list become a dict
    y = _yaml(root / "folder.yaml", "train: images/train\nval: images/val\nnames: [a, b]\n")
    d = check_det_dataset(str(y))
    assert d["names"] == {0: "a", 1: "b"} and d["nc"] == 2
    assert d["train"] == str(root / "images" / "train") and d["path"] == root

    text = f"path: {root}\ntrain: train.txt\nval: [images/val, images/train/t2.jpg]\nnames: {{0: a, 1: b}}\n"
    y = _yaml(root / "txt.yaml", text)
    d = check_det_dataset(y)
    assert d["train"] == str(root / "train.txt")
    assert d["val"] == [str(root / "images" / "val"), str(root / "images" / "train" / "t2.jpg")]
    ds = YOLODataset(img_path=d["train"], imgsz=64, augment=False, data=d)
    assert [Path(f).name for f in ds.im_files] == ["t0.jpg", "t1.jpg"]
    ds = YOLODataset(img_path=d["val"], imgsz=64, augment=False, data=d)
    assert [Path(f).name for f in ds.im_files] == ["t2.jpg", "v0.jpg"]

    # a relative 'path' that only exists beside the yaml is found there
    (tmp_path / "cfgs").mkdir()
    y = _yaml(tmp_path / "cfgs" / "rel.yaml", "path: ../mydata\ntrain: images/train\nval: images/val\nnc: 2\n")
    d = check_det_dataset(y)
    assert d["path"] == root and d["names"] == {0: "class_0", 1: "class_1"}


@pytest.mark.parametrize(
    "text, error, words",
    [
        ("val: images/val\nnames: [a]\n", KeyError, ["'train:'", "key missing", "folder"]),
        ("train: images/train\nnames: [a]\n", KeyError, ["'val:'", "required"]),
        ("train: images/train\nval: images/train\n", KeyError, ["'names'", "'nc'"]),
        ("train: images/train\nval: images/train\nnames: [a, b]\nnc: 3\n", ValueError, ["'names' length 2", "nc: 3"]),
        ("train: images/train\nval: images/train\nnames: {0: a, 2: b}\n", KeyError, ["0-1", "0-2"]),
        (
            "train: images/train\nval: images/nowhere\nnames: [a]\n",
            FileNotFoundError,
            ["nowhere", "ULTRALYTICS_DATASETS_DIR"],
        ),
        ("train: images/train\nval: 5\nnames: [a]\n", TypeError, ["'val:'", ".txt"]),
        ("train: images/train\nval: images/train\nnames: [a]\nsynthetic: nope\n", ValueError, ["nope", "shapes"]),
    ],
)
def test_check_det_dataset_errors_name_yaml_and_key(tmp_path, text, error, words):
    _write_pair(tmp_path, "train", "x", "0 0.5 0.5 0.1 0.1\n")
    y = _yaml(tmp_path / "bad.yaml", text)
    with pytest.raises(error) as e:
        check_det_dataset(y)
    # Every mistake in a yaml is also a ValueError, which the command line reports as a usage error.
    assert isinstance(e.value, ValueError) or error is FileNotFoundError
    msg = str(e.value)
    assert "bad.yaml" in msg and not msg.startswith("'")  # no KeyError quotes around the message
    for w in words:
        assert w in msg


def test_check_det_dataset_missing_yaml(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nothere\.yaml.*looked for.*shapes\.yaml"):
        check_det_dataset(str(tmp_path / "nothere.yaml"))
    with pytest.raises(ValueError, match="must be a dataset .yaml"):
        check_det_dataset(str(tmp_path / "data.json"))


# ---------------------------------------------------------------- label verification


def test_bad_labels_are_reported_and_skipped_or_repaired(tmp_path, log_text, capsys):
    root = tmp_path / "bad"
    good = "0 0.5 0.5 0.25 0.25\n"
    _write_pair(root, "train", "good", good)
    _write_pair(root, "train", "columns", "0 0.5 0.5 0.25\n")
    _write_pair(root, "train", "classid", "3 0.5 0.5 0.25 0.25\n")
    _write_pair(root, "train", "outside", "1 1.2 0.5 0.25 0.25\n")
    _write_pair(root, "train", "negative", "1 0.5 -0.1 0.25 0.25\n")
    _write_pair(root, "train", "zerosize", "1 0.5 0.5 0.0 0.25\n2 0.3 0.3 0.2 0.2\n")
    _write_pair(root, "train", "dupes", good + good + "1 0.2 0.2 0.1 0.1\n")
    _write_pair(root, "train", "missing", None)
    _write_pair(root, "train", "empty", "")
    broken = root / "images" / "train" / "broken.jpg"
    broken.write_bytes(b"this is not an image")
    (root / "labels" / "train" / "broken.txt").write_text(good)
    trunc = _write_pair(root, "train", "truncated", good)
    trunc.write_bytes(trunc.read_bytes()[:-2])  # drop the JPEG end marker

    ds = YOLODataset(
        img_path=root / "images" / "train", imgsz=64, augment=False, data={"names": NAMES}, prefix="train: "
    )
    summary = capsys.readouterr().err.replace("\r", "\n").strip().splitlines()[-1]
    # upstream's count: 'images' are label files found (9), backgrounds = missing + empty labels
    assert "Scanning" in summary and "9 images, 2 backgrounds, 5 corrupt" in summary
    kept = {Path(lb["im_file"]).stem: lb for lb in ds.labels}
    assert set(kept) == {"good", "zerosize", "dupes", "missing", "empty", "truncated"}
    assert len(kept["dupes"]["bboxes"]) == 2
    assert kept["zerosize"]["cls"].ravel().tolist() == [2.0]
    assert len(kept["missing"]["bboxes"]) == 0 and len(kept["empty"]["bboxes"]) == 0
    assert trunc.read_bytes()[-2:] == b"\xff\xd9"

    text = log_text()
    expectations = {
        "columns.jpg": "5 columns",
        "classid.jpg": "Label class 3 exceeds dataset class count 3",
        "outside.jpg": "out of bounds",
        "negative.jpg": "negative",
        "broken.jpg": "ignoring corrupt image/label",
        "zerosize.jpg": "1 zero-size labels removed",
        "dupes.jpg": "1 duplicate labels removed",
        "truncated.jpg": "corrupt JPEG restored",
    }
    for name, phrase in expectations.items():
        line = next((ln for ln in text.splitlines() if name in ln), "")
        assert phrase in line, f"{name}: {line!r}"


def test_split_without_usable_images_raises(tmp_path):
    root = tmp_path / "allbad"
    for i in range(2):
        _write_pair(root, "train", f"x{i}", "7 0.5 0.5 0.2 0.2\n", seed=i)
    with pytest.raises(FileNotFoundError, match=r"No usable images in .*allbad.*2 found, 2 corrupt.*x_center"):
        YOLODataset(img_path=root / "images" / "train", imgsz=64, augment=False, data={"names": NAMES})
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="No images found"):
        YOLODataset(img_path=tmp_path / "empty", imgsz=64, augment=False, data={"names": NAMES})
    with pytest.raises(FileNotFoundError, match="does not exist"):
        YOLODataset(img_path=tmp_path / "nope", imgsz=64, augment=False, data={"names": NAMES})


def test_label_cache_written_reused_and_rebuilt(tmp_path, monkeypatch):
    root = tmp_path / "c"
    _write_pair(root, "train", "a", "0 0.5 0.5 0.2 0.2\n")
    _write_pair(root, "train", "b", "1 0.4 0.4 0.2 0.2\n", seed=1)
    ds = YOLODataset(img_path=root / "images" / "train", imgsz=64, augment=False, data={"names": NAMES})
    cache = root / "labels" / "train.cache"
    assert cache.is_file() and len(ds.labels) == 2

    def no_scan(self, path):
        raise AssertionError("labels were rescanned although the cache matches")

    with monkeypatch.context() as m:
        m.setattr(YOLODataset, "cache_labels", no_scan)
        again = YOLODataset(img_path=root / "images" / "train", imgsz=64, augment=False, data={"names": NAMES})
    assert [lb["cls"].tolist() for lb in again.labels] == [lb["cls"].tolist() for lb in ds.labels]

    (root / "labels" / "train" / "b.txt").write_text("2 0.4 0.4 0.2 0.2\n2 0.6 0.6 0.2 0.2\n")
    changed = YOLODataset(img_path=root / "images" / "train", imgsz=64, augment=False, data={"names": NAMES})
    assert changed.labels[1]["cls"].ravel().tolist() == [2.0, 2.0]

    # an edit that keeps the file size (1 -> 0) must also invalidate the cache
    label_a = root / "labels" / "train" / "a.txt"
    label_a.write_text("1 0.5 0.5 0.2 0.2\n")
    st = label_a.stat()
    os.utime(label_a, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    edited = YOLODataset(img_path=root / "images" / "train", imgsz=64, augment=False, data={"names": NAMES})
    assert edited.labels[0]["cls"].ravel().tolist() == [1.0]


def test_classes_filter_single_cls_and_fraction(tmp_path):
    root = tmp_path / "f"
    for i in range(4):
        _write_pair(root, "train", f"x{i}", "0 0.3 0.3 0.2 0.2\n2 0.6 0.6 0.2 0.2\n", seed=i)
    kw = dict(img_path=root / "images" / "train", imgsz=64, augment=False, data={"names": NAMES})
    only2 = YOLODataset(classes=[2], **kw)
    assert all(lb["cls"].ravel().tolist() == [2.0] and len(lb["bboxes"]) == 1 for lb in only2.labels)
    single = YOLODataset(single_cls=True, **kw)
    assert all(lb["cls"].ravel().tolist() == [0.0, 0.0] for lb in single.labels)
    assert len(YOLODataset(fraction=0.5, **kw)) == 2
    with pytest.raises(ValueError, match=r"fraction must be in \(0, 1\]"):
        YOLODataset(fraction=1.5, **kw)


def test_img2label_paths():
    p = os.sep.join(["", "d", "images", "x", "images", "train", "a.b.jpg"])
    assert img2label_paths([p]) == [os.sep.join(["", "d", "images", "x", "labels", "train", "a.b.txt"])]


# ---------------------------------------------------------------- RT-DETR dataset and transforms


@pytest.mark.parametrize("imgsz", [64, 160])
@pytest.mark.parametrize("augment", [True, False])
def test_rtdetr_dataset_square_output_and_normalised_boxes(shapes_data, imgsz, augment):
    hyp = _hyp(mixup=0.5 if augment else 0.0, degrees=10.0)
    ds = RTDETRDataset(
        img_path=shapes_data["train"], imgsz=imgsz, augment=augment, hyp=hyp, data=shapes_data, batch_size=4
    )
    n_boxes = 0
    for i in range(6):
        s = ds[i]
        assert s["img"].shape == (3, imgsz, imgsz) and s["img"].dtype == torch.uint8
        assert s["resized_shape"] == (imgsz, imgsz)
        b = s["bboxes"]
        assert b.shape[1] == 4 and s["cls"].shape == (len(b), 1) and s["batch_idx"].shape == (len(b),)
        assert (b >= 0).all() and (b <= 1).all()
        n_boxes += len(b)
    assert n_boxes > 0


def test_rtdetr_non_augmented_sample_is_stretched_copy(tmp_path):
    root = tmp_path / "one"
    img = _write_pair(root, "train", "x", "1 0.25 0.5 0.2 0.4\n", h=80, w=120)
    ds = RTDETRDataset(img_path=root / "images" / "train", imgsz=64, augment=False, data={"names": NAMES})
    s = ds[0]
    expected = cv2.resize(cv2.imread(str(img)), (64, 64), interpolation=cv2.INTER_LINEAR)[..., ::-1]  # RGB
    assert torch.equal(s["img"].permute(1, 2, 0), torch.from_numpy(expected.copy()))
    assert torch.allclose(s["bboxes"], torch.tensor([[0.25, 0.5, 0.2, 0.4]]), atol=1e-6)
    assert s["ori_shape"] == (80, 120)


def test_horizontal_flip_mirrors_box(tmp_path):
    root = tmp_path / "flip"
    _write_pair(root, "train", "x", "2 0.2 0.3 0.1 0.2\n", h=64, w=64)
    off = RTDETRDataset(img_path=root / "images" / "train", imgsz=64, augment=False, data={"names": NAMES})
    hyp = _hyp(mosaic=0.0, mixup=0.0, fliplr=1.0, flipud=0.0, hsv_h=0.0, hsv_s=0.0, hsv_v=0.0,
               degrees=0.0, translate=0.0, scale=0.0, shear=0.0, perspective=0.0)
    on = RTDETRDataset(img_path=root / "images" / "train", imgsz=64, augment=True, hyp=hyp, data={"names": NAMES})
    plain, flipped = off[0], on[0]
    assert torch.allclose(flipped["bboxes"], torch.tensor([[0.8, 0.3, 0.1, 0.2]]), atol=1e-5)
    assert flipped["cls"].tolist() == [[2.0]]
    assert torch.equal(flipped["img"], plain["img"].flip(-1))


def test_close_mosaic_switches_mosaic_off_and_keeps_callers_hyp(shapes_data):
    hyp = _hyp(mosaic=1.0)
    ds = RTDETRDataset(img_path=shapes_data["val"], imgsz=64, augment=True, hyp=hyp, data=shapes_data, batch_size=2)

    def mosaic_p(dataset):
        found = [t for t in dataset.transforms.transforms[0].transforms if isinstance(t, Mosaic)]
        return found[0].p

    assert mosaic_p(ds) == 1.0
    assert DEFAULT_CFG.mosaic == 1.0 and hyp.mosaic == 1.0  # building transforms must not edit the args
    ds.close_mosaic(hyp=copy(hyp))
    assert mosaic_p(ds) == 0.0
    assert ds[0]["img"].shape == (3, 64, 64)


def test_collate_fn_layout(shapes_data):
    ds = RTDETRDataset(img_path=shapes_data["val"], imgsz=96, augment=False, data=shapes_data)
    samples = [ds[i] for i in range(3)]
    batch = RTDETRDataset.collate_fn(samples)
    assert {"im_file", "ori_shape", "resized_shape", "img", "cls", "bboxes", "batch_idx"} <= set(batch)
    n = sum(len(s["bboxes"]) for s in samples)
    assert isinstance(batch["im_file"], tuple) and len(batch["im_file"]) == 3
    assert batch["img"].shape == (3, 3, 96, 96) and batch["img"].dtype == torch.uint8
    assert batch["cls"].shape == (n, 1) and batch["cls"].dtype == torch.float32
    assert batch["bboxes"].shape == (n, 4) and batch["bboxes"].dtype == torch.float32
    assert batch["batch_idx"].shape == (n,) and batch["batch_idx"].dtype == torch.float32
    expected = torch.cat([torch.full((len(s["bboxes"]),), float(i)) for i, s in enumerate(samples)])
    assert torch.equal(batch["batch_idx"], expected)


def test_letterbox_scalefill_and_aspect_modes():
    img = np.zeros((50, 100, 3), np.uint8)
    labels = {
        "img": img,
        "instances": Instances(np.array([[0.5, 0.5, 0.2, 0.4]], np.float32), bbox_format="xywh", normalized=True),
    }
    out = LetterBox(new_shape=(64, 64), auto=False, scale_fill=True)(labels)
    assert out["img"].shape == (64, 64, 3)
    assert np.allclose(out["instances"].bboxes, [[25.6, 19.2, 38.4, 44.8]], atol=1e-4)  # xyxy pixels
    padded = LetterBox(new_shape=(64, 64))(image=img)
    assert padded.shape == (64, 64, 3) and padded[0, 0, 0] == 114 and padded[32, 32, 0] == 0


# ---------------------------------------------------------------- dataloader


def test_dataloader_same_first_batch_with_and_without_workers(shapes_data):
    ds = RTDETRDataset(img_path=shapes_data["val"], imgsz=64, augment=False, data=shapes_data)
    batches = []
    for workers in (0, 2):
        loader = build_dataloader(ds, batch=4, workers=workers, shuffle=True)
        batches.append(next(iter(loader)))
        assert len(loader) == 8
        del loader
    a, b = batches
    assert a["im_file"] == b["im_file"]
    assert a["im_file"] != tuple(ds.im_files[:4])  # shuffled, by the loader's fixed-seed generator
    for k in ("img", "cls", "bboxes", "batch_idx"):
        assert torch.equal(a[k], b[k]), k


def test_dataloader_pins_memory_only_with_cuda(shapes_data):
    ds = RTDETRDataset(img_path=shapes_data["val"], imgsz=64, augment=False, data=shapes_data)
    loader = build_dataloader(ds, batch=64, workers=0, shuffle=False)
    assert loader.pin_memory == torch.cuda.is_available()
    assert loader.batch_size == len(ds)  # batch is capped by the dataset size
