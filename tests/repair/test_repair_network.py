"""nativelib repair on two real PyPI wheels that each vendor libgomp (auditwheel's
``<pkg>.libs/libgomp-<hash>.so.1.0.0``): scikit-learn and pykdtree (a small OpenMP k-d tree,
numpy its only dependency). Both repaired, installed into one venv with nativelib-gomp
(built from this host's libgomp), and used in both import orders: right results, one
libgomp. (torch's layout, ``torch/lib/libgomp.so.1`` not renamed, is repaired offline by
tests/repair/test_repair.py; repairing and installing the 190 MB torch wheel here took
90 s of CI time.)"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import textwrap
import zipfile
from email.parser import BytesParser
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from nativelib_testing import Env, host_runtime_wheels

SKLEARN = "scikit-learn==1.7.2"
PYKDTREE = "pykdtree==1.4.3"

pytestmark = [
    pytest.mark.network,
    pytest.mark.skipif(
        shutil.which("dpkg-deb") is None or shutil.which("gcc") is None,
        reason="needs dpkg-deb and gcc to build the nativelib-gomp wheel",
    ),
]

PROBE = textwrap.dedent(
    """
    import json, sys
    if sys.argv[1] == "sklearn-first":
        import sklearn.cluster, pykdtree.kdtree
    else:
        import pykdtree.kdtree, sklearn.cluster
    import numpy as np
    rng = np.random.RandomState(0)
    X = np.concatenate([rng.normal(0, 0.1, (300, 2)), rng.normal(5, 0.1, (300, 2))])
    km = sklearn.cluster.KMeans(n_clusters=2, n_init=3, random_state=0).fit(X)
    grid = np.arange(40000, dtype=np.float64).reshape(-1, 2)  # 20000 points, 2.83 apart
    tree = pykdtree.kdtree.KDTree(grid)
    dist, idx = tree.query(grid[::7] + 0.25, k=1)  # an OpenMP loop over the queries
    gomp = sorted({l.split()[-1] for l in open("/proc/self/maps") if "libgomp" in l})
    print(json.dumps({
        "centers": sorted(round(float(c), 1) for c in km.cluster_centers_.ravel()),
        "nearest": idx.tolist() == list(range(0, 20000, 7)),
        "dist": round(float(dist.max()), 6),
        "gomp": gomp,
    }))
    """
)


def _requirements(wheel: Path) -> list[str]:
    """The wheel's Requires-Dist that apply here, without extras and without ours."""
    with zipfile.ZipFile(wheel) as zf:
        name = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
        message = BytesParser().parsebytes(zf.read(name))
    out = []
    for line in message.get_all("Requires-Dist") or []:
        req = Requirement(line)
        if req.name.startswith("nativelib-") or req.name == "pynativelib":
            continue
        if req.marker is None or req.marker.evaluate({"extra": ""}):
            out.append(str(req).split(";")[0].strip())
    return out


def _repair(wheel: Path, out: Path, wheelhouse: Path) -> tuple[Path, int]:
    run = subprocess.run(
        [sys.executable, "-m", "nativelib", "repair", str(wheel), "-w", str(out),
         "--find-links", str(wheelhouse)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    m = re.search(r"removed (\d+) vendored cop(?:y|ies) \((\d+) bytes\)", run.stderr)
    assert m, run.stderr
    print(f"{wheel.name}: {run.stderr.strip()}")
    return Path(run.stdout.strip()), int(m.group(2))


def test_sklearn_and_pykdtree_repaired_share_one_libgomp(tmp_path: Path) -> None:
    wheelhouse = host_runtime_wheels(tmp_path / "runtimes")[0].parent
    gomp = next(wheelhouse.glob("nativelib_gomp-*.whl"))
    dl = tmp_path / "dl"
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "-q", "--only-binary", ":all:", "--no-deps",
         "-d", str(dl), SKLEARN, PYKDTREE],
        check=True,
    )  # fmt: skip
    (sklearn,) = dl.glob("scikit_learn-*.whl")
    (kdtree,) = dl.glob("pykdtree-*.whl")
    for wheel in (sklearn, kdtree):
        with zipfile.ZipFile(wheel) as zf:
            assert [n for n in zf.namelist() if "libgomp" in n], f"{wheel.name} vendors none"

    out = tmp_path / "repaired"
    sk_fixed, sk_bytes = _repair(sklearn, out, wheelhouse)
    kd_fixed, kd_bytes = _repair(kdtree, out, wheelhouse)
    assert sk_bytes > 100_000 and kd_bytes > 100_000
    for fixed in (sk_fixed, kd_fixed):
        with zipfile.ZipFile(fixed) as zf:
            assert not [n for n in zf.namelist() if "libgomp" in n]
            meta = zf.read(next(n for n in zf.namelist() if n.endswith("METADATA"))).decode()
        assert re.search(r"^Requires-Dist: nativelib-gomp>=\S+$", meta, re.M)

    env = Env(tmp_path / "env", "venv")
    env.install(gomp)
    deps = sorted(set(_requirements(sk_fixed) + _requirements(kd_fixed)))
    subprocess.run(
        [env.python, "-m", "pip", "install", "-q", "--only-binary", ":all:", *deps],
        check=True, env=env.env,
    )  # fmt: skip
    env.install(sk_fixed, kd_fixed)
    prefix_gomp = str(env.site / "nativelib.prefix/lib/libgomp.so.1")
    for order in ("sklearn-first", "kdtree-first"):
        run = env.run(PROBE, order)
        assert run.returncode == 0, run.stderr
        result = json.loads(run.stdout.strip().splitlines()[-1])
        assert result["centers"] == [0.0, 0.0, 5.0, 5.0], result
        assert result["nearest"] and result["dist"] == round(0.25 * 2**0.5, 6), result
        assert result["gomp"] == [prefix_gomp], result
    print(f"bytes removed: scikit-learn {sk_bytes}, pykdtree {kd_bytes}")
