"""Atomic writes: complete content or nothing, never a half-written path."""

from __future__ import annotations

import os

import pytest

from molora_adapters.utils.io import atomic_directory, atomic_write_bytes, atomic_write_text


def _siblings(path):
    return sorted(p.name for p in path.parent.iterdir())


def test_atomic_write_bytes_and_text_round_trip(tmp_path):
    target = tmp_path / "sub" / "a.bin"
    assert atomic_write_bytes(target, b"\x00\x01abc") == target
    assert target.read_bytes() == b"\x00\x01abc"
    atomic_write_text(target, "héllo\r\n")
    assert target.read_bytes() == "héllo\r\n".encode()
    assert _siblings(target) == ["a.bin"]  # no temp file left behind
    assert oct(os.stat(target).st_mode & 0o777) == oct(0o666 & ~_current_umask())


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_atomic_write_failure_keeps_old_content(tmp_path):
    target = tmp_path / "a.txt"
    atomic_write_text(target, "old")

    with pytest.raises(TypeError):
        atomic_write_bytes(target, "not bytes")  # type: ignore[arg-type]
    assert target.read_text() == "old"
    assert _siblings(target) == ["a.txt"]


def test_atomic_directory_commits_and_replaces(tmp_path):
    final = tmp_path / "model"
    with atomic_directory(final) as tmp:
        assert tmp.parent == tmp_path and tmp.name.startswith(".model.tmp-")
        assert not final.exists()  # nothing visible until the block succeeds
        (tmp / "x.txt").write_text("1")
    assert (final / "x.txt").read_text() == "1"

    with atomic_directory(final) as tmp:
        (tmp / "y.txt").write_text("2")
    assert sorted(p.name for p in final.iterdir()) == ["y.txt"]
    assert _siblings(final) == ["model"]


def test_atomic_directory_rolls_back_on_error(tmp_path):
    final = tmp_path / "model"
    with atomic_directory(final) as tmp:
        (tmp / "keep.txt").write_text("v1")
    with pytest.raises(RuntimeError, match="half way"):
        with atomic_directory(final) as tmp:
            (tmp / "partial.txt").write_text("v2")
            raise RuntimeError("half way")
    assert sorted(p.name for p in final.iterdir()) == ["keep.txt"]
    assert _siblings(final) == ["model"]


def test_atomic_directory_no_overwrite(tmp_path):
    final = tmp_path / "model"
    final.mkdir()
    (final / "a").write_text("a")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        with atomic_directory(final, overwrite=False) as tmp:
            (tmp / "b").write_text("b")
    assert sorted(p.name for p in final.iterdir()) == ["a"]
    assert _siblings(final) == ["model"]


def test_open_text_reads_plain_and_gzip_with_newline_control(tmp_path):
    import gzip

    from molora_adapters.utils.io import current_umask, open_text

    assert current_umask() == _current_umask()
    plain, packed = tmp_path / "a.txt", tmp_path / "a.txt.gz"
    plain.write_bytes("é\r\nb\n".encode())
    packed.write_bytes(gzip.compress("é\r\nb\n".encode()))
    for path in (plain, packed):
        with open_text(path) as f:
            assert f.read() == "é\nb\n"
        with open_text(path, newline="") as f:
            assert f.read() == "é\r\nb\n"  # as written: the benchmark readers split lines themselves
    with pytest.raises(FileNotFoundError, match="missing.txt"):
        open_text(tmp_path / "missing.txt")


def test_file_lock_excludes_other_holders(tmp_path):
    """`flock` locks belong to an open file, so a second open of the lock file (another process, or here another
    holder in this one) is refused while the first holds it."""
    from molora_adapters.utils.io import file_lock

    lock = tmp_path / "locks" / ".run.lock"
    with file_lock(lock) as held:
        assert held and lock.is_file()
        with file_lock(lock, blocking=False) as second:
            assert second is False
    with file_lock(lock, blocking=False) as again:
        assert again is True
