"""Dataset helpers: image/label path pairing, label verification, label caches and dataset yamls."""

from __future__ import annotations

import gc
import hashlib
import os
import random
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image, ImageOps

from ultralytics.utils import DATASETS_DIR, LOGGER, ROOT, is_dir_writeable, yaml_load

IMG_FORMATS = {"bmp", "dng", "jpeg", "jpg", "mpo", "png", "tif", "tiff", "webp", "pfm", "heic"}
VID_FORMATS = {"asf", "avi", "gif", "m4v", "mkv", "mov", "mp4", "mpeg", "mpg", "ts", "wmv", "webm"}
PIN_MEMORY = os.getenv("PIN_MEMORY", "true").lower() == "true"  # upstream's switch; used on CUDA only
FORMATS_HELP_MSG = f"Supported formats are:\nimages: {sorted(IMG_FORMATS)}\nvideos: {sorted(VID_FORMATS)}"
LABEL_FORMAT_HELP = (
    "Labels are YOLO .txt files in a 'labels' folder beside 'images' (images/x.jpg -> labels/x.txt), "
    "one 'class x_center y_center width height' row per box, coordinates normalised to [0, 1]."
)
DATASET_YAMLS_DIR = ROOT / "cfg" / "datasets"
_EXIF_ORIENTATION = 274  # EXIF tag; values 6 and 8 mean the image is stored rotated by 90 degrees
_JPEG_END = b"\xff\xd9"
_NO_BOXES = np.zeros((0, 5), dtype=np.float32)


def datasets_dir() -> Path:
    """Where relative dataset paths live; re-reads ULTRALYTICS_DATASETS_DIR so it can change at run time."""
    env = os.getenv("ULTRALYTICS_DATASETS_DIR")
    return Path(env) if env else DATASETS_DIR


def _label_path(image: str) -> str:
    """.../images/<rest>.<ext> -> .../labels/<rest>.txt (only the last 'images' folder is swapped)."""
    head, found, tail = image.rpartition(f"{os.sep}images{os.sep}")
    swapped = f"{head}{os.sep}labels{os.sep}{tail}" if found else image
    return swapped.rsplit(".", 1)[0] + ".txt"


def img2label_paths(img_paths: Sequence[str]) -> list[str]:
    """Label file for each image: the last '/images/' becomes '/labels/' and the suffix '.txt'."""
    return [_label_path(p) for p in img_paths]


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
        if exif and exif.get(_EXIF_ORIENTATION, 1) in {6, 8}:
            size = (size[1], size[0])
    return size


# ---------------------------------------------------------------------- label verification


