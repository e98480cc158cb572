"""The ELF reader on images made by hand (tests/elfwriter.py): both classes and byte
orders read back exactly and agree with binutils' readelf; each malformation is an
ElfError naming its cause; non-ELF input and special files are refused promptly."""

from __future__ import annotations

import io
import os
import pickle
import shutil
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from elfwriter import (
    DT_NEEDED,
    DT_NULL,
    DT_RPATH,
    DT_RUNPATH,
    DT_SONAME,
    DT_STRSZ,
    DT_STRTAB,
    DT_VERDEF,
    DT_VERDEFNUM,
    DT_VERNEED,
    DT_VERNEEDNUM,
    EM_386,
    EM_AARCH64,
    EM_MIPS,
    EM_PPC64,
    EM_S390,
    ET_EXEC,
    PN_XNUM,
    VER_FLG_WEAK,
    ElfImage,
    ElfSpec,
    build,
)
from nativelib.elf import (
    MAX_DYNAMIC_ENTRIES,
    ElfInfo,
    VersionNeed,
    VersionRequirement,
    parse_elf_bytes,
    parse_elf_stream,
    read_elf,
)
from nativelib.errors import ElfError, NotElfError
from readelf import readelf

LAYOUTS = [
    pytest.param(64, "big", EM_PPC64, id="elf64-big-ppc64"),
    pytest.param(64, "big", EM_S390, id="elf64-big-s390x"),
    pytest.param(32, "big", EM_MIPS, id="elf32-big-mips"),
    pytest.param(64, "little", EM_AARCH64, id="elf64-little-aarch64"),
    pytest.param(32, "little", EM_386, id="elf32-little-i386"),
]

NEEDS = [
    ("libc.so.6", [("GLIBC_2.2.5", False), ("GLIBC_2.34", True), ("GLIBC_2.17", False)]),
    ("libm.so.6", [("GLIBC_2.29", True)]),
]


def full_spec(elf_class: int = 64, byte_order: str = "big", machine: int = EM_PPC64) -> ElfSpec:
    return ElfSpec(
        elf_class=elf_class,
        byte_order=byte_order,
        machine=machine,
        soname="libcraft.so.1",
        needed=["libm.so.6", "libz.so.1", "libc.so.6"],
        rpath="a::b",
        runpath="$ORIGIN/../lib:/opt/x:",
        version_needs=NEEDS,
        version_definitions=["CRAFT_1.0", "CRAFT_2.0"],
        interpreter="/lib/ld64.so.2",
    )


def parse(data: bytes | bytearray, name: str = "crafted.so") -> ElfInfo:
    return parse_elf_bytes(bytes(data), name)


def facts(info: ElfInfo) -> ElfInfo:
    """``info`` without its path, to compare what two reads found."""
    return info._replace(path="")


# --------------------------------------------------------------------------- exact facts


@pytest.mark.parametrize(("elf_class", "byte_order", "machine"), LAYOUTS)
@pytest.mark.parametrize("section_headers", [True, False], ids=["shdrs", "no-shdrs"])
def test_every_fact_reads_back(
    elf_class: int, byte_order: str, machine: int, section_headers: bool
) -> None:
    spec = replace(full_spec(elf_class, byte_order, machine), section_headers=section_headers)
    info = parse(build(spec).data, "img.so")
    assert info.path == "img.so"
    assert (info.elf_class, info.byte_order, info.machine) == (elf_class, byte_order, machine)
    assert info.type == 3
    assert info.soname == "libcraft.so.1"
    assert info.needed == ("libm.so.6", "libz.so.1", "libc.so.6")
    assert info.rpath == ("a", "", "b")
    assert info.runpath == ("$ORIGIN/../lib", "/opt/x", "")
    assert info.version_requirements == (
        VersionRequirement(
            "libc.so.6",
            (
                VersionNeed("GLIBC_2.2.5", weak=False),
                VersionNeed("GLIBC_2.34", weak=True),
                VersionNeed("GLIBC_2.17", weak=False),
            ),
        ),
        VersionRequirement("libm.so.6", (VersionNeed("GLIBC_2.29", weak=True),)),
    )
    assert info.version_needs == {
        "libc.so.6": ("GLIBC_2.2.5", "GLIBC_2.34", "GLIBC_2.17"),
        "libm.so.6": ("GLIBC_2.29",),
    }
    assert info.version_definitions == ("CRAFT_1.0", "CRAFT_2.0")
    assert info.interpreter == "/lib/ld64.so.2"


