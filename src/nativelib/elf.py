"""A small, exact reader of what an ELF object provides and needs.

Standard library only: this module runs inside other projects' import time (through the
loader) and over thousands of files (the doctor). It reads the ELF header, the program
headers, the dynamic segment, the dynamic string table and the GNU version sections
(Verneed, Verdef), and nothing else, so stripped files without section headers work
and a 400 MB library costs the same as a 14 kB one.

Reads go through ``os.pread`` and a small block cache rather than ``mmap``: a file
that is truncated while it is mapped kills the process with SIGBUS, and the doctor scans
environments that pip may be changing at the same moment. Here that becomes an
:class:`~nativelib.errors.ElfError` like any other malformed file.

Every malformed input raises :class:`~nativelib.errors.ElfError` naming the file and the
reason; input that is not ELF at all raises :class:`~nativelib.errors.NotElfError`. Every
loop is bounded by the file size or by a fixed record limit, so no input can hang it.
"""

from __future__ import annotations

import os
import stat
import struct
import sys
from itertools import compress
from operator import itemgetter

from nativelib._frozen import Frozen, setfield
from nativelib.errors import ElfError, NotElfError
from nativelib.files import file_kind

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: this module runs at import time
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from typing import IO

__all__ = [
    "ElfInfo",
    "VersionNeed",
    "VersionRequirement",
    "has_elf_magic",
    "is_elf_file",
    "load_segments",
    "parse_elf_bytes",
    "parse_elf_stream",
    "read_elf",
]

ELF_MAGIC = b"\x7fELF"

# e_type
ET_NONE, ET_REL, ET_EXEC, ET_DYN, ET_CORE = 0, 1, 2, 3, 4
# p_type
PT_LOAD, PT_DYNAMIC, PT_INTERP = 1, 2, 3
PN_XNUM = 0xFFFF
# d_tag
DT_NULL = 0
DT_NEEDED = 1
DT_STRTAB = 5
DT_STRSZ = 10
DT_SONAME = 14
DT_RPATH = 15
DT_RUNPATH = 29
DT_VERDEF = 0x6FFFFFFC
DT_VERDEFNUM = 0x6FFFFFFD
DT_VERNEED = 0x6FFFFFFE
DT_VERNEEDNUM = 0x6FFFFFFF
# Verdef / Vernaux flags
VER_FLG_BASE = 0x1
VER_FLG_WEAK = 0x2

#: Upper bound on Verneed + Vernaux + Verdef records read from one file. The largest
#: real libraries (libc, libstdc++) have a few hundred; the bound keeps a crafted file
#: from making the reader walk millions of records.
MAX_VERSION_RECORDS = 1 << 16

#: Upper bound on the DT_NEEDED entries, and on the DT_RPATH / DT_RUNPATH elements, read
#: from one file. Real libraries need a few dozen sonames at most (this host's most: 20;
#: torch 2.13's libtorch_cpu.so: 10) and have a handful of search path entries; the
#: bound keeps a crafted file from making every reader and check downstream walk
#: millions of them.
MAX_DYNAMIC_ENTRIES = 1 << 12

_TYPE_NAMES = {
    ET_NONE: "none",
    ET_REL: "relocatable",
    ET_EXEC: "executable",
    ET_DYN: "shared object",
    ET_CORE: "core",
}

# e_machine -> the architecture name used in platform tags (packaging / auditwheel).
_MACHINE_NAMES = {
    3: "i686",
    8: "mips",
    20: "ppc",
    22: "s390x",
    40: "armv7l",
    62: "x86_64",
    183: "aarch64",
    243: "riscv64",
    258: "loongarch64",
}
_EM_PPC64 = 21


class VersionNeed(tuple):  # type: ignore[type-arg]
    """One version node an object needs from one of its dependencies: ``(name, weak)``."""

    __slots__ = ()

    def __new__(cls, name: str, weak: bool = False) -> VersionNeed:
        return tuple.__new__(cls, (name, weak))

    @property
    def name(self) -> str:
        return self[0]  # type: ignore[no-any-return]

    @property
    def weak(self) -> bool:
        return self[1]  # type: ignore[no-any-return]

    def __repr__(self) -> str:
        return f"VersionNeed(name={self[0]!r}, weak={self[1]!r})"


