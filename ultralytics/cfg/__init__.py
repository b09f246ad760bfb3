"""Configuration: merging and checking overrides of default.yaml, run folders, and the `yolo` command line.

`yolo [TASK] MODE key=value ...` builds an RT-DETR model and calls its train/val/predict/export method with the
overrides. Mistakes in the command line (unknown keys, modes or tasks, values of the wrong type or range, a key
without '=') end the command with a one-paragraph message and exit status 2 instead of a traceback.
"""

from __future__ import annotations

import ast
import numbers
import os
import shutil
import sys
from difflib import get_close_matches
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable

from ultralytics.utils import (
    ASSETS,
    DEFAULT_CFG,
    DEFAULT_CFG_DICT,
    DEFAULT_CFG_PATH,
    LOGGER,
    RANK,
    SETTINGS,
    IterableSimpleNamespace,
    yaml_load,
    yaml_print,
)

# Upstream's full sets, so code and argument files written for upstream keep their meaning; this package runs
# only the subsets below and says so when asked for the rest.
MODES = {"train", "val", "predict", "export", "track", "benchmark"}
TASKS = {"detect", "segment", "classify", "pose", "obb"}
SUPPORTED_MODES = {"train", "val", "predict", "export"}
SUPPORTED_TASKS = {"detect"}

DEFAULT_MODEL = "rtdetr-l-FocalModulation.yaml"  # the article's model
TASK2DATA = {"detect": "shapes.yaml"}  # the embedded demo dataset
TASK2MODEL = {"detect": DEFAULT_MODEL}
TASK2METRIC = {"detect": "metrics/mAP50-95(B)"}
MODELS = set(TASK2MODEL.values())

CLI_HELP_MSG = f"""
    'yolo' commands use the following syntax:

        yolo TASK MODE ARGS

        Where   TASK (optional) is one of {sorted(SUPPORTED_TASKS)}
                MODE (required) is one of {sorted(SUPPORTED_MODES)}
                ARGS (optional) are any number of 'key=value' pairs like 'imgsz=320' that override the defaults.
                    See all ARGS and their defaults with 'yolo cfg' (or in {DEFAULT_CFG_PATH})

    1. Train the article's RT-DETR-l with Focal Modulation on the embedded demo dataset for 3 epochs on CPU
        yolo train model={DEFAULT_MODEL} data=shapes.yaml epochs=3 imgsz=320 device=cpu

    2. Predict on a folder of images at image size 640 and save the annotated images
        yolo predict model=runs/detect/train/weights/best.pt source=path/to/images imgsz=640 save=True

    3. Validate a trained model at batch size 1 on the dataset's val split
        yolo val model=runs/detect/train/weights/best.pt data=shapes.yaml batch=1

    4. Export a trained model to ONNX at image size 640
        yolo export model=runs/detect/train/weights/best.pt format=onnx imgsz=640

    5. Special commands:
        yolo help
        yolo checks
        yolo version
        yolo settings
        yolo copy-cfg
        yolo cfg
    """

# Keys checked by check_cfg; same sets as upstream 8.3.50.
CFG_FLOAT_KEYS = {  # int or float, e.g. warmup_epochs=3 or warmup_epochs=2.5
    "warmup_epochs",
    "box",
    "cls",
    "dfl",
    "degrees",
    "shear",
    "time",
    "workspace",
    "batch",
}
CFG_FRACTION_KEYS = {  # int or float within [0.0, 1.0]
    "dropout",
    "lr0",
    "lrf",
    "momentum",
    "weight_decay",
    "warmup_momentum",
    "warmup_bias_lr",
    "hsv_h",
    "hsv_s",
    "hsv_v",
    "translate",
    "scale",
    "perspective",
    "flipud",
    "fliplr",
    "bgr",
    "mosaic",
    "mixup",
    "copy_paste",
    "conf",
    "iou",
    "fraction",
}
CFG_INT_KEYS = {  # int only
    "epochs",
    "patience",
    "workers",
    "seed",
    "close_mosaic",
    "mask_ratio",
    "max_det",
    "vid_stride",
    "line_width",
    "nbs",
    "save_period",
}
CFG_BOOL_KEYS = {  # bool only
    "save",
    "exist_ok",
    "verbose",
    "deterministic",
    "single_cls",
    "rect",
    "cos_lr",
    "overlap_mask",
    "val",
    "save_json",
    "save_hybrid",
    "half",
    "dnn",
    "plots",
    "show",
    "save_txt",
    "save_conf",
    "save_crop",
    "save_frames",
    "show_labels",
    "show_conf",
    "visualize",
    "augment",
    "agnostic_nms",
    "retina_masks",
    "show_boxes",
    "keras",
    "optimize",
    "int8",
    "dynamic",
    "simplify",
    "nms",
    "profile",
    "multi_scale",
}

