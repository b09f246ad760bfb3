"""Environment and argument checks: image sizes, versions, requirements, file look-up, AMP and system summaries.

Nothing here installs packages or downloads files: a missing requirement raises with the pip command to run, and a
file that is not on disk is searched for inside the package and otherwise reported as missing.
"""

from __future__ import annotations

import glob
import inspect
import math
import operator
import os
import platform
import re
import shutil
import socket
import subprocess
from copy import deepcopy
from importlib import metadata
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable, Iterable, Sequence

import torch

from ultralytics.utils import LINUX, LOGGER, MACOS, ROOT, WINDOWS, clean_url, colorstr

PYTHON_VERSION = platform.python_version()

# Weight files upstream publishes for RT-DETR; a bare stem such as 'rtdetr-l' means the .pt file of that name.
RTDETR_ASSET_STEMS = frozenset({"rtdetr-l", "rtdetr-x"})

# NVIDIA models whose FP16 paths are known to produce NaN losses or zero mAP (the list upstream keeps).
_AMP_BROKEN_MODELS = ("1660", "1650", "1630", "t400", "t550", "t600", "t1000", "t1200", "t2000", "k40m")
_AMP_BROKEN_GPUS = re.compile(rf"(nvidia|geforce|quadro|tesla).*?({'|'.join(_AMP_BROKEN_MODELS)})", re.IGNORECASE)

# Schemes that name remote files or streams rather than anything on disk.
_STREAM_SCHEMES = ("https://", "http://", "rtsp://", "rtmp://", "tcp://", "grpc://")

_COMPARISONS: dict[str, Callable[[tuple, tuple], bool]] = {
    "==": operator.eq,
    "!=": operator.ne,
    ">=": operator.ge,
    "<=": operator.le,
    ">": operator.gt,
    "<": operator.lt,
}


# ----------------------------------------------------------------------------------------------
# Versions and requirements
# ----------------------------------------------------------------------------------------------
def parse_version(version: str = "0.0.0") -> tuple[int, ...]:
    """First three integers of a version string: '2.0.1+cpu' -> (2, 0, 1), '1.13' -> (1, 13)."""
    return tuple(int(x) for x in re.findall(r"\d+", str(version))[:3])


def is_ascii(s: Any) -> bool:
    """True when ``str(s)`` holds only ASCII characters (fonts for non-ASCII labels need a Unicode font)."""
    return str(s).isascii()


def _installed_version(distribution: str) -> str | None:
    """The installed version of a pip distribution, or None when it is not installed."""
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def _marker_excludes_us(required: str) -> bool:
    """True when a 'sys_platform' marker in ``required`` names other platforms than this one."""
    if "sys_platform" not in required:
        return False
    names = {"win32"} if WINDOWS else {"linux"} if LINUX else {"macos", "darwin"} if MACOS else set()
    return bool(names) and not any(n in required for n in names)


def _same_length(a: tuple, b: tuple) -> tuple[tuple, tuple]:
    """Zero-pad the shorter version so that '2.1.0' compares equal to '2.1', as pip has it."""
    width = max(len(a), len(b))
    return a + (0,) * (width - len(a)), b + (0,) * (width - len(b))


def _clause_holds(have: tuple, clause: str, required: str) -> tuple[str, str, bool]:
    """(operator, version, satisfied) for one clause such as '>=1.2' (a bare version means '>=')."""
    parsed = re.match(r"\s*([^0-9\s]*)\s*([\d.]+)", clause)
    if parsed is None:
        raise ValueError(
            f"check_version: cannot read requirement clause '{clause}' in '{required}'; "
            "use pip style such as '>=1.2', '==2.0' or '>1.0,<2.0'"
        )
    op, version = parsed.group(1) or ">=", parsed.group(2)
    compare = _COMPARISONS.get(op)
    if compare is None:
        raise ValueError(f"check_version: unknown operator '{op}' in '{required}'; use ==, !=, >=, <=, > or <")
    return op, version, compare(*_same_length(have, parse_version(version)))


