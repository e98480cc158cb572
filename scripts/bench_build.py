"""Benchmark: rebuilding runtime wheels from a warm cache, against the zipfile floor.

For each runtime (default: cxx14, gomp, gfortran5 from Debian bookworm, cudart-cu12 from
PyPI) the upstream packages are resolved and downloaded once (warming the cache); then,
best of ``--repeat``:

- **ours**: ``fetch`` (a cache hit, sha256 re-verified) + ``plan_build`` (safe extraction,
  ELF reading, checks) + ``build`` (reproducible write, validation, atomic publish);
- **floor**: writing the same payload (the same member names and bytes) with ``zipfile``
  at the same compression level, in the same run.

Prints the times, the ratio ours/floor (target: at most 1.3x), and the wheel sizes next
to the upstream package sizes. Needs the network for the first resolution only::

    python scripts/bench_build.py [--repeat 5] [RUNTIME[:SOURCE] ...]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import zipfile
from pathlib import Path

from nativelib.catalog import load_catalog
from nativelib.net.download import fetch, get_document
from nativelib.runtime_wheels.builder import Input, build, plan_build
from nativelib.sources import resolve
from nativelib.wheelfile import COMPRESSLEVEL

DEFAULT = [
    "cxx14:debian-bookworm",
    "gomp:debian-bookworm",
    "gfortran5:debian-bookworm",
    "cudart-cu12:pypi",
]


def _floor(wheel: Path, dest: Path) -> float:
    """Time to write the same members with zipfile at the same level."""
    with zipfile.ZipFile(wheel) as zf:
        members = [(i.filename, zf.read(i)) for i in zf.infolist()]
    start = time.perf_counter()
    with zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED, compresslevel=COMPRESSLEVEL) as out:
        for name, data in members:
            out.writestr(name, data)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runtimes", nargs="*", default=DEFAULT, metavar="RUNTIME[:SOURCE]")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    catalog = load_catalog()
    print(f"python {sys.version.split()[0]}, compresslevel {COMPRESSLEVEL}, best of {args.repeat}")
    header = (
        f"{'runtime':<28}{'upstream':>12}{'wheel':>12}{'ours s':>10}{'floor s':>10}{'ratio':>8}"
    )
    print(header)
    total_ours = total_floor = 0.0
    for spec in args.runtimes:
        name, _, source_name = spec.partition(":")
        recipe = catalog.get(name)
        source = recipe.source(source_name or None)
        resolved = resolve(source, get_document)
        for r in resolved:  # warm the cache
            fetch(r.url, r.sha256)
        upstream = sum(fetch(r.url, r.sha256).stat().st_size for r in resolved)
        best_ours = best_floor = float("inf")
        size = 0
        with tempfile.TemporaryDirectory() as tmp:
            for i in range(args.repeat):
                start = time.perf_counter()
                inputs = [Input(fetch(r.url, r.sha256), r.kind, r.url, r.sha256) for r in resolved]
                plan = plan_build(
                    recipe, inputs, catalog=catalog, workdir=Path(tmp) / f"w{i}", source=source
                )
                wheel = build(plan, Path(tmp) / f"out{i}")
                best_ours = min(best_ours, time.perf_counter() - start)
                best_floor = min(best_floor, _floor(wheel, Path(tmp) / f"floor{i}.zip"))
                size = wheel.stat().st_size
        total_ours += best_ours
        total_floor += best_floor
        print(
            f"{recipe.name + ':' + source.name:<28}{upstream:>12,}{size:>12,}"
            f"{best_ours:>10.3f}{best_floor:>10.3f}{best_ours / best_floor:>7.2f}x"
        )
    print(f"{'all':<52}{total_ours:>10.3f}{total_floor:>10.3f}{total_ours / total_floor:>7.2f}x")
    print("target: at most 1.3x the floor")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
