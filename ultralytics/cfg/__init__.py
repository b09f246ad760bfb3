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
from dataclasses import dataclass
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
    SETTINGS_ENV,
    SETTINGS_HELP,
    IterableSimpleNamespace,
    UnknownSettingError,
    settings_defaults,
    yaml_load,
    yaml_print,
)

# Upstream's full sets, so code and argument files written for upstream keep their meaning; this package runs
# only the subsets below and says so when asked for the rest.
MODES = {"train", "val", "predict", "export", "track", "benchmark", "tune"}  # `yolo tune` is this package's addition
TASKS = {"detect", "segment", "classify", "pose", "obb"}
SUPPORTED_MODES = {"train", "val", "predict", "export", "track", "benchmark", "tune"}
# Keys that are no default.yaml setting but belong to one mode, with their defaults.
MODE_ONLY_KEYS = {"tune": {"iterations": 10}}
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

# Keys checked by check_cfg; upstream 8.3.50's sets plus this project's recipe keys.
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
    "mal_gamma",  # the keys from here on are this project's (docs/recipes.md)
    "clip_grad",
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
    "lr_backbone",  # the keys from here on are this project's (docs/recipes.md)
    "ema_decay",
    "dense_o2o",
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
    "ema_tau",  # the keys from here on are this project's (docs/recipes.md)
    "flat_lr_epochs",
    "no_aug_epochs",
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


@dataclass(frozen=True)
class _ValueRule:
    """What one family of keys accepts: a type test, the conversion used when not strict, and the wording."""

    accepts: Callable[[Any], bool]
    convert: Callable[[Any], Any]
    wording: str  # completes "'<key>' must be ..."; {k} is the key
    fraction: bool = False  # also require 0.0 <= value <= 1.0


def _is_number(v: Any) -> bool:
    # numbers.Real also admits numpy scalars; bool is excluded because True is no epoch count or learning rate.
    return isinstance(v, numbers.Real) and not isinstance(v, bool)


def _is_int(v: Any) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def _is_amp(v: Any) -> bool:
    # `amp` is a bool (float16 AMP on CUDA) or 'bf16' (bfloat16 autocast on CPU, see utils/precision.py).
    return isinstance(v, bool) or v == "bf16"


_RULES: dict[str, _ValueRule] = {
    **dict.fromkeys(CFG_FLOAT_KEYS, _ValueRule(_is_number, float, "an int or float (i.e. '{k}=0' or '{k}=0.5')")),
    **dict.fromkeys(
        CFG_FRACTION_KEYS,
        _ValueRule(_is_number, float, "an int or float between 0.0 and 1.0 (i.e. '{k}=0.5')", fraction=True),
    ),
    **dict.fromkeys(CFG_INT_KEYS, _ValueRule(_is_int, int, "an int (i.e. '{k}=8')")),
    **dict.fromkeys(CFG_BOOL_KEYS, _ValueRule(lambda v: isinstance(v, bool), bool, "a bool (i.e. '{k}=True' or '{k}=False')")),
    "amp": _ValueRule(_is_amp, bool, "True, False or bf16 (i.e. 'amp=True', or 'amp=bf16' for bfloat16 on CPU)"),
}


# ----------------------------------------------------------------------------------------------
# Merging and checking
# ----------------------------------------------------------------------------------------------
def cfg2dict(cfg: str | Path | dict | SimpleNamespace) -> dict:
    """A yaml path, a dict or a namespace as a dict ('None' strings from yaml files become None)."""
    if isinstance(cfg, SimpleNamespace):
        return vars(cfg)
    if not isinstance(cfg, (str, Path)):
        return cfg
    return {k: None if isinstance(v, str) and v.lower() == "none" else v for k, v in yaml_load(cfg).items()}


