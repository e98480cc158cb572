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

__all__ = ["run"]

EXIT_CANNOT_RUN = 2


def _fail(message: str, hint: str | None = None) -> int:
    sys.stderr.write(f"error: {message}\n")
    if hint:
        sys.stderr.write(f"hint: {hint}\n")
    return EXIT_CANNOT_RUN


def run(args: argparse.Namespace) -> int:
    paths = tuple(args.path or ())
    missing = [p for p in paths if not os.path.lexists(p)]
    if missing:
        return _fail(
            f"--path {missing[0]!r}: no such file or directory",
            "--path names a directory to scan (or a wheel, or one file); repeat it for more",
        )
    if args.import_timeout <= 0:
        return _fail(f"--import-timeout {args.import_timeout:g}: must be more than 0 seconds")
    start = time.perf_counter()
    try:
        report = diagnose(
            Options(
                paths=paths, imports=tuple(args.imports or ()), import_timeout=args.import_timeout
            )
        )
    except OSError as e:
        return _fail(f"the doctor could not run: {e}")
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
