"""Atomic file and directory writes.

A reader never sees a half-written file or directory: content is written to a temporary sibling
(same directory, hence same file system) and moved into place with an atomic rename only once it
is complete. If the writer crashes, the final path keeps its previous content (or stays absent)
and only a ``.<name>.tmp-*`` sibling is left behind.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

__all__ = ["atomic_directory", "atomic_write_bytes", "atomic_write_text"]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync_dir(path: Path) -> None:
    """Best-effort fsync of a directory entry (POSIX only; a no-op where unsupported)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(path: str | os.PathLike, data: bytes, *, mode: int | None = None) -> Path:
    """Write ``data`` to ``path`` atomically.

    Args:
        path (`str` or `os.PathLike`): destination file; its parent directories are created.
        data (`bytes`): the full content.
        mode (`int`, *optional*): file permissions; defaults to ``0o666`` minus the process umask,
            like a plain ``open(path, "wb")``.

    Returns:
        `Path`: the destination path.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode if mode is not None else 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)
    return path


def atomic_write_text(
    path: str | os.PathLike, text: str, *, encoding: str = "utf-8", mode: int | None = None
) -> Path:
    """Write ``text`` to ``path`` atomically (see `atomic_write_bytes`).

    Args:
        path (`str` or `os.PathLike`): destination file.
        text (`str`): the full content, written without newline translation.
        encoding (`str`, *optional*, defaults to ``"utf-8"``): text encoding.
        mode (`int`, *optional*): file permissions (see `atomic_write_bytes`).

    Returns:
        `Path`: the destination path.
    """
    return atomic_write_bytes(path, text.encode(encoding), mode=mode)


@contextlib.contextmanager
def atomic_directory(final_path: str | os.PathLike, *, overwrite: bool = True) -> Iterator[Path]:
    """Build a directory in a temporary sibling and move it to ``final_path`` on success.

    Usage::

        with atomic_directory(cache / "model") as tmp:
            model.save_pretrained(tmp)
            (tmp / "manifest.json").write_text(...)   # written last: marks the build complete
        # `cache / "model"` now holds the complete directory

    If the block raises, the temporary directory is removed and ``final_path`` is left untouched.
    An existing ``final_path`` is replaced (moved aside, then deleted after the rename), so the
    window in which ``final_path`` does not exist is two renames long.

    Args:
        final_path (`str` or `os.PathLike`): where the finished directory should live.
        overwrite (`bool`, *optional*, defaults to `True`): replace an existing ``final_path``;
            when `False`, an existing ``final_path`` raises `FileExistsError` at commit time and
            the new build is discarded.

    Yields:
        `Path`: the empty temporary directory to fill.
    """
    final = Path(final_path)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}.tmp-"))
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~_umask())
        _commit_directory(tmp, final, overwrite=overwrite)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _commit_directory(tmp: Path, final: Path, *, overwrite: bool) -> None:
    for _ in range(3):  # a concurrent writer may recreate `final` between our two renames
        try:
            os.rename(tmp, final)  # atomic; fails if `final` exists and is not an empty directory
            _fsync_dir(final.parent)
            return
        except OSError:
            if not (final.exists() or final.is_symlink()):
                raise
        if not overwrite:
            raise FileExistsError(
                f"`final_path` {str(final)!r} already exists; pass `overwrite=True` to replace it."
            )
        trash = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}.old-"))
        try:
            os.replace(final, trash / final.name)
        except FileNotFoundError:
            pass  # someone else removed it meanwhile: just retry the rename
        finally:
            shutil.rmtree(trash, ignore_errors=True)
    raise OSError(
        f"Could not move the finished directory into place at {str(final)!r}: it keeps reappearing."
    )
