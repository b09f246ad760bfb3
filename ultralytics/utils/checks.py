"""Environment and argument checks: image sizes, versions, requirements, file look-up, AMP and system summaries.

Nothing here installs packages or downloads files: a missing requirement raises with the pip command to run, and a
file that is not on disk is searched for inside the package and otherwise reported as missing.
"""

from __future__ import annotations

import glob
import inspect
import math
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
from typing import Any, Iterable, Sequence

import torch

from ultralytics.utils import LINUX, LOGGER, MACOS, ROOT, WINDOWS, clean_url, colorstr

PYTHON_VERSION = platform.python_version()

# Weight files upstream publishes for RT-DETR; a bare stem such as 'rtdetr-l' means the .pt file of that name.
RTDETR_ASSET_STEMS = frozenset({"rtdetr-l", "rtdetr-x"})

# GPUs whose FP16 paths are known to produce NaN losses or zero mAP (same list upstream keeps).
_AMP_BROKEN_GPUS = re.compile(
    r"(nvidia|geforce|quadro|tesla).*?(1660|1650|1630|t400|t550|t600|t1000|t1200|t2000|k40m)", re.IGNORECASE
)


# ----------------------------------------------------------------------------------------------
# Versions and requirements
# ----------------------------------------------------------------------------------------------
def parse_version(version: str = "0.0.0") -> tuple[int, ...]:
    """First three integers of a version string: '2.0.1+cpu' -> (2, 0, 1), '1.13' -> (1, 13)."""
    return tuple(int(x) for x in re.findall(r"\d+", str(version))[:3])


def is_ascii(s: Any) -> bool:
    """True when ``str(s)`` holds only ASCII characters (fonts for non-ASCII labels need a Unicode font)."""
    return all(ord(c) < 128 for c in str(s))


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
        name = current
        try:
            current = metadata.version(name)
        except metadata.PackageNotFoundError as e:
            if hard:
                raise ModuleNotFoundError(f"'{name}' is required but not installed; run 'pip install {name}'") from e
            return False
    if not required:
        return True
    if "sys_platform" in required:
        # An environment marker that excludes this platform makes the requirement vacuous here.
        if (WINDOWS and "win32" not in required) or (LINUX and "linux" not in required) or (
            MACOS and "macos" not in required and "darwin" not in required
        ):
            return True
        required = required.split(";")[0]

    have = parse_version(current)
    ok = True
    op, version = "", ""
    for clause in required.strip(",").split(","):
        match = re.match(r"\s*([^0-9\s]*)\s*([\d.]+)", clause)
        if match is None:
            raise ValueError(
                f"check_version: cannot read requirement clause '{clause}' in '{required}'; "
                "use pip style such as '>=1.2', '==2.0' or '>1.0,<2.0'"
            )
        op, version = match.group(1) or ">=", match.group(2)
        want = parse_version(version)
        # Compare equal lengths so that '2.1.0' satisfies '<=2.1' as pip would have it.
        width = max(len(have), len(want))
        have, want = have + (0,) * (width - len(have)), want + (0,) * (width - len(want))
        holds = {
            "==": have == want,
            "!=": have != want,
            ">=": have >= want,
            "<=": have <= want,
            ">": have > want,
            "<": have < want,
        }.get(op)
        if holds is None:
            raise ValueError(f"check_version: unknown operator '{op}' in '{required}'; use ==, !=, >=, <=, > or <")
        ok = ok and holds
    if not ok:
        warning = f"WARNING ⚠️ {name}{op}{version} is required, but {name}=={current} is currently installed {msg}"
        if hard:
            raise ModuleNotFoundError(warning)
        if verbose:
            LOGGER.warning(warning)
    return ok


def check_python(minimum: str = "3.8.0", hard: bool = True, verbose: bool = False) -> bool:
    """Whether the running Python is at least ``minimum``."""
    return check_version(PYTHON_VERSION, minimum, name="Python", hard=hard, verbose=verbose)


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


