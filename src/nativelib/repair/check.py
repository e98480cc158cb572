"""``nativelib check WHEEL... [--json] [--plat P] [--find-links DIR] [--index-url URL]``:
the nativelib-aware audit of a wheel (``auditwheel show``'s role, with the runtime wheels
taken into account), for a maintainer's CI to gate on.

It asks the question ``repair`` answers, with the same rules (one implementation): the
plan of :func:`nativelib.repair.core.plan_repair` (vendored copies, what each object
needs, which runtimes must be required and with what lower bound, the tag decided with
the runtime floors: :mod:`nativelib.resolver.target`), and reports, for each wheel, the
tag it is consistent with, the runtime requirements it must declare, and every problem:

- ``vendored-copy``: a runtime library shipped inside the wheel;
- ``missing-requirement``: a runtime the files need with no ``Requires-Dist`` on it;
- ``bound-too-low``: a ``Requires-Dist`` lower bound below the first release that
  defines the version nodes needed (or no lower bound at all);
- ``runpath``: an object that needs a runtime but whose RUNPATH/RPATH does not reach
  ``nativelib.prefix/lib``;
- ``external-library``: a NEEDED library that is no runtime's, not the host's by the
  manylinux policy or its driver's, not reached through an ``$ORIGIN`` RUNPATH entry
  that leaves the wheel (another distribution's: listed, no problem), and not grafted
  into the wheel (the rule of :func:`nativelib.repair.graft.classify_needs`);
- ``platform-tag``: a ``linux_*`` tag (PyPI refuses it), or a manylinux tag older than
  the one the files and the runtime floors are consistent with;
- ``no-consistent-tag``: no manylinux tag works with the runtime wheels known.

Exit status: 0 every wheel clean, 1 problems, 2 bad input (a wheel that cannot be read).
"""

from __future__ import annotations

import argparse
import json
import posixpath
from dataclasses import dataclass, field
from pathlib import Path

from nativelib.abi import parse_platform_tag
from nativelib.catalog import Catalog, load_catalog
from nativelib.errors import NativeLibError, RepairError, WheelError, report_error
from nativelib.leftovers import temporary_tree
from nativelib.repair.core import (
    LinkOptions,
    RepairPlan,
    _install_root,
    _prefix_entry,
    _read_elves,
    _relative,
    declared_requirements,
    plan_repair,
    requirement_names,
)
from nativelib.repair.graft import classify_needs
from nativelib.resolver.bounds import declared_lower_bound
from nativelib.resolver.candidates import Source
from nativelib.resolver.target import target_candidates
from nativelib.wheelfile import validate_layout
from nativelib.wheelfile.read import read_wheel

__all__ = ["CHECK_JSON_VERSION", "Problem", "WheelReport", "check_wheel", "configure_parser", "run"]

CHECK_JSON_VERSION = 1


@dataclass(frozen=True)
class Problem:
    kind: str
    message: str
    member: str | None = None  # the wheel member it is about, if any

    def to_json(self) -> dict[str, object]:
        return {"kind": self.kind, "member": self.member, "message": self.message}


@dataclass
class WheelReport:
    wheel: str
    tags: list[str]  # the platform tags the wheel has
    consistent: str | None  # the platform tag the files and runtime floors allow
    cross_checked: bool  # the tag was checked against runtime wheel candidates
    requirements: list[str]  # the Requires-Dist lines on runtimes the wheel must declare
    declared: dict[str, str]  # its Requires-Dist on runtimes, as declared
    problems: list[Problem] = field(default_factory=list)
    # NEEDed, not carried, and no problem: found in other distributions through an
    # $ORIGIN RUNPATH entry that leaves the wheel; provided by the host's driver
    other_distributions: list[str] = field(default_factory=list)
    drivers: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, object]:
        return {
            "wheel": self.wheel,
            "tags": self.tags,
            "consistent_tag": self.consistent,
            "cross_checked": self.cross_checked,
            "requirements": self.requirements,
            "declared": [f"{k}{v}" for k, v in sorted(self.declared.items())],
            "problems": [p.to_json() for p in self.problems],
            "other_distributions": self.other_distributions,
            "host_drivers": self.drivers,
        }


