"""The ELF reader on broken input: every prefix of a real library and thousands of
random mutations give an ElfInfo or an ElfError, never another exception, and quickly."""

from __future__ import annotations

import io
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Literal

import pytest
from elftools.elf.elffile import ELFFile
from hypothesis import event, given, settings
from hypothesis import strategies as st

from elfwriter import EM_S390, ElfSpec, build
from nativelib.elf import ElfInfo, parse_elf_bytes, parse_elf_stream, read_elf
from nativelib.errors import ElfError, NotElfError

MAGIC = b"\x7fELF"
#: The most one parse may take; the largest input here is ~20 kB.
CASE_LIMIT_S = 0.5

LIB_C = r"""
#include <math.h>
#include <stdio.h>
#include <string.h>
int trunc_copy(char *d, const char *s, size_t n) { memcpy(d, s, n); return (int)strlen(d); }
double trunc_cos(double x) { return cos(x); }
int trunc_say(const char *s) { return printf("%s\n", s); }
"""
LIB_MAP = """
TRUNC_1.0 { global: trunc_copy; local: *; };
TRUNC_2.0 { global: trunc_cos; trunc_say; } TRUNC_1.0;
"""


@dataclass(frozen=True)
class Sample:
    """An ELF image, what it parses to, and where its headers and dynamic data lie."""

    name: str
    data: bytes
    info: ElfInfo
    hot: tuple[range, ...]  # program headers, dynamic segment, strings, version sections
    load_end: int  # the end of the last PT_LOAD's file image
    dynamic_offset: int


def _sample(name: str, data: bytes) -> Sample:
    elf = ELFFile(io.BytesIO(data))
    hot = {range(elf["e_phoff"], elf["e_phoff"] + elf["e_phnum"] * elf["e_phentsize"])}
    for section in elf.iter_sections():
        if section.name in {".dynstr", ".gnu.version_r", ".gnu.version_d"}:
            hot.add(range(section["sh_offset"], section["sh_offset"] + section["sh_size"]))
    segments = list(elf.iter_segments())
    for segment in segments:
        if segment["p_type"] in {"PT_DYNAMIC", "PT_INTERP"}:
            hot.add(range(segment["p_offset"], segment["p_offset"] + segment["p_filesz"]))
    load_end = max(s["p_offset"] + s["p_filesz"] for s in segments if s["p_type"] == "PT_LOAD")
    (dynamic,) = (s for s in segments if s["p_type"] == "PT_DYNAMIC")
    hot_regions = tuple(sorted(hot, key=lambda r: r.start))
    info = parse_elf_bytes(data, name)
    return Sample(name, data, info, hot_regions, load_end, dynamic["p_offset"])


@pytest.fixture(scope="module")
def real_lib(tmp_path_factory: pytest.TempPathFactory) -> Sample:
    """A small shared library with a soname, runpath, version needs and definitions,
    compiled here; the system's libz when there is no compiler."""
    if shutil.which("gcc") is None:
        libz = Path("/usr/lib/x86_64-linux-gnu/libz.so.1")
        if not libz.exists():
            pytest.skip("neither gcc nor libz.so.1 to take a real library from")
        real = libz.resolve()
        return _sample(real.name, real.read_bytes())
    out = tmp_path_factory.mktemp("trunc")
    (out / "x.c").write_text(LIB_C)
    (out / "x.map").write_text(LIB_MAP)
    subprocess.run(
        ["gcc", "-O1", "-fPIC", "-shared", "-Wl,-soname,libtrunc.so.1",
         "-Wl,--version-script=x.map", "-Wl,--enable-new-dtags",
         "-Wl,-rpath,$ORIGIN/../lib::/opt/trunc", "-o", "libtrunc.so", "x.c", "-lm"],
        cwd=out, check=True, capture_output=True,
    )  # fmt: skip
    sample = _sample("libtrunc.so", (out / "libtrunc.so").read_bytes())
    info = sample.info
    assert info.soname == "libtrunc.so.1"
    assert info.runpath == ("$ORIGIN/../lib", "", "/opt/trunc")
    assert info.version_definitions == ("TRUNC_1.0", "TRUNC_2.0")
    assert "libc.so.6" in info.version_needs and "libm.so.6" in info.version_needs
    assert len(sample.data) > 8192
    return sample