def check_version(
    current: str = "0.0.0",
    required: str = "0.0.0",
    name: str = "version",
    hard: bool = False,
    verbose: bool = False,
    msg: str = "",
) -> bool:
    """Whether ``current`` satisfies the pip-style ``required`` ('1.2', '>=1.2', '>1.0,<2.0', '==22.04', '!=3').

    ``current`` may also be a distribution name ('torch'), whose installed version is then looked up. A bare version
    in ``required`` means '>='. With ``hard`` an unmet requirement raises ModuleNotFoundError (so does a missing
    distribution); with ``verbose`` it is logged as a warning.
    """
    if not current:
        LOGGER.warning(f"WARNING ⚠️ check_version(current={current!r}, required={required!r}) has no current version")
        return True
    if not current[0].isdigit():
        name, current = current, _installed_version(current)
        if current is None:
            if hard:
                raise ModuleNotFoundError(f"'{name}' is required but not installed; run 'pip install {name}'")
            return False
    if not required or _marker_excludes_us(required):
        return True
    clauses = [_clause_holds(parse_version(current), c, required) for c in required.split(";")[0].strip(",").split(",")]
    if all(holds for _, _, holds in clauses):
        return True
    op, version, _ = clauses[-1]
    problem = f"WARNING ⚠️ {name}{op}{version} is required, but the installed {name} is {current} {msg}".rstrip()
    if hard:
        raise ModuleNotFoundError(problem)
    if verbose:
        LOGGER.warning(problem)
    return False


def check_python(minimum: str = "3.8.0", hard: bool = True, verbose: bool = False) -> bool:
    """Whether the running Python is at least ``minimum``."""
    return check_version(PYTHON_VERSION, minimum, "Python", hard, verbose)  # a bare version means >=


def parse_requirements(file_path: str | Path = ROOT.parent / "requirements.txt", package: str = "") -> list:
    """Requirements as SimpleNamespace(name, specifier), from an installed distribution's metadata or a file.

    With ``package`` the installed distribution's ``Requires-Dist`` entries are read (optional extras skipped);
    otherwise ``file_path`` is read as a requirements.txt (comments and blank lines skipped).
    """
    if package:
        lines = [x for x in (metadata.distribution(package).requires or []) if "extra ==" not in x]
    else:
        lines = Path(file_path).read_text().splitlines()
    found = []
    for line in lines:
        line = line.split("#")[0].split(";")[0].strip()
        match = re.match(r"([a-zA-Z0-9_.\-]+)\s*(\[[^\]]*\])?\s*([<>!=~]+.*)?", line)
        if match:
            found.append(SimpleNamespace(name=match.group(1), specifier=(match.group(3) or "").strip()))
    return found


def _requirement_strings(requirements, exclude: Iterable[str], prefix: str) -> list[str]:
    """One pip-style string per requirement; a Path is read as a requirements.txt (``exclude`` applies there)."""
    if isinstance(requirements, str):
        return [requirements]
    if not isinstance(requirements, Path):
        return list(requirements)
    listing = requirements.resolve()
    if not listing.exists():
        raise FileNotFoundError(f"{prefix} requirements file {listing} not found")
    return [f"{r.name}{r.specifier}" for r in parse_requirements(listing) if r.name not in exclude]


def _is_met(requirement: str, prefix: str) -> bool:
    """Whether one requirement ('onnx>=1.12', 'git+https://host/org/repo.git') is installed and new enough."""
    bare = requirement.split("/")[-1].replace(".git", "")  # a git URL names its package last
    parsed = re.match(r"([a-zA-Z0-9\-_.]+)(\[[^\]]*\])?([<>!=~]+.*)?", bare)
    if parsed is None:
        raise ValueError(f"{prefix} cannot read requirement '{requirement}'; use pip style such as 'onnx>=1.12.0'")
    installed = _installed_version(parsed.group(1))
    return installed is not None and check_version(installed, (parsed.group(3) or "").strip())


