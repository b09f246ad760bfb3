"""Dataset helpers: image/label path pairing, label verification, label caches and dataset yamls."""

from __future__ import annotations

import gc
import hashlib
import os
from pathlib import Path
from typing import Any, Sequence

import cv2
import numpy as np
from PIL import Image, ImageOps

from ultralytics.utils import DATASETS_DIR, LOGGER, ROOT, is_dir_writeable, yaml_load

IMG_FORMATS = {"bmp", "dng", "jpeg", "jpg", "mpo", "png", "tif", "tiff", "webp", "pfm", "heic"}
VID_FORMATS = {"asf", "avi", "gif", "m4v", "mkv", "mov", "mp4", "mpeg", "mpg", "ts", "wmv", "webm"}
PIN_MEMORY = str(os.getenv("PIN_MEMORY", True)).lower() == "true"  # upstream's switch; used on CUDA only
FORMATS_HELP_MSG = f"Supported formats are:\nimages: {sorted(IMG_FORMATS)}\nvideos: {sorted(VID_FORMATS)}"
LABEL_FORMAT_HELP = (
    "Labels are YOLO .txt files in a 'labels' folder beside 'images' (images/x.jpg -> labels/x.txt), "
    "one 'class x_center y_center width height' row per box, coordinates normalised to [0, 1]."
)
DATASET_YAMLS_DIR = ROOT / "cfg" / "datasets"


def datasets_dir() -> Path:
    """Where relative dataset paths live; re-reads ULTRALYTICS_DATASETS_DIR so it can change at run time."""
    env = os.getenv("ULTRALYTICS_DATASETS_DIR")
    return Path(env) if env else DATASETS_DIR


def img2label_paths(img_paths: Sequence[str]) -> list[str]:
    """Label file for each image: the last '/images/' becomes '/labels/' and the suffix '.txt'."""
    sa, sb = f"{os.sep}images{os.sep}", f"{os.sep}labels{os.sep}"
    return [sb.join(x.rsplit(sa, 1)).rsplit(".", 1)[0] + ".txt" for x in img_paths]


def get_hash(paths: Sequence[str | Path]) -> str:
    """SHA-256 over the paths, their total size and modification times.

    Upstream hashes sizes only, which misses an edit that keeps a label file's length (a class id
    changed from 1 to 2); the modification times catch that.
    """
    stats = [os.stat(p) for p in paths if os.path.exists(p)]
    size = sum(st.st_size for st in stats)
    mtime = sum(st.st_mtime_ns for st in stats)
    h = hashlib.sha256(f"{size}:{mtime}".encode())
    h.update("".join(str(p) for p in paths).encode())
    return h.hexdigest()


def exif_size(img: Image.Image) -> tuple[int, int]:
    """(width, height) after the EXIF orientation is applied."""
    size = img.size
    if img.format == "JPEG":
        try:
            exif = img.getexif()
        except (AttributeError, OSError, ValueError):
            return size
        if exif and exif.get(274, 1) in {6, 8}:  # 274 = orientation; 6 and 8 rotate by 90 degrees
            size = (size[1], size[0])
    return size