def _tidy_names(cfg: dict) -> None:
    """Numeric project/name become strings; name=model becomes the model's file stem."""
    for key in ("project", "name"):
        value = cfg.get(key)
        if _is_number(value):
            cfg[key] = str(value)
    if cfg.get("name") != "model":
        return
    cfg["name"] = str(cfg.get("model") or "").split(".")[0]
    LOGGER.warning(f"WARNING ⚠️ 'name=model' stands for the model's file stem; using 'name={cfg['name']}'.")


def get_cfg(
    cfg: str | Path | dict | SimpleNamespace = DEFAULT_CFG_DICT,
    overrides: dict | SimpleNamespace | None = None,
) -> IterableSimpleNamespace:
    """Merge ``overrides`` into ``cfg`` (overrides win), check keys and values, and return the result as a namespace.

    Unknown override keys raise SyntaxError with the closest valid keys; values of the wrong type or range raise
    TypeError or ValueError (see check_cfg). Numeric ``project``/``name`` become strings, and ``name=model`` becomes
    the model's file stem. Neither argument is modified.
    """
    # Copies: the default argument is the shared DEFAULT_CFG_DICT, which must never change.
    merged = dict(cfg2dict(cfg))
    extra = dict(cfg2dict(overrides)) if overrides else {}
    if "save_dir" not in merged:
        extra.pop("save_dir", None)  # internal key the trainer passes on resume
    if extra:
        check_dict_alignment(merged, extra)
        merged.update(extra)
    _tidy_names(merged)
    check_cfg(merged)
    return IterableSimpleNamespace(**merged)


def _checked_value(key: str, value: Any, rule: _ValueRule, hard: bool) -> Any:
    """``value`` if ``rule`` accepts it, converted when not ``hard``; raises naming key, value, type and rule."""
    if not rule.accepts(value):
        if hard:
            accepted = rule.wording.format(k=key)
            raise TypeError(f"'{key}={value}' is of invalid type {type(value).__name__}. '{key}' must be {accepted}")
        value = rule.convert(value)
    if rule.fraction and not 0.0 <= value <= 1.0:
        raise ValueError(
            f"'{key}={value}' ({type(value).__name__}) is an invalid value. Valid '{key}' values are between 0.0 and 1.0."
        )
    return value


def check_cfg(cfg: dict, hard: bool = True) -> None:
    """Check the types (and for fraction keys the range) of the values in ``cfg``; None values are always allowed.

    Keys in CFG_FLOAT_KEYS take an int or float, CFG_FRACTION_KEYS an int or float in [0.0, 1.0], CFG_INT_KEYS an
    int, CFG_BOOL_KEYS a bool. With ``hard`` a wrong type raises TypeError naming the key, the value, its type and
    what is accepted; without it the value is converted in place (float(), int(), bool()). An out-of-range
    fraction, or an ``optimizer`` the trainer cannot build, raises ValueError either way.
    """
    for key, value in cfg.items():
        rule = _RULES.get(key)
        if rule is not None and value is not None:
            cfg[key] = _checked_value(key, value, rule, hard)
    if cfg.get("optimizer") is not None:
        _check_optimizer(cfg["optimizer"])


def _check_optimizer(name: Any) -> None:
    """Raise ValueError unless the trainer can build optimizer ``name``: 'auto' exactly, the others in any case."""
    # Imported here: the optimization module needs torch, and the trainer imports this module.
    from ultralytics.engine.optimization import OPTIMIZERS, canonical_name

    if name == "auto":
        return
    try:
        canonical_name(name)  # the trainer's own matching, so the two can never disagree
    except NotImplementedError:
        raise ValueError(
            f"'optimizer={name}' is not an optimizer the trainer builds. Valid 'optimizer' values are "
            f"{sorted(OPTIMIZERS)} ('auto' exactly as written, the others in any letter case)."
        ) from None


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
    chosen = getattr(args, "save_dir", None)
    if chosen:
        return Path(chosen)
    from ultralytics.utils.files import increment_path

    task = getattr(args, "task", None) or "detect"
    project = getattr(args, "project", None) or _runs_dir() / task
    name = name or getattr(args, "name", None) or f"{args.mode}"
    exist_ok = getattr(args, "exist_ok", False) if RANK in {-1, 0} else True
    return Path(increment_path(Path(project) / str(name), exist_ok=exist_ok))


