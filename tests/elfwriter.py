"""Build small ELF images by hand, for tests of the ELF reader.

An image is laid out in file order as::

    ELF header | program headers | interpreter | .dynstr | .gnu.version_r | .gnu.version_d
    | .dynamic | [.shstrtab | section headers]

with program headers ``phdr[0]`` PT_LOAD covering the whole file (an address is
``spec.vaddr + offset``), ``phdr[1]`` PT_DYNAMIC and ``phdr[2]`` PT_INTERP when an
interpreter is given. With ``section_headers=True`` (the default) the image also has the
sections binutils' ``readelf -d -V`` reads: .dynstr, .gnu.version_r, .gnu.version_d,
.dynamic and .shstrtab.

:func:`build` returns an :class:`ElfImage` whose records (``"ehdr"``, ``"phdr[1]"``,
``"verneed[0]"``, ``"vernaux[0][1]"``, ``"verdef[0]"`` (the BASE entry), ``"verdaux[1]"``,
``"dyn[3]"``, ``"shdr[0]"``...) can be rewritten field by field, to craft malformed files::

    img = build(ElfSpec(needed=["libc.so.6"]))
    img.set("ehdr", "e_phentsize", 8)
    img.set_dyn(DT_STRSZ, 1)
    extra = img.append(b"...")  # more bytes inside the PT_LOAD, at offset ``extra``
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass, field

EM_386, EM_MIPS, EM_PPC64, EM_S390, EM_X86_64, EM_AARCH64 = 3, 8, 21, 22, 62, 183
ET_EXEC, ET_DYN = 2, 3
PT_LOAD, PT_DYNAMIC, PT_INTERP = 1, 2, 3
SHT_STRTAB, SHT_DYNAMIC = 3, 6
SHT_GNU_VERDEF, SHT_GNU_VERNEED = 0x6FFFFFFD, 0x6FFFFFFE
SHF_WRITE, SHF_ALLOC = 1, 2
DT_NULL, DT_NEEDED, DT_STRTAB, DT_STRSZ = 0, 1, 5, 10
DT_SONAME, DT_RPATH, DT_RUNPATH = 14, 15, 29
DT_VERDEF, DT_VERDEFNUM, DT_VERNEED, DT_VERNEEDNUM = 0x6FFFFFFC, 0x6FFFFFFD, 0x6FFFFFFE, 0x6FFFFFFF
VER_FLG_BASE, VER_FLG_WEAK = 1, 2
PN_XNUM = 0xFFFF

# Each record as "field:code ...": A is an address-sized word (Q in ELF64, I in ELF32), S its
# signed form; other codes are struct's. Program headers order their fields by class.
_RECORDS = {
    "ehdr": "e_type:H e_machine:H e_version:I e_entry:A e_phoff:A e_shoff:A e_flags:I "
    "e_ehsize:H e_phentsize:H e_phnum:H e_shentsize:H e_shnum:H e_shstrndx:H",
    "phdr64": "p_type:I p_flags:I p_offset:A p_vaddr:A p_paddr:A p_filesz:A p_memsz:A p_align:A",
    "phdr32": "p_type:I p_offset:A p_vaddr:A p_paddr:A p_filesz:A p_memsz:A p_flags:I p_align:A",
    "shdr": "sh_name:I sh_type:I sh_flags:A sh_addr:A sh_offset:A sh_size:A sh_link:I sh_info:I "
    "sh_addralign:A sh_entsize:A",
    "dyn": "d_tag:S d_val:A",
    "verneed": "vn_version:H vn_cnt:H vn_file:I vn_aux:I vn_next:I",
    "vernaux": "vna_hash:I vna_flags:H vna_other:H vna_name:I vna_next:I",
    "verdef": "vd_version:H vd_flags:H vd_ndx:H vd_cnt:H vd_hash:I vd_aux:I vd_next:I",
    "verdaux": "vda_name:I vda_next:I",
}


def record_layout(kind: str, elf_class: int) -> tuple[tuple[str, ...], str]:
    """Field names and struct format (without byte order) of one record kind."""
    text = _RECORDS.get(f"{kind}{elf_class}", _RECORDS.get(kind, ""))
    pairs = [item.split(":") for item in text.split()]
    codes = {"A": "Q" if elf_class == 64 else "I", "S": "q" if elf_class == 64 else "i"}
    return tuple(n for n, _ in pairs), "".join(codes.get(f, f) for _, f in pairs)


def struct_size(kind: str, elf_class: int) -> int:
    return struct.calcsize("<" + record_layout(kind, elf_class)[1])


def elf_hash(name: str) -> int:
    """The SysV ELF hash that vna_hash / vd_hash hold."""
    h = 0
    for byte in name.encode():
        h = ((h << 4) + byte) & 0xFFFFFFFF
        g = h & 0xF0000000
        if g:
            h ^= g >> 24
        h &= ~g & 0xFFFFFFFF
    return h


@dataclass
class ElfSpec:
    """What the image holds. ``version_needs`` is ``[(file, [(node, weak), ...]), ...]``;
    ``version_definitions`` get a BASE entry (named after the soname) in front of them."""

    elf_class: int = 64
    byte_order: str = "little"
    machine: int = EM_X86_64
    type: int = ET_DYN
    soname: str | None = None
    needed: Sequence[str] = ()
    rpath: str | None = None
    runpath: str | None = None
    version_needs: Sequence[tuple[str, Sequence[tuple[str, bool]]]] = ()
    version_definitions: Sequence[str] = ()
    interpreter: str | None = None
    section_headers: bool = True
    extra_dynamic: Sequence[tuple[int, int]] = ()  # (tag, value) before DT_NULL
    vaddr: int = 0x400000  # where the PT_LOAD (offset 0) is mapped


@dataclass
class ElfImage:
    """The bytes of a built image, and where each record lies in them."""

    data: bytearray
    elf_class: int
    endian: str  # "<" or ">"
    records: dict[str, tuple[str, int]] = field(default_factory=dict)  # label -> (kind, offset)
    strings: dict[str, int] = field(default_factory=dict)  # dynstr index of each string
    offsets: dict[str, int] = field(default_factory=dict)  # "dynstr", "dynamic", ...

    def _struct(self, label: str) -> tuple[tuple[str, ...], struct.Struct, int]:
        kind, offset = self.records[label]
        names, fmt = record_layout(kind, self.elf_class)
        return names, struct.Struct(self.endian + fmt), offset

    def get(self, label: str, name: str) -> int:
        names, st, offset = self._struct(label)
        return int(st.unpack_from(self.data, offset)[names.index(name)])

    def set(self, label: str, name: str, value: int) -> ElfImage:
        names, st, offset = self._struct(label)
        values = list(st.unpack_from(self.data, offset))
        values[names.index(name)] = value
        st.pack_into(self.data, offset, *values)
        return self

    def pack(self, kind: str, **values: int) -> bytes:
        """One record of ``kind`` in this image's class and byte order; fields not given are 0."""
        names, fmt = record_layout(kind, self.elf_class)
        unknown = set(values) - set(names)
        assert not unknown, f"unknown {kind} fields: {unknown}"
        return struct.pack(self.endian + fmt, *(values.get(n, 0) for n in names))

    def dyn_label(self, tag: int) -> str:
        """Label of the first dynamic entry with ``tag``."""
        i = 0
        while f"dyn[{i}]" in self.records:
            if self.get(f"dyn[{i}]", "d_tag") == tag:
                return f"dyn[{i}]"
            i += 1
        raise KeyError(f"no dynamic entry with tag {tag:#x}")

    def set_dyn(self, tag: int, value: int) -> ElfImage:
        return self.set(self.dyn_label(tag), "d_val", value)

    def addr(self, offset: int) -> int:
        """The virtual address of a file offset (through the one PT_LOAD)."""
        return self.get("phdr[0]", "p_vaddr") + offset

    def append(self, data: bytes) -> int:
        """Add ``data`` at the end (8-aligned), grow the PT_LOAD over it; its offset."""
        offset = len(self.data) + -len(self.data) % 8
        self.data += bytes(offset - len(self.data)) + data
        self.set("phdr[0]", "p_filesz", len(self.data))
        self.set("phdr[0]", "p_memsz", len(self.data))
        return offset

    def __bytes__(self) -> bytes:
        return bytes(self.data)