def check_requirements(
    requirements: str | Path | Sequence[str] = ROOT.parent / "requirements.txt",
    exclude: Iterable[str] = (),
    install: bool = True,
    cmds: str = "",
) -> bool:
    """Check that each requirement ('onnx>=1.12.0', a list of them, or a requirements.txt Path) is installed.

    Returns True when all are met. Otherwise raises ModuleNotFoundError listing what is missing or too old and the
    exact pip command to run. Unlike upstream this never installs anything: ``install`` and ``cmds`` are accepted
    for call compatibility, and ``cmds`` is appended to the suggested command.
    """
    prefix = colorstr("red", "bold", "requirements:")
    if isinstance(requirements, Path):
        file = requirements.resolve()
        if not file.exists():
            raise FileNotFoundError(f"{prefix} requirements file {file} not found")
        requirements = [f"{r.name}{r.specifier}" for r in parse_requirements(file) if r.name not in exclude]
    elif isinstance(requirements, str):
        requirements = [requirements]

    unmet = []
    for req in requirements:
        stripped = req.split("/")[-1].replace(".git", "")  # git+https://host/org/repo.git -> repo
        match = re.match(r"([a-zA-Z0-9\-_.]+)(\[[^\]]*\])?([<>!=~]+.*)?", stripped)
        if match is None:
            raise ValueError(f"{prefix} cannot read requirement '{req}'; use pip style such as 'onnx>=1.12.0'")
        name, required = match.group(1), (match.group(3) or "").strip()
        try:
            if not check_version(metadata.version(name), required):
                unmet.append(req)
        except metadata.PackageNotFoundError:
            unmet.append(req)
    if unmet:
        packages = " ".join(f'"{x}"' for x in unmet)
        command = f"pip install {packages} {cmds}".strip()
        raise ModuleNotFoundError(
            f"{prefix} {len(unmet)} requirement{'s' * (len(unmet) > 1)} not met: {unmet}. "
            f"This package does not install anything by itself; run:\n    {command}"
        )
    return True


def check_pip_update_available() -> bool:
    """Always False: this package never contacts PyPI to look for newer releases."""
    return False


# ----------------------------------------------------------------------------------------------
# Arguments
# ----------------------------------------------------------------------------------------------
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
    stride = int(stride.max() if isinstance(stride, torch.Tensor) else stride)
    if isinstance(imgsz, bool):
        raise TypeError(f"'imgsz={imgsz}' is a bool; use an int such as imgsz=640 or a list such as imgsz=[640,480]")
    if isinstance(imgsz, int):
        sizes = [imgsz]
    elif isinstance(imgsz, (list, tuple)):
        sizes = list(imgsz)
    elif isinstance(imgsz, str):
        parts = [p for p in re.split(r"[\s,\[\]()]+", imgsz) if p]
        if not parts or not all(p.isdigit() for p in parts):
            raise ValueError(f"'imgsz={imgsz}' is not a valid image size; use e.g. imgsz=640 or imgsz=[640,480]")
        sizes = [int(p) for p in parts]
    else:
        raise TypeError(
            f"'imgsz={imgsz}' is of invalid type {type(imgsz).__name__}. "
            "Valid imgsz types are int i.e. 'imgsz=640' or list i.e. 'imgsz=[640,640]'"
        )
    if not sizes or not all(isinstance(x, (int, float)) and not isinstance(x, bool) and x > 0 for x in sizes):
        raise ValueError(f"'imgsz={imgsz}' must hold positive numbers, e.g. imgsz=640 or imgsz=[640,480]")

    if len(sizes) > max_dim:
        hint = (
            "'train' and 'val' imgsz must be an integer, while 'predict' and 'export' imgsz may be a [h, w] list "
            "or an integer, i.e. 'yolo export imgsz=640,480' or 'yolo export imgsz=640'"
        )
        if max_dim != 1:
            raise ValueError(f"imgsz={imgsz} is not a valid image size. {hint}")
        LOGGER.warning(f"WARNING ⚠️ updating to 'imgsz={max(sizes)}'. {hint}")
        sizes = [max(sizes)]

    rounded = [max(math.ceil(x / stride) * stride, floor) for x in sizes]
    if rounded != sizes:
        LOGGER.warning(f"WARNING ⚠️ imgsz={sizes} must be multiple of max stride {stride}, updating to {rounded}")

    if len(rounded) == 1:
        if min_dim == 2:
            return [rounded[0], rounded[0]]
        if min_dim == 1:
            return rounded[0]
    return rounded


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
    allowed = (suffix,) if isinstance(suffix, str) else tuple(suffix)
    for f in file if isinstance(file, (list, tuple)) else [file]:
        s = Path(f).suffix.lower().strip()
        if s and s not in allowed:
            raise ValueError(f"{msg}{f} acceptable suffix is {allowed}, not {s}")