# The listing check_requirements() reads when called with no arguments. A checkout or wheel may not ship it;
# then there is nothing to check, which is not an error (an explicitly passed file that is missing still is).
_DEFAULT_REQUIREMENTS = ROOT.parent / "requirements.txt"


def check_requirements(
    requirements: str | Path | Sequence[str] = _DEFAULT_REQUIREMENTS,
    exclude: Iterable[str] = (),
    install: bool = True,
    cmds: str = "",
) -> bool:
    """Check that each requirement ('onnx>=1.12.0', a list of them, or a requirements.txt Path) is installed.

    Returns True when all are met. Otherwise raises ModuleNotFoundError listing what is missing or too old and the
    exact pip command to run. Called without arguments it reads the package's own requirements.txt; when the
    installation has none, it logs that there is nothing to check and returns True. A requirements file passed
    explicitly that does not exist raises FileNotFoundError. Unlike upstream this never installs anything:
    ``install`` and ``cmds`` are accepted for call compatibility, and ``cmds`` is appended to the suggested command.
    """
    prefix = colorstr("red", "bold", "requirements:")
    if requirements is _DEFAULT_REQUIREMENTS and not _DEFAULT_REQUIREMENTS.exists():
        LOGGER.info(f"{prefix} no {_DEFAULT_REQUIREMENTS} in this installation, nothing to check")
        return True
    unmet = [r for r in _requirement_strings(requirements, exclude, prefix) if not _is_met(r, prefix)]
    if not unmet:
        return True
    command = " ".join(["pip install", *(f'"{r}"' for r in unmet), cmds]).strip()
    plural = "s" if len(unmet) > 1 else ""
    raise ModuleNotFoundError(
        f"{prefix} {len(unmet)} requirement{plural} not met: {unmet}. "
        f"This package does not install anything by itself; run:\n    {command}"
    )


def check_pip_update_available() -> bool:
    """Always False: this package never contacts PyPI to look for newer releases."""
    return False


# ----------------------------------------------------------------------------------------------
# Arguments
# ----------------------------------------------------------------------------------------------
_IMGSZ_HINT = (
    "'train' and 'val' take a single integer imgsz; 'predict' and 'export' also accept [h, w], "
    "e.g. 'yolo export imgsz=640,480' or 'yolo export imgsz=640'"
)


def _imgsz_values(imgsz) -> list:
    """The sizes in an imgsz argument: 640, [640, 480], (640, 480), '640', '[640,480]' or '640,480'."""
    if isinstance(imgsz, bool):
        raise TypeError(f"'imgsz={imgsz}' is a bool; use an int such as imgsz=640 or a list such as imgsz=[640,480]")
    if isinstance(imgsz, int):
        return [imgsz]
    if isinstance(imgsz, (list, tuple)):
        return list(imgsz)
    if not isinstance(imgsz, str):
        raise TypeError(
            f"'imgsz={imgsz}' has type {type(imgsz).__name__}; imgsz takes an int (imgsz=640), "
            "a list (imgsz=[640,640]) or a string of them (imgsz=640,480)"
        )
    tokens = [t for t in re.split(r"[\s,\[\]()]+", imgsz) if t]
    if not tokens or not all(t.isdigit() for t in tokens):
        raise ValueError(f"'imgsz={imgsz}' is not a valid image size; use e.g. imgsz=640 or imgsz=[640,480]")
    return [int(t) for t in tokens]


