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
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import IO

from nativelib.errors import ElfError, NotElfError

__all__ = [
    "ElfInfo",
    "VersionNeed",
    "VersionRequirement",
    "is_elf_file",
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


@dataclass(frozen=True)
class VersionNeed:
    """One version node an object needs from one of its dependencies."""

    name: str
    weak: bool = False


@dataclass(frozen=True)
class VersionRequirement:
    """The version nodes an object needs from one file (one Elf_Verneed entry)."""

    file: str
    versions: tuple[VersionNeed, ...]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(v.name for v in self.versions)


@dataclass(frozen=True)
class ElfInfo:
    """What one ELF object is, provides and needs.

    ``path`` is the real path of the file (symlinks resolved), or ``WHEEL!member`` for a
    file read from inside a wheel. Lists keep file order; ``rpath`` and ``runpath`` are
    the colon-separated elements of DT_RPATH / DT_RUNPATH, empty elements included (an
    empty element means the current directory to ld.so).
    """

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


class _OutOfRange(Exception):
    """Internal: a read past the end of the input; turned into an ElfError by the parser."""

    def __init__(self, offset: int, size: int) -> None:
        self.offset = offset
        self.size = size


class _Changed(Exception):
    """Internal: the file became shorter while it was being read."""


_BLOCK_SHIFT = 12
_BLOCK = 1 << _BLOCK_SHIFT


class _Reader:
    """Random access to ``size`` bytes through ``fetch(start, length)``, block-cached."""

    __slots__ = ("_cache", "_fetch", "size")

    def __init__(self, size: int, fetch: Callable[[int, int], bytes]) -> None:
        self.size = size
        self._fetch = fetch
        self._cache: dict[int, bytes] = {}

    def _block(self, index: int) -> bytes:
        block = self._cache.get(index)
        if block is None:
            start = index << _BLOCK_SHIFT
            want = min(_BLOCK, self.size - start)
            block = self._fetch(start, want)
            if len(block) != want:
                raise _Changed
            self._cache[index] = block
        return block

    def read(self, offset: int, length: int) -> bytes:
        if offset < 0 or length < 0 or offset + length > self.size:
            raise _OutOfRange(offset, length)
        if length == 0:
            return b""
        first = offset >> _BLOCK_SHIFT
        last = (offset + length - 1) >> _BLOCK_SHIFT
        start = offset - (first << _BLOCK_SHIFT)
        if first == last:
            return self._block(first)[start : start + length]
        joined = b"".join(self._block(i) for i in range(first, last + 1))
        return joined[start : start + length]

    def cstring(self, offset: int, end: int) -> bytes | None:
        """The NUL-terminated bytes at ``offset``; ``None`` if no NUL before ``end``."""
        end = min(end, self.size)
        if offset < 0 or offset >= end:
            raise _OutOfRange(offset, 1)
        parts = []
        pos = offset
        while pos < end:
            index = pos >> _BLOCK_SHIFT
            block = self._block(index)
            base = index << _BLOCK_SHIFT
            stop = min(end - base, len(block))
            nul = block.find(b"\0", pos - base, stop)
            if nul >= 0:
                parts.append(block[pos - base : nul])
                return b"".join(parts)
            parts.append(block[pos - base : stop])
            pos = base + stop
        return None


def _decode(raw: bytes) -> str:
    return raw.decode("utf-8", "backslashreplace")


@dataclass(frozen=True)
class _Layout:
    """Struct formats for one ELF class and byte order."""

    elf_class: int
    header: struct.Struct
    phdr: struct.Struct
    shdr_info_offset: int
    shdr_size: int
    dyn: struct.Struct

    @staticmethod
    def make(elf_class: int, endian: str) -> _Layout:
        if elf_class == 64:
            return _Layout(
                64,
                struct.Struct(endian + "HHIQQQIHHHHHH"),
                # p_type, p_flags, p_offset, p_vaddr, p_paddr, p_filesz, p_memsz, p_align
                struct.Struct(endian + "IIQQQQQQ"),
                44,
                64,
                struct.Struct(endian + "qQ"),
            )
        return _Layout(
            32,
            struct.Struct(endian + "HHIIIIIHHHHHH"),
            # p_type, p_offset, p_vaddr, p_paddr, p_filesz, p_memsz, p_flags, p_align
            struct.Struct(endian + "IIIIIIII"),
            28,
            40,
            struct.Struct(endian + "iI"),
        )


_LAYOUTS = {(c, e): _Layout.make(c, e) for c in (32, 64) for e in ("<", ">")}
_VERSION_STRUCTS = {
    e: (
        struct.Struct(e + "HHIII"),  # Elf_Verneed: version, cnt, file, aux, next
        struct.Struct(e + "IHHII"),  # Elf_Vernaux: hash, flags, other, name, next
        struct.Struct(e + "HHHHIII"),  # Elf_Verdef: version, flags, ndx, cnt, hash, aux, next
        struct.Struct(e + "II"),  # Elf_Verdaux: name, next
        struct.Struct(e + "I"),  # one 32-bit word (sh_info)
    )
    for e in ("<", ">")
}


class _Malformed(Exception):
    def __init__(self, reason: str) -> None:
        self.reason = reason


class _Parser:
    def __init__(self, reader: _Reader) -> None:
        self.r = reader

    def unpack(self, st: struct.Struct, offset: int, what: str) -> tuple[int, ...]:
        try:
            data = self.r.read(offset, st.size)
        except _OutOfRange:
            raise _Malformed(
                f"truncated: {what} at offset {offset:#x} ({st.size} bytes) ends past "
                f"the end of the file ({self.r.size} bytes)"
            ) from None
        return st.unpack(data)

    def parse(self, path: str) -> ElfInfo:
        r = self.r
        if r.size < 4 or r.read(0, 4) != ELF_MAGIC:
            raise NotElfError(path, "not an ELF file" + (" (empty file)" if r.size == 0 else ""))
        if r.size < 16:
            raise _Malformed(
                f"truncated: the ELF identification needs 16 bytes, the file has {r.size}"
            )
        ident = r.read(0, 16)
        ei_class, ei_data, ei_version = ident[4], ident[5], ident[6]
        if ei_class not in (1, 2):
            raise _Malformed(f"invalid ELF class byte {ei_class:#x} (expected 1 or 2)")
        if ei_data not in (1, 2):
            raise _Malformed(f"invalid ELF data encoding byte {ei_data:#x} (expected 1 or 2)")
        if ei_version != 1:
            raise _Malformed(f"unsupported ELF identification version {ei_version}")
        elf_class = 32 if ei_class == 1 else 64
        endian = "<" if ei_data == 1 else ">"
        lay = _LAYOUTS[(elf_class, endian)]
        (
            e_type,
            e_machine,
            _e_version,
            _e_entry,
            e_phoff,
            e_shoff,
            _e_flags,
            _e_ehsize,
            e_phentsize,
            e_phnum,
            _e_shentsize,
            _e_shnum,
            _e_shstrndx,
        ) = self.unpack(lay.header, 16, "ELF header")

        if e_phnum == PN_XNUM:
            # The real count lives in sh_info of section header 0.
            (e_phnum,) = self.unpack(
                _VERSION_STRUCTS[endian][4], e_shoff + lay.shdr_info_offset, "section header 0"
            )

        loads: list[tuple[int, int, int]] = []
        dynamic: tuple[int, int] | None = None
        interp: tuple[int, int] | None = None
        if e_phnum and e_phoff:
            if e_phentsize < lay.phdr.size:
                raise _Malformed(
                    f"program header entry size {e_phentsize} is smaller than {lay.phdr.size}"
                )
            if e_phoff + e_phnum * e_phentsize > r.size:
                raise _Malformed(
                    f"truncated: program header table at {e_phoff:#x} ({e_phnum} x "
                    f"{e_phentsize} bytes) ends past the end of the file ({r.size} bytes)"
                )
            for i in range(e_phnum):
                fields = self.unpack(lay.phdr, e_phoff + i * e_phentsize, "program header")
                if elf_class == 64:
                    p_type, _f, p_offset, p_vaddr, _pa, p_filesz, _m, _al = fields
                else:
                    p_type, p_offset, p_vaddr, _pa, p_filesz, _m, _f, _al = fields
                if p_type == PT_LOAD:
                    if p_offset + p_filesz > r.size:
                        raise _Malformed(
                            f"truncated: loadable segment {i} (offset {p_offset:#x}, "
                            f"{p_filesz} bytes) ends past the end of the file ({r.size} bytes)"
                        )
                    loads.append((p_vaddr, p_offset, p_filesz))
                elif p_type == PT_DYNAMIC and dynamic is None:
                    dynamic = (p_offset, p_filesz)
                elif p_type == PT_INTERP and interp is None:
                    interp = (p_offset, p_filesz)

        interpreter = None
        if interp is not None:
            off, size = interp
            if size == 0 or off + size > r.size:
                raise _Malformed(
                    f"truncated: interpreter segment at {off:#x} ({size} bytes) lies outside "
                    f"the file ({r.size} bytes)"
                )
            raw = r.cstring(off, off + size)
            if raw is None:
                raise _Malformed(f"interpreter path at {off:#x} is not NUL-terminated")
            interpreter = _decode(raw)

        if dynamic is None:
            return ElfInfo(
                path,
                elf_class,
                "little" if endian == "<" else "big",
                e_machine,
                e_type,
                None,
                (),
                (),
                (),
                (),
                (),
                interpreter,
            )
        return self._dynamic(path, lay, endian, e_machine, e_type, dynamic, loads, interpreter)

    def _dynamic(
        self,
        path: str,
        lay: _Layout,
        endian: str,
        e_machine: int,
        e_type: int,
        dynamic: tuple[int, int],
        loads: list[tuple[int, int, int]],
        interpreter: str | None,
    ) -> ElfInfo:
        r = self.r
        dyn_off, dyn_size = dynamic
        if dyn_off + dyn_size > r.size:
            raise _Malformed(
                f"truncated: dynamic segment at {dyn_off:#x} ({dyn_size} bytes) ends past the "
                f"end of the file ({r.size} bytes)"
            )
        needed: list[int] = []
        rpaths: list[int] = []
        runpaths: list[int] = []
        soname_idx: int | None = None
        strtab = strsz = verdef = verdefnum = verneed = verneednum = None
        entry = lay.dyn.size
        count = dyn_size // entry
        index = 0
        done = False
        while index < count and not done:
            # Read the dynamic segment in chunks of 256 entries; it ends at DT_NULL.
            n = min(256, count - index)
            data = r.read(dyn_off + index * entry, n * entry)
            for tag, val in lay.dyn.iter_unpack(data):
                if tag == DT_NULL:
                    done = True
                    break
                if tag == DT_NEEDED:
                    needed.append(val)
                elif tag == DT_STRTAB:
                    strtab = val
                elif tag == DT_STRSZ:
                    strsz = val
                elif tag == DT_SONAME:
                    soname_idx = val
                elif tag == DT_RPATH:
                    rpaths.append(val)
                elif tag == DT_RUNPATH:
                    runpaths.append(val)
                elif tag == DT_VERNEED:
                    verneed = val
                elif tag == DT_VERNEEDNUM:
                    verneednum = val
                elif tag == DT_VERDEF:
                    verdef = val
                elif tag == DT_VERDEFNUM:
                    verdefnum = val
            index += n

        def to_offset(addr: int, what: str) -> tuple[int, int]:
            """File offset of a virtual address and the end of its segment's file image."""
            for vaddr, offset, filesz in loads:
                if vaddr <= addr < vaddr + filesz:
                    return offset + (addr - vaddr), offset + filesz
            raise _Malformed(f"{what} address {addr:#x} is not inside any loadable segment")

        uses_strings = needed or rpaths or runpaths or soname_idx is not None or verneed or verdef
        str_off = str_end = 0
        if uses_strings:
            if strtab is None:
                raise _Malformed("the dynamic segment has no DT_STRTAB but refers to strings")
            str_off, seg_end = to_offset(strtab, "DT_STRTAB")
            str_end = seg_end if strsz is None else min(seg_end, str_off + strsz)

        def string(index: int, what: str) -> str:
            if index >= str_end - str_off:
                raise _Malformed(
                    f"{what}: string index {index:#x} is outside the dynamic string table "
                    f"({str_end - str_off} bytes)"
                )
            raw = r.cstring(str_off + index, str_end)
            if raw is None:
                raise _Malformed(f"{what}: string at index {index:#x} is not NUL-terminated")
            return _decode(raw)

        def path_list(indices: list[int], what: str) -> tuple[str, ...]:
            if not indices:
                return ()
            return tuple(":".join(string(i, what) for i in indices).split(":"))

        soname = None if soname_idx is None else string(soname_idx, "DT_SONAME")
        needed_names = tuple(string(i, "DT_NEEDED") for i in needed)
        rpath = path_list(rpaths, "DT_RPATH")
        runpath = path_list(runpaths, "DT_RUNPATH")

        vn_st, vna_st, vd_st, vda_st, _word = _VERSION_STRUCTS[endian]
        budget = [MAX_VERSION_RECORDS]

        def spend() -> None:
            budget[0] -= 1
            if budget[0] < 0:
                raise _Malformed(f"more than {MAX_VERSION_RECORDS} version records")

        requirements: list[VersionRequirement] = []
        if verneed:
            off, _seg_end = to_offset(verneed, "DT_VERNEED")
            seen: set[int] = set()
            count = verneednum if verneednum is not None else MAX_VERSION_RECORDS
            for _ in range(count):
                if off in seen:
                    raise _Malformed(f"loop in the version needs chain at offset {off:#x}")
                seen.add(off)
                spend()
                vn_version, vn_cnt, vn_file, vn_aux, vn_next = self.unpack(
                    vn_st, off, "version need entry"
                )
                if vn_version != 1:
                    raise _Malformed(
                        f"version need entry at {off:#x} has unsupported version {vn_version}"
                    )
                file = string(vn_file, "version need file")
                nodes: list[VersionNeed] = []
                aux = off + vn_aux
                aux_seen: set[int] = set()
                for _j in range(vn_cnt):
                    if aux in aux_seen:
                        raise _Malformed(f"loop in the version need aux chain at offset {aux:#x}")
                    aux_seen.add(aux)
                    spend()
                    _hash, flags, _other, name, nxt = self.unpack(vna_st, aux, "version need aux")
                    nodes.append(
                        VersionNeed(string(name, "version need name"), bool(flags & VER_FLG_WEAK))
                    )
                    if nxt == 0:
                        break
                    aux += nxt
                requirements.append(VersionRequirement(file, tuple(nodes)))
                if vn_next == 0:
                    break
                off += vn_next

        definitions: list[str] = []
        if verdef:
            off, _seg_end = to_offset(verdef, "DT_VERDEF")
            seen = set()
            count = verdefnum if verdefnum is not None else MAX_VERSION_RECORDS
            for _ in range(count):
                if off in seen:
                    raise _Malformed(f"loop in the version definitions chain at offset {off:#x}")
                seen.add(off)
                spend()
                vd_version, vd_flags, _ndx, vd_cnt, _hash, vd_aux, vd_next = self.unpack(
                    vd_st, off, "version definition"
                )
                if vd_version != 1:
                    raise _Malformed(
                        f"version definition at {off:#x} has unsupported version {vd_version}"
                    )
                if vd_cnt == 0:
                    raise _Malformed(f"version definition at {off:#x} has no name")
                if not vd_flags & VER_FLG_BASE:
                    (name, _next) = self.unpack(vda_st, off + vd_aux, "version definition aux")
                    definitions.append(string(name, "version definition name"))
                if vd_next == 0:
                    break
                off += vd_next

        return ElfInfo(
            path,
            lay.elf_class,
            "little" if endian == "<" else "big",
            e_machine,
            e_type,
            soname,
            needed_names,
            rpath,
            runpath,
            tuple(requirements),
            tuple(definitions),
            interpreter,
        )


def _run(reader: _Reader, path: str) -> ElfInfo:
    try:
        return _Parser(reader).parse(path)
    except _Malformed as e:
        raise ElfError(path, e.reason) from None
    except _OutOfRange as e:
        raise ElfError(
            path,
            f"truncated: {e.size} bytes at offset {e.offset:#x} lie past the end of the file "
            f"({reader.size} bytes)",
        ) from None
    except _Changed:
        raise ElfError(path, "the file changed (became shorter) while it was being read") from None


# --------------------------------------------------------------------------- public API


def _kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISLNK, "a symbolic link"),
    ):
        if test(mode):
            return name
    return f"a special file (mode {mode:#o})"


