"""Benchmark: ``nativelib index`` over 500 wheels, against dumb-pypi and simple503.

The directory holds the six real runtime wheels (cxx14, gomp, gfortran5 from Debian 11
and 12, built with ``nativelib build``; the network is needed the first time, the
download cache serves later runs) and small generated wheels (``nativelib``'s own
writer: a module each, 100 projects with several versions) up to ``--count``.

Each tool runs as its command line, in a subprocess (interpreter start included), on a
fresh copy of the directory, best of ``--repeat``:

- **ours**: ``nativelib index DIR`` (every wheel validated: RECORD against every member,
  METADATA; sha256; PEP 658 files; HTML and JSON pages);
- **simple503**: ``simple503 DIR`` (in place; METADATA extracted, sha256; HTML only, no
  JSON, no validation);
- **dumb-pypi**: ``dumb-pypi --package-list-json`` fed what it needs for the same pages
  (sha256, Requires-Python, core-metadata hash: dumb-pypi reads no file itself), timed as
  the preparation (a plain hashlib/zipfile loop, in the same interpreter as the call) plus
  the call. The call alone, with file names only (no hashes at all), is printed too.

Then the incremental case: one wheel added to an indexed directory, re-indexed (ours
reads the state cache; simple503 has no cache and does everything again; dumb-pypi with
``--previous-package-list-json``, its partial rebuild). Prints the times and the ratios;
targets: ours faster than both peers on the full run, and a re-index after one added
wheel under 10 % of our full run::

    pip install dumb-pypi simple503
    python scripts/bench_index.py [--count 500] [--repeat 3]
"""

from __future__ import annotations

import argparse
import email.parser
import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

from nativelib.cli import main as nativelib_main
from nativelib.wheelfile import WheelFile, WheelPlan, write_wheel

BIN = Path(sys.executable).parent
REAL = [("cxx14", "gomp", "gfortran5"), ("debian-bullseye", "debian-bookworm")]


def real_wheels(dest: Path) -> list[Path]:
    runtimes, sources = REAL
    for source in sources:
        argv = ["-q", "build", *runtimes, "--source", source, "-w", str(dest)]
        if nativelib_main(argv) != 0:
            raise SystemExit(f"nativelib build --source {source} failed")
    return sorted(dest.glob("*.whl"))


def small_wheel(dest: Path, project: str, version: str) -> Path:
    module = project.replace("-", "_")
    plan = WheelPlan(
        name=project,
        version=version,
        tag="py3-none-any",
        files=(
            WheelFile(
                f"{module}/__init__.py",
                data=(f"VERSION = {version!r}\n" + "# padding\n" * 200).encode(),
            ),
        ),
        summary="a generated benchmark distribution",
        requires_python=">=3.8",
        requires_dist=("packaging>=20",),
    )
    return write_wheel(plan, dest)


def small_wheels(dest: Path, count: int) -> None:
    """``count`` wheels of 100 projects, several versions each."""
    for i in range(count):
        small_wheel(dest, f"bench-project-{i % 100:03d}", f"1.{i // 100}.{i % 7}")


