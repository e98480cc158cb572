"""manylinux policy data and the version-node helpers."""

from __future__ import annotations

import itertools

import pytest

from nativelib.abi import (
    _parse_policies,
    glibc_beyond,
    glibc_fits,
    highest_needed,
    legacy_aliases,
    load_policies,
    manylinux_tags,
    parse_platform_tag,
    parse_version_node,
    platform_tags_with_aliases,
)
from nativelib.elf import ET_DYN, ElfInfo, VersionNeed, VersionRequirement, read_elf
from nativelib.errors import NativeLibError


def needing(*needs: tuple[str, str], machine: int = 62) -> ElfInfo:
    """An ElfInfo with the given (file, node) needs: policy logic on exact inputs."""
    by_file: dict[str, list[VersionNeed]] = {}
    for file, node in needs:
        by_file.setdefault(file, []).append(VersionNeed(node))
    return ElfInfo(
        path="made-up.so",
        elf_class=64,
        byte_order="little",
        machine=machine,
        type=ET_DYN,
        soname=None,
        needed=tuple(by_file),
        rpath=(),
        runpath=(),
        version_requirements=tuple(VersionRequirement(f, tuple(v)) for f, v in by_file.items()),
        version_definitions=(),
        interpreter=None,
    )


@pytest.mark.parametrize(
    ("node", "parsed"),
    [
        ("GLIBC_2.2.5", ("GLIBC", (2, 2, 5))),
        ("GLIBCXX_3.4.21", ("GLIBCXX", (3, 4, 21))),
        ("GCC_7.0.0", ("GCC", (7, 0, 0))),
        ("GLIBCXX_LDBL_3.4", ("GLIBCXX_LDBL", (3, 4))),
        ("CXXABI_TM_1", ("CXXABI_TM", (1,))),
        ("GLIBC_PRIVATE", None),
        ("CXXABI_FLOAT128", None),
        ("libcudart.so.12", None),
    ],
)
def test_parse_version_node(node: str, parsed: object) -> None:
    assert parse_version_node(node) == parsed


def test_highest_needed_compares_numerically() -> None:
    info = needing(
        ("libc.so.6", "GLIBC_2.9"), ("libm.so.6", "GLIBC_2.29"), ("libc.so.6", "GLIBC_2.17")
    )
    assert highest_needed(info) == "GLIBC_2.29"
    assert highest_needed(info, "GLIBCXX") is None


def test_highest_needed_on_compiled_fixture(elf_fixtures) -> None:  # type: ignore[no-untyped-def]
    info = read_elf(elf_fixtures["libcxx.so"])
    assert highest_needed(info, "GLIBCXX") == max(
        (n for n in info.version_needs["libstdc++.so.6"] if n.startswith("GLIBCXX_3")),
        key=lambda n: tuple(int(p) for p in n.split("_")[1].split(".")),
    )
    assert highest_needed(read_elf(elf_fixtures["libver.so.1"])) is None


def test_policy_data_is_ordered_and_monotone() -> None:
    policies = load_policies().policies
    names = [p.name for p in policies]
    assert names[:3] == ["manylinux_2_5", "manylinux_2_12", "manylinux_2_17"]
    assert policies[2].aliases == ("manylinux2014",)
    for older, newer in itertools.pairwise(policies):
        assert older.glibc < newer.glibc
        for family, cap in older.caps.items():
            assert cap <= newer.caps[family], (older.name, newer.name, family)
    assert "libgomp.so.1" not in load_policies().host_libraries
    assert "libstdc++.so.6" in load_policies().host_libraries


def test_tags_follow_caps() -> None:
    assert manylinux_tags(needing(("libc.so.6", "GLIBC_2.2.5")))[0] == "manylinux_2_5_x86_64"
    assert manylinux_tags(needing(("libc.so.6", "GLIBC_2.17")))[0] == "manylinux_2_17_x86_64"
    assert manylinux_tags(needing(("libc.so.6", "GLIBC_2.18")))[0] == "manylinux_2_24_x86_64"
    # GLIBCXX_3.4.30 needs GCC 12's libstdc++: manylinux_2_35 is the first cap that has it.
    tags = manylinux_tags(
        needing(("libc.so.6", "GLIBC_2.17"), ("libstdc++.so.6", "GLIBCXX_3.4.30"))
    )
    assert tags[0] == "manylinux_2_35_x86_64"
    assert tags[-1] == "manylinux_2_41_x86_64"
    # Families no policy limits do not limit the tag.
    assert manylinux_tags(needing(("libz.so.1", "ZLIB_1.2.9")))[0] == "manylinux_2_5_x86_64"


def test_nodes_outside_every_policy() -> None:
    assert manylinux_tags(needing(("libc.so.6", "GLIBC_PRIVATE"))) == ()
    assert manylinux_tags(needing(("libstdc++.so.6", "CXXABI_FLOAT128"))) == ()
    assert manylinux_tags(needing(("libc.so.6", "GLIBC_2.99"))) == ()


def test_extra_nodes_and_loader_entries() -> None:
    tm = manylinux_tags(needing(("libstdc++.so.6", "CXXABI_TM_1")))
    assert tm[0] == "manylinux_2_17_x86_64"
    # What a binary needs from the dynamic loader itself is skipped, as auditwheel does.
    assert (
        manylinux_tags(needing(("ld-linux-x86-64.so.2", "GLIBC_PRIVATE")))[0]
        == "manylinux_2_5_x86_64"
    )


