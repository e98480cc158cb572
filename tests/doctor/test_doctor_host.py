"""Host facts: the dynamic loader's cache (against ``ldconfig -p``), the CUDA driver probe
(through stand-in libcuda.so.1 libraries compiled here: this machine has no NVIDIA
driver, and a real one cannot exist here), the hint table, the site directories."""

from __future__ import annotations

import os
import shutil
import subprocess
import sysconfig
from pathlib import Path

import pytest
from doctor_support import gcc, run_doctor

from nativelib.doctor import Options, diagnose, environment_site_dirs
from nativelib.doctor.hostfacts import parse_ld_cache
from nativelib.doctor.versions import first_release, requirement

LDCONFIG = shutil.which("ldconfig") or "/sbin/ldconfig"


@pytest.mark.skipif(not os.path.exists(LDCONFIG), reason="needs ldconfig")
def test_ld_cache_reads_as_ldconfig_does() -> None:
    with open("/etc/ld.so.cache", "rb") as f:
        parsed = parse_ld_cache(f.read())
    listing = subprocess.run([LDCONFIG, "-p"], capture_output=True, text=True, check=True).stdout
    expected: dict[str, list[str]] = {}
    for line in listing.splitlines()[1:]:
        if "=>" not in line or "hwcap" in line:
            continue
        left, _, path = line.partition("=>")
        expected.setdefault(left.split()[0], []).append(path.strip())
    assert expected and parsed == expected
    # Truncated or foreign bytes give what could be read, never an exception.
    with open("/etc/ld.so.cache", "rb") as f:
        data = f.read()
    for cut in (0, 10, 47, 48, 100, len(data) // 2):
        parse_ld_cache(data[:cut])
    assert parse_ld_cache(b"not a cache at all") == {}


def _cuda(tmp_path: Path, body: str, timeout: float = 10.0) -> tuple[object, list[object]]:
    stub = gcc(tmp_path / "cuda" / "libcuda.so.1", body, "-Wl,-soname,libcuda.so.1")
    empty = tmp_path / "empty"
    empty.mkdir(exist_ok=True)
    report = diagnose(
        Options(
            paths=(str(empty),),
            sys_path=(),
            environ={"LD_LIBRARY_PATH": str(stub.parent), "PATH": os.environ.get("PATH", "")},
            cuda_timeout=timeout,
        )
    )
    return report.host.cuda, list(report.findings)


@pytest.fixture(autouse=True)
def _no_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NATIVELIB_CUDA_DRIVER", raising=False)


def test_cuda_driver_api_version_from_libcuda(tmp_path: Path) -> None:
    cuda, findings = _cuda(tmp_path, "int cuDriverGetVersion(int *v) { *v = 12090; return 0; }\n")
    assert (cuda.driver_api, cuda.source) == ("12.9", "probe")  # type: ignore[attr-defined]
    assert not findings


def test_cuda_probe_that_hangs_or_fails(tmp_path: Path) -> None:
    hang = "#include <unistd.h>\nint cuDriverGetVersion(int *v) { sleep(600); return 0; }\n"
    cuda, findings = _cuda(tmp_path / "hang", hang, timeout=1)
    assert cuda.driver_api is None  # type: ignore[attr-defined]
    (found,) = findings
    assert found.code == "cuda-probe-failed"  # type: ignore[attr-defined]
    assert "did not answer cuDriverGetVersion within 1 s" in found.message  # type: ignore[attr-defined]
    cuda, findings = _cuda(tmp_path / "err", "int cuDriverGetVersion(int *v) { return 3; }\n")
    (found,) = findings
    assert "returned CUDA error 3" in found.message  # type: ignore[attr-defined]


def test_no_driver_is_calm_and_the_override_wins(tmp_path: Path) -> None:
    report = diagnose(Options(paths=(str(tmp_path),), sys_path=(), environ={}))
    assert report.host.cuda.source == "none" and report.host.cuda.driver_api is None
    assert not report.findings
    report = diagnose(
        Options(paths=(str(tmp_path),), sys_path=(), environ={"NATIVELIB_CUDA_DRIVER": "575.51.03"})
    )
    assert report.host.cuda.to_json() == {
        "driver_api": None, "kernel_driver": "575.51.03", "source": "override"
    }  # fmt: skip


def test_hint_versions() -> None:
    assert requirement("nativelib-cxx14", ["GLIBCXX_3.4.32"]) == "nativelib-cxx14>=13.2"
    assert requirement("nativelib-cxx14", ["GLIBCXX_3.4.30", "CXXABI_1.3.14"]) == (
        "nativelib-cxx14>=13.1"
    )
    assert requirement("nativelib-cxx14", ["GCC_12.0.0"]) == "nativelib-cxx14>=12"
    assert requirement("nativelib-gfortran5", ["GFORTRAN_10"]) == "nativelib-gfortran5>=10"
    assert requirement("nativelib-cxx14", ["GLIBCXX_3.4", "CXXABI_1.3"]) == "nativelib-cxx14"
    # libgomp's nodes are in the one table (data/runtime-node-releases.json) too.
    assert requirement("nativelib-gomp", ["GOMP_5.0", "OMP_1.0"]) == "nativelib-gomp>=9.1"
    # Not in the table: no bound at all, rather than one that might be wrong...
    assert requirement("nativelib-gomp", ["GOMP_99.0", "OMP_1.0"]) == "nativelib-gomp"
    assert requirement("nativelib-cxx14", ["GLIBCXX_3.4.99"]) == "nativelib-cxx14"
    # ...unless asked to bound by the nodes it knows (a copy's whole definition set).
    assert requirement(
        "nativelib-gfortran5", ["GFORTRAN_8", "GFORTRAN_C99_8"], known_only=True
    ) == ("nativelib-gfortran5>=8")
    assert first_release("CXXABI_TM_1") == "0"  # GCC 4.7: older than any runtime wheel
    assert first_release("GLIBCXX_3.4.30") == "12.1.0" and first_release("NOPE_1") is None


def test_site_dirs_leave_out_the_standard_library_and_the_script_directory(tmp_path: Path) -> None:
    stdlib = sysconfig.get_path("stdlib")
    site = tmp_path / "site"
    site.mkdir()
    dirs = environment_site_dirs(
        ["", "relative/dir", stdlib, str(site), str(site), str(tmp_path / "missing.zip")]
    )
    assert dirs == [str(site)]


def test_the_current_directory_is_not_scanned(tmp_path: Path) -> None:
    """``python -m`` puts the current directory first on sys.path; it is not part of the
    environment (a checkout with its own .venv would be walked otherwise)."""
    shutil.copyfile(
        os.path.realpath("/usr/lib/x86_64-linux-gnu/libgomp.so.1"), tmp_path / "libgomp.so.1"
    )
    result = run_doctor(None, cwd=tmp_path)
    assert str(tmp_path) not in result.doc["host"]["python"]["site_dirs"]
    assert not [f for f in result.doc["findings"] if str(tmp_path) in str(f["files"])]
    # The same directory named with --path is scanned.
    named = run_doctor(None, "--path", str(tmp_path), cwd=tmp_path)
    assert named.one("vendored-runtime", str(tmp_path))