@pytest.mark.parametrize(("elf_class", "byte_order", "machine"), LAYOUTS)
def test_matches_readelf(elf_class: int, byte_order: str, machine: int, tmp_path: Path) -> None:
    if shutil.which("readelf") is None:
        pytest.skip("binutils' readelf is not installed")
    path = tmp_path / "libcraft.so.1"
    path.write_bytes(build(full_spec(elf_class, byte_order, machine)).data)
    info = read_elf(path)
    expected = readelf([str(path)])[str(path)]
    assert expected.stderr == ""  # readelf finds nothing wrong with the writer's image
    assert expected.has_version_sections
    assert info.soname == expected.soname == "libcraft.so.1"
    assert list(info.needed) == expected.needed
    assert list(info.rpath) == expected.rpath
    assert list(info.runpath) == expected.runpath
    ours = [(r.file, [(v.name, v.weak) for v in r.versions]) for r in info.version_requirements]
    assert ours == expected.version_needs
    assert list(info.version_definitions) == expected.version_definitions


def test_minimal_image_has_no_optional_facts() -> None:
    info = parse(build(ElfSpec(needed=["libc.so.6"], section_headers=False)).data)
    assert info.needed == ("libc.so.6",)
    assert info.soname is None and info.interpreter is None
    assert info.rpath == () and info.runpath == ()
    assert info.version_requirements == () and info.version_definitions == ()
    assert info.version_needs == {}


def test_executable_without_dynamic_segment_has_only_its_interpreter() -> None:
    img = build(replace(full_spec(), type=ET_EXEC))
    img.set("phdr[1]", "p_type", 0)  # PT_DYNAMIC -> PT_NULL
    info = parse(img.data)
    assert info.type == ET_EXEC
    assert info.interpreter == "/lib/ld64.so.2"
    assert info.soname is None and info.needed == () and info.version_requirements == ()


def test_pn_xnum_takes_the_count_from_section_header_0(tmp_path: Path) -> None:
    img = build(full_spec(32, "big", EM_MIPS))
    original = parse(img.data)
    img.set("ehdr", "e_phnum", PN_XNUM).set("shdr[0]", "sh_info", 3)
    assert facts(parse(img.data)) == facts(original)
    path = tmp_path / "xnum.so"
    path.write_bytes(img.data)
    assert facts(read_elf(path)) == facts(original)
    # A count of 0 there: no program headers, so nothing dynamic is found.
    img.set("shdr[0]", "sh_info", 0)
    assert parse(img.data).soname is None


def test_no_program_headers_means_no_dynamic_facts() -> None:
    img = build(full_spec())
    info = parse(img.set("ehdr", "e_phnum", 0).data)
    assert (info.soname, info.needed, info.interpreter) == (None, (), None)
    assert info.elf_class == 64 and info.byte_order == "big"


def test_dt_null_ends_the_dynamic_segment() -> None:
    img = build(full_spec())
    # The first entry (the first DT_NEEDED) becomes DT_NULL: everything after is ignored.
    info = parse(img.set("dyn[0]", "d_tag", DT_NULL).data)
    assert info.needed == () and info.soname is None and info.version_requirements == ()


def test_dynamic_segment_without_dt_null_ends_at_its_size() -> None:
    img = build(full_spec())
    full = parse(img.data)
    entry = img.records["dyn[1]"][1] - img.records["dyn[0]"][1]
    img.set("phdr[1]", "p_filesz", img.get("phdr[1]", "p_filesz") - entry)
    assert facts(parse(img.data)) == facts(full)


def test_entry_counts_and_chain_ends() -> None:
    full = parse(build(full_spec()).data)
    # DT_VERNEEDNUM huge: the chain still ends at vn_next == 0.
    assert facts(parse(build(full_spec()).set_dyn(DT_VERNEEDNUM, 0xFFFFFFFF).data)) == facts(full)
    assert facts(parse(build(full_spec()).set_dyn(DT_VERDEFNUM, 0xFFFF).data)) == facts(full)
    # Counts smaller than the chain are honoured.
    assert parse(build(full_spec()).set_dyn(DT_VERNEEDNUM, 1).data).version_needs == {
        "libc.so.6": ("GLIBC_2.2.5", "GLIBC_2.34", "GLIBC_2.17")
    }
    assert parse(build(full_spec()).set_dyn(DT_VERDEFNUM, 2).data).version_definitions == (
        "CRAFT_1.0",
    )
    assert parse(build(full_spec()).set("verneed[0]", "vn_cnt", 1).data).version_needs == {
        "libc.so.6": ("GLIBC_2.2.5",),
        "libm.so.6": ("GLIBC_2.29",),
    }
    # vn_next == 0 ends the chain before DT_VERNEEDNUM entries were read.
    info = parse(build(full_spec()).set("verneed[0]", "vn_next", 0).data)
    assert [r.file for r in info.version_requirements] == ["libc.so.6"]


