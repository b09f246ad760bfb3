"""Configuration layer: default.yaml, get_cfg/check_cfg, run folders, file helpers and argument checks."""

from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from ultralytics.cfg import (
    CFG_BOOL_KEYS,
    CFG_FLOAT_KEYS,
    CFG_FRACTION_KEYS,
    CFG_INT_KEYS,
    cfg2dict,
    check_cfg,
    check_dict_alignment,
    get_cfg,
    get_save_dir,
)
from ultralytics.utils import DEFAULT_CFG_DICT, DEFAULT_CFG_PATH, ROOT, yaml_load, yaml_save
from ultralytics.utils import checks
from ultralytics.utils.files import (
    WorkingDirectory,
    file_age,
    file_date,
    file_size,
    get_latest_run,
    increment_path,
    spaces_in_path,
)

# Upstream Ultralytics 8.3.50's default.yaml keys, in file order (read from the 8.3.50 wheel).
UPSTREAM_8_3_50_KEYS = [
    "task", "mode",
    "model", "data", "epochs", "time", "patience", "batch", "imgsz", "save", "save_period", "cache", "device",
    "workers", "project", "name", "exist_ok", "pretrained", "optimizer", "verbose", "seed", "deterministic",
    "single_cls", "rect", "cos_lr", "close_mosaic", "resume", "amp", "fraction", "profile", "freeze", "multi_scale",
    "overlap_mask", "mask_ratio",
    "dropout",
    "val", "split", "save_json", "save_hybrid", "conf", "iou", "max_det", "half", "dnn", "plots",
    "source", "vid_stride", "stream_buffer", "visualize", "augment", "agnostic_nms", "classes", "retina_masks", "embed",
    "show", "save_frames", "save_txt", "save_conf", "save_crop", "show_labels", "show_conf", "show_boxes",
    "line_width",
    "format", "keras", "optimize", "int8", "dynamic", "simplify", "opset", "workspace", "nms",
    "lr0", "lrf", "momentum", "weight_decay", "warmup_epochs", "warmup_momentum", "warmup_bias_lr", "box", "cls",
    "dfl", "pose", "kobj", "nbs", "hsv_h", "hsv_s", "hsv_v", "degrees", "translate", "scale", "shear",
    "perspective", "flipud", "fliplr", "bgr", "mosaic", "mixup", "copy_paste", "copy_paste_mode", "auto_augment",
    "erasing", "crop_fraction",
    "cfg",
    "tracker",
]  # fmt: skip

# A sample of upstream 8.3.50 default values, including the ones easiest to get wrong from memory.
UPSTREAM_DEFAULTS = {
    "task": "detect",
    "mode": "train",
    "epochs": 100,
    "patience": 100,
    "batch": 16,
    "imgsz": 640,
    "save_period": -1,
    "cache": False,
    "workers": 8,
    "pretrained": True,
    "optimizer": "auto",
    "deterministic": True,
    "close_mosaic": 10,
    "amp": True,
    "fraction": 1.0,
    "freeze": None,
    "multi_scale": False,
    "split": "val",
    "conf": None,
    "iou": 0.7,
    "max_det": 300,
    "format": "torchscript",
    "simplify": True,
    "workspace": None,
    "lr0": 0.01,
    "lrf": 0.01,
    "momentum": 0.937,
    "weight_decay": 0.0005,
    "warmup_epochs": 3.0,
    "warmup_momentum": 0.8,
    "warmup_bias_lr": 0.1,
    "box": 7.5,
    "cls": 0.5,
    "dfl": 1.5,
    "nbs": 64,
    "hsv_h": 0.015,
    "hsv_s": 0.7,
    "hsv_v": 0.4,
    "translate": 0.1,
    "scale": 0.5,
    "fliplr": 0.5,
    "mosaic": 1.0,
    "mixup": 0.0,
    "copy_paste_mode": "flip",
    "auto_augment": "randaugment",
    "erasing": 0.4,
    "crop_fraction": 1.0,
    "tracker": "botsort.yaml",
}


# ----------------------------------------------------------------------------------------------
# default.yaml
# ----------------------------------------------------------------------------------------------
# The keys this project adds to upstream's, in their default.yaml order (training recipes, docs/recipes.md).
PROJECT_KEYS = [
    "recipe",
    "cls_loss",
    "mal_gamma",
    "lr_backbone",
    "clip_grad",
    "ema_decay",
    "ema_tau",
    "flat_lr_epochs",
    "no_aug_epochs",
    "dense_o2o",
]