class VersionRequirement(tuple):  # type: ignore[type-arg]
    """The version nodes an object needs from one file (one Elf_Verneed entry):
    ``(file, versions)``."""

    __slots__ = ()

    def __new__(cls, file: str, versions: tuple[VersionNeed, ...]) -> VersionRequirement:
        return tuple.__new__(cls, (file, versions))

    @property
    def file(self) -> str:
        return self[0]  # type: ignore[no-any-return]

    @property
    def versions(self) -> tuple[VersionNeed, ...]:
        return self[1]  # type: ignore[no-any-return]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(v[0] for v in self[1])

    def __repr__(self) -> str:
        return f"VersionRequirement(file={self[0]!r}, versions={self[1]!r})"


class ElfInfo(Frozen):
    """What one ELF object is, provides and needs (immutable).

    ``path`` is the real path of the file (symlinks resolved), or ``WHEEL!member`` for a
    file read from inside a wheel. Lists keep file order; ``rpath`` and ``runpath`` are
    the colon-separated elements of DT_RPATH / DT_RUNPATH, empty elements included (an
    empty element means the current directory to ld.so).
    """

    __slots__ = (
        "byte_order",
        "elf_class",
        "interpreter",
        "machine",
        "needed",
        "path",
        "rpath",
        "runpath",
        "soname",
        "type",
        "version_definitions",
        "version_requirements",
    )
    path: str
    elf_class: int
    byte_order: str
    machine: int
    type: int
    soname: str | None
    needed: tuple[str, ...]
    rpath: tuple[str, ...]
    runpath: tuple[str, ...]
    version_requirements: tuple[VersionRequirement, ...]
    version_definitions: tuple[str, ...]
    interpreter: str | None

    def __init__(
        self,
        path: str,
        elf_class: int,
        byte_order: str,
        machine: int,
        type: int,
        soname: str | None,
        needed: tuple[str, ...],
        rpath: tuple[str, ...],
        runpath: tuple[str, ...],
        version_requirements: tuple[VersionRequirement, ...],
        version_definitions: tuple[str, ...],
        interpreter: str | None,
    ) -> None:
        setfield(self, "path", path)
        setfield(self, "elf_class", elf_class)
        setfield(self, "byte_order", byte_order)
        setfield(self, "machine", machine)
        setfield(self, "type", type)
        setfield(self, "soname", soname)
        setfield(self, "needed", needed)
        setfield(self, "rpath", rpath)
        setfield(self, "runpath", runpath)
        setfield(self, "version_requirements", version_requirements)
        setfield(self, "version_definitions", version_definitions)
        setfield(self, "interpreter", interpreter)

    @property
    def machine_name(self) -> str:
        """Architecture as platform tags spell it (``x86_64``, ``aarch64``, ``i686``...)."""
        if self.machine == _EM_PPC64:
            return "ppc64le" if self.byte_order == "little" else "ppc64"
        return _MACHINE_NAMES.get(self.machine, f"EM_{self.machine}")

    @property
    def type_name(self) -> str:
        return _TYPE_NAMES.get(self.type, f"type {self.type:#x}")

    @property
    def version_needs(self) -> dict[str, tuple[str, ...]]:
        """Version node names needed, by file: ``{"libc.so.6": ("GLIBC_2.2.5", ...)}``."""
        out: dict[str, tuple[str, ...]] = {}
        for req in self.version_requirements:
            out[req.file] = out.get(req.file, ()) + req.names
        return out

    def needed_nodes(self) -> Iterable[tuple[str, VersionNeed]]:
        """Every (file, node) pair this object needs, in file order."""
        for req in self.version_requirements:
            for need in req.versions:
                yield req.file, need


# --------------------------------------------------------------------------- reading


class _Malformed(Exception):
    """Internal: the input is malformed; becomes an ElfError naming the file."""

    def __init__(self, reason: str) -> None:
        self.reason = reason


class _Changed(Exception):
    """Internal: the file became shorter while it was being read."""


if TYPE_CHECKING:
    #: ``fetch(offset, length)``: up to ``length`` bytes at ``offset`` (fewer only at EOF).
    Fetch = Callable[[int, int], bytes]