@pytest.mark.parametrize("vn_cnt", [4, 0x100, 0xFFFF])
def test_overstated_vn_cnt_ends_at_vna_next_0(vn_cnt: int) -> None:
    # Like DT_VERNEEDNUM above, an aux count larger than the chain ends at vna_next == 0
    # (ld.so walks the chain by vna_next alone). The file has 7 version records in all, so
    # "more than 65536 version records" would be a false reason.
    full = parse(build(full_spec()).data)
    img = build(full_spec()).set("verneed[0]", "vn_cnt", vn_cnt)
    assert facts(parse(img.data)) == facts(full)


def test_flags() -> None:
    img = build(full_spec())
    img.set("vernaux[0][0]", "vna_flags", VER_FLG_WEAK).set("vernaux[1][0]", "vna_flags", 0)
    info = parse(img.data)
    assert [v.weak for r in info.version_requirements for v in r.versions] == [
        True,
        True,
        False,
        False,
    ]
    # Without VER_FLG_BASE the first definition (the soname) is a definition like the others.
    img.set("verdef[0]", "vd_flags", 0)
    assert parse(img.data).version_definitions == ("libcraft.so.1", "CRAFT_1.0", "CRAFT_2.0")


def test_invalid_utf8_is_kept_escaped() -> None:
    img = build(full_spec())
    img.data[img.offsets["dynstr"] + img.strings["libcraft.so.1"] + 3] = 0xFF
    assert parse(img.data).soname == "lib\\xffraft.so.1"


# --------------------------------------------------------------------------- malformed

Craft = Callable[[ElfImage], "bytearray | ElfImage"]


def _poke(index: int, value: int) -> Craft:
    def craft(img: ElfImage) -> bytearray:
        img.data[index] = value
        return img.data

    return craft


def _past(img: ElfImage) -> int:
    return len(img.data) + 0x1000


def _backwards_vn_next(img: ElfImage) -> ElfImage:
    # Back to the first entry, modulo 2**32 (what 32-bit pointer arithmetic would do).
    back = (img.records["verneed[0]"][1] - img.records["verneed[1]"][1]) % 2**32
    return img.set("verneed[1]", "vn_next", back).set_dyn(DT_VERNEEDNUM, 3)


def _unterminated_last_string(img: ElfImage) -> bytearray:
    # The last string of .dynstr is the last definition's name, CRAFT_2.0.
    end = img.offsets["dynstr"] + img.get(img.dyn_label(DT_STRSZ), "d_val")
    assert img.data[end - 10 : end] == b"CRAFT_2.0\0"
    img.data[end - 1] = ord("X")
    return img.data


def _chain_runs_on(img: ElfImage) -> ElfImage:
    return img.set_dyn(DT_VERNEEDNUM, 0xFFFFFFFF).set("verneed[1]", "vn_next", _past(img))


def _verneed_run(img: ElfImage, count: int) -> bytes:
    """``count`` chained Verneed entries with no aux entries and the empty file name."""
    step = len(img.pack("verneed"))
    return img.pack("verneed", vn_version=1, vn_next=step) * (count - 1) + img.pack(
        "verneed", vn_version=1
    )


def _too_many_version_records(img: ElfImage) -> ElfImage:
    # One more Verneed entry than the reader's MAX_VERSION_RECORDS.
    count = (1 << 16) + 1
    offset = img.append(_verneed_run(img, count))
    return img.set_dyn(DT_VERNEED, img.addr(offset)).set_dyn(DT_VERNEEDNUM, count)