# Old argument names still accepted: old name -> (new name, how the old value maps to the new one).
_RENAMED_KEYS: dict[str, tuple[str, Callable[[Any], Any]]] = {
    "boxes": ("show_boxes", lambda v: v),
    "hide_labels": ("show_labels", lambda v: v == "False"),
    "hide_conf": ("show_conf", lambda v: v == "False"),
    "line_thickness": ("line_width", lambda v: v),
}
_REMOVED_KEYS = {"label_smoothing"}

# Exit status for command-line mistakes, as argparse uses.
_USAGE_ERROR = 2


# ----------------------------------------------------------------------------------------------
# Merging and checking
# ----------------------------------------------------------------------------------------------
def cfg2dict(cfg: str | Path | dict | SimpleNamespace) -> dict:
    """A yaml path, a dict or a namespace as a dict ('None' strings from yaml files become None)."""
    if isinstance(cfg, (str, Path)):
        return {k: None if isinstance(v, str) and v.lower() == "none" else v for k, v in yaml_load(cfg).items()}
    if isinstance(cfg, SimpleNamespace):
        return vars(cfg)
    return cfg


def get_cfg(
    cfg: str | Path | dict | SimpleNamespace = DEFAULT_CFG_DICT,
    overrides: dict | SimpleNamespace | None = None,
) -> IterableSimpleNamespace:
    """Merge ``overrides`` into ``cfg`` (overrides win), check keys and values, and return the result as a namespace.

    Unknown override keys raise SyntaxError with the closest valid keys; values of the wrong type or range raise
    TypeError or ValueError (see check_cfg). Numeric ``project``/``name`` become strings, and ``name=model`` becomes
    the model's file stem. Neither argument is modified.
    """
    # Copy: the default argument is the shared DEFAULT_CFG_DICT, which must never change.
    cfg = dict(cfg2dict(cfg))
    if overrides:
        overrides = dict(cfg2dict(overrides))
        if "save_dir" not in cfg:
            overrides.pop("save_dir", None)  # internal key the trainer passes on resume
        check_dict_alignment(cfg, overrides)
        cfg = {**cfg, **overrides}

    for k in ("project", "name"):
        if isinstance(cfg.get(k), (int, float)) and not isinstance(cfg.get(k), bool):
            cfg[k] = str(cfg[k])
    if cfg.get("name") == "model":
        cfg["name"] = str(cfg.get("model") or "").split(".")[0]
        LOGGER.warning(f"WARNING ⚠️ 'name=model' automatically updated to 'name={cfg['name']}'.")

    check_cfg(cfg)
    return IterableSimpleNamespace(**cfg)


def _is_number(v: Any) -> bool:
    # numbers.Real also admits numpy scalars; bool is excluded because True is no epoch count or learning rate.
    return isinstance(v, numbers.Real) and not isinstance(v, bool)


