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
from collections.abc import MutableMapping
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


# ----------------------------------------------------------------------------------------------
# User settings: upstream's settings.json in the user config folder
# ----------------------------------------------------------------------------------------------
SETTINGS_VERSION = "0.0.6"  # upstream 8.3.50's settings schema
# Folders the environment may redirect; a set variable wins over the file (this package's own addition).
SETTINGS_ENV = {
    "datasets_dir": "ULTRALYTICS_DATASETS_DIR",
    "weights_dir": "ULTRALYTICS_WEIGHTS_DIR",
    "runs_dir": "ULTRALYTICS_RUNS_DIR",
}
SETTINGS_HELP = "https://docs.ultralytics.com/quickstart/#ultralytics-settings"


def get_user_config_dir(sub_dir: str = "Ultralytics") -> Path:
    """The folder settings.json lives in: $YOLO_CONFIG_DIR, else the platform's user config folder.

    Nothing is created here; the folder is made when settings are first written.
    """
    chosen = os.getenv("YOLO_CONFIG_DIR")
    if chosen:
        return Path(chosen)
    if WINDOWS:
        base = Path.home() / "AppData" / "Roaming"
    elif MACOS:
        base = Path.home() / "Library" / "Application Support"
    else:
        base = Path.home() / ".config"
    return base / sub_dir


def _machine_uuid() -> str:
    """An anonymous machine id: the SHA-256 of the network node number, as upstream computes it."""
    import hashlib
    import uuid

    return hashlib.sha256(str(uuid.getnode()).encode()).hexdigest()


def settings_defaults() -> dict[str, Any]:
    """Upstream 8.3.50's settings and their defaults (folders relative to where the process runs)."""
    return {
        "settings_version": SETTINGS_VERSION,
        "datasets_dir": str(Path.cwd().resolve() / "datasets"),
        "weights_dir": "weights",
        "runs_dir": "runs",
        "uuid": _machine_uuid(),
        "sync": True,
        "api_key": "",
        "openai_api_key": "",
        **dict.fromkeys(("clearml", "comet", "dvc", "hub", "mlflow", "neptune", "raytune", "tensorboard"), True),
        "wandb": False,
        "vscode_msg": True,
    }


class UnknownSettingError(KeyError):
    """A settings key upstream's schema does not have; str() is the message itself, unquoted."""

    def __str__(self) -> str:
        return str(self.args[0])


class SettingsManager(MutableMapping):
    """`ultralytics.settings`: upstream's settings.json, read again whenever the file (or YOLO_CONFIG_DIR) changes.

    settings["runs_dir"] reads a value (a set ULTRALYTICS_RUNS_DIR, ULTRALYTICS_DATASETS_DIR or
    ULTRALYTICS_WEIGHTS_DIR wins over the file); settings.update(key=value) and settings.reset() write
    the file. Only upstream's keys exist, each with its default's type. Reading never writes: the file is
    created by the first update or reset, not on import.
    """

    def __init__(self, file: str | Path | None = None):
        self._chosen = Path(file) if file else None
        self._cache: tuple[Path, tuple, dict] | None = None  # (file, (mtime_ns, size), stored values)

    @property
    def file(self) -> Path:
        return self._chosen or get_user_config_dir() / "settings.json"

    def stored(self) -> dict[str, Any]:
        """The file's values over the defaults (what `yolo settings` prints; no environment overrides)."""
        file = self.file
        stat = file.stat() if file.is_file() else None
        stamp = (stat.st_mtime_ns, stat.st_size) if stat else ()
        if self._cache is None or self._cache[:2] != (file, stamp):
            self._cache = (file, stamp, self._read(file) if stat else settings_defaults())
        return dict(self._cache[2])

    def _read(self, file: Path) -> dict[str, Any]:
        import json

        values = settings_defaults()
        try:
            found = json.loads(file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            LOGGER.warning(f"WARNING ⚠️ settings file {file} is unreadable ({e}); using the defaults. {self._fix_hint()}")
            return values
        found = found if isinstance(found, dict) else {}
        wrong = sorted(k for k, v in found.items() if k not in values or type(v) is not type(values[k]))
        if wrong:
            LOGGER.warning(f"WARNING ⚠️ settings file {file}: ignoring {wrong} (unknown keys or wrong types). {self._fix_hint()}")
        values.update({k: v for k, v in found.items() if k not in wrong})
        return values

    def _fix_hint(self) -> str:
        return f"Set values with 'yolo settings key=value' or restore the defaults with 'yolo settings reset' ({SETTINGS_HELP})."

    def __getitem__(self, key: str) -> Any:
        env = SETTINGS_ENV.get(key)
        if env and os.getenv(env):
            return os.environ[env]
        values = self.stored()
        if key not in values:
            raise self._unknown(key)
        return values[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self.update({key: value})

    def __delitem__(self, key: str) -> None:
        raise TypeError(f"settings keys cannot be removed; set '{key}' to a new value or call settings.reset()")

    def __iter__(self) -> Iterator[str]:
        return iter(self.stored())

    def __len__(self) -> int:
        return len(self.stored())

    def check(self, changes: dict[str, Any]) -> dict[str, Any]:
        """`changes` as they would be stored (paths as text); raises for an unknown key or a value of the wrong type."""
        defaults = settings_defaults()
        checked = {}
        for key, value in changes.items():
            if key not in defaults:
                raise self._unknown(key)
            value = str(value) if isinstance(value, Path) and isinstance(defaults[key], str) else value
            if type(value) is not type(defaults[key]):
                kind = type(defaults[key]).__name__
                raise TypeError(f"setting '{key}' takes a {kind} value, got {value!r} ({type(value).__name__})")
            checked[key] = value
        return checked

    def update(self, other: dict | None = None, /, **kwargs: Any) -> None:
        """Check every given key and type, then write them all to the file at once."""
        self._write({**self.stored(), **self.check({**(other or {}), **kwargs})})

    def reset(self) -> None:
        """Write upstream's defaults to the file."""
        self._write(settings_defaults())

    def _write(self, values: dict[str, Any]) -> None:
        import json

        from ultralytics.nn.checkpoints import write_atomic

        self.file.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(self.file, json.dumps(values, indent=2).encode("utf-8"))
        self._cache = None

    def _unknown(self, key: str) -> UnknownSettingError:
        return UnknownSettingError(f"'{key}' is not an Ultralytics setting; the settings are {sorted(settings_defaults())}")

    def __str__(self) -> str:
        import json

        return f'JSONDict("{self.file}"):\n{json.dumps(self.stored(), indent=2)}'

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.file)!r})"

SETTINGS = settings = SettingsManager()
DATASETS_DIR = Path(SETTINGS["datasets_dir"])
WEIGHTS_DIR = Path(SETTINGS["weights_dir"])


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
