"""The one lower-bound rule: a runtime requirement's bound comes from the version nodes needed.

The bound on ``nativelib-<name>`` is the first upstream release whose runtime defines every
version node the files need (``data/runtime-node-releases.json``: GLIBCXX/CXXABI/GCC/
LIBATOMIC for cxx14, OMP/GOMP for gomp, GFORTRAN/QUADMATH for gfortran5, the soname major
for cudart and MKL), never below the first release of the soname's major (its floor). It
does not depend on which runtime wheels happen to be at hand: candidates, when given, only
cross-check it (the oldest one at or above the bound that defines the nodes). A bound
declared in the wheel's own METADATA is kept when it is tighter.

Repair, ``requires``, ``check``, ``config --requires`` and ``release`` all ask this module.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from typing import TYPE_CHECKING

from packaging.specifiers import SpecifierSet
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import InvalidVersion, Version

from nativelib.errors import NativeLibError
from nativelib.resolver.model import Candidate, Requirement

if TYPE_CHECKING:
    from nativelib.resolver.candidates import Source

__all__ = [
    "BoundDecision",
    "DistributionReleases",
    "RuleBound",
    "SonameReleases",
    "declared_lower_bound",
    "first_release",
    "node_bound",
    "requirement_bounds",
    "rule_bound",
    "runtime_releases",
    "short_version",
]

_DATA = "data/runtime-node-releases.json"


@dataclass(frozen=True)
class SonameReleases:
    """One soname of a runtime: the first release of its major, and of each node."""

    floor: Version
    nodes: Mapping[str, Version]


@dataclass(frozen=True)
class DistributionReleases:
    name: NormalizedName
    sonames: Mapping[str, SonameReleases]  # "*": every soname of the distribution

    def soname(self, soname: str) -> SonameReleases | None:
        return self.sonames.get(soname) or self.sonames.get("*")

    @property
    def floor(self) -> Version:
        """The oldest floor of its sonames: the bound when nothing more is known."""
        return min(s.floor for s in self.sonames.values())


@dataclass(frozen=True)
class RuntimeReleases:
    distributions: Mapping[NormalizedName, DistributionReleases]
    conservative: frozenset[str]

    def first_release(self, node: str) -> Version | None:
        """The first release defining ``node`` in any runtime; None when not known."""
        for dist in self.distributions.values():
            for s in dist.sonames.values():
                found = s.nodes.get(node)
                if found is not None:
                    return found
        return None


def _parse(doc: Mapping[str, object]) -> RuntimeReleases:
    if doc.get("version") != 1:
        raise NativeLibError(f"{_DATA}: unsupported version {doc.get('version')!r}")
    raw = doc.get("distributions")
    if not isinstance(raw, dict):
        raise NativeLibError(f"{_DATA}: 'distributions' must be an object")
    out: dict[NormalizedName, DistributionReleases] = {}
    try:
        for name, entry in raw.items():
            sonames = {
                soname: SonameReleases(
                    Version(s["floor"]), {n: Version(v) for n, v in s["nodes"].items()}
                )
                for soname, s in entry["sonames"].items()
            }
            out[canonicalize_name(name)] = DistributionReleases(canonicalize_name(name), sonames)
    except (KeyError, TypeError, AttributeError, InvalidVersion) as e:
        raise NativeLibError(f"{_DATA}: malformed entry ({e})") from e
    conservative = doc.get("conservative", [])
    if not isinstance(conservative, list):
        raise NativeLibError(f"{_DATA}: 'conservative' must be an array")
    return RuntimeReleases(out, frozenset(str(n) for n in conservative))


@lru_cache(maxsize=1)
def runtime_releases() -> RuntimeReleases:
    """The policy data, parsed once."""
    text = resources.files("nativelib").joinpath(_DATA).read_text("utf-8")
    return _parse(json.loads(text))


def first_release(node: str) -> Version | None:
    """The upstream release that first defined ``node`` (any runtime); None when unknown."""
    return runtime_releases().first_release(node)


def short_version(version: Version) -> str:
    """``12.1.0`` -> ``12.1``, ``8`` -> ``8``: how a bound is written."""
    parts = list(version.release)
    while len(parts) > 2 and parts[-1] == 0:
        parts.pop()
    if len(parts) == 2 and parts[1] == 0 and version.release[0] < 1000:
        parts.pop()
    return ".".join(map(str, parts))


@dataclass(frozen=True)
class RuleBound:
    """The rule's answer for one distribution and the nodes needed of it."""

    distribution: NormalizedName
    bound: Version | None  # None: the distribution or a node is not in the data
    because: str  # the node (or floor) that sets the bound
    unknown: tuple[str, ...] = ()  # nodes (or sonames) the data does not know

    def describe(self) -> str:
        if self.bound is None:
            what = ", ".join(self.unknown) or self.distribution
            return f"no first release is known for {what}"
        return f"{self.because} is first in {self.bound}"