def _is_int(v: Any) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def check_cfg(cfg: dict, hard: bool = True) -> None:
    """Check the types (and for fraction keys the range) of the values in ``cfg``; None values are always allowed.

    Keys in CFG_FLOAT_KEYS take an int or float, CFG_FRACTION_KEYS an int or float in [0.0, 1.0], CFG_INT_KEYS an
    int, CFG_BOOL_KEYS a bool. With ``hard`` a wrong type raises TypeError naming the key, the value, its type and
    what is accepted; without it the value is converted in place (float(), int(), bool()). An out-of-range
    fraction raises ValueError either way.
    """
    for k, v in cfg.items():
        if v is None:
            continue
        kind = type(v).__name__
        if k in CFG_FLOAT_KEYS and not _is_number(v):
            if hard:
                raise TypeError(
                    f"'{k}={v}' is of invalid type {kind}. "
                    f"Valid '{k}' types are int (i.e. '{k}=0') or float (i.e. '{k}=0.5')"
                )
            cfg[k] = float(v)
        elif k in CFG_FRACTION_KEYS:
            if not _is_number(v):
                if hard:
                    raise TypeError(
                        f"'{k}={v}' is of invalid type {kind}. "
                        f"Valid '{k}' types are int (i.e. '{k}=0') or float (i.e. '{k}=0.5') between 0.0 and 1.0"
                    )
                cfg[k] = v = float(v)
            if not 0.0 <= v <= 1.0:
                raise ValueError(
                    f"'{k}={v}' ({type(v).__name__}) is an invalid value. Valid '{k}' values are between 0.0 and 1.0."
                )
        elif k in CFG_INT_KEYS and not _is_int(v):
            if hard:
                raise TypeError(f"'{k}={v}' is of invalid type {kind}. '{k}' must be an int (i.e. '{k}=8')")
            cfg[k] = int(v)
        elif k in CFG_BOOL_KEYS and not isinstance(v, bool):
            if hard:
                raise TypeError(
                    f"'{k}={v}' is of invalid type {kind}. '{k}' must be a bool (i.e. '{k}=True' or '{k}=False')"
                )
            cfg[k] = bool(v)


def _runs_dir() -> Path:
    """Root of all run folders, read at call time so ULTRALYTICS_RUNS_DIR set after import still applies."""
    env = os.getenv("ULTRALYTICS_RUNS_DIR")
    return Path(env) if env else Path(SETTINGS["runs_dir"])


def get_save_dir(args: SimpleNamespace, name: str | None = None) -> Path:
    """Run folder for ``args``: ``args.save_dir`` if set, else ``project/name`` numbered to be new.

    ``project`` defaults to ``<runs_dir>/<task>`` (runs_dir from ULTRALYTICS_RUNS_DIR or SETTINGS['runs_dir']) and
    the name to ``name``, ``args.name`` or ``args.mode``: runs/detect/train, then train2, train3, ... unless
    ``args.exist_ok``. Ranks other than 0 under DDP reuse the folder rank 0 picked. The folder is not created.
    """
    if getattr(args, "save_dir", None):
        return Path(args.save_dir)
    from ultralytics.utils.files import increment_path

    task = getattr(args, "task", None) or "detect"
    project = getattr(args, "project", None) or _runs_dir() / task
    name = name or getattr(args, "name", None) or f"{args.mode}"
    exist_ok = getattr(args, "exist_ok", False) if RANK in {-1, 0} else True
    return Path(increment_path(Path(project) / str(name), exist_ok=exist_ok))


def _handle_deprecation(custom: dict) -> dict:
    """Rename old argument names in ``custom`` in place (with a warning) and drop removed ones."""
    for key in list(custom):
        if key in _RENAMED_KEYS:
            new, convert = _RENAMED_KEYS[key]
            LOGGER.warning(f"WARNING ⚠️ '{key}' is deprecated and will be removed in the future. Use '{new}' instead.")
            custom[new] = convert(custom.pop(key))
        elif key in _REMOVED_KEYS:
            LOGGER.warning(f"WARNING ⚠️ '{key}' is deprecated and will be removed in the future.")
            custom.pop(key)
    return custom


def check_dict_alignment(base: dict, custom: dict, e: BaseException | None = None) -> None:
    """Raise SyntaxError if ``custom`` has keys that ``base`` lacks, suggesting the closest valid keys for each.

    Deprecated keys in ``custom`` are first renamed in place. ``e``, if given, is chained as the cause.
    """
    custom = _handle_deprecation(custom)
    unknown = [k for k in custom if k not in base]
    if not unknown:
        return
    lines = []
    for key in unknown:
        close = get_close_matches(str(key), [str(k) for k in base])
        shown = [f"{k}={base[k]}" if base.get(k) is not None else k for k in close]
        hint = f" Similar arguments are i.e. {shown}." if shown else ""
        lines.append(f"'{key}' is not a valid YOLO argument.{hint}")
    lines.append(f"See every valid argument and its default with 'yolo cfg' or in {DEFAULT_CFG_PATH}.")
    raise SyntaxError("\n".join(lines)) from e


