"""What shared objects need, as requirements on runtime distributions.

For each ELF file: its NEEDED sonames and the version nodes it needs of each. A soname a
runtime distribution owns (the catalog) becomes a requirement on that distribution with
the exact nodes; a copy of that soname vendored in the same wheel or directory satisfies
it instead (and is reported); what the host provides (glibc and its kin, the manylinux
policy's list) is checked against the target's glibc instead of being resolved.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from packaging.requirements import InvalidRequirement
from packaging.requirements import Requirement as PkgRequirement
from packaging.utils import canonicalize_name

from nativelib.abi import glibc_beyond
from nativelib.elf import ElfInfo
from nativelib.errors import NativeLibError
from nativelib.resolver.host import Host
from nativelib.resolver.model import Need, Requirement

if TYPE_CHECKING:
    from nativelib.catalog import Catalog

__all__ = ["Needs", "collect", "read_targets"]


@dataclass
class Needs:
    requirements: dict[str, Requirement] = field(default_factory=dict)
    vendored: list[tuple[str, str, str]] = field(default_factory=list)  # file, soname, copy
    host_problems: list[str] = field(default_factory=list)
    unreadable: list[tuple[str, str]] = field(default_factory=list)  # path, reason

    def add(self, req: Requirement) -> None:
        old = self.requirements.get(req.name)
        if old is None:
            self.requirements[req.name] = req
            return
        nodes = {s: set(n) for s, n in old.nodes.items()}
        for soname, more in req.nodes.items():
            nodes.setdefault(soname, set()).update(more)  # two consumers: the union
        self.requirements[req.name] = Requirement(
            req.name,
            {s: frozenset(n) for s, n in nodes.items()},
            old.specifier & req.specifier,
            old.needs + req.needs,
        )


def _groups(
    targets: Iterable[str],
) -> tuple[list[list[ElfInfo]], list[Requirement], list[tuple[str, str]]]:
    """ELF files grouped by the wheel or directory they came from, and requirement strings."""
    groups: list[list[ElfInfo]] = []
    from nativelib.scan import scan_paths  # noqa: PLC0415 (zipfile: only for files)

    strings: list[Requirement] = []
    errors: list[tuple[str, str]] = []
    for target in targets:
        if os.path.exists(target):
            group = []
            for r in scan_paths([target]):
                if r.info is not None:
                    group.append(r.info)
                else:
                    errors.append((r.path, r.error or "unreadable"))
            groups.append(group)
            continue
        try:
            req = PkgRequirement(target)
        except InvalidRequirement:
            req = None
        if req is not None and canonicalize_name(req.name).startswith("nativelib-"):
            strings.append(Requirement.of(req.name, specifier=req.specifier))
            continue
        files = _installed_files(target)
        if files is None:
            raise NativeLibError(
                f"{target!r} is not a file, a directory, a nativelib requirement or an "
                "installed distribution"
            )
        group = []
        for r in scan_paths(files):
            if r.info is not None:
                group.append(r.info)
        groups.append(group)
    return groups, strings, errors


def _installed_files(name: str) -> list[str] | None:
    from importlib import metadata  # noqa: PLC0415

    try:
        dist = metadata.distribution(name)
    except metadata.PackageNotFoundError:
        return None
    out = []
    for f in dist.files or ():
        path = str(f.locate())
        if ".so" in f.name and os.path.isfile(path):
            out.append(path)
    return out


def collect(groups: Iterable[list[ElfInfo]], catalog: Catalog, host: Host) -> Needs:
    """Requirements from the ELF files of each group (a wheel, a directory)."""
    needs = Needs()
    for group in groups:
        inside = {info.soname: info.path for info in group if info.soname}
        for info in group:
            beyond = glibc_beyond(info, host.glibc)
            if beyond:
                needs.host_problems.append(
                    f"{Path(info.path).name} needs {beyond[0]}; the "
                    f"target has glibc {host.glibc[0]}.{host.glibc[1]}"
                )
            wanted = info.version_needs
            for soname in info.needed:
                if soname in inside and inside[soname] != info.path:
                    needs.vendored.append((info.path, soname, inside[soname]))
                    continue
                owner = catalog.owner_of(soname)
                if owner is None:
                    continue  # the host's (checked above through glibc), or not ours to find
                nodes = frozenset(wanted.get(soname, ()))
                needs.add(
                    Requirement.of(
                        owner.name,
                        nodes={soname: nodes},
                        needs=(Need(info.path, soname, nodes),),
                    )
                )
    return needs


def read_targets(
    targets: Iterable[str], catalog: Catalog | Callable[[], Catalog], host: Host
) -> Needs:
    """What the given wheels, directories, installed distributions or strings need.
    ``catalog`` may be a function that loads it: requirement strings alone never do."""
    groups, strings, errors = _groups(targets)
    if groups and callable(catalog):
        catalog = catalog()
    needs = collect(groups, catalog, host) if groups else Needs()  # type: ignore[arg-type]
    needs.unreadable.extend(errors)
    for req in strings:
        needs.add(req)
    return needs