def _handle_deprecation(custom: dict) -> dict:
    """Rename old argument names in ``custom`` in place (with a warning) and drop removed ones."""
    for old in [k for k in custom if k in _RENAMED_KEYS or k in _REMOVED_KEYS]:
        value = custom.pop(old)
        if old in _REMOVED_KEYS:
            LOGGER.warning(f"WARNING ⚠️ '{old}' is no longer an argument and is ignored.")
            continue
        new, convert = _RENAMED_KEYS[old]
        LOGGER.warning(f"WARNING ⚠️ '{old}' is an old name for '{new}'; please use '{new}'.")
        custom[new] = convert(value)
    return custom


def _suggestion(key: str, base: dict) -> str:
    """"'key' is not a valid YOLO argument." plus the closest valid keys, with their defaults."""
    close = get_close_matches(str(key), [str(k) for k in base])
    shown = [k if base.get(k) is None else f"{k}={base[k]}" for k in close]
    hint = f" Similar arguments are i.e. {shown}." if shown else ""
    return f"'{key}' is not a valid YOLO argument.{hint}"


def check_dict_alignment(base: dict, custom: dict, e: BaseException | None = None) -> None:
    """Raise SyntaxError if ``custom`` has keys that ``base`` lacks, suggesting the closest valid keys for each.

    Deprecated keys in ``custom`` are first renamed in place. ``e``, if given, is chained as the cause.
    """
    unknown = [k for k in _handle_deprecation(custom) if k not in base]
    if unknown:
        lines = [_suggestion(k, base) for k in unknown]
        lines.append(f"See every valid argument and its default with 'yolo cfg' or in {DEFAULT_CFG_PATH}.")
        raise SyntaxError("\n".join(lines)) from e


# ----------------------------------------------------------------------------------------------
# Command-line parsing
# ----------------------------------------------------------------------------------------------
def _bracket_balance(piece: str) -> int:
    """Opened minus closed square brackets in one command-line piece."""
    return sum({"[": 1, "]": -1}.get(c, 0) for c in piece)


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
        depth += _bracket_balance(arg)
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
    key, _, text = (part.strip() for part in pair.partition("="))
    if not key:
        raise ValueError(f"'{pair}' has no key before '='; write arguments as key=value, e.g. epochs=10")
    if not text:
        default = DEFAULT_CFG_DICT.get(key)
        example = f"{key}={'VALUE' if default is None else default}"
        raise ValueError(f"missing '{key}' value: '{pair}' has nothing after '='; write it as e.g. '{example}'")
    return key, smart_value(text)


def copy_default_cfg() -> Path:
    """Copy default.yaml to ./default_copy.yaml as a starting point for a custom cfg file; returns the new path."""
    target = Path.cwd() / f"{DEFAULT_CFG_PATH.stem}_copy{DEFAULT_CFG_PATH.suffix}"
    shutil.copy2(DEFAULT_CFG_PATH, target)
    LOGGER.info(
        f"Wrote a copy of {DEFAULT_CFG_PATH} to {target}. Edit it and pass it with cfg=, e.g.\n"
        f"    yolo cfg='{target}' imgsz=320 batch=8"
    )
    return target


def _print_settings() -> None:
    """Show the settings file, and the environment variables that take precedence over its folders."""
    LOGGER.info(str(SETTINGS))
    variables = " and ".join(", ".join(SETTINGS_ENV.values()).rsplit(", ", 1))
    active = [f"{name}={os.environ[name]}" for name in SETTINGS_ENV.values() if os.getenv(name)]
    now = f" Set now: {', '.join(active)}." if active else ""
    LOGGER.info(f"The environment variables {variables} take precedence over the file's folders.{now}")
    LOGGER.info(f"💡 Learn more about Ultralytics Settings at {SETTINGS_HELP}")