# ----------------------------------------------------------------------------------------------
# Command-line parsing
# ----------------------------------------------------------------------------------------------
def merge_equals_args(args: list[str]) -> list[str]:
    """Join command-line pieces that belong to one argument.

    ['epochs', '=', '3'], ['epochs=', '3'] and ['epochs', '=3'] all become ['epochs=3'], and a bracketed value
    split by spaces is rejoined: ['imgsz=[320,', '640]'] -> ['imgsz=[320,640]'].
    """
    merged: list[str] = []
    pending = ""  # pieces of a bracketed value not yet closed
    depth = 0
    i = 0
    while i < len(args):
        arg = args[i]
        has_next = i < len(args) - 1
        if arg == "=" and merged and has_next:
            merged[-1] += f"={args[i + 1]}"
            i += 2
            continue
        if arg.endswith("=") and has_next and "=" not in args[i + 1]:
            merged.append(f"{arg}{args[i + 1]}")
            i += 2
            continue
        if arg.startswith("=") and merged:
            merged[-1] += arg
            i += 1
            continue
        depth += arg.count("[") - arg.count("]")
        pending += arg
        if depth == 0:
            merged.append(pending)
            pending = ""
        i += 1
    if pending:
        merged.append(pending)
    return merged


def smart_value(v: str) -> Any:
    """A command-line value as a Python value: 'None'/'True'/'False' (any case), numbers, lists, tuples, quoted
    strings; anything else stays the string it was ('cpu', 'shapes.yaml')."""
    lowered = v.lower()
    if lowered == "none":
        return None
    if lowered == "true":
        return True
    if lowered == "false":
        return False
    try:
        return ast.literal_eval(v)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return v


def parse_key_value_pair(pair: str = "key=value") -> tuple[str, Any]:
    """Split 'key=value' at the first '=' and convert the value with smart_value; an empty value raises ValueError."""
    k, v = pair.split("=", 1)
    k, v = k.strip(), v.strip()
    if not k:
        raise ValueError(f"'{pair}' has no key before '='; write arguments as key=value, e.g. epochs=10")
    if not v:
        default = DEFAULT_CFG_DICT.get(k)
        example = f"{k}={default}" if default is not None else f"{k}=VALUE"
        raise ValueError(f"missing '{k}' value: '{pair}' has nothing after '='; write it as e.g. '{example}'")
    return k, smart_value(v)


def copy_default_cfg() -> Path:
    """Copy default.yaml to ./default_copy.yaml as a starting point for a custom cfg file; returns the new path."""
    new_file = Path.cwd() / DEFAULT_CFG_PATH.name.replace(".yaml", "_copy.yaml")
    shutil.copy2(DEFAULT_CFG_PATH, new_file)
    LOGGER.info(
        f"{DEFAULT_CFG_PATH} copied to {new_file}\n"
        f"Example YOLO command with this new custom cfg:\n    yolo cfg='{new_file}' imgsz=320 batch=8"
    )
    return new_file


def _print_settings() -> None:
    """Show where datasets, weights and runs go, and the environment variables that move them."""
    LOGGER.info("\n".join(f"{k:<14}{v}" for k, v in SETTINGS.items()))
    LOGGER.info(
        "Change these with the environment variables ULTRALYTICS_DATASETS_DIR, ULTRALYTICS_WEIGHTS_DIR and "
        "ULTRALYTICS_RUNS_DIR."
    )


def _print_version() -> None:
    from ultralytics import __version__

    LOGGER.info(__version__)


SPECIAL_COMMANDS = ("help", "checks", "version", "settings", "cfg", "copy-cfg")