def rule_bound(distribution: str, nodes: Mapping[str, Iterable[str]]) -> RuleBound:
    """The first release of ``distribution`` that defines every node in ``nodes``
    (soname -> nodes needed of it), never below the floor of each soname."""
    name = canonicalize_name(distribution)
    dist = runtime_releases().distributions.get(name)
    if dist is None:
        return RuleBound(name, None, "", (name,))
    best: tuple[Version, str] | None = None
    unknown: list[str] = []
    for soname, wanted in sorted(nodes.items()):
        releases = dist.soname(soname)
        if releases is None:
            unknown.append(soname)
            continue
        if best is None or releases.floor > best[0]:
            best = (releases.floor, f"{soname} (the floor of its major)")
        for node in sorted(wanted):
            if node == soname:
                continue  # the base definition: the floor
            release = releases.nodes.get(node)
            if release is None:
                unknown.append(node)
            elif release > best[0]:
                best = (release, node)
    if best is None:
        best = (dist.floor, f"{name}'s floor")
    if unknown:
        return RuleBound(name, None, "", tuple(unknown))
    return RuleBound(name, best[0], best[1])


def node_bound(distribution: str, nodes: Iterable[str]) -> Version | None:
    """The first release of ``distribution`` defining every node (of any of its sonames);
    None when the distribution or one of the nodes is not in the data."""
    name = canonicalize_name(distribution)
    dist = runtime_releases().distributions.get(name)
    if dist is None:
        return None
    by_soname: dict[str, list[str]] = {}
    for node in nodes:
        soname = next(
            (s for s, r in dist.sonames.items() if node in r.nodes or node == s),
            next(iter(dist.sonames)),
        )
        by_soname.setdefault(soname, []).append(node)
    return rule_bound(name, by_soname or {next(iter(dist.sonames)): []}).bound


def declared_lower_bound(specifier: SpecifierSet) -> Version | None:
    """The lower bound a declared specifier sets (``>=``, ``>``, ``==``, ``~=``, ``===``)."""
    best: Version | None = None
    for spec in specifier:
        if spec.operator in (">=", ">", "==", "~=", "==="):
            text = spec.version.rstrip(".*")
            try:
                v = Version(text)
            except InvalidVersion:
                continue
            if best is None or v > best:
                best = v
    return best


