"""Benchmark ``nativelib.elf.read_elf`` against pyelftools and ``readelf``.

What it compares, in one process and one run, over the same list of files:

* **nativelib** -- ``read_elf(path)``: soname, DT_NEEDED, DT_RPATH, DT_RUNPATH, version
  needs and version definitions (plus the interpreter), read from the program headers
  and the dynamic segment. Best of ``--repeat`` passes, since one pass is short.
* **pyelftools** -- the same facts the way a pyelftools user gets them: ``ELFFile``,
  ``DynamicSection.iter_tags()`` (DT_NEEDED, DT_SONAME, DT_RPATH, DT_RUNPATH) and
  ``GNUVerNeedSection`` / ``GNUVerDefSection.iter_versions()`` with every auxiliary
  entry iterated. Once per file (outside the timing) its facts are compared with ours;
  every mismatch is counted and printed.
* **readelf** -- ``readelf -d -V --wide FILE`` as one subprocess per file, its output
  captured: what a shell script would do. Its output is parsed outside the timing and
  cross-checked against our facts too. ``readelf (batched)`` is one ``readelf`` call
  per ``--batch`` files, reported separately (no per-file times, so no size buckets).

Corpora: every ELF file (regular file starting with ``\\x7fELF``, symlinks resolved,
each real path once) under each ``--dir`` (default ``/usr/lib/x86_64-linux-gnu``) and
under ``--venv`` (default ``/tmp/bench-torch-venv``, a venv with ``torch==2.13.0``;
create it with ``python3 -m venv /tmp/bench-torch-venv &&
/tmp/bench-torch-venv/bin/pip install torch==2.13.0``). A file found in an earlier
corpus is not counted again in a later one. Every file is read once first to warm the
page cache, so all readers compete on equal (warm) terms.

Whole processes: ``nativelib inspect --json DIR...`` (the console script next to this
interpreter, else ``python -m nativelib``) against ``scripts/pyelftools_inspect.py DIR...``
(the same walk, reads and JSON document written with pyelftools), each as a fresh
process over the ``--dir`` corpora, stdout to a file, best of ``--process-repeat``
(pyelftools: best of ``--peer-repeat``). Both sides run from compiled bytecode
(``compileall`` first: ``PYTHONDONTWRITEBYTECODE`` would otherwise make every run of
ours compile its modules). Outside the timing, the two documents are compared file
by file. Targets, printed at the end of one run: whole process >= 10x the pyelftools
script, in-process ``read_elf`` >= 50x pyelftools.

For the venv, the script also times ``nativelib.scan.scan_paths([site_packages])`` --
finding the ELF files (walk + magic check) and parsing them -- against the target "the
whole torch venv read in under 0.3 s", and ``read_elf`` alone over the files it found.

Run (from the repository root)::

    .venv/bin/python scripts/bench_elf.py
    .venv/bin/python scripts/bench_elf.py --repeat 7 --json /tmp/bench_elf.json
    .venv/bin/python scripts/bench_elf.py --dir /usr/lib/x86_64-linux-gnu --venv /tmp/v

Times are ``time.perf_counter`` wall times. Needs ``pyelftools`` (the ``test`` extra)
and binutils' ``readelf`` on ``PATH``.
"""

from __future__ import annotations

import argparse
import compileall
import glob
import json
import os
import platform
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import elftools
from elftools import __version__ as pyelftools_version
from elftools.elf.dynamic import DynamicSection, DynamicSegment
from elftools.elf.elffile import ELFFile
from elftools.elf.gnuversions import GNUVerDefSection, GNUVerNeedSection

from nativelib.elf import ELF_MAGIC, ElfInfo, read_elf
from nativelib.scan import scan_paths

DEFAULT_DIRS = ["/usr/lib/x86_64-linux-gnu"]
DEFAULT_VENV = "/tmp/bench-torch-venv"
SCRIPTS = os.path.dirname(os.path.abspath(__file__))
PYELFTOOLS_SCRIPT = os.path.join(SCRIPTS, "pyelftools_inspect.py")
SRC = os.path.join(os.path.dirname(SCRIPTS), "src")
PROCESS_TARGET = 10.0
IN_PROCESS_TARGET = 50.0
SLOW_FILE_S = 60.0
VER_FLG_BASE = 0x1
VER_FLG_WEAK = 0x2