MALFORMED: list[tuple[str, Craft, str]] = [
    ("ident-truncated", lambda img: img.data[:10], "the ELF identification needs 16 bytes"),
    ("header-truncated", lambda img: img.data[:40], "truncated: ELF header"),
    ("class-byte", _poke(4, 3), "invalid ELF class byte 0x3"),
    ("data-byte", _poke(5, 0), "invalid ELF data encoding byte 0x0"),
    ("ident-version", _poke(6, 2), "unsupported ELF identification version 2"),
    ("phoff-past-end", lambda i: i.set("ehdr", "e_phoff", _past(i)), "program header table"),
    ("phnum-past-end", lambda i: i.set("ehdr", "e_phnum", 999), "program header table"),
    ("phentsize-small", lambda i: i.set("ehdr", "e_phentsize", 8), "program header entry size 8"),
    (
        "xnum-shoff-past-end",
        lambda i: i.set("ehdr", "e_phnum", PN_XNUM).set("ehdr", "e_shoff", _past(i)),
        "truncated: section header 0",
    ),
    ("load-past-end", lambda i: i.set("phdr[0]", "p_filesz", _past(i)), "loadable segment 0"),
    (
        "dynamic-past-end",
        lambda i: i.set("phdr[1]", "p_filesz", _past(i)),
        "truncated: dynamic segment",
    ),
    (
        "interp-past-end",
        lambda i: i.set("phdr[2]", "p_offset", _past(i)),
        "truncated: interpreter segment",
    ),
    ("interp-empty", lambda i: i.set("phdr[2]", "p_filesz", 0), "interpreter segment"),
    (
        "interp-unterminated",
        lambda i: i.set("phdr[2]", "p_filesz", i.get("phdr[2]", "p_filesz") - 1),
        "interpreter path at",
    ),
    (
        "no-strtab",
        lambda i: i.set(i.dyn_label(DT_STRTAB), "d_tag", 21),  # DT_DEBUG
        "no DT_STRTAB",
    ),
    ("strtab-unmapped", lambda i: i.set_dyn(DT_STRTAB, 0x10), "DT_STRTAB address 0x10 is not"),
    (
        "needed-index-past-strsz",
        lambda i: i.set_dyn(DT_NEEDED, i.get(i.dyn_label(DT_STRSZ), "d_val")),
        "DT_NEEDED: string index",
    ),
    ("strsz-1", lambda i: i.set_dyn(DT_STRSZ, 1), "outside the dynamic string table (1 bytes)"),
    ("string-unterminated", _unterminated_last_string, "definition name: string at index"),
    ("soname-index", lambda i: i.set_dyn(DT_SONAME, 0xFFFFFFF), "DT_SONAME: string index"),
    ("rpath-index", lambda i: i.set_dyn(DT_RPATH, 0xFFFF), "DT_RPATH: string index"),
    ("runpath-index", lambda i: i.set_dyn(DT_RUNPATH, 0xFFFF), "DT_RUNPATH: string index"),
    ("verneed-unmapped", lambda i: i.set_dyn(DT_VERNEED, 8), "DT_VERNEED address 0x8"),
    ("verdef-unmapped", lambda i: i.set_dyn(DT_VERDEF, 8), "DT_VERDEF address 0x8"),
    ("vn-version-0", lambda i: i.set("verneed[0]", "vn_version", 0), "unsupported version 0"),
    ("vn-file", lambda i: i.set("verneed[1]", "vn_file", 0xFFFF), "version need file: string"),
    ("vn-aux", lambda i: i.set("verneed[0]", "vn_aux", _past(i)), "truncated: version need aux"),
    ("vn-next", lambda i: i.set("verneed[0]", "vn_next", _past(i)), "version need entry at"),
    ("vn-next-backwards", _backwards_vn_next, "truncated: version need entry at"),
    ("verneednum-huge", _chain_runs_on, "truncated: version need entry at"),
    ("vna-name", lambda i: i.set("vernaux[0][1]", "vna_name", 0xFFFF), "version need name"),
    ("vna-next", lambda i: i.set("vernaux[0][0]", "vna_next", _past(i)), "version need aux at"),
    ("vd-version-2", lambda i: i.set("verdef[1]", "vd_version", 2), "unsupported version 2"),
    ("vd-cnt-0", lambda i: i.set("verdef[2]", "vd_cnt", 0), "has no name"),
    ("vd-aux", lambda i: i.set("verdef[1]", "vd_aux", _past(i)), "version definition aux at"),
    ("vd-next", lambda i: i.set("verdef[0]", "vd_next", _past(i)), "version definition at"),
    ("vda-name", lambda i: i.set("verdaux[2]", "vda_name", 0xFFFF), "version definition name"),
    ("record-limit", _too_many_version_records, "more than 65536 version records"),
]


