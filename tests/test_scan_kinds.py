"""What a scan result is (``ScanResult.kind``), for callers that branch on it instead of
reading the reason's text; and ``-v`` naming the files a walk passes over."""

from __future__ import annotations

import os
import pickle
import shutil
from pathlib import Path

import pytest

from nativelib import scan
from nativelib.cli import main
from nativelib.elf import read_elf
from nativelib.errors import ElfError, NotElfError


def _one(path: Path) -> scan.ScanResult:
    (result,) = scan.scan_paths([str(path)])
    return result


def test_kinds_of_named_files(elf_fixtures, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    good = tmp_path / "libver.so.1"
    shutil.copyfile(elf_fixtures["libver.so.1"], good)
    text = tmp_path / "libc.so"
    text.write_text("/* GNU ld script */\n")
    broken = tmp_path / "libbroken.so"
    broken.write_bytes(good.read_bytes()[:80])
    fifo = tmp_path / "libfifo.so"
    os.mkfifo(fifo)

    assert _one(good).kind == scan.ELF and _one(good).ok
    assert _one(text).kind == scan.NOT_ELF
    assert _one(broken).kind == scan.MALFORMED
    assert _one(fifo).kind == scan.UNREADABLE
    assert _one(tmp_path / "missing.so").kind == scan.UNREADABLE


def test_reader_errors_carry_what_went_wrong(tmp_path: Path) -> None:
    """The structured fields the scan maps from (never the reason's text)."""
    fifo = tmp_path / "f"
    os.mkfifo(fifo)
    for path in (fifo, tmp_path / "missing"):
        with pytest.raises(ElfError) as e:
            read_elf(path)
        assert type(e.value) is ElfError and e.value.unreadable and not e.value.changed
    (tmp_path / "t").write_text("text")
    with pytest.raises(NotElfError) as not_elf:
        read_elf(tmp_path / "t")
    assert not not_elf.value.unreadable
    again = pickle.loads(pickle.dumps(ElfError("x", "y", unreadable=True)))
    assert again.unreadable and again.reason == "y"


def test_unlistable_directory_and_broken_wheel(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wheel = tmp_path / "bad-1.0-py3-none-any.whl"
    wheel.write_bytes(b"not a zip")
    assert _one(wheel).kind == scan.ARCHIVE

    d = tmp_path / "d"
    d.mkdir()
    real_scandir = os.scandir

    def refuse(path):  # type: ignore[no-untyped-def]
        if os.fspath(path) == str(d):
            raise PermissionError(13, "Permission denied")
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", refuse)
    (result,) = scan.scan_paths([str(d)])
    assert result.kind == scan.DIRECTORY
    assert result.error == "cannot read directory: Permission denied"


def test_verbose_names_what_the_walk_passes_over(  # type: ignore[no-untyped-def]
    capsys, elf_fixtures, tmp_path: Path
) -> None:
    d = tmp_path / "lib"
    d.mkdir()
    shutil.copyfile(elf_fixtures["libver.so.1"], d / "libver.so.1")
    (d / "libgone.so").symlink_to("nowhere.so")
    os.mkfifo(d / "libpipe.so")

    assert main(["-v", "inspect", str(d)]) == 0
    err = capsys.readouterr().err
    assert f"skipped {d / 'libgone.so'}: a symlink to no regular file" in err
    assert f"skipped {d / 'libpipe.so'}: not a regular file" in err

    assert main(["inspect", str(d)]) == 0
    assert "skipped" not in capsys.readouterr().err
