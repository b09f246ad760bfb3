"""Small file-system helpers: run-folder numbering, sizes and ages, resume look-up, temporary cwd."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Iterator

__all__ = (
    "WorkingDirectory",
    "spaces_in_path",
    "increment_path",
    "file_age",
    "file_date",
    "file_size",
    "get_latest_run",
)

# Upper bound on the numeric suffix tried by increment_path; reaching it means something is wrong with the folder.
_MAX_INCREMENT = 9999


class WorkingDirectory(contextlib.ContextDecorator):
    """Run a block (``with``) or a function (decorator) with ``new_dir`` as the working directory.

    The previous working directory is restored afterwards, also when the block raises.
    """

    def __init__(self, new_dir: str | Path) -> None:
        self.dir = new_dir
        self.cwd = Path(os.getcwd()).resolve()  # where to come back to

    def __enter__(self) -> None:
        os.chdir(self.dir)

    def __exit__(self, exc_type, exc_val, exc_tb) -> None:
        os.chdir(self.cwd)


@contextlib.contextmanager
def spaces_in_path(path: str | Path) -> Iterator[str | Path]:
    """Yield a space-free stand-in for ``path`` and copy any changes back afterwards.

    Some exporters and tools split command lines on spaces. When ``path`` contains a space it is copied into a
    temporary folder under a name with underscores, that copy is yielded (as the same type, str or Path), and on exit
    the copy is written back over the original. Paths without spaces are yielded unchanged.
    """
    if " " not in str(path):
        yield path
        return
    as_str = isinstance(path, str)
    original = Path(path)
    with tempfile.TemporaryDirectory() as tmp:
        stand_in = Path(tmp) / original.name.replace(" ", "_")
        if original.is_dir():
            shutil.copytree(original, stand_in)
        elif original.is_file():
            shutil.copy2(original, stand_in)
        try:
            yield str(stand_in) if as_str else stand_in
        finally:
            if stand_in.is_dir():
                shutil.copytree(stand_in, original, dirs_exist_ok=True)
            elif stand_in.is_file():
                shutil.copy2(stand_in, original)


def increment_path(
    path: str | Path,
    exist_ok: bool = False,
    sep: str = "",
    mkdir: bool = False,
) -> Path:
    """Return ``path``, or the first free ``path{sep}2``, ``path{sep}3``, ... when it already exists.

    runs/detect/train -> runs/detect/train2 -> runs/detect/train3. For an existing file the number goes before the
    suffix (results.csv -> results2.csv). With ``exist_ok`` the path is returned as given even if it exists; with
    ``mkdir`` the returned path is created as a folder.
    """
    path = Path(path)
    taken = path.exists() and not exist_ok
    if taken:
        path = _first_free(path, sep)
    if mkdir:
        path.mkdir(parents=True, exist_ok=True)
    return path


def _first_free(path: Path, sep: str) -> Path:
    """The first of path{sep}2, path{sep}3, ... that does not exist (numbered before a file's suffix)."""
    stem, suffix = (path.with_suffix(""), path.suffix) if path.is_file() else (path, "")
    for n in range(2, _MAX_INCREMENT + 1):
        candidate = Path(f"{stem}{sep}{n}{suffix}")
        if not candidate.exists():
            return candidate
    raise FileExistsError(
        f"increment_path: '{stem}{sep}2' to '{stem}{sep}{_MAX_INCREMENT}' all exist; "
        f"remove old runs or pass a different name (or exist_ok=True to reuse '{path}')."
    )


def _modified(path: str | Path) -> datetime:
    return datetime.fromtimestamp(os.path.getmtime(path))


def file_age(path: str | Path = __file__) -> int:
    """Whole days since ``path`` was last modified."""
    return (datetime.now() - _modified(path)).days


def file_date(path: str | Path = __file__) -> str:
    """Modification date of ``path`` as 'YYYY-M-D' (no zero padding, as upstream writes it)."""
    when = _modified(path)
    return "-".join(str(part) for part in (when.year, when.month, when.day))


def file_size(path: str | Path) -> float:
    """Size in MiB of a file, or of every file below a folder; 0.0 for anything else (missing paths included)."""
    if not isinstance(path, (str, Path)):
        return 0.0
    path = Path(path)
    mib = 1 << 20
    if path.is_file():
        return path.stat().st_size / mib
    if path.is_dir():
        return sum(f.stat().st_size for f in path.glob("**/*") if f.is_file()) / mib
    return 0.0


def get_latest_run(search_dir: str | Path = ".") -> str:
    """Path of the most recently created ``last*.pt`` anywhere below ``search_dir`` (for resume), or '' if none."""
    candidates = list(Path(search_dir).rglob("last*.pt"))
    if not candidates:
        return ""
    return str(max(candidates, key=os.path.getctime))