def test_default_yaml_keys_match_upstream_8_3_50():
    keys = list(yaml_load(DEFAULT_CFG_PATH))
    assert [k for k in keys if k not in PROJECT_KEYS] == UPSTREAM_8_3_50_KEYS
    assert [k for k in keys if k in PROJECT_KEYS] == PROJECT_KEYS


def test_default_yaml_values_match_upstream_8_3_50():
    wrong = {k: (DEFAULT_CFG_DICT[k], v) for k, v in UPSTREAM_DEFAULTS.items() if DEFAULT_CFG_DICT[k] != v}
    assert not wrong, f"(ours, upstream): {wrong}"


def test_default_cfg_passes_its_own_checks():
    check_cfg(dict(DEFAULT_CFG_DICT))  # raises on any wrongly typed default


def test_checked_key_sets_are_real_keys_and_disjoint():
    sets = [CFG_FLOAT_KEYS, CFG_FRACTION_KEYS, CFG_INT_KEYS, CFG_BOOL_KEYS]
    for s in sets:
        assert s <= set(DEFAULT_CFG_DICT)
    assert sum(len(s) for s in sets) == len(set().union(*sets))


# ----------------------------------------------------------------------------------------------
# get_cfg and check_cfg
# ----------------------------------------------------------------------------------------------
def test_get_cfg_merges_overrides_without_touching_defaults():
    before = dict(DEFAULT_CFG_DICT)
    cfg = get_cfg(overrides={"epochs": 3, "imgsz": 64, "lr0": 0.002, "device": "cpu"})
    assert (cfg.epochs, cfg.imgsz, cfg.lr0, cfg.device) == (3, 64, 0.002, "cpu")
    assert cfg.batch == 16  # untouched keys keep their defaults
    assert dict(DEFAULT_CFG_DICT) == before


def test_get_cfg_from_yaml_file_and_namespace(tmp_path):
    f = tmp_path / "custom.yaml"
    yaml_save(f, {**DEFAULT_CFG_DICT, "epochs": 7, "freeze": "None"})
    cfg = get_cfg(f, {"batch": 2})
    assert (cfg.epochs, cfg.batch, cfg.freeze) == (7, 2, None)
    again = get_cfg(SimpleNamespace(**vars(cfg)), {"epochs": 1})
    assert (again.epochs, again.batch) == (1, 2)
    assert cfg2dict({"a": 1}) == {"a": 1}


def test_get_cfg_does_not_modify_the_callers_overrides():
    overrides = {"hide_labels": "True", "epochs": 2}
    get_cfg(overrides=overrides)
    assert overrides == {"hide_labels": "True", "epochs": 2}


def test_get_cfg_numeric_project_and_name_become_strings():
    cfg = get_cfg(overrides={"project": 12, "name": 3.5})
    assert (cfg.project, cfg.name) == ("12", "3.5")
    assert get_cfg(overrides={"name": "model", "model": "rtdetr-l.yaml"}).name == "rtdetr-l"


def test_unknown_key_suggests_closest():
    with pytest.raises(SyntaxError) as e:
        get_cfg(overrides={"epoch": 3})
    msg = str(e.value)
    assert "'epoch' is not a valid YOLO argument" in msg
    assert "epochs=100" in msg


def test_unknown_keys_are_all_reported():
    with pytest.raises(SyntaxError) as e:
        check_dict_alignment(DEFAULT_CFG_DICT, {"lr": 0.1, "imgs": 32, "zzzzzz": 1})
    msg = str(e.value)
    assert "'lr'" in msg and "'imgs'" in msg and "'zzzzzz'" in msg
    assert "imgsz=640" in msg


def test_deprecated_keys_are_renamed():
    custom = {"hide_labels": "True", "line_thickness": 2, "label_smoothing": 0.1}
    check_dict_alignment(DEFAULT_CFG_DICT, custom)
    assert custom == {"show_labels": False, "line_width": 2}


