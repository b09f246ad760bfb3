"""Process-wide constants, logging, yaml helpers and the default configuration.

Everything here is imported by nearly every other module, so it depends only on the
standard library, numpy, torch, tqdm and pyyaml.
"""

from __future__ import annotations

import logging
import os
import platform
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Iterator

import numpy as np
import torch
import yaml
from tqdm import tqdm as _tqdm


def _env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


# Distributed ranks as set by torch.distributed.run; -1 means "not distributed".
RANK = _env_int("RANK", -1)
LOCAL_RANK = _env_int("LOCAL_RANK", -1)

FILE = Path(__file__).resolve()
ROOT = FILE.parent.parent  # the ultralytics/ package folder
ASSETS = ROOT / "assets"
DEFAULT_CFG_PATH = ROOT / "cfg" / "default.yaml"
# Threads for CPU work: one core is left free for data loading and the OS, as upstream does.
NUM_THREADS = min(8, max(1, (os.cpu_count() or 1) - 1))
# Logging and progress bars are on unless YOLO_VERBOSE is set to anything but "true".
VERBOSE = os.environ.get("YOLO_VERBOSE", "true").lower() == "true"
MACOS, LINUX, WINDOWS = (platform.system() == x for x in ("Darwin", "Linux", "Windows"))
TQDM_BAR_FORMAT = "{l_bar}{bar:10}{r_bar}"

# Wide console printing of arrays and tensors (long rows stay on one line).
_PRINT_WIDTH = 320
torch.set_printoptions(precision=4, linewidth=_PRINT_WIDTH, profile="default")
np.set_printoptions(formatter={"float_kind": "{:11.5g}".format}, linewidth=_PRINT_WIDTH)


def _make_logger(name: str = "ultralytics") -> logging.Logger:
    """Build the package logger: plain messages to stdout, silent on non-zero DDP ranks."""
    level = logging.INFO if VERBOSE and RANK in {-1, 0} else logging.ERROR
    log = logging.getLogger(name)
    log.setLevel(level)
    if not log.handlers:
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(logging.Formatter("%(message)s"))
        log.addHandler(handler)
    log.propagate = False
    return log


LOGGER = _make_logger()


def _main_process() -> bool:
    return RANK in {-1, 0}


class TQDM(_tqdm):
    """tqdm with the package's bar format, disabled when not verbose or on non-zero ranks."""

    def __init__(self, *args, **kwargs):
        silenced = kwargs.get("disable", False) or not VERBOSE or not _main_process()
        kwargs["disable"] = silenced
        kwargs.setdefault("bar_format", TQDM_BAR_FORMAT)
        super().__init__(*args, **kwargs)


class IterableSimpleNamespace(SimpleNamespace):
    """A SimpleNamespace that iterates like a dict and names the missing key on a typo."""

    def __iter__(self) -> Iterator[tuple[str, Any]]:
        yield from vars(self).items()

    def __str__(self) -> str:
        return "\n".join(f"{key}={value}" for key, value in self)

    def __getattr__(self, attr: str):
        raise AttributeError(
            f"'{type(self).__name__}' has no attribute '{attr}'. The valid keys are those of "
            f"{DEFAULT_CFG_PATH} plus any passed explicitly."
        )

    def get(self, key: str, default: Any = None) -> Any:
        """The value of `key`, or `default` when the namespace has no such key."""
        return vars(self).get(key, default)


# ANSI escape codes: the eight base colours (30-37), their bright variants (91-97) and text styles.
_BASE_COLOURS = ("black", "red", "green", "yellow", "blue", "magenta", "cyan", "white")
_COLOURS = {name: f"\033[{30 + k}m" for k, name in enumerate(_BASE_COLOURS)}
_COLOURS.update({f"bright_{name}": f"\033[{90 + k}m" for k, name in enumerate(_BASE_COLOURS) if k})
_COLOURS.update(end="\033[0m", bold="\033[1m", underline="\033[4m")


def colorstr(*parts: str) -> str:
    """Wrap the last argument in ANSI codes named by the others (default: blue, bold).

    colorstr("train:") -> blue bold text; colorstr("red", "bold", "oops") -> red bold text.
    """
    *styles, text = parts if len(parts) > 1 else ("blue", "bold", parts[0])
    return "".join(_COLOURS[s] for s in styles) + f"{text}" + _COLOURS["end"]