def _glibc(tag: str) -> tuple[int, int] | None:
    parsed = parse_platform_tag(tag)
    return parsed[0] if parsed else None


def _tag_problems(report: WheelReport) -> list[Problem]:
    if report.consistent is None:
        return []
    if any(t.startswith("linux_") for t in report.tags):
        return [
            Problem(
                "platform-tag",
                f"tagged {', '.join(report.tags)}, which PyPI refuses; the files and the "
                f"runtime floors are consistent with {report.consistent}",
            )
        ]
    want = _glibc(report.consistent)
    have = [g for g in map(_glibc, report.tags) if g is not None]
    if want is not None and have and min(have) < want:
        return [
            Problem(
                "platform-tag",
                f"tagged {', '.join(report.tags)}, older than {report.consistent}: a host the "
                "tag admits may lack what the files or their runtime requirements need",
            )
        ]
    return []


def _requirement_problems(plan: RepairPlan, declared: dict[str, str]) -> list[Problem]:
    problems = []
    specs = declared_requirements(plan.wheel)
    required = plan.target.required if plan.target is not None else {}
    for name, decision in sorted(required.items()):
        needed = decision.rule.bound
        why = f" ({decision.rule.describe()})" if needed is not None else ""
        if name not in specs:
            problems.append(
                Problem(
                    "missing-requirement",
                    f"the files need {name} but the wheel has no Requires-Dist on it; "
                    f"expected {decision.requirement()}{why}",
                )
            )
            continue
        have = declared_lower_bound(specs[name])
        if needed is not None and (have is None or have < needed):
            problems.append(
                Problem(
                    "bound-too-low",
                    f"Requires-Dist {name}{declared[name]} allows versions below {needed}, the "
                    f"first that defines the nodes needed{why}",
                )
            )
    return problems


def _runpath_problems(plan: RepairPlan) -> list[Problem]:
    problems = []
    dist_info = plan.wheel.dist_info
    for edit in plan.edits:
        if edit.search_path is None:
            continue
        root = _install_root(edit.member, dist_info)
        if root is None:
            continue
        entry = _prefix_entry(posixpath.dirname(_relative(edit.member, root)))
        if entry in edit.search_path and entry not in edit.old_search_path:
            have = ":".join(edit.old_search_path) or "none"
            problems.append(
                Problem(
                    "runpath",
                    f"needs a runtime but its {edit.kind.upper()} ({have}) does not reach the "
                    f"prefix; expected {entry}",
                    edit.member,
                )
            )
    return problems


def check_wheel(
    wheel: Path, catalog: Catalog, *, candidates: Source | None, plat: str | None = None
) -> WheelReport:
    """The report on one wheel; :class:`RepairError` when it cannot be read."""
    try:
        validate_layout(Path(wheel))
    except WheelError as e:
        raise RepairError(e.path, e.reason) from e
    with temporary_tree("check") as tmp:
        contents = read_wheel(Path(wheel), Path(tmp), wanted=lambda n: ".dist-info/" in n)
        link = LinkOptions(candidates=candidates, plat=plat)
        refusal = None
        try:
            plan = plan_repair(contents, catalog, link=link)
        except RepairError as e:
            # The tag decision refused (the only error that depends on the target): the
            # rest is judged against linux_<arch>, which never refuses; a reading error
            # comes back from this second call and is the caller's.
            machines = {i.machine_name for i in _read_elves(contents).values()}
            if len(machines) != 1:
                raise
            fallback = LinkOptions(candidates=candidates, plat=f"linux_{machines.pop()}")
            plan = plan_repair(contents, catalog, link=fallback)
            refusal = e.reason
        infos = plan.infos
        declared = {k: str(v) for k, v in declared_requirements(contents).items()}
        tags = sorted({t.platform for t in contents.tags})
        target = plan.target
        consistent = target.platforms[0] if target is not None and target.platforms else None
        report = WheelReport(
            wheel=str(wheel),
            tags=tags,
            consistent=None if refusal else consistent,
            cross_checked=bool(target and target.cross_checked),
            requirements=[] if refusal else list(plan.requires_dist),
            declared=declared,
        )
        if refusal:
            report.problems.append(Problem("no-consistent-tag", refusal))
        for copy in plan.copies:
            report.problems.append(
                Problem(
                    "vendored-copy",
                    f"a copy of {copy.soname}, which {copy.distribution} ships: require the "
                    "runtime wheel instead (nativelib repair does)",
                    copy.path,
                )
            )
        report.problems += _requirement_problems(plan, declared)
        report.problems += _runpath_problems(plan)
        needs = classify_needs(
            infos, catalog, (m.arcname for m in contents.members), requirement_names(contents)
        )
        report.other_distributions = sorted(
            {s for _, s, _ in needs.other_distributions} | {s for _, s, _ in needs.provided}
        )
        report.drivers = sorted({s for _, s in needs.drivers})
        for member, soname in needs.external:  # (a copy counts as grafted)
            report.problems.append(
                Problem(
                    "external-library",
                    f"NEEDs {soname}, which no runtime ships, the manylinux policy does not "
                    "let the host provide, and the wheel does not carry (auditwheel repair "
                    "grafts it; nativelib repair runs it)",
                    member,
                )
            )
        report.problems += _tag_problems(report)
    return report