@pytest.mark.parametrize(
    "key, value, error, fragments",
    [
        ("epochs", "abc", TypeError, ["'epochs=abc'", "str", "must be an int"]),
        ("epochs", 3.0, TypeError, ["'epochs=3.0'", "float", "must be an int"]),
        ("epochs", True, TypeError, ["'epochs=True'", "bool", "must be an int"]),
        ("batch", "big", TypeError, ["'batch=big'", "str", "int", "float"]),
        ("fliplr", 1.5, ValueError, ["'fliplr=1.5'", "float", "between 0.0 and 1.0"]),
        ("lr0", -0.1, ValueError, ["'lr0=-0.1'", "between 0.0 and 1.0"]),
        ("mosaic", "half", TypeError, ["'mosaic=half'", "str", "between 0.0 and 1.0"]),
        ("save", 1, TypeError, ["'save=1'", "int", "must be a bool"]),
        ("plots", "yes", TypeError, ["'plots=yes'", "str", "must be a bool"]),
    ],
)
def test_bad_override_values_raise_with_key_value_type_and_accepted(key, value, error, fragments):
    with pytest.raises(error) as e:
        get_cfg(overrides={key: value})
    for fragment in fragments:
        assert fragment in str(e.value)


@pytest.mark.parametrize(
    "overrides",
    [
        {"batch": 1.5},  # float keys accept floats (upstream: fraction of GPU memory for AutoBatch)
        {"batch": 4, "warmup_epochs": 1},  # and ints
        {"fliplr": 0, "mosaic": 1},  # fractions accept the ints 0 and 1
        {"conf": None, "line_width": None},  # None is always allowed
        {"epochs": 1, "save": False},
        {"epochs": np.int64(2), "lr0": np.float32(0.5)},  # numpy scalars count as numbers
    ],
)
def test_good_override_values_pass(overrides):
    cfg = get_cfg(overrides=overrides)
    for k, v in overrides.items():
        assert getattr(cfg, k) == v


def test_check_cfg_soft_mode_converts():
    cfg = {"epochs": "5", "save": 1, "box": "7", "fliplr": "0.25"}
    check_cfg(cfg, hard=False)
    assert cfg == {"epochs": 5, "save": True, "box": 7.0, "fliplr": 0.25}
    with pytest.raises(ValueError):
        check_cfg({"fliplr": 2}, hard=False)  # range errors are never softened


# ----------------------------------------------------------------------------------------------
# Run folders
# ----------------------------------------------------------------------------------------------
def test_increment_path_sequence(tmp_path):
    base = tmp_path / "runs" / "train"
    got = [increment_path(base, mkdir=True) for _ in range(3)]
    assert [p.name for p in got] == ["train", "train2", "train3"]
    assert all(p.is_dir() for p in got)
    assert increment_path(base, exist_ok=True) == base
    assert increment_path(base, sep="-").name == "train-2"


def test_increment_path_keeps_file_suffix(tmp_path):
    f = tmp_path / "results.csv"
    assert increment_path(f) == f  # free path is returned unchanged
    f.write_text("x")
    assert increment_path(f).name == "results2.csv"


def _args(**kw) -> SimpleNamespace:
    base = {"project": None, "name": None, "task": "detect", "mode": "train", "exist_ok": False}
    return SimpleNamespace(**{**base, **kw})


def test_get_save_dir_runs_root_and_numbering(tmp_path, monkeypatch):
    monkeypatch.setenv("ULTRALYTICS_RUNS_DIR", str(tmp_path / "runs"))
    first = get_save_dir(_args())
    assert first == tmp_path / "runs" / "detect" / "train"
    first.mkdir(parents=True)
    assert get_save_dir(_args()).name == "train2"
    assert get_save_dir(_args(exist_ok=True)) == first
    assert get_save_dir(_args(mode="val")).name == "val"
    assert get_save_dir(_args(), name="predict").name == "predict"


def test_get_save_dir_project_name_and_explicit_save_dir(tmp_path):
    got = get_save_dir(_args(project=str(tmp_path / "proj"), name="exp"))
    assert got == tmp_path / "proj" / "exp"
    got.mkdir(parents=True)
    assert get_save_dir(_args(project=str(tmp_path / "proj"), name="exp")) == tmp_path / "proj" / "exp2"
    assert get_save_dir(_args(save_dir=str(tmp_path / "fixed"))) == tmp_path / "fixed"


# ----------------------------------------------------------------------------------------------
# File helpers
# ----------------------------------------------------------------------------------------------
def test_file_size_age_date(tmp_path):
    f = tmp_path / "a.bin"
    f.write_bytes(b"\0" * (1 << 20))
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.bin").write_bytes(b"\0" * (1 << 19))
    assert file_size(f) == pytest.approx(1.0)
    assert file_size(tmp_path) == pytest.approx(1.5)
    assert file_size(tmp_path / "missing") == 0.0
    assert file_age(f) == 0
    t = time.localtime()
    assert file_date(f) == f"{t.tm_year}-{t.tm_mon}-{t.tm_mday}"