def _setting_pair(word: str) -> tuple[str, Any]:
    """'key=value' for `yolo settings`: text settings keep the text as typed, the others go through smart_value."""
    key, value = parse_key_value_pair(word)
    default = settings_defaults().get(key)
    return key, word.partition("=")[2].strip() if isinstance(default, str) else value


def settings_command(words: list[str]) -> None:
    """`yolo settings [reset] [key=value ...]`: reset and/or change the settings file, then print it.

    Every pair is checked before anything is written, so a mistake leaves the file as it was.
    """
    bare = [w for w in words if "=" not in w and w.lower() != "reset"]
    if bare:
        raise SyntaxError(
            f"'yolo settings' takes 'reset' and key=value pairs, got {bare}; e.g. 'yolo settings runs_dir=path/to/runs' "
            f"or 'yolo settings reset'"
        )
    changes = dict(_setting_pair(w) for w in words if "=" in w)
    try:
        SETTINGS.check(changes)
    except UnknownSettingError as e:
        raise ValueError(str(e)) from None
    if any(w.lower() == "reset" for w in words):
        SETTINGS.reset()
        LOGGER.info("Settings reset successfully")
    if changes:
        SETTINGS.update(changes)
    _print_settings()


def _settings_words(args: list[str]) -> list[str] | None:
    """The words after a leading 'settings' (or -settings, --settings, setting), or None for other commands."""
    first = args[0].lower().lstrip("-")
    return args[1:] if _SPECIAL_ALIASES.get(first, first) == "settings" else None


def _print_version() -> None:
    from ultralytics import __version__

    LOGGER.info(__version__)


SPECIAL_COMMANDS = ("help", "checks", "version", "settings", "cfg", "copy-cfg")

# Other spellings users try for the special commands; every name also works with '-' or '--' in front.
_SPECIAL_ALIASES = {"h": "help", "check": "checks", "setting": "settings"}

# Upstream commands that need services or modules this package does not have.
_UNSUPPORTED_COMMANDS = {"hub", "login", "logout", "solutions", "streamlit-predict"}


def _show_help() -> None:
    LOGGER.info(CLI_HELP_MSG)


def _show_default_cfg() -> None:
    yaml_print(DEFAULT_CFG_PATH)


def _special_commands() -> dict[str, Callable[[], Any]]:
    """Commands that run instead of a mode (SPECIAL_COMMANDS), with the spellings users try (-h, --help, check)."""
    from ultralytics.utils import checks

    runners = (_show_help, checks.collect_system_info, _print_version, _print_settings, _show_default_cfg, copy_default_cfg)
    actions = dict(zip(SPECIAL_COMMANDS, runners))
    actions.update({alias: actions[name] for alias, name in _SPECIAL_ALIASES.items()})
    return {f"{dashes}{name}": run for name, run in actions.items() for dashes in ("", "-", "--")}


def _tidy_word(word: str, special: dict) -> str:
    """Forgive '--key=value' and 'key=value,' (habits from other tools), saying what was read instead."""
    if word.startswith("--") and word.lower() not in special:
        LOGGER.warning(f"WARNING ⚠️ '{word}' does not require leading dashes '--'; reading it as '{word[2:]}'.")
        word = word[2:]
    if word.endswith(","):
        LOGGER.warning(f"WARNING ⚠️ '{word}' does not require a trailing comma ','; reading it as '{word[:-1]}'.")
        word = word[:-1]
    return word


def _cfg_file_overrides(value: Any) -> dict:
    """The arguments of a cfg=FILE yaml (its own 'cfg' key ignored), checked against default.yaml."""
    from ultralytics.utils.checks import check_yaml

    found = check_yaml(str(value))
    LOGGER.info(f"Overriding {DEFAULT_CFG_PATH} with {found}")
    from_file = {k: v for k, v in cfg2dict(found).items() if k != "cfg"}
    check_dict_alignment(DEFAULT_CFG_DICT, from_file)
    return from_file


