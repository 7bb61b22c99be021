"""What a command checks before it loads a model (seconds) or starts work: its input files, its output
paths and its option values, each a one-line FewtuneError that says what to do.

Torch-free except where a check needs it (a --device), and cheap: a file's first rows, a folder's JSON
marker, a permission bit. The loaders check again; these only move the errors before the wait.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

from ..errors import DataError, FewtuneError


def input_file(path: Path, option: str = "") -> None:
    """`path` is a file this process can read."""
    where = f"{option} {path}" if option else str(path)
    if not path.exists():
        raise DataError(f"{where}: no such file; check the path")
    if not path.is_file():
        raise DataError(f"{where} is a folder, not a file; give the data file inside it")
    if not os.access(path, os.R_OK):
        raise DataError(f"{where}: no permission to read it")


def text_file(path: Path, *, text_col: str, text_pair_col: Optional[str] = None, encoding: str = "utf-8") -> None:
    """The file opens as a table with the text column(s), and its first rows are texts: the mistakes made
    most (a wrong path, column or encoding) are reported before the model loads. The rows after are read,
    and checked the same way, as the command streams through them."""
    from ..data.stream import stream_texts

    stream = stream_texts(path, text_col=text_col, text_pair_col=text_pair_col, encoding=encoding)
    chunks = stream.chunks
    try:
        next(chunks)
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            close()  # the reader's file


def output_file(path: Optional[Path], *, overwrite: bool, option: str = "--output") -> None:
    """A file can be written at `path`: not a folder, not there unless `overwrite`, and its folder (or the
    nearest one that exists: missing ones are made) is one this process may write in."""
    if path is None:
        return
    if path.is_dir():
        raise FewtuneError(f"{option} {path} is a folder; give a file name")
    if path.exists() and not overwrite:
        raise FewtuneError(f"{path} already exists; choose another {option} or pass --overwrite")
    writable_parent(path, option)


def figure_folder(path: Optional[Path], names: tuple[str, ...], option: str = "--plot") -> None:
    """Figures named `names` can be written into the folder `path`: it is a folder (made if missing, with
    any missing ones above it) that this process may write in, and none of the names in it is a folder.
    Files of those names there are replaced."""
    if path is None:
        return
    if path.exists() and not path.is_dir():
        raise FewtuneError(f"{option} {path} is a file; give a folder for the figures (it is made if missing)")
    if not path.is_dir():
        writable_parent(path, option)
        return
    if not os.access(path, os.W_OK | os.X_OK):
        raise FewtuneError(f"{option} {path}: no permission to write in {path}; choose a folder you can write to")
    for name in names:
        if (path / name).is_dir():
            raise FewtuneError(f"{option} {path}: {path / name} is a folder, where a figure goes; choose another "
                               f"{option}")


def output_folder(path: Path, *, overwrite: bool, option: str = "--output") -> None:
    """A model folder can be written at `path` (as `train` checks its own)."""
    from ..experiment.spec import check_output_folder

    check_output_folder(path, overwrite=overwrite, flag=option)


def writable_parent(path: Path, option: str) -> None:
    parent = path.absolute().parent
    while not parent.exists():  # a missing folder is made when the output is written; the nearest one decides
        parent = parent.parent
    if not parent.is_dir():
        raise FewtuneError(f"{option} {path}: {parent} is a file, not a folder; choose another {option}")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise FewtuneError(f"{option} {path}: no permission to write in {parent}; choose a folder you can write to")


def device(value: Optional[str]) -> None:
    """--device names a device this torch has (imports torch: call it for models that run on it)."""
    if value:
        from ..backbones.loading import check_device

        check_device(value)


def at_least(value: int, minimum: int, option: str, meaning: str = "") -> None:
    if value < minimum:
        raise FewtuneError(f"{option} must be at least {minimum}{meaning}, got {value}")


def generator_folder(path: Path, task: Optional[str] = None) -> None:
    """A folder written by `fewtune train --task generate|lm` (`task`: that one), its fewtune.json read
    without checksums."""
    from ..errors import ModelFolderError
    from ..storage.model_folder import CONFIG_NAME, FORMAT, FORMAT_VERSION, read_format_file

    if not path.exists():
        raise ModelFolderError(f"{path}: no such model folder")
    if not path.is_dir():
        raise ModelFolderError(f"{path} is a file, not a model folder; give the folder `fewtune train --task "
                               "generate -o` wrote")
    if not (path / CONFIG_NAME).is_file():
        raise ModelFolderError(f"{path}: not a fewtune model folder (no {CONFIG_NAME}); give a folder written by "
                               "`fewtune train --task generate` or `--task lm`")
    config = read_format_file(path, CONFIG_NAME, FORMAT, FORMAT_VERSION, kind="fewtune model folder",
                              content="fewtune model config", written="written")
    if "task" not in config:
        raise FewtuneError(f"{path} holds a {config.get('method', 'classification')} classifier, not a generation "
                           f"model; label texts with it: fewtune predict {path} texts.csv")
    if task == "generate" and config["task"] != task:
        raise FewtuneError(f"{path} is a language model (train --task {config['task']}) that continues a text, not a "
                           f"dialogue model; use: fewtune generate {path} --prompt TEXT")


def recommender_folder(path: Path) -> None:
    """A folder written by `fewtune recommend train` (its fewtune.json, read without checksums)."""
    from ..errors import ModelFolderError
    from ..recommend.api import KIND
    from ..storage.model_folder import CONFIG_NAME, FORMAT, FORMAT_VERSION, read_format_file

    if not path.exists():
        raise ModelFolderError(f"{path}: no such model folder")
    if not path.is_dir() or not (path / CONFIG_NAME).is_file():
        raise ModelFolderError(f"{path}: not a recommender's folder (no {CONFIG_NAME}); give the folder "
                               "`fewtune recommend train -o` wrote")
    config = read_format_file(path, CONFIG_NAME, FORMAT, FORMAT_VERSION, kind="fewtune model folder",
                              content="fewtune model config", written="written")
    if config.get("kind") != KIND:
        raise ModelFolderError(f"{path} is a fewtune model folder but not a recommender "
                               f"(method {config.get('method')!r}); train one with `fewtune recommend train`")
