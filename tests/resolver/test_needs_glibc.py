"""The resolver's GLIBC check is abi.glibc_fits: the case where its old copy disagreed."""

from __future__ import annotations

from nativelib.catalog import load_catalog
from nativelib.elf import ET_DYN, ElfInfo, VersionNeed, VersionRequirement
from nativelib.resolver.host import Host
from nativelib.resolver.needs import collect


def _needing(*nodes: str) -> ElfInfo:
    return ElfInfo(
        path="/x/_ext.so",
        elf_class=64,
        byte_order="little",
        machine=62,
        type=ET_DYN,
        soname=None,
        needed=("libc.so.6",),
        rpath=(),
        runpath=(),
        version_requirements=(
            VersionRequirement("libc.so.6", tuple(VersionNeed(n) for n in nodes)),
        ),
        version_definitions=(),
        interpreter=None,
    )


def _problems(info: ElfInfo, glibc: tuple[int, int]) -> list[str]:
    return collect([[info]], load_catalog(), Host(glibc, "x86_64")).host_problems


def test_glibc_needs_beyond_the_target() -> None:
    info = _needing("GLIBC_2.17", "GLIBC_2.34", "GLIBC_2.29")
    assert _problems(info, (2, 34)) == []
    assert _problems(info, (2, 28)) == ["_ext.so needs GLIBC_2.34; the target has glibc 2.28"]


def test_glibc_nodes_the_old_check_let_through() -> None:
    # It compared (major, minor) only, and skipped nodes without a number; the manylinux
    # policies (the stricter copy) never did.
    assert _problems(_needing("GLIBC_2.3.4"), (2, 3)) == [
        "_ext.so needs GLIBC_2.3.4; the target has glibc 2.3"
    ]
    assert _problems(_needing("GLIBC_PRIVATE"), (2, 41)) == [
        "_ext.so needs GLIBC_PRIVATE; the target has glibc 2.41"
    ]
