"""The reader on small libraries compiled in the test session (tests/fixtures/build.py)."""

from __future__ import annotations

import os

import pytest

from nativelib.elf import ET_DYN, ET_EXEC, ElfInfo, VersionNeed, read_elf

VERS = ("VERS_1.0", "VERS_2.0", "VERS_3.0")


def _same_facts(a: ElfInfo, b: ElfInfo) -> bool:
    return a._replace(path="") == b._replace(path="")


def test_no_soname(elf_fixtures) -> None:  # type: ignore[no-untyped-def]
    info = read_elf(elf_fixtures["libplain.so"])
    assert info.soname is None
    assert info.needed == ("libc.so.6",)
    assert info.rpath == () and info.runpath == ()
    assert info.version_definitions == ()
    assert info.elf_class == 64 and info.byte_order == "little"
    assert info.machine_name == "x86_64" and info.type == ET_DYN
    assert info.interpreter is None


def test_version_script_definitions(elf_fixtures) -> None:  # type: ignore[no-untyped-def]
    info = read_elf(elf_fixtures["libver.so.1"])
    assert info.soname == "libver.so.1"
    # The BASE entry (the soname itself) is not a version node.
    assert info.version_definitions == VERS
    assert "libver.so.1" not in info.version_definitions


def test_version_needs_and_runpath(elf_fixtures) -> None:  # type: ignore[no-untyped-def]
    info = read_elf(elf_fixtures["libuser.so"])
    assert info.soname == "libuser.so"
    assert info.needed == ("libver.so.1", "libc.so.6")
    assert info.runpath == ("$ORIGIN", "/opt/nativelib/lib")
    assert info.rpath == ()
    needs = info.version_needs
    assert sorted(needs["libver.so.1"]) == list(VERS)
    assert any(n.startswith("GLIBC_2.") for n in needs["libc.so.6"])
    assert all(isinstance(v, VersionNeed) and not v.weak for _f, v in info.needed_nodes())


def test_rpath_not_runpath_and_empty_element(elf_fixtures) -> None:  # type: ignore[no-untyped-def]
    info = read_elf(elf_fixtures["libuser-rpath.so"])
    assert info.rpath == ("$ORIGIN/../lib", "", "/opt/x")
    assert info.runpath == ()


def test_stripped_and_without_section_headers(elf_fixtures) -> None:  # type: ignore[no-untyped-def]
    original = read_elf(elf_fixtures["libuser.so"])
    for name in ("libuser-stripped.so", "libuser-noshdr.so"):
        other = read_elf(elf_fixtures[name])
        assert _same_facts(original, other), name
    data = elf_fixtures["libuser-noshdr.so"].read_bytes()
    assert int.from_bytes(data[0x28:0x30], "little") == 0, "fixture still has e_shoff"


def test_cxx_library_needs_libstdcxx_nodes(elf_fixtures) -> None:  # type: ignore[no-untyped-def]
    info = read_elf(elf_fixtures["libcxx.so"])
    assert "libstdc++.so.6" in info.needed
    nodes = info.version_needs["libstdc++.so.6"]
    assert any(n.startswith("GLIBCXX_3.4") for n in nodes)
    assert any(n.startswith("CXXABI_1.3") for n in nodes)


def test_executable_has_interpreter(elf_fixtures) -> None:  # type: ignore[no-untyped-def]
    info = read_elf(elf_fixtures["prog"])
    assert info.interpreter is not None and "ld-linux" in info.interpreter
    assert info.type in (ET_DYN, ET_EXEC)  # PIE executables are ET_DYN
    # Debian links with --as-needed: libver.so.1 is not a direct need of the program.
    assert info.needed == ("libuser.so", "libc.so.6")


def test_32bit(elf_fixtures) -> None:  # type: ignore[no-untyped-def]
    if elf_fixtures.skipped_32bit:
        pytest.skip(elf_fixtures.skipped_32bit)
    lib = read_elf(elf_fixtures["lib32ver.so.1"])
    assert lib.elf_class == 32 and lib.machine_name == "i686"
    assert lib.soname == "lib32ver.so.1" and lib.version_definitions == VERS
    user = read_elf(elf_fixtures["lib32user.so"])
    assert user.elf_class == 32
    assert user.needed == ("lib32ver.so.1",)
    assert user.runpath == ("$ORIGIN",)
    assert sorted(user.version_needs["lib32ver.so.1"]) == ["VERS_1.0", "VERS_2.0"]


def test_symlink_reports_real_path(elf_fixtures, tmp_path) -> None:  # type: ignore[no-untyped-def]
    link = tmp_path / "alias.so"
    link.symlink_to(elf_fixtures["libver.so.1"])
    info = read_elf(link)
    assert info.path == os.path.realpath(elf_fixtures["libver.so.1"])
    via_soname_link = read_elf(elf_fixtures.dir / "libver.so")
    assert via_soname_link.path == info.path
