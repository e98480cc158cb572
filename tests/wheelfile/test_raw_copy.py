"""Copying members compressed, byte for byte (``WheelFile(stored=...)``): the members
``read_wheel`` verified are written without being inflated or deflated again, the output
stays valid (our validator, and installer's own RECORD check) and deterministic, and no
check of the reader is bypassed (a member whose hash does not match RECORD, a method other
than stored/deflated, bytes changed after they were verified)."""

from __future__ import annotations

import base64
import hashlib
import os
import zipfile
from pathlib import Path

import pytest
from installer.sources import WheelFile as InstallerWheel

import nativelib.wheelfile.write as write_module
from nativelib.errors import RepairError, WheelError
from nativelib.safezip import open_stored
from nativelib.wheelfile import WheelFile, validate_wheel, write_members
from nativelib.wheelfile.read import read_wheel

DIST_INFO = "demo-1.0.dist-info"
NAME = "demo-1.0-py3-none-any.whl"
BIG = os.urandom(300_000) + b"compressible " * 100_000  # several deflate blocks


def _row(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def _members() -> dict[str, bytes]:
    return {
        "demo/__init__.py": b"x = 1\n",
        "demo/big.bin": BIG,
        "demo/stored.txt": b"kept stored " * 50,
        "demo/empty.txt": b"",
        "demo/\u00e9t\u00e9.txt": b"a non-ASCII name\n",
        f"{DIST_INFO}/METADATA": b"Metadata-Version: 2.1\nName: demo\nVersion: 1.0\n",
        f"{DIST_INFO}/WHEEL": b"Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }


def _input(where: Path, change: dict[str, bytes] | None = None) -> Path:
    """A wheel as pip would get it from a builder (zipfile's own deflate, level 9 for the
    big member, one member stored); ``change`` replaces members after RECORD is made."""
    members = _members()
    rows = [_row(n, d) for n, d in members.items()]
    members.update(change or {})
    where.mkdir(parents=True, exist_ok=True)
    path = where / NAME
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            method = zipfile.ZIP_STORED if name.endswith("stored.txt") else zipfile.ZIP_DEFLATED
            zf.writestr(name, data, compress_type=method, compresslevel=9)
        zf.writestr(f"{DIST_INFO}/RECORD", "\n".join([*rows, f"{DIST_INFO}/RECORD,,"]) + "\n")
    return path


def _copy_all(src: Path, out: Path, work: Path, new: dict[str, bytes] | None = None) -> Path:
    """Every member of ``src`` copied compressed, but those in ``new`` (written again)."""
    contents = read_wheel(src, work, wanted=lambda name: False)
    files = []
    for m in contents.members:
        if m.arcname in (new or {}):
            files.append(WheelFile(m.arcname, data=(new or {})[m.arcname]))
        else:
            assert m.stored is not None
            files.append(WheelFile(m.arcname, stored=m.stored, executable=m.executable))
    return write_members(out, src.name, files, record=f"{DIST_INFO}/RECORD")


def _stored_bytes(path: Path) -> dict[str, tuple[int, bytes]]:
    with zipfile.ZipFile(path) as zf:
        out = {}
        for info in zf.infolist():
            with open_stored(zf, info) as f:
                out[info.filename] = (info.compress_type, f.read())
        return out


def test_members_are_copied_byte_for_byte_and_the_wheel_is_valid(tmp_path: Path) -> None:
    src = _input(tmp_path / "in")
    before = src.read_bytes()
    contents = read_wheel(src, tmp_path / "work", wanted=lambda name: False)
    assert not any(m.extracted for m in contents.members)
    assert not (tmp_path / "work").exists()  # nothing extracted: no ELF, none wanted
    out = _copy_all(src, tmp_path / "out", tmp_path / "work2", new={"demo/__init__.py": b"x = 2\n"})
    assert src.read_bytes() == before  # the input is never modified

    validate_wheel(out)  # inflates and hashes every member
    installer_wheel = InstallerWheel.open(out)
    with installer_wheel as w:
        w.validate_record(validate_contents=True)  # installer's own RECORD check
    old, new = _stored_bytes(src), _stored_bytes(out)
    for name in ("demo/big.bin", "demo/stored.txt", "demo/empty.txt", "demo/\u00e9t\u00e9.txt"):
        assert new[name] == old[name], name  # same method, same compressed bytes
    assert new["demo/stored.txt"][0] == zipfile.ZIP_STORED
    assert new["demo/big.bin"][0] == zipfile.ZIP_DEFLATED
    with zipfile.ZipFile(out) as zf:
        assert zf.read("demo/__init__.py") == b"x = 2\n"
        assert zf.read("demo/big.bin") == BIG
        record = zf.read(f"{DIST_INFO}/RECORD").decode()
    assert _row("demo/big.bin", BIG) in record.splitlines()

    again = _copy_all(
        src, tmp_path / "out2", tmp_path / "work3", new={"demo/__init__.py": b"x = 2\n"}
    )
    assert again.read_bytes() == out.read_bytes()  # deterministic


def test_a_member_whose_hash_does_not_match_record_is_refused_and_named(tmp_path: Path) -> None:
    src = _input(tmp_path / "in", change={"demo/big.bin": BIG[:-1] + b"!"})
    with pytest.raises(RepairError, match=r"hash / size of demo/big\.bin didn't match RECORD"):
        read_wheel(src, tmp_path / "work", wanted=lambda name: False)


def test_a_method_other_than_stored_or_deflated_is_refused(tmp_path: Path) -> None:
    src = _input(tmp_path / "in")
    bad = tmp_path / "bad" / NAME
    bad.parent.mkdir()
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(bad, "w") as zout:
        for info in zin.infolist():
            method = zipfile.ZIP_BZIP2 if info.filename == "demo/big.bin" else zipfile.ZIP_DEFLATED
            zout.writestr(info.filename, zin.read(info), compress_type=method)
    with pytest.raises(RepairError, match=r"'demo/big\.bin' is compressed with bzip2"):
        read_wheel(bad, tmp_path / "work", wanted=lambda name: False)


def test_bytes_changed_after_they_were_verified_are_refused(tmp_path: Path) -> None:
    """The input is changed in place (same length) between the reading and the writing:
    the writer finds that the bytes it copies are not the ones verified, names the member,
    and leaves nothing in the output directory."""
    src = _input(tmp_path / "in")
    contents = read_wheel(src, tmp_path / "work", wanted=lambda name: False)
    member = next(m for m in contents.members if m.arcname == "demo/big.bin")
    assert member.stored is not None
    data = bytearray(src.read_bytes())
    at = member.stored.header_offset + 30 + len(b"demo/big.bin") + 1000
    data[at] ^= 0xFF
    src.write_bytes(bytes(data))
    files = [WheelFile(m.arcname, stored=m.stored) for m in contents.members if m.stored]
    out = tmp_path / "out"
    with pytest.raises(WheelError, match=r"demo/big\.bin: its compressed bytes changed since"):
        write_members(out, NAME, files, record=f"{DIST_INFO}/RECORD")
    assert list(out.iterdir()) == []


def test_a_member_moved_in_the_archive_is_refused(tmp_path: Path) -> None:
    src = _input(tmp_path / "in")
    contents = read_wheel(src, tmp_path / "work", wanted=lambda name: False)
    files = [WheelFile(m.arcname, stored=m.stored) for m in contents.members if m.stored]
    _input(tmp_path / "in", change={"demo/__init__.py": b"x = 1; y = 2\n"})  # rewritten
    with pytest.raises(WheelError, match="changed"):
        write_members(tmp_path / "out", NAME, files, record=f"{DIST_INFO}/RECORD")


def test_the_zip64_path_inflates_copied_members_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A wheel that would need ZIP64 is written through zipfile, which cannot copy
    compressed bytes: copied members are inflated (and checked) again, and the result is
    the same wheel content."""
    monkeypatch.setattr(write_module, "_fits_raw", lambda entries: False)
    src = _input(tmp_path / "in")
    out = _copy_all(src, tmp_path / "out", tmp_path / "work")
    validate_wheel(out)
    with zipfile.ZipFile(out) as zf, zipfile.ZipFile(src) as zin:
        for name in _members():
            assert zf.read(name) == zin.read(name)


def test_large_archives_are_verified_on_threads_with_the_same_result(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Above a size, members are verified on several threads (the largest first): the
    result is the one thread's, and of two bad members the first in archive order is
    named whichever thread finds it."""
    import nativelib.wheelfile.record as record_module  # noqa: PLC0415

    src = _input(tmp_path / "in")
    one = read_wheel(src, tmp_path / "w1", wanted=lambda name: True)
    monkeypatch.setattr(record_module, "_PARALLEL_BYTES", 0)
    monkeypatch.setattr(record_module.os, "cpu_count", lambda: 4)
    many = read_wheel(src, tmp_path / "w2", wanted=lambda name: True)
    assert [(m.arcname, m.size, m.stored) for m in one.members] == [
        (m.arcname, m.size, m.stored) for m in many.members
    ]
    for m in many.members:
        assert m.path.read_bytes() == (tmp_path / "w1" / m.arcname).read_bytes()

    bad = _input(tmp_path / "bad", change={"demo/__init__.py": b"x = 9\n",
                                           "demo/big.bin": BIG[:-1] + b"!"})  # fmt: skip
    for _ in range(5):
        with pytest.raises(RepairError, match=r"hash / size of demo/__init__\.py didn't match"):
            read_wheel(bad, tmp_path / "w3", wanted=lambda name: False)
