"""Zip bombs (issue 13, item 2): a wheel member compressed with bzip2 or LZMA is refused
by every wheel reader before anything is expanded, and a deflate member that inflates to
more than its header declares stops there with an error.

The bombs are built here, small on disk: a bzip2 stream of 2 GiB of zeros made of one
bzip2 block repeated (about 10 KB), a deflate stream of 1.25 GiB of zeros made of one
byte-aligned full-flush segment repeated (about 1.3 MB). Each command runs in a child
under ``RLIMIT_AS`` of 1 GiB and a time bound.
"""

from __future__ import annotations

import bz2
import io
import json
import os
import resource
import struct
import subprocess
import sys
import zipfile
import zlib
from pathlib import Path

import pytest

import archive_corpus as corpus
from nativelib.archive import extract
from nativelib.errors import SourceError, WheelError
from nativelib.safezip import (
    CONDA_METHODS,
    MAX_READ,
    SafeZipFile,
    ZipMemberError,
)
from nativelib.wheelfile import validate_wheel

GIB = 1 << 30
DIST = "bomb-1.0.dist-info"
WHEEL_NAME = "bomb-1.0-py3-none-linux_x86_64.whl"
TIMEOUT = 20  # seconds: a few in practice; generous for a loaded test machine

# -------------------------------------------------------------------------- the bombs


def bzip2_zeros(blocks: int) -> tuple[bytes, int]:
    """A bzip2 stream of ``blocks`` identical blocks of zeros, and its decompressed size.

    One block (level 1: 100 kB after bzip2's first run-length step) holds 5,000,000
    zeros in about 40 bytes; the stream is that block's bits repeated, then the
    end-of-stream marker with the combined CRC."""
    per_block = 5_000_000
    one = bz2.compress(bytes(per_block), 1)
    bits = bin(int.from_bytes(one, "big"))[2:].zfill(len(one) * 8)
    eos = format(0x177245385090, "048b")
    end = next(len(bits) - pad for pad in range(8) if bits[len(bits) - pad - 80 :].startswith(eos))
    block = bits[32 : end - 80]
    assert block.startswith(format(0x314159265359, "048b"))
    crc = int(block[48:80], 2)
    combined = 0
    for _ in range(blocks):
        combined = (((combined << 1) | (combined >> 31)) & 0xFFFFFFFF) ^ crc
    stream = bits[:32] + block * blocks + eos + format(combined, "032b")
    stream += "0" * (-len(stream) % 8)
    return int(stream, 2).to_bytes(len(stream) // 8, "big"), per_block * blocks


def deflate_zeros(mib: int) -> tuple[bytes, int]:
    """A raw deflate stream of ``mib`` MiB of zeros: one full-flush segment repeated
    (byte-aligned, no back references across it), then an empty final block."""
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    segment = c.compress(bytes(1 << 20)) + c.flush(zlib.Z_FULL_FLUSH)
    return segment * mib + b"\x03\x00", mib << 20


def zip_raw(members: list[tuple[str, int, bytes, int, int]]) -> bytes:
    """A zip of ``(name, method, stored bytes, declared size, crc)`` members, written
    byte by byte so that the headers can say anything."""
    out = io.BytesIO()
    central = []
    for name, method, data, size, crc in members:
        raw = name.encode()
        offset = out.tell()
        out.write(struct.pack("<4s5H3I2H", b"PK\x03\x04", 20, 0, method, 0, 0x21, crc,
                              len(data), size, len(raw), 0))  # fmt: skip
        out.write(raw + data)
        central.append(struct.pack("<4s6H3I5H2I", b"PK\x01\x02", 0x0314, 20, 0, method, 0,
                                   0x21, crc, len(data), size, len(raw), 0, 0, 0, 0,
                                   0o100644 << 16, offset) + raw)  # fmt: skip
    start = out.tell()
    for entry in central:
        out.write(entry)
    out.write(struct.pack("<4s4H2IH", b"PK\x05\x06", 0, 0, len(central), len(central),
                          out.tell() - start, start, 0))  # fmt: skip
    return out.getvalue()


def _stored(name: str, data: bytes) -> tuple[str, int, bytes, int, int]:
    return (name, zipfile.ZIP_STORED, data, len(data), zlib.crc32(data))


def _dist_info(record: bytes = b"") -> list[tuple[str, int, bytes, int, int]]:
    return [
        _stored(f"{DIST}/METADATA", b"Metadata-Version: 2.1\nName: bomb\nVersion: 1.0\n"),
        _stored(f"{DIST}/WHEEL", b"Wheel-Version: 1.0\nRoot-Is-Purelib: false\n"),
        _stored(f"{DIST}/RECORD", record),
    ]


#: The bomb is the library ``build gomp`` looks for, and RECORD lists it (with a hash
#: that cannot match: reading it is what a reader must not do).
MEMBER = "bomb/libgomp.so.1"


def _record(size: int) -> bytes:
    lines = [f"{MEMBER},sha256=AAAA,{size}", f"{DIST}/RECORD,,"]
    lines += [f"{DIST}/{name},sha256=AAAA,1" for name in ("METADATA", "WHEEL")]
    return "\n".join(lines).encode()


def bzip2_wheel(path: Path) -> Path:
    data, size = bzip2_zeros(430)  # 2.15 GB of zeros
    member = (MEMBER, zipfile.ZIP_BZIP2, data, size, 0)
    path.write_bytes(zip_raw([member, *_dist_info(_record(size))]))
    return path


def lzma_wheel(path: Path) -> Path:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr(MEMBER, bytes(1 << 20), compress_type=zipfile.ZIP_LZMA)
        for name, _m, data, _s, _c in _dist_info(_record(1 << 20)):
            zf.writestr(name, data)
    path.write_bytes(buf.getvalue())
    return path


def understated_wheel(path: Path, member: str) -> Path:
    """``member`` declares 100 bytes (with their CRC) and inflates to 1.25 GiB."""
    data, _size = deflate_zeros(1280)
    bomb = (member, zipfile.ZIP_DEFLATED, data, 100, zlib.crc32(bytes(100)))
    others = [m for m in _dist_info(_record(100)) if m[0] != member]
    path.write_bytes(zip_raw([bomb, *others]))
    return path


# ------------------------------------------------------------------ running in a child


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (GIB, GIB))


