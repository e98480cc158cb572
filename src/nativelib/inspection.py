"""``nativelib inspect``: what ELF files provide and need.

Standard library only on this path: the scan (and ``zipfile``) is imported when the
command runs, so the other commands never pay for it.
"""

from __future__ import annotations

import argparse
import os
import sys
from json.encoder import encode_basestring_ascii

from nativelib.elf import ElfInfo
from nativelib.errors import NativeLibError, UsageError

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs ~4 ms
if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence
    from typing import TextIO

    from nativelib.scan import ScanResult

__all__ = ["INSPECT_JSON_VERSION", "configure_parser", "inspect_json", "run", "write_json"]

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


# --------------------------------------------------------------------------- JSON output


def _json_list(values: tuple[str, ...] | list[str], indent: str) -> str:
    """A list of strings as ``json.dumps(..., indent=2)`` writes it at ``indent``."""
    if not values:
        return "[]"
    inner = ",\n  " + indent
    return f"[\n  {indent}{inner.join(map(encode_basestring_ascii, values))}\n{indent}]"


def _json_file(r: ScanResult) -> str:
    info = r.info
    if info is None:
        error = "null" if r.error is None else encode_basestring_ascii(r.error)
        return (
            f'    {{\n      "path": {encode_basestring_ascii(r.path)},\n'
            '      "soname": null,\n      "needed": [],\n      "rpath": [],\n'
            '      "runpath": [],\n      "version_needs": {},\n'
            '      "version_definitions": [],\n'
            f'      "error": {error}\n    }}'
        )
    requirements = info.version_requirements
    if not requirements:
        needs = "{}"
    else:
        by_file: Iterable[tuple[str, tuple[str, ...] | list[str]]]
        if len({req[0] for req in requirements}) == len(requirements):
            by_file = [(req[0], [v[0] for v in req[1]]) for req in requirements]
        else:  # a file named twice: its nodes merged, as ElfInfo.version_needs does
            by_file = info.version_needs.items()
        needs = (
            "{\n        "
            + ",\n        ".join(
                f"{encode_basestring_ascii(file)}: {_json_list(names, '        ')}"
                for file, names in by_file
            )
            + "\n      }"
        )
    soname = info.soname
    return (
        f'    {{\n      "path": {encode_basestring_ascii(info.path)},\n'
        f'      "soname": {"null" if soname is None else encode_basestring_ascii(soname)},\n'
        f'      "needed": {_json_list(info.needed, "      ")},\n'
        f'      "rpath": {_json_list(info.rpath, "      ")},\n'
        f'      "runpath": {_json_list(info.runpath, "      ")},\n'
        f'      "version_needs": {needs},\n'
        f'      "version_definitions": {_json_list(info.version_definitions, "      ")},\n'
        '      "error": null\n    }'
    )


def write_json(results: Iterable[ScanResult], stream: TextIO) -> None:
    """Write the ``inspect --json`` document for ``results`` to ``stream`` in one write.

    The text is exactly ``json.dump(document, stream, indent=2)`` followed by a newline
    (``document`` as :func:`inspect_json` builds it), made without the
    pure-Python encoder that ``indent`` selects and without its many small writes.
    """
    files = ",\n".join(map(_json_file, results))
    body = f"[\n{files}\n  ]" if files else "[]"
    stream.write(f'{{\n  "version": {INSPECT_JSON_VERSION},\n  "files": {body}\n}}\n')


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
    from nativelib.scan import scan_paths  # noqa: PLC0415 (zipfile: only inspect needs it)

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
