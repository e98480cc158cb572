"""``nativelib resolve`` and ``nativelib requires``."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from nativelib.errors import NativeLibError, ResolutionError, UsageError, report_error
from nativelib.resolver import candidates
from nativelib.resolver.bounds import requirement_bounds
from nativelib.resolver.host import Host, detect_host
from nativelib.resolver.needs import Needs, read_targets
from nativelib.resolver.provider import Resolution, resolve
from nativelib.resolver.target import decide_target, target_candidates

if TYPE_CHECKING:
    from nativelib.catalog import Catalog

__all__ = [
    "configure_requires_parser",
    "configure_resolve_parser",
    "run_requires",
    "run_resolve",
]

JSON_VERSION = 1

_log = logging.getLogger(__name__)


def _configure_common(parser: argparse.ArgumentParser, summary: str) -> None:
    parser.description = (
        f"{summary[0].upper()}{summary[1:]}. PATH_OR_REQ is a wheel, a directory, "
        "an installed distribution or a requirement string (nativelib-cxx14>=12). "
        "Candidates: the runtimes installed here, --find-links directories, "
        "--index-url indexes. Exit status: 0 resolved, 1 no resolution (explained "
        "on stderr), 2 usage error."
    )
    parser.add_argument("targets", nargs="+", metavar="PATH_OR_REQ")
    parser.add_argument("--index-url", action="append", metavar="URL", help="a simple-API index")
    parser.add_argument(
        "--find-links", action="append", metavar="DIR", help="a directory of wheels"
    )


def configure_resolve_parser(parser: argparse.ArgumentParser) -> None:
    _configure_common(parser, "pick the runtime wheels that satisfy what files need")
    parser.add_argument(
        "--platform", metavar="TAG", help="target platform, e.g. manylinux_2_28_x86_64"
    )
    parser.add_argument("--glibc", metavar="VERSION", help="target glibc, e.g. 2.28")
    parser.add_argument("--lowest", action="store_true", help="the oldest versions that satisfy")
    parser.add_argument("--pre", action="store_true", help="allow pre-releases")
    parser.add_argument("--json", action="store_true", help="machine-readable output (schema v1)")
    parser.add_argument(
        "-o", "--output", metavar="FILE", help="write a requirements file with hashes"
    )


def configure_requires_parser(parser: argparse.ArgumentParser) -> None:
    _configure_common(parser, "the Requires-Dist lines a downstream wheel should declare")
    parser.description = (parser.description or "") + (
        " Each bound is the first upstream release that defines every version node "
        "needed (the candidates only cross-check it). With a target (--plat/--glibc), a "
        "runtime the target's manylinux policy guarantees (libstdc++, libgcc_s) is left "
        "out, and a requirement whose candidates cannot be installed there is warned about."
    )
    parser.add_argument(
        "--plat", metavar="TAG", help="target platform tag, e.g. manylinux_2_28_x86_64"
    )
    parser.add_argument(
        "--glibc", metavar="VERSION", help="target glibc, e.g. 2.28 (= --plat manylinux_2_28)"
    )


def _catalog() -> Catalog:
    from nativelib.catalog import load_catalog  # noqa: PLC0415 (TOML)

    return load_catalog()


def _needs(args: argparse.Namespace, host: Host) -> Needs:
    needs = read_targets(args.targets, _catalog, host)
    for path, reason in needs.unreadable:
        _log.warning("%s: %s", path, reason)
    for path, soname, copy in needs.vendored:
        _log.info("%s uses the copy of %s vendored at %s", Path(path).name, soname, copy)
    return needs


def _report(resolution: Resolution, host: Host, needs: Needs) -> dict[str, object]:
    return {
        "version": JSON_VERSION,
        "host": {
            "glibc": f"{host.glibc[0]}.{host.glibc[1]}",
            "arch": host.arch,
            "cuda_driver": host.cuda_driver,
        },
        "resolved": [
            {
                "name": name,
                "version": str(c.version),
                "installed": c.installed,
                "url": c.url,
                "sha256": c.sha256,
                "reason": resolution.reason(name),
            }
            for name, c in sorted(resolution.chosen.items())
        ],
        "vendored": [{"file": f, "soname": s, "copy": c} for f, s, c in needs.vendored],
    }


def run_resolve(args: argparse.Namespace) -> int:
    """Exit status: 0 resolved, 1 no resolution (explained), 2 usage error or failure."""
    host = detect_host(glibc=args.glibc, platform_tag=args.platform)
    needs = _needs(args, host)
    if needs.host_problems:
        report_error(
            ResolutionError(
                tuple(needs.host_problems),
                hint="target a newer glibc (--glibc/--platform), or build these files "
                "against an older one",
            )
        )
        return 1
    try:
        source = candidates.candidate_source(
            args.find_links, args.index_url, lowest=args.lowest, prefetch_names=needs.requirements
        )
        resolution = resolve(
            list(needs.requirements.values()),
            source,
            host,
            prereleases=args.pre,
            lowest=args.lowest,
        )
    except ResolutionError as e:
        e.hint = e.hint or (
            "give --index-url or --find-links where newer runtime wheels are, or a "
            "target (--glibc/--platform) they run on"
        )
        report_error(e)
        return 1
    report = _report(resolution, host, needs)
    if args.output:
        lines = []
        for entry in report["resolved"]:  # type: ignore[attr-defined]
            lines.append(f"# {entry['reason']}")
            hashes = f" --hash=sha256:{entry['sha256']}" if entry["sha256"] else ""
            lines.append(f"{entry['name']}=={entry['version']}{hashes}")
        Path(args.output).write_text("\n".join(lines) + "\n")
        print(f"wrote {args.output}", file=sys.stderr)
    if args.json:
        json.dump(report, sys.stdout, indent=2)
        sys.stdout.write("\n")
    elif not args.output:
        for entry in report["resolved"]:  # type: ignore[attr-defined]
            where = "installed" if entry["installed"] else entry["url"]
            print(f"{entry['name']}=={entry['version']}  ({entry['reason']})  {where}")
    return 0


def _requires_target(args: argparse.Namespace, arch: str) -> str | None:
    if args.plat and args.glibc:
        raise UsageError("give --plat or --glibc, not both")
    if args.glibc:
        parts = args.glibc.split(".")
        if len(parts) != 2 or not all(p.isdigit() for p in parts):
            raise UsageError(f"--glibc {args.glibc!r}: expected MAJOR.MINOR, e.g. 2.28")
        return f"manylinux_{parts[0]}_{parts[1]}_{arch}"
    return str(args.plat) if args.plat else None


def run_requires(args: argparse.Namespace) -> int:
    """The Requires-Dist lines a downstream wheel should declare: each bound is the first
    release defining every node needed (:mod:`nativelib.resolver.bounds`), cross-checked
    against the candidates; with a target, decided with the tag (:mod:`.target`).
    Exit status: 0 printed (warnings on stderr), 1 no candidate defines a need, 2 usage."""
    arch = detect_host().arch
    try:
        plat = _requires_target(args, arch)
        source = target_candidates(args.find_links, args.index_url)
    except NativeLibError as e:
        report_error(e)
        return 2
    needs = _needs(args, Host((2, 999), arch, "99999"))
    if not needs.requirements:
        print("# no runtime distribution is needed", file=sys.stderr)
        return 0
    if plat is None:
        decisions = requirement_bounds(needs.requirements.values(), source)
        problems = [d.problem for d in decisions.values() if d.problem]
        if problems:
            report_error(
                ResolutionError(
                    tuple(problems),
                    hint="give --index-url or --find-links where runtime wheels that provide "
                    "it are",
                )
            )
            return 1
        for name in sorted(decisions):
            d = decisions[name]
            if d.bound is None:
                _log.warning("%s: %s; no bound", name, d.rule.describe())
            print(f"Requires-Dist: {d.requirement()}")
        return 0
    try:
        decision = decide_target(needs.requirements, [], arch, candidates=source, plat=plat)
    except ValueError as e:
        report_error(UsageError(f"--plat: {e}"))
        return 2
    for name, choice in sorted(decision.choices.items()):
        if not choice.required:
            print(f"# {name}: not needed on {plat}: {choice.why}", file=sys.stderr)
    for line in decision.requires_dist():
        print(f"Requires-Dist: {line}")
    if decision.refusal:
        print(f"warning: {decision.refusal}", file=sys.stderr)
    elif not decision.cross_checked:
        print(
            f"# not checked against runtime wheels for {plat} (give --find-links/--index-url)",
            file=sys.stderr,
        )
    return 0
