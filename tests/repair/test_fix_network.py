"""``nativelib fix`` on real PyPI wheels: scikit-learn (libgomp) with numpy and scipy
(libgfortran, libquadmath), installed by pip into a real venv, fixed with the session's
runtime wheels from a static index that ``nativelib index`` wrote (``file://``)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from nativelib.cli import main
from nativelib_testing import Env

pytestmark = pytest.mark.network

RESULTS = """
import json, numpy as np
from sklearn.cluster import KMeans
rng = np.random.default_rng(0)
x = rng.normal(size=(400, 6))
km = KMeans(n_clusters=4, n_init=3, random_state=0).fit(x)
s = np.linalg.svd(x, compute_uv=False)
print(json.dumps({"kmeans": km.cluster_centers_.round(10).tolist(), "svd": s.round(10).tolist()}))
"""

MAPS = """
import json, sklearn.cluster, numpy.linalg, scipy.linalg
maps = {p[5].strip() for p in (l.split(None, 5) for l in open("/proc/self/maps")) if len(p) == 6}
print(json.dumps(sorted(maps)))
"""


def _state(site: Path) -> dict[str, str]:
    return {
        str(p.relative_to(site)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(site.rglob("*"))
        if p.is_file() and "__pycache__" not in p.parts
    }


def test_fix_scikit_learn_numpy_scipy(
    tmp_path: Path, runtime_wheelhouse: Path, pynativelib_wheel: Path
) -> None:
    # The index: the runtime wheels, pynativelib (they require it) and its dependencies.
    release = tmp_path / "release"
    shutil.copytree(runtime_wheelhouse, release)
    shutil.copy2(pynativelib_wheel, release)
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "-q", "--only-binary=:all:", "-d",
         str(release), "packaging>=24", "resolvelib>=1.0"],
        check=True,
    )  # fmt: skip
    assert main(["-q", "index", str(release)]) == 0
    index = (release / "simple").as_uri()

    env = Env(tmp_path / "env", "venv")
    (env.site / "pynativelib-src.pth").unlink()  # pynativelib comes from its wheel here
    subprocess.run(
        [env.python, "-m", "pip", "install", "-q", "--only-binary=:all:",
         "--disable-pip-version-check", "scikit-learn", "numpy", str(pynativelib_wheel)],
        check=True, env=env.env,
    )  # fmt: skip
    before = env.run(RESULTS)
    assert before.returncode == 0, before.stderr
    state = _state(env.site)

    fix = [sys.executable, "-m", "nativelib", "fix", "--python", env.python]
    # The plan of --build (what it would build from Debian for this host: the runtimes
    # and their versions, no download); the fix itself installs from the index.
    dry = subprocess.run([*fix, "--build", "--dry-run"], capture_output=True, text=True)
    assert dry.returncode == 0, dry.stderr
    assert _state(env.site) == state
    for name in ("scikit-learn", "numpy", "scipy"):
        assert f"\n{name} " in f"\n{dry.stdout}", dry.stdout
    for runtime in ("gomp", "gfortran5", "cxx14"):
        assert f"\nbuild   nativelib-{runtime} " in dry.stdout, dry.stdout

    done = subprocess.run([*fix, "--index-url", index], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    for name in ("scikit-learn", "numpy", "scipy"):
        assert f"{name} " in done.stdout and ": fixed" in done.stdout

    doctor = subprocess.run(
        [env.python, "-m", "nativelib", "doctor", "--json"],
        capture_output=True, text=True, env=env.env,
    )  # fmt: skip
    findings = json.loads(doctor.stdout)["findings"]
    assert [f for f in findings if f["code"] == "vendored-runtime"] == []

    after = env.run(RESULTS)
    assert after.returncode == 0, after.stderr
    assert json.loads(after.stdout) == json.loads(before.stdout)

    # Each runtime mapped once, from the prefix (read here, independently of fix).
    mapped = json.loads(env.run(MAPS).stdout)
    prefix = os.path.realpath(env.site / "nativelib.prefix" / "lib")
    for stem in ("libgomp", "libgfortran", "libquadmath"):
        found = {os.path.realpath(p) for p in mapped if os.path.basename(p).startswith(stem)}
        assert len(found) == 1 and next(iter(found)).startswith(prefix + os.sep), (stem, found)

    check = subprocess.run(
        [env.python, "-m", "pip", "check"], capture_output=True, text=True, env=env.env
    )
    assert check.returncode == 0, check.stdout
    dist_info = next(env.site.glob("scikit_learn-*.dist-info"))
    record = (dist_info / "RECORD").read_text().splitlines()
    files = [env.site / line.rsplit(",", 2)[0] for line in record]
    subprocess.run(
        [env.python, "-m", "pip", "uninstall", "-y", "-q", "scikit-learn"],
        check=True, env=env.env,
    )  # fmt: skip
    assert [f for f in files if f.exists()] == []