def _bare_word(word: str, overrides: dict, valid: dict) -> None:
    """Record a word without '=' (a task, a mode, a bool flag) in ``overrides``, or raise saying what is wrong."""
    if word in TASKS:
        overrides["task"] = word
    elif word in MODES:
        overrides["mode"] = word
    elif word.lower() in _UNSUPPORTED_COMMANDS:
        raise ValueError(
            f"'yolo {word}' is an upstream Ultralytics command that this package does not provide. "
            f"Modes here are {sorted(SUPPORTED_MODES)}; special commands are {list(SPECIAL_COMMANDS)}."
        )
    elif isinstance(DEFAULT_CFG_DICT.get(word), bool):
        overrides[word] = True  # 'yolo predict show' means show=True
    elif word in DEFAULT_CFG_DICT:
        raise SyntaxError(
            f"'{word}' is a valid YOLO argument but is missing an '=' sign to set its value, "
            f"i.e. try '{word}={DEFAULT_CFG_DICT[word]}'. Arguments are written key=value with no spaces needed."
        )
    else:
        check_dict_alignment(valid, {word: ""})


def _parse_cli(args: list[str]) -> tuple[dict, Callable[[], Any] | None]:
    """Turn command-line words into (overrides, special command or None); raises on any mistake."""
    special = _special_commands()
    valid = {**DEFAULT_CFG_DICT, **dict.fromkeys(TASKS), **dict.fromkeys(MODES), **dict.fromkeys(SPECIAL_COMMANDS)}
    for own_keys in MODE_ONLY_KEYS.values():
        valid.update(own_keys)
    overrides: dict[str, Any] = {}
    from_file: dict[str, Any] = {}
    for word in (_tidy_word(w, special) for w in merge_equals_args(args)):
        if "=" not in word and word.lower() in special:
            return overrides, special[word.lower()]
        if "=" not in word:
            _bare_word(word, overrides, valid)
            continue
        key, value = parse_key_value_pair(word)
        if key == "cfg" and value is not None:
            from_file = _cfg_file_overrides(value)
        else:
            overrides[key] = value
    check_dict_alignment(valid, overrides)
    # Values given on the command line win over the cfg file, whatever their order.
    merged = {**from_file, **overrides}
    check_cfg({k: v for k, v in merged.items() if k in DEFAULT_CFG_DICT})
    return merged, None


def _using_default(key: str, value: Any, note: str = "") -> None:
    LOGGER.warning(f"WARNING ⚠️ '{key}' argument is missing.{note} Using default '{key}={value}'.")


_UPSTREAM_ONLY = "an upstream Ultralytics {what} that {lacks} does not provide"


def _checked_choice(key: str, value: str, supported: set, upstream: set, upstream_note: str) -> None:
    """Raise for a mode or task this package does not run, saying whether upstream knows it."""
    if value in supported:
        return
    known = upstream_note if value in upstream else "unknown"
    raise ValueError(f"Invalid '{key}={value}': it is {known}. Valid {key}s are {sorted(supported)}.")


def _resolve_command(overrides: dict) -> tuple[str, str | None, str]:
    """Pick mode, task and model from the overrides (filling defaults with warnings); raises for unsupported ones."""
    mode = overrides.get("mode")
    if mode is None:
        mode = DEFAULT_CFG.mode or "predict"
        _using_default("mode", mode, f" Valid modes are {sorted(SUPPORTED_MODES)}.")
    _checked_choice("mode", mode, SUPPORTED_MODES, MODES, _UPSTREAM_ONLY.format(what="mode", lacks="this package"))
    overrides["mode"] = mode

    task = overrides.pop("task", None)
    if task is not None:
        _checked_choice("task", task, SUPPORTED_TASKS, TASKS, _UPSTREAM_ONLY.format(what="task", lacks="RT-DETR"))

    model = overrides.pop("model", None) or DEFAULT_CFG.model
    if model is None:
        model = TASK2MODEL[task or "detect"]
        _using_default("model", model)
    overrides["model"] = str(model)
    return mode, task, str(model)


