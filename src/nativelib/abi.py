"""ABI policy: manylinux caps, host-provided sonames, version-node checks.

Policy is data (``nativelib/data/manylinux-policy.json``), parsed once into frozen
dataclasses. Standard library only.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

from nativelib.elf import ElfInfo
from nativelib.errors import NativeLibError

__all__ = [
    "ManylinuxPolicy",
    "PolicySet",
    "highest_needed",
    "load_policies",
    "manylinux_tags",
    "parse_version_node",
]

_NODE = re.compile(r"^(?P<family>.+?)_(?P<version>[0-9]+(?:\.[0-9]+)*)$")

Version = tuple[int, ...]


def parse_version_node(name: str) -> tuple[str, Version] | None:
    """Split ``GLIBCXX_3.4.21`` into ``("GLIBCXX", (3, 4, 21))``.

    Returns ``None`` for nodes without a numeric version (``GLIBC_PRIVATE``,
    ``CXXABI_FLOAT128``). ``CXXABI_TM_1`` parses as family ``CXXABI_TM``, version
    ``(1,)``: families are compared exactly, so it never counts as a ``CXXABI`` version.
    """
    m = _NODE.match(name)
    if m is None:
        return None
    return m["family"], tuple(int(p) for p in m["version"].split("."))


def _version(text: str) -> Version:
    return tuple(int(p) for p in text.split("."))


def highest_needed(info: ElfInfo, family: str = "GLIBC") -> str | None:
    """The highest version node of ``family`` that ``info`` needs, e.g. ``"GLIBC_2.34"``.

    Nodes from every needed file count (glibc nodes are needed from libc, libm, ld.so...).
    ``None`` when the file needs no numeric node of that family.
    """
    best: tuple[Version, str] | None = None
    for _file, need in info.needed_nodes():
        parsed = parse_version_node(need.name)
        if parsed is None or parsed[0] != family:
            continue
        if best is None or parsed[1] > best[0]:
            best = (parsed[1], need.name)
    return None if best is None else best[1]


@dataclass(frozen=True)
class ManylinuxPolicy:
    """One manylinux policy: its name, aliases and the cap of each version family."""

    name: str
    aliases: tuple[str, ...]
    glibc: Version
    caps: Mapping[str, Version]
    extra_nodes: frozenset[str]

    def allows(self, node: str) -> bool:
        """Whether a needed version node is within this policy."""
        if node in self.extra_nodes:
            return True
        parsed = parse_version_node(node)
        if parsed is None:
            # GLIBC_PRIVATE and the like: allowed only when its family is not policed.
            family = node.split("_", 1)[0]
            return family not in self.caps
        family, version = parsed
        cap = self.caps.get(family)
        if cap is None:
            # A node of a family no policy limits (ZLIB_1.2.9), unless it merely looks
            # like a policed family with a suffix (CXXABI_TM_1 is handled above).
            base = family.split("_", 1)[0]
            return base not in self.caps
        return version <= cap

    def tag(self, arch: str) -> str:
        return f"{self.name}_{arch}"


@dataclass(frozen=True)
class PolicySet:
    """All manylinux policies, oldest glibc first, and the per-architecture facts."""

    policies: tuple[ManylinuxPolicy, ...]
    first_policy: Mapping[str, str]
    loaders: Mapping[str, str]
    host_libraries: frozenset[str]

    @property
    def architectures(self) -> tuple[str, ...]:
        return tuple(self.first_policy)

    def for_arch(self, arch: str) -> tuple[ManylinuxPolicy, ...]:
        first = self.first_policy.get(arch)
        if first is None:
            raise NativeLibError(
                f"no manylinux policy data for architecture {arch!r} "
                f"(known: {', '.join(self.architectures)})"
            )
        names = [p.name for p in self.policies]
        return self.policies[names.index(first) :]


def _parse_policies(raw: Mapping[str, object]) -> PolicySet:
    if raw.get("version") != 1:
        raise NativeLibError(f"manylinux policy data: unsupported version {raw.get('version')!r}")
    archs = raw.get("architectures")
    pols = raw.get("policies")
    hosts = raw.get("host_libraries")
    if not (isinstance(archs, dict) and isinstance(pols, list) and isinstance(hosts, list)):
        raise NativeLibError(
            "manylinux policy data: 'architectures' (object), 'policies' and "
            "'host_libraries' (arrays) are required"
        )
    policies = []
    for p in pols:
        policies.append(
            ManylinuxPolicy(
                name=p["name"],
                aliases=tuple(p["aliases"]),
                glibc=_version(p["glibc"]),
                caps={k: _version(v) for k, v in p["caps"].items()},
                extra_nodes=frozenset(p["extra_nodes"]),
            )
        )
    policies.sort(key=lambda p: p.glibc)
    return PolicySet(
        policies=tuple(policies),
        first_policy={a: v["first"] for a, v in archs.items()},
        loaders={a: v["loader"] for a, v in archs.items()},
        host_libraries=frozenset(hosts),
    )


@lru_cache(maxsize=1)
def load_policies() -> PolicySet:
    """The manylinux policy data shipped in the package, parsed once."""
    text = resources.files("nativelib").joinpath("data/manylinux-policy.json").read_text("utf-8")
    return _parse_policies(json.loads(text))


def manylinux_tags(
    infos: ElfInfo | Iterable[ElfInfo],
    arch: str | None = None,
    satisfied: Iterable[str] = (),
) -> tuple[str, ...]:
    """The manylinux tags every given file is compatible with, oldest policy first.

    Compatibility is judged on the version nodes needed, grouped by family (GLIBC,
    GLIBCXX, CXXABI, GCC) and compared with each policy's caps; entries needed from the
    dynamic loader are skipped. ``satisfied`` names sonames whose needs are met by
    something other than the host (a runtime wheel): their nodes do not limit the tag.
    ``arch`` defaults to the files' own architecture. Returns ``()`` when no policy fits
    (for instance a node like ``GLIBC_PRIVATE``).
    """
    files = [infos] if isinstance(infos, ElfInfo) else list(infos)
    policy_set = load_policies()
    if arch is None:
        archs = {f.machine_name for f in files}
        if len(archs) != 1:
            raise NativeLibError(
                f"cannot pick one architecture for manylinux tags: files are {sorted(archs)!r}"
            )
        arch = archs.pop()
    candidates = policy_set.for_arch(arch)
    skip = {policy_set.loaders[arch], *satisfied}
    nodes = {need.name for f in files for file, need in f.needed_nodes() if file not in skip}
    return tuple(p.tag(arch) for p in candidates if all(p.allows(n) for n in nodes))
