"""``nativelib inspect``: what ELF files provide and need.

Standard library only on this path: the scan (and ``zipfile``) is imported when the
command runs, so the other commands never pay for it.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from nativelib.elf import ElfInfo
from nativelib.errors import NativeLibError, UsageError

if TYPE_CHECKING:
    from nativelib.scan import ScanResult

__all__ = ["INSPECT_JSON_VERSION", "configure_parser", "inspect_json", "run"]

EXIT_OK = 0
EXIT_FINDINGS = 1

#: Version of the ``inspect --json`` document (``data/schemas/inspect.schema.json``).
INSPECT_JSON_VERSION = 1


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Show the soname, NEEDED entries, RPATH/RUNPATH and symbol version nodes "
        "(needed and defined) of ELF files. PATH is a file, a directory (walked; "
        "non-ELF files are skipped) or a .whl (read in place). Exit status: 0 all "
        "parsed, 1 some files could not be parsed, 2 usage error."
    )
    parser.add_argument("paths", nargs="+", metavar="PATH")
    parser.add_argument("--json", action="store_true", help="machine-readable output (schema v1)")


def inspect_json(results: Sequence[ScanResult]) -> dict[str, object]:
    """The ``inspect --json`` document for scan results."""
    files: list[dict[str, object]] = []
    for r in results:
        if r.info is None:
            files.append(
                {
                    "path": r.path,
                    "soname": None,
                    "needed": [],
                    "rpath": [],
                    "runpath": [],
                    "version_needs": {},
                    "version_definitions": [],
                    "error": r.error,
                }
            )
            continue
        info = r.info
        files.append(
            {
                "path": info.path,
                "soname": info.soname,
                "needed": list(info.needed),
                "rpath": list(info.rpath),
                "runpath": list(info.runpath),
                "version_needs": {k: list(v) for k, v in info.version_needs.items()},
                "version_definitions": list(info.version_definitions),
                "error": None,
            }
        )
    return {"version": INSPECT_JSON_VERSION, "files": files}


def _describe(info: ElfInfo) -> list[str]:
    from nativelib.abi import highest_needed, manylinux_tags  # noqa: PLC0415 (inspect only)

    order = "little-endian" if info.byte_order == "little" else "big-endian"
    lines = [
        f"{info.path}",
        f"  type:       ELF{info.elf_class} {order} {info.machine_name} {info.type_name}",
    ]

    def row(label: str, values: Sequence[str]) -> None:
        lines.append(f"  {label + ':':<11} {' '.join(values) if values else '-'}")

    lines.append(f"  {'soname:':<11} {info.soname or '-'}")
    row("needed", info.needed)
    if info.rpath:
        row("rpath", [":".join(info.rpath)])
    if info.runpath:
        row("runpath", [":".join(info.runpath)])
    if info.interpreter:
        row("interp", [info.interpreter])
    row("provides", info.version_definitions)
    for req in info.version_requirements:
        names = [v.name + (" (weak)" if v.weak else "") for v in req.versions]
        lines.append(f"  {'needs:':<11} {req.file}: {' '.join(names)}")
    glibc = highest_needed(info, "GLIBC")
    if glibc is not None:
        lines.append(f"  {'glibc:':<11} {glibc}")
    try:
        tags = manylinux_tags(info)
    except NativeLibError:
        tags = None
    if tags is not None:
        lines.append(
            f"  {'manylinux:':<11} {tags[0] if tags else 'none (needs nodes beyond every policy)'}"
        )
    return lines


def run(args: argparse.Namespace) -> int:
    missing = [p for p in args.paths if not os.path.lexists(p)]
    if missing:
        raise UsageError(
            f"no such file or directory: {missing[0]!r}"
            + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""),
            hint="PATH is a shared object, a directory to walk, or a .whl file",
        )
    from nativelib.scan import scan_paths, write_json  # noqa: PLC0415 (only inspect needs it)

    results: list[ScanResult] = []
    bad = 0
    out = sys.stdout
    for result in scan_paths(args.paths):
        if result.error is not None:
            bad += 1
            sys.stderr.write(f"{result.path}: {result.error}\n")
        if args.json:
            results.append(result)
        elif result.info is not None:
            out.write("\n".join(_describe(result.info)) + "\n")
        else:
            out.write(f"{result.path}\n  error:      {result.error}\n")
        if not args.json:
            results.append(result)
    if args.json:
        write_json(results, out)  # the text of json.dump(inspect_json(results), indent=2)
    total = len(results)
    sys.stderr.write(
        f"inspected {total} file{'s' if total != 1 else ''}"
        + (f", {bad} could not be parsed" if bad else "")
        + "\n"
    )
    return EXIT_FINDINGS if bad else EXIT_OK
