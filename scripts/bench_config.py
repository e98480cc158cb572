"""Benchmark: what a ``nativelib config`` query costs a build, against ``pkg-config``.

Builds nativelib-gomp (``nativelib build``, Debian bookworm by default; the download cache
makes reruns offline), installs it into a fresh venv holding this tree (a ``.pth``, the
modules byte-compiled as pip does) and the ``nativelib`` console script as pip writes it
(from ``[project.scripts]``), then runs each variant as a fresh process, interleaved,
``--runs`` times, and prints the median wall and CPU time (user + system, from
``wait4``: steadier where other processes share the CPUs):

- ``pkg-config``: ``pkg-config --libs nativelib-gomp`` on the prefix's own ``.pc`` file
  (``PKG_CONFIG_PATH=<prefix>/lib/pkgconfig``); ``pkgconf`` too where it is on PATH
- ``python``: ``python -c pass`` in the same venv: the interpreter's start, the floor
  of any command written in Python
- ``--libs``, ``--cflags``, ``--cflags --libs``, ``--prefix``, ``--libdir``,
  ``--pkg-config-path``, ``--cmake-dir``: ``nativelib config`` with that query (the
  common ones: answered without argparse, logging or the catalog)
- ``--requires``: for scale (the resolver's bound rule: packaging, the catalog)

Ratios are to ``pkg-config`` and to ``python``. Target: ``--libs`` within 3x of
``pkg-config``'s process time where a Python process can get there; it cannot (the
interpreter's start alone is ~10x a pkg-config run), so the second target is the one the
code controls: the common queries at most 1.5x ``python -c pass``.

``--compare DIR`` runs the same queries from a second source tree too (``DIR/src`` on
``PYTHONPATH`` ahead of this one, its own console script), interleaved: before/after
figures from one run, e.g. against ``git worktree add /tmp/base <commit>``.

    python scripts/bench_config.py [--runs 30] [--source debian-bookworm] [--compare DIR]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
QUERIES = {
    "--libs": ["--libs", "gomp"],
    "--cflags": ["--cflags", "gomp"],
    "--cflags --libs": ["--cflags", "--libs", "gomp"],
    "--prefix": ["--prefix"],
    "--libdir": ["--libdir"],
    "--pkg-config-path": ["--pkg-config-path"],
    "--cmake-dir": ["--cmake-dir"],
    "--requires": ["--requires", "gomp"],
}
COMMON = ("--libs", "--cflags", "--cflags --libs", "--prefix", "--libdir", "--pkg-config-path",
          "--cmake-dir")  # fmt: skip
TARGET_PKG_CONFIG = 3.0
TARGET_PYTHON = 1.5


def _script(tree: Path, python: str, dest: Path) -> Path:
    """The ``nativelib`` console script of ``tree``, as pip writes it."""
    with (tree / "pyproject.toml").open("rb") as f:
        target = tomllib.load(f)["project"]["scripts"]["nativelib"]
    module, _, func = target.partition(":")
    dest.write_text(
        f"#!{python}\nimport sys\nfrom {module} import {func}\n"
        f"if __name__ == '__main__':\n    sys.exit({func}())\n"
    )
    dest.chmod(0o755)
    return dest


def _run(argv: list[str], env: dict[str, str]) -> tuple[float, float, bytes]:
    """Wall and CPU time (ms) of one process, and its stdout."""
    start = time.perf_counter()
    child = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE)
    assert child.stdout is not None
    out = child.stdout.read()
    _pid, status, usage = os.wait4(child.pid, 0)
    wall = (time.perf_counter() - start) * 1000
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(argv)} failed")
    return wall, (usage.ru_utime + usage.ru_stime) * 1000, out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--source", default="debian-bookworm")
    parser.add_argument("--compare", type=Path, help="a second source tree (before/after)")
    args = parser.parse_args()
    trees = {"": ROOT} | ({f"@{args.compare.name}": args.compare.resolve()} if args.compare else {})
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        subprocess.run(
            [sys.executable, "-m", "nativelib", "-q", "build", "gomp", "--source", args.source,
             "-o", str(root / "wh")],
            check=True, env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
        )  # fmt: skip
        subprocess.run([sys.executable, "-m", "venv", str(root / "venv")], check=True)
        python = str(root / "venv/bin/python")
        site = subprocess.run(
            [python, "-c", "import sysconfig; print(sysconfig.get_path('platlib'))"],
            check=True, capture_output=True, text=True,
        ).stdout.strip()  # fmt: skip
        (Path(site) / "__pynativelib-src.pth").write_text(f"{ROOT / 'src'}\n")
        wheels = sorted(str(p) for p in (root / "wh").glob("*.whl"))
        subprocess.run(
            [python, "-m", "pip", "install", "-q", "--no-index", "--no-deps", *wheels], check=True
        )
        # pynativelib's own dependencies (--requires uses packaging's versions)
        deps = ["packaging", "resolvelib"]
        subprocess.run([python, "-m", "pip", "install", "-q", *deps], check=True)
        base = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        envs: dict[str, dict[str, str]] = {}
        scripts: dict[str, Path] = {}
        for tag, tree in trees.items():
            subprocess.run(
                [sys.executable, "-m", "compileall", "-q", str(tree / "src")], check=True
            )
            envs[tag] = {**base, "PYTHONPATH": str(tree / "src")} if tag else dict(base)
            scripts[tag] = _script(tree, python, root / f"nativelib{tag.replace('@', '-')}")
        pcdir = f"{site}/nativelib.prefix/lib/pkgconfig"
        variants: dict[str, tuple[list[str], dict[str, str]]] = {
            "pkg-config": (["pkg-config", "--libs", "nativelib-gomp"],
                           {**base, "PKG_CONFIG_PATH": pcdir}),
            "python": ([python, "-c", "pass"], base),
        }  # fmt: skip
        if shutil.which("pkgconf"):
            variants["pkgconf"] = (
                ["pkgconf", "--libs", "nativelib-gomp"],
                {**base, "PKG_CONFIG_PATH": pcdir},
            )
        for tag in trees:
            for name, query in QUERIES.items():
                variants[f"{name}{tag}"] = ([str(scripts[tag]), "config", *query], envs[tag])

        # The same link line from both (the .pc file's prefix is ${pcfiledir}-relative).
        pc = _run(*variants["pkg-config"])[2].decode().split()
        ours = _run(*variants["--libs"])[2].decode().split()
        assert os.path.realpath(pc[0]) == os.path.realpath(ours[0]) and pc[1:] == ours[1:], (
            pc,
            ours,
        )

        walls: dict[str, list[float]] = {name: [] for name in variants}
        cpus: dict[str, list[float]] = {name: [] for name in variants}
        for _ in range(args.runs):
            for name, (argv, env) in variants.items():
                wall, cpu, _out = _run(argv, env)
                walls[name].append(wall)
                cpus[name].append(cpu)

    med = {n: statistics.median(v) for n, v in walls.items()}
    cpu = {n: statistics.median(v) for n, v in cpus.items()}
    print(f"median of {args.runs} runs, whole process, ms (ratios of the CPU time)")
    print(f"{'variant':28} {'wall':>7} {'cpu':>7} {'x pkg-config':>13} {'x python':>9}")
    for name in variants:
        print(
            f"{name:28} {med[name]:7.1f} {cpu[name]:7.1f} "
            f"{cpu[name] / cpu['pkg-config']:13.1f} {cpu[name] / cpu['python']:9.2f}"
        )
    worst = max(COMMON, key=lambda n: cpu[n])
    vs_pc, vs_py = cpu["--libs"] / cpu["pkg-config"], cpu[worst] / cpu["python"]
    floor = cpu["python"] / cpu["pkg-config"]
    print(
        f"--libs: {vs_pc:.1f}x pkg-config (target {TARGET_PKG_CONFIG:.0f}x: "
        f"{'met' if vs_pc <= TARGET_PKG_CONFIG else 'NOT met'}; python -c pass alone is "
        f"{floor:.1f}x)"
    )
    print(
        f"slowest common query ({worst}): {vs_py:.2f}x python -c pass (target "
        f"{TARGET_PYTHON}x: {'met' if vs_py <= TARGET_PYTHON else 'NOT met'})"
    )
    return 0 if vs_py <= TARGET_PYTHON else 1


if __name__ == "__main__":
    sys.exit(main())
