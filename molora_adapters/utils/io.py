"""File helpers: atomic writes, one text opener (``.gz`` aware), one inter-process file lock.

Atomic writes:

A reader never sees a half-written file or directory: content is written to a temporary sibling
(same directory, hence same file system) and moved into place with an atomic rename only once it
is complete. If the writer crashes, the final path keeps its previous content (or stays absent)
and only a ``.<name>.tmp-*`` sibling is left behind.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

__all__ = [
    "atomic_directory",
    "atomic_write_bytes",
    "atomic_write_text",
    "current_umask",
    "file_lock",
    "open_text",
]


def current_umask() -> int:
    """The process umask (read without changing it for longer than two system calls)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


_umask = current_umask  # short internal alias


def open_text(path: str | os.PathLike, *, newline: str | None = None) -> io.TextIOBase:
    """Open a UTF-8 text file for reading, gunzipping it when its name ends in ``.gz``.

    Args:
        path (`str` or `os.PathLike`): the file.
        newline (`str`, *optional*): as for `open`; ``""`` keeps line endings as written (the benchmark
            readers need this), `None` translates them.

    Raises:
        FileNotFoundError: naming the path, when it is not a file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"`{path}` does not exist or is not a file; pass an existing path.")
    if path.name.endswith(".gz"):
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", newline=newline)
    return open(path, encoding="utf-8", newline=newline)


@contextlib.contextmanager
def file_lock(path: str | os.PathLike, *, blocking: bool = True) -> Iterator[bool]:
    """An exclusive inter-process lock on ``path`` (POSIX ``flock``; a no-op where unavailable).

    The kernel drops the lock when the process dies, so a killed holder never leaves a stale lock.

    Args:
        path (`str` or `os.PathLike`): the lock file (created, with its parents, if missing).
        blocking (`bool`, *optional*, defaults to `True`): wait for the lock; when `False`, yield `False`
            at once if another process holds it (the caller decides what to do).

    Yields:
        `bool`: whether the lock is held (always `True` when ``blocking``).
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: no locking
        yield True
        return
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as fh:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


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


def read_lines(stream: BinaryIO) -> Iterator[tuple[int, str | None, str | None]]:
    """Yield ``(line_number, text, error)`` for every line of a binary stream (1-based numbers).

    A line that is empty, whitespace-only or not valid UTF-8 gets ``text=None`` and an error message, so that
    command-line tools can write a per-line error record instead of stopping.
    """
    for n, raw in enumerate(stream, 1):
        raw = raw.rstrip(b"\r\n")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            yield n, None, f"invalid UTF-8 at byte {e.start}: {raw[e.start : e.start + 4]!r}"
            continue
        if not text.strip():
            yield n, None, "empty line" if not text else "whitespace-only line"
            continue
        yield n, text, None


def sha256_file(path: str | os.PathLike) -> str:
    """The sha256 hex digest of a file, read in 4 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


_SHA256_MEMO: dict[tuple[str, int, int], str] = {}


def sha256_file_cached(path: str | os.PathLike) -> str:
    """`sha256_file`, memoised per process on (resolved path, size, mtime): a large file is hashed once."""
    path = Path(path)
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _SHA256_MEMO:
        _SHA256_MEMO[key] = sha256_file(path)
    return _SHA256_MEMO[key]
