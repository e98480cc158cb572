"""Benchmark: ``nativelib repair`` on real wheels against a floor measured in the same run,
and against ``auditwheel repair`` on a small raw wheel.

Wheels: the newest torch, scikit-learn and numpy wheels pip finds for CPython 3.11,
manylinux x86_64 (``pip download``, once, into ``--cache``). torch vendors libgomp as
``torch/lib/libgomp.so.1``, scikit-learn as ``scikit_learn.libs/libgomp-<hash>.so.1.0.0``.

The floor, per wheel (the least any repair that writes a new wheel must do): copy every
member's compressed bytes once into a new zip, inflate the members repair edits, run
patchelf on them with repair's own edits (one run per file), and deflate them again at
level 6 on a thread pool (blocks of 256 KiB, like nativelib's writer). The edits come from
``nativelib repair --plan`` (this checkout's code).

Each repair is a fresh process (``python -m nativelib repair WHEEL -w OUT``), timed from
start to exit. Peak memory: ``ru_maxrss`` of that process from ``wait4`` (it includes
patchelf, its child), and the repair process's own peak (patchelf left out); the floor
runs in a process of its own, so that no repair inherits its peak. Targets
(issue 11): within 1.5x of the floor; peak memory below the largest member + 200 MB.

``--python`` adds interpreters whose ``nativelib`` is timed too (e.g. main's venv, for a
before/after comparison): each is labelled by its path.

    python scripts/bench_repair.py [--cache DIR] [--python PY]... [--only torch,...]
                                   [--torch WHEEL]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import shutil
import struct
import subprocess
import sys
import tempfile
import textwrap
import time
import zipfile
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

DEFAULT_CACHE = Path.home() / ".cache" / "nativelib-bench"
WHEELS = {"torch": "torch", "sklearn": "scikit-learn", "numpy": "numpy"}
TARGET_RATIO = 1.5
MEMORY_MARGIN = 200 << 20
_BLOCK = 1 << 18
_WINDOW = 1 << 15

# Runs ``nativelib repair`` in this process, then reports its own peak (ru_maxrss, KiB)
# and its children's (patchelf) on stderr.
_WRAPPER = textwrap.dedent(
    """
    import resource, sys
    from nativelib.cli import main
    status = main(["repair", *sys.argv[1:]])
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    print(f"@@peak {own} {kids}", file=sys.stderr)
    sys.exit(status)
    """
)


def download(cache: Path, project: str) -> Path:
    cache.mkdir(parents=True, exist_ok=True)
    stem = project.replace("-", "_")
    have = sorted(cache.glob(f"{stem}-*.whl"))
    if not have:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
             "--python-version", "3.11", "--implementation", "cp", "--abi", "cp311",
             "--platform", "manylinux_2_28_x86_64", "-d", str(cache), project],
            check=True,
        )  # fmt: skip
        have = sorted(cache.glob(f"{stem}-*.whl"))
    return have[-1]


# --------------------------------------------------------------------------- the floor


def _copy_compressed(src: Path, dest: Path) -> None:
    """Every member's compressed bytes, copied once into a new zip (headers rewritten)."""
    with zipfile.ZipFile(src) as zf, open(src, "rb") as fin, open(dest, "wb") as out:
        central = []
        for info in zf.infolist():
            fin.seek(info.header_offset)
            head = fin.read(30)
            n, m = struct.unpack("<HH", head[26:30])
            fin.seek(info.header_offset + 30 + n + m)
            name = info.filename.encode()
            offset = out.tell()
            fields = (20, 0, info.compress_type, 0, 33, info.CRC, info.compress_size,
                      info.file_size)  # fmt: skip
            out.write(struct.pack("<4s5H3I2H", b"PK\x03\x04", *fields, len(name), 0) + name)
            left = info.compress_size
            while left:
                chunk = fin.read(min(left, 1 << 20))
                out.write(chunk)
                left -= len(chunk)
            central.append(
                struct.pack(
                    "<4s6H3I5H2I",
                    b"PK\x01\x02",
                    0x314,
                    *fields,
                    len(name),
                    0,
                    0,
                    0,
                    0,
                    0o644 << 16,
                    offset,
                )
                + name
            )
        start = out.tell()
        directory = b"".join(central)
        out.write(directory)
        n = len(central)
        out.write(struct.pack("<4s4H2IH", b"PK\x05\x06", 0, 0, n, n, len(directory), start, 0))


def _deflate_block(dictionary: bytes, data: bytes, final: bool) -> bytes:
    c = (
        zlib.compressobj(6, zlib.DEFLATED, -15, 8, zlib.Z_DEFAULT_STRATEGY, dictionary)
        if dictionary
        else zlib.compressobj(6, zlib.DEFLATED, -15)
    )
    return c.compress(data) + c.flush(zlib.Z_FINISH if final else zlib.Z_SYNC_FLUSH)


