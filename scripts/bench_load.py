"""Benchmark: what ``nativelib.load('cxx14', 'gomp')`` costs a process, against bare dlopen.

Builds nativelib-cxx14 and nativelib-gomp (``nativelib build``, Debian bookworm by
default; the download cache makes reruns offline), installs them into a fresh venv, then
runs each variant in fresh processes, interleaved, ``--runs`` times:

- ``load``:     ``import nativelib; nativelib.load('cxx14', 'gomp')``
- ``ctypes-2``: ``import ctypes``, then ``ctypes.CDLL`` of the same two files
  (libstdc++.so.6 and libgomp.so.1 from the prefix) by absolute path
- ``ctypes-4``: the same for all four files the loader opens (libgcc_s, libstdc++,
  libatomic, libgomp)
- ``import``:   ``import nativelib`` alone
- ``pass``:     ``python -c pass`` (whole-process wall time, for scale)

Each variant times itself inside the process (``time.perf_counter`` around its
statements), so interpreter start-up does not blur the milliseconds. Prints medians
and minimums and the loader's cost over bare dlopen. Targets: at most 2 ms more than
bare dlopen; ``import nativelib`` at most 3 ms, importing nothing third-party (checked
with ``-X importtime``).

    python scripts/bench_load.py [--runs 40] [--source debian-bookworm]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src"

TIMED = {
    "load": "import nativelib; nativelib.load('cxx14', 'gomp')",
    "ctypes-2": "import ctypes; [ctypes.CDLL(LIB + n) for n in ('libstdc++.so.6', 'libgomp.so.1')]",
    "ctypes-4": "import ctypes; [ctypes.CDLL(LIB + n) for n in "
    "('libgcc_s.so.1', 'libstdc++.so.6', 'libatomic.so.1', 'libgomp.so.1')]",
    "import": "import nativelib",
}
HEAVY = ("packaging", "resolvelib", "importlib.metadata", "requests", "typing", "ctypes", "json")


def _timed_code(body: str, lib: str) -> str:
    return (
        "import time\nt0 = time.perf_counter()\n"
        f"LIB = {lib!r}\n{body}\n"
        "print((time.perf_counter() - t0) * 1000)\n"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--source", default="debian-bookworm")
    args = parser.parse_args()
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
        (Path(site) / "pynativelib-src.pth").write_text(f"{SRC}\n")
        # As pip does at install time: without bytecode (PYTHONDONTWRITEBYTECODE set in
        # the environment, or an edited source) each run would compile the modules anew.
        subprocess.run([sys.executable, "-m", "compileall", "-q", str(SRC)], check=True)
        wheels = sorted(str(p) for p in (root / "wh").glob("*.whl"))
        subprocess.run(
            [python, "-m", "pip", "install", "-q", "--no-index", "--no-deps", *wheels], check=True
        )
        lib = f"{site}/nativelib.prefix/lib/"

        samples: dict[str, list[float]] = {name: [] for name in [*TIMED, "pass"]}
        for _ in range(args.runs):
            for name, body in TIMED.items():
                out = subprocess.run(
                    [python, "-c", _timed_code(body, lib)],
                    check=True,
                    capture_output=True,
                    text=True,
                )
                samples[name].append(float(out.stdout))
            start = time.perf_counter()
            subprocess.run([python, "-c", "pass"], check=True)
            samples["pass"].append((time.perf_counter() - start) * 1000)

        importtime = subprocess.run(
            [python, "-X", "importtime", "-c", "import nativelib"], capture_output=True, text=True
        ).stderr
        imported = {line.split("|")[-1].strip() for line in importtime.splitlines() if "|" in line}
        heavy = sorted(h for h in HEAVY if h in imported)

    print(f"python {sys.version.split()[0]}, {args.runs} fresh processes per variant, interleaved")
    print(f"{'variant':<10}{'median ms':>12}{'min ms':>10}  what")
    for name in [*TIMED, "pass"]:
        what = TIMED.get(name, "whole process: python -c pass (wall time)")
        median, least = statistics.median(samples[name]), min(samples[name])
        print(f"{name:<10}{median:>12.2f}{least:>10.2f}  {what}")
    med = {k: statistics.median(v) for k, v in samples.items()}
    over2, over4 = med["load"] - med["ctypes-2"], med["load"] - med["ctypes-4"]
    print(f"loader over bare dlopen of the same two files: {over2:+.2f} ms (target <= 2 ms)")
    print(f"loader over bare dlopen of the same four files: {over4:+.2f} ms")
    print(f"import nativelib: {med['import']:.2f} ms (target <= 3 ms)")
    print(f"heavy modules imported by import nativelib: {heavy or 'none'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