#: (label, lower bound inclusive, upper bound exclusive), in bytes.
BUCKETS: list[tuple[str, int, float]] = [
    ("<100 kB", 0, 100_000),
    ("100 kB-1 MB", 100_000, 1_000_000),
    ("1-10 MB", 1_000_000, 10_000_000),
    ("10-100 MB", 10_000_000, 100_000_000),
    (">=100 MB", 100_000_000, float("inf")),
]

#: The facts every reader must agree on:
#: (soname, needed, rpath, runpath, version needs, version definitions).
#: Version needs are ((file, ((node, weak), ...)), ...); definitions exclude the BASE one.
Facts = tuple[
    str | None,
    tuple[str, ...],
    tuple[str, ...],
    tuple[str, ...],
    tuple[tuple[str, tuple[tuple[str, bool], ...]], ...],
    tuple[str, ...],
]
FACT_NAMES = ("soname", "needed", "rpath", "runpath", "version_needs", "version_definitions")


@dataclass
class ElfFile:
    path: str  # real path
    size: int
    corpus: str


@dataclass
class Corpus:
    label: str
    roots: list[str]
    files: list[ElfFile] = field(default_factory=list)
    duplicates_skipped: int = 0


@dataclass
class Timing:
    """Per-file seconds of one reader (from its fastest pass) and its failures."""

    reader: str
    passes: int
    per_file: dict[str, float] = field(default_factory=dict)
    pass_totals: list[float] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def total(self) -> float:
        return min(self.pass_totals) if self.pass_totals else 0.0


# --------------------------------------------------------------------------- corpus


def _is_elf(path: str) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(4) == ELF_MAGIC
    except OSError:
        return False


def find_elf_files(roots: Sequence[str]) -> Iterator[tuple[str, int]]:
    """(real path, size) of every regular ELF file under ``roots``, each real path once."""
    seen: set[str] = set()
    for root in roots:
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            for name in sorted(filenames):
                full = os.path.join(dirpath, name)
                try:
                    st = os.stat(full)  # follows symlinks; dangling ones are skipped
                except OSError:
                    continue
                if not stat.S_ISREG(st.st_mode) or st.st_size < 4:
                    continue
                real = os.path.realpath(full)
                if real in seen:
                    continue
                seen.add(real)
                if _is_elf(real):
                    yield real, st.st_size


def build_corpora(dirs: Sequence[str], venv: str | None) -> list[Corpus]:
    corpora = [Corpus(f"dir:{d}", [d]) for d in dirs]
    if venv:
        corpora.append(Corpus(f"venv:{venv}", [venv]))
    taken: set[str] = set()
    for corpus in corpora:
        for real, size in find_elf_files(corpus.roots):
            if real in taken:
                corpus.duplicates_skipped += 1
                continue
            taken.add(real)
            corpus.files.append(ElfFile(real, size, corpus.label))
    return corpora


def warm_page_cache(files: Sequence[ElfFile]) -> tuple[int, float]:
    """Read every file once, whole; returns (bytes read, seconds)."""
    total = 0
    start = time.perf_counter()
    for f in files:
        with open(f.path, "rb", buffering=0) as fh:
            while chunk := fh.read(1 << 20):
                total += len(chunk)
    return total, time.perf_counter() - start


def site_packages(venv: str) -> str:
    found = sorted(glob.glob(os.path.join(venv, "lib", "python*", "site-packages")))
    if not found:
        raise SystemExit(f"no lib/python*/site-packages under {venv}")
    return found[0]


# --------------------------------------------------------------------------- readers


def facts_from_info(info: ElfInfo) -> Facts:
    return (
        info.soname,
        info.needed,
        info.rpath,
        info.runpath,
        tuple(
            (req.file, tuple((v.name, v.weak) for v in req.versions))
            for req in info.version_requirements
        ),
        info.version_definitions,
    )


def ours(path: str) -> ElfInfo:
    return read_elf(path)