def _malformed(case: str, elf_class: int, byte_order: str) -> tuple[bytes, str]:
    _id, craft, fragment = next(c for c in MALFORMED if c[0] == case)
    img = build(full_spec(elf_class, byte_order, EM_PPC64 if elf_class == 64 else EM_MIPS))
    data = craft(img)
    return bytes(data.data if isinstance(data, ElfImage) else data), fragment


@pytest.mark.parametrize(("elf_class", "byte_order"), [(64, "big"), (32, "little")])
@pytest.mark.parametrize("case", [c[0] for c in MALFORMED])
def test_malformed_is_an_elf_error_with_its_reason(
    case: str, elf_class: int, byte_order: str, tmp_path: Path
) -> None:
    data, fragment = _malformed(case, elf_class, byte_order)
    with pytest.raises(ElfError) as from_bytes:
        parse_elf_bytes(data, "mem/libbad.so")
    assert not isinstance(from_bytes.value, NotElfError)
    assert from_bytes.value.path == "mem/libbad.so"
    assert fragment in from_bytes.value.reason
    assert str(from_bytes.value) == f"mem/libbad.so: {from_bytes.value.reason}"

    path = tmp_path / "libbad.so"
    path.write_bytes(data)
    with pytest.raises(ElfError) as from_file:
        read_elf(path)
    assert type(from_file.value) is ElfError
    assert from_file.value.path == os.path.realpath(path)
    assert str(from_file.value).startswith(f"{os.path.realpath(path)}: ")
    assert from_file.value.reason == from_bytes.value.reason

    with pytest.raises(ElfError) as from_stream:
        parse_elf_stream(io.BytesIO(data), len(data), "mem/libbad.so")
    assert from_stream.value.reason == from_bytes.value.reason


def test_version_record_limit_is_not_hit_at_the_limit() -> None:
    # The limit counts Verneed, Vernaux and Verdef records together; this image has no
    # Verdef, so 65536 Verneed entries are exactly the limit.
    count = 1 << 16
    for definitions in ([], ["V1"]):
        img = build(replace(full_spec(), version_definitions=definitions))
        offset = img.append(_verneed_run(img, count))
        img.set_dyn(DT_VERNEED, img.addr(offset)).set_dyn(DT_VERNEEDNUM, count)
        if definitions:  # two more records (BASE and V1): over the limit
            with pytest.raises(ElfError, match="more than 65536 version records"):
                parse(img.data)
        else:
            info = parse(img.data)
            assert len(info.version_requirements) == count
            assert info.version_requirements[-1] == VersionRequirement("", ())


def test_needed_and_search_path_entries_are_bounded() -> None:
    """A crafted file with 100,000 DT_NEEDED entries (or RPATH elements) is an ElfError,
    read promptly; the bound itself reads fine."""
    at_limit = [f"libn{i}.so" for i in range(MAX_DYNAMIC_ENTRIES)]
    info = parse(build(ElfSpec(needed=at_limit)).data)
    assert info.needed == tuple(at_limit)
    info = parse(build(ElfSpec(runpath=":".join(at_limit))).data)
    assert len(info.runpath) == MAX_DYNAMIC_ENTRIES
    many = [f"libn{i}.so" for i in range(100_000)]
    data = build(ElfSpec(needed=many)).data
    start = time.perf_counter()
    with pytest.raises(ElfError, match=f"more than {MAX_DYNAMIC_ENTRIES} DT_NEEDED entries"):
        parse(data)
    assert time.perf_counter() - start < 1
    for spec in (ElfSpec(rpath=":".join(many)), ElfSpec(runpath="a:" * MAX_DYNAMIC_ENTRIES)):
        kind = "DT_RPATH" if spec.rpath else "DT_RUNPATH"
        with pytest.raises(ElfError, match=f"more than {MAX_DYNAMIC_ENTRIES} {kind} entries"):
            parse(build(spec).data)


def test_errors_pickle() -> None:
    data, _fragment = _malformed("vd-version-2", 64, "big")
    with pytest.raises(ElfError) as e:
        parse_elf_bytes(data, "x.so")
    again = pickle.loads(pickle.dumps(e.value))
    assert type(again) is ElfError
    assert (again.path, again.reason, str(again)) == (e.value.path, e.value.reason, str(e.value))


# --------------------------------------------------------------------------- not ELF