def check_imgsz(
    imgsz: int | str | Sequence[int],
    stride: int | torch.Tensor = 32,
    min_dim: int = 1,
    max_dim: int = 2,
    floor: int = 0,
) -> int | list[int]:
    """Round an image size up to a multiple of ``stride`` (warning when it changes) and shape it as requested.

    ``imgsz`` may be an int, a list/tuple, or a string such as '640' or '[640,480]' / '640,480'. Sizes below
    ``floor`` become ``floor``. With ``max_dim=1`` a list is reduced to its largest side (with a warning); a list
    longer than ``max_dim`` otherwise raises. Returns an int when ``min_dim == 1`` and a single size was given,
    ``[s, s]`` when ``min_dim == 2`` and a single size was given, and the list otherwise.
    """
    step = int(stride.max()) if isinstance(stride, torch.Tensor) else int(stride)
    sizes = _imgsz_values(imgsz)
    positive = sizes and all(isinstance(x, (int, float)) and not isinstance(x, bool) and x > 0 for x in sizes)
    if not positive:
        raise ValueError(f"'imgsz={imgsz}' must hold positive numbers, e.g. imgsz=640 or imgsz=[640,480]")
    if len(sizes) > max_dim:
        if max_dim != 1:
            raise ValueError(f"imgsz={imgsz} is not a valid image size. {_IMGSZ_HINT}")
        LOGGER.warning(f"WARNING ⚠️ updating to 'imgsz={max(sizes)}'. {_IMGSZ_HINT}")
        sizes = [max(sizes)]
    rounded = [max(math.ceil(x / step) * step, floor) for x in sizes]
    if rounded != sizes:
        LOGGER.warning(f"WARNING ⚠️ imgsz={sizes} is not a multiple of the max stride {step}; using {rounded}")
    if len(rounded) > 1 or min_dim not in {1, 2}:
        return rounded
    return rounded * 2 if min_dim == 2 else rounded[0]


def print_args(args: dict | None = None, show_file: bool = True, show_func: bool = False) -> None:
    """Log ``key=value`` pairs of ``args``, or of the calling function's own arguments when ``args`` is None."""
    caller = inspect.currentframe().f_back
    file, _, func, _, _ = inspect.getframeinfo(caller)
    if args is None:
        names, _, _, frame_locals = inspect.getargvalues(caller)
        args = {k: v for k, v in frame_locals.items() if k in names}
    try:
        where = Path(file).resolve().relative_to(ROOT).with_suffix("")
    except ValueError:
        where = Path(file).stem
    head = (f"{where}: " if show_file else "") + (f"{func}: " if show_func else "")

    def shorten(v: Any) -> Any:
        # Long URLs may carry tokens; print them without query strings.
        return clean_url(v) if isinstance(v, str) and v.startswith("http") and len(v) > 100 else v

    LOGGER.info(colorstr(head) + ", ".join(f"{k}={shorten(v)}" for k, v in args.items()))


# ----------------------------------------------------------------------------------------------
# Files
# ----------------------------------------------------------------------------------------------
def check_suffix(
    file: str | Path | Sequence[str | Path] = "yolo11n.pt",
    suffix: str | Sequence[str] = ".pt",
    msg: str = "",
) -> None:
    """Raise ValueError unless every file in ``file`` ends in one of ``suffix`` (files without a suffix pass)."""
    if not file or not suffix:
        return
    allowed = tuple(suffix) if not isinstance(suffix, str) else (suffix,)
    names = list(file) if isinstance(file, (list, tuple)) else [file]
    for name in names:
        ending = Path(name).suffix.lower().strip()
        if ending and ending not in allowed:
            raise ValueError(f"{msg}{name} acceptable suffix is {allowed}, not {ending}")


def check_model_file_from_stem(model: str | Path = "rtdetr-l") -> str | Path:
    """Turn a bare published-weights stem into its file name ('rtdetr-l' -> 'rtdetr-l.pt'); anything else unchanged."""
    bare = Path(model) if model else None
    if bare is None or bare.suffix or bare.stem not in RTDETR_ASSET_STEMS:
        return model
    return bare.parent / f"{bare.stem}.pt"