def _writer_sample(elf_class: int) -> Sample:
    """A hand-made big-endian image (tests/elfwriter.py) with every fact the reader reads."""
    spec = ElfSpec(
        elf_class=elf_class,
        byte_order="big",
        machine=EM_S390,
        soname="libbig.so.1",
        needed=["libc.so.6", "libm.so.6"],
        rpath="a::b",
        runpath="$ORIGIN",
        version_needs=[("libc.so.6", [("GLIBC_2.2", False), ("GLIBC_2.3", True)])],
        version_definitions=["BIG_1", "BIG_2"],
        interpreter="/lib/ld64.so.1",
    )
    return _sample(f"big{elf_class}.so", bytes(build(spec).data))


@pytest.fixture(scope="module")
def big64() -> Sample:
    return _writer_sample(64)


@pytest.fixture(scope="module")
def big32() -> Sample:
    return _writer_sample(32)


@pytest.fixture(params=["real", "big64", "big32"])
def sample(request: pytest.FixtureRequest) -> Sample:
    """Each of the three samples in turn."""
    fixture = {"real": "real_lib"}.get(request.param, request.param)
    result: Sample = request.getfixturevalue(fixture)
    return result


def outcome(parse: object, data: bytes, name: str) -> tuple[object, ...]:
    """What parsing gives, comparable across readers: the facts or the error."""
    try:
        if parse is read_elf:
            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp, Path(name).name)  # never outside tmp
                path.write_bytes(data)
                info = read_elf(path)
        elif parse is parse_elf_stream:
            info = parse_elf_stream(io.BytesIO(data), len(data), name)
        else:
            info = parse_elf_bytes(data, name)
    except ElfError as e:
        assert e.reason and str(e).endswith(e.reason)
        return (type(e).__name__, e.reason)
    return ("ok", info._replace(path=""))


def check_one(data: bytes, name: str) -> tuple[object, ...]:
    """Parse ``data`` from bytes and from a stream; both agree, and any error is an ElfError
    naming ``name`` (a NotElfError only without the ELF magic). Returns the outcome."""
    start = time.perf_counter()
    try:
        info = parse_elf_bytes(data, name)
    except NotElfError as e:
        assert not data.startswith(MAGIC), e
        assert e.path == name and "not an ELF file" in e.reason
        result: tuple[object, ...] = ("NotElfError", e.reason)
    except ElfError as e:
        assert data.startswith(MAGIC), e
        assert e.path == name and str(e) == f"{name}: {e.reason}"
        result = ("ElfError", e.reason)
    else:
        assert info.path == name
        assert info.elf_class in (32, 64) and info.byte_order in ("little", "big")
        assert all(isinstance(s, str) for s in (*info.needed, *info.rpath, *info.runpath))
        result = ("ok", info._replace(path=""))
    elapsed = time.perf_counter() - start
    assert elapsed < CASE_LIMIT_S, f"{elapsed:.2f} s for one parse"
    assert outcome(parse_elf_stream, data, name) == result
    return result


# --------------------------------------------------------------------------- truncation


def _prefix_lengths(sample: Sample) -> list[int]:
    size, end = len(sample.data), sample.load_end
    return sorted({*range(min(size, 8192) + 1), *range(8193, size, 97), end - 1, end, size})


def test_every_prefix(sample: Sample) -> None:
    full = ("ok", sample.info._replace(path=""))
    lengths = _prefix_lengths(sample)
    parsed: list[int] = []
    worst = 0.0
    begun = time.perf_counter()
    for n in lengths:
        start = time.perf_counter()
        result = check_one(sample.data[:n], sample.name)
        worst = max(worst, time.perf_counter() - start)
        if n < 4:
            assert result[0] == "NotElfError", (n, result)
        elif result[0] == "ok":
            assert result == full, n  # a prefix never parses to other facts
            parsed.append(n)
        else:
            assert result[0] == "ElfError", (n, result)
    # Once a prefix parses, every longer one does; the whole loadable image is enough.
    assert parsed, "not even the whole file parsed"
    assert parsed == [n for n in lengths if n >= parsed[0]]
    assert sample.dynamic_offset < parsed[0] <= sample.load_end
    assert worst < CASE_LIMIT_S
    assert time.perf_counter() - begun < 60