def test_satisfied_sonames_do_not_limit_the_tag(elf_fixtures) -> None:  # type: ignore[no-untyped-def]
    info = read_elf(elf_fixtures["libcxx.so"])
    # GLIBCXX_3.4.21 (GCC 5) is above manylinux2014's cap 3.4.19.
    assert "GLIBCXX_3.4.21" in info.version_needs["libstdc++.so.6"]
    assert manylinux_tags(info)[0] == "manylinux_2_24_x86_64"
    # With libstdc++ provided by a runtime wheel, only glibc limits the tag.
    assert (
        manylinux_tags(info, satisfied=["libstdc++.so.6", "libgcc_s.so.1"])[0]
        == "manylinux_2_17_x86_64"
    )


def test_host_libstdcxx_tag() -> None:
    info = read_elf("/usr/lib/x86_64-linux-gnu/libstdc++.so.6")
    glibc = highest_needed(info)
    assert glibc is not None
    needed = tuple(int(p) for p in glibc.split("_")[1].split("."))
    # libstdc++ needs only glibc and libgcc_s nodes: the glibc it needs decides the tag.
    expected = next(p for p in load_policies().policies if p.glibc >= needed)
    assert manylinux_tags(info)[0] == expected.tag("x86_64")


def test_architectures() -> None:
    aarch64 = needing(("libc.so.6", "GLIBC_2.17"), machine=183)
    assert manylinux_tags(aarch64)[0] == "manylinux_2_17_aarch64"
    assert manylinux_tags(needing(("libc.so.6", "GLIBC_2.0"), machine=3))[0] == "manylinux_2_5_i686"
    with pytest.raises(NativeLibError, match="'riscv64'"):
        manylinux_tags(needing(("libc.so.6", "GLIBC_2.27"), machine=243))
    with pytest.raises(NativeLibError, match="one architecture"):
        manylinux_tags([aarch64, needing(("libc.so.6", "GLIBC_2.17"))])


@pytest.mark.parametrize(
    "raw",
    [
        {"version": 2},
        {"version": 1, "architectures": {}, "policies": {}, "host_libraries": []},
        {"version": 1, "policies": [], "host_libraries": []},
    ],
)
def test_malformed_policy_data_is_a_clear_error(raw: dict[str, object]) -> None:
    with pytest.raises(NativeLibError, match="manylinux policy data"):
        _parse_policies(raw)


# --------------------------------------------------------------------------- one rule each


@pytest.mark.parametrize(
    ("node", "glibc", "fits"),
    [
        ("GLIBC_2.17", (2, 17), True),
        ("GLIBC_2.18", (2, 17), False),
        ("GLIBC_2.2.5", (2, 5), True),
        # The resolver used to compare only (major, minor): 2.3.4 "fitted" glibc 2.3.
        ("GLIBC_2.3.4", (2, 3), False),
        # ... and skipped GLIBC_PRIVATE, which no manylinux policy allows.
        ("GLIBC_PRIVATE", (2, 41), False),
        ("GLIBCXX_3.4.30", (2, 5), True),
        ("ZLIB_1.2.9", (2, 5), True),
    ],
)
def test_glibc_fits(node: str, glibc: tuple[int, ...], fits: bool) -> None:
    assert glibc_fits(node, glibc) is fits


def test_manylinux_policies_apply_the_glibc_rule() -> None:
    nodes = [
        "GLIBC_2.2.5",
        "GLIBC_2.3.4",
        "GLIBC_2.17",
        "GLIBC_2.28",
        "GLIBC_2.41",
        "GLIBC_PRIVATE",
    ]
    for policy in load_policies().policies:
        for node in nodes:
            assert policy.allows(node) is glibc_fits(node, policy.glibc), (policy.name, node)


def test_glibc_beyond_newest_first() -> None:
    info = needing(
        ("libc.so.6", "GLIBC_2.17"),
        ("libc.so.6", "GLIBC_2.34"),
        ("libm.so.6", "GLIBC_2.29"),
        ("libc.so.6", "GLIBC_PRIVATE"),
        ("libstdc++.so.6", "GLIBCXX_3.4.30"),
    )
    assert glibc_beyond(info, (2, 28)) == ("GLIBC_2.34", "GLIBC_2.29", "GLIBC_PRIVATE")
    assert glibc_beyond(info, (2, 41), skip=["libc.so.6"]) == ()


def test_platform_tags_with_aliases_from_the_policy_data() -> None:
    assert platform_tags_with_aliases("manylinux_2_17_x86_64") == (
        "manylinux_2_17_x86_64",
        "manylinux2014_x86_64",
    )
    assert platform_tags_with_aliases("manylinux_2_5_i686") == (
        "manylinux_2_5_i686",
        "manylinux1_i686",
    )
    assert platform_tags_with_aliases("manylinux_2_28_aarch64") == ("manylinux_2_28_aarch64",)
    assert legacy_aliases() == ("manylinux2014", "manylinux2010", "manylinux1")
    assert parse_platform_tag("manylinux2010_x86_64") == ((2, 12), "x86_64")
    assert parse_platform_tag("manylinux_2_28_aarch64") == ((2, 28), "aarch64")
    assert parse_platform_tag("linux_x86_64") is None