def read_elf(path: str | os.PathLike[str]) -> ElfInfo:
    """Read one ELF file from disk.

    Symlinks are resolved and the real path is reported. Anything but a regular file
    (FIFO, device, socket, directory) is refused after ``lstat``, without being opened.
    """
    given = os.fspath(path)
    real = os.path.realpath(given)
    try:
        st = os.lstat(real)
    except OSError as e:
        raise ElfError(real, f"cannot read: {e.strerror or e}") from e
    if not stat.S_ISREG(st.st_mode):
        raise ElfError(real, f"not a regular file: it is {_kind(st.st_mode)}")
    flags = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOFOLLOW", 0)
    flags |= getattr(os, "O_NONBLOCK", 0)  # a FIFO swapped in after lstat must not block
    try:
        fd = os.open(real, flags)
    except OSError as e:
        raise ElfError(real, f"cannot open: {e.strerror or e}") from e
    try:
        fst = os.fstat(fd)
        if not stat.S_ISREG(fst.st_mode):
            raise ElfError(real, f"not a regular file: it is {_kind(fst.st_mode)}")

        def fetch(start: int, length: int) -> bytes:
            try:
                return os.pread(fd, length, start)
            except OSError as e:
                raise _Malformed(f"read error at offset {start:#x}: {e.strerror or e}") from e

        return _run(_Reader(fst.st_size, fetch), real)
    finally:
        os.close(fd)


def parse_elf_bytes(data: bytes | bytearray | memoryview, name: str) -> ElfInfo:
    """Parse an ELF image held in memory; ``name`` is used in ``ElfInfo.path`` and errors."""
    view = bytes(data)

    def fetch(start: int, length: int) -> bytes:
        return view[start : start + length]

    return _run(_Reader(len(view), fetch), name)


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

    return _run(_Reader(size, fetch), name)


def is_elf_file(path: str | os.PathLike[str], st: os.stat_result | None = None) -> bool:
    """True when ``path`` is a regular file that starts with the ELF magic.

    Never opens anything but a regular file; ``st`` (from ``lstat``/``stat``) saves a call.
    """
    try:
        if st is None:
            st = os.stat(path)
        if not stat.S_ISREG(st.st_mode) or st.st_size < 4:
            return False
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return False
    try:
        return os.pread(fd, 4, 0) == ELF_MAGIC
    except OSError:
        return False
    finally:
        os.close(fd)