class _StrTab:
    def __init__(self) -> None:
        self.data = bytearray(b"\0")
        self.index: dict[str, int] = {"": 0}

    def add(self, s: str) -> int:
        if s not in self.index:
            self.index[s] = len(self.data)
            self.data += s.encode() + b"\0"
        return self.index[s]


def _align(n: int, a: int = 8) -> int:
    return (n + a - 1) // a * a


def build(spec: ElfSpec) -> ElfImage:
    """Lay out and write the image ``spec`` describes."""
    c = spec.elf_class
    endian = "<" if spec.byte_order == "little" else ">"
    img = ElfImage(bytearray(), c, endian)

    def size(kind: str) -> int:
        return struct_size(kind, c) + (16 if kind == "ehdr" else 0)  # + e_ident

    # ---- strings
    dynstr = _StrTab()
    for s in [*spec.needed, spec.soname, spec.rpath, spec.runpath]:
        if s is not None:
            dynstr.add(s)
    for file, nodes in spec.version_needs:
        dynstr.add(file)
        for node, _weak in nodes:
            dynstr.add(node)
    defs = [spec.soname or "lib.so", *spec.version_definitions] if spec.version_definitions else []
    for name in defs:
        dynstr.add(name)
    img.strings = dict(dynstr.index)

    # ---- dynamic entries; a str value names the part whose address goes there
    dyn: list[tuple[int, int | str]] = [(DT_NEEDED, dynstr.index[n]) for n in spec.needed]
    for tag, value in (
        (DT_SONAME, spec.soname),
        (DT_RPATH, spec.rpath),
        (DT_RUNPATH, spec.runpath),
    ):
        if value is not None:
            dyn.append((tag, dynstr.index[value]))
    dyn += [(DT_STRTAB, "dynstr"), (DT_STRSZ, len(dynstr.data))]
    if spec.version_needs:
        dyn += [(DT_VERNEED, "verneed"), (DT_VERNEEDNUM, len(spec.version_needs))]
    if defs:
        dyn += [(DT_VERDEF, "verdef"), (DT_VERDEFNUM, len(defs))]
    dyn += [*spec.extra_dynamic, (DT_NULL, 0)]

    # ---- layout: offset of each part, in file order
    interp = b"" if spec.interpreter is None else spec.interpreter.encode() + b"\0"
    phnum = 3 if interp else 2
    verneed_size = sum(size("verneed") + len(n) * size("vernaux") for _, n in spec.version_needs)
    verdef_size = len(defs) * (size("verdef") + size("verdaux"))
    parts = [
        ("phdr", phnum * size("phdr"), 1),
        ("interp", len(interp), 1),
        ("dynstr", len(dynstr.data), 1),
        ("verneed", verneed_size, 8),
        ("verdef", verdef_size, 8),
        ("dynamic", len(dyn) * size("dyn"), 8),
    ]
    # sections: (name, sh_type, sh_flags, part, sh_info); sh_link is always .dynstr (1)
    sections: list[tuple[str, int, int, str, int]] = []
    if spec.section_headers:
        sections.append(("", 0, 0, "", 0))
        sections.append((".dynstr", SHT_STRTAB, SHF_ALLOC, "dynstr", 0))
        if spec.version_needs:
            sections.append(
                (".gnu.version_r", SHT_GNU_VERNEED, SHF_ALLOC, "verneed", len(spec.version_needs))
            )
        if defs:
            sections.append((".gnu.version_d", SHT_GNU_VERDEF, SHF_ALLOC, "verdef", len(defs)))
        sections.append((".dynamic", SHT_DYNAMIC, SHF_WRITE | SHF_ALLOC, "dynamic", 0))
        sections.append((".shstrtab", SHT_STRTAB, 0, "shstrtab", 0))
    shstrtab = _StrTab()
    for name, *_ in sections:
        shstrtab.add(name)
    if sections:
        parts += [("shstrtab", len(shstrtab.data), 1), ("shdr", len(sections) * size("shdr"), 8)]
    sizes: dict[str, int] = {"": 0}
    off = size("ehdr")
    for part, part_size, align in parts:
        off = img.offsets[part] = _align(off, align)
        sizes[part] = part_size
        off += part_size
    img.offsets[""] = 0
    img.data = bytearray(off)
    vaddr = spec.vaddr

    def put(label: str, kind: str, offset: int, **values: int) -> None:
        """Write one record; fields not given are 0."""
        img.records[label] = (kind, offset)
        record = img.pack(kind, **values)
        img.data[offset : offset + len(record)] = record

    def write(part: str, data: bytes | bytearray) -> None:
        img.data[img.offsets[part] : img.offsets[part] + len(data)] = data

    # ---- ELF header and program headers
    img.data[0:7] = b"\x7fELF" + bytes([1 if c == 32 else 2, 1 if endian == "<" else 2, 1])
    put(
        "ehdr",
        "ehdr",
        16,
        e_type=spec.type,
        e_machine=spec.machine,
        e_version=1,
        e_phoff=img.offsets["phdr"],
        e_shoff=img.offsets.get("shdr", 0),
        e_ehsize=size("ehdr"),
        e_phentsize=size("phdr"),
        e_phnum=phnum,
        e_shentsize=size("shdr") if sections else 0,
        e_shnum=len(sections),
        e_shstrndx=max(len(sections) - 1, 0),
    )
    phdrs = [(PT_LOAD, "", len(img.data)), (PT_DYNAMIC, "dynamic", sizes["dynamic"])]
    if interp:
        phdrs.append((PT_INTERP, "interp", len(interp)))
    for i, (p_type, part, p_size) in enumerate(phdrs):
        p_off = img.offsets[part]
        put(
            f"phdr[{i}]",
            "phdr",
            img.offsets["phdr"] + i * size("phdr"),
            p_type=p_type,
            p_flags=4 if p_type == PT_INTERP else 6,
            p_offset=p_off,
            p_vaddr=vaddr + p_off,
            p_paddr=vaddr + p_off,
            p_filesz=p_size,
            p_memsz=p_size,
            p_align=0x1000 if p_type == PT_LOAD else 8,
        )
    write("interp", interp)
    write("dynstr", dynstr.data)

    # ---- Verneed / Vernaux: vn_aux, vn_next, vna_next are relative to their own record
    off = img.offsets["verneed"]
    other = len(defs) + 1  # version indexes go on after the definitions' ones
    for i, (file, nodes) in enumerate(spec.version_needs):
        n_size = size("verneed") + len(nodes) * size("vernaux")
        last = i == len(spec.version_needs) - 1
        put(
            f"verneed[{i}]",
            "verneed",
            off,
            vn_version=1,
            vn_cnt=len(nodes),
            vn_file=dynstr.index[file],
            vn_aux=size("verneed"),
            vn_next=0 if last else n_size,
        )
        for j, (node, weak) in enumerate(nodes):
            other += 1
            aux = off + size("verneed") + j * size("vernaux")
            put(
                f"vernaux[{i}][{j}]",
                "vernaux",
                aux,
                vna_hash=elf_hash(node),
                vna_flags=VER_FLG_WEAK if weak else 0,
                vna_other=other,
                vna_name=dynstr.index[node],
                vna_next=0 if j == len(nodes) - 1 else size("vernaux"),
            )
        off += n_size

    # ---- Verdef / Verdaux: one aux (the node's own name) per definition
    off = img.offsets["verdef"]
    d_size = size("verdef") + size("verdaux")
    for i, name in enumerate(defs):
        put(
            f"verdef[{i}]",
            "verdef",
            off,
            vd_version=1,
            vd_flags=VER_FLG_BASE if i == 0 else 0,
            vd_ndx=i + 1,
            vd_cnt=1,
            vd_hash=elf_hash(name),
            vd_aux=size("verdef"),
            vd_next=0 if i == len(defs) - 1 else d_size,
        )
        put(f"verdaux[{i}]", "verdaux", off + size("verdef"), vda_name=dynstr.index[name])
        off += d_size

    # ---- dynamic entries, with the addresses now known
    for i, (tag, val) in enumerate(dyn):
        d_val = vaddr + img.offsets[val] if isinstance(val, str) else val
        put(f"dyn[{i}]", "dyn", img.offsets["dynamic"] + i * size("dyn"), d_tag=tag, d_val=d_val)

    # ---- section headers
    if sections:
        write("shstrtab", shstrtab.data)
        for i, (name, sh_type, flags, part, info) in enumerate(sections):
            put(
                f"shdr[{i}]",
                "shdr",
                img.offsets["shdr"] + i * size("shdr"),
                sh_name=shstrtab.index[name],
                sh_type=sh_type,
                sh_flags=flags,
                sh_addr=vaddr + img.offsets[part] if flags & SHF_ALLOC else 0,
                sh_offset=img.offsets[part] if i else 0,
                sh_size=sizes[part],
                sh_link=1 if part in ("verneed", "verdef", "dynamic") else 0,
                sh_info=info,
                sh_addralign=(1 if sh_type == SHT_STRTAB else 8) if i else 0,
                sh_entsize=size("dyn") if sh_type == SHT_DYNAMIC else 0,
            )
    return img
