"""nativelib.files: the one reader of files that may be anything (issue 13, item 6)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from nativelib.errors import FileReadError, NativeLibError
from nativelib.files import open_regular_file, read_regular_file


def test_a_regular_file_is_read_under_its_bound(tmp_path: Path) -> None:
    f = tmp_path / "f"
    f.write_bytes(b"x" * 10)
    assert read_regular_file(f, 10) == b"x" * 10
    with pytest.raises(FileReadError) as e:
        read_regular_file(f, 9)
    assert e.value.path == str(f) and "too large: 10 bytes, more than the 9 allowed" in str(e.value)
    assert isinstance(e.value, NativeLibError)


@pytest.mark.parametrize(
    ("make", "kind"),
    [
        (os.mkfifo, "a FIFO"),
        (lambda p: p.mkdir(), "a directory"),
        (lambda p: os.symlink("/dev/zero", p), "a symbolic link"),
    ],
)
def test_anything_else_is_refused_without_blocking(tmp_path: Path, make: object, kind: str) -> None:
    p = tmp_path / "x"
    make(p)  # type: ignore[operator]
    with pytest.raises(FileReadError, match=f"not a regular file: it is {kind}"):
        read_regular_file(p, 1 << 20)
    with pytest.raises(FileReadError, match=f"not a regular file: it is {kind}"):
        open_regular_file(p)


def test_devices_and_followed_symlinks(tmp_path: Path) -> None:
    with pytest.raises(FileReadError, match="it is a character device"):
        read_regular_file("/dev/zero", 1 << 20)
    link = tmp_path / "zero"
    os.symlink("/dev/zero", link)
    with pytest.raises(FileReadError, match="it is a character device"):
        open_regular_file(link, follow_symlinks=True)
    target = tmp_path / "real"
    target.write_bytes(b"ok")
    link2 = tmp_path / "link"
    os.symlink(target, link2)
    assert read_regular_file(link2, 2, follow_symlinks=True) == b"ok"
    with pytest.raises(FileReadError, match="cannot open: No such file"):
        read_regular_file(tmp_path / "missing", 1)
