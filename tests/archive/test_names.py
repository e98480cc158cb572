"""The one member-name rule (archive.members.name_problem) where its copies disagreed."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from nativelib.archive import name_problem
from nativelib.cli import main
from nativelib.errors import RepairError
from nativelib.wheelfile.read import read_wheel


def _wheel_with(tmp_path: Path, member: str) -> Path:
    """A small wheel, otherwise valid, with one extra member named ``member``."""
    path = tmp_path / "demo-1.0-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("demo/__init__.py", "")
        zf.writestr(member, "x\n")
        zf.writestr(
            "demo-1.0.dist-info/METADATA", "Metadata-Version: 2.1\nName: demo\nVersion: 1.0\n"
        )
        zf.writestr(
            "demo-1.0.dist-info/WHEEL",
            "Wheel-Version: 1.0\nGenerator: t\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        )
        zf.writestr("demo-1.0.dist-info/RECORD", "")
    return path


@pytest.mark.parametrize("member", ["demo/a\x01b.py", "demo/a\nb.py", "demo/a\x7fb.py"])
def test_repair_refuses_control_characters(
    tmp_path: Path, member: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """The wheel writer always refused these; repair's reader used to take them."""
    wheel = _wheel_with(tmp_path, member)
    work = tmp_path / "work"
    work.mkdir()
    with pytest.raises(RepairError, match=r"unsafe member name .*control characters"):
        read_wheel(wheel, work)
    assert list(work.iterdir()) == []
    assert main(["repair", str(wheel), "-w", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "unsafe member name" in err and "control characters" in err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("name", "canonical", "problem"),
    [
        ("a\x01b", False, "control characters"),  # archives now refuse them too
        ("./usr/lib", False, None),  # archives normalize '.' and '//'
        ("usr//lib", False, None),
        ("./usr/lib", True, "'.' components"),  # wheels do not
        ("usr//lib", True, "empty components"),
        ("a\udcffb", False, None),  # a non-UTF-8 tar name, decoded with surrogateescape
        ("a\udcffb", True, "lone surrogates"),
    ],
)
def test_name_problem(name: str, canonical: bool, problem: str | None) -> None:
    found = name_problem(name, canonical=canonical)
    assert found is None if problem is None else problem in (found or "")