def _text(report: WheelReport) -> list[str]:
    name = Path(report.wheel).name
    lines = [f"{name}"]
    if report.consistent:
        checked = "" if report.cross_checked else " (not cross-checked against runtime wheels)"
        lines.append(f"  consistent with {report.consistent}{checked}")
    lines.append(f"  tagged          {', '.join(report.tags)}")
    if report.requirements:
        lines.append(f"  requires        {', '.join(report.requirements)}")
    else:
        lines.append("  requires        no runtime wheel")
    if report.declared:
        declared = ", ".join(f"{k}{v}" for k, v in sorted(report.declared.items()))
        lines.append(f"  declared        {declared}")
    if report.other_distributions:
        lines.append(f"  from other distributions {', '.join(report.other_distributions)}")
    if report.drivers:
        lines.append(f"  from the host's driver   {', '.join(report.drivers)}")
    if not report.problems:
        lines.append("  ok: no problems")
    for p in report.problems:
        where = f"{p.member}: " if p.member else ""
        lines.append(f"  problem {p.kind}: {where}{p.message}")
    return lines


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Audit wheels as nativelib sees them: the platform tag each is consistent with when "
        "the runtime wheels are taken into account, the runtime requirements it must "
        "declare, and every problem (a vendored runtime copy, a runtime need without "
        "Requires-Dist, a bound below the version nodes needed, a RUNPATH that does not "
        "reach nativelib.prefix/lib, an external library neither grafted nor allowed by the "
        "manylinux policy, a tag PyPI refuses or that claims too much). Exit status: 0 "
        "clean, 1 problems, 2 a wheel could not be read."
    )
    parser.add_argument("wheels", nargs="+", metavar="WHEEL")
    parser.add_argument("--json", action="store_true", help="one JSON document on stdout")
    parser.add_argument(
        "--plat", metavar="PLATFORM",
        help="check this platform tag (as auditwheel's --plat) instead of the lowest that works",
    )  # fmt: skip
    parser.add_argument(
        "--find-links", action="append", metavar="DIR",
        help="runtime wheels to cross-check the bounds and the tag against",
    )  # fmt: skip
    parser.add_argument(
        "--index-url", action="append", metavar="URL", help="an index of runtime wheels"
    )


def run(args: argparse.Namespace) -> int:
    """Exit status: 0 clean, 1 problems, 2 a wheel could not be read (or a usage error)."""
    try:
        catalog = load_catalog()
        candidates = target_candidates(args.find_links, args.index_url)
    except NativeLibError as e:
        report_error(e)
        return 2
    reports: list[WheelReport] = []
    failed = False
    for wheel in args.wheels:
        try:
            reports.append(check_wheel(Path(wheel), catalog, candidates=candidates, plat=args.plat))
        except NativeLibError as e:
            report_error(e)
            failed = True
    if args.json:
        doc = {"version": CHECK_JSON_VERSION, "wheels": [r.to_json() for r in reports]}
        print(json.dumps(doc, indent=2))
    else:
        for r in reports:
            print("\n".join(_text(r)))
    if failed:
        return 2
    return 1 if any(r.problems for r in reports) else 0