@dataclass(frozen=True)
class BoundDecision:
    """The bound written for one runtime requirement, and why."""

    distribution: NormalizedName
    rule: RuleBound
    bound: Version | None  # what ``>=`` is written with; None: no bound
    declared: Version | None = None  # the bound declared in the input METADATA
    kept_declared: bool = False  # the declared bound was tighter and is kept
    candidate: Version | None = None  # oldest candidate at/above the bound with the nodes
    cross_checked: bool = False  # candidates were given
    candidates_below: tuple[Version, ...] = ()  # older candidates that define the nodes too
    problem: str | None = None  # why no runtime wheel could satisfy it
    notes: tuple[str, ...] = field(default_factory=tuple)

    def requirement(self) -> str:
        if self.bound is None:
            return str(self.distribution)
        return f"{self.distribution}>={short_version(self.bound)}"

    def describe(self) -> str:
        return f"{self.requirement()}: {self.reasons()}"

    def reasons(self) -> str:
        """Why this bound: the node that sets it, a declared bound kept, the cross-check."""
        parts = [self.rule.describe()]
        if self.kept_declared and self.declared is not None:
            parts.append(f"the declared bound {short_version(self.declared)} is tighter: kept")
        if not self.cross_checked:
            parts.append("not cross-checked (no candidates given)")
        elif self.candidate is not None:
            parts.append(f"candidate {self.candidate} provides it")
        parts += list(self.notes)
        if self.problem:
            parts.append(self.problem)
        return "; ".join(parts)


def _oldest_providing(
    cands: Iterable[Candidate], req: Requirement, at_least: Version | None
) -> tuple[Candidate | None, list[Candidate]]:
    """The oldest candidate at or above ``at_least`` that defines every node, and the
    older ones that define them too."""
    good = sorted(
        (c for c in cands if all(c.provides(s, n) for s, n in req.nodes.items())),
        key=lambda c: c.version,
    )
    above = [c for c in good if at_least is None or c.version >= at_least]
    below = [c for c in good if at_least is not None and c.version < at_least]
    return (above[0] if above else None), below


def requirement_bounds(
    needs: Mapping[str, Requirement] | Iterable[Requirement],
    candidates: Source | None = None,
    declared: Mapping[str, SpecifierSet] | None = None,
) -> dict[NormalizedName, BoundDecision]:
    """For each requirement, the bound to write (see the module docstring).

    ``candidates``: runtime wheels to cross-check against (any platform); ``declared``:
    the specifiers already in the input METADATA, by distribution name. A requirement
    whose nodes are not in the data takes its bound from the oldest candidate that defines
    them (when there are candidates), else none; :attr:`BoundDecision.problem` says when
    candidates were given and none defines the nodes.
    """
    reqs = list(needs.values()) if isinstance(needs, Mapping) else list(needs)
    declared_by = {canonicalize_name(k): v for k, v in (declared or {}).items()}
    out: dict[NormalizedName, BoundDecision] = {}
    for req in reqs:
        rule = rule_bound(req.name, req.nodes)
        bound = rule.bound
        notes: list[str] = []
        spec = declared_by.get(req.name)
        dec = declared_lower_bound(spec) if spec is not None else None
        kept = dec is not None and (bound is None or dec > bound)
        if kept:
            bound = dec
        cands: list[Candidate] = []
        if candidates is not None:
            cands = [e.load() for e in candidates(req.name)]
        candidate: Version | None = None
        problem: str | None = None
        below: tuple[Version, ...] = ()
        if cands:
            best, older = _oldest_providing(cands, req, bound)
            below = tuple(c.version for c in older)
            if best is not None:
                candidate = best.version
                if bound is None:
                    bound = best.version
                    notes.append("bound taken from the oldest candidate that defines them")
            else:
                newest = max(cands, key=lambda c: c.version)
                lacking = sorted(
                    n
                    for soname, ns in req.nodes.items()
                    for n in ns - newest.definitions.get(soname, frozenset())
                )
                need = ", ".join(lacking) or ", ".join(sorted(req.nodes)) or "it"
                at = f" at or above {short_version(bound)}" if bound is not None else ""
                problem = (
                    f"no {req.name} candidate{at} defines {need} (the newest known is "
                    f"{newest.version})"
                )
        out[req.name] = BoundDecision(
            req.name,
            rule,
            bound,
            declared=dec,
            kept_declared=kept,
            candidate=candidate,
            cross_checked=bool(cands),
            candidates_below=below,
            problem=problem,
            notes=tuple(notes),
        )
    return out
