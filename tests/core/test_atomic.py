"""atomic_write: the destination is either untouched or completely replaced, never partial."""

from __future__ import annotations

import os

import pytest

from deblurstudio.core._atomic import atomic_write


def test_replaces_the_file_and_leaves_nothing_else(tmp_path):
    target = tmp_path / "result.bin"
    target.write_bytes(b"old")
    with atomic_write(target) as file:
        file.write(b"new ")
        file.write(b"content")
    assert target.read_bytes() == b"new content"
    assert [p.name for p in tmp_path.iterdir()] == ["result.bin"]


def test_failure_inside_the_block_keeps_the_old_file(tmp_path):
    target = tmp_path / "result.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError, match="encoder broke"):
        with atomic_write(target) as file:
            file.write(b"half of the new")
            assert target.read_bytes() == b"old"  # nothing visible before the end
            raise RuntimeError("encoder broke")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["result.bin"]


def test_missing_folder_raises_and_creates_nothing(tmp_path):
    with pytest.raises(FileNotFoundError):
        with atomic_write(tmp_path / "gone" / "result.bin") as file:
            file.write(b"x")
    assert list(tmp_path.iterdir()) == []


def test_text_mode_writes_utf8(tmp_path):
    target = tmp_path / "manifest.json"
    with atomic_write(target, "w") as file:
        file.write('{"photo": "café.jpg"}')
    assert target.read_bytes() == '{"photo": "café.jpg"}'.encode()


@pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")
def test_new_file_gets_ordinary_permissions(tmp_path):
    previous = os.umask(0o022)
    try:
        with atomic_write(tmp_path / "result.bin") as file:
            file.write(b"x")
    finally:
        os.umask(previous)
    assert (tmp_path / "result.bin").stat().st_mode & 0o777 == 0o644