NOT_ELF = [
    pytest.param(b"", id="empty"),
    pytest.param(b"\x7fEL", id="3-bytes"),
    pytest.param(b"hello, world\n" * 10, id="text"),
    pytest.param(
        b"/* GNU ld script */\nGROUP ( /lib/x86_64-linux-gnu/libc.so.6 )\n", id="ld-script"
    ),
    pytest.param(b"\x7fELG" + bytes(60), id="bad-magic"),
]


@pytest.mark.parametrize("data", NOT_ELF)
def test_not_elf(data: bytes, tmp_path: Path) -> None:
    with pytest.raises(NotElfError, match="not an ELF file") as from_bytes:
        parse_elf_bytes(data, "libc.so")
    assert from_bytes.value.path == "libc.so"
    assert isinstance(from_bytes.value, ValueError)
    path = tmp_path / "libc.so"
    path.write_bytes(data)
    with pytest.raises(NotElfError) as from_file:
        read_elf(path)
    assert str(from_file.value).startswith(f"{os.path.realpath(path)}: not an ELF file")
    assert ("empty" in from_file.value.reason) == (data == b"")


@pytest.mark.parametrize("length", range(4, 16))
def test_magic_but_short_is_malformed_not_not_elf(length: int) -> None:
    data = bytes(build(full_spec()).data[:length])
    with pytest.raises(ElfError, match="identification needs 16 bytes") as e:
        parse_elf_bytes(data, "short")
    assert not isinstance(e.value, NotElfError)


# --------------------------------------------------------------------------- special files


def _read_elf_promptly(path: Path, timeout: float = 5.0) -> ElfError:
    """The ElfError read_elf(path) raises, from a daemon thread that must end in time."""
    outcome: list[BaseException | ElfInfo] = []

    def target() -> None:
        try:
            outcome.append(read_elf(path))
        except BaseException as e:
            outcome.append(e)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(timeout)
    assert not thread.is_alive(), f"read_elf({path}) blocked for {timeout} s"
    assert len(outcome) == 1
    assert isinstance(outcome[0], ElfError), outcome[0]
    return outcome[0]


def test_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "lib.so"
    os.mkfifo(fifo)
    e = _read_elf_promptly(fifo)
    assert type(e) is ElfError
    assert e.path == os.path.realpath(fifo)
    assert e.reason == "not a regular file: it is a FIFO"
    # Through a symlink too; the FIFO's own path is reported.
    link = tmp_path / "link.so"
    link.symlink_to(fifo)
    e = _read_elf_promptly(link)
    assert e.path == os.path.realpath(fifo) and "not a regular file" in e.reason


def test_character_device_is_refused() -> None:
    e = _read_elf_promptly(Path("/dev/null"))
    assert e.path == "/dev/null"
    assert e.reason == "not a regular file: it is a character device"


def test_directory_is_refused(tmp_path: Path) -> None:
    e = _read_elf_promptly(tmp_path)
    assert e.reason == "not a regular file: it is a directory"


def test_socket_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.so"
    with socket.socket(socket.AF_UNIX) as sock:
        try:
            sock.bind(str(path))
        except OSError as err:  # e.g. a path too long for sun_path
            pytest.skip(f"cannot bind a unix socket here: {err}")
        e = _read_elf_promptly(path)
    assert e.reason == "not a regular file: it is a socket"


def test_symlink_reports_the_real_path(tmp_path: Path) -> None:
    real = tmp_path / "real" / "libcraft.so.1"
    real.parent.mkdir()
    real.write_bytes(build(full_spec()).data)
    link = tmp_path / "libcraft.so"
    link.symlink_to(Path("real") / "libcraft.so.1")
    link2 = tmp_path / "libcraft-again.so"
    link2.symlink_to(link)
    for name in (link, link2, str(link)):
        info = read_elf(name)
        assert info.path == str(real.resolve())
        assert facts(info) == facts(parse(real.read_bytes()))


def test_dangling_symlink(tmp_path: Path) -> None:
    link = tmp_path / "libgone.so"
    link.symlink_to(tmp_path / "nowhere" / "libgone.so.1")
    e = _read_elf_promptly(link)
    assert type(e) is ElfError
    assert e.path == os.path.join(os.path.realpath(tmp_path), "nowhere", "libgone.so.1")
    assert "cannot read" in e.reason


