"""Zip archives of local folders: packing a dataset folder and unpacking one safely.

Nothing here touches the network; the names are upstream's so that scripts calling
`zip_directory` / `unzip_file` keep working.

    zip_directory("datasets/shapes")                  # -> datasets/shapes.zip
    unzip_file("datasets/shapes.zip", path="other/")  # -> other/shapes/
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Sequence

from ultralytics.utils import LOGGER, TQDM

# Finder and macOS archive clutter, never worth packing or unpacking.
_CLUTTER = (".DS_Store", "__MACOSX")


def _kept(name: str, exclude: Sequence[str]) -> bool:
    return all(pattern not in name for pattern in exclude)


def zip_directory(
    directory: str | Path,
    compress: bool = True,
    exclude: Sequence[str] = _CLUTTER,
    progress: bool = True,
) -> Path:
    """Pack every file under `directory` into `<directory>.zip` beside it; returns the archive's path.

    Entries are stored relative to the folder (so unzip_file recreates it under its own name);
    files whose name contains one of `exclude` are skipped. compress=False stores without deflate.
    """
    folder = Path(directory)
    if not folder.is_dir():
        raise FileNotFoundError(f"zip_directory: directory '{directory}' does not exist or is not a folder")
    files = sorted(f for f in folder.rglob("*") if f.is_file() and _kept(f.name, exclude))
    archive = folder.with_suffix(".zip")
    method = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    with zipfile.ZipFile(archive, "w", method) as zf:
        for file in TQDM(files, desc=f"Zipping {folder} to {archive}...", unit="file", disable=not progress):
            zf.write(file, file.relative_to(folder).as_posix())
    return archive


def _inside(folder: Path, name: str) -> bool:
    """Whether archive entry `name` resolves to a place under `folder` (no '../' or absolute escape)."""
    return (folder / name).resolve().is_relative_to(folder.resolve())


def _destination(names: list[str], parent: Path, archive: Path) -> tuple[Path, Path]:
    """(folder to extract into, folder the contents end up in).

    An archive whose entries all sit in one top-level folder is extracted as that folder; any other
    archive is extracted into a new folder named after it.
    """
    tops = {Path(n).parts[0] for n in names}
    nested = any(len(Path(n).parts) > 1 for n in names)
    if len(tops) == 1 and nested:
        return parent, parent / next(iter(tops))
    return parent / archive.stem, parent / archive.stem


def unzip_file(
    file: str | Path,
    path: str | Path | None = None,
    exclude: Sequence[str] = _CLUTTER,
    exist_ok: bool = False,
    progress: bool = True,
) -> Path:
    """Unpack a zip archive into `path` (default: beside it); returns the folder holding its contents.

    A destination that exists and is not empty is left alone, with a warning, unless exist_ok.
    Entries that would land outside the destination ('../x', absolute paths) are skipped.
    """
    archive = Path(file)
    if not zipfile.is_zipfile(archive):
        raise zipfile.BadZipFile(f"unzip_file: '{file}' does not exist or is not a zip archive")
    with zipfile.ZipFile(archive) as zf:
        names = [n for n in zf.namelist() if _kept(n, exclude)]
        extract_to, result = _destination(names, Path(path) if path is not None else archive.parent, archive)
        if result.exists() and any(result.iterdir()) and not exist_ok:
            LOGGER.warning(f"WARNING ⚠️ Skipping {file} unzip as destination directory {result} is not empty.")
            return result
        for name in TQDM(names, desc=f"Unzipping {file} to {result.resolve()}...", unit="file", disable=not progress):
            if not _inside(extract_to, name):
                LOGGER.warning(f"WARNING ⚠️ Skipping '{name}' in {file}: it would be written outside {extract_to}")
                continue
            zf.extract(name, extract_to)
    return result