def yaml_load(file: str | Path, append_filename: bool = False) -> dict:
    """Read a yaml file into a dict; with append_filename the dict also gets 'yaml_file'."""
    path = Path(file)
    if path.suffix not in {".yaml", ".yml"}:
        raise ValueError(f"yaml_load expects a .yaml or .yml file, got '{file}'")
    data = yaml.safe_load(path.read_text(errors="ignore", encoding="utf-8")) or {}
    return {**data, "yaml_file": str(file)} if append_filename else data


def yaml_save(file: str | Path, data: dict) -> None:
    """Write a dict to yaml, turning Paths into strings so the file stays portable."""
    path = Path(file)
    path.parent.mkdir(parents=True, exist_ok=True)
    clean = {k: str(v) if isinstance(v, Path) else v for k, v in data.items()}
    with open(path, "w", encoding="utf-8") as f:
        yaml.safe_dump(clean, f, sort_keys=False, allow_unicode=True)


def yaml_print(file: str | Path | dict) -> None:
    """Log a yaml file or dict as yaml text."""
    data = yaml_load(file) if isinstance(file, (str, Path)) else file
    LOGGER.info(yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=float("inf")))


def _default_cfg() -> dict:
    """cfg/default.yaml with the string 'none' (any case) read as None, as the CLI writes it."""
    raw = yaml_load(DEFAULT_CFG_PATH)
    return {k: None if isinstance(v, str) and v.lower() == "none" else v for k, v in raw.items()}


DEFAULT_CFG_DICT = _default_cfg()
DEFAULT_CFG_KEYS = DEFAULT_CFG_DICT.keys()
DEFAULT_CFG = IterableSimpleNamespace(**DEFAULT_CFG_DICT)


def _settings() -> dict[str, Path]:
    """Where datasets, weights and runs live; each may be redirected by an environment variable."""
    return {
        "datasets_dir": Path(os.getenv("ULTRALYTICS_DATASETS_DIR", Path.cwd() / "datasets")),
        "weights_dir": Path(os.getenv("ULTRALYTICS_WEIGHTS_DIR", Path.cwd() / "weights")),
        "runs_dir": Path(os.getenv("ULTRALYTICS_RUNS_DIR", Path.cwd() / "runs")),
    }


SETTINGS = _settings()
DATASETS_DIR = SETTINGS["datasets_dir"]
WEIGHTS_DIR = SETTINGS["weights_dir"]


def is_dir_writeable(path: str | Path) -> bool:
    """True when files can be created in the folder."""
    return os.access(str(path), os.W_OK)


def clean_url(url: str) -> str:
    """Strip query strings and credentials from a URL-like string for display."""
    return str(Path(url).as_posix().replace(":/", "://")).split("?")[0]


def is_github_action_running() -> bool:
    """True inside a GitHub Actions job, which sets all three of these variables."""
    return all(key in os.environ for key in ("GITHUB_ACTIONS", "GITHUB_WORKFLOW", "RUNNER_OS"))


def _git_output(*git_args: str) -> str | None:
    """stdout of `git <git_args>` run in the package folder, or None without git or outside a checkout."""
    try:
        out = subprocess.check_output(["git", "-C", str(ROOT), *git_args], stderr=subprocess.DEVNULL, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.decode().strip() or None


def get_git_origin_url() -> str | None:
    """The `origin` remote of the checkout holding this package (None when it is not a git checkout)."""
    return _git_output("config", "--get", "remote.origin.url")


def get_git_branch() -> str | None:
    """The branch checked out where this package lives (None when it is not a git checkout)."""
    return _git_output("rev-parse", "--abbrev-ref", "HEAD")


_ONLINE: list[bool] = []  # filled on first access of ONLINE


def __getattr__(name: str):
    # ONLINE probes the network, so it is worked out when first read rather than on every import.
    if name == "ONLINE":
        if not _ONLINE:
            from ultralytics.utils.checks import is_online

            _ONLINE.append(is_online())
        return _ONLINE[0]
    raise AttributeError(f"module 'ultralytics.utils' has no attribute '{name}'")