def pyelftools_facts(path: str) -> Facts:
    """DT_NEEDED/SONAME/RPATH/RUNPATH and GNU version needs/definitions via pyelftools."""
    soname: str | None = None
    needed: list[str] = []
    rpaths: list[str] = []
    runpaths: list[str] = []
    needs: list[tuple[str, tuple[tuple[str, bool], ...]]] = []
    defs: list[str] = []
    with open(path, "rb") as stream:
        elf = ELFFile(stream)
        dynamic: Any = None
        for section in elf.iter_sections():
            if isinstance(section, DynamicSection) and dynamic is None:
                dynamic = section
            elif isinstance(section, GNUVerNeedSection):
                for verneed, vernaux_iter in section.iter_versions():
                    nodes = tuple(
                        (aux.name, bool(aux["vna_flags"] & VER_FLG_WEAK)) for aux in vernaux_iter
                    )
                    needs.append((str(verneed.name), nodes))
            elif isinstance(section, GNUVerDefSection):
                for verdef, verdaux_iter in section.iter_versions():
                    names = [aux.name for aux in verdaux_iter]
                    if not verdef["vd_flags"] & VER_FLG_BASE:
                        defs.append(names[0])
        if dynamic is None:  # no section headers (stripped): fall back to PT_DYNAMIC
            for segment in elf.iter_segments():
                if isinstance(segment, DynamicSegment):
                    dynamic = segment
                    break
        if dynamic is not None:
            for tag in dynamic.iter_tags():
                kind = tag.entry.d_tag
                if kind == "DT_NEEDED":
                    needed.append(tag.needed)
                elif kind == "DT_SONAME":
                    soname = tag.soname
                elif kind == "DT_RPATH":
                    rpaths.append(tag.rpath)
                elif kind == "DT_RUNPATH":
                    runpaths.append(tag.runpath)
    return (
        soname,
        tuple(needed),
        tuple(":".join(rpaths).split(":")) if rpaths else (),
        tuple(":".join(runpaths).split(":")) if runpaths else (),
        tuple(needs),
        tuple(defs),
    )


READELF_CMD = ["readelf", "-d", "-V", "--wide"]


def readelf_one(path: str) -> bytes:
    proc = subprocess.run([*READELF_CMD, path], capture_output=True, check=False)
    if proc.returncode != 0 and not proc.stdout:
        raise RuntimeError(proc.stderr.decode(errors="replace").strip() or "readelf failed")
    return proc.stdout


_RE_DYN = re.compile(
    rb"\((NEEDED|SONAME|RPATH|RUNPATH)\)\s+"
    rb"(?:Shared library|Library soname|Library rpath|Library runpath): \[(.*)\]$"
)
_RE_VN_FILE = re.compile(rb"^\s+0x[0-9a-f]+: Version: \d+\s+File: (.*?)\s+Cnt: \d+$")
_RE_VN_FILE0 = re.compile(rb"^\s+0+: Version: \d+\s+File: (.*?)\s+Cnt: \d+$")
_RE_VN_AUX = re.compile(rb"^\s+0x[0-9a-f]+:\s+Name: (.*?)\s+Flags: (.*?)\s+Version: \d+$")
_RE_VD = re.compile(
    rb"^\s+(?:0x)?[0-9a-f]+: Rev: \d+\s+Flags: (.*?)\s+Index: \d+\s+Cnt: \d+\s+Name: (.*)$"
)