def _special_commands() -> dict[str, Callable[[], Any]]:
    """Commands that run instead of a mode (SPECIAL_COMMANDS), with the spellings users try (-h, --help, check)."""
    from ultralytics.utils import checks

    base = {
        "help": lambda: LOGGER.info(CLI_HELP_MSG),
        "checks": checks.collect_system_info,
        "version": _print_version,
        "settings": _print_settings,
        "cfg": lambda: yaml_print(DEFAULT_CFG_PATH),
        "copy-cfg": copy_default_cfg,
    }
    spellings = dict(base)
    spellings.update({"h": base["help"], "check": base["checks"], "setting": base["settings"]})
    return {**spellings, **{f"-{k}": v for k, v in spellings.items()}, **{f"--{k}": v for k, v in spellings.items()}}


# Upstream commands that need services or modules this package does not have.
_UNSUPPORTED_COMMANDS = {"hub", "login", "logout", "solutions", "streamlit-predict"}


def _parse_cli(args: list[str]) -> tuple[dict, Callable[[], Any] | None]:
    """Turn command-line words into (overrides, special command or None); raises on any mistake."""
    special = _special_commands()
    valid = {**DEFAULT_CFG_DICT, **dict.fromkeys(TASKS), **dict.fromkeys(MODES), **dict.fromkeys(SPECIAL_COMMANDS)}
    overrides: dict[str, Any] = {}
    file_overrides: dict[str, Any] = {}
    for a in merge_equals_args(args):
        if a.startswith("--") and a.lower() not in special:
            LOGGER.warning(f"WARNING ⚠️ argument '{a}' does not require leading dashes '--', updating to '{a[2:]}'.")
            a = a[2:]
        if a.endswith(","):
            LOGGER.warning(f"WARNING ⚠️ argument '{a}' does not require trailing comma ',', updating to '{a[:-1]}'.")
            a = a[:-1]
        if "=" in a:
            k, v = parse_key_value_pair(a)
            if k == "cfg" and v is not None:
                from ultralytics.utils.checks import check_yaml

                found = check_yaml(str(v))
                LOGGER.info(f"Overriding {DEFAULT_CFG_PATH} with {found}")
                file_overrides = {key: val for key, val in cfg2dict(found).items() if key != "cfg"}
                check_dict_alignment(DEFAULT_CFG_DICT, file_overrides)
            else:
                overrides[k] = v
        elif a in TASKS:
            overrides["task"] = a
        elif a in MODES:
            overrides["mode"] = a
        elif a.lower() in special:
            return overrides, special[a.lower()]
        elif a.lower() in _UNSUPPORTED_COMMANDS:
            raise ValueError(
                f"'yolo {a}' is an upstream Ultralytics command that this package does not provide. "
                f"Modes here are {sorted(SUPPORTED_MODES)}; special commands are "
                f"{list(SPECIAL_COMMANDS)}."
            )
        elif a in DEFAULT_CFG_DICT and isinstance(DEFAULT_CFG_DICT[a], bool):
            overrides[a] = True  # 'yolo predict show' means show=True
        elif a in DEFAULT_CFG_DICT:
            raise SyntaxError(
                f"'{a}' is a valid YOLO argument but is missing an '=' sign to set its value, "
                f"i.e. try '{a}={DEFAULT_CFG_DICT[a]}'. Arguments are written key=value with no spaces needed."
            )
        else:
            check_dict_alignment(valid, {a: ""})
    check_dict_alignment(valid, overrides)
    # Values given on the command line win over the cfg file, whatever their order.
    merged = {**file_overrides, **overrides}
    check_cfg({k: v for k, v in merged.items() if k in DEFAULT_CFG_DICT})
    return merged, None


