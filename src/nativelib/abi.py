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
    "glibc_beyond",
    "glibc_fits",
    "highest_needed",
    "legacy_aliases",
    "load_policies",
    "manylinux_tags",
    "parse_platform_tag",
    "parse_version_node",
    "platform_tags_with_aliases",
]

_NODE = re.compile(r"^(?P<family>.+?)_(?P<version>[0-9]+(?:\.[0-9]+)*)$")
_MANYLINUX = re.compile(r"^manylinux_(\d+)_(\d+)_(\w+)$")

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


def _within(node: str, caps: Mapping[str, Version]) -> bool:
    """Whether a needed version node is within the caps of each version family.

    A numeric node of a capped family must be at most its cap, compared in full
    (``GLIBC_2.3.4`` is beyond 2.3). A node without a numeric version of a capped family
    (``GLIBC_PRIVATE``) is never within: it ties a file to one build. Nodes of families
    that are not capped (``ZLIB_1.2.9``) are, unless they merely look like a capped family
    with a suffix (``GLIBC_FOO_1``).
    """
    parsed = parse_version_node(node)
    if parsed is None:
        return node.split("_", 1)[0] not in caps
    family, version = parsed
    cap = caps.get(family)
    if cap is None:
        return family.split("_", 1)[0] not in caps
    return version <= cap


def glibc_fits(node: str, glibc: Version) -> bool:
    """Whether a glibc of version ``glibc`` defines the needed version node ``node``.

    The one GLIBC rule, which the manylinux policies apply too: ``GLIBC_2.17`` fits
    2.17 and later, ``GLIBC_2.3.4`` does not fit 2.3, ``GLIBC_PRIVATE`` fits no version;
    nodes of other families (``GLIBCXX_3.4.30``) are not glibc's to judge (True).
    """
    return _within(node, {"GLIBC": glibc})


def glibc_beyond(info: ElfInfo, glibc: Version, skip: Iterable[str] = ()) -> tuple[str, ...]:
    """The GLIBC version nodes ``info`` needs (from any file but those in ``skip``) that a
    glibc of version ``glibc`` lacks: the newest numeric one first, then the others."""
    skipped = set(skip)
    beyond = {
        need.name
        for file, need in info.needed_nodes()
        if file not in skipped and not glibc_fits(need.name, glibc)
    }

    def newest_first(node: str) -> tuple[int, tuple[int, ...], str]:
        parsed = parse_version_node(node)
        return (1, (), node) if parsed is None else (0, tuple(-v for v in parsed[1]), node)

    return tuple(sorted(beyond, key=newest_first))


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
        return node in self.extra_nodes or _within(node, self.caps)

    def tag(self, arch: str) -> str:
        return f"{self.name}_{arch}"

    def tags(self, arch: str) -> tuple[str, ...]:
        """Its platform tag and those of its legacy aliases: ``manylinux_2_17_x86_64``,
        ``manylinux2014_x86_64``."""
        return (self.tag(arch), *(f"{alias}_{arch}" for alias in self.aliases))


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

    @property
    def aliases(self) -> Mapping[str, Version]:
        """Legacy alias (``manylinux2014``) -> the glibc of its policy."""
        return {alias: p.glibc for p in self.policies for alias in p.aliases}


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


def platform_tags_with_aliases(tag: str) -> tuple[str, ...]:
    """A ``manylinux_X_Y_ARCH`` platform tag followed by its legacy aliases' tags
    (``manylinux_2_17_x86_64`` -> also ``manylinux2014_x86_64``); a tag of no policy alone."""
    for policy in load_policies().policies:
        prefix = f"{policy.name}_"
        if tag.startswith(prefix):
            return policy.tags(tag[len(prefix) :])
    return (tag,)


def parse_platform_tag(tag: str) -> tuple[tuple[int, int], str] | None:
    """``(glibc, arch)`` of a manylinux platform tag: ``manylinux_2_28_x86_64`` or a
    legacy alias from the policy data (``manylinux2014_aarch64``); None for another tag."""
    m = _MANYLINUX.match(tag)
    if m is not None:
        return (int(m.group(1)), int(m.group(2))), m.group(3)
    alias, _, arch = tag.partition("_")
    glibc = load_policies().aliases.get(alias)
    if glibc is None:
        return None
    return (glibc[0], glibc[1]), arch


def legacy_aliases() -> tuple[str, ...]:
    """The legacy manylinux aliases (``manylinux2014``...), newest glibc first."""
    return tuple(alias for p in reversed(load_policies().policies) for alias in p.aliases)
