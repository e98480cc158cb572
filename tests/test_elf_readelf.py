"""Exactness against binutils: every ELF object of the host library tree and of this
Python's lib-dynload, compared fact by fact with ``readelf -d -V --wide``."""

from __future__ import annotations

import os
import shutil
import sysconfig
from pathlib import Path

import pytest

from nativelib.elf import ElfInfo, is_elf_file, read_elf
from nativelib.errors import ElfError
from readelf import ReadelfFacts, readelf

pytestmark = pytest.mark.skipif(
    shutil.which("readelf") is None, reason="binutils' readelf is not installed"
)

# DESTSHARED is the base installation's lib-dynload, also when run from a venv.
HOST_ROOTS = [
    Path("/usr/lib/x86_64-linux-gnu"),
    Path(sysconfig.get_config_var("DESTSHARED")),
]


def _host_elf_files() -> list[str]:
    files: set[str] = set()
    for root in HOST_ROOTS:
        for dirpath, _dirs, names in os.walk(root):
            for name in names:
                real = os.path.realpath(os.path.join(dirpath, name))
                if is_elf_file(real):
                    files.add(real)
    return sorted(files)


def assert_matches_readelf(info: ElfInfo, expected: ReadelfFacts, *, versions: bool = True) -> None:
    assert info.soname == expected.soname
    assert list(info.needed) == expected.needed
    assert list(info.rpath) == expected.rpath
    assert list(info.runpath) == expected.runpath
    if versions:
        ours = [
            (req.file, [(v.name, v.weak) for v in req.versions])
            for req in info.version_requirements
        ]
        assert ours == expected.version_needs
        assert list(info.version_definitions) == expected.version_definitions


def test_every_host_library_matches_readelf() -> None:
    files = _host_elf_files()
    assert HOST_ROOTS[1].is_dir(), "this Python has no lib-dynload directory"
    # This Debian host has ~900; far fewer means the walk is broken.
    assert len(files) >= 300, f"only {len(files)} ELF files found under {HOST_ROOTS}"
    facts = readelf(files)
    compared = with_versions = 0
    failures: list[str] = []
    for path in files:
        expected = facts[path]
        try:
            info = read_elf(path)
        except ElfError as e:
            failures.append(f"{path}: we raised {e}; readelf stderr: {expected.stderr!r}")
            continue
        # readelf reads the version sections through the section headers; a file without
        # them has no version output to compare with (none on a Debian host).
        try:
            assert_matches_readelf(info, expected, versions=expected.has_version_sections)
        except AssertionError as e:
            failures.append(f"{path}: {e}")
            continue
        compared += 1
        with_versions += expected.has_version_sections
    assert not failures, f"{len(failures)} of {len(files)} differ:\n" + "\n".join(failures[:20])
    assert compared == len(files)
    # Versioned objects are the norm on a glibc host; this guards the comparison itself.
    assert with_versions > len(files) // 2


def test_lib_dynload_is_covered() -> None:
    files = _host_elf_files()
    dynload = os.path.realpath(HOST_ROOTS[1])
    assert sum(1 for f in files if f.startswith(dynload + os.sep)) >= 10


def test_fixtures_match_readelf(elf_fixtures) -> None:  # type: ignore[no-untyped-def]
    paths = [
        str(p) for name, p in sorted(elf_fixtures.files.items()) if name != "libuser-noshdr.so"
    ]
    facts = readelf(paths)
    for path in paths:
        assert_matches_readelf(read_elf(path), facts[path])
    # Without section headers readelf has no version output; the facts must equal those
    # of the original file.
    original = read_elf(elf_fixtures["libuser.so"])
    stripped = read_elf(elf_fixtures["libuser-noshdr.so"])
    noshdr_facts = readelf([str(elf_fixtures["libuser-noshdr.so"])])[
        str(elf_fixtures["libuser-noshdr.so"])
    ]
    assert not noshdr_facts.has_version_sections
    assert_matches_readelf(stripped, noshdr_facts, versions=False)
    assert stripped.version_requirements == original.version_requirements
    assert stripped.version_definitions == original.version_definitions


def test_load_segments_match_readelf() -> None:
    """nativelib.elf.load_segments (repair's layout check) against ``readelf -lW``."""
    import re  # noqa: PLC0415
    import subprocess  # noqa: PLC0415

    from nativelib.elf import load_segments  # noqa: PLC0415

    row = re.compile(
        r"^\s*LOAD\s+(0x[0-9a-f]+)\s+(0x[0-9a-f]+)\s+0x[0-9a-f]+\s+(0x[0-9a-f]+)\s+"
        r"(0x[0-9a-f]+)\s+[RWE ]+\s+(0x[0-9a-f]+)$"
    )
    files = _host_elf_files()[::5]  # a spread of the host tree: one readelf run each
    assert len(files) > 50
    for path in files:
        text = subprocess.run(
            ["readelf", "-lW", path], capture_output=True, text=True, check=True
        ).stdout
        expected = [
            tuple(int(g, 16) for g in m.groups()) for m in map(row.match, text.splitlines()) if m
        ]
        machine, segments = load_segments(path)
        assert machine == read_elf(path).machine
        assert segments == expected, path
