"""``nativelib doctor``: the command line over :func:`nativelib.doctor.diagnose`.

Exit status: 0 no errors (warnings too, unless ``--strict``), 1 errors found (or, with
``--strict``, warnings), 2 the doctor itself could not run.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from nativelib.doctor.core import Options, diagnose
from nativelib.doctor.render import use_colour, write_json, write_text
from nativelib.errors import NativeLibError, UsageError

__all__ = ["configure_parser", "run"]


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Check the host (libc, platform tags, libstdc++, libgomp, NVIDIA driver), the "
        "runtimes in the common prefix (RECORD hashes, manifests, files claimed twice) "
        "and every ELF file of the environment's site directories (or of --path): "
        "vendored runtime copies, needs nothing satisfies, sonames found nowhere, "
        "OpenMP families, RPATH entries, CUDA majors the driver cannot run. Exit status: "
        "0 no errors (warnings too, unless --strict), 1 errors found, 2 the doctor "
        "could not run."
    )
    parser.add_argument(
        "--path", action="append", metavar="DIR",
        help="scan this directory (or wheel, or file) instead of the site directories "
        "(repeatable)",
    )  # fmt: skip
    parser.add_argument(
        "--import", dest="imports", nargs="+", action="extend", metavar="MODULE",
        help="import these modules, in this order, in a child process, and report which "
        "runtime copies it loaded (repeatable: --import a --import b c)",
    )  # fmt: skip
    parser.add_argument(
        "--import-timeout", type=float, default=120.0, metavar="SECONDS",
        help="give up on the importing process after this long (default: 120)",
    )  # fmt: skip
    parser.add_argument("--json", action="store_true", help="machine-readable output (schema v1)")
    parser.add_argument("--strict", action="store_true", help="exit 1 on warnings too")


def run(args: argparse.Namespace) -> int:
    paths = tuple(args.path or ())
    missing = [p for p in paths if not os.path.lexists(p)]
    if missing:
        raise UsageError(
            f"--path {missing[0]!r}: no such file or directory",
            hint="--path names a directory to scan (or a wheel, or one file); repeat it for more",
        )
    if args.import_timeout <= 0:
        raise UsageError(
            f"--import-timeout {args.import_timeout:g}: must be more than 0 seconds",
            hint="give the seconds to wait for the importing process, e.g. --import-timeout 300",
        )
    start = time.perf_counter()
    try:
        report = diagnose(
            Options(
                paths=paths, imports=tuple(args.imports or ()), import_timeout=args.import_timeout
            )
        )
    except OSError as e:
        raise NativeLibError(
            f"the doctor could not run: {e}",
            hint="check that the environment's site directories (or --path) can be read",
        ) from e
    elapsed = time.perf_counter() - start
    if args.json:
        write_json(report, sys.stdout)
    else:
        write_text(report, sys.stdout, colour=use_colour(sys.stdout))
    where = "the given paths" if paths else "the environment's site directories"
    sys.stderr.write(
        f"doctor: read {report.elf_files} ELF files under {where} in {elapsed:.2f} s; "
        f"{report.count('error')} errors, {report.count('warning')} warnings\n"
    )
    return report.exit_code(strict=args.strict)
