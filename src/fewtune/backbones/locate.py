"""Find files that model packages installed, without importing those packages.

Several model packages cannot be imported (their `__init__` needs unrelated dependencies) or are
not importable at all (folder names with dashes), and importing is slow anyway; so files are found
through the import system's finders and the installed distributions' file lists.
"""

import importlib.metadata
import importlib.util
import sys
from pathlib import Path


def package_dir(import_name: str) -> Path | None:
    """The folder of an installed top-level package, found without running its `__init__`."""
    try:
        spec = importlib.util.find_spec(import_name)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations)))
    return folder if folder.is_dir() else None


def distribution_file(dist_name: str, suffix: str) -> Path | None:
    """The first existing file of installed distribution `dist_name` whose path ends with `suffix`."""
    try:
        dist = importlib.metadata.distribution(dist_name)
    except importlib.metadata.PackageNotFoundError:
        return None
    for entry in dist.files or ():
        if str(entry).endswith(suffix):
            path = Path(str(dist.locate_file(entry)))
            if path.is_file():
                return path
    return None


def file_on_path(relative: str) -> Path | None:
    """`relative` under the first `sys.path` entry (e.g. site-packages) that has it.

    The fallback for distributions whose metadata lacks a file list (RECORD), which
    `importlib.metadata` then cannot answer for.
    """
    for entry in sys.path:
        if not entry:
            continue
        candidate = Path(entry) / relative
        if candidate.is_file():
            return candidate
    return None


def folder_size_bytes(folder: Path) -> int:
    """Total size of the regular files under `folder` (symlinks followed, as loading would)."""
    total = 0
    for path in folder.rglob("*"):
        if path.is_file():
            total += path.stat().st_size
    return total
