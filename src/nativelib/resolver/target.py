"""The tag and the runtime requirements of a downstream wheel, decided together.

For each manylinux policy P (oldest first) and each runtime distribution the files need:

- a runtime whose sonames the manylinux policies let the host provide (libstdc++,
  libgcc_s, libatomic) is left to the host when P guarantees every node needed of it,
  unless forced (``--runtime cxx14``); otherwise it is *required*: the wheel declares
  ``Requires-Dist`` on it, with the bound of :mod:`.bounds`;
- a required runtime is acceptable at P when, among the known candidates, one at or
  above the bound defines the nodes and is installable on every host P admits (its own
  tags, and its dependencies', are at or below P). With no candidates the bound rule
  alone decides, and the decision says it was not cross-checked.

The tag is the lowest P where the files' own needs (glibc and the other host libraries)
fit and every required runtime is acceptable: a wheel installable by tag is then never
unresolvable by dependency. ``plat`` checks one given tag by the same rule.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from packaging.specifiers import SpecifierSet
from packaging.utils import NormalizedName, canonicalize_name

from nativelib.abi import (
    ManylinuxPolicy,
    load_policies,
    manylinux_tags,
    parse_platform_tag,
    platform_tags_with_aliases,
)
from nativelib.elf import ElfInfo
from nativelib.errors import UsageError
from nativelib.resolver import candidates as _candidates
from nativelib.resolver.bounds import BoundDecision, requirement_bounds
from nativelib.resolver.candidates import Source
from nativelib.resolver.model import Candidate, Pending, Requirement

__all__ = ["Choice", "TargetDecision", "decide_target", "policy_for_tag", "target_candidates"]


@dataclass(frozen=True)
class Choice:
    """One runtime distribution the files need, at the chosen tag."""

    distribution: NormalizedName
    required: bool
    why: str
    bound: BoundDecision | None = None  # when required


@dataclass(frozen=True)
class TargetDecision:
    arch: str
    policy: ManylinuxPolicy | None  # None: no manylinux tag (a linux_<arch> target)
    platforms: tuple[str, ...]  # the platform tags to write (aliases included)
    choices: Mapping[NormalizedName, Choice]
    cross_checked: bool  # every required runtime was checked against candidates
    refusal: str | None = None  # why no tag (or the given --plat) works
    rejected: tuple[str, ...] = field(default_factory=tuple)  # why lower tags failed
    given: bool = False  # the tag was given (--plat), not searched for

    @property
    def required(self) -> dict[NormalizedName, BoundDecision]:
        return {n: c.bound for n, c in self.choices.items() if c.required and c.bound}

    def requires_dist(self) -> list[str]:
        return [self.required[n].requirement() for n in sorted(self.required)]

    def describe(self) -> list[str]:
        lines = []
        for name in sorted(self.choices):
            c = self.choices[name]
            if c.required and c.bound is not None:
                lines.append(f"runtime {c.bound.requirement()}: {c.why}; {c.bound.reasons()}")
            else:
                lines.append(f"runtime {name}: left to the host: {c.why}")
        if self.policy is not None:
            how = "as given (--plat), checked" if self.given else "the lowest tag that works"
            lines.append(f"target  {self.platforms[0]}: {how}")
        lines += [f"lower   {r}" for r in self.rejected]
        if self.choices and not self.cross_checked:
            lines.append(
                "note    the tag was not cross-checked against runtime wheels (no candidates "
                "given: --find-links/--index-url); the bound rule alone decided"
            )
        return lines


def target_candidates(
    find_links_dirs: Sequence[str] | None, index_urls: Sequence[str] | None
) -> Source | None:
    """The runtime wheels to cross-check bounds and tags against: ``--find-links`` and
    ``--index-url`` (not the runtimes installed here, whose platforms are unknown); None
    when neither is given."""
    sources: list[Source] = []
    for directory in find_links_dirs or ():
        if not Path(directory).is_dir():
            raise UsageError(
                f"--find-links {directory!r}: not a directory",
                hint="--find-links names a directory of wheels (as pip's does)",
            )
        sources.append(_candidates.find_links(Path(directory)))
    for url in index_urls or ():
        sources.append(_candidates.index(url, lowest=True))
    return _candidates.merge(*sources) if sources else None


def policy_for_tag(tag: str) -> tuple[ManylinuxPolicy | None, str]:
    """The policy of a platform tag (``manylinux_2_28_x86_64``, ``manylinux2014_x86_64``)
    and its arch; ``(None, arch)`` for ``linux_<arch>``. Raises ValueError otherwise."""
    if tag.startswith("linux_"):
        return None, tag[len("linux_") :]
    parsed = parse_platform_tag(tag)
    if parsed is None:
        raise ValueError(f"{tag!r} is not a manylinux or linux platform tag")
    glibc, arch = parsed
    for p in load_policies().for_arch(arch):
        if p.glibc == glibc:
            return p, arch
    raise ValueError(f"no manylinux policy has glibc {glibc[0]}.{glibc[1]} ({tag!r})")


class _Installability:
    """Which candidates can be installed on every host of a policy (their tags and,
    transitively, their dependencies)."""

    def __init__(self, source: Source, arch: str) -> None:
        self.source = source
        self.arch = arch
        self._loaded: dict[str, list[Candidate]] = {}

    def candidates(self, name: str) -> list[Candidate]:
        if name not in self._loaded:
            entries: Iterable[Candidate | Pending] = self.source(canonicalize_name(name))
            self._loaded[name] = [e.load() for e in entries]
        return self._loaded[name]

    def floor(self, cand: Candidate) -> tuple[int, int] | None:
        """The oldest glibc its own tags admit; ``(0, 0)`` for any; None: not this arch."""
        best: tuple[int, int] | None = None
        for plat in cand.platforms:
            if plat == "any":
                return (0, 0)
            parsed = parse_platform_tag(plat)
            if parsed is None or parsed[1] != self.arch:
                continue
            if best is None or parsed[0] < best:
                best = parsed[0]
        return best

    def installable(self, cand: Candidate, glibc: tuple[int, int] | None, depth: int = 0) -> bool:
        floor = self.floor(cand)
        if floor is None or (glibc is not None and floor > glibc):
            return False
        if depth > 4:
            return True
        for dep, spec in cand.dependencies:
            if not canonicalize_name(dep).startswith("nativelib-"):
                continue
            if not any(
                spec.contains(c.version, prereleases=True) and self.installable(c, glibc, depth + 1)
                for c in self.candidates(dep)
            ):
                return False
        return True


def _tag(p: ManylinuxPolicy | None, arch: str) -> str:
    return p.tag(arch) if p is not None else f"linux_{arch}"


def _binding(decision: BoundDecision, nodes: list[str]) -> str:
    """The node that sets the bound (or every node when the data does not date them)."""
    if decision.rule.because in nodes:
        return decision.rule.because
    return ", ".join(nodes) or "the library"


def _floor_text(glibc: tuple[int, int], arch: str) -> str:
    return f"manylinux_{glibc[0]}_{glibc[1]}_{arch}" if glibc != (0, 0) else "any platform"


def decide_target(
    requirements: Mapping[str, Requirement],
    infos: Iterable[ElfInfo],
    arch: str,
    *,
    candidates: Source | None = None,
    forced: Iterable[str] = (),
    declared: Mapping[str, SpecifierSet] | None = None,
    plat: str | None = None,
) -> TargetDecision:
    """The lowest manylinux tag (or ``plat``) and the runtimes required there.

    ``requirements``: the runtime needs of the files (distribution -> nodes by soname;
    :func:`nativelib.resolver.needs.collect`); ``infos``: the files (their own glibc
    needs limit the tag); ``forced``: distributions to require even where the policy
    would do. A decision with :attr:`~TargetDecision.refusal` set has no usable tag."""
    files = list(infos)
    forced_names = {canonicalize_name(f) for f in forced}
    reqs = {canonicalize_name(n): r for n, r in requirements.items()}
    policies = load_policies()
    host_sonames = policies.host_libraries
    runtime_sonames = {s for r in reqs.values() for s in r.nodes}
    own_fit = set(manylinux_tags(files, arch, satisfied=runtime_sonames)) if files else None
    bounds = requirement_bounds(list(reqs.values()), candidates, declared)
    inst = _Installability(candidates, arch) if candidates is not None else None

    def node_list(req: Requirement) -> list[str]:
        return sorted(n for soname, ns in req.nodes.items() for n in ns if n != soname)

    def pulled_in(names: Iterable[NormalizedName]) -> dict[NormalizedName, NormalizedName]:
        """Runtimes the files need that the candidates of ``names`` depend on (gfortran5
        on cxx14): installed with them, their prefix copy comes before the host's."""
        out: dict[NormalizedName, NormalizedName] = {}
        if inst is None:
            return out
        for name in names:
            for cand in inst.candidates(name):
                for dep, _spec in cand.dependencies:
                    dep_name = canonicalize_name(dep)
                    if dep_name in reqs and dep_name != name:
                        out.setdefault(dep_name, name)
        return out

    def at(p: ManylinuxPolicy | None) -> tuple[dict[NormalizedName, Choice], list[str]]:
        """The choices at policy ``p`` and the reasons it fails (none: it works)."""
        choices: dict[NormalizedName, Choice] = {}
        problems: list[str] = []
        tag = _tag(p, arch)
        if p is not None and own_fit is not None and tag not in own_fit:
            problems.append(f"the files' own needs (glibc and its kin) are beyond {tag}")
        # Runtimes no policy provides are required at every tag; what their candidates
        # depend on comes into the prefix with them, so it is required too.
        always = [
            n for n, r in reqs.items() if not (r.nodes and all(s in host_sonames for s in r.nodes))
        ]
        companions = pulled_in(always)
        for name, req in sorted(reqs.items()):
            hostable = bool(req.nodes) and all(s in host_sonames for s in req.nodes)
            nodes = node_list(req)
            if name in companions and name not in forced_names:
                why = (
                    f"installed with {companions[name]} (its dependency), so its prefix copy "
                    "comes before the host's"
                )
            elif p is not None and hostable and name not in forced_names:
                beyond = [n for n in nodes if not p.allows(n)]
                if not beyond:
                    sonames = ", ".join(sorted(req.nodes))
                    what = _binding(bounds[name], nodes)
                    choices[name] = Choice(
                        name, False, f"{tag} guarantees {what} (the host's {sonames})"
                    )
                    continue
                why = f"needs {', '.join(beyond)}, beyond what {tag} guarantees"
            elif name in forced_names:
                why = "asked for (--runtime)"
            elif hostable:
                why = f"{tag} guarantees no C++ runtime version"
            else:
                sonames = ", ".join(sorted(req.nodes)) or name
                why = f"no manylinux policy provides {sonames}"
            decision = bounds[name]
            choices[name] = Choice(name, True, why, decision)
            if decision.problem:
                problems.append(decision.problem)
                continue
            if inst is None or not decision.cross_checked:
                continue
            glibc = (p.glibc[0], p.glibc[1]) if p is not None else None
            good = [
                c
                for c in inst.candidates(name)
                if (decision.bound is None or c.version >= decision.bound)
                and all(c.provides(s, n) for s, n in req.nodes.items())
            ]
            if any(inst.installable(c, glibc) for c in good):
                continue
            floors = sorted((f, c.version) for c in good if (f := inst.floor(c)) is not None)
            what = _binding(decision, nodes)
            if not floors:
                problems.append(f"{decision.requirement()}: no {arch} build provides {what}")
            elif glibc is not None and floors[0][0] > glibc:
                f, version = floors[0]
                problems.append(
                    f"{decision.requirement()} (for {what}): its candidate floor is "
                    f"{_floor_text(f, arch)} ({name} {version}), above {tag}"
                )
            else:
                problems.append(
                    f"{decision.requirement()} (for {what}): the runtime wheels it would "
                    f"pull in are not all installable on {tag}"
                )
        return choices, problems

    def cross_checked(choices: Mapping[NormalizedName, Choice]) -> bool:
        return all(c.bound.cross_checked for c in choices.values() if c.required and c.bound)

    if plat is not None:
        if not plat.endswith(f"_{arch}"):
            plat = f"{plat}_{arch}"  # auditwheel's names carry the arch; allow it left out
        policy, plat_arch = policy_for_tag(plat)
        choices, problems = at(policy)
        platforms = platform_tags_with_aliases(plat) if policy is not None else (plat,)
        return TargetDecision(
            plat_arch,
            policy,
            platforms,
            choices,
            cross_checked(choices),
            refusal=f"{plat}: " + "; ".join(problems) if problems else None,
            given=True,
        )
    rejected: list[str] = []
    last: tuple[dict[NormalizedName, Choice], list[str]] = ({}, [])
    for p in policies.for_arch(arch):
        choices, problems = at(p)
        if not problems:
            return TargetDecision(
                arch,
                p,
                platform_tags_with_aliases(p.tag(arch)),
                choices,
                cross_checked(choices),
                rejected=tuple(rejected[-1:]),
            )
        rejected.append(f"{p.tag(arch)}: {'; '.join(problems)}")
        last = (choices, problems)
    newest = policies.for_arch(arch)[-1]
    return TargetDecision(
        arch,
        None,
        (),
        last[0],
        cross_checked(last[0]),
        refusal=f"no manylinux tag fits; at {newest.tag(arch)}: {'; '.join(last[1])}",
        rejected=tuple(rejected[-1:]),
    )