def check_file(
    file: str | Path,
    suffix: str | Sequence[str] = "",
    download: bool = True,
    download_dir: str | Path = ".",
    hard: bool = True,
) -> str:
    """Return a usable path for ``file``: the path itself if it exists, else a match found inside the package.

    A name that is not an existing path is searched for recursively under the package folder (``ROOT``: model
    yamls under cfg/models/**, dataset yamls under cfg/datasets, assets) and then directly in the folder above it.
    Nothing is downloaded: a URL raises FileNotFoundError asking for a local copy (``download`` and
    ``download_dir`` exist only for call compatibility). With ``hard`` a missing file raises FileNotFoundError
    naming the file and the folders searched, and several matches raise listing them; otherwise '' is returned.
    """
    check_suffix(file, suffix)
    name = str(file).strip()
    if not name or ("://" not in name and Path(name).exists()):
        return name
    if name.lower().startswith(_STREAM_SCHEMES):
        return _missing(hard, f"'{clean_url(name)}' is a URL, and this package never downloads files; "
                        "download it yourself and pass the local path")
    if Path(name).is_absolute() or ".." in Path(name).parts:
        # An explicit location outside the package: searching for it elsewhere would only surprise.
        return _missing(hard, f"'{name}' does not exist (resolved to {Path(name).resolve()})")
    candidates = _package_matches(name)
    if len(candidates) == 1 or (candidates and not hard):
        return candidates[0]
    if candidates:
        raise FileNotFoundError(f"Multiple files match '{name}', specify exact path: {candidates}")
    return _missing(
        hard,
        f"'{name}' does not exist: it is not a path relative to the working directory {Path.cwd()}, "
        f"and no file of that name was found under {ROOT} (searched recursively, e.g. cfg/models/**, "
        f"cfg/datasets) or in {ROOT.parent}. Pass an existing path or a name shipped with the package.",
    )


def _missing(hard: bool, message: str) -> str:
    """check_file's answer for a file it cannot find: raise when ``hard``, else ''."""
    if hard:
        raise FileNotFoundError(message)
    return ""


def _package_matches(name: str) -> list[str]:
    """Files called ``name`` anywhere under the package, else directly in the folder above it."""
    pattern = glob.escape(name)
    inside = {str(p) for p in ROOT.rglob(pattern) if "__pycache__" not in p.parts}
    return sorted(inside) or sorted(str(p) for p in ROOT.parent.glob(pattern))


def check_yaml(file: str | Path, suffix: str | Sequence[str] = (".yaml", ".yml"), hard: bool = True) -> str:
    """check_file for yaml files: the suffix must be .yaml or .yml (a name without suffix is searched as given)."""
    return check_file(file, suffix=suffix, download=False, hard=hard)


def check_is_path_safe(basedir: str | Path, path: str | Path) -> bool:
    """True when ``path`` exists and resolves inside ``basedir`` (guards against '../' traversal)."""
    base = Path(basedir).resolve()
    target = Path(path).resolve()
    return target.exists() and target.parts[: len(base.parts)] == base.parts


def check_font(font: str = "Arial.ttf") -> Path:
    """Path of a TrueType font for drawing labels, found locally: never downloaded.

    ``font`` is returned if it is an existing path; otherwise a system font with that file name is looked up through
    matplotlib's font list, and failing that matplotlib's bundled DejaVuSans.ttf (which also covers non-ASCII
    labels) is returned.
    """
    if Path(font).exists():
        return Path(font)
    from matplotlib import font_manager

    name = Path(font).name.lower()
    for candidate in font_manager.findSystemFonts():
        if Path(candidate).name.lower() == name:
            return Path(candidate)
    return Path(font_manager.findfont("DejaVu Sans"))