def test_get_latest_run(tmp_path):
    assert get_latest_run(tmp_path) == ""
    old = tmp_path / "train" / "weights" / "last.pt"
    new = tmp_path / "train2" / "weights" / "last.pt"
    for p in (old, new):
        p.parent.mkdir(parents=True)
        p.write_bytes(b"x")
        time.sleep(0.02)  # distinct creation times
    assert get_latest_run(tmp_path) == str(new)


def test_working_directory_restores_cwd(tmp_path):
    start = Path.cwd()
    with pytest.raises(RuntimeError), WorkingDirectory(tmp_path):
        assert Path.cwd() == tmp_path.resolve()
        raise RuntimeError("still restored")
    assert Path.cwd() == start


def test_spaces_in_path_copies_back(tmp_path):
    folder = tmp_path / "with space"
    folder.mkdir()
    with spaces_in_path(folder) as p:
        assert " " not in str(p)
        (p / "new.txt").write_text("hi")
    assert (folder / "new.txt").read_text() == "hi"


# ----------------------------------------------------------------------------------------------
# checks
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "imgsz, kwargs, expected",
    [
        (640, {}, 640),
        (641, {}, 672),
        (100, {"min_dim": 2}, [128, 128]),
        ([640, 481], {}, [640, 512]),
        ((320, 320), {}, [320, 320]),
        ("640", {}, 640),
        ("[320,480]", {}, [320, 480]),
        ("320,480", {}, [320, 480]),
        ([640, 480], {"max_dim": 1}, 640),
        (20, {"floor": 64}, 64),
        (70, {"stride": torch.tensor([8, 16, 64])}, 128),
    ],
)
def test_check_imgsz(imgsz, kwargs, expected):
    assert checks.check_imgsz(imgsz, **kwargs) == expected


@pytest.mark.parametrize("bad, error", [(1.5, TypeError), ([1, 2, 3], ValueError), ("big", ValueError), (-32, ValueError)])
def test_check_imgsz_rejects(bad, error):
    with pytest.raises(error, match="imgsz"):
        checks.check_imgsz(bad)


def test_check_yaml_finds_names_under_package_cfg(tmp_path, monkeypatch):
    pkg = tmp_path / "pkg"
    target = pkg / "cfg" / "models" / "rt-detr" / "tiny-test.yaml"
    target.parent.mkdir(parents=True)
    target.write_text("nc: 1\n")
    monkeypatch.setattr(checks, "ROOT", pkg)
    monkeypatch.chdir(tmp_path)
    assert checks.check_yaml("tiny-test.yaml") == str(target)
    assert checks.check_yaml(str(target)) == str(target)  # an existing path is returned as is
    with pytest.raises(FileNotFoundError) as e:
        checks.check_yaml("missing-model.yaml")
    msg = str(e.value)
    assert "missing-model.yaml" in msg and str(pkg) in msg and str(tmp_path) in msg
    assert checks.check_yaml("missing-model.yaml", hard=False) == ""
    with pytest.raises(FileNotFoundError, match="does not exist"):
        checks.check_yaml(str(tmp_path / "nowhere" / "tiny-test.yaml"))  # absolute paths are not searched for
    assert checks.check_yaml("rt-detr/tiny-test.yaml") == str(target)  # names may include folders


def test_check_yaml_ambiguous_name_lists_matches(tmp_path, monkeypatch):
    for sub in ("a", "b"):
        (tmp_path / sub).mkdir()
        (tmp_path / sub / "same.yaml").write_text("x: 1\n")
    monkeypatch.setattr(checks, "ROOT", tmp_path)
    with pytest.raises(FileNotFoundError, match="Multiple files match"):
        checks.check_yaml("same.yaml")


def test_check_yaml_finds_shipped_files():
    assert Path(checks.check_yaml("default.yaml")) == DEFAULT_CFG_PATH
    shipped = ROOT / "cfg" / "models" / "rt-detr" / "rtdetr-l.yaml"
    if not shipped.exists():
        pytest.skip("rtdetr-l.yaml is not in this checkout yet")
    assert Path(checks.check_yaml("rtdetr-l.yaml")) == shipped


def test_check_yaml_rejects_other_suffixes_and_urls():
    with pytest.raises(ValueError, match=r"acceptable suffix is \('.yaml', '.yml'\), not .pt"):
        checks.check_yaml("weights.pt")
    with pytest.raises(FileNotFoundError, match="never downloads"):
        checks.check_file("https://example.com/data.yaml")


