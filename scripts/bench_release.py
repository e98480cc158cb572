"""Benchmark: ``nativelib release`` from a warm cache, against the sum of its
``nativelib build`` calls (and ``python -m build`` of the checkout), in the same run.

Each side runs as a user runs it, in a subprocess, into a new empty directory, best of
``--repeat``:

- **release**: ``nativelib release RELEASE_FILE -o NEW_DIR --no-index`` (every runtime
  wheel of the matrix, the pynativelib sdist and wheel);
- **builds**: one ``nativelib build RUNTIME... --source SOURCE -w NEW_DIR`` per source of
  the release file (what a maintainer would type without ``release``), plus
  ``python -m build --outdir NEW_DIR`` of the checkout.

A first ``nativelib release`` warms the download cache (and pip's, for the isolated
build environment), and is not timed. Also timed: the release run again on its full
directory (everything kept and verified: the resume path). Needs the network for index
documents (a suite's Packages.xz is fetched once per ``release`` run, once per runtime
per ``build`` call)::

    python scripts/bench_release.py [--repeat 2] [RELEASE_FILE]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from nativelib.catalog import load_catalog
from nativelib.release.project import find_project, project_epoch
from nativelib.release.releasefile import default_release_file, load_release_file


def _run(argv: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True, env=env)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"{' '.join(argv)} failed:\n{proc.stderr}")
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("release_file", nargs="?", default=str(default_release_file()))
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    catalog = load_catalog()
    release = load_release_file(Path(args.release_file), catalog)
    project = find_project(None)
    env = dict(os.environ, SOURCE_DATE_EPOCH=str(project_epoch(project)))
    nativelib = [sys.executable, "-m", "nativelib", "-q"]
    by_source: dict[str, list[str]] = {}
    for entry in release.entries:
        by_source.setdefault(entry.source, []).append(catalog.recipes[entry.runtime].short)
    n = len(release.entries)
    print(f"python {sys.version.split()[0]}, {n} runtime wheels + sdist + wheel, "
          f"{len(by_source)} sources, best of {args.repeat}")  # fmt: skip

    with tempfile.TemporaryDirectory(prefix="bench-release-") as tmp:
        root = Path(tmp)

        def release(out: Path) -> float:
            argv = [*nativelib, "release", args.release_file, "-o", str(out), "--no-index"]
            return _run(argv, env)

        release(root / "warm")
        best_release = best_builds = best_runtime = best_project = float("inf")
        for i in range(args.repeat):
            best_release = min(best_release, release(root / f"r{i}"))
            out = root / f"b{i}"
            runtime = sum(
                _run([*nativelib, "build", *shorts, "--source", source, "-w", str(out)], env)
                for source, shorts in by_source.items()
            )
            proj = _run(
                [sys.executable, "-m", "build", "-q", "--outdir", str(out), str(project)], env
            )
            best_runtime = min(best_runtime, runtime)
            best_project = min(best_project, proj)
            best_builds = min(best_builds, runtime + proj)
        resume = min(release(root / "r0") for _ in range(args.repeat))
    print(f"{'nativelib build calls (runtime wheels)':<46}{best_runtime:>9.2f} s")
    print(f"{'python -m build (pynativelib sdist + wheel)':<46}{best_project:>9.2f} s")
    print(f"{'sum of the builds':<46}{best_builds:>9.2f} s")
    print(f"{'nativelib release (new directory)':<46}{best_release:>9.2f} s"
          f"   {best_release / best_builds:.2f}x the sum")  # fmt: skip
    print(f"{'nativelib release (again, all kept)':<46}{resume:>9.2f} s"
          f"   {resume / best_builds:.2f}x the sum")  # fmt: skip
    print("target: release at most 1.0x the sum of its builds")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