def _read_label_rows(lb_file: str) -> np.ndarray:
    """Parse a YOLO label file into float32 rows; ragged rows raise with their line number."""
    rows = []
    with open(lb_file, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            parts = line.split()
            if parts:
                rows.append((n, parts))
    if not rows:
        return np.zeros((0, 5), dtype=np.float32)
    widths = {len(p) for _, p in rows}
    if len(widths) > 1 or widths != {5}:
        bad_line, bad = next((n, p) for n, p in rows if len(p) != 5)
        raise ValueError(
            f"labels require 5 columns (class x_center y_center width height), "
            f"{len(bad)} columns detected on line {bad_line}"
        )
    try:
        return np.array([p for _, p in rows], dtype=np.float32)
    except ValueError as e:
        raise ValueError(f"labels must be numbers: {e}") from e


def _restore_jpeg(im_file: str) -> None:
    """Re-encode a JPEG that lacks its end marker so later reads do not fail."""
    try:
        ImageOps.exif_transpose(Image.open(im_file)).save(im_file, "JPEG", subsampling=0, quality=100)
    except OSError:
        # PIL refuses data cut off mid-scan; OpenCV decodes what is there (the rest turns grey).
        im = cv2.imread(im_file)
        if im is None or not cv2.imwrite(im_file, im, [cv2.IMWRITE_JPEG_QUALITY, 100]):
            raise


def verify_image_label(args: tuple) -> list:
    """Check one image and its label file.

    args: (im_file, lb_file, prefix, keypoint, num_cls, nkpt, ndim) as upstream.
    Returns [im_file, lb (n, 5), shape (h, w), segments, keypoints, nm, nf, ne, nc, msg] where
    nm/nf/ne/nc flag a missing, found, empty or corrupt label; a corrupt sample has None fields.
    """
    im_file, lb_file, prefix, keypoint, num_cls, nkpt, ndim = args
    nm, nf, ne, nc, msg, segments, keypoints = 0, 0, 0, 0, "", [], None
    try:
        im = Image.open(im_file)
        im.verify()  # PIL needs a fresh open after verify
        w, h = exif_size(im)
        shape = (h, w)
        if h < 10 or w < 10:
            raise ValueError(f"image size {shape} <10 pixels")
        fmt = (im.format or "").lower()
        if fmt not in IMG_FORMATS:
            raise ValueError(f"invalid image format {fmt}. {FORMATS_HELP_MSG}")
        if fmt in {"jpg", "jpeg"}:
            with open(im_file, "rb") as f:
                f.seek(-2, 2)
                truncated = f.read() != b"\xff\xd9"  # a complete JPEG ends with the EOI marker
            if truncated:
                _restore_jpeg(im_file)
                msg = f"{prefix}WARNING ⚠️ {im_file}: corrupt JPEG restored and saved"

        if os.path.isfile(lb_file):
            nf = 1
            lb = _read_label_rows(lb_file)
            nl = len(lb)
            if nl:
                points = lb[:, 1:]
                if points.max() > 1:
                    raise ValueError(f"non-normalized or out of bounds coordinates {points[points > 1]}")
                if lb.min() < 0:
                    raise ValueError(f"negative label values {lb[lb < 0]}")
                fractional = lb[:, 0] != np.round(lb[:, 0])
                if fractional.any():
                    raise ValueError(f"class ids must be whole numbers, got {lb[fractional, 0][0]:g}")
                max_cls = lb[:, 0].max()
                if max_cls >= num_cls:  # upstream 8.3.50 tests '<=' and lets class nc through
                    raise ValueError(
                        f"Label class {int(max_cls)} exceeds dataset class count {num_cls}. "
                        f"Possible class labels are 0-{num_cls - 1}"
                    )
                notes = []
                _, first = np.unique(lb, axis=0, return_index=True)
                if len(first) < nl:
                    notes.append(f"{nl - len(first)} duplicate labels removed")
                    lb = lb[np.sort(first)]
                zero = (lb[:, 3] <= 0) | (lb[:, 4] <= 0)
                if zero.any():
                    notes.append(f"{int(zero.sum())} zero-size labels removed")
                    lb = lb[~zero]
                if notes:
                    msg = f"{prefix}WARNING ⚠️ {im_file}: {', '.join(notes)}"
                if not len(lb):
                    ne = 1
            else:
                ne = 1
                lb = np.zeros((0, 5), dtype=np.float32)
        else:
            nm = 1
            lb = np.zeros((0, 5), dtype=np.float32)
        return [im_file, lb[:, :5], shape, segments, keypoints, nm, nf, ne, nc, msg]
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
        # PIL raises OSError/SyntaxError for unreadable files; ValueError comes from the checks above.
        nc = 1
        msg = f"{prefix}WARNING ⚠️ {im_file}: ignoring corrupt image/label: {e}"
        return [None, None, None, None, None, nm, nf, ne, nc, msg]


def load_dataset_cache_file(path: str | Path) -> dict:
    """Read a label cache written by save_dataset_cache_file."""
    gc.disable()  # unpickling many small dicts is much faster without the collector
    try:
        cache = np.load(str(path), allow_pickle=True).item()
    finally:
        gc.enable()
    return cache


def save_dataset_cache_file(prefix: str, path: str | Path, x: dict, version: str) -> None:
    """Write a label cache next to the labels, or warn when that folder is read-only."""
    path = Path(path)
    x["version"] = version
    if not is_dir_writeable(path.parent):
        LOGGER.warning(f"{prefix}WARNING ⚠️ Cache directory {path.parent} is not writeable, cache not saved.")
        return
    if path.exists():
        path.unlink()
    tmp = path.with_suffix(".cache.npy")  # np.save appends .npy, so save there and rename
    np.save(str(tmp), x)
    tmp.replace(path)
    LOGGER.info(f"{prefix}New cache created: {path}")


def check_class_names(names: list | tuple | dict, yaml_file: str = "dataset yaml") -> dict[int, str]:
    """names as a list or {index: name} dict -> {0: name0, 1: name1, ...} with contiguous indices."""
    if isinstance(names, (list, tuple)):
        names = dict(enumerate(names))
    if not isinstance(names, dict):
        raise TypeError(
            f"{yaml_file} 'names:' must be a list of class names or a {{index: name}} mapping, "
            f"got {type(names).__name__}"
        )
    try:
        names = {int(k): str(v) for k, v in names.items()}
    except ValueError as e:
        raise KeyError(f"{yaml_file} 'names:' keys must be integer class indices, got {list(names)}") from e
    n = len(names)
    if n and (min(names) != 0 or max(names) != n - 1):
        raise KeyError(
            f"{yaml_file} 'names:' of a {n}-class dataset needs class indices 0-{n - 1}, "
            f"but it has indices {min(names)}-{max(names)}"
        )
    return dict(sorted(names.items()))


def find_dataset_yaml(dataset: str | Path) -> Path:
    """A yaml path as given, or a bare name such as 'shapes.yaml' found in ultralytics/cfg/datasets/."""
    path = Path(dataset)
    if path.suffix not in {".yaml", ".yml"}:
        raise ValueError(f"data='{dataset}' must be a dataset .yaml file, e.g. data=shapes.yaml")
    if path.is_file():
        return path
    if not path.is_absolute():
        shipped = sorted(DATASET_YAMLS_DIR.rglob(path.name))
        if shipped:
            return shipped[0]
    known = sorted(p.name for p in DATASET_YAMLS_DIR.rglob("*.yaml"))
    raise FileNotFoundError(
        f"Dataset yaml '{dataset}' not found: looked for '{path.resolve()}' and in {DATASET_YAMLS_DIR} "
        f"(shipped: {', '.join(known) or 'none'})"
    )


def _resolve_root(data: dict, yaml_path: Path) -> Path:
    """The dataset root from the yaml's `path` key (see check_det_dataset)."""
    root = data.get("path")
    if root is None or str(root).strip() == "":
        return yaml_path.parent.resolve()
    if not isinstance(root, (str, Path)):
        raise TypeError(f"{yaml_path} 'path:' must be a folder path, got {root!r}")
    root = Path(root)
    if root.is_absolute():
        return root
    under_datasets = (datasets_dir() / root).resolve()
    beside_yaml = (yaml_path.parent / root).resolve()
    if under_datasets.exists() or data.get("synthetic") or not beside_yaml.exists():
        return under_datasets
    return beside_yaml


def _resolve_split(value: Any, root: Path, key: str, yaml_path: Path) -> str | list[str]:
    """A split entry (folder, .txt list or list of those) as absolute path strings."""
    if isinstance(value, (str, Path)):
        x = (root / value).resolve()
        if not x.exists() and str(value).startswith("../"):
            x = (root / str(value)[3:]).resolve()  # upstream's tolerance for yamls written one level up
        return str(x)
    if isinstance(value, (list, tuple)) and all(isinstance(v, (str, Path)) for v in value):
        return [str((root / v).resolve()) for v in value]
    raise TypeError(
        f"{yaml_path} '{key}:' must be a folder of images, a .txt file listing images, or a list of those; "
        f"got {value!r}"
    )


def check_det_dataset(dataset: str | Path, autodownload: bool = True) -> dict:
    """Load and validate a detection dataset yaml, generating a shipped synthetic dataset if missing.

    Returns the yaml's dict with `names` as {index: name}, `nc`, `path` (absolute Path), absolute
    `train`/`val`/`test` entries and `yaml_file`. A relative `path` is taken under the datasets
    folder (ULTRALYTICS_DATASETS_DIR), or beside the yaml when only that exists; no `path` means the
    yaml's own folder. `autodownload` allows generating a `synthetic:` dataset (nothing is downloaded).
    """
    from ultralytics.data.shapes import SYNTHETIC_GENERATORS  # imported here: shapes imports this module

    yaml_path = find_dataset_yaml(dataset)
    data = yaml_load(yaml_path, append_filename=True)
    if not isinstance(data, dict):
        raise TypeError(f"{yaml_path} must hold a mapping of keys (path, train, val, names), got {type(data).__name__}")
    for k in ("train", "val"):
        if k not in data:
            if k == "val" and "validation" in data:
                LOGGER.info("WARNING ⚠️ renaming data YAML 'validation' key to 'val' to match YOLO format.")
                data["val"] = data.pop("validation")
            else:
                raise KeyError(
                    f"{yaml_path} '{k}:' key missing. 'train' and 'val' are required in all data YAMLs; each is "
                    "a folder of images, a .txt file listing images, or a list of those, relative to 'path'."
                )
    if "names" not in data and "nc" not in data:
        raise KeyError(f"{yaml_path} key missing: either 'names' (list or {{index: name}}) or 'nc' is required.")
    if "names" in data and "nc" in data and len(data["names"]) != data["nc"]:
        raise ValueError(
            f"{yaml_path} 'names' length {len(data['names'])} and 'nc: {data['nc']}' must match; "
            "drop 'nc' to derive it from 'names'."
        )
    if "names" not in data:
        if not isinstance(data["nc"], int) or data["nc"] < 1:
            raise ValueError(f"{yaml_path} 'nc:' must be a positive integer, got {data['nc']!r}")
        data["names"] = [f"class_{i}" for i in range(data["nc"])]
    data["names"] = check_class_names(data["names"], str(yaml_path))
    data["nc"] = len(data["names"])

    root = _resolve_root(data, yaml_path)
    data["path"] = root
    generator_name = data.get("synthetic")
    if generator_name is not None:
        if generator_name not in SYNTHETIC_GENERATORS:
            raise ValueError(
                f"{yaml_path} 'synthetic: {generator_name}' is unknown; known generators: "
                f"{', '.join(sorted(SYNTHETIC_GENERATORS))}"
            )
        if not root.exists():
            if not autodownload:
                raise FileNotFoundError(f"Dataset '{yaml_path.name}' not found at {root} and autodownload=False")
            LOGGER.info(f"Dataset '{yaml_path.name}' not found at {root}, generating it...")
            SYNTHETIC_GENERATORS[generator_name](root)

    for k in ("train", "val", "test", "minival"):
        if data.get(k):
            data[k] = _resolve_split(data[k], root, k, yaml_path)

    val = data["val"] if isinstance(data["val"], list) else [data["val"]]
    missing = [v for v in val if not Path(v).exists()]
    if missing:
        raise FileNotFoundError(
            f"Dataset '{yaml_path}' images not found, missing path '{missing[0]}'. "
            f"Relative paths are resolved against 'path' ({root}); the datasets folder is '{datasets_dir()}' "
            "(set ULTRALYTICS_DATASETS_DIR to change it)."
        )
    return data
