"""External libraries that are no runtime's: grafted by ``auditwheel repair`` itself.

A wheel whose shared objects NEED a library that no runtime distribution owns, that no
manylinux policy lets the host provide and that the wheel does not carry (libpng, a
libfoo built next to the extension) is first given to the real ``auditwheel repair``,
with ``--exclude`` for every soname that must not be grafted, so that it never vendors a
runtime; nativelib then links the runtimes in auditwheel's output. There is no second
grafting implementation here: this module finds whether the step is needed and runs it.

:func:`classify_needs` is the one rule, shared by ``repair`` (whether auditwheel runs, and
what it excludes) and ``check`` (what is an ``external-library`` problem). A needed
soname that the wheel does not carry is, in this order:

- a runtime's (the catalog owns it): linked to the runtime wheel, never grafted; except
  where the wheel already requires the upstream distribution the runtime is built from
  (``Requires-Dist: nvidia-cuda-runtime`` for ``libcudart.so.13``) and the object's
  RUNPATH leaves the wheel (``$ORIGIN/../../nvidia/cu13/lib``): that distribution
  provides it, and requiring the runtime wheel too would put a second copy in the
  environment that the object never loads (``provided``);
- the host's by the manylinux policy (libc, libstdc++, libz, ...);
- the driver's (``data/host-drivers.json``: libcuda.so.1, libnvidia-ml.so.1, libEGL.so.1,
  ...): it must come from the host, whose driver it matches;
- another distribution's: the object has an ``$ORIGIN``-relative RUNPATH/RPATH entry
  that leaves the wheel (``$ORIGIN/../../nvidia/cublas/lib`` in torch's libtorch_cuda.so
  reaches the nvidia-cublas wheel's folder in site-packages), so the loader finds it
  in the wheel that is installed next to this one;
- otherwise external: auditwheel grafts it.
"""

from __future__ import annotations

import json
import os
import posixpath
import re
import shutil
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path

from packaging.utils import canonicalize_name

from nativelib.abi import load_policies
from nativelib.catalog import Catalog, Recipe
from nativelib.elf import ElfInfo
from nativelib.errors import RepairError
from nativelib.prefix import PREFIX_DIRNAME

__all__ = [
    "NeedClasses",
    "classify_needs",
    "external_needs",
    "find_auditwheel",
    "graft_with_auditwheel",
    "host_drivers",
    "upstream_provider",
]

#: Libraries every manylinux policy from some glibc on lets the host provide besides the
#: base list (``host_libraries_added`` in the policy data), and the dynamic loaders.
_POLICY_ADDED = ("ld-linux", "libmvec.so", "libexpat.so")

#: ``*.data/platlib/`` and ``*.data/purelib/`` are installed at the root, like the rest.
_DATA_ROOT = re.compile(r"^[^/]+\.data/(?:platlib|purelib)/")


@lru_cache(maxsize=1)
def host_drivers() -> frozenset[str]:
    """The sonames that must come from the host's driver (``data/host-drivers.json``)."""
    text = resources.files("nativelib").joinpath("data/host-drivers.json").read_text("utf-8")
    return frozenset(json.loads(text)["sonames"])


@dataclass
class NeedClasses:
    """What each object of a wheel NEEDs that the wheel does not carry, by who provides it.
    Each list holds ``(member, soname)`` pairs, sorted."""

    external: list[tuple[str, str]] = field(default_factory=list)  # auditwheel grafts
    runtimes: list[tuple[str, str]] = field(default_factory=list)  # runtime wheels
    drivers: list[tuple[str, str]] = field(default_factory=list)  # the host's driver
    # reached through an $ORIGIN entry that leaves the wheel: (member, soname, entry)
    other_distributions: list[tuple[str, str, str]] = field(default_factory=list)
    # a runtime's soname that a required upstream distribution provides through such an
    # entry: (member, soname, distribution)
    provided: list[tuple[str, str, str]] = field(default_factory=list)

    def excluded(self) -> set[str]:
        """The sonames auditwheel must not graft (``--exclude``): runtimes', drivers' and
        other distributions'."""
        return (
            {s for _, s in self.runtimes}
            | {s for _, s in self.drivers}
            | {s for _, s, _ in self.other_distributions}
            | {s for _, s, _ in self.provided}
        )

    def notes(self) -> list[str]:
        """One line each for the libraries that are neither grafted nor a runtime's."""
        out = []
        by_dist: dict[str, set[str]] = {}
        for _, soname, dist in self.provided:
            by_dist.setdefault(dist, set()).add(soname)
        for dist, sonames in sorted(by_dist.items()):
            out.append(
                f"provided by {dist} (Requires-Dist, reached through RUNPATH): "
                f"{', '.join(sorted(sonames))}; not linked to a runtime wheel"
            )
        by_entry: dict[str, set[str]] = {}
        for _, soname, entry in self.other_distributions:
            by_entry.setdefault(entry, set()).add(soname)
        for entry, sonames in sorted(by_entry.items()):
            out.append(
                f"from other distributions: {', '.join(sorted(sonames))} "
                f"(through RUNPATH {entry}, outside the wheel; not grafted)"
            )
        if self.drivers:
            libs = ", ".join(sorted({s for _, s in self.drivers}))
            out.append(f"from the host's driver: {libs} (not grafted)")
        return out


def _installed(arcname: str) -> str:
    """A member's path relative to the install root (site-packages)."""
    return _DATA_ROOT.sub("", arcname)