def _default_source() -> Any:
    source = DEFAULT_CFG.source or (ASSETS if ASSETS.exists() else None)
    if source is None:
        raise ValueError(
            "'source' argument is missing and this installation has no sample images; "
            "pass e.g. source=path/to/image.jpg or source=path/to/folder"
        )
    return source


def _fill_mode_defaults(mode: str, task: str, overrides: dict) -> None:
    """Supply the argument each mode cannot run without (source, data or format), warning that it was chosen."""
    if mode in {"predict", "track"}:
        key, pick = "source", _default_source
    elif mode in {"train", "val", "tune"} and "resume" not in overrides:
        key, pick = "data", lambda: DEFAULT_CFG.data or TASK2DATA[task]
    elif mode == "export":
        key, pick = "format", lambda: DEFAULT_CFG.format or "torchscript"
    else:
        return
    if key not in overrides:
        overrides[key] = pick()
        _using_default(key, overrides[key])


def _check_mode_only_keys(mode: str, overrides: dict) -> None:
    """Raise unless the keys of MODE_ONLY_KEYS appear only with their own mode, as positive ints."""
    for owner, keys in MODE_ONLY_KEYS.items():
        for key in keys.keys() & overrides.keys():
            value = overrides[key]
            if mode != owner:
                raise SyntaxError(f"'{key}={value}' is an argument of 'yolo {owner}' only, not of 'yolo {mode}'.")
            if not _is_int(value) or value < 1:
                raise TypeError(f"'{key}={value}' must be a positive int, i.e. '{key}={keys[key]}'.")


def _usage_error(err: BaseException) -> SystemExit:
    """Log a command-line mistake as one readable block and return the SystemExit to raise."""
    LOGGER.error(f"yolo: error: {err}\nRun 'yolo help' for usage.")
    return SystemExit(_USAGE_ERROR)


def _run_mode(mode: str, task: str | None, model_name: str, overrides: dict) -> None:
    """Build the model (loading pretrained= weights) and call its train/val/predict/export with the overrides."""
    from ultralytics import RTDETR

    model = RTDETR(model_name)
    pretrained = overrides.get("pretrained")
    if isinstance(pretrained, str):
        model.load(pretrained)
    model_task = getattr(model, "task", None) or "detect"
    if task and task != model_task:
        LOGGER.warning(f"WARNING ⚠️ 'task={task}' does not match the model's task; using 'task={model_task}'.")
    _fill_mode_defaults(mode, model_task, overrides)
    run = getattr(model, mode)
    run(**overrides)


def entrypoint(debug: str = "") -> None:
    """Run the `yolo` command: ``yolo [TASK] MODE key=value ...`` or a special command (help, cfg, version, ...).

    ``debug`` replaces the command line for testing: a space-separated string whose first word is the program name,
    e.g. ``entrypoint("yolo train epochs=3")``. Mistakes in the arguments raise SystemExit(2) after logging what was
    wrong; so does a file that does not exist. Without arguments the help text is shown.
    """
    args = (debug.split() if debug else sys.argv)[1:]
    if not args:
        _show_help()
        return
    try:
        settings_words = _settings_words(args)
        if settings_words is not None:
            settings_command(settings_words)
            return
        overrides, command = _parse_cli(args)
        if command is not None:
            command()
            return
        mode, task, model_name = _resolve_command(overrides)
        _check_mode_only_keys(mode, overrides)
    except (SyntaxError, ValueError, TypeError, FileNotFoundError) as err:
        raise _usage_error(err) from None
    try:
        _run_mode(mode, task, model_name, overrides)
    except (FileNotFoundError, ValueError) as err:
        # Both are raised for what the user asked for (a missing file, an unsupported export format, an
        # image size the model cannot take); their messages say what is accepted.
        raise _usage_error(err) from None
