"""``nativelib doctor`` on real PyPI wheels: scikit-learn (which vendors libgomp), with the
numpy and scipy it brings (which vendor libgfortran and libquadmath, numpy's grafted twice
by auditwheel), installed by pip into a real venv."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from doctor_support import Result, run_doctor

from nativelib_testing import Env, omp_wheel

pytestmark = pytest.mark.network

HOST_LIBGOMP = os.path.realpath("/usr/lib/x86_64-linux-gnu/libgomp.so.1")


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Env:
    root = tmp_path_factory.mktemp("sklearn")
    env = Env(root, "venv")
    subprocess.run(
        [env.python, "-m", "pip", "install", "-q", "--only-binary", ":all:",
         "--disable-pip-version-check", "scikit-learn"],
        check=True, env=env.env,
    )  # fmt: skip
    env.install(omp_wheel(root / "plain", package="ompplain"))  # NEEDs libgomp.so.1
    return env


@pytest.fixture(scope="module")
def report(env: Env) -> Result:
    return run_doctor(env)


def _version(env: Env, dist: str) -> str:
    proc = env.run(f"from importlib.metadata import version; print(version({dist!r}))")
    return proc.stdout.strip()


def test_scikit_learn_vendors_libgomp(env: Env, report: Result) -> None:
    (copy,) = (env.site / "scikit_learn.libs").glob("libgomp-*.so*")
    found = report.one("vendored-runtime", str(copy))
    assert found["files"] == [str(copy)]
    assert found["message"].startswith(
        f"scikit-learn {_version(env, 'scikit-learn')} ships its own copy of libgomp.so.1"
    )
    assert "renamed" in found["message"] and "nativelib-gomp could replace it" in found["message"]
    # Installed: the exact command that fetches, repairs and reinstalls it (and installs
    # nativelib-gomp with the bound its Requires-Dist then carries).
    assert found["hint"] == "nativelib fix scikit-learn --build"


def test_numpy_and_scipy_vendor_libgfortran(env: Env, report: Result) -> None:
    copies = sorted(
        str(p) for d in ("numpy.libs", "scipy.libs") for p in (env.site / d).glob("libgfortran-*")
    )
    assert copies
    found = sorted(
        f["files"][0]
        for f in report.findings("vendored-runtime")
        if "copy of libgfortran.so.5" in f["message"]
    )
    assert found == copies
    numpy = report.one("vendored-runtime", str(next(p for p in copies if "numpy.libs" in p)))
    # libgfortran.so.5 defines GFORTRAN_8: GCC 8 or newer can replace it.
    assert numpy["hint"] == "nativelib fix numpy --build"


def test_real_wheels_have_what_they_need(report: Result) -> None:
    """Every NEEDED entry of these wheels is found, with its version nodes (through the
    extensions' RPATH, inherited by the grafted libraries)."""
    for code in ("needs-unsatisfied", "soname-not-found", "soname-only-elsewhere"):
        assert not report.findings(code), report.findings(code)


def test_import_shows_two_libgomp_copies(env: Env) -> None:
    result = run_doctor(env, "--import", "sklearn", "ompplain")
    found = result.one("process-duplicate-runtime", "libgomp.so.1")
    (copy,) = (env.site / "scikit_learn.libs").glob("libgomp-*.so*")
    assert found["files"] == [HOST_LIBGOMP, str(copy)]
    assert "brought in by sklearn" in found["message"]
    assert "brought in by ompplain" in found["message"]
    assert found["message"].endswith(f"every later NEEDED libgomp.so.1 bind to {HOST_LIBGOMP}")
    assert found["hint"] == "nativelib fix scikit-learn --build"


def test_site_dirs_are_the_venvs(env: Env, report: Result) -> None:
    assert report.doc["host"]["python"]["site_dirs"][0] == str(env.site)
    assert Path(report.doc["host"]["python"]["executable"]) == Path(env.python)


def test_pypi_nativelib_next_to_pynativelib(tmp_path: Path, pynativelib_wheel: Path) -> None:
    """The real PyPI project ``nativelib`` 0.2.2.6 (a ClickHouse reader that installs the
    import package ``nativelib/`` too), then pynativelib itself from a wheel of this tree
    (conftest's), both by pip into one venv: the doctor names the clash."""
    ours = pynativelib_wheel
    env = Env(tmp_path / "env", "venv")
    (env.site / "pynativelib-src.pth").unlink()  # pynativelib as pip installs it, no more
    pip = [env.python, "-m", "pip", "install", "-q", "--no-deps", "--disable-pip-version-check"]
    proc = subprocess.run(
        [*pip, "--only-binary", ":all:", "nativelib==0.2.2.6"], env=env.env,
        capture_output=True, text=True,
    )  # fmt: skip
    if proc.returncode != 0:
        pytest.skip(f"nativelib 0.2.2.6 does not install on this Python: {proc.stderr[-300:]}")
    subprocess.run([*pip, str(ours)], check=True, env=env.env)
    assert (env.site / "nativelib/reader.py").is_file()  # theirs, beside ours
    result = run_doctor(env)
    assert result.code == 1
    found = result.one("import-name-clash")
    assert "nativelib 0.2.2.6 installs files in nativelib/" in found["message"]
    assert "nativelib/__init__.py" in found["message"]
    assert found["files"][0] == str(env.site / "nativelib-0.2.2.6.dist-info/RECORD")
    assert found["hint"].startswith("pip uninstall -y nativelib && ")
    # Theirs written over ours again: our cli.py and __main__.py are still there, under
    # their __init__.py; the CLI refuses, naming them (where their __init__.py imports
    # at all without their dependencies: else Python stops in it before our code runs).
    subprocess.run(
        [*pip, "--force-reinstall", "--only-binary", ":all:", "nativelib==0.2.2.6"],
        check=True, env=env.env,
    )  # fmt: skip
    theirs = subprocess.run(
        [env.python, "-c", "import nativelib"], capture_output=True, text=True, env=env.env
    )
    out = subprocess.run(
        [env.python, "-m", "nativelib", "--version"], capture_output=True, text=True,
        env=env.env,
    )  # fmt: skip
    if theirs.returncode == 0:
        assert (out.returncode, out.stdout) == (2, "")
        assert out.stderr == (
            f"error: {env.site / 'nativelib/__init__.py'}: this nativelib package is not "
            "pynativelib's: another distribution (nativelib 0.2.2.6) installed its own "
            "nativelib/__init__.py over it\n"
            "hint: pip uninstall nativelib && pip install --force-reinstall pynativelib\n"
        )
    else:
        assert out.returncode == 1 and "nativelib/__init__.py" in out.stderr, out.stderr