def _outside_entries(arcname: str, info: ElfInfo, top: set[str]) -> list[str]:
    """The ``$ORIGIN``-relative search path entries of ``info`` that lead out of the wheel:
    above the install root, or into a top-level directory of site-packages that is not
    one of the wheel's (another distribution's, like ``nvidia/``). An entry into a missing
    folder of the wheel's own package (a stale ``$ORIGIN/../lib``) does not count: no
    other distribution installs there; nor does the runtime wheels' prefix (it holds the
    catalog's runtimes only)."""
    member_dir = posixpath.dirname(_installed(arcname))
    out = []
    for entry in info.runpath or info.rpath:
        for token in ("$ORIGIN", "${ORIGIN}"):
            if entry == token or entry.startswith(token + "/"):
                rest = entry[len(token) :].lstrip("/")
                joined = posixpath.join(member_dir, rest) if rest else member_dir
                target = posixpath.normpath(joined) if joined else ""
                target = "" if target == "." else target
                above = target == ".." or target.startswith("../")
                first = target.split("/", 1)[0]
                if above or (target and first not in {*top, PREFIX_DIRNAME}):
                    out.append(entry)
                break
    return out


def upstream_provider(recipe: Recipe, requires: Iterable[str]) -> str | None:
    """The distribution among ``requires`` (canonical names a wheel's ``Requires-Dist``
    names) that ``recipe`` is built from (one of its wheel sources' packages), if any."""
    wanted = set(requires)
    for source in recipe.sources:
        if source.kind != "wheel":
            continue
        for package in source.packages:
            name = canonicalize_name(package.name) if package.name else None
            if name in wanted:
                return name
    return None


def classify_needs(
    infos: dict[str, ElfInfo],
    catalog: Catalog,
    members: Iterable[str] = (),
    requires: Iterable[str] = (),
) -> NeedClasses:
    """Sort every NEEDED soname the wheel does not carry by who provides it (see the
    module's docstring). ``members`` are all the wheel's member names (to tell which
    directories an ``$ORIGIN`` entry reaches are the wheel's); the ELF members are always
    counted. ``requires``: the canonical names the wheel's ``Requires-Dist`` lines name."""
    policies = load_policies()
    host = set(policies.host_libraries) | set(policies.loaders.values())
    drivers = host_drivers()
    inside = {posixpath.basename(a) for a in infos} | {i.soname for i in infos.values() if i.soname}
    top = {_installed(name).split("/", 1)[0] for name in [*members, *infos]}
    requires = frozenset(requires)
    out = NeedClasses()
    for arcname, info in sorted(infos.items()):
        outside = _outside_entries(arcname, info, top)
        for soname in info.needed:
            if soname in host or soname in inside or soname.startswith(_POLICY_ADDED):
                continue
            owner = catalog.owner_of(soname)
            if owner is not None:
                upstream = upstream_provider(owner, requires) if outside else None
                if upstream is not None:
                    out.provided.append((arcname, soname, upstream))
                else:
                    out.runtimes.append((arcname, soname))
            elif soname in drivers:
                out.drivers.append((arcname, soname))
            elif outside:
                out.other_distributions.append((arcname, soname, ":".join(outside)))
            else:
                out.external.append((arcname, soname))
    return out


def external_needs(
    infos: dict[str, ElfInfo], catalog: Catalog, members: Iterable[str] = ()
) -> list[tuple[str, str]]:
    """``(member, soname)`` for each NEEDED library that auditwheel must graft
    (:func:`classify_needs`' ``external``)."""
    return classify_needs(infos, catalog, members).external


def find_auditwheel() -> str:
    """The ``auditwheel`` of this environment (the ``repair`` extra), else on PATH."""
    here = Path(sys.executable).parent / "auditwheel"
    if here.exists():
        return str(here)
    found = shutil.which("auditwheel")
    if found is None:
        raise RepairError(
            "auditwheel",
            "not found (the wheel needs external libraries that auditwheel grafts)",
            hint="pip install 'pynativelib[repair]'",
        )
    return found


def graft_with_auditwheel(
    wheel: Path,
    dest: Path,
    excluded: Iterable[str],
    patchelf: str | None = None,
) -> Path:
    """``auditwheel repair --exclude <each excluded soname> -w dest wheel`` (runtimes',
    drivers', other distributions'); the wheel it wrote. Its platform tag does not
    matter: nativelib decides the tag afterwards."""
    binary = find_auditwheel()
    cmd = [binary, "repair", "-w", str(dest)]
    for soname in sorted(set(excluded)):
        cmd += ["--exclude", soname]
    cmd.append(str(wheel))
    env = dict(os.environ)
    if patchelf is not None:
        env["PATH"] = f"{Path(patchelf).parent}{os.pathsep}{env.get('PATH', '')}"
    dest.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        raise RepairError(
            str(wheel),
            "auditwheel repair (grafting the external libraries "
            f"the wheel needs) failed: {' / '.join(tail) or done.returncode}",
            hint="the libraries must be findable: set LD_LIBRARY_PATH (or "
            "AUDITWHEEL_LD_LIBRARY_PATH) to their directory",
        )
    written = sorted(dest.glob("*.whl"))
    if len(written) != 1:
        raise RepairError(str(wheel), f"auditwheel wrote {len(written)} wheels, expected 1")
    return written[0]
