"""Benchmark: ``nativelib fix`` of scikit-learn, numpy and scipy (PyPI) from a warm pip
cache, against the floor of the same pip commands alone, in the same run.

The environment: a venv with scikit-learn and numpy (and the scipy they bring) from PyPI,
made once. The runtime wheels: cxx14, gomp and gfortran5 built from Debian bookworm
(``nativelib build``) with a wheel of this checkout (they require ``pynativelib``) and its
dependencies, indexed by ``nativelib index`` (``file://``), made once.

Each trial starts from the vendored state (the original wheels reinstalled, the runtime
wheels uninstalled; untimed), then times one of:

- floor: the pip commands ``fix`` runs, alone: ``pip download DIST==VERSION --no-deps
  --only-binary=:all:`` of each (from the warm cache), ``pip install`` of the runtime
  wheels from the index, ``pip install --no-deps --force-reinstall`` of the downloaded
  wheels (the originals: no repair, no check);
- fix: ``nativelib fix --index-url URL`` (the same commands, plus the repairs, the pip
  dry-run report for the plan and the import check of each distribution).

Target: fix within 1.5x of the floor (median of ``--repeat``).

    python scripts/bench_fix.py [--repeat 3] [--work DIR]   (network on the first run)
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_WORK = Path.home() / ".cache" / "nativelib" / "bench-fix"
DISTS = ("scikit-learn", "numpy", "scipy")
RUNTIMES = ("nativelib-cxx14", "nativelib-gomp", "nativelib-gfortran5")
TARGET = 1.5


def _run(argv: list[str]) -> str:
    proc = subprocess.run(argv, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"failed: {' '.join(argv)}\n{proc.stderr[-2000:]}")
    return proc.stdout


def make_index(work: Path) -> str:
    release = work / "release"
    if not (release / "simple").is_dir():
        release.mkdir(parents=True, exist_ok=True)
        nl = [sys.executable, "-m", "nativelib"]
        _run([*nl, "-q", "build", "cxx14", "gomp", "gfortran5", "--source", "debian-bookworm",
              "-w", str(release)])  # fmt: skip
        with tempfile.TemporaryDirectory() as tree:
            for name in ("pyproject.toml", "README.md", "LICENSE"):
                if (ROOT / name).exists():
                    shutil.copy2(ROOT / name, Path(tree) / name)
            shutil.copytree(
                ROOT / "src", Path(tree) / "src",
                ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"),
            )  # fmt: skip
            _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", tree, "-w",
                  str(release)])  # fmt: skip
        _run([sys.executable, "-m", "pip", "download", "-q", "--only-binary=:all:", "-d",
              str(release), "packaging>=24", "resolvelib>=1.0"])  # fmt: skip
        _run([*nl, "-q", "index", str(release)])
    return (release / "simple").as_uri()


def make_env(work: Path) -> tuple[str, dict[str, str], Path]:
    """The venv, the installed versions, and a directory with their original wheels."""
    env, originals = work / "venv", work / "originals"
    python = str(env / "bin" / "python")
    if not (work / ".complete").exists():
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(env)], check=True)
        _run([python, "-m", "pip", "install", "-q", "--only-binary=:all:", *DISTS[:2]])
        (work / ".complete").write_text("")
    versions = json.loads(_run([python, "-c",
        "import json; from importlib.metadata import version as v; "
        f"print(json.dumps({{d: v(d) for d in {list(DISTS)!r}}}))"]))  # fmt: skip
    if not originals.is_dir():
        originals.mkdir()
        for d, v in versions.items():  # also warms the cache
            _run([python, "-m", "pip", "download", "-q", f"{d}=={v}", "--no-deps",
                  "--only-binary=:all:", "-d", str(originals)])  # fmt: skip
    return python, versions, originals


def reset(python: str, originals: Path, versions: dict[str, str]) -> None:
    subprocess.run([python, "-m", "pip", "uninstall", "-y", "-q", *RUNTIMES, "pynativelib"],
                   capture_output=True)  # fmt: skip
    _run([python, "-m", "pip", "install", "-q", "--no-deps", "--force-reinstall", "--no-index",
          "--find-links", str(originals), *(f"{d}=={v}" for d, v in versions.items())])  # fmt: skip


def floor(python: str, index: str, versions: dict[str, str]) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        for d, v in versions.items():
            _run([python, "-m", "pip", "download", "-q", f"{d}=={v}", "--no-deps",
                  "--only-binary=:all:", "-d", tmp])  # fmt: skip
        _run([python, "-m", "pip", "install", "-q", "--index-url", index, *RUNTIMES])
        for d, v in versions.items():
            _run([python, "-m", "pip", "install", "-q", "--no-deps", "--force-reinstall",
                  "--no-index", "--find-links", tmp, f"{d}=={v}"])  # fmt: skip
        return time.perf_counter() - start


def fix(python: str, index: str) -> float:
    start = time.perf_counter()
    _run([sys.executable, "-m", "nativelib", "fix", "--python", python, "--index-url", index])
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--work", type=Path, default=DEFAULT_WORK)
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    index = make_index(args.work)
    python, versions, originals = make_env(args.work)
    print(f"{', '.join(f'{d} {v}' for d, v in versions.items())}; index {index}")
    times: dict[str, list[float]] = {"floor": [], "fix": []}
    for _ in range(args.repeat):
        reset(python, originals, versions)
        times["floor"].append(floor(python, index, versions))
        reset(python, originals, versions)
        times["fix"].append(fix(python, index))
    reset(python, originals, versions)
    med = {k: statistics.median(v) for k, v in times.items()}
    for k, v in times.items():
        print(f"{k:6} median {med[k]:.2f} s  best {min(v):.2f} s  ({len(v)} runs)")
    ratio = med["fix"] / med["floor"]
    verdict = "ok" if ratio <= TARGET else "over"
    print(f"fix / floor: {ratio:.2f}x (target <= {TARGET}x: {verdict})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