def check_model_file_from_stem(model: str | Path = "rtdetr-l") -> str | Path:
    """Turn a bare published-weights stem into its file name ('rtdetr-l' -> 'rtdetr-l.pt'); anything else unchanged."""
    if model and not Path(model).suffix and Path(model).stem in RTDETR_ASSET_STEMS:
        return Path(model).with_suffix(".pt")
    return model


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
    file = str(file).strip()
    if not file or ("://" not in file and Path(file).exists()):
        return file
    if file.lower().startswith(("https://", "http://", "rtsp://", "rtmp://", "tcp://", "grpc://")):
        if hard:
            raise FileNotFoundError(
                f"'{clean_url(file)}' is a URL, and this package never downloads files; "
                "download it yourself and pass the local path"
            )
        return ""
    if Path(file).is_absolute() or ".." in Path(file).parts:
        # An explicit location outside the package: searching for it elsewhere would only surprise.
        if hard:
            raise FileNotFoundError(f"'{file}' does not exist (resolved to {Path(file).resolve()})")
        return ""
    root, parent = ROOT, ROOT.parent
    pattern = glob.escape(file)
    matches = sorted(
        {str(p) for p in root.rglob(pattern) if "__pycache__" not in p.parts}
    ) or sorted(str(p) for p in parent.glob(pattern))
    if len(matches) == 1:
        return matches[0]
    if hard:
        if not matches:
            raise FileNotFoundError(
                f"'{file}' does not exist: it is not a path relative to the working directory {Path.cwd()}, "
                f"and no file of that name was found under {root} (searched recursively, e.g. cfg/models/**, "
                f"cfg/datasets) or in {parent}. Pass an existing path or a name shipped with the package."
            )
        raise FileNotFoundError(f"Multiple files match '{file}', specify exact path: {matches}")
    return matches[0] if matches else ""


def check_yaml(file: str | Path, suffix: str | Sequence[str] = (".yaml", ".yml"), hard: bool = True) -> str:
    """check_file for yaml files: the suffix must be .yaml or .yml (a name without suffix is searched as given)."""
    return check_file(file, suffix, hard=hard)


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
            cv2.imshow("test", np.zeros((8, 8, 3), dtype=np.uint8))
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


def check_yolo(verbose: bool = True, device: str = "") -> None:
    """Log the one-line hardware summary 'Setup complete ✅ (N CPUs, R GB RAM, U/T GB disk)' after the device line."""
    import psutil

    from ultralytics.utils.torch_utils import select_device

    summary = ""
    if verbose:
        gib = 1 << 30
        total, _, free = shutil.disk_usage("/")
        summary = (
            f"({os.cpu_count()} CPUs, {psutil.virtual_memory().total / gib:.1f} GB RAM, "
            f"{(total - free) / gib:.1f}/{total / gib:.1f} GB disk)"
        )
    select_device(device=device, newline=False)
    LOGGER.info(f"Setup complete ✅ {summary}")