def test_symlink_loop(tmp_path: Path) -> None:
    (tmp_path / "a.so").symlink_to("b.so")
    (tmp_path / "b.so").symlink_to("a.so")
    e = _read_elf_promptly(tmp_path / "a.so")
    assert type(e) is ElfError
    assert e.path.startswith(os.path.realpath(tmp_path) + os.sep)


def test_missing_file(tmp_path: Path) -> None:
    e = _read_elf_promptly(tmp_path / "absent.so")
    assert "No such file" in e.reason


# --------------------------------------------------------------------------- streams


class CountingStream(io.BytesIO):
    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.consumed = 0

    def read(self, size: int | None = -1) -> bytes:
        chunk = super().read(size)
        self.consumed += len(chunk)
        return chunk


@pytest.mark.parametrize(("elf_class", "byte_order", "machine"), LAYOUTS)
def test_stream_equals_bytes(elf_class: int, byte_order: str, machine: int) -> None:
    data = bytes(build(full_spec(elf_class, byte_order, machine)).data)
    assert parse_elf_stream(io.BytesIO(data), len(data), "w!lib.so") == parse_elf_bytes(
        data, "w!lib.so"
    )


def test_stream_reads_only_the_prefix_it_needs() -> None:
    img = build(replace(full_spec(), section_headers=False))
    junk = bytes(range(256)) * 4096  # 1 MiB after the image (say, debug sections)
    stream = CountingStream(bytes(img.data) + junk)
    info = parse_elf_stream(stream, len(img.data) + len(junk), "w!lib.so")
    assert facts(info) == facts(parse(img.data))
    assert stream.consumed < len(junk)


def test_stream_shorter_than_its_size_is_an_error() -> None:
    data = bytes(build(full_spec()).data)
    with pytest.raises(ElfError, match="changed") as e:
        parse_elf_stream(io.BytesIO(data[:100]), len(data), "w!lib.so")
    assert not isinstance(e.value, NotElfError)


def test_stream_of_a_size_shorter_than_the_data_is_a_truncated_file() -> None:
    data = bytes(build(full_spec()).data)
    with pytest.raises(ElfError) as from_stream:
        parse_elf_stream(io.BytesIO(data), 300, "w!lib.so")
    with pytest.raises(ElfError) as from_bytes:
        parse_elf_bytes(data[:300], "w!lib.so")
    assert from_stream.value.reason == from_bytes.value.reason


# --------------------------------------------------------------------------- round trip

_name = st.text(st.characters(exclude_characters="\0:", exclude_categories=["Cs"]), max_size=12)


@st.composite
def specs(draw: st.DrawFn) -> ElfSpec:
    nonempty = _name.filter(bool)
    return ElfSpec(
        elf_class=draw(st.sampled_from([32, 64])),
        byte_order=draw(st.sampled_from(["little", "big"])),
        machine=draw(st.integers(0, 0xFFFF)),
        soname=draw(st.none() | nonempty),
        needed=draw(st.lists(nonempty, max_size=5)),
        rpath=draw(st.none() | st.lists(_name, min_size=1, max_size=4).map(":".join)),
        runpath=draw(st.none() | st.lists(_name, min_size=1, max_size=4).map(":".join)),
        version_needs=draw(
            st.lists(
                st.tuples(nonempty, st.lists(st.tuples(nonempty, st.booleans()), max_size=4)),
                max_size=4,
            )
        ),
        version_definitions=draw(st.lists(nonempty, max_size=4)),
        interpreter=draw(st.none() | nonempty),
        section_headers=draw(st.booleans()),
        vaddr=draw(st.sampled_from([0, 0x10000, 0x400000])),
    )


@settings(max_examples=300)
@given(spec=specs())
def test_round_trip(spec: ElfSpec) -> None:
    info = parse(build(spec).data)
    assert (info.elf_class, info.byte_order, info.machine) == (
        spec.elf_class,
        spec.byte_order,
        spec.machine,
    )
    assert info.soname == spec.soname
    assert info.needed == tuple(spec.needed)
    assert info.rpath == (() if spec.rpath is None else tuple(spec.rpath.split(":")))
    assert info.runpath == (() if spec.runpath is None else tuple(spec.runpath.split(":")))
    assert [
        (r.file, [(v.name, v.weak) for v in r.versions]) for r in info.version_requirements
    ] == [(file, list(nodes)) for file, nodes in spec.version_needs]
    assert info.version_definitions == tuple(spec.version_definitions)
    assert info.interpreter == spec.interpreter
