"""``nativelib index``: a static simple repository for a directory of distributions."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from nativelib.publish.index import plan_index, read_yanked_file, write_index

__all__ = ["configure_parser", "run"]

JSON_VERSION = 1


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Write a static simple repository (PEP 503 HTML, PEP 691 JSON, PEP 658/714 "
        ".metadata files, PEP 592 yanking) for the wheels and .tar.gz sdists in DIR, "
        "for pip, uv and nativelib resolve to install from over http:// or file://. "
        "Only files whose content changes are written. Exit status: 0 written, "
        "2 a distribution that cannot be indexed (nothing is written) or another failure."
    )
    parser.add_argument("dist_dir", metavar="DIR", help="the directory of distributions")
    parser.add_argument(
        "-o",
        "--output",
        metavar="OUT",
        help="where the pages go (default: DIR/simple); the index URL is OUT's",
    )
    parser.add_argument(
        "--yanked",
        metavar="FILE",
        help="a list of yanked files or releases: one 'FILENAME' or 'NAME==VERSION' a "
        "line, then optionally the reason",
    )
    parser.add_argument(
        "-j",
        "--jobs",
        type=int,
        metavar="N",
        help="processes that read new files (default: one per CPU, at most 8)",
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="print what would be written; write nothing"
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="machine-readable summary (version 1; nativelib/data/schemas/index.schema.json)",
    )


def run(args: argparse.Namespace) -> int:
    yanked = read_yanked_file(args.yanked) if args.yanked else None
    plan = plan_index(Path(args.dist_dir), args.output, yanked=yanked, jobs=args.jobs)
    if args.dry_run:
        print(plan.describe())
        return 0
    result = write_index(plan)
    if args.json:
        doc = {
            "version": JSON_VERSION,
            "index": str(result.out_dir),
            "url": result.out_dir.as_uri(),
            "projects": {
                name: [
                    {
                        "filename": d.filename,
                        "version": str(d.version),
                        "sha256": d.sha256,
                        "size": d.size,
                        "requires_python": d.requires_python,
                        "metadata_sha256": d.metadata_sha256,
                        "yanked": d.yanked,
                    }
                    for d in dists
                ]
                for name, dists in result.projects.items()
            },
            "written": [str(p) for p in result.written],
            "removed": [str(p) for p in result.removed],
            "unchanged": len(result.unchanged),
            "skipped": [{"file": str(p), "reason": r} for p, r in result.skipped],
            "hashed": result.hashed,
        }
        json.dump(doc, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        for name, dists in result.projects.items():
            versions = sorted({d.version for d in dists})
            print(f"{name}: {len(dists)} files, {', '.join(str(v) for v in versions)}")
    print(
        f"{result.out_dir}: {len(result.written)} written, {len(result.removed)} removed, "
        f"{len(result.unchanged)} unchanged ({result.hashed} files hashed)",
        file=sys.stderr,
    )
    print(f"index URL: {result.out_dir.as_uri()}/", file=sys.stderr)
    return 0