def run(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return time.perf_counter() - start


def dumb_pypi_list(directory: Path, out: Path) -> float:
    """What dumb-pypi needs for our pages, computed the plain way, and the PEP 658 files
    that its pages point at; the time taken."""
    start = time.perf_counter()
    lines = []
    for wheel in sorted(directory.glob("*.whl")):
        data = wheel.read_bytes()
        with zipfile.ZipFile(wheel) as zf:
            name = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
            meta = zf.read(name)
        headers = email.parser.BytesHeaderParser().parsebytes(meta)
        Path(f"{wheel}.metadata").write_bytes(meta)  # (the pages point at it)
        entry = {
            "filename": wheel.name,
            "hash": f"sha256={hashlib.sha256(data).hexdigest()}",
            "core_metadata": f"sha256={hashlib.sha256(meta).hexdigest()}",
        }
        if headers.get("Requires-Python"):
            entry["requires_python"] = str(headers["Requires-Python"])
        lines.append(json.dumps(entry))
    out.write_text("\n".join(lines) + "\n")
    return time.perf_counter() - start


def fresh(source: Path, dest: Path) -> Path:
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    for p in source.glob("*.whl"):
        shutil.copy2(p, dest / p.name)
    return dest


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=500, help="wheels in all (default 500)")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    for tool in ("dumb-pypi", "simple503", "nativelib"):
        if not (BIN / tool).exists():
            raise SystemExit(f"{tool} is not installed beside {sys.executable}")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        source = root / "source"
        source.mkdir()
        real = real_wheels(source)
        small_wheels(source, args.count - len(real))
        extra = root / "extra"
        extra.mkdir()
        added = small_wheel(extra, "bench-project-000", "9.9")
        wheels = sorted(source.glob("*.whl"))
        size = sum(p.stat().st_size for p in wheels)
        print(
            f"python {sys.version.split()[0]}; {len(wheels)} wheels ({len(real)} real runtime "
            f"wheels), {size / 1e6:.1f} MB; best of {args.repeat}; each tool a subprocess"
        )
        best: dict[str, float] = {}

        def note(name: str, seconds: float) -> None:
            best[name] = min(best.get(name, float("inf")), seconds)

        for i in range(args.repeat):
            d = fresh(source, root / f"ours{i}")
            note("ours", run([str(BIN / "nativelib"), "index", str(d)]))
            # One wheel added, re-indexed (state cache).
            shutil.copy2(added, d)
            note("ours +1", run([str(BIN / "nativelib"), "index", str(d)]))
            note("ours again", run([str(BIN / "nativelib"), "index", str(d)]))

            d = fresh(source, root / f"s503-{i}")
            note("simple503", run([str(BIN / "simple503"), str(d)]))
            shutil.copy2(added, d)
            note("simple503 +1", run([str(BIN / "simple503"), str(d)]))

            d = fresh(source, root / f"dumb{i}")
            listing = root / f"dumb{i}.json"
            prep = dumb_pypi_list(d, listing)
            dumb = [str(BIN / "dumb-pypi"), "--packages-url", "../../", "--no-generate-timestamp",
                    "--no-per-release-json"]  # fmt: skip
            call = run([*dumb, "--package-list-json", str(listing), "--output-dir", str(d / "out")])
            note("dumb-pypi", prep + call)
            names = root / f"names{i}.txt"
            names.write_text("\n".join(p.name for p in sorted(d.glob("*.whl"))) + "\n")
            note("dumb-pypi names only", run([*dumb, "--package-list", str(names), "--output-dir", str(d / "out2")]))  # fmt: skip
            shutil.copy2(added, d)
            listing2 = root / f"dumb{i}-2.json"
            prep = dumb_pypi_list(d, listing2)
            call = run([*dumb, "--package-list-json", str(listing2), "--previous-package-list-json",
                        str(listing), "--output-dir", str(d / "out")])  # fmt: skip
            note("dumb-pypi +1", prep + call)

        ours = best["ours"]
        print(f"{'full index':<34}{'seconds':>10}{'vs ours':>10}")
        for name in ("ours", "simple503", "dumb-pypi", "dumb-pypi names only"):
            print(f"  {name:<32}{best[name]:>10.3f}{best[name] / ours:>9.2f}x")
        print(f"{'one wheel added, re-indexed':<34}{'seconds':>10}{'vs full':>10}")
        for name, full in (("ours +1", "ours"), ("simple503 +1", "simple503"), ("dumb-pypi +1", "dumb-pypi")):  # fmt: skip
            print(f"  {name:<32}{best[name]:>10.3f}{best[name] / best[full]:>9.1%}")
        print(f"  {'ours, nothing changed':<32}{best['ours again']:>10.3f}{best['ours again'] / ours:>9.1%}")  # fmt: skip
        ok_full = ours < best["simple503"] and ours < best["dumb-pypi"]
        ok_incr = best["ours +1"] < 0.1 * ours
        print(f"targets: faster than both peers: {'yes' if ok_full else 'NO'}; "
              f"re-index after one added wheel under 10% of a full run: {'yes' if ok_incr else 'NO'}")  # fmt: skip
        return 0 if ok_full and ok_incr else 1


if __name__ == "__main__":
    raise SystemExit(main())
