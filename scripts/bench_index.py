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
import contextlib
import email.parser
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

from nativelib.cli import main as nativelib_main
from nativelib.publish.index import build_index
from nativelib.wheelfile import WheelFile, WheelPlan, write_wheel

BIN = Path(sys.executable).parent
REAL = [("cxx14", "gomp", "gfortran5"), ("debian-bullseye", "debian-bookworm")]


def real_wheels(dest: Path) -> list[Path]:
    runtimes, sources = REAL
    for source in sources:
        argv = ["-q", "build", *runtimes, "--source", source, "-w", str(dest)]
        with contextlib.redirect_stdout(io.StringIO()):
            code = nativelib_main(argv)
        if code != 0:
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


def run(argv: list[str]) -> tuple[float, float]:
    """Run a command; its wall-clock time and its CPU time (user + system, its waited-for
    child processes included: steadier than the wall clock on a shared machine)."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert proc.stderr is not None
    err = proc.stderr.read()
    _pid, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{argv} failed:\n{err.decode()}")
    return time.perf_counter() - start, usage.ru_utime + usage.ru_stime


def dumb_pypi_list(directory: Path, out: Path, validate: bool) -> None:
    """What dumb-pypi needs for our pages, computed the plain way, and the PEP 658 files
    its pages point at; with ``validate``, every wheel through the validator ours uses."""
    if validate:
        from nativelib.wheelfile import validate_wheel  # noqa: PLC0415
    lines = []
    for wheel in sorted(directory.glob("*.whl")):
        if validate:
            validate_wheel(wheel)
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


def validate_all(directory: Path) -> None:
    """simple503's missing check: every wheel through the validator ours uses."""
    from nativelib.wheelfile import validate_wheel  # noqa: PLC0415

    for wheel in sorted(directory.glob("*.whl")):
        validate_wheel(wheel)


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
    parser.add_argument("--prep", nargs=3, metavar=("KIND", "DIR", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.prep:  # a step of a peer's pipeline, run as its own process
        kind, directory, out = args.prep
        if kind == "validate":
            validate_all(Path(directory))
        else:
            dumb_pypi_list(Path(directory), Path(out), validate=kind == "dumb-validate")
        return 0
    for tool in ("dumb-pypi", "simple503", "nativelib"):
        if not (BIN / tool).exists():
            raise SystemExit(f"{tool} is not installed beside {sys.executable}")
    me = [sys.executable, __file__, "--prep"]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        source = root / "source"
        source.mkdir()
        real = real_wheels(source)
        small_wheels(source, args.count - len(real))
        added = small_wheel(root, "bench-project-000", "9.9")
        wheels = sorted(source.glob("*.whl"))
        size = sum(p.stat().st_size for p in wheels)
        print(
            f"python {sys.version.split()[0]}, {len(os.sched_getaffinity(0))} CPUs; "
            f"{len(wheels)} wheels ({len(real)} real runtime wheels, {size / 1e6:.1f} MB); "
            f"best of {args.repeat}"
        )
        wall: dict[str, float] = {}
        cpu: dict[str, float] = {}

        def keep(name: str, seconds: float, cpu_seconds: float) -> None:
            wall[name] = min(wall.get(name, float("inf")), seconds)
            cpu[name] = min(cpu.get(name, float("inf")), cpu_seconds)

        def note(name: str, *steps: list[str]) -> None:
            times = [run(s) for s in steps]
            keep(name, sum(t[0] for t in times), sum(t[1] for t in times))

        def in_process(d: Path) -> tuple[float, float]:
            start, start_cpu = time.perf_counter(), time.process_time()
            build_index(d, jobs=1)
            return time.perf_counter() - start, time.process_time() - start_cpu

        dumb = [str(BIN / "dumb-pypi"), "--packages-url", "../../", "--no-generate-timestamp",
                "--no-per-release-json"]  # fmt: skip
        ours = [str(BIN / "nativelib"), "-q", "index"]
        for i in range(args.repeat):
            d = fresh(source, root / f"ours{i}")
            note("ours", [*ours, str(d)])
            shutil.copy2(added, d)
            note("ours +1", [*ours, str(d)])
            note("ours, nothing new", [*ours, str(d)])
            d = fresh(source, root / f"ours1-{i}")
            note("ours -j1", [*ours, "-j1", str(d)])
            # In-process, one process (the API that nativelib release calls): no
            # interpreter start, every CPU second counted.
            d = fresh(source, root / f"api{i}")
            keep("api", *in_process(d))
            shutil.copy2(added, d)
            keep("api +1", *in_process(d))

            d = fresh(source, root / f"s503-{i}")
            note("simple503", [str(BIN / "simple503"), str(d)])
            shutil.copy2(added, d)
            note("simple503 +1", [str(BIN / "simple503"), str(d)])
            d = fresh(source, root / f"s503v-{i}")
            note(
                "simple503 + validation",
                [*me, "validate", str(d), "-"],
                [str(BIN / "simple503"), str(d)],
            )

            for kind in ("dumb", "dumb-validate"):
                d = fresh(source, root / f"{kind}{i}")
                listing = root / f"{kind}{i}.json"
                note(
                    kind,
                    [*me, kind, str(d), str(listing)],
                    [*dumb, "--package-list-json", str(listing), "--output-dir", str(d / "out")],
                )
                if kind == "dumb":
                    shutil.copy2(added, d)
                    again = root / f"{kind}{i}-2.json"
                    note("dumb +1", [*me, kind, str(d), str(again)],
                         [*dumb, "--package-list-json", str(again), "--previous-package-list-json",
                          str(listing), "--output-dir", str(d / "out")])  # fmt: skip
            names = root / f"names{i}.txt"
            names.write_text("\n".join(p.name for p in wheels) + "\n")
            note(
                "dumb names",
                [*dumb, "--package-list", str(names), "--output-dir", str(root / f"n{i}")],
            )

        rows = [
            ("ours: nativelib index (validates every wheel)", "ours"),
            ("ours, -j1 (one process)", "ours -j1"),
            ("ours, in-process build_index(jobs=1)", "api"),
            ("simple503 + the same validation", "simple503 + validation"),
            ("dumb-pypi + prep with the same validation", "dumb-validate"),
            ("simple503 as is (no validation, no JSON)", "simple503"),
            ("dumb-pypi + prep (hashes, .metadata; no validation)", "dumb"),
            ("dumb-pypi, file names only (no hashes at all)", "dumb names"),
        ]
        print(f"{'full index':<54}{'wall s':>8}{'/ ours':>8}{'CPU s':>8}{'/ ours':>8}")
        for label, key in rows:
            print(
                f"  {label:<52}{wall[key]:>8.3f}{wall[key] / wall['ours']:>7.2f}x"
                f"{cpu[key]:>8.3f}{cpu[key] / cpu['ours -j1']:>7.2f}x"
            )
        header = f"{'wall s':>8}{'/ full':>8}{'CPU s':>8}{'/ full':>8}"
        print(f"{'one wheel added, re-indexed':<54}{header}")
        for label, key, of in (
            ("ours (state cache)", "ours +1", "ours"),
            ("ours, in-process build_index(jobs=1)", "api +1", "api"),
            ("ours, nothing new", "ours, nothing new", "ours"),
            ("simple503 (does it all again)", "simple503 +1", "simple503"),
            ("dumb-pypi --previous-package-list-json", "dumb +1", "dumb"),
        ):
            print(
                f"  {label:<52}{wall[key]:>8.3f}{wall[key] / wall[of]:>8.1%}"
                f"{cpu[key]:>8.3f}{cpu[key] / cpu[of]:>8.1%}"
            )
        print("(CPU ratios of the full runs are to ours -j1; CPU time is user + system)")
        ours = cpu["ours -j1"]
        same = ours < cpu["simple503 + validation"] and ours < cpu["dumb-validate"]
        raw = ours < cpu["simple503"] and ours < cpu["dumb"]
        incremental = cpu["ours +1"] < 0.1 * cpu["ours"]
        print(
            f"targets (CPU time): faster than both peers doing the same checks: "
            f"{'yes' if same else 'NO'}; faster than both as they are: {'yes' if raw else 'NO'}; "
            f"one added wheel under 10% of a full run: {'yes' if incremental else 'NO'} "
            f"(in-process: {'yes' if cpu['api +1'] < 0.1 * cpu['api'] else 'NO'})"
        )
        return 0 if same and incremental else 1


if __name__ == "__main__":
    raise SystemExit(main())
