"""resolvelib over runtime candidates, and plain-words explanations when it fails."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

from resolvelib import BaseReporter, ResolutionImpossible, Resolver
from resolvelib.providers import AbstractProvider
from resolvelib.structs import RequirementInformation

from nativelib.errors import ResolutionError
from nativelib.net.simple import selection_problem
from nativelib.resolver.candidates import Source
from nativelib.resolver.host import Host, cuda_policy, driver_version
from nativelib.resolver.model import Candidate, Pending, Requirement

__all__ = ["Resolution", "explain", "resolve", "why_unusable"]


def _ver(v: tuple[int, ...]) -> str:
    return ".".join(map(str, v))


def why_unusable(cand: Candidate | Pending, host: Host) -> str | None:
    """Why a candidate cannot be used on the host (platform, CUDA driver), or None."""
    if cand.installed:
        return None
    if not any(host.supports_platform(p) for p in cand.platforms):
        ours = [p for p in cand.platforms if p == "any" or p.endswith(f"_{host.arch}")]
        glibc = host.needs_glibc(ours)
        if glibc is not None:
            return f"needs glibc {_ver(glibc)}"
        return f"is built for {', '.join(cand.platforms)}"
    minimum = cuda_policy().minimum_driver(cand.name, cand.version.release)
    if minimum is not None:
        if host.cuda_driver is None:
            return "needs an NVIDIA driver, and this host has none"
        if driver_version(host.cuda_driver) < driver_version(minimum):
            return f"needs NVIDIA driver {minimum} or newer (this host has {host.cuda_driver})"
    return None


class _Provider(AbstractProvider):  # type: ignore[type-arg]
    def __init__(self, source: Source, host: Host, prereleases: bool, lowest: bool) -> None:
        self.source = source
        self.host = host
        self.prereleases = prereleases
        self.lowest = lowest

    def identify(self, requirement_or_candidate: Requirement | Candidate) -> str:
        return requirement_or_candidate.name

    def get_preference(
        self,
        identifier: str,
        resolutions: Mapping[str, Candidate],
        candidates: Mapping[str, Iterator[Candidate]],
        information: Mapping[str, Iterator[RequirementInformation]],  # type: ignore[type-arg]
        backtrack_causes: Sequence[RequirementInformation],  # type: ignore[type-arg]
    ) -> str:
        # Not the candidate count: counting would fetch every candidate's metadata.
        return identifier

    def _allowed(self, req: Requirement, cand: Candidate | Pending) -> bool:
        if selection_problem(
            cand.version, cand.yanked, req.specifier, prereleases=self.prereleases
        ):
            return False
        return req.specifier.contains(cand.version, prereleases=True)

    def is_satisfied_by(self, requirement: Requirement, candidate: Candidate) -> bool:
        return (
            candidate.name == requirement.name
            and self._allowed(requirement, candidate)
            and all(candidate.provides(s, n) for s, n in requirement.nodes.items())
        )

    def find_matches(
        self,
        identifier: str,
        requirements: Mapping[str, Iterator[Requirement]],
        incompatibilities: Mapping[str, Iterator[Candidate]],
    ) -> Callable[[], Iterator[Candidate]]:
        reqs = list(requirements[identifier])
        bad = {(c.version, c.installed) for c in incompatibilities[identifier]}
        # What the index page says is enough to sort and to rule most out; what a
        # candidate provides is read (its metadata fetched) only when it comes up.
        entries = [
            e
            for e in self.source(identifier)  # type: ignore[arg-type]
            if (e.version, e.installed) not in bad
            and why_unusable(e, self.host) is None
            and all(self._allowed(r, e) for r in reqs)
        ]
        # An installed version that satisfies comes first; then newest (or lowest) first.
        entries.sort(key=lambda e: e.version, reverse=not self.lowest)
        entries.sort(key=lambda e: not e.installed)

        def matches() -> Iterator[Candidate]:
            for entry in entries:
                cand = entry.load()
                if all(cand.provides(s, n) for r in reqs for s, n in r.nodes.items()):
                    yield cand

        return matches

    def get_dependencies(self, candidate: Candidate) -> list[Requirement]:
        return [
            Requirement.of(name, specifier=spec, parent=f"{candidate.name} {candidate.version}")
            for name, spec in candidate.dependencies
        ]


@dataclass(frozen=True)
class Resolution:
    chosen: Mapping[str, Candidate]
    requirements: Mapping[str, Requirement]

    def reason(self, name: str) -> str:
        req = self.requirements.get(name)
        return req.describe() if req is not None else "a dependency"


def explain(
    requirements: Iterable[Requirement], source: Source, host: Host, *, prereleases: bool = False
) -> tuple[str, ...]:
    """One sentence per requirement that no usable candidate satisfies."""
    lines: list[str] = []
    for req in requirements:
        cands = sorted((e.load() for e in source(req.name)), key=lambda c: c.version, reverse=True)
        what = req.describe()

        def blocker(c: Candidate, req: Requirement = req) -> str | None:
            reason = why_unusable(c, host)
            if reason is not None:
                return reason
            problem = selection_problem(c.version, c.yanked, req.specifier, prereleases=prereleases)
            if problem is not None:
                return problem
            if not req.specifier.contains(c.version, prereleases=True):
                return f"is outside {req.specifier}"
            return None

        if not cands:
            lines.append(
                f"{what}; no version of {req.name} is available (no index, find-links "
                "or installed copy has one)"
            )
            continue
        missing_everywhere = {
            soname: nodes
            for soname, nodes in req.nodes.items()
            if not any(c.provides(soname, nodes) for c in cands)
        }
        soname = next(iter(req.nodes), "")
        if missing_everywhere:
            soname, nodes = next(iter(missing_everywhere.items()))
            newest = cands[0]
            missing = sorted(nodes - newest.definitions.get(soname, frozenset()))
            family = missing[0].split("_", 1)[0] if missing else ""
            top = newest.newest_of(soname, family)
            upto = f", which provides up to {top}" if top else ""
            lines.append(
                f"{what}; no version of {req.name} provides {', '.join(missing)} "
                f"(the newest, {newest.version}{upto})"
            )
            continue
        providing = [c for c in cands if all(c.provides(s, n) for s, n in req.nodes.items())]
        if all(blocker(c) is not None for c in providing):
            parts = [what]
            runnable = [c for c in cands if blocker(c) is None]
            if runnable:
                best = runnable[0]
                family = next(iter(sorted(req.nodes.get(soname, frozenset()))), "").split("_")[0]
                top = best.newest_of(soname, family) if soname else None
                upto = f", which provides up to {top}" if top else ""
                parts.append(
                    f"the newest {req.name} that runs on {host.describe()} is {best.version}{upto}"
                )
            # The newest version blocked for each distinct reason, newest first (at most 3).
            seen: set[str] = set()
            for c in providing:
                reason = blocker(c) or ""
                if reason not in seen and len(seen) < 3:
                    seen.add(reason)
                    parts.append(f"{c.version} provides it but {reason}")
            lines.append("; ".join(parts))
            continue
        lines.append(f"{what}; it conflicts with another requirement on {req.name}")
    return tuple(lines)


def resolve(
    requirements: Sequence[Requirement],
    source: Source,
    host: Host,
    *,
    prereleases: bool = False,
    lowest: bool = False,
) -> Resolution:
    """The runtime distributions to install, newest that satisfy (or lowest)."""
    provider = _Provider(source, host, prereleases, lowest)
    resolver: Resolver = Resolver(provider, BaseReporter())  # type: ignore[type-arg]
    try:
        result = resolver.resolve(requirements, max_rounds=2000)
    except ResolutionImpossible as e:
        failing: dict[str, Requirement] = {}
        for cause in e.causes:
            req = cause.requirement
            failing.setdefault(req.name, req)
        merged = [
            next((r for r in requirements if r.name == name), failed)
            for name, failed in failing.items()
        ]
        raise ResolutionError(
            explain(merged, source, host, prereleases=prereleases) or (str(e),)
        ) from e
    by_name: dict[str, Requirement] = {r.name: r for r in requirements}
    return Resolution(dict(result.mapping), by_name)