def _resolve_command(overrides: dict) -> tuple[str, str | None, str]:
    """Pick mode, task and model from the overrides (filling defaults with warnings); raises for unsupported ones."""
    mode = overrides.get("mode")
    if mode is None:
        mode = DEFAULT_CFG.mode or "predict"
        LOGGER.warning(
            f"WARNING ⚠️ 'mode' argument is missing. Valid modes are {sorted(SUPPORTED_MODES)}. "
            f"Using default 'mode={mode}'."
        )
    elif mode not in SUPPORTED_MODES:
        known = "an upstream Ultralytics mode that this package does not provide" if mode in MODES else "unknown"
        raise ValueError(f"Invalid 'mode={mode}': it is {known}. Valid modes are {sorted(SUPPORTED_MODES)}.")
    overrides["mode"] = mode

    task = overrides.pop("task", None)
    if task is not None and task not in SUPPORTED_TASKS:
        known = "an upstream Ultralytics task that RT-DETR does not cover" if task in TASKS else "unknown"
        raise ValueError(f"Invalid 'task={task}': it is {known}. Valid tasks are {sorted(SUPPORTED_TASKS)}.")

    model = overrides.pop("model", None) or DEFAULT_CFG.model
    if model is None:
        model = TASK2MODEL[task or "detect"]
        LOGGER.warning(f"WARNING ⚠️ 'model' argument is missing. Using default 'model={model}'.")
    overrides["model"] = str(model)
    return mode, task, str(model)


def _fill_mode_defaults(mode: str, task: str, overrides: dict) -> None:
    """Supply the argument each mode cannot run without (source, data or format), warning that it was chosen."""
    if mode == "predict" and "source" not in overrides:
        source = DEFAULT_CFG.source or (ASSETS if ASSETS.exists() else None)
        if source is None:
            raise ValueError(
                "'source' argument is missing and this installation has no sample images; "
                "pass e.g. source=path/to/image.jpg or source=path/to/folder"
            )
        overrides["source"] = source
        LOGGER.warning(f"WARNING ⚠️ 'source' argument is missing. Using default 'source={source}'.")
    elif mode in {"train", "val"} and "data" not in overrides and "resume" not in overrides:
        overrides["data"] = DEFAULT_CFG.data or TASK2DATA[task]
        LOGGER.warning(f"WARNING ⚠️ 'data' argument is missing. Using default 'data={overrides['data']}'.")
    elif mode == "export" and "format" not in overrides:
        overrides["format"] = DEFAULT_CFG.format or "torchscript"
        LOGGER.warning(f"WARNING ⚠️ 'format' argument is missing. Using default 'format={overrides['format']}'.")


def _usage_error(err: BaseException) -> SystemExit:
    """Log a command-line mistake as one readable block and return the SystemExit to raise."""
    LOGGER.error(f"yolo: error: {err}\nRun 'yolo help' for usage.")
    return SystemExit(_USAGE_ERROR)


def entrypoint(debug: str = "") -> None:
    """Run the `yolo` command: ``yolo [TASK] MODE key=value ...`` or a special command (help, cfg, version, ...).

    ``debug`` replaces the command line for testing: a space-separated string whose first word is the program name,
    e.g. ``entrypoint("yolo train epochs=3")``. Mistakes in the arguments raise SystemExit(2) after logging what was
    wrong; so does a file that does not exist. Without arguments the help text is shown.
    """
    args = (debug.split() if debug else sys.argv)[1:]
    if not args:
        LOGGER.info(CLI_HELP_MSG)
        return

    try:
        overrides, command = _parse_cli(args)
        if command is not None:
            command()
            return
        mode, task, model_name = _resolve_command(overrides)
    except (SyntaxError, ValueError, TypeError, FileNotFoundError) as err:
        raise _usage_error(err) from None

    from ultralytics import RTDETR

    try:
        model = RTDETR(model_name)
        if isinstance(overrides.get("pretrained"), str):
            model.load(overrides["pretrained"])
        model_task = getattr(model, "task", None) or "detect"
        if task and task != model_task:
            LOGGER.warning(
                f"WARNING ⚠️ conflicting 'task={task}' passed with 'task={model_task}' model. "
                f"Ignoring 'task={task}' and updating to 'task={model_task}' to match model."
            )
        _fill_mode_defaults(mode, model_task, overrides)
        getattr(model, mode)(**overrides)
    except (FileNotFoundError, ValueError) as err:
        # Both are raised for what the user asked for (a missing file, an unsupported export format, an
        # image size the model cannot take); their messages say what is accepted.
        raise _usage_error(err) from None
