"""nativelib repair on real wheels from PyPI and on disk: scikit-learn (auditwheel vendored
``scikit_learn.libs/libgomp-<hash>.so.1.0.0``) and torch 2.13.0 CPU (``torch/lib/libgomp.so.1``,
not renamed). Both repaired, installed into one venv with nativelib-gomp (built from this
host's libgomp), and used in both import orders: right results, one libgomp."""

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

TORCH = Path("/opt/wheels/torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl")
SKLEARN = "scikit-learn==1.7.2"

pytestmark = [
    pytest.mark.network,
    pytest.mark.skipif(
        shutil.which("dpkg-deb") is None or shutil.which("gcc") is None,
        reason="needs dpkg-deb and gcc to build the nativelib-gomp wheel",
    ),
    pytest.mark.skipif(
        not TORCH.is_file() or sys.version_info[:2] != (3, 11),
        reason=f"needs {TORCH.name} on disk and Python 3.11 (its tag)",
    ),
]

PROBE = textwrap.dedent(
    """
    import json, sys
    if sys.argv[1] == "sklearn-first":
        import sklearn.cluster, torch
    else:
        import torch, sklearn.cluster
    import numpy as np
    rng = np.random.RandomState(0)
    X = np.concatenate([rng.normal(0, 0.1, (300, 2)), rng.normal(5, 0.1, (300, 2))])
    km = sklearn.cluster.KMeans(n_clusters=2, n_init=3, random_state=0).fit(X)
    torch.set_num_threads(2)
    a = torch.full((512, 512), 0.5)
    b = a @ a
    gomp = sorted({l.split()[-1] for l in open("/proc/self/maps") if "libgomp" in l})
    print(json.dumps({
        "centers": sorted(round(float(c), 1) for c in km.cluster_centers_.ravel()),
        "matmul": float(b.sum()),
        "threads": torch.get_num_threads(),
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


def test_sklearn_and_torch_repaired_share_one_libgomp(tmp_path: Path) -> None:
    wheelhouse = host_runtime_wheels(tmp_path / "runtimes")[0].parent
    gomp = next(wheelhouse.glob("nativelib_gomp-*.whl"))
    dl = tmp_path / "dl"
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "-q", "--only-binary", ":all:", "--no-deps",
         "-d", str(dl), SKLEARN],
        check=True,
    )  # fmt: skip
    (sklearn,) = dl.glob("scikit_learn-*.whl")
    with zipfile.ZipFile(sklearn) as zf:
        assert [n for n in zf.namelist() if "libgomp" in n], "scikit-learn no longer vendors it"

    out = tmp_path / "repaired"
    sk_fixed, sk_bytes = _repair(sklearn, out, wheelhouse)
    torch_fixed, torch_bytes = _repair(TORCH, out, wheelhouse)
    assert sk_bytes > 100_000 and torch_bytes > 100_000
    for fixed in (sk_fixed, torch_fixed):
        with zipfile.ZipFile(fixed) as zf:
            assert not [n for n in zf.namelist() if "libgomp" in n]
            meta = zf.read(next(n for n in zf.namelist() if n.endswith("METADATA"))).decode()
        assert re.search(r"^Requires-Dist: nativelib-gomp>=\S+$", meta, re.M)

    env = Env(tmp_path / "env", "venv")
    env.install(gomp)
    deps = sorted(set(_requirements(sk_fixed) + _requirements(torch_fixed)))
    subprocess.run(
        [env.python, "-m", "pip", "install", "-q", "--only-binary", ":all:", *deps],
        check=True, env=env.env,
    )  # fmt: skip
    env.install(sk_fixed, torch_fixed)
    prefix_gomp = str(env.site / "nativelib.prefix/lib/libgomp.so.1")
    for order in ("sklearn-first", "torch-first"):
        run = env.run(PROBE, order)
        assert run.returncode == 0, run.stderr
        result = json.loads(run.stdout.strip().splitlines()[-1])
        assert result["centers"] == [0.0, 0.0, 5.0, 5.0], result
        assert result["matmul"] == 512 * 512 * 512 * 0.25, result
        assert result["gomp"] == [prefix_gomp], result
    print(f"bytes removed: scikit-learn {sk_bytes}, torch {torch_bytes}")