def nativelib(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``nativelib ARGS`` in a child under RLIMIT_AS 1 GiB; fails the test past TIMEOUT."""
    return subprocess.run(
        [sys.executable, "-m", "nativelib", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        preexec_fn=_limit_memory,
        cwd=cwd,
        env={**os.environ, "NO_COLOR": "1"},
    )


def _clean(proc: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in proc.stderr, proc.stderr
    assert "MemoryError" not in proc.stderr + proc.stdout


BOMBS = {
    "bzip2": (bzip2_wheel, "is compressed with bzip2 (zip method 12)"),
    "lzma": (lzma_wheel, "is compressed with lzma (zip method 14)"),
}


@pytest.fixture(params=sorted(BOMBS))
def bomb(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Path, str]:
    make, reason = BOMBS[request.param]
    (tmp_path / "in").mkdir()
    return make(tmp_path / "in" / WHEEL_NAME), reason


# ---------------------------------------------------------------------------- commands


def test_repair_refuses(bomb: tuple[Path, str], tmp_path: Path) -> None:
    wheel, reason = bomb
    out = tmp_path / "out"
    proc = nativelib("repair", wheel, "-w", out, cwd=tmp_path)
    _clean(proc)
    assert proc.returncode == 2, proc.stderr
    assert f"error: {wheel}: member 'bomb/libgomp.so.1' {reason}" in proc.stderr
    assert "must be stored or deflated" in proc.stderr
    assert not out.exists() or not any(out.iterdir())


def test_inspect_reports(bomb: tuple[Path, str], tmp_path: Path) -> None:
    wheel, reason = bomb
    proc = nativelib("inspect", wheel, cwd=tmp_path)
    _clean(proc)
    assert proc.returncode == 1, proc.stderr
    assert "cannot read as a wheel" in proc.stderr
    assert f"member 'bomb/libgomp.so.1' {reason}" in proc.stderr


def test_doctor_reports(bomb: tuple[Path, str], tmp_path: Path) -> None:
    wheel, reason = bomb
    proc = nativelib("doctor", "--json", "--path", wheel.parent, cwd=tmp_path)
    _clean(proc)
    # (a finding, of the severity the doctor gives unreadable files: a warning today)
    assert proc.returncode in (0, 1), proc.stdout + proc.stderr
    findings = [f for f in json.loads(proc.stdout)["findings"] if str(wheel) in json.dumps(f)]
    assert len(findings) == 1, proc.stdout
    text = json.dumps(findings[0])
    assert "cannot read as a wheel" in text
    assert f"member 'bomb/libgomp.so.1' {reason}" in text


def test_build_refuses(bomb: tuple[Path, str], tmp_path: Path) -> None:
    wheel, reason = bomb
    out = tmp_path / "out"
    proc = nativelib("build", "gomp", "--from", f"wheel:{wheel}", "-w", out, cwd=tmp_path)
    _clean(proc)
    assert proc.returncode == 2, proc.stderr
    assert f"zip member 'bomb/libgomp.so.1' {reason}" in proc.stderr
    assert str(wheel) in proc.stderr
    assert not out.exists() or not any(out.iterdir())


def test_repair_understated_record(tmp_path: Path) -> None:
    """RECORD (read whole) declares 100 bytes and inflates to 1.25 GiB."""
    (tmp_path / "in").mkdir()
    wheel = understated_wheel(tmp_path / "in" / WHEEL_NAME, f"{DIST}/RECORD")
    out = tmp_path / "out"
    proc = nativelib("repair", wheel, "-w", out, cwd=tmp_path)
    _clean(proc)
    assert proc.returncode == 2, proc.stderr
    assert f"cannot read {DIST}/RECORD: inflates to more than the 100 bytes" in proc.stderr
    assert not out.exists() or not any(out.iterdir())


def test_build_understated_member(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    wheel = understated_wheel(tmp_path / "in" / WHEEL_NAME, MEMBER)
    out = tmp_path / "out"
    proc = nativelib("build", "gomp", "--from", f"wheel:{wheel}", "-w", out, cwd=tmp_path)
    _clean(proc)
    assert proc.returncode == 2, proc.stderr
    assert "member 'bomb/libgomp.so.1': inflates to more than the 100 bytes" in proc.stderr
    assert not out.exists() or not any(out.iterdir())


# ----------------------------------------------------------------------- the reader


def _one(tmp_path: Path, member: tuple[str, int, bytes, int, int]) -> Path:
    path = tmp_path / "x.zip"
    path.write_bytes(zip_raw([member]))
    return path


def test_reader_stops_at_the_declared_size(tmp_path: Path) -> None:
    data, _size = deflate_zeros(4)
    path = _one(tmp_path, ("a", zipfile.ZIP_DEFLATED, data, 10, zlib.crc32(bytes(10))))
    with (
        SafeZipFile(path) as zf,
        zf.open("a") as f,
        pytest.raises(ZipMemberError, match="inflates to more than the 10 bytes") as e,
    ):
        f.read(10)
    assert e.value.member == "a"
    with SafeZipFile(path) as zf, pytest.raises(ZipMemberError, match="inflates to more"):
        zf.read("a")


@pytest.mark.parametrize(
    ("size", "crc", "reason"),
    [
        (20, zlib.crc32(bytes(20)), "is truncated: it holds 10 bytes, its header declares 20"),
        (10, 1234, "Bad CRC-32"),
    ],
)
def test_reader_checks_size_and_crc(tmp_path: Path, size: int, crc: int, reason: str) -> None:
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    data = c.compress(bytes(10)) + c.flush()
    path = _one(tmp_path, ("a", zipfile.ZIP_DEFLATED, data, size, crc))
    with SafeZipFile(path) as zf, pytest.raises(ZipMemberError, match=reason):
        zf.read("a")


def test_reader_reads_what_zipfile_reads(tmp_path: Path) -> None:
    path = tmp_path / "x.zip"
    payload = os.urandom(300_000) + bytes(300_000)
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("deflated", payload, compress_type=zipfile.ZIP_DEFLATED)
        zf.writestr("stored", payload, compress_type=zipfile.ZIP_STORED)
        zf.writestr("empty", b"", compress_type=zipfile.ZIP_DEFLATED)
    with SafeZipFile(path) as zf:
        assert zf.read("deflated") == payload
        assert zf.read("stored") == payload
        assert zf.read("empty") == b""
        with zf.open("deflated") as f:
            assert f.read(5) == payload[:5]
            assert f.read() == payload[5:]


def test_reader_refusals(tmp_path: Path) -> None:
    data = bz2.compress(b"x")
    bzip = _one(tmp_path, ("a", zipfile.ZIP_BZIP2, data, 1, zlib.crc32(b"x")))
    with pytest.raises(ZipMemberError, match=r"a wheel's members must be stored or deflated"):
        SafeZipFile(bzip)
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    deflated = c.compress(b"x") + c.flush()
    conda = _one(tmp_path, ("a", zipfile.ZIP_DEFLATED, deflated, 1, zlib.crc32(b"x")))
    with pytest.raises(
        ZipMemberError,
        match=r"is compressed with deflate \(zip method 8\): the members of a .conda.s outer zip must be stored$",
    ):
        SafeZipFile(conda, methods=CONDA_METHODS, kind="the members of a .conda's outer zip")
    big = _one(tmp_path, ("a", zipfile.ZIP_DEFLATED, deflated, MAX_READ + 1, 0))
    with SafeZipFile(big) as zf, pytest.raises(ZipMemberError, match="read whole"):
        zf.read("a")


# ------------------------------------------------------------------ the other readers


def test_validator_refuses(tmp_path: Path) -> None:
    wheel = lzma_wheel(tmp_path / WHEEL_NAME)
    with pytest.raises(WheelError, match=f"member '{MEMBER}' is compressed with lzma") as e:
        validate_wheel(wheel)
    assert e.value.path == str(wheel)


@pytest.mark.parametrize("stored", [True, False])
def test_conda_outer_zip_is_stored(tmp_path: Path, stored: bool) -> None:
    """conda-package-handling and conda-package-streaming write the outer zip stored."""
    info = corpus.compress(corpus.tar_bytes(corpus.conda_info_entries()), "zstd")
    pkg = corpus.compress(corpus.tar_bytes([]), "zstd")
    outer = [("info-a-1-0.tar.zst", info), ("pkg-a-1-0.tar.zst", pkg)]
    path = tmp_path / "a-1-0.conda"
    path.write_bytes(corpus.zip_bytes([], extra=outer, stored=stored))
    if stored:
        extract(path, tmp_path / "out")
        return
    with pytest.raises(SourceError, match="outer zip must be stored") as e:
        extract(path, tmp_path / "out")
    assert "zip member 'info-a-1-0.tar.zst' is compressed with deflate" in e.value.reason
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
