"""The ``nativelib`` command line: ``main(argv) -> int``.

Data goes to stdout, logs and errors to stderr. Exit codes: 0 fine, 1 findings (for
``inspect``: some files could not be parsed), 2 usage error or failure.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, TextIO

from nativelib import __version__
from nativelib.elf import ElfInfo
from nativelib.errors import NativeLibError

if TYPE_CHECKING:
    from nativelib.scan import ScanResult

__all__ = ["main"]

EXIT_OK = 0
EXIT_FINDINGS = 1
EXIT_USAGE = 2

#: Version of the ``inspect --json`` document (``data/schemas/inspect.schema.json``).
INSPECT_JSON_VERSION = 1


class _UsageError(Exception):
    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise _UsageError(message, f"see '{self.prog} --help'")


def _error(message: str, hint: str | None = None, stream: TextIO | None = None) -> None:
    out = stream or sys.stderr
    out.write(f"error: {message}\n")
    if hint:
        out.write(f"hint: {hint}\n")


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


def _cmd_inspect(args: argparse.Namespace) -> int:
    missing = [p for p in args.paths if not os.path.lexists(p)]
    if missing:
        raise _UsageError(
            f"no such file or directory: {missing[0]!r}"
            + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""),
            "PATH is a shared object, a directory to walk, or a .whl file",
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


def _build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="nativelib",
        description="Shared native runtime libraries for Python wheels.",
    )
    parser.add_argument("--version", action="version", version=f"nativelib {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    p = sub.add_parser(
        "inspect",
        help="show what ELF files provide and need",
        description=(
            "Show the soname, NEEDED entries, RPATH/RUNPATH and symbol version nodes "
            "(needed and defined) of ELF files. PATH is a file, a directory (walked; "
            "non-ELF files are skipped) or a .whl (read in place). Exit status: 0 all "
            "parsed, 1 some files could not be parsed, 2 usage error."
        ),
    )
    p.add_argument("paths", nargs="+", metavar="PATH")
    p.add_argument("--json", action="store_true", help="machine-readable output (schema v1)")
    p.set_defaults(func=_cmd_inspect)

    b = sub.add_parser(
        "build",
        help="build runtime wheels from upstream packages",
        description=(
            "Build runtime wheels (nativelib-<name>) from the catalog's upstream sources "
            "(conda, RPM, Debian, PyPI), or from the packages given with --from. The wheel "
            "paths are printed on stdout. Exit status: 0 built, 2 failure."
        ),
    )
    b.add_argument(
        "runtimes", nargs="*", metavar="RUNTIME", help="short name (gomp) or distribution name"
    )
    b.add_argument("--all", action="store_true", help="build every runtime of the catalog")
    b.add_argument("--source", metavar="NAME", help="which of the recipe's sources to use")
    b.add_argument(
        "--from",
        dest="from_",
        action="append",
        default=[],
        metavar="KIND:URL_OR_PATH",
        help="an upstream package to build from instead of the catalog's source, e.g. "
        "deb:./libgomp1_12.2.0-14_amd64.deb or wheel:https://host/x.whl#sha256=HEX "
        "(repeatable; a URL needs its sha256; kinds: conda, rpm, deb, wheel)",
    )
    b.add_argument(
        "-o",
        "--output",
        default="wheelhouse",
        metavar="DIR",
        help="where wheels go (default: wheelhouse)",
    )
    b.add_argument("--plan", action="store_true", help="print what would be built; write nothing")
    b.set_defaults(func=_cmd_build)

    for name, helptext, func in (
        ("resolve", "pick the runtime wheels that satisfy what files need", _cmd_resolve),
        ("requires", "the Requires-Dist lines a downstream wheel should declare", _cmd_requires),
    ):
        r = sub.add_parser(
            name,
            help=helptext,
            description=(
                f"{helptext[0].upper()}{helptext[1:]}. PATH_OR_REQ is a wheel, a directory, "
                "an installed distribution or a requirement string (nativelib-cxx14>=12). "
                "Candidates: the runtimes installed here, --find-links directories, "
                "--index-url indexes. Exit status: 0 resolved, 1 no resolution (explained "
                "on stderr), 2 usage error."
            ),
        )
        r.add_argument("targets", nargs="+", metavar="PATH_OR_REQ")
        r.add_argument("--index-url", action="append", metavar="URL", help="a simple-API index")
        r.add_argument("--find-links", action="append", metavar="DIR", help="a directory of wheels")
        if name == "resolve":
            r.add_argument(
                "--platform", metavar="TAG", help="target platform, e.g. manylinux_2_28_x86_64"
            )
            r.add_argument("--glibc", metavar="VERSION", help="target glibc, e.g. 2.28")
            r.add_argument("--lowest", action="store_true", help="the oldest versions that satisfy")
            r.add_argument("--pre", action="store_true", help="allow pre-releases")
            r.add_argument("--json", action="store_true", help="machine-readable output")
            r.add_argument(
                "-o", "--output", metavar="FILE", help="write a requirements file with hashes"
            )
        r.set_defaults(func=func)

    rp = sub.add_parser(
        "repair",
        help="replace vendored runtime copies in wheels with a dependency on runtime wheels",
        description=(
            "Find the runtime libraries a wheel vendors (auditwheel's pkg.libs/libgomp-<hash>"
            ".so.1.0.0, or unrenamed copies such as torch/lib/libgomp.so.1), point the shared "
            "objects that need them at the shared runtime (DT_NEEDED back to the canonical "
            "soname, an $ORIGIN-relative RUNPATH to nativelib.prefix/lib), remove the copies "
            "and add Requires-Dist on the runtime distributions. The input is never modified. "
            "Exit status: 0 repaired (or nothing to repair), 2 error (nothing written)."
        ),
    )
    rp.add_argument("wheels", nargs="+", metavar="WHEEL")
    rp.add_argument(
        "-w", "--wheel-dir", default="wheelhouse", metavar="OUTDIR",
        help="where repaired wheels go (default: wheelhouse)",
    )  # fmt: skip
    rp.add_argument(
        "--runtime", action="append", metavar="NAMES",
        help="only these runtimes, e.g. gomp,gfortran5 (default: every runtime found)",
    )  # fmt: skip
    rp.add_argument("--plan", action="store_true", help="print every edit; write nothing")
    rp.add_argument(
        "--add-preload", action="store_true",
        help="also add a hook module that calls nativelib.load() from the package's __init__.py "
        "(for --user, --target and other layouts that RUNPATH cannot reach)",
    )  # fmt: skip
    rp.add_argument(
        "--find-links", action="append", metavar="DIR", help="runtime wheels (for bounds)"
    )
    rp.add_argument(
        "--index-url", action="append", metavar="URL", help="an index of runtime wheels"
    )
    rp.set_defaults(func=_cmd_repair)
    d = sub.add_parser(
        "doctor",
        help="diagnose this environment (and, with --import, a live process)",
        description=(
            "Check the host (libc, platform tags, libstdc++, libgomp, NVIDIA driver), the "
            "runtimes in the common prefix (RECORD hashes, manifests, files claimed twice) "
            "and every ELF file of the environment's site directories (or of --path): "
            "vendored runtime copies, needs nothing satisfies, sonames found nowhere, "
            "OpenMP families, RPATH entries, CUDA majors the driver cannot run. Exit status: "
            "0 no errors (warnings too, unless --strict), 1 errors found, 2 the doctor "
            "could not run."
        ),
    )
    d.add_argument(
        "--path", action="append", metavar="DIR",
        help="scan this directory (or wheel, or file) instead of the site directories "
        "(repeatable)",
    )  # fmt: skip
    d.add_argument(
        "--import", dest="imports", nargs="+", metavar="MODULE",
        help="import these modules, in this order, in a child process, and report which "
        "runtime copies it loaded",
    )  # fmt: skip
    d.add_argument(
        "--import-timeout", type=float, default=120.0, metavar="SECONDS",
        help="give up on the importing process after this long (default: 120)",
    )  # fmt: skip
    d.add_argument("--json", action="store_true", help="machine-readable output (schema v1)")
    d.add_argument("--strict", action="store_true", help="exit 1 on warnings too")
    d.set_defaults(func=_cmd_doctor)
    return parser


def _cmd_resolve(args: argparse.Namespace) -> int:
    from nativelib.resolver.command import run_resolve  # noqa: PLC0415 (packaging, resolvelib)

    return run_resolve(args)


def _cmd_requires(args: argparse.Namespace) -> int:
    from nativelib.resolver.command import run_requires  # noqa: PLC0415 (packaging, resolvelib)

    return run_requires(args)


def _cmd_doctor(args: argparse.Namespace) -> int:
    from nativelib.doctor.command import run  # noqa: PLC0415 (kept off the other commands' path)

    return run(args)


def _cmd_repair(args: argparse.Namespace) -> int:
    from nativelib.repair.command import run  # noqa: PLC0415 (packaging, resolvelib)

    return run(args)


def _cmd_build(args: argparse.Namespace) -> int:
    # Imported here: building needs the archive readers and downloads; inspect does not.
    from nativelib.runtime_wheels.command import run  # noqa: PLC0415 (kept off inspect's path)

    return run(args)


def main(argv: Sequence[str] | None = None) -> int:
    parser = _build_parser()
    try:
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help(sys.stderr)
            return EXIT_USAGE
        code: int = args.func(args)
        sys.stdout.flush()
        return code
    except _UsageError as e:
        _error(str(e), e.hint)
        return EXIT_USAGE
    except SystemExit as e:  # --help / --version
        return e.code if isinstance(e.code, int) else EXIT_OK
    except BrokenPipeError:
        # Output piped into a command that stopped reading (| head): not our failure.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK
    except NativeLibError as e:
        _error(str(e))
        return EXIT_USAGE
    except KeyboardInterrupt:
        _error("interrupted")
        return 130
