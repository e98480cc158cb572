"""``nativelib release``: the release set of a release file, built into one directory."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
from pathlib import Path
from typing import Any

from nativelib.catalog import load_catalog
from nativelib.errors import NativeLibError
from nativelib.release.build import ReleasedFile, build_release, caching_getter, resolve_release
from nativelib.release.coverage import Coverage, check_platforms, normalize_platform
from nativelib.release.project import find_project, project_epoch
from nativelib.release.releasefile import ReleaseFile, default_release_file, load_release_file

__all__ = ["configure_parser", "run"]

_log = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_DIFFERENT = 1


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Build the release set of a release file into one directory: every runtime wheel "
        "of its matrix (each runtime from each source listed, each at its own manylinux "
        "floor) and the pynativelib sdist and wheel of this checkout. Prints a summary "
        "(name, version, tag, size, sha256, source). Files already built and verified are "
        "kept. Exit status: 0 built, 1 --check found a file that differs, 2 failure."
    )
    parser.add_argument(
        "release_file",
        nargs="?",
        metavar="RELEASE_FILE",
        help="the release file (TOML; default: the project's own, nativelib/data/release.toml)",
    )
    parser.add_argument(
        "-o",
        "--output",
        default="release",
        metavar="DIR",
        help="the release directory (default: release)",
    )
    parser.add_argument(
        "--project",
        metavar="DIR",
        help="the pynativelib checkout to build the sdist and wheel of (default: the one "
        "this nativelib runs from)",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="build everything again in a temporary directory and compare every file with "
        "DIR's by sha256 (DIR is not changed); exit 1 if one differs or is missing",
    )
    parser.add_argument(
        "--check-platforms",
        nargs="+",
        default=[],
        metavar="PLATFORM",
        help="after building, report for each runtime the newest version pip installs on "
        "each platform (e.g. manylinux_2_17 manylinux_2_28 manylinux_2_31)",
    )
    parser.add_argument(
        "--no-index",
        action="store_true",
        help="do not write the static index DIR/simple/ (nativelib index DIR writes it later)",
    )
    parser.add_argument("--json", action="store_true", help="the summary as JSON (schema v1)")


def _progress(i: int, total: int, what: str) -> None:
    sys.stderr.write(f"\r\033[K[{i}/{total}] {what}")
    sys.stderr.flush()


def _summary_text(files: list[ReleasedFile], out: Path) -> str:
    rows = [("file", "version", "tag", "size", "sha256", "source")]
    for f in files:
        rows.append((f.filename, f.version, f.tag, str(f.size), f.sha256, f.source))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = [f"{out}/"]
    for r in rows:
        cells = [
            c.ljust(w) if i != 3 else c.rjust(w)
            for i, (c, w) in enumerate(zip(r, widths, strict=True))
        ]
        lines.append("  " + "  ".join(cells).rstrip())
    return "\n".join(lines)


def _file_json(f: ReleasedFile) -> dict[str, Any]:
    return {
        "filename": f.filename,
        "name": f.name,
        "version": f.version,
        "tag": f.tag,
        "kind": f.kind,
        "size": f.size,
        "sha256": f.sha256,
        "source": f.source,
        "status": f.status,
    }


def _compare(out: Path, fresh: list[ReleasedFile]) -> list[dict[str, str | None]]:
    """Every file of ``fresh`` whose copy in ``out`` is missing or has other bytes."""
    from nativelib.release.build import sha256_of  # noqa: PLC0415

    differences: list[dict[str, str | None]] = []
    for f in fresh:
        path = out / f.filename
        have = sha256_of(path) if path.is_file() else None
        if have != f.sha256:
            differences.append({"filename": f.filename, "expected": f.sha256, "found": have})
    return differences


def _where(out: Path) -> list[str]:
    """What pip looks in for the installability check: the static index, if written."""
    simple = out / "simple"
    if (simple / "index.html").is_file():
        return ["--index-url", simple.resolve().as_uri() + "/"]
    return ["--no-index", "--find-links", str(out.resolve())]


def _write_index(out: Path, release: ReleaseFile) -> Path:
    """The static simple index of ``out`` (``out/simple/``), with the release file's
    yanked entries: the last step, so the directory can be installed from as it is."""
    from nativelib.publish.index import build_index  # noqa: PLC0415

    yanked = {f"{y.name}=={y.version}": y.reason for y in release.yanked}
    return build_index(out, None, yanked=yanked).out_dir


def run(args: argparse.Namespace) -> int:
    """Exit status: 0 built (and identical, with --check), 1 --check found differences,
    2 failure (raised)."""
    catalog = load_catalog()
    path = Path(args.release_file) if args.release_file else default_release_file()
    release = load_release_file(path, catalog)
    platforms = [normalize_platform(p) for p in args.check_platforms]
    project = find_project(Path(args.project) if args.project else None)
    epoch = project_epoch(project)
    out = Path(args.output)
    if out.exists() and not out.is_dir():
        raise NativeLibError(
            f"{out}: not a directory", hint="give -o a directory (it is created if missing)"
        )
    planned = resolve_release(release, catalog, caching_getter())
    progress = _progress if sys.stderr.isatty() else None
    differences: list[dict[str, str | None]] | None = None
    try:
        if args.check:
            with tempfile.TemporaryDirectory(prefix="nativelib-release-check-") as tmp:
                files = build_release(
                    planned, catalog, Path(tmp), project=project, epoch=epoch, reuse=False,
                    progress=progress,
                )  # fmt: skip
                differences = _compare(out, files)
        else:
            files = build_release(
                planned, catalog, out, project=project, epoch=epoch, progress=progress
            )
    finally:
        if progress:
            sys.stderr.write("\r\033[K")
    index: Path | None = None
    if not args.check and not args.no_index:
        index = _write_index(out, release)
    coverage: Coverage | None = None
    if platforms:
        coverage = check_platforms(release.runtimes, platforms, _where(out), catalog)

    if args.json:
        doc: dict[str, Any] = {
            "version": 1,
            "release_file": str(path),
            "directory": str(out),
            "source_date_epoch": epoch,
            "index": None if index is None else str(index),
            "files": [_file_json(f) for f in files],
            "check": None if differences is None else {
                "identical": not differences, "differences": differences,
            },
            "coverage": None if coverage is None else coverage.to_json(),
        }  # fmt: skip
        json.dump(doc, sys.stdout, indent=2, sort_keys=False)
        sys.stdout.write("\n")
    else:
        print(_summary_text(files, out))
        if index is not None:
            print(f"index: {index}/ (pip install --index-url {index.resolve().as_uri()}/ ...)")
        if differences is not None:
            if differences:
                print(f"--check: {len(differences)} file(s) differ from {out}:")
                for d in differences:
                    print(f"  {d['filename']}: built {d['expected']}, {out} has {d['found']}")
            else:
                print(f"--check: every file is identical to {out}'s ({len(files)} files)")
        if coverage is not None:
            print("newest version pip installs, per platform:")
            print(coverage.text())
    return EXIT_DIFFERENT if differences else EXIT_OK