def _deflate_file(path: Path, pool: ThreadPoolExecutor) -> int:
    data = path.read_bytes()
    starts = range(0, len(data), _BLOCK) if data else range(1)
    jobs = [
        pool.submit(
            _deflate_block,
            data[max(0, s - _WINDOW) : s] if s else b"",
            data[s : s + _BLOCK],
            s + _BLOCK >= len(data),
        )
        for s in starts
    ]
    hashlib.sha256(data).digest()  # the RECORD row of the edited file
    return sum(len(j.result()) for j in jobs)


def _cpu() -> float:
    """CPU seconds (user + system) of this process and its waited-for children."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def floor(wheel: Path, edits: list[object], work: Path) -> dict[str, float]:
    from nativelib.repair.elfpatch import find_patchelf, patchelf_editor  # noqa: PLC0415

    editor = patchelf_editor(find_patchelf()[0])
    times = {}
    c0 = _cpu()
    t0 = time.perf_counter()
    _copy_compressed(wheel, work / "copy.zip")
    t1 = time.perf_counter()
    paths = {}
    with zipfile.ZipFile(wheel) as zf:
        for e in edits:
            target = work / "edit" / e.member  # type: ignore[attr-defined]
            target.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(e.member) as src, open(target, "wb") as out:  # type: ignore[attr-defined]
                shutil.copyfileobj(src, out, 1 << 20)
            paths[e.member] = target  # type: ignore[attr-defined]
    t2 = time.perf_counter()
    for e in edits:
        editor(paths[e.member], e)  # type: ignore[attr-defined, arg-type]
    t3 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        for p in paths.values():
            _deflate_file(p, pool)
    t4 = time.perf_counter()
    times.update(copy=t1 - t0, inflate=t2 - t1, patchelf=t3 - t2, deflate=t4 - t3, total=t4 - t0)
    times["cpu"] = _cpu() - c0
    return times


# --------------------------------------------------------------------------- repairs


def run_repair(python: str, wheel: Path, out: Path) -> tuple[float, int, int, int, float]:
    """(wall seconds, peak of the process tree, own peak, children's peak in bytes, CPU
    seconds of the process tree)."""
    shutil.rmtree(out, ignore_errors=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "NATIVELIB"))}
    with tempfile.TemporaryFile("w+") as err:
        start = time.perf_counter()
        proc = subprocess.Popen(
            [python, "-c", _WRAPPER, str(wheel), "-w", str(out)], stdout=subprocess.DEVNULL,
            stderr=err, env=env,
        )  # fmt: skip
        _pid, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        text = err.read()
    if proc.returncode != 0:
        raise SystemExit(f"{python}: repair of {wheel.name} failed:\n{text}")
    line = next(x for x in text.splitlines() if x.startswith("@@peak "))
    own, kids = (int(x) << 10 for x in line.split()[1:])
    return wall, usage.ru_maxrss << 10, own, kids, usage.ru_utime + usage.ru_stime


def plan_edits(wheel: Path) -> list[object]:
    from nativelib.catalog import load_catalog  # noqa: PLC0415
    from nativelib.repair.command import repair_wheel  # noqa: PLC0415

    plan, _ = repair_wheel(wheel, Path("unused"), catalog=load_catalog(), plan_only=True)
    return list(plan.edits)


def mb(n: float) -> str:
    return f"{n / (1 << 20):.0f} MB"


def floor_child(wheel: Path, work: Path) -> None:
    """The floor, in its own process (``--floor``): a child inherits its parent's peak
    memory through exec (Linux counts the pre-exec image in ``ru_maxrss``), so the process
    that starts the timed repairs never holds a whole member."""
    with zipfile.ZipFile(wheel) as zf:
        sizes = {i.filename: i.file_size for i in zf.infolist()}
    edits = plan_edits(wheel)
    work.mkdir(parents=True, exist_ok=True)
    times = floor(wheel, edits, work)
    shutil.rmtree(work)
    edited = sum(sizes[e.member] for e in edits)  # type: ignore[attr-defined]
    print(json.dumps({**times, "edits": len(edits), "edited": edited}))


def bench_wheel(wheel: Path, pythons: list[str], work: Path) -> None:
    with zipfile.ZipFile(wheel) as zf:
        sizes = [i.file_size for i in zf.infolist()]
    largest = max(sizes)
    run = subprocess.run(
        [sys.executable, __file__, "--floor", str(wheel), "--work", str(work / "floor")],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    f = json.loads(run.stdout.strip().splitlines()[-1])
    print(f"\n{wheel.name}: {len(sizes)} members, {mb(sum(sizes))} "
          f"({mb(wheel.stat().st_size)} compressed); {f['edits']} edited ({mb(f['edited'])}); "
          f"largest member {mb(largest)}")  # fmt: skip
    print(
        f"  floor              {f['total']:7.2f} s  (copy {f['copy']:.2f}, inflate edited "
        f"{f['inflate']:.2f}, patchelf {f['patchelf']:.2f}, deflate edited {f['deflate']:.2f})"
    )
    limit = largest + MEMORY_MARGIN
    for python in pythons:
        wall, tree, own, kids, cpu = run_repair(python, wheel, work / "out")
        ratio = wall / f["total"]
        met = "met" if ratio <= TARGET_RATIO else "NOT met"
        print(
            f"  {python}\n    repair           {wall:7.2f} s  = {ratio:.2f}x the floor "
            f"(target {TARGET_RATIO}x: {met}); CPU {cpu:.2f} s = {cpu / f['cpu']:.2f}x the "
            f"floor's {f['cpu']:.2f} s"
        )
        print(f"    peak memory      {mb(tree)} with patchelf (repair itself {mb(own)}, "
              f"patchelf {mb(kids)}); target < {mb(limit)}: "
              f"{'met' if tree < limit else 'NOT met'}"
              f"{'' if tree < limit or own >= limit else ' (repair itself: met)'}")  # fmt: skip
    shutil.rmtree(work / "out", ignore_errors=True)


# --------------------------------------------------------------------------- auditwheel

OMP_SOURCE = textwrap.dedent(
    """
    #include <omp.h>
    int total(int n) { long s = 0;
    #pragma omp parallel for reduction(+:s)
      for (int i = 0; i < n; i++) s += i;
      return (int)(s % 1000) + omp_get_max_threads(); }
    """
)


def raw_wheel(work: Path) -> Path:
    """A raw ``linux_x86_64`` wheel with an OpenMP extension compiled here."""
    import base64  # noqa: PLC0415

    work.mkdir(parents=True, exist_ok=True)
    (work / "omp.c").write_text(OMP_SOURCE)
    ext = work / "_omp.so"
    subprocess.run(["gcc", "-shared", "-fPIC", "-O2", "-fopenmp", "-o", str(ext),
                    str(work / "omp.c")], check=True)  # fmt: skip
    members = {
        "ompbench/__init__.py": b"from ._omp import total\n",
        "ompbench/_omp.cpython-311-x86_64-linux-gnu.so": ext.read_bytes(),
        "ompbench-1.0.dist-info/METADATA": b"Metadata-Version: 2.1\nName: ompbench\nVersion: 1.0\n",
        "ompbench-1.0.dist-info/WHEEL": b"Wheel-Version: 1.0\nGenerator: bench\n"
        b"Root-Is-Purelib: false\nTag: cp311-cp311-linux_x86_64\n",
    }
    rows = [
        f"{n},sha256={base64.urlsafe_b64encode(hashlib.sha256(d).digest()).rstrip(b'=').decode()},{len(d)}"
        for n, d in members.items()
    ]
    wheel = work / "ompbench-1.0-cp311-cp311-linux_x86_64.whl"
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as zf:
        for n, d in members.items():
            zf.writestr(n, d)
        zf.writestr(
            "ompbench-1.0.dist-info/RECORD",
            "\n".join([*rows, "ompbench-1.0.dist-info/RECORD,,"]) + "\n",
        )
    return wheel


def bench_auditwheel(pythons: list[str], work: Path, repeat: int) -> None:
    wheel = raw_wheel(work / "raw")
    bindir = Path(sys.executable).parent
    auditwheel = bindir / "auditwheel"
    env = {**os.environ, "PATH": f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}"}
    print(f"\n{wheel.name} (an OpenMP extension compiled here, {wheel.stat().st_size} bytes), "
          f"best of {repeat}:")  # fmt: skip
    best = []
    for _ in range(repeat):
        out = work / "aw"
        shutil.rmtree(out, ignore_errors=True)
        start = time.perf_counter()
        subprocess.run([str(auditwheel), "repair", "-w", str(out), str(wheel)], check=True,
                       capture_output=True, env=env)  # fmt: skip
        best.append(time.perf_counter() - start)
    aw = min(best)
    print(f"  auditwheel repair  {aw:7.3f} s")
    for python in pythons:
        walls = [run_repair(python, wheel, work / "nl")[0] for _ in range(repeat)]
        fastest = min(walls)
        print(f"  nativelib repair   {fastest:7.3f} s  = {fastest / aw:.2f}x auditwheel ({python})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    parser.add_argument("--python", action="append", default=[], metavar="PY",
                        help="another interpreter whose nativelib repair is timed too")  # fmt: skip
    parser.add_argument("--only", default="torch,sklearn,numpy,auditwheel")
    parser.add_argument(
        "--torch", type=Path, help="this torch wheel instead of the newest pip finds"
    )
    parser.add_argument("--repeat", type=int, default=3, help="auditwheel comparison runs")
    parser.add_argument("--floor", type=Path, help=argparse.SUPPRESS)  # the child's job
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.floor:
        floor_child(args.floor, args.work)
        return 0
    pythons = [sys.executable, *args.python]
    only = args.only.split(",")
    print(f"{os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory(prefix="bench-repair-") as tmp:
        for key, project in WHEELS.items():
            if key in only:
                wheel = (
                    args.torch if key == "torch" and args.torch else download(args.cache, project)
                )
                bench_wheel(wheel, pythons, Path(tmp))
        if "auditwheel" in only:
            bench_auditwheel(pythons, Path(tmp), args.repeat)
    return 0


if __name__ == "__main__":
    sys.exit(main())
