"""What ``nativelib inspect --json DIR...`` does, written with pyelftools: the peer that
``scripts/bench_elf.py`` times as a whole process.

Walks each directory (sorted, symlinked directories not followed, each real file once),
keeps regular files starting with the ELF magic, reads DT_NEEDED/SONAME/RPATH/RUNPATH
and the GNU version needs and definitions the way a pyelftools user does (the same
calls as ``bench_elf.pyelftools_facts``), and prints the same JSON document, schema
``inspect.schema.json`` (built in memory, written once).

    python scripts/pyelftools_inspect.py /usr/lib/x86_64-linux-gnu > out.json
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

from elftools.common.exceptions import ELFError
from elftools.elf.dynamic import DynamicSection, DynamicSegment
from elftools.elf.elffile import ELFFile
from elftools.elf.gnuversions import GNUVerDefSection, GNUVerNeedSection

VER_FLG_BASE = 0x1


def elf_files(root: str) -> list[str]:
    """Real paths of the regular ELF files under ``root``, each once, in walk order."""
    seen: set[str] = set()
    out = []
    for dirpath, dirnames, filenames in os.walk(os.path.realpath(root)):
        dirnames.sort()
        for name in sorted(filenames):
            real = os.path.realpath(os.path.join(dirpath, name))
            if real in seen or not os.path.isfile(real):
                continue
            try:
                with open(real, "rb") as f:
                    if f.read(4) != b"\x7fELF":
                        continue
            except OSError:
                continue
            seen.add(real)
            out.append(real)
    return out


def describe(path: str) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "path": path,
        "soname": None,
        "needed": [],
        "rpath": [],
        "runpath": [],
        "version_needs": {},
        "version_definitions": [],
        "error": None,
    }
    rpaths: list[str] = []
    runpaths: list[str] = []
    with open(path, "rb") as stream:
        elf = ELFFile(stream)
        dynamic: Any = None
        for section in elf.iter_sections():
            if isinstance(section, DynamicSection) and dynamic is None:
                dynamic = section
            elif isinstance(section, GNUVerNeedSection):
                for verneed, vernaux_iter in section.iter_versions():
                    names = doc["version_needs"].setdefault(str(verneed.name), [])
                    names.extend(aux.name for aux in vernaux_iter)
            elif isinstance(section, GNUVerDefSection):
                for verdef, verdaux_iter in section.iter_versions():
                    names = [aux.name for aux in verdaux_iter]
                    if not verdef["vd_flags"] & VER_FLG_BASE:
                        doc["version_definitions"].append(names[0])
        if dynamic is None:  # no section headers (stripped): fall back to PT_DYNAMIC
            for segment in elf.iter_segments():
                if isinstance(segment, DynamicSegment):
                    dynamic = segment
                    break
        if dynamic is not None:
            for tag in dynamic.iter_tags():
                kind = tag.entry.d_tag
                if kind == "DT_NEEDED":
                    doc["needed"].append(tag.needed)
                elif kind == "DT_SONAME":
                    doc["soname"] = tag.soname
                elif kind == "DT_RPATH":
                    rpaths.append(tag.rpath)
                elif kind == "DT_RUNPATH":
                    runpaths.append(tag.runpath)
    doc["rpath"] = ":".join(rpaths).split(":") if rpaths else []
    doc["runpath"] = ":".join(runpaths).split(":") if runpaths else []
    return doc


def main(argv: list[str]) -> int:
    files = []
    bad = 0
    for root in argv:
        for path in elf_files(root):
            try:
                files.append(describe(path))
            except (ELFError, OSError, ValueError) as e:
                bad += 1
                files.append({"path": path, "error": str(e)})
    sys.stdout.write(json.dumps({"version": 1, "files": files}, indent=2) + "\n")
    sys.stderr.write(f"inspected {len(files)} files\n")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
