"""Benchmark: the whole ``python -m nativelib doctor`` process on a real environment,
against ``auditwheel show`` on the torch wheel alone, in the same run.

The environment: a venv holding torch 2.13.0+cpu (from the wheel on disk, its
dependencies from the index), scikit-learn, scipy and numpy, with pynativelib importable
from this checkout (a ``.pth`` file). It is made once and kept (``--env``).

Each doctor run is a fresh process (``python -m nativelib doctor --json``), timed from
start to exit, after one untimed run (which writes the ``.pyc`` files); the best and the
median of ``--repeat`` are printed. ``auditwheel show`` runs once, on the torch wheel.
Targets: the doctor at least 50x faster than that one ``auditwheel show``, and under
0.5 s wall for the whole environment.

``--src DIR`` runs the doctor from that source tree (on ``PYTHONPATH``, ahead of the
environment's ``.pth``), e.g. a worktree of another commit; ``--no-auditwheel`` skips the
peer (minutes on a busy machine) when only doctor timings are compared. A run whose
output is not the doctor's JSON report (the doctor could not be imported) stops the
benchmark rather than being timed.

    python scripts/bench_doctor.py [--repeat 5] [--env DIR] [--torch-wheel PATH] [--src DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src"
TORCH_WHEEL = "/opt/wheels/torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl"
DEFAULT_ENV = Path.home() / ".cache" / "nativelib" / "bench-doctor-env"
TARGET_RATIO = 50.0
TARGET_WALL = 0.5


def _python(env: Path) -> Path:
    return env / "bin" / "python"


def make_env(env: Path, torch_wheel: str) -> None:
    if _python(env).exists() and (env / ".complete").exists():
        return
    print(f"making the environment in {env} (once)", file=sys.stderr)
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(env)], check=True)
    python = str(_python(env))
    subprocess.run(
        [python, "-m", "pip", "install", "-q", "--disable-pip-version-check",
         "--only-binary", ":all:", torch_wheel, "scikit-learn", "scipy", "numpy"],
        check=True,
    )  # fmt: skip
    site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    Path(site, "pynativelib-src.pth").write_text(f"{SRC}\n")
    (env / ".complete").write_text("")


def time_doctor(env: Path, repeat: int, src: Path | None = None) -> tuple[list[float], str]:
    argv = [str(_python(env)), "-m", "nativelib", "doctor", "--json"]
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "NATIVELIB"))}
    if src is not None:
        environ["PYTHONPATH"] = str(src.resolve())
    subprocess.run(argv, capture_output=True, env=environ, cwd=env)  # writes .pyc files
    times = []
    log = ""
    for _ in range(repeat):
        start = time.perf_counter()
        proc = subprocess.run(argv, capture_output=True, text=True, env=environ, cwd=env)
        times.append(time.perf_counter() - start)
        if proc.returncode not in (0, 1):
            raise SystemExit(f"doctor failed ({proc.returncode}): {proc.stderr}")
        try:
            json.loads(proc.stdout)["version"]
        except (ValueError, KeyError, TypeError):
            # Exit 1 is also what "No module named nativelib" gives: not a report.
            raise SystemExit(f"doctor gave no report ({proc.returncode}): {proc.stderr}") from None
        log = proc.stderr.strip()
    return times, log


def time_auditwheel(torch_wheel: str) -> float:
    auditwheel = Path(sys.executable).parent / "auditwheel"
    start = time.perf_counter()
    proc = subprocess.run([str(auditwheel), "show", torch_wheel], capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"auditwheel show failed: {proc.stderr[-2000:]}")
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--env", type=Path, default=DEFAULT_ENV)
    parser.add_argument("--torch-wheel", default=TORCH_WHEEL)
    parser.add_argument("--src", type=Path, help="run the doctor from this source tree")
    parser.add_argument("--no-auditwheel", action="store_true", help="skip the peer")
    args = parser.parse_args()
    make_env(args.env, args.torch_wheel)

    times, log = time_doctor(args.env, args.repeat, args.src)
    best, median = min(times), statistics.median(times)
    if args.no_auditwheel:
        print(f"doctor:      {log}")
        print(f"nativelib doctor: best {best:.3f} s, median {median:.3f} s of {args.repeat}")
        return 0
    audit = time_auditwheel(args.torch_wheel)
    ratio = audit / best
    print(f"environment: {args.env} (torch, scikit-learn, scipy, numpy)")
    print(f"doctor:      {log}")
    print(
        f"nativelib doctor (whole process, whole environment): best {best:.3f} s, "
        f"median {median:.3f} s of {args.repeat}"
    )
    print(f"auditwheel show {Path(args.torch_wheel).name}: {audit:.2f} s")
    ok_ratio, ok_wall = ratio >= TARGET_RATIO, best < TARGET_WALL
    print(
        f"ratio: {ratio:.0f}x faster (target {TARGET_RATIO:.0f}x: "
        f"{'met' if ok_ratio else 'NOT met'}); wall {best:.3f} s (target < {TARGET_WALL} s: "
        f"{'met' if ok_wall else 'NOT met'})"
    )
    return 0 if ok_ratio and ok_wall else 1


if __name__ == "__main__":
    sys.exit(main())