def check_imshow(warn: bool = False) -> bool:
    """Whether OpenCV can open a window here (False on headless builds and on Linux without $DISPLAY)."""
    import cv2
    import numpy as np

    reason = ""
    if LINUX and "DISPLAY" not in os.environ:
        reason = "the DISPLAY environment variable isn't set"
    else:
        try:
            cv2.imshow("ultralytics-display-probe", np.zeros((8, 8, 3), dtype=np.uint8))
            cv2.waitKey(1)
            cv2.destroyAllWindows()
            cv2.waitKey(1)
        except cv2.error as e:
            reason = str(e).strip().splitlines()[-1]
    if reason and warn:
        LOGGER.warning(f"WARNING ⚠️ Environment does not support cv2.imshow() or PIL Image.show(): {reason}")
    return not reason


# ----------------------------------------------------------------------------------------------
# Hardware and environment
# ----------------------------------------------------------------------------------------------
def cuda_device_count() -> int:
    """Number of NVIDIA GPUs that nvidia-smi reports (0 when it is absent or fails)."""
    try:
        out = subprocess.check_output(
            ["nvidia-smi", "--query-gpu=count", "--format=csv,noheader,nounits"], encoding="utf-8", timeout=10
        )
        return int(out.strip().split("\n")[0])
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, FileNotFoundError, PermissionError, ValueError):
        return 0


def cuda_is_available() -> bool:
    """Whether nvidia-smi sees at least one GPU (does not initialise CUDA in this process)."""
    return cuda_device_count() > 0


def is_online(host: str = "1.1.1.1", port: int = 80, timeout: float = 2.0) -> bool:
    """Whether a TCP connection to ``host:port`` opens within ``timeout`` seconds.

    Returns False without touching the network when the environment variable YOLO_OFFLINE is 'true'. Nothing in this
    package needs the network; this is informational only.
    """
    if os.getenv("YOLO_OFFLINE", "").lower() == "true":
        return False
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def git_describe(path: str | Path = ROOT) -> str:
    """`git describe --tags --long --always` for the repository holding ``path``, or '' outside a git checkout."""
    try:
        return subprocess.check_output(
            ["git", "-C", str(path), "describe", "--tags", "--long", "--always"],
            stderr=subprocess.DEVNULL,
            timeout=10,
        ).decode().strip()
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, FileNotFoundError, PermissionError):
        return ""


def _cpu_name() -> str:
    """Human-readable CPU model, read from /proc/cpuinfo on Linux and from the platform module elsewhere."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text(errors="ignore").splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine() or "unknown"


def _install_kind() -> str:
    """'git' for a source checkout (editable or not), 'pip' for an installed wheel, else 'other'."""
    if (ROOT.parent / ".git").exists():
        return "git"
    if "site-packages" in ROOT.parts or "dist-packages" in ROOT.parts:
        return "pip"
    return "other"


_GIB = 1 << 30


def _disk_text() -> str:
    """'used/total GB' of the root filesystem."""
    usage = shutil.disk_usage("/")
    return f"{(usage.total - usage.free) / _GIB:.1f}/{usage.total / _GIB:.1f} GB"


def _ram_gb() -> float:
    import psutil

    return psutil.virtual_memory().total / _GIB


def check_yolo(verbose: bool = True, device: str = "") -> None:
    """Log the one-line hardware summary 'Setup complete ✅ (N CPUs, R GB RAM, U/T GB disk)' after the device line."""
    from ultralytics.utils.torch_utils import select_device

    summary = f"({os.cpu_count()} CPUs, {_ram_gb():.1f} GB RAM, {_disk_text()} disk)" if verbose else ""
    select_device(device, newline=False)
    LOGGER.info(f"Setup complete ✅ {summary}")


def _system_rows() -> dict:
    """The host part of `yolo checks`: OS, Python, install kind, memory, disk, CPU and GPU."""
    gpu_count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    return {
        "OS": platform.platform(),
        "Environment": platform.system(),
        "Python": PYTHON_VERSION,
        "Install": _install_kind(),
        "RAM": f"{_ram_gb():.2f} GB",
        "Disk": _disk_text(),
        "CPU": _cpu_name(),
        "CPU count": os.cpu_count(),
        "GPU": torch.cuda.get_device_name(0) if gpu_count else None,
        "GPU count": gpu_count or None,
        "CUDA": torch.version.cuda if gpu_count else None,
    }


def _requirement_rows() -> dict[str, str]:
    """'✅ installed-version specifier' (or ❌) for each requirement of the installed ultralytics distribution."""
    try:
        requirements = parse_requirements(package="ultralytics")
    except metadata.PackageNotFoundError:
        LOGGER.warning("WARNING ⚠️ the ultralytics distribution is not installed; skipping the requirements table")
        return {}
    rows = {}
    for req in requirements:
        installed = _installed_version(req.name)
        ok = installed is not None and check_version(installed, req.specifier, name=req.name)
        rows[req.name] = f"{'✅' if ok else '❌'} {installed or '(not installed)'}{req.specifier}"
        LOGGER.info(f"{req.name:<20}{rows[req.name]}")
    return rows


def collect_system_info() -> dict:
    """Log and return what `yolo checks` reports: OS, Python, hardware, CUDA, and the installed requirements."""
    check_yolo()
    info = _system_rows()
    LOGGER.info("\n" + "\n".join(f"{k:<20}{v}" for k, v in info.items()) + "\n")
    info["Package Info"] = _requirement_rows()
    return info


def _first_tensor(output: Any) -> torch.Tensor | None:
    """The first tensor in a (possibly nested) model output, e.g. y from RT-DETR's eval output (y, x)."""
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, (list, tuple)):
        for item in output:
            found = _first_tensor(item)
            if found is not None:
                return found
    if isinstance(output, dict):
        return _first_tensor(list(output.values()))
    return None