def parse_readelf(out: bytes) -> Facts:
    """The facts in ``readelf -d -V --wide`` output for one file (for the cross-check)."""
    soname: str | None = None
    needed: list[str] = []
    rpaths: list[str] = []
    runpaths: list[str] = []
    needs: list[tuple[str, list[tuple[str, bool]]]] = []
    defs: list[str] = []
    section = ""
    for line in out.splitlines():
        if line.startswith(b"Version needs section"):
            section = "needs"
            continue
        if line.startswith(b"Version definition section"):
            section = "defs"
            continue
        if line.startswith((b"Version symbols section", b"Dynamic section")):
            section = "other"
        m = _RE_DYN.search(line)
        if m:
            value = m.group(2).decode("utf-8", "backslashreplace")
            kind = m.group(1)
            if kind == b"NEEDED":
                needed.append(value)
            elif kind == b"SONAME":
                soname = value
            elif kind == b"RPATH":
                rpaths.append(value)
            else:
                runpaths.append(value)
            continue
        if section == "needs":
            mf = _RE_VN_FILE.match(line) or _RE_VN_FILE0.match(line)
            if mf:
                needs.append((mf.group(1).decode("utf-8", "backslashreplace"), []))
                continue
            ma = _RE_VN_AUX.match(line)
            if ma and needs:
                weak = b"WEAK" in ma.group(2)
                needs[-1][1].append((ma.group(1).decode("utf-8", "backslashreplace"), weak))
        elif section == "defs":
            md = _RE_VD.match(line)
            if md and b"BASE" not in md.group(1):
                defs.append(md.group(2).decode("utf-8", "backslashreplace"))
    return (
        soname,
        tuple(needed),
        tuple(":".join(rpaths).split(":")) if rpaths else (),
        tuple(":".join(runpaths).split(":")) if runpaths else (),
        tuple((f, tuple(n)) for f, n in needs),
        tuple(defs),
    )


# --------------------------------------------------------------------------- timing


def time_reader(
    name: str, files: Sequence[ElfFile], func: Callable[[str], object], passes: int
) -> tuple[Timing, dict[str, object]]:
    """Run ``func`` over ``files`` ``passes`` times; keep the per-file times of the
    fastest pass. Returns the timing and the results of the last pass."""
    timing = Timing(name, passes)
    results: dict[str, object] = {}
    best: dict[str, float] = {}
    clock = time.perf_counter
    for _ in range(passes):
        per_file: dict[str, float] = {}
        errors: dict[str, str] = {}
        results = {}
        pass_start = clock()
        for f in files:
            t0 = clock()
            try:
                results[f.path] = func(f.path)
            except Exception as e:  # a peer's failure is data, not a crash
                errors[f.path] = f"{type(e).__name__}: {e}"
            per_file[f.path] = clock() - t0
        total = clock() - pass_start
        if not timing.pass_totals or total < min(timing.pass_totals):
            best = per_file
        timing.pass_totals.append(total)
        timing.errors = errors
    timing.per_file = best
    return timing, results


def time_readelf_batched(files: Sequence[ElfFile], batch: int) -> tuple[float, int]:
    """Seconds for ``readelf -d -V --wide`` over ``files``, ``batch`` files per call."""
    calls = 0
    start = time.perf_counter()
    for i in range(0, len(files), batch):
        subprocess.run(
            [*READELF_CMD, *(f.path for f in files[i : i + batch])],
            capture_output=True,
            check=False,
        )
        calls += 1
    return time.perf_counter() - start, calls


def diff_facts(a: Facts, b: Facts) -> list[str]:
    return [
        f"{name}: ours={x!r} peer={y!r}"
        for name, x, y in zip(FACT_NAMES, a, b, strict=True)
        if x != y
    ]


# --------------------------------------------------------------------------- processes


def inspect_command() -> list[str]:
    """``nativelib inspect --json``: the console script beside this interpreter if there
    is one (what a user runs), else ``python -m nativelib``."""
    script = os.path.join(os.path.dirname(sys.executable), "nativelib")
    if os.access(script, os.X_OK):
        return [script, "inspect", "--json"]
    return [sys.executable, "-m", "nativelib", "inspect", "--json"]


def time_process(cmd: Sequence[str], passes: int, out_path: str) -> list[float]:
    """Wall seconds of ``passes`` runs of ``cmd`` (stdout to ``out_path``, stderr
    dropped); exit status 0 or 1 (1: some files could not be parsed) is accepted."""
    totals = []
    for _ in range(passes):
        with open(out_path, "wb") as out:
            start = time.perf_counter()
            proc = subprocess.run(cmd, stdout=out, stderr=subprocess.DEVNULL, check=False)
            totals.append(time.perf_counter() - start)
        if proc.returncode not in (0, 1):
            raise SystemExit(f"{' '.join(cmd)} exited with {proc.returncode}")
    return totals