#: The first read of a file. The ELF header and the program headers are in it and, in
#: most libraries, so are the dynamic string table and the version sections.
_HEAD = 16384
#: The most read at once for a version table, the dynamic segment or strings.
_WINDOW = 8192
#: Strings whose indices lie this close together are read as one span of the table.
_STRING_SPAN = 4096


def _decode(raw: bytes) -> str:
    try:
        return raw.decode()  # the fast path: names are almost always ASCII
    except UnicodeDecodeError:
        return raw.decode("utf-8", "backslashreplace")


class _Layout:
    """Struct formats for one ELF class and byte order."""

    __slots__ = (
        "dyn",
        "dyn_array",
        "elf_class",
        "endian",
        "header",
        "phdr",
        "shdr_info_offset",
        "swap",
        "verdaux",
        "verdef",
        "vernaux",
        "verneed",
        "word",
    )

    def __init__(self, elf_class: int, e: str) -> None:
        wide = elf_class == 64
        self.elf_class = elf_class
        self.endian = e
        self.header = struct.Struct(e + ("HHIQQQIHHHHHH" if wide else "HHIIIIIHHHHHH"))
        # 64: p_type, p_flags, p_offset, p_vaddr, p_paddr, p_filesz, p_memsz, p_align
        # 32: p_type, p_offset, p_vaddr, p_paddr, p_filesz, p_memsz, p_flags, p_align
        self.phdr = struct.Struct(e + ("IIQQQQQQ" if wide else "IIIIIIII"))
        self.shdr_info_offset = 44 if wide else 28
        self.dyn = struct.Struct(e + ("qQ" if wide else "iI"))
        self.verneed = struct.Struct(e + "HHIII")  # version, cnt, file, aux, next
        self.vernaux = struct.Struct(e + "IHHII")  # hash, flags, other, name, next
        self.verdef = struct.Struct(e + "HHHHIII")  # version, flags, ndx, cnt, hash, aux, next
        self.verdaux = struct.Struct(e + "II")  # name, next
        self.word = struct.Struct(e + "I")
        self.dyn_array = "Q" if wide else "I"  # format code of one word of a dynamic entry
        self.swap = (e == "<") != (sys.byteorder == "little")  # byte order differs from ours


_LAYOUTS: dict[tuple[int, str], _Layout] = {}  # made on first use of each class and order