def collect_system_info() -> dict:
    """Log and return what `yolo checks` reports: OS, Python, hardware, CUDA, and the installed requirements."""
    import psutil

    gib = 1 << 30
    cuda = torch.cuda.is_available()
    check_yolo()
    total, _, free = shutil.disk_usage("/")
    info = {
        "OS": platform.platform(),
        "Environment": platform.system(),
        "Python": PYTHON_VERSION,
        "Install": _install_kind(),
        "RAM": f"{psutil.virtual_memory().total / gib:.2f} GB",
        "Disk": f"{(total - free) / gib:.1f}/{total / gib:.1f} GB",
        "CPU": _cpu_name(),
        "CPU count": os.cpu_count(),
        "GPU": torch.cuda.get_device_name(0) if cuda else None,
        "GPU count": torch.cuda.device_count() if cuda else None,
        "CUDA": torch.version.cuda if cuda else None,
    }
    LOGGER.info("\n" + "\n".join(f"{k:<20}{v}" for k, v in info.items()) + "\n")

    packages = {}
    try:
        requirements = parse_requirements(package="ultralytics")
    except metadata.PackageNotFoundError:
        requirements = []
        LOGGER.warning("WARNING ⚠️ the ultralytics distribution is not installed; skipping the requirements table")
    for req in requirements:
        try:
            current = metadata.version(req.name)
            met = "✅ " if check_version(current, req.specifier, name=req.name) else "❌ "
        except metadata.PackageNotFoundError:
            current, met = "(not installed)", "❌ "
        packages[req.name] = f"{met}{current}{req.specifier}"
        LOGGER.info(f"{req.name:<20}{packages[req.name]}")
    info["Package Info"] = packages
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


def check_amp(model: torch.nn.Module) -> bool:
    """Whether mixed-precision training is safe for ``model`` on its device.

    False on CPU and MPS (AMP is only used on CUDA) and on GPUs known to break FP16. Otherwise a copy of the model in
    eval mode runs one fixed 256x256 image in FP32 and under autocast: AMP passes when both outputs are finite, have
    the same shape and agree within 0.5 absolute (the tolerance upstream uses for its box check). Upstream runs a
    downloaded YOLO11n for this; this package never downloads, so the model itself is used.
    """
    prefix = colorstr("AMP: ")
    device = next(model.parameters()).device
    if device.type != "cuda":
        return False
    gpu = torch.cuda.get_device_name(device)
    if _AMP_BROKEN_GPUS.search(gpu):
        LOGGER.warning(
            f"{prefix}checks failed ❌. AMP training on {gpu} GPU may cause "
            f"NaN losses or zero-mAP results, so AMP will be disabled during training."
        )
        return False

    LOGGER.info(f"{prefix}running Automatic Mixed Precision (AMP) checks...")
    probe = deepcopy(model).eval()
    # A smooth gradient image: deterministic and not degenerate like zeros.
    ramp = torch.linspace(0, 1, 256, device=device)
    flat = torch.full((256, 256), 0.5, device=device)
    image = torch.stack([ramp[None, :].expand(256, 256), ramp[:, None].expand(256, 256), flat])[None]  # (1, 3, 256, 256)
    with torch.no_grad():
        full = _first_tensor(probe(image))
        with torch.autocast("cuda", enabled=True):
            half = _first_tensor(probe(image))
    del probe
    passed = (
        full is not None
        and half is not None
        and full.shape == half.shape
        and bool(torch.isfinite(half).all())
        and torch.allclose(full.float(), half.float(), atol=0.5)
    )
    if passed:
        LOGGER.info(f"{prefix}checks passed ✅")
    else:
        LOGGER.warning(
            f"{prefix}checks failed ❌. Anomalies were detected with AMP on your system that may lead to "
            f"NaN losses or zero-mAP results, so AMP will be disabled during training."
        )
    return passed
