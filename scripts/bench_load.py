"""Benchmark: what ``nativelib.load('cxx14', 'gomp')`` costs a process, against bare dlopen.

Builds nativelib-cxx14 and nativelib-gomp (``nativelib build``, Debian bookworm by
default; the download cache makes reruns offline), installs them into a fresh venv, then
runs each variant in fresh processes, interleaved, ``--runs`` times:

- ``load``:     ``import nativelib; nativelib.load('cxx14', 'gomp')``
- ``load+ctypes``: the same after ``import ctypes`` (timed too): what the loader costs a
  process that imports ctypes anyway (numpy does), since the loader itself does not
- ``ctypes-2``: ``import ctypes``, then ``ctypes.CDLL`` of the same two files
  (libstdc++.so.6 and libgomp.so.1 from the prefix) by absolute path
- ``ctypes-4``: the same for all four files the loader opens (libgcc_s, libstdc++,
  libatomic, libgomp)
- ``proc-4``:   the same four files as the loader opens them: ``lib/`` opened once
  (``O_DIRECTORY|O_NOFOLLOW``), each file opened ``O_NOFOLLOW`` in it and fstat'ed, then
  dlopened as ``/proc/self/fd/<lib>/<soname>``: what the no-check-then-use path costs
  over ``ctypes-4`` by itself
- ``import``:   ``import nativelib`` alone
- ``dlopen-4``: the four files dlopened with ``_ctypes.dlopen`` (no ctypes import): the
  floor of what a preload of them costs
- ``pass``:     ``python -c pass`` (whole-process wall time, for scale)
- ``pass+autoload``: the same with ``nativelib autoload enable``'s ``.pth`` file in the
  venv (it preloads the four files at interpreter start from the plan stored in the
  line, through ``_pynativelib``; the file is renamed away for ``pass`` and back for this
  one, interleaved), and the preload's own time as its debug line reports it
  (``NATIVELIB_AUTOLOAD_DEBUG=1``: the checks and the loads, without the import of
  ``_pynativelib``; the bench checks that the line says "from the stored plan"). Target:
  at most 3 ms over ``pass``. Wall time and CPU time (user + system, from ``wait4``:
  steadier where other processes share the CPUs) of each process.
- ``pass+floor``: ``python -c pass`` with a ``.pth`` that only dlopens the same four files
  (``_ctypes.dlopen``, no discovery, no checks): the floor of any preload at start-up.

Each variant times itself inside the process (``time.perf_counter`` around its
statements), so interpreter start-up does not blur the milliseconds. Prints medians
and minimums and the loader's cost over bare dlopen. Targets: at most 2 ms more than
bare dlopen; ``import nativelib`` at most 3 ms, importing nothing third-party (checked
with ``-X importtime``). With ``strace`` on PATH, also the system calls each variant
makes between its first and last statement (``strace -f``, one process).

``--compare DIR`` runs ``load``, ``load+ctypes`` and ``import`` of a second source tree
too (``DIR/src`` on ``PYTHONPATH``, ahead of this tree), and ``pass``/``pass+autoload``
with that tree's own ``.pth`` (written by its ``autoload enable``), interleaved with this one:
before/after figures from one run, e.g. against ``git worktree add /tmp/base <commit>``.

    python scripts/bench_load.py [--runs 40] [--source debian-bookworm] [--compare DIR]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src"

TIMED = {
    "load": "import nativelib; nativelib.load('cxx14', 'gomp')",
    "load+ctypes": "import ctypes; import nativelib; nativelib.load('cxx14', 'gomp')",
    "ctypes-2": "import ctypes; [ctypes.CDLL(LIB + n) for n in ('libstdc++.so.6', 'libgomp.so.1')]",
    "ctypes-4": "import ctypes; [ctypes.CDLL(LIB + n) for n in "
    "('libgcc_s.so.1', 'libstdc++.so.6', 'libatomic.so.1', 'libgomp.so.1')]",
    "proc-4": "import ctypes, os; d = os.open(LIB, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)\n"
    "for n in ('libgcc_s.so.1', 'libstdc++.so.6', 'libatomic.so.1', 'libgomp.so.1'):\n"
    "    f = os.open(n, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=d); os.fstat(f)\n"
    "    ctypes.CDLL(f'/proc/self/fd/{d}/{n}'); os.close(f)",
    "import": "import nativelib",
    "dlopen-4": "import _ctypes, os; [_ctypes.dlopen(LIB + n, os.RTLD_NOW) for n in "
    "('libgcc_s.so.1', 'libstdc++.so.6', 'libatomic.so.1', 'libgomp.so.1')]",
}
#: The variants run against the ``--compare`` tree too.
COMPARED = ("load", "load+ctypes", "import")
#: A path each timed body stats before and after itself: the marks strace counts between.
MARK = "/nativelib-bench-mark"
HEAVY = ("packaging", "resolvelib", "importlib.metadata", "requests", "typing", "ctypes", "json")


def _timed_code(body: str, lib: str) -> str:
    return (
        "import time\nt0 = time.perf_counter()\n"
        f"LIB = {lib!r}\n{body}\n"
        "print((time.perf_counter() - t0) * 1000)\n"
    )


def _syscalls(python: str, body: str, lib: str, env: dict[str, str]) -> int | None:
    """The system calls ``body`` makes (strace -f), between two stats of :data:`MARK`."""
    strace = shutil.which("strace")
    if strace is None:
        return None
    code = f"import os\nLIB = {lib!r}\nos.path.exists({MARK!r})\n{body}\nos.path.exists({MARK!r})\n"
    with tempfile.NamedTemporaryFile("r") as out:
        subprocess.run(
            [strace, "-f", "-qq", "-o", out.name, python, "-c", code],
            check=True, env=env, capture_output=True,
        )  # fmt: skip
        lines = out.read().splitlines()
    marks = [i for i, line in enumerate(lines) if MARK in line]
    return marks[-1] - marks[0] - 1 if len(marks) >= 2 else None


def _start(python: str, env: dict[str, str]) -> tuple[float, float]:
    """Wall and CPU time (user + system, ms) of one ``python -c pass``."""
    start = time.perf_counter()
    child = subprocess.Popen([python, "-c", "pass"], env=env)
    _pid, status, usage = os.wait4(child.pid, 0)
    wall = (time.perf_counter() - start) * 1000
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise SystemExit(f"python -c pass failed: {child.returncode}")
    return wall, (usage.ru_utime + usage.ru_stime) * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--source", default="debian-bookworm")
    parser.add_argument(
        "--compare", type=Path, help="a second source tree (its src/ is put on PYTHONPATH)"
    )
    args = parser.parse_args()
    trees = {"": os.environ.copy()}
    if args.compare is not None:
        other = (args.compare / "src").resolve()
        subprocess.run([sys.executable, "-m", "compileall", "-q", str(other)], check=True)
        trees[f"@{args.compare.name}"] = {**os.environ, "PYTHONPATH": str(other)}
    for env in trees.values():
        env.pop("PYTHONDONTWRITEBYTECODE", None)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        build = [
            sys.executable,
            "-m",
            "nativelib",
            "build",
            "cxx14",
            "gomp",
            "--source",
            args.source,
            "-o",
            str(root / "wh"),
        ]
        subprocess.run(build, check=True, env={**os.environ, "PYTHONPATH": str(SRC)})
        subprocess.run([sys.executable, "-m", "venv", str(root / "venv")], check=True)
        python = str(root / "venv/bin/python")
        site = subprocess.run(
            [python, "-c", "import sysconfig; print(sysconfig.get_path('platlib'))"],
            check=True, capture_output=True, text=True,
        ).stdout.strip()  # fmt: skip
        # Named to come before _nativelib-autoload.pth (site runs them in name order), as
        # setuptools' __editable__.*.pth does: pynativelib is importable when it runs.
        (Path(site) / "__pynativelib-src.pth").write_text(f"{SRC}\n")
        # As pip does at install time: without bytecode (PYTHONDONTWRITEBYTECODE set in
        # the environment, or an edited source) each run would compile the modules anew.
        subprocess.run([sys.executable, "-m", "compileall", "-q", str(SRC)], check=True)
        wheels = sorted(str(p) for p in (root / "wh").glob("*.whl"))
        subprocess.run(
            [python, "-m", "pip", "install", "-q", "--no-index", "--no-deps", *wheels], check=True
        )
        lib = f"{site}/nativelib.prefix/lib/"
        # Each tree's own .pth (its enable writes it), parked under another name while
        # the other variants run.
        pth = Path(site) / "_nativelib-autoload.pth"
        parked = {}
        for number, (tree, env) in enumerate(trees.items()):
            subprocess.run([python, "-m", "nativelib", "autoload", "enable"], check=True, env=env)
            parked[tree] = Path(site) / f"_nativelib-autoload.off{number}"
            pth.rename(parked[tree])
        floor = Path(site) / "_floor.pth"
        floor_line = "import _ctypes, os; " + "; ".join(
            f"_ctypes.dlopen({lib + n!r}, os.RTLD_NOW)"
            for n in ("libgcc_s.so.1", "libstdc++.so.6", "libatomic.so.1", "libgomp.so.1")
        )

        names = [*TIMED, *(f"{n}{t}" for t in trees if t for n in COMPARED)]
        starts = (
            *(
                f"{name}{tree}"
                for tree in trees
                for name in (
                    "pass",
                    "pass+autoload",
                    "pass cpu",
                    "pass+autoload cpu",
                    "autoload (in-process)",
                )
            ),
            "pass+floor",
            "pass+floor cpu",
        )
        samples: dict[str, list[float]] = {name: [] for name in [*names, *starts]}
        for _ in range(args.runs):
            for tree, env in trees.items():
                for name, body in TIMED.items():
                    if tree and name not in COMPARED:
                        continue
                    out = subprocess.run(
                        [python, "-c", _timed_code(body, lib)],
                        check=True,
                        capture_output=True,
                        text=True,
                        env=env,
                    )
                    samples[f"{name}{tree}"].append(float(out.stdout))
            floor.write_text(floor_line + "\n")
            wall, cpu = _start(python, trees[""])
            samples["pass+floor"].append(wall)
            samples["pass+floor cpu"].append(cpu)
            floor.unlink()
            for tree, env in trees.items():
                for name in ("pass", "pass+autoload"):
                    if name == "pass+autoload":
                        parked[tree].rename(pth)
                    wall, cpu = _start(python, env)
                    samples[f"{name}{tree}"].append(wall)
                    samples[f"{name} cpu{tree}"].append(cpu)
                debug = subprocess.run(
                    [python, "-c", "pass"], check=True, capture_output=True, text=True,
                    env={**env, "NATIVELIB_AUTOLOAD_DEBUG": "1"},
                ).stderr  # fmt: skip
                found = re.search(r" in ([0-9.]+) ms", debug)
                if found is None:
                    raise SystemExit(f"no time in the autoload debug line: {debug!r}")
                if not tree and "from the stored plan" not in debug:
                    raise SystemExit(f"the autoload did not load from its stored plan: {debug!r}")
                samples[f"autoload (in-process){tree}"].append(float(found.group(1)))
                pth.rename(parked[tree])

        syscalls = {
            f"{name}{tree}": _syscalls(python, TIMED[name], lib, env)
            for tree, env in trees.items()
            for name in TIMED
            if not tree or name in COMPARED
        }
        importtime = subprocess.run(
            [python, "-X", "importtime", "-c", "import nativelib"], capture_output=True, text=True
        ).stderr
        imported = {line.split("|")[-1].strip() for line in importtime.splitlines() if "|" in line}
        heavy = sorted(h for h in HEAVY if h in imported)

    print(f"python {sys.version.split()[0]}, {args.runs} fresh processes per variant, interleaved")
    if args.compare is not None:
        print(f"@{args.compare.name}: {args.compare.resolve()} (the same variants, that tree)")
    print(f"{'variant':<24}{'median ms':>10}{'min ms':>8}{'syscalls':>9}  what")
    whats = {
        "pass": "whole process: python -c pass (wall time)",
        "pass+autoload": "the same, with the autoload .pth (wall time)",
        "pass cpu": "python -c pass (CPU time, user + system)",
        "pass+autoload cpu": "the same, with the autoload .pth (CPU time)",
        "pass+floor": "python -c pass, a .pth dlopening the four files (wall time)",
        "pass+floor cpu": "the same (CPU time)",
        "autoload (in-process)": "the preload, as NATIVELIB_AUTOLOAD_DEBUG=1 reports it",
    }
    for name in [*names, *starts]:
        base = name.split("@")[0]
        what = TIMED.get(base, whats.get(base, "")).split("\n")[0]
        median, least = statistics.median(samples[name]), min(samples[name])
        calls = syscalls.get(name)
        count = "-" if calls is None else str(calls)
        print(f"{name:<24}{median:>10.2f}{least:>8.2f}{count:>9}  {what}")
    # Medians, and minimums (steadier where other processes share the CPUs: compare the
    # two; a wide gap means the machine was busy).
    for stat_name, pick in (("median", statistics.median), ("min", min)):
        med = {k: pick(v) for k, v in samples.items()}
        print(f"-- by {stat_name}:")
        for tree in trees:
            label = f" ({tree[1:]})" if tree else ""
            over2 = med[f"load{tree}"] - med["ctypes-2"]
            over4 = med[f"load{tree}"] - med["ctypes-4"]
            over_c = med[f"load+ctypes{tree}"] - med["ctypes-2"]
            print(
                f"loader{label} over bare dlopen of the same two files: {over2:+.2f} ms (<= 2 ms)"
            )
            print(f"loader{label} over bare dlopen of the same four files: {over4:+.2f} ms")
            print(f"loader{label} with ctypes imported too, over the two files: {over_c:+.2f} ms")
            print(f"import nativelib{label}: {med[f'import{tree}']:.2f} ms (target <= 3 ms)")
        floor_cost = med["pass+floor cpu"] - med["pass cpu"]
        print(f"the floor (a .pth dlopening the four files) over without: {floor_cost:+.2f} ms CPU")
        for tree in trees:
            label = f" ({tree[1:]})" if tree else ""
            start_over = med[f"pass+autoload{tree}"] - med[f"pass{tree}"]
            cpu_over = med[f"pass+autoload cpu{tree}"] - med[f"pass cpu{tree}"]
            print(f"interpreter start with autoload{label} over without: ", end="")
            print(f"{start_over:+.2f} ms wall, {cpu_over:+.2f} ms CPU (<= 3 ms)")
            over_floor = med[f"pass+autoload cpu{tree}"] - med["pass+floor cpu"]
            print(f"interpreter start with autoload{label} over the floor: ", end="")
            print(f"{over_floor:+.2f} ms CPU")
            ratio = cpu_over / floor_cost if floor_cost > 0 else float("nan")
            whole = med[f"pass+autoload cpu{tree}"] / med[f"pass cpu{tree}"]
            print(
                f"ratios{label}: autoload's start-up cost / the floor's: {ratio:.2f}x; "
                f"python -c pass with autoload / without: {whole:.3f}x (CPU)"
            )
            in_process = med[f"autoload (in-process){tree}"] - med["dlopen-4"]
            print(
                f"the preload{label} in-process over a bare dlopen of the four files: "
                f"{in_process:+.2f} ms"
            )
        proc = med["proc-4"] - med["ctypes-4"]
        print(f"dlopen through /proc/self/fd (open, fstat, dlopen) over ctypes-4: {proc:+.2f} ms")
    print(f"heavy modules imported by import nativelib: {heavy or 'none'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