def compare_documents(ours_path: str, peer_path: str) -> tuple[int, int, list[str]]:
    """(files in ours, files in the peer's, differences) of two inspect documents."""
    with open(ours_path, encoding="utf-8") as f:
        mine = json.load(f)["files"]
    with open(peer_path, encoding="utf-8") as f:
        theirs = json.load(f)["files"]
    diffs = []
    if [d["path"] for d in mine] != [d["path"] for d in theirs]:
        diffs.append("the lists of files differ (names or order)")
    by_path = {d["path"]: d for d in theirs}
    for d in mine:
        other = by_path.get(d["path"])
        if other is not None and other != d and d["error"] is None:
            diffs.append(f"{d['path']}: facts differ")
    return len(mine), len(theirs), diffs


def compile_bytecode() -> None:
    """Both sides from bytecode, as a pip install leaves them."""
    for tree in (SRC, os.path.dirname(elftools.__file__)):
        compileall.compile_dir(tree, quiet=1)


# --------------------------------------------------------------------------- report


def fmt_bytes(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"


def ratio(a: float, b: float) -> str:
    return f"{a / b:,.0f}x" if b > 0 else "n/a"


def summarize(
    files: Sequence[ElfFile], timings: Sequence[Timing], batched: float | None
) -> dict[str, Any]:
    paths = [f.path for f in files]
    n = len(paths)
    ours_total = sum(timings[0].per_file.get(p, 0.0) for p in paths)
    readers: dict[str, Any] = {}
    for t in timings:
        total = sum(t.per_file.get(p, 0.0) for p in paths)
        readers[t.reader] = {
            "passes": t.passes,
            "total_s": total,
            "per_file_ms": 1000 * total / n if n else 0.0,
            "ratio_vs_ours": total / ours_total if ours_total else None,
            "errors": sum(1 for p in paths if p in t.errors),
        }
    if batched is not None:
        readers["readelf (batched)"] = {
            "passes": 1,
            "total_s": batched,
            "per_file_ms": 1000 * batched / n if n else 0.0,
            "ratio_vs_ours": batched / ours_total if ours_total else None,
            "errors": None,
        }
    buckets = []
    for label, lo, hi in BUCKETS:
        inside = [f.path for f in files if lo <= f.size < hi]
        row: dict[str, Any] = {
            "bucket": label,
            "files": len(inside),
            "bytes": sum(f.size for f in files if lo <= f.size < hi),
        }
        b_ours = sum(timings[0].per_file.get(p, 0.0) for p in inside)
        for t in timings:
            total = sum(t.per_file.get(p, 0.0) for p in inside)
            row[t.reader] = {
                "total_s": total,
                "per_file_ms": 1000 * total / len(inside) if inside else None,
                "ratio_vs_ours": total / b_ours if b_ours else None,
            }
        buckets.append(row)
    return {
        "files": n,
        "bytes": sum(f.size for f in files),
        "readers": readers,
        "buckets": buckets,
    }


def print_summary(title: str, summary: dict[str, Any], reader_names: Sequence[str]) -> None:
    print(f"\n== {title}: {summary['files']} files, {fmt_bytes(summary['bytes'])}")
    print(f"  {'reader':<34} {'total s':>10} {'per file ms':>12} {'vs ours':>9} {'errors':>7}")
    for name, r in summary["readers"].items():
        rv = r["ratio_vs_ours"]
        print(
            f"  {name:<34} {r['total_s']:>10.4f} {r['per_file_ms']:>12.4f} "
            f"{(f'{rv:,.1f}x' if rv is not None else 'n/a'):>9} "
            f"{('-' if r['errors'] is None else r['errors']):>7}"
        )
    head = f"  {'size bucket':<12} {'files':>5}"
    for name in reader_names:
        short = name.split(" ")[0]
        head += f" {short + ' ms/f':>17}"
        if name != reader_names[0]:
            head += f" {'ratio':>7}"
    print(head)
    for row in summary["buckets"]:
        line = f"  {row['bucket']:<12} {row['files']:>5}"
        for name in reader_names:
            cell = row[name]
            ms = cell["per_file_ms"]
            line += f" {('-' if ms is None else f'{ms:.4f}'):>17}"
            if name != reader_names[0]:
                rv = cell["ratio_vs_ours"]
                line += f" {('-' if rv is None else f'{rv:,.0f}x'):>7}"
        print(line)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument(
        "--dir", action="append", dest="dirs", metavar="PATH",
        help=f"directory to take ELF files from, repeatable (default: {DEFAULT_DIRS[0]})",
    )  # fmt: skip
    ap.add_argument(
        "--venv", default=DEFAULT_VENV, metavar="PATH",
        help=f"a venv with torch installed; '' to skip (default: {DEFAULT_VENV})",
    )  # fmt: skip
    ap.add_argument("--repeat", type=int, default=5, help="passes for nativelib, best kept")
    ap.add_argument("--peer-repeat", type=int, default=1, help="passes for the peers")
    ap.add_argument("--batch", type=int, default=64, help="files per batched readelf call")
    ap.add_argument("--no-readelf", action="store_true", help="skip the readelf peer")
    ap.add_argument(
        "--process-repeat", type=int, default=5,
        help="runs of the nativelib inspect process, best kept (pyelftools: --peer-repeat)",
    )  # fmt: skip
    ap.add_argument("--no-process", action="store_true", help="skip the whole-process comparison")
    ap.add_argument("--json", metavar="FILE", help="write the raw figures here")
    args = ap.parse_args(argv)
    dirs = args.dirs or DEFAULT_DIRS
    venv = args.venv or None
    if venv and not os.path.isdir(venv):
        raise SystemExit(
            f"{venv} does not exist: python3 -m venv {venv} && {venv}/bin/pip install "
            "torch==2.13.0 (or pass --venv '')"
        )
    use_readelf = not args.no_readelf and shutil.which("readelf") is not None
    readelf_version = ""
    if use_readelf:
        readelf_version = subprocess.run(
            ["readelf", "--version"], capture_output=True, text=True, check=False
        ).stdout.splitlines()[0]

    print("ELF reader benchmark: nativelib.elf.read_elf vs pyelftools vs readelf")
    print(
        f"python {platform.python_version()}, pyelftools {pyelftools_version}, "
        f"{readelf_version or 'readelf: not used'}, {os.cpu_count()} CPUs, {platform.platform()}"
    )
    t0 = time.perf_counter()
    corpora = build_corpora(dirs, venv)
    find_s = time.perf_counter() - t0
    files = [f for c in corpora for f in c.files]
    print(f"found {len(files)} ELF files in {find_s:.2f} s (benchmark's own walk)")
    for c in corpora:
        dup = (
            f", {c.duplicates_skipped} already in an earlier corpus" if c.duplicates_skipped else ""
        )
        print(f"  {c.label}: {len(c.files)} files, {fmt_bytes(sum(f.size for f in c.files))}{dup}")
    warmed, warm_s = warm_page_cache(files)
    print(
        f"page cache warmed: every file read once ({fmt_bytes(warmed)} in {warm_s:.2f} s); "
        "all timings below are warm-cache"
    )
    print(f"passes: nativelib best of {args.repeat}, pyelftools/readelf best of {args.peer_repeat}")

    # --- nativelib
    t_ours, ours_results = time_reader("nativelib", files, ours, args.repeat)
    # --- pyelftools
    t_pyelf, pyelf_results = time_reader("pyelftools", files, pyelftools_facts, args.peer_repeat)
    timings = [t_ours, t_pyelf]
    # --- readelf
    readelf_results: dict[str, object] = {}
    batched: dict[str, tuple[float, int]] = {}
    if use_readelf:
        t_readelf, readelf_results = time_reader(
            "readelf -d -V (1 call/file)", files, readelf_one, args.peer_repeat
        )
        timings.append(t_readelf)
        for c in corpora:
            batched[c.label] = time_readelf_batched(c.files, args.batch)
    names = [t.reader for t in timings]

    # --- correctness: facts per file
    mismatches: dict[str, dict[str, list[str]]] = {"pyelftools": {}, "readelf": {}}
    for f in files:
        info = ours_results.get(f.path)
        if not isinstance(info, ElfInfo):
            continue
        mine = facts_from_info(info)
        theirs = pyelf_results.get(f.path)
        if theirs is not None:
            d = diff_facts(mine, theirs)  # type: ignore[arg-type]
            if d:
                mismatches["pyelftools"][f.path] = d
        out = readelf_results.get(f.path)
        if isinstance(out, bytes):
            d = diff_facts(mine, parse_readelf(out))
            if d:
                mismatches["readelf"][f.path] = d

    print("\nErrors (a file a reader could not read):")
    any_err = False
    for t in timings:
        for path, err in sorted(t.errors.items()):
            any_err = True
            print(f"  {t.reader}: {path}: {err}")
    if not any_err:
        print("  none")
    print("\nFact check (soname, needed, rpath, runpath, version needs, version definitions):")
    for peer, found in mismatches.items():
        if peer == "readelf" and not use_readelf:
            continue
        checked = sum(
            1
            for f in files
            if isinstance(ours_results.get(f.path), ElfInfo)
            and f.path in (pyelf_results if peer == "pyelftools" else readelf_results)
        )
        print(f"  vs {peer}: {len(found)} mismatching files of {checked} compared")
        for path, diffs in sorted(found.items()):
            print(f"    {path}")
            for line in diffs:
                print(f"      {line}")
    slow = [(p, s) for t in timings[1:] for p, s in t.per_file.items() if s > SLOW_FILE_S]
    for path, secs in slow:
        print(f"  NOTE: a peer took {secs:.1f} s (> {SLOW_FILE_S:.0f} s) on {path}")
    if not slow:
        print(f"  no peer took more than {SLOW_FILE_S:.0f} s on any single file")
    for t in timings:
        if t.per_file:
            path, secs = max(t.per_file.items(), key=lambda kv: kv[1])
            print(f"  slowest file for {t.reader}: {secs:.4f} s, {path}")

    # --- summaries
    report: dict[str, Any] = {
        "environment": {
            "python": platform.python_version(),
            "pyelftools": pyelftools_version,
            "readelf": readelf_version,
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "repeat": args.repeat,
            "peer_repeat": args.peer_repeat,
            "batch": args.batch,
            "page_cache_warmed": True,
        },
        "corpora": {},
    }
    print("\nResults (seconds are wall time, time.perf_counter; ratio = peer time / ours)")
    for c in corpora:
        s = summarize(c.files, timings, batched[c.label][0] if c.label in batched else None)
        report["corpora"][c.label] = s
        print_summary(c.label, s, names)
    total_batched = sum(b[0] for b in batched.values()) if batched else None
    overall = summarize(files, timings, total_batched)
    report["overall"] = overall
    print_summary("overall", overall, names)
    if batched:
        calls = sum(b[1] for b in batched.values())
        print(f"  (readelf batched: {args.batch} files per call, {calls} calls in all)")

    # --- whole processes: nativelib inspect --json vs the pyelftools script
    process: dict[str, Any] | None = None
    if not args.no_process:
        compile_bytecode()
        ours_cmd = [*inspect_command(), *dirs]
        peer_cmd = [sys.executable, PYELFTOOLS_SCRIPT, *dirs]
        with tempfile.TemporaryDirectory() as tmp:
            ours_out, peer_out = os.path.join(tmp, "ours.json"), os.path.join(tmp, "peer.json")
            ours_runs = time_process(ours_cmd, args.process_repeat, ours_out)
            peer_runs = time_process(peer_cmd, args.peer_repeat, peer_out)
            n_ours, n_peer, doc_diffs = compare_documents(ours_out, peer_out)
        process = {
            "ours_command": ours_cmd,
            "peer_command": peer_cmd,
            "ours_s": min(ours_runs),
            "ours_runs_s": ours_runs,
            "peer_s": min(peer_runs),
            "peer_runs_s": peer_runs,
            "ratio": min(peer_runs) / min(ours_runs),
            "files": n_ours,
            "peer_files": n_peer,
            "document_differences": doc_diffs,
        }
        report["process"] = process
        print(f"\n== whole processes over {' '.join(dirs)} (wall time, a fresh process each run)")
        print(f"  {' '.join(ours_cmd[:3])} ...: {min(ours_runs):.4f} s (best of {len(ours_runs)}: "
              f"{', '.join(f'{t:.3f}' for t in ours_runs)})")  # fmt: skip
        print(f"  pyelftools_inspect.py ...: {min(peer_runs):.4f} s (best of {len(peer_runs)})")
        print(
            f"  documents: {n_ours} files (nativelib), {n_peer} (pyelftools), "
            f"{len(doc_diffs)} differences"
        )
        for line in doc_diffs[:20]:
            print(f"    {line}")

    # --- the venv: finding + reading, against the 0.3 s target
    if venv:
        sp = site_packages(venv)
        scan_totals: list[float] = []
        found_paths: list[str] = []
        scan_errors = 0
        for _ in range(args.repeat):
            start = time.perf_counter()
            results = list(scan_paths([sp]))
            scan_totals.append(time.perf_counter() - start)
            found_paths = [r.path for r in results if r.ok]
            scan_errors = sum(1 for r in results if not r.ok)
        found_files = [ElfFile(p, os.path.getsize(p), "scan") for p in found_paths]
        t_parse, _ = time_reader("nativelib parse-only", found_files, ours, args.repeat)
        scan_best = min(scan_totals)
        target = 0.3
        report["venv_scan"] = {
            "site_packages": sp,
            "scan_paths_s": scan_best,
            "scan_paths_passes_s": scan_totals,
            "elf_files_found": len(found_paths),
            "scan_errors": scan_errors,
            "bytes": sum(f.size for f in found_files),
            "parse_only_s": t_parse.total,
            "find_overhead_s": scan_best - t_parse.total,
            "target_s": target,
            "meets_target": scan_best < target,
        }
        print(f"\n== torch venv: scan_paths([{sp}])  (best of {args.repeat})")
        print(
            f"  found + read {len(found_paths)} ELF files ({scan_errors} errors), "
            f"{fmt_bytes(sum(f.size for f in found_files))}"
        )
        print(f"  scan_paths total (walk + magic check + parse): {scan_best:.4f} s")
        print(f"  read_elf parse-only over those files:           {t_parse.total:.4f} s")
        find_cost = scan_best - t_parse.total
        print(f"  so finding the files costs:                     {find_cost:.4f} s")
        verdict = "MET" if scan_best < target else "MISSED"
        print(f"  target: whole torch venv read in < {target} s -> {verdict}")

    o = overall["readers"]
    pyelf_ratio = o["pyelftools"]["ratio_vs_ours"]
    print()
    if process is not None:
        ratio_p = process["ratio"]
        print(
            f"target: whole process, nativelib inspect --json >= {PROCESS_TARGET:.0f}x faster "
            f"than the pyelftools script -> {ratio_p:,.1f}x "
            f"({process['ours_s']:.3f} s vs {process['peer_s']:.3f} s), "
            f"{'MET' if ratio_p >= PROCESS_TARGET else 'MISSED'}"
        )
    if pyelf_ratio is not None:
        verdict = "MET" if pyelf_ratio >= IN_PROCESS_TARGET else "MISSED"
        print(
            f"target: in-process, read_elf >= {IN_PROCESS_TARGET:.0f}x faster than pyelftools "
            f"-> {pyelf_ratio:,.1f}x ({o['nativelib']['total_s']:.4f} s vs "
            f"{o['pyelftools']['total_s']:.4f} s), {verdict}"
        )

    if args.json:
        report["files"] = [
            {
                "path": f.path,
                "corpus": f.corpus,
                "size": f.size,
                **{t.reader: t.per_file.get(f.path) for t in timings},
                "errors": {t.reader: t.errors[f.path] for t in timings if f.path in t.errors},
            }
            for f in files
        ]
        report["mismatches"] = mismatches
        report["pass_totals"] = {t.reader: t.pass_totals for t in timings}
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(report, fh, indent=2)
        print(f"raw figures written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