class _Parser:
    """One parse of one input. Reads whole regions at once: the head of the file, the
    dynamic segment, a window per version table and one span of the string table."""

    def __init__(self, size: int, fetch: Fetch) -> None:
        self.size = size
        self.fetch = fetch
        want = min(size, _HEAD)
        self.head = fetch(0, want)
        if len(self.head) != want:
            raise _Changed

    def read(self, offset: int, length: int, what: str) -> bytes:
        end = offset + length
        if offset < 0 or end > self.size:
            raise _Malformed(
                f"truncated: {what} at offset {offset:#x} ({length} bytes) ends past the end "
                f"of the file ({self.size} bytes)"
            )
        if end <= len(self.head):
            return self.head[offset:end]
        data = self.fetch(offset, length)
        if len(data) != length:
            raise _Changed
        return data

    def window(self, offset: int, limit: int, what: str) -> tuple[bytes, int]:
        """A buffer holding bytes from ``offset`` on (up to ``limit``), and its base."""
        if offset + 64 <= len(self.head):
            return self.head, 0
        end = min(limit, self.size, offset + _WINDOW)
        if end <= offset:
            raise _Malformed(
                f"truncated: {what} at offset {offset:#x} lies past the end of the file "
                f"({self.size} bytes)"
            )
        return self.read(offset, end - offset, what), offset

    def record(
        self, st: struct.Struct, offset: int, buf: bytes, base: int, what: str
    ) -> tuple[int, ...]:
        rel = offset - base
        if rel >= 0 and rel + st.size <= len(buf):
            return st.unpack_from(buf, rel)
        return st.unpack(self.read(offset, st.size, what))

    def parse(self, path: str) -> ElfInfo:
        head, size = self.head, self.size
        if size < 4 or head[:4] != ELF_MAGIC:
            raise NotElfError(path, "not an ELF file" + (" (empty file)" if size == 0 else ""))
        if size < 16:
            raise _Malformed(
                f"truncated: the ELF identification needs 16 bytes, the file has {size}"
            )
        ei_class, ei_data, ei_version = head[4], head[5], head[6]
        if ei_class not in (1, 2):
            raise _Malformed(f"invalid ELF class byte {ei_class:#x} (expected 1 or 2)")
        if ei_data not in (1, 2):
            raise _Malformed(f"invalid ELF data encoding byte {ei_data:#x} (expected 1 or 2)")
        if ei_version != 1:
            raise _Malformed(f"unsupported ELF identification version {ei_version}")
        elf_class = 32 if ei_class == 1 else 64
        endian = "<" if ei_data == 1 else ">"
        lay = _LAYOUTS.get((elf_class, endian))
        if lay is None:
            lay = _LAYOUTS[(elf_class, endian)] = _Layout(elf_class, endian)
        e_type, e_machine, _v, _entry, e_phoff, e_shoff, _fl, _eh, e_phentsize, e_phnum = (
            self.record(lay.header, 16, head, 0, "ELF header")[:10]
        )
        if e_phnum == PN_XNUM:
            # The real count lives in sh_info of section header 0.
            (e_phnum,) = self.record(
                lay.word, e_shoff + lay.shdr_info_offset, head, 0, "section header 0"
            )

        loads: list[tuple[int, int, int]] = []
        dynamic: tuple[int, int] | None = None
        interp: tuple[int, int] | None = None
        if e_phnum and e_phoff:
            if e_phentsize < lay.phdr.size:
                raise _Malformed(
                    f"program header entry size {e_phentsize} is smaller than {lay.phdr.size}"
                )
            table = e_phnum * e_phentsize
            if e_phoff + table > size:
                raise _Malformed(
                    f"truncated: program header table at {e_phoff:#x} ({e_phnum} x "
                    f"{e_phentsize} bytes) ends past the end of the file ({size} bytes)"
                )
            data = self.read(e_phoff, table, "program header table")
            wide = elf_class == 64
            if e_phentsize == lay.phdr.size:
                headers = lay.phdr.iter_unpack(data)
            else:
                headers = (lay.phdr.unpack_from(data, i * e_phentsize) for i in range(e_phnum))
            for i, fields in enumerate(headers):
                p_type = fields[0]
                if wide:
                    p_offset, p_vaddr, p_filesz = fields[2], fields[3], fields[5]
                else:
                    p_offset, p_vaddr, p_filesz = fields[1], fields[2], fields[4]
                if p_type == PT_LOAD:
                    if p_offset + p_filesz > size:
                        raise _Malformed(
                            f"truncated: loadable segment {i} (offset {p_offset:#x}, "
                            f"{p_filesz} bytes) ends past the end of the file ({size} bytes)"
                        )
                    loads.append((p_vaddr, p_offset, p_filesz))
                elif p_type == PT_DYNAMIC and dynamic is None:
                    dynamic = (p_offset, p_filesz)
                elif p_type == PT_INTERP and interp is None:
                    interp = (p_offset, p_filesz)

        interpreter = None
        if interp is not None:
            off, length = interp
            if length == 0 or off + length > size:
                raise _Malformed(
                    f"truncated: interpreter segment at {off:#x} ({length} bytes) lies outside "
                    f"the file ({size} bytes)"
                )
            raw = self.read(off, min(length, _WINDOW), "interpreter path")
            nul = raw.find(b"\0")
            if nul < 0:
                raise _Malformed(f"interpreter path at {off:#x} is not NUL-terminated")
            interpreter = _decode(raw[:nul])

        byte_order = "little" if endian == "<" else "big"
        if dynamic is None:
            return ElfInfo(
                path, elf_class, byte_order, e_machine, e_type,
                None, (), (), (), (), (), interpreter,
            )  # fmt: skip
        return self._dynamic(path, lay, byte_order, e_machine, e_type, dynamic, loads, interpreter)

    def _dynamic(
        self,
        path: str,
        lay: _Layout,
        byte_order: str,
        e_machine: int,
        e_type: int,
        dynamic: tuple[int, int],
        loads: list[tuple[int, int, int]],
        interpreter: str | None,
    ) -> ElfInfo:
        dyn_off, dyn_size = dynamic
        if dyn_off + dyn_size > self.size:
            raise _Malformed(
                f"truncated: dynamic segment at {dyn_off:#x} ({dyn_size} bytes) ends past the "
                f"end of the file ({self.size} bytes)"
            )
        # The segment as a list of words, read in windows until DT_NULL: (tag, value)
        # pairs; a negative tag reads as a huge unsigned one and is ignored like any other.
        # memoryview.cast reads native byte order (no import: the array module pulls in
        # collections); a file of the other byte order goes through struct.
        entry = lay.dyn.size
        count = dyn_size // entry
        words: list[int] = []
        pos = 0
        while pos < count:
            n = min(count - pos, _WINDOW // entry)
            data = self.read(dyn_off + pos * entry, n * entry, "dynamic segment")
            if lay.swap:
                chunk = list(struct.unpack(f"{lay.endian}{2 * n}{lay.dyn_array}", data))
            else:
                chunk = memoryview(data).cast("Q" if lay.elf_class == 64 else "I").tolist()
            words.extend(chunk)
            pos += n
            if DT_NULL in chunk[0::2]:
                break
        tags, vals = words[0::2], words[1::2]
        if DT_NULL in tags:
            end = tags.index(DT_NULL)
            del tags[end:], vals[end:]
        single = dict(zip(tags, vals, strict=True))  # the last of a repeated tag wins, as in ld.so

        def all_of(tag: int) -> list[int]:
            count = tags.count(tag)
            if not count:
                return []
            first = tags.index(tag)
            if count == 1 or tags[first : first + count].count(tag) == count:
                return vals[first : first + count]  # the usual, contiguous case
            return list(compress(vals, map(tag.__eq__, tags)))

        needed, rpaths, runpaths = all_of(DT_NEEDED), all_of(DT_RPATH), all_of(DT_RUNPATH)
        if max(len(needed), len(rpaths), len(runpaths)) > MAX_DYNAMIC_ENTRIES:
            what = "DT_NEEDED" if len(needed) > MAX_DYNAMIC_ENTRIES else "DT_RPATH"
            if len(runpaths) > MAX_DYNAMIC_ENTRIES >= len(rpaths) and what != "DT_NEEDED":
                what = "DT_RUNPATH"
            raise _Malformed(f"more than {MAX_DYNAMIC_ENTRIES} {what} entries")

        def to_offset(addr: int, what: str) -> tuple[int, int]:
            """File offset of a virtual address and the end of its segment's file image."""
            for vaddr, offset, filesz in loads:
                if vaddr <= addr < vaddr + filesz:
                    return offset + (addr - vaddr), offset + filesz
            raise _Malformed(f"{what} address {addr:#x} is not inside any loadable segment")

        soname_idx = single.get(DT_SONAME)
        verneed = single.get(DT_VERNEED)
        verdef = single.get(DT_VERDEF)
        strtab = single.get(DT_STRTAB)
        str_off = str_size = 0
        if needed or rpaths or runpaths or soname_idx is not None or verneed or verdef:
            if strtab is None:
                raise _Malformed("the dynamic segment has no DT_STRTAB but refers to strings")
            str_off, seg_end = to_offset(strtab, "DT_STRTAB")
            strsz = single.get(DT_STRSZ)
            str_size = seg_end - str_off if strsz is None else min(seg_end - str_off, strsz)

        # Gather every string index first (checking it), then read them all at once.
        wanted: dict[int, str] = {}

        def want(index: int, what: str) -> int:
            if index >= str_size:
                raise _Malformed(
                    f"{what}: string index {index:#x} is outside the dynamic string table "
                    f"({str_size} bytes)"
                )
            wanted.setdefault(index, what)
            return index

        setdefault = wanted.setdefault
        if soname_idx is not None:
            want(soname_idx, "DT_SONAME")
        for i in needed:
            want(i, "DT_NEEDED")
        for i in rpaths:
            want(i, "DT_RPATH")
        for i in runpaths:
            want(i, "DT_RUNPATH")

        # Walk the version chains. vn_next, vna_next and vd_next are unsigned, so each
        # chain only moves forward from the start of its window (offsets never drop below
        # ``base``): it ends at a zero link, at its count, at the record budget or at the
        # end of the file, and cannot loop.
        budget = MAX_VERSION_RECORDS
        requirements: list[tuple[int, list[tuple[int, bool]]]] = []
        need_names: list[int] = []
        if verneed:
            off, seg_end = to_offset(verneed, "DT_VERNEED")
            buf, base = self.window(off, seg_end, "version needs")
            limit = len(buf) + base
            vn_st, vna_st = lay.verneed, lay.vernaux
            # The count may be anything a crafted file says: the budget ends the walk.
            for _ in range(single.get(DT_VERNEEDNUM, MAX_VERSION_RECORDS + 1)):
                if off + 16 <= limit:
                    vn_version, vn_cnt, vn_file, vn_aux, vn_next = vn_st.unpack_from(
                        buf, off - base
                    )
                else:
                    vn_version, vn_cnt, vn_file, vn_aux, vn_next = self.record(
                        vn_st, off, buf, base, "version need entry"
                    )
                if vn_version != 1:
                    raise _Malformed(
                        f"version need entry at {off:#x} has unsupported version {vn_version}"
                    )
                nodes: list[tuple[int, bool]] = []
                requirements.append((want(vn_file, "version need file"), nodes))
                aux = off + vn_aux
                j = -1
                for j in range(vn_cnt):  # noqa: B007 (j counts the records read; used below)
                    if aux + 16 <= limit:
                        _hash, flags, _other, name, nxt = vna_st.unpack_from(buf, aux - base)
                    else:
                        _hash, flags, _other, name, nxt = self.record(
                            vna_st, aux, buf, base, "version need aux"
                        )
                    if name >= str_size:
                        want(name, "version need name")  # raises
                    nodes.append((name, flags & VER_FLG_WEAK != 0))
                    need_names.append(name)
                    if not nxt:
                        break
                    aux += nxt
                # Charge what was read (the entry and j + 1 aux records): vn_cnt may
                # overstate a chain that ends early at a zero vna_next.
                budget -= j + 2
                if budget < 0:
                    raise _Malformed(f"more than {MAX_VERSION_RECORDS} version records")
                if not vn_next:
                    break
                off += vn_next

        definitions: list[int] = []
        if verdef:
            off, seg_end = to_offset(verdef, "DT_VERDEF")
            buf, base = self.window(off, seg_end, "version definitions")
            limit = len(buf) + base
            vd_st, vda_st = lay.verdef, lay.verdaux
            for _ in range(single.get(DT_VERDEFNUM, MAX_VERSION_RECORDS + 1)):
                budget -= 1
                if budget < 0:
                    raise _Malformed(f"more than {MAX_VERSION_RECORDS} version records")
                if off + 20 <= limit:
                    vd_version, vd_flags, _ndx, vd_cnt, _hash, vd_aux, vd_next = vd_st.unpack_from(
                        buf, off - base
                    )
                else:
                    vd_version, vd_flags, _ndx, vd_cnt, _hash, vd_aux, vd_next = self.record(
                        vd_st, off, buf, base, "version definition"
                    )
                if vd_version != 1 or not vd_cnt:
                    raise _Malformed(
                        f"version definition at {off:#x} has no name"
                        if vd_version == 1
                        else f"version definition at {off:#x} has unsupported version {vd_version}"
                    )
                if not vd_flags & VER_FLG_BASE:
                    aux = off + vd_aux
                    if aux + 8 <= limit:
                        name = vda_st.unpack_from(buf, aux - base)[0]
                    else:
                        name = self.record(vda_st, aux, buf, base, "version definition aux")[0]
                    if name >= str_size:
                        want(name, "version definition name")  # raises
                    definitions.append(name)
                if not vd_next:
                    break
                off += vd_next
        # Record what each string is for (for error messages); the first use wins.
        for index in need_names:
            setdefault(index, "version need name")
        for index in definitions:
            setdefault(index, "version definition name")

        strings = self._strings(wanted, str_off, str_size)
        new = tuple.__new__  # NamedTuples built without their Python-level __new__

        def path_list(indices: list[int], what: str) -> tuple[str, ...]:
            if not indices:
                return ()
            joined = ":".join(strings[i] for i in indices)
            if joined.count(":") >= MAX_DYNAMIC_ENTRIES:
                raise _Malformed(f"more than {MAX_DYNAMIC_ENTRIES} {what} entries")
            return tuple(joined.split(":"))

        return ElfInfo(
            path,
            lay.elf_class,
            byte_order,
            e_machine,
            e_type,
            None if soname_idx is None else strings[soname_idx],
            tuple(strings[i] for i in needed),
            path_list(rpaths, "DT_RPATH"),
            path_list(runpaths, "DT_RUNPATH"),
            tuple(
                [
                    new(
                        VersionRequirement,
                        (strings[f], tuple([new(VersionNeed, (strings[n], w)) for n, w in nodes])),
                    )
                    for f, nodes in requirements
                ]
            ),
            tuple(strings[i] for i in definitions),
            interpreter,
        )

    def _strings(self, wanted: dict[int, str], str_off: int, str_size: int) -> dict[int, str]:
        """Decode the NUL-terminated strings at the ``wanted`` indices (index -> what for).

        Indices close together are read as one span of the table; a string that runs past
        its span is read on its own, in growing pieces, up to the end of the table.
        """
        out: dict[int, str] = {}
        order = sorted(wanted)
        i = 0
        while i < len(order):
            lo = order[i]
            if order[-1] - lo <= _STRING_SPAN:
                j = len(order)  # the usual case: all of them in one span
            else:
                j = i + 1
                while j < len(order) and order[j] - lo <= _STRING_SPAN:
                    j += 1
            span = self.read(
                str_off + lo, min(str_size - lo, order[j - 1] - lo + 256), "dynamic string table"
            )
            if span.isascii():
                # Decode the span once; each string is then a find and a slice.
                text = span.decode("ascii")
                for index in order[i:j]:
                    nul = text.find("\0", index - lo)
                    out[index] = (
                        text[index - lo : nul]
                        if nul >= 0
                        else self._long_string(index, wanted[index], str_off, str_size)
                    )
            else:
                for index in order[i:j]:
                    nul = span.find(b"\0", index - lo)
                    out[index] = (
                        _decode(span[index - lo : nul])
                        if nul >= 0
                        else self._long_string(index, wanted[index], str_off, str_size)
                    )
            i = j
        return out

    def _long_string(self, index: int, what: str, str_off: int, str_size: int) -> str:
        parts = []
        pos, end, step = str_off + index, str_off + str_size, 1024
        while pos < end:
            chunk = self.read(pos, min(step, end - pos), "dynamic string table")
            nul = chunk.find(b"\0")
            if nul >= 0:
                parts.append(chunk[:nul])
                return _decode(b"".join(parts))
            parts.append(chunk)
            pos += len(chunk)
            step = min(step * 4, 1 << 20)
        raise _Malformed(
            f"{what}: string at index {index:#x} of the dynamic string table is not NUL-terminated"
        )


def _run(size: int, fetch: Fetch, path: str) -> ElfInfo:
    try:
        return _Parser(size, fetch).parse(path)
    except _Malformed as e:
        raise ElfError(path, e.reason) from None
    except _Changed:
        raise ElfError(
            path, "the file changed (became shorter) while it was being read", changed=True
        ) from None


# --------------------------------------------------------------------------- public API


def read_elf(path: str | os.PathLike[str]) -> ElfInfo:
    """Read one ELF file from disk.

    Symlinks are resolved and the real path is reported. Anything but a regular file
    (FIFO, device, socket, directory) is refused after ``stat``, without being opened.
    """
    given = os.fspath(path)
    try:
        st = os.stat(given)
    except OSError as e:
        raise ElfError(
            os.path.realpath(given), f"cannot read: {e.strerror or e}", unreadable=True
        ) from e
    if not stat.S_ISREG(st.st_mode):
        raise ElfError(
            os.path.realpath(given),
            f"not a regular file: it is {file_kind(st.st_mode)}",
            unreadable=True,
        )
    # O_NONBLOCK: a FIFO swapped in after stat must not block the open.
    flags = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(given, flags)
    except OSError as e:
        raise ElfError(
            os.path.realpath(given), f"cannot open: {e.strerror or e}", unreadable=True
        ) from e
    try:
        real = _real_path(fd, given)
        fst = os.fstat(fd)
        if not stat.S_ISREG(fst.st_mode):
            raise ElfError(
                real, f"not a regular file: it is {file_kind(fst.st_mode)}", unreadable=True
            )

        def fetch(start: int, length: int) -> bytes:
            try:
                return os.pread(fd, length, start)
            except OSError as e:
                raise _Malformed(f"read error at offset {start:#x}: {e.strerror or e}") from e

        return _run(fst.st_size, fetch, real)
    finally:
        os.close(fd)


def _real_path(fd: int, given: str) -> str:
    """The real path of an open file: one readlink of /proc/self/fd, else realpath."""
    try:
        real = os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return os.path.realpath(given)
    if not real.startswith("/") or real.endswith(" (deleted)"):
        return os.path.realpath(given)
    return real


def parse_elf_bytes(data: bytes | bytearray | memoryview, name: str) -> ElfInfo:
    """Parse an ELF image held in memory; ``name`` is used in ``ElfInfo.path`` and errors."""
    view = bytes(data)

    def fetch(start: int, length: int) -> bytes:
        return view[start : start + length]

    return _run(len(view), fetch, name)


def parse_elf_stream(stream: IO[bytes], size: int, name: str) -> ElfInfo:
    """Parse an ELF image from a forward-only stream of ``size`` bytes (a zip member).

    Only the prefix of the stream up to the last byte the parser needs is read (and kept
    in memory); debug sections and the section header table at the end are never read.
    """
    buf = bytearray()

    def fetch(start: int, length: int) -> bytes:
        want = start + length
        while len(buf) < want:
            chunk = stream.read(max(want - len(buf), 1 << 16))
            if not chunk:
                break
            buf.extend(chunk)
        return bytes(buf[start:want])

    return _run(size, fetch, name)


def load_segments(
    path: str | os.PathLike[str],
) -> tuple[int, list[tuple[int, int, int, int, int]]]:
    """``(e_machine, PT_LOAD segments)`` of the file at ``path``, each segment as
    ``(p_offset, p_vaddr, p_filesz, p_memsz, p_align)`` in table order: for checking
    the layout of a file after it was edited (:func:`read_elf` does not keep them)."""
    where = os.fspath(path)
    with open(where, "rb") as f:
        head = f.read(64)
        if len(head) < 16 or head[:4] != ELF_MAGIC:
            raise NotElfError(where, "not an ELF file")
        if head[4] not in (1, 2) or head[5] not in (1, 2):
            raise ElfError(where, "invalid ELF class or data encoding byte")
        lay = _Layout(32 if head[4] == 1 else 64, "<" if head[5] == 1 else ">")
        if len(head) < 16 + lay.header.size:
            raise ElfError(where, "truncated ELF header")
        machine, phoff, phentsize, phnum = itemgetter(1, 4, 8, 9)(lay.header.unpack_from(head, 16))
        if phnum and phentsize < lay.phdr.size:
            raise ElfError(where, f"program header entry size {phentsize} < {lay.phdr.size}")
        f.seek(phoff)
        table = f.read(phnum * phentsize)
    if len(table) < phnum * phentsize:
        raise ElfError(where, "truncated program header table")
    wide = lay.elf_class == 64
    out = []
    for i in range(phnum):
        fields = lay.phdr.unpack_from(table, i * phentsize)
        if fields[0] != PT_LOAD:
            continue
        if wide:  # p_type, p_flags, p_offset, p_vaddr, p_paddr, p_filesz, p_memsz, p_align
            out.append((fields[2], fields[3], fields[5], fields[6], fields[7]))
        else:  # p_type, p_offset, p_vaddr, p_paddr, p_filesz, p_memsz, p_flags, p_align
            out.append((fields[1], fields[2], fields[4], fields[5], fields[7]))
    return machine, out


def has_elf_magic(path: str | os.PathLike[str]) -> bool:
    """Whether the file at ``path`` starts with the ELF magic.

    For a path already known to be a regular file (from ``stat`` or a directory listing):
    O_NONBLOCK keeps a FIFO swapped in since then from blocking the open, and the read
    then fails.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        return os.pread(fd, 4, 0) == ELF_MAGIC
    except OSError:
        return False
    finally:
        os.close(fd)


def is_elf_file(path: str | os.PathLike[str], st: os.stat_result | None = None) -> bool:
    """True when ``path`` is a regular file that starts with the ELF magic.

    Never opens anything but a regular file; ``st`` (from ``lstat``/``stat``) saves a call.
    """
    try:
        if st is None:
            st = os.stat(path)
    except OSError:
        return False
    return stat.S_ISREG(st.st_mode) and st.st_size >= 4 and has_elf_magic(path)
