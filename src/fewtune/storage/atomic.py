"""Write a folder so that readers see either the old one or the complete new one, never half of it."""

import contextlib
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_folder(target: str | os.PathLike, *, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary folder beside `target`; on success it replaces `target` in one rename.

    The temporary folder lives in the same parent so the final rename stays on one file system.
    If the body raises (or the process dies), `target` is untouched and the temporary folder is
    removed (or, after SIGKILL, left as a hidden `.name.tmp-*` that is never read).
    """
    target = Path(target)
    if target.exists() and not overwrite:
        raise FileExistsError(f"{target} already exists")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".{target.name}.tmp-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        yield tmp
        _settle_tree(tmp)
        if target.exists():
            old = target.parent / f".{target.name}.old-{uuid.uuid4().hex[:8]}"
            os.rename(target, old)
            os.rename(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _settle_tree(folder: Path) -> None:
    """Every file the process's usual mode (0644 under umask 022: libraries such as safetensors write
    0600, which another account serving the model cannot read), and on disk before the rename: without
    fsync a power cut after it can leave a complete-looking folder of empty files."""
    mask = _umask()
    for path in folder.rglob("*"):
        if path.is_file():
            os.chmod(path, 0o666 & ~mask)
            with open(path, "rb") as f:
                os.fsync(f.fileno())


def atomic_write_text(target: str | os.PathLike, text: str) -> None:
    """Write a file via a temporary sibling and one rename: readers never see half of it."""
    atomic_write_bytes(target, text.encode("utf-8"))


def atomic_write_bytes(target: str | os.PathLike, data: bytes) -> None:
    """Write a file via a temporary sibling and one rename: readers never see half of it."""
    target = Path(target)
    tmp = target.parent / f".{target.name}.tmp-{uuid.uuid4().hex[:8]}"
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