def _probe_image(device: torch.device) -> torch.Tensor:
    """A fixed, smooth (1, 3, 256, 256) gradient image: deterministic and not degenerate like zeros."""
    ramp = torch.linspace(0, 1, 256, device=device)
    grey = torch.full((256, 256), 0.5, device=device)
    return torch.stack([ramp[None, :].expand(256, 256), ramp[:, None].expand(256, 256), grey])[None]


def _agree(full: torch.Tensor | None, half: torch.Tensor | None) -> bool:
    """FP32 and autocast outputs agree: both present, same shape, finite, within 0.5 absolute."""
    if full is None or half is None or full.shape != half.shape:
        return False
    return bool(torch.isfinite(half).all()) and torch.allclose(full.float(), half.float(), atol=0.5)


def check_amp(model: torch.nn.Module) -> bool:
    """Whether mixed-precision training is safe for ``model`` on its device.

    False on CPU and MPS (AMP is only used on CUDA) and on GPUs known to break FP16. Otherwise a copy of the model in
    eval mode runs one fixed 256x256 image in FP32 and under autocast: AMP passes when both outputs are finite, have
    the same shape and agree within 0.5 absolute (the tolerance upstream uses for its box check). Upstream runs a
    downloaded YOLO11n for this; this package never downloads, so the model itself is used.
    """
    tag = colorstr("AMP: ")
    device = next(model.parameters()).device
    if device.type != "cuda":
        return False
    gpu = torch.cuda.get_device_name(device)
    if _AMP_BROKEN_GPUS.search(gpu):
        LOGGER.warning(f"{tag}off ❌: {gpu} is known to give NaN losses or zero mAP with FP16; training in FP32.")
        return False
    LOGGER.info(f"{tag}comparing FP32 and mixed-precision outputs of the model...")
    probe, image = deepcopy(model).eval(), _probe_image(device)
    with torch.no_grad():
        full = _first_tensor(probe(image))
        with torch.autocast("cuda", enabled=True):
            half = _first_tensor(probe(image))
    passed = _agree(full, half)
    if passed:
        LOGGER.info(f"{tag}checks passed ✅")
    else:
        LOGGER.warning(f"{tag}off ❌: FP16 outputs differ from FP32 here (risk of NaN losses); training in FP32.")
    return passed