def _read_label_rows(lb_file: str) -> np.ndarray:
    """Parse a YOLO label file into float32 rows; ragged rows raise with their line number."""
    rows = []
    with open(lb_file, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            parts = line.split()
            if parts:
                rows.append((n, parts))
    if not rows:
        return _NO_BOXES.copy()
    bad = next(((n, p) for n, p in rows if len(p) != 5), None)
    if bad is not None:
        raise ValueError(
            f"labels require 5 columns (class x_center y_center width height), "
            f"{len(bad[1])} columns detected on line {bad[0]}"
        )
    try:
        return np.array([p for _, p in rows], dtype=np.float32)
    except ValueError as e:
        raise ValueError(f"labels must be numbers: {e}") from e


def _restore_jpeg(im_file: str) -> None:
    """Re-encode a JPEG that lacks its end marker so later reads do not fail."""
    try:
        with Image.open(im_file) as broken:
            upright = ImageOps.exif_transpose(broken)
        upright.save(im_file, format="JPEG", quality=100, subsampling=0)
    except OSError:
        # PIL refuses data cut off mid-scan; OpenCV decodes what is there (the rest turns grey).
        im = cv2.imread(im_file)
        if im is None or not cv2.imwrite(im_file, im, [cv2.IMWRITE_JPEG_QUALITY, 100]):
            raise


def _jpeg_is_truncated(im_file: str) -> bool:
    with open(im_file, "rb") as f:
        f.seek(-2, os.SEEK_END)
        return f.read() != _JPEG_END


def _check_image(im_file: str, prefix: str) -> tuple[tuple[int, int], str]:
    """(h, w) of a usable image and a note when it had to be repaired; raises for unusable ones."""
    im = Image.open(im_file)
    im.verify()  # PIL needs a fresh open after verify
    w, h = exif_size(im)
    if h < 10 or w < 10:
        raise ValueError(f"image size {(h, w)} <10 pixels")
    kind = (im.format or "").lower()
    if kind not in IMG_FORMATS:
        raise ValueError(f"invalid image format {kind}. {FORMATS_HELP_MSG}")
    if kind in {"jpg", "jpeg"} and _jpeg_is_truncated(im_file):
        _restore_jpeg(im_file)
        return (h, w), f"{prefix}WARNING ⚠️ {im_file}: corrupt JPEG restored and saved"
    return (h, w), ""


def _check_rows(lb: np.ndarray, num_cls: int) -> None:
    """Raise for rows that cannot be boxes of this dataset: out of [0, 1], negative, bad class id."""
    coords, ids = lb[:, 1:], lb[:, 0]
    if coords.max() > 1:
        raise ValueError(f"non-normalized or out of bounds coordinates {coords[coords > 1]}")
    if lb.min() < 0:
        raise ValueError(f"negative label values {lb[lb < 0]}")
    fractional = ids != np.round(ids)
    if fractional.any():
        raise ValueError(f"class ids must be whole numbers, got {ids[fractional][0]:g}")
    top = ids.max()
    if top >= num_cls:  # upstream 8.3.50 tests '<=' and lets class nc through
        raise ValueError(  # worded as upstream and docs/datasets.md show it
            f"Label class {int(top)} exceeds dataset class count {num_cls}. Possible class labels are 0-{num_cls - 1}"
        )


def _drop_degenerate(lb: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Remove repeated rows (first kept) and boxes without width or height; say what was removed."""
    notes = []
    _, first = np.unique(lb, axis=0, return_index=True)
    if len(first) < len(lb):
        notes.append(f"{len(lb) - len(first)} duplicate labels removed")
        lb = lb[np.sort(first)]
    flat = (lb[:, 3] <= 0) | (lb[:, 4] <= 0)
    if flat.any():
        notes.append(f"{int(flat.sum())} zero-size labels removed")
        lb = lb[~flat]
    return lb, notes


def _load_boxes(lb_file: str, num_cls: int) -> tuple[np.ndarray, int, list[str]]:
    """(rows (n, 5), whether no box is left, notes) for an existing label file; raises for bad rows."""
    lb = _read_label_rows(lb_file)
    if not len(lb):
        return lb, 1, []
    _check_rows(lb, num_cls)
    lb, notes = _drop_degenerate(lb)
    return lb, int(not len(lb)), notes


def verify_image_label(args: tuple) -> list:
    """Check one image and its label file.

    args: (im_file, lb_file, prefix, keypoint, num_cls, nkpt, ndim) as upstream.
    Returns [im_file, lb (n, 5), shape (h, w), segments, keypoints, nm, nf, ne, nc, msg] where
    nm/nf/ne/nc flag a missing, found, empty or corrupt label; a corrupt sample has None fields.
    """
    im_file, lb_file, prefix, _keypoint, num_cls, _nkpt, _ndim = args
    missing = found = 0  # a label file found before a failure still counts as found, as upstream
    try:
        shape, msg = _check_image(im_file, prefix)
        found = int(os.path.isfile(lb_file))
        missing = 1 - found
        lb, empty, notes = _load_boxes(lb_file, num_cls) if found else (_NO_BOXES.copy(), 0, [])
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
        # PIL raises OSError/SyntaxError for unreadable files; ValueError comes from the checks above.
        note = f"{prefix}WARNING ⚠️ {im_file}: ignoring corrupt image/label: {e}"
        return [None, None, None, None, None, missing, found, 0, 1, note]
    if notes:
        msg = f"{prefix}WARNING ⚠️ {im_file}: {', '.join(notes)}"
    return [im_file, lb[:, :5], shape, [], None, missing, found, empty, 0, msg]


# ---------------------------------------------------------------------- label cache files


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Unpickling many small dicts is much faster without the cycle collector running."""
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def load_dataset_cache_file(path: str | Path) -> dict:
    """Read a label cache written by save_dataset_cache_file."""
    with _gc_paused():
        return np.load(str(path), allow_pickle=True).item()


def save_dataset_cache_file(prefix: str, path: str | Path, x: dict, version: str) -> None:
    """Write a label cache next to the labels, or warn when that folder is read-only."""
    path = Path(path)
    x["version"] = version
    folder = path.parent
    if not is_dir_writeable(folder):
        LOGGER.warning(f"{prefix}WARNING ⚠️ Label cache not saved: {folder} is not writeable.")
        return
    path.unlink(missing_ok=True)
    staging = path.with_suffix(".cache.npy")  # np.save appends .npy, so save there and rename
    np.save(str(staging), x)
    staging.replace(path)
    LOGGER.info(f"{prefix}New cache created: {path}")  # as docs/datasets.md shows it


# ---------------------------------------------------------------------- dataset yamls
# A dataset yaml the user wrote wrongly is a bad input, like a bad argument: these keep the exception types
# callers catch today (KeyError, TypeError) and are also ValueErrors, which the `yolo` command reports as a
# usage error (one paragraph, exit status 2). KeyError's own str() would wrap the message in quotes.
class _YamlKeyError(KeyError, ValueError):
    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class _YamlTypeError(TypeError, ValueError):
    pass



def check_class_names(names: list | tuple | dict, yaml_file: str = "dataset yaml") -> dict[int, str]:
    """names as a list or {index: name} dict -> {0: name0, 1: name1, ...} with contiguous indices."""
    mapping = dict(enumerate(names)) if isinstance(names, (list, tuple)) else names
    if not isinstance(mapping, dict):
        raise _YamlTypeError(
            f"{yaml_file} 'names:' must be a list of class names or a {{index: name}} mapping, "
            f"got {type(names).__name__}"
        )
    try:
        indexed = {int(key): str(value) for key, value in mapping.items()}
    except ValueError as e:
        raise _YamlKeyError(f"{yaml_file} 'names:' keys must be integer class indices, got {list(mapping)}") from e
    n = len(indexed)
    if n and (min(indexed) != 0 or max(indexed) != n - 1):
        raise _YamlKeyError(
            f"{yaml_file} 'names:' of a {n}-class dataset needs class indices 0-{n - 1}, "
            f"but it has indices {min(indexed)}-{max(indexed)}"
        )
    return dict(sorted(indexed.items()))


def find_dataset_yaml(dataset: str | Path) -> Path:
    """A yaml path as given, or a bare name such as 'shapes.yaml' found in ultralytics/cfg/datasets/."""
    path = Path(dataset)
    if path.suffix not in {".yaml", ".yml"}:
        raise ValueError(f"data='{dataset}' must be a dataset .yaml file, e.g. data=shapes.yaml")
    if path.is_file():
        return path
    shipped = [] if path.is_absolute() else sorted(DATASET_YAMLS_DIR.rglob(path.name))
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
        raise _YamlTypeError(f"{yaml_path} 'path:' must be a folder path, got {root!r}")
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
    raise _YamlTypeError(
        f"{yaml_path} '{key}:' must be a folder of images, a .txt file listing images, or a list of those; "
        f"got {value!r}"
    )


def _require_splits(data: dict, yaml_path: Path) -> None:
    """train and val must be given; an upstream-style 'validation' key is accepted as val."""
    if "val" not in data and "validation" in data:
        LOGGER.info(f"WARNING ⚠️ {yaml_path.name}: using its 'validation:' key as 'val:'.")
        data["val"] = data.pop("validation")
    for key in ("train", "val"):
        if key not in data:
            raise _YamlKeyError(
                f"{yaml_path} '{key}:' key missing. 'train' and 'val' are required in all data YAMLs; each is "
                "a folder of images, a .txt file listing images, or a list of those, relative to 'path'."
            )


def _settle_names(data: dict, yaml_path: Path) -> None:
    """Fill `names` ({index: name}) and `nc` from whichever of the two the yaml gives."""
    has_names, has_nc = "names" in data, "nc" in data
    if not (has_names or has_nc):
        raise _YamlKeyError(f"{yaml_path} key missing: either 'names' (list or {{index: name}}) or 'nc' is required.")
    if has_names and has_nc and len(data["names"]) != data["nc"]:
        raise ValueError(
            f"{yaml_path} 'names' length {len(data['names'])} and 'nc: {data['nc']}' must match; "
            "drop 'nc' to derive it from 'names'."
        )
    if not has_names:
        nc = data["nc"]
        if not isinstance(nc, int) or nc < 1:
            raise ValueError(f"{yaml_path} 'nc:' must be a positive integer, got {nc!r}")
        data["names"] = {k: f"class_{k}" for k in range(nc)}
    data["names"] = check_class_names(data["names"], str(yaml_path))
    data["nc"] = len(data["names"])


def _generate_if_missing(data: dict, root: Path, yaml_path: Path, autodownload: bool) -> None:
    """Create a `synthetic:` dataset at root when it is not there yet (nothing is downloaded)."""
    from ultralytics.data.shapes import (
        SYNTHETIC_GENERATORS,  # imported here: shapes imports this module
    )

    name = data.get("synthetic")
    if name is None:
        return
    if name not in SYNTHETIC_GENERATORS:
        raise ValueError(
            f"{yaml_path} 'synthetic: {name}' is unknown; known generators: {', '.join(sorted(SYNTHETIC_GENERATORS))}"
        )
    if root.exists():
        return
    if not autodownload:
        raise FileNotFoundError(f"Dataset '{yaml_path.name}' not found at {root} and autodownload=False")
    LOGGER.info(f"Dataset '{yaml_path.name}' not found at {root}, generating it...")
    SYNTHETIC_GENERATORS[name](root)


def check_det_dataset(dataset: str | Path, autodownload: bool = True) -> dict:
    """Load and validate a detection dataset yaml, generating a shipped synthetic dataset if missing.

    Returns the yaml's dict with `names` as {index: name}, `nc`, `path` (absolute Path), absolute
    `train`/`val`/`test` entries and `yaml_file`. A relative `path` is taken under the datasets
    folder (ULTRALYTICS_DATASETS_DIR), or beside the yaml when only that exists; no `path` means the
    yaml's own folder. `autodownload` allows generating a `synthetic:` dataset (nothing is downloaded).
    """
    yaml_path = find_dataset_yaml(dataset)
    data = yaml_load(yaml_path, append_filename=True)
    if not isinstance(data, dict):
        raise _YamlTypeError(f"{yaml_path} must hold a mapping of keys (path, train, val, names), got {type(data).__name__}")
    _require_splits(data, yaml_path)
    _settle_names(data, yaml_path)

    root = _resolve_root(data, yaml_path)
    data["path"] = root
    _generate_if_missing(data, root, yaml_path, autodownload)
    for key in ("train", "val", "test", "minival"):
        if data.get(key):
            data[key] = _resolve_split(data[key], root, key, yaml_path)

    val = data["val"] if isinstance(data["val"], list) else [data["val"]]
    missing = [v for v in val if not Path(v).exists()]
    if missing:
        raise FileNotFoundError(
            f"Dataset '{yaml_path}' images not found, missing path '{missing[0]}'. "
            f"Relative paths are resolved against 'path' ({root}); the datasets folder is '{datasets_dir()}' "
            "(set ULTRALYTICS_DATASETS_DIR to change it)."
        )
    return data


# ------------------------------------------------------------------------------------------------
# Splitting an image folder into train / val / test lists
# ------------------------------------------------------------------------------------------------
AUTOSPLIT_FILES = ("autosplit_train.txt", "autosplit_val.txt", "autosplit_test.txt")


def _check_split_weights(weights: Sequence[float]) -> tuple[float, float, float]:
    values = tuple(weights)
    if len(values) != 3 or any(not isinstance(v, (int, float)) or v < 0 for v in values) or sum(values) <= 0:
        raise ValueError(
            f"autosplit(weights={weights!r}): expected three non-negative fractions (train, val, test) with a "
            f"positive sum, e.g. (0.9, 0.1, 0.0)"
        )
    return values


def autosplit(
    path: str | Path = DATASETS_DIR / "coco8/images",
    weights: Sequence[float] = (0.9, 0.1, 0.0),
    annotated_only: bool = False,
) -> list[Path]:
    """Assign every image under `path` at random to train, val or test, in proportion to `weights`.

    Writes autosplit_train.txt, autosplit_val.txt and autosplit_test.txt beside `path` (replacing
    old ones), one `./images/name.jpg` line per image relative to path's parent, which is what a
    dataset yaml's `train:` / `val:` may name. The draw is seeded, so the same folder always splits
    the same way. With annotated_only, images without a label file are left out. Returns the
    lists that were written.
    """
    fractions = _check_split_weights(weights)
    root = Path(path)
    images = sorted(p for p in root.rglob("*.*") if p.suffix[1:].lower() in IMG_FORMATS)
    if not images:
        raise FileNotFoundError(f"autosplit(path='{path}'): no images found there. {FORMATS_HELP_MSG}")
    for name in AUTOSPLIT_FILES:
        (root.parent / name).unlink(missing_ok=True)
    LOGGER.info(f"Autosplitting images from {root}" + ", using *.txt labeled images only" * annotated_only)
    splits = random.Random(0).choices(range(3), weights=fractions, k=len(images))
    lines: list[list[str]] = [[], [], []]
    for split, image in zip(splits, images):
        if annotated_only and not Path(_label_path(str(image))).exists():
            continue
        lines[split].append(f"./{image.relative_to(root.parent).as_posix()}\n")
    written = []
    for name, rows in zip(AUTOSPLIT_FILES, lines):
        if rows:
            (root.parent / name).write_text("".join(rows), encoding="utf-8")
            written.append(root.parent / name)
    return written