def test_check_suffix():
    checks.check_suffix("a.pt", ".pt")
    checks.check_suffix(["a.PT", "b"], (".pt", ".pth"))  # case-insensitive; no suffix passes
    with pytest.raises(ValueError, match="b.onnx"):
        checks.check_suffix(["a.pt", "b.onnx"], ".pt")


@pytest.mark.parametrize(
    "current, required, expected",
    [
        ("2.1.0", ">=1.8", True),
        ("2.1.0", "1.8", True),
        ("1.7.1", ">=1.8", False),
        ("22.04", "==22.04", True),
        ("1.5", ">1.0,<2.0", True),
        ("2.0", ">1.0,<2.0", False),
        ("3.0", "!=3.0", False),
        ("2.1.0+cpu", "<=2.1", True),
    ],
)
def test_check_version(current, required, expected):
    assert checks.check_version(current, required) is expected


def test_check_version_hard_and_by_package_name():
    assert checks.check_version("torch", ">=1.8")
    with pytest.raises(ModuleNotFoundError, match="numpy>=999"):
        checks.check_version("numpy", ">=999", hard=True)
    with pytest.raises(ModuleNotFoundError, match="pip install"):
        checks.check_version("surely-not-installed-pkg", "1.0", hard=True)


def test_check_requirements_never_installs_and_names_the_command():
    assert checks.check_requirements(["numpy", "torch>=1.8"])
    with pytest.raises(ModuleNotFoundError) as e:
        checks.check_requirements(["numpy", "surely-not-installed-pkg>=1.0", "torch>=999"])
    msg = str(e.value)
    assert 'pip install "surely-not-installed-pkg>=1.0" "torch>=999"' in msg
    assert "'numpy'" not in msg


def test_check_requirements_from_file(tmp_path):
    req = tmp_path / "requirements.txt"
    req.write_text("# comment\nnumpy>=1.0\n\nsurely-not-installed-pkg  # needed\n")
    with pytest.raises(ModuleNotFoundError, match="surely-not-installed-pkg"):
        checks.check_requirements(req)
    assert checks.check_requirements(req, exclude=("surely-not-installed-pkg",))


def test_check_amp_is_false_on_cpu():
    assert checks.check_amp(torch.nn.Conv2d(3, 4, 3)) is False


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_check_amp_passes_for_a_sane_model_on_cuda():
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, 2), torch.nn.SiLU(), torch.nn.Conv2d(8, 4, 3, 2)).cuda()
    assert checks.check_amp(model) is True


def test_print_args_reports_caller_arguments(monkeypatch):
    lines = []
    monkeypatch.setattr(checks.LOGGER, "info", lines.append)

    def fn(alpha, beta=2):
        checks.print_args()

    fn(1)
    assert "alpha=1, beta=2" in lines[0]


def test_is_online_respects_offline_env(monkeypatch):
    monkeypatch.setenv("YOLO_OFFLINE", "True")
    assert checks.is_online() is False


def test_check_font_is_local():
    font = checks.check_font("Arial.ttf")
    assert font.exists() and font.suffix.lower() in {".ttf", ".otf", ".ttc"}


def test_collect_system_info_has_the_usual_fields():
    info = checks.collect_system_info()
    for key in ("OS", "Python", "RAM", "CPU", "CPU count", "CUDA", "Package Info"):
        assert key in info
    assert "torch" in info["Package Info"]


def test_unknown_optimizer_is_rejected_with_the_accepted_names_sorted():
    """optimizer= is checked with the configuration, before a trainer or run folder exists."""
    from ultralytics.engine.trainer import OPTIMIZERS

    with pytest.raises(ValueError) as e:
        get_cfg(overrides={"optimizer": "Foo"})
    msg = str(e.value)
    assert "'optimizer=Foo'" in msg and str(sorted(OPTIMIZERS)) in msg
    with pytest.raises(ValueError, match="'optimizer=AUTO'"):
        get_cfg(overrides={"optimizer": "AUTO"})  # the trainer matches 'auto' exactly


@pytest.mark.parametrize("name", ["auto", "SGD", "sgd", "adamw", "RMSPROP", "NAdam"])
def test_optimizers_the_trainer_builds_pass_the_check(name):
    assert get_cfg(overrides={"optimizer": name}).optimizer == name