def test_prefixes_read_from_files_agree(real_lib: Sample) -> None:
    data = real_lib.data
    for n in [*range(0, len(data), 331), len(data)]:
        expected = outcome(parse_elf_bytes, data[:n], real_lib.name)
        on_disk = outcome(read_elf, data[:n], real_lib.name)
        # read_elf reports the real path; the reason and the facts are the same.
        assert on_disk == expected, n


# --------------------------------------------------------------------------- mutation

INTERESTING_WORDS = [0, 1, 2, 0x7F, 0x80, 0xFF, 0xFFFF, 0x10000, 0x7FFFFFFF, 0x80000000, 2**32 - 1]


@st.composite
def mutated(draw: st.DrawFn, sample: Sample) -> bytes:
    """``sample.data`` with 1-20 overwrites, each a byte or a 32-bit word (in the image's
    byte order): half in the first 4 kB, a quarter inside the program headers, dynamic
    segment, strings or version sections, a quarter anywhere but in the magic; then, one
    time in five, a truncation. Few land in the ELF identification, where most would end
    the parse at once."""
    buf = bytearray(sample.data)
    endian: Literal["little", "big"] = "little" if sample.info.byte_order == "little" else "big"
    for _ in range(draw(st.integers(1, 20))):
        # Hypothesis draws the bounds of a range often: 0 and 31 are the common cases.
        where = draw(st.integers(0, 31))
        if where == 7:
            pos = draw(st.integers(4, 15))  # the ELF identification, after the magic
        elif where < 16:
            pos = draw(st.integers(16, min(4096, len(buf)) - 1))
        elif where < 24:
            region = draw(st.sampled_from(sample.hot))
            pos = draw(st.integers(region.start, region.stop - 1))
        else:
            pos = draw(st.integers(16, len(buf) - 1))
        if draw(st.booleans()):
            buf[pos] = draw(st.integers(0, 255))
        else:
            word = draw(st.sampled_from(INTERESTING_WORDS) | st.integers(0, 2**32 - 1))
            pos = min(pos, len(buf) - 4)
            buf[pos : pos + 4] = word.to_bytes(4, endian)
    if draw(st.integers(0, 4)) == 0:
        del buf[draw(st.integers(0, len(buf))) :]
    return bytes(buf)


def _check_mutation(data: bytes, sample: Sample) -> None:
    result = check_one(data, sample.name)
    if result[0] == "ok":
        event("parsed" + (" (same facts)" if result[1] == sample.info._replace(path="") else ""))
    else:
        event(f"{result[0]}: {str(result[1]).split(' at ')[0].split(':')[0][:40]}")


DEADLINE = timedelta(milliseconds=500)


@settings(max_examples=3000, deadline=DEADLINE)
@given(data=st.data())
def test_mutated_real_library(real_lib: Sample, data: st.DataObject) -> None:
    _check_mutation(data.draw(mutated(real_lib)), real_lib)


@settings(max_examples=1000, deadline=DEADLINE)
@given(data=st.data())
def test_mutated_big_endian_elf64(big64: Sample, data: st.DataObject) -> None:
    _check_mutation(data.draw(mutated(big64)), big64)


@settings(max_examples=500, deadline=DEADLINE)
@given(data=st.data())
def test_mutated_big_endian_elf32(big32: Sample, data: st.DataObject) -> None:
    _check_mutation(data.draw(mutated(big32)), big32)


@settings(max_examples=150, deadline=DEADLINE)
@given(data=st.data())
def test_mutated_files_agree_with_bytes(real_lib: Sample, data: st.DataObject) -> None:
    mutant = data.draw(mutated(real_lib))
    assert outcome(read_elf, mutant, "m.so") == outcome(parse_elf_bytes, mutant, "m.so")


def test_hot_regions_cover_what_the_reader_reads(sample: Sample) -> None:
    # Guards what the mutations aim at: pyelftools found the parts the reader reads.
    assert len(sample.hot) >= 5
    assert any(r.start == sample.dynamic_offset for r in sample.hot)
    assert all(0 < r.start < r.stop <= len(sample.data) for r in sample.hot)
