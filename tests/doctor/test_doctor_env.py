"""``nativelib doctor`` over real environments: real venvs, runtime wheels built from this
host's libraries, a wheel repaired by the real auditwheel, extensions and libraries
compiled here (with version scripts where a version node matters), installed by pip.

There is no GPU and no NVIDIA driver on this machine: the CUDA checks are driven by
NATIVELIB_CUDA_DRIVER, the override the resolver and the doctor read.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import textwrap
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest
from doctor_support import (
    IOMP_MAP,
    IOMP_SRC,
    Result,
    gcc,
    host_gfortran_wheel,
    needs_glibcxx_3_4_32,
    plain_wheel,
    python_module,
    run_doctor,
    stub_cudart_wheel,
    versioned_library,
)

from nativelib.elf import read_elf
from nativelib_testing import Env, auditwheel_repair, host_runtime_wheels, omp_wheel

pytestmark = pytest.mark.skipif(
    shutil.which("dpkg-deb") is None or shutil.which("gcc") is None,
    reason="needs dpkg-deb and gcc to build runtime wheels and extensions",
)

HOST_LIBGOMP = os.path.realpath("/usr/lib/x86_64-linux-gnu/libgomp.so.1")


@dataclass
class Built:
    runtimes: list[Path]
    repaired: Path
    build: Path


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    root = tmp_path_factory.mktemp("built")
    repaired = auditwheel_repair(omp_wheel(root / "omp"), root / "repaired")
    return Built(host_runtime_wheels(root / "rw"), repaired, root)


@pytest.fixture(scope="module")
def gfortran_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """nativelib-gfortran5 from the host's libgfortran: its own fixture, so that a host
    without libgfortran5 skips the one test that needs it, not the module."""
    return host_gfortran_wheel(tmp_path_factory.mktemp("gf"))


# ---------------------------------------------------------------------------- clean


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory, built: Built) -> tuple[Env, Result]:
    """A venv with nativelib-cxx14, nativelib-gomp and an auditwheel-repaired wheel."""
    env = Env(tmp_path_factory.mktemp("clean"), "venv")
    env.install(*built.runtimes, built.repaired)
    return env, run_doctor(env)


def test_clean_environment_has_no_errors(clean: tuple[Env, Result]) -> None:
    env, result = clean
    assert result.code == 0
    assert not [f for f in result.doc["findings"] if f["severity"] == "error"]
    runtimes = {r["name"]: r for r in result.doc["runtimes"]}
    assert set(runtimes) == {"nativelib-cxx14", "nativelib-gomp"}
    for r in runtimes.values():
        assert r["record"] == "verified" and r["active"]
        assert r["prefix"] == str(env.site / "nativelib.prefix")
        assert {f["status"] for f in r["files"]} == {"ok"}
    assert [f["soname"] for f in runtimes["nativelib-gomp"]["files"]] == ["libgomp.so.1"]
    assert str(env.site) in result.doc["host"]["python"]["site_dirs"]
    assert "read " in result.stderr and "ELF files" in result.stderr


def test_host_libraries_are_what_dlopen_finds(clean: tuple[Env, Result]) -> None:
    env, result = clean
    code = textwrap.dedent(
        """
        import ctypes, json
        from nativelib.loader import loaded_path
        out = {}
        for soname in ("libstdc++.so.6", "libgomp.so.1"):
            ctypes.CDLL(soname)
            out[soname] = loaded_path(soname)
        print(json.dumps(out))
        """
    )
    proc = env.run(code)
    assert proc.returncode == 0, proc.stderr
    real = json.loads(proc.stdout)
    libraries = result.doc["host"]["libraries"]
    for soname, path in real.items():
        assert libraries[soname]["path"] == path
    defined = read_elf(real["libstdc++.so.6"]).version_definitions
    assert "GLIBCXX_3.4.30" in libraries["libstdc++.so.6"]["newest"]
    assert set(libraries["libstdc++.so.6"]["newest"]) <= set(defined)
    host = result.doc["host"]
    assert host["libc"]["name"] == "glibc" and host["arch"] == "x86_64"
    assert (
        host["platform_tags"][0] == f"manylinux_{host['libc']['version'].replace('.', '_')}_x86_64"
    )


def test_auditwheel_vendored_libgomp(clean: tuple[Env, Result]) -> None:
    env, result = clean
    (copy,) = (env.site / "ompdemo.libs").glob("libgomp-*.so.1.0.0")
    found = result.one("vendored-runtime", "ompdemo")
    assert found["severity"] == "warning"
    assert found["files"] == [str(copy)]
    assert "ompdemo 1.0 ships its own copy of libgomp.so.1" in found["message"]
    assert f"renamed {copy.name} by auditwheel" in found["message"]
    assert "installed nativelib-gomp 12.2.0 could replace it" in found["message"]
    # Installed: the exact command (nativelib fix fetches, repairs and reinstalls it).
    assert found["hint"] == "nativelib fix ompdemo --build"


def test_strict_makes_warnings_fail(clean: tuple[Env, Result]) -> None:
    env, result = clean
    assert result.findings("vendored-runtime") and result.code == 0
    assert run_doctor(env, "--strict").code == 1


def test_text_report_colour_only_on_a_terminal(clean: tuple[Env, Result]) -> None:
    env, _result = clean
    piped = subprocess.run(
        [env.python, "-m", "nativelib", "doctor"], capture_output=True, text=True, env=env.env
    )
    assert piped.returncode == 0, piped.stderr
    assert "\x1b[" not in piped.stdout
    assert "vendored-runtime" in piped.stdout and "hint:" in piped.stdout
    assert "Runtimes in the common prefix" in piped.stdout
    assert piped.stdout.rstrip().endswith("0 errors, 1 warning, 0 notes")
    for extra, coloured in (({}, True), ({"NO_COLOR": "1"}, False)):
        out = _on_a_terminal([env.python, "-m", "nativelib", "doctor"], {**env.env, **extra})
        assert ("\x1b[" in out) is coloured, out[:300]
        assert "vendored-runtime" in out


def _on_a_terminal(argv: list[str], environ: dict[str, str]) -> str:
    """stdout of a command whose stdout is a pseudo-terminal."""
    import pty  # noqa: PLC0415

    leader, follower = pty.openpty()
    proc = subprocess.Popen(argv, stdout=follower, stderr=subprocess.DEVNULL, env=environ)
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    assert proc.wait() == 0
    return b"".join(chunks).decode()


# ---------------------------------------------------------------------------- broken

CUDART_MAP = "libcudart.so.13 { global: cudaGetDeviceCount; local: *; };\n"
CUDART_SRC = "int cudaGetDeviceCount(int *n) { *n = 0; return 100; }\n"


@dataclass
class Broken:
    env: Env
    target: Path
    extra_env: dict[str, str]
    needy: Path
    rpathy: Path
    lonely: Path
    user: Path
    helper: Path
    truncated: Path
    iomp: Path
    cudart: Path


@pytest.fixture(scope="module")
def broken(tmp_path_factory: pytest.TempPathFactory, built: Built) -> Broken:
    """One venv with many things wrong, each checked by one test below."""
    root = tmp_path_factory.mktemp("broken")
    env = Env(root, "venv")
    site = env.site
    gomp_lib = site / "nativelib.prefix/lib/libgomp.so.1"
    # A plain wheel that also ships nativelib.prefix/lib/libgomp.so.1 (the same bytes).
    gomp_wheel = next(w for w in built.runtimes if "gomp" in w.name)
    with zipfile.ZipFile(gomp_wheel) as zf:
        gomp_bytes = zf.read("nativelib.prefix/lib/libgomp.so.1")
    clash = plain_wheel(root / "clash", "gompclash", "1.0", {
        "gompclash/__init__.py": b"",
        "nativelib.prefix/lib/libgomp.so.1": gomp_bytes,
    })  # fmt: skip
    env.install(*built.runtimes, built.repaired, clash)
    assert gomp_lib.read_bytes() == gomp_bytes

    # A runtime file changed after installation (pip never checks RECORD).
    libstdcxx = site / "nativelib.prefix/lib/libstdc++.so.6"
    data = bytearray(libstdcxx.read_bytes())
    data[-1] ^= 0xFF
    libstdcxx.write_bytes(bytes(data))
    # The loader's index of nativelib-gomp removed; a manifest that is not JSON.
    manifests = site / "nativelib.prefix/share/nativelib/runtimes"
    (manifests / "nativelib-gomp.load").unlink()
    (manifests / "nativelib-bogus.json").write_text("{not json")
    # The manifest directory writable by everyone: the loader refuses the prefix.
    manifests.chmod(0o777)

    # nativelib-gomp once more in a --target directory on PYTHONPATH (first on sys.path):
    # without its RECORD, and with a manifest that misstates its library's size.
    target = root / "target"
    subprocess.run(
        [env.python, "-m", "pip", "install", "-q", "--no-index", "--no-deps",
         "--disable-pip-version-check", "--target", str(target),
         str(gomp_wheel)],
        check=True, env=env.env,
    )  # fmt: skip
    (record,) = target.glob("nativelib_gomp-*.dist-info/RECORD")
    record.unlink()
    tjson = target / "nativelib.prefix/share/nativelib/runtimes/nativelib-gomp.json"
    doc = json.loads(tjson.read_text())
    doc["libraries"][0]["size"] += 1
    tjson.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")

    # An extension that needs GLIBCXX_3.4.32 (GCC 13.2): nothing here has it.
    needy = needs_glibcxx_3_4_32(root / "build", site / "needy")
    # RUNPATH with an empty, a relative and an outside entry; RPATH (old tags) with $ORIGIN.
    rpathy = gcc(
        site / "rpathy" / "_rp.so", "int rp(void) { return 0; }\n",
        "-Wl,--enable-new-dtags", "-Wl,-rpath,:lib:/opt/nativelib-doctor-nowhere/lib",
    )  # fmt: skip
    gcc(site / "rpathy" / "_ok.so", "int ok(void) { return 0; }\n",
        "-Wl,--disable-new-dtags", "-Wl,-rpath,$ORIGIN/../rpathy")  # fmt: skip
    # A library needed, found nowhere.
    gone = versioned_library(
        root / "build" / "gone" / "libnotthere.so.1", "libnotthere.so.1",
        "NT_1.0 { global: nt; local: *; };\n", "int nt(void) { return 0; }\n",
    )  # fmt: skip
    lonely = python_module(
        site / "lonely", "_lonely", "int nt(void);\nstatic void touch(void) { nt(); }",
        f"-L{gone.parent}", "-l:libnotthere.so.1",
    )  # fmt: skip
    # A library present in the environment but not on its user's search path.
    helper = gcc(site / "helperpkg" / "libs" / "libhelper.so.1", "int helper(void) { return 1; }\n",
                 "-Wl,-soname,libhelper.so.1")  # fmt: skip
    user = python_module(
        site / "userpkg", "_user", "int helper(void);\nstatic void touch(void) { helper(); }",
        f"-L{helper.parent}", "-l:libhelper.so.1",
    )  # fmt: skip
    # A file with the ELF magic that is cut short.
    truncated = site / "badpkg" / "_broken.so"
    truncated.parent.mkdir()
    truncated.write_bytes(needy.read_bytes()[:300])
    # An Intel OpenMP runtime (a stand-in: soname libiomp5.so, node OMP_1.0) and a
    # CUDA 13 runtime (soname libcudart.so.13, its node named like it).
    iomp = versioned_library(site / "intelpkg" / "libiomp5.so", "libiomp5.so", IOMP_MAP, IOMP_SRC)
    cudart = versioned_library(
        site / "cudapkg" / "lib" / "libcudart.so.13", "libcudart.so.13", CUDART_MAP, CUDART_SRC
    )
    return Broken(
        env, target, {"PYTHONPATH": str(target)},
        needy, rpathy, lonely, user, helper, truncated, iomp, cudart,
    )  # fmt: skip


@pytest.fixture(scope="module")
def report(broken: Broken) -> Result:
    return run_doctor(
        broken.env, extra_env={**broken.extra_env, "NATIVELIB_CUDA_DRIVER": "550.54.14"}
    )


def test_broken_environment_exits_1(report: Result) -> None:
    assert report.code == 1
    assert report.doc["host"]["cuda"] == {
        "driver_api": None, "kernel_driver": "550.54.14", "source": "override"
    }  # fmt: skip


def test_tampered_runtime_file(broken: Broken, report: Result) -> None:
    path = str(broken.env.site / "nativelib.prefix/lib/libstdc++.so.6")
    found = report.one("runtime-file-modified", "libstdc++.so.6")
    assert found["severity"] == "error" and found["files"] == [path]
    assert (
        "nativelib-cxx14 12.2.0: nativelib.prefix/lib/libstdc++.so.6 does not match its RECORD"
        in (found["message"])
    )
    assert found["hint"] == 'pip install --force-reinstall --no-deps "nativelib-cxx14==12.2.0"'
    cxx = next(r for r in report.doc["runtimes"] if r["name"] == "nativelib-cxx14")
    assert cxx["record"] == "mismatch"
    assert {f["soname"]: f["status"] for f in cxx["files"]}["libstdc++.so.6"] == "modified"
    # One finding for one cause: the manifest's sha256 disagrees too, and is not repeated.
    assert not [f for f in report.findings("runtime-manifest-mismatch") if path in f["files"]]


def test_two_distributions_claim_one_file(broken: Broken, report: Result) -> None:
    found = report.one("runtime-file-conflict", "libgomp.so.1")
    assert found["severity"] == "error"
    assert found["files"] == [str(broken.env.site / "nativelib.prefix/lib/libgomp.so.1")]
    assert "claimed by gompclash 1.0 and nativelib-gomp 12.2.0" in found["message"]
    assert found["hint"] == (
        "pip uninstall -y gompclash && pip install --force-reinstall --no-deps "
        '"nativelib-gomp==12.2.0"'
    )


def test_loader_index_and_manifest_problems(broken: Broken, report: Result) -> None:
    manifests = broken.env.site / "nativelib.prefix/share/nativelib/runtimes"
    index = report.one("runtime-index-mismatch", "nativelib-gomp")
    assert str(manifests / "nativelib-gomp.load") in index["files"]
    assert "is missing, so nativelib.load() does not see this runtime" in index["message"]
    bogus = report.one("runtime-manifest-invalid", "nativelib-bogus")
    assert bogus["files"] == [str(manifests / "nativelib-bogus.json")]
    assert "invalid JSON" in bogus["message"]
    unsafe = report.one("runtime-prefix-unsafe")
    assert "writable by group or others" in unsafe["message"]
    assert unsafe["hint"] == f"chmod -R go-w {broken.env.site / 'nativelib.prefix'}"


def test_shadowed_runtime_without_record_and_misstated_manifest(
    broken: Broken, report: Result
) -> None:
    target_prefix = str(broken.target / "nativelib.prefix")
    gomps = [r for r in report.doc["runtimes"] if r["name"] == "nativelib-gomp"]
    assert [(r["prefix"], r["active"], r["record"]) for r in gomps] == [
        (target_prefix, True, "missing"),
        # Its loader index was removed (test_loader_index_and_manifest_problems).
        (str(broken.env.site / "nativelib.prefix"), False, "mismatch"),
    ]
    shadowed = report.one("runtime-shadowed", "nativelib-gomp")
    assert shadowed["severity"] == "info" and str(broken.target) in shadowed["message"]
    missing = report.one("runtime-record-missing", target_prefix)
    assert "nativelib_gomp-12.2.0.dist-info/RECORD" in missing["message"]
    mismatch = report.one("runtime-manifest-mismatch", target_prefix)
    assert "bytes, the manifest says" in mismatch["message"]


def test_needs_a_version_node_nothing_has(broken: Broken, report: Result) -> None:
    assert "GLIBCXX_3.4.32" in read_elf(broken.needy).version_needs["libstdc++.so.6"]
    found = report.one("needs-unsatisfied", broken.needy.name)
    assert found["severity"] == "error" and found["files"] == [str(broken.needy)]
    assert "needs GLIBCXX_3.4.32 from libstdc++.so.6" in found["message"]
    # Both what the host has and what the installed runtime has are named, with their
    # newest node of that family.
    assert (
        "/usr/lib/x86_64-linux-gnu/libstdc++.so.6.0.30 (host) has up to GLIBCXX_3.4.30"
        in (found["message"])
    )
    assert "(nativelib-cxx14 12.2.0) has up to GLIBCXX_3.4.30" in found["message"]
    assert found["hint"] == 'pip install "nativelib-cxx14>=13.2"'


def test_soname_found_nowhere_and_only_elsewhere(broken: Broken, report: Result) -> None:
    nowhere = report.one("soname-not-found", "libnotthere.so.1")
    assert nowhere["severity"] == "error" and nowhere["files"] == [str(broken.lonely)]
    elsewhere = report.one("soname-only-elsewhere", "libhelper.so.1")
    assert elsewhere["severity"] == "warning"
    assert elsewhere["files"] == [str(broken.user), str(broken.helper)]
    # The repaired wheel's own copy is found through its RPATH: no finding about it.
    assert not [f for f in report.findings("soname-only-elsewhere") if "ompdemo" in str(f)]
    assert not [f for f in report.findings("soname-not-found") if "ompdemo" in str(f)]


def test_rpath_entries(broken: Broken, report: Result) -> None:
    assert read_elf(broken.rpathy).runpath == ("", "lib", "/opt/nativelib-doctor-nowhere/lib")
    empty = report.one("rpath-empty", broken.rpathy.name)
    relative = report.one("rpath-relative", broken.rpathy.name)
    outside = report.one("rpath-outside", broken.rpathy.name)
    for found in (empty, relative, outside):
        assert found["files"] == [str(broken.rpathy)] and found["severity"] == "warning"
    assert "RUNPATH of _rp.so has 'lib'" in relative["message"]
    assert "/opt/nativelib-doctor-nowhere/lib" in outside["message"]
    # The fix keeps the good entries (none here) and drops every bad one.
    assert empty["hint"] == f"patchelf --remove-rpath {broken.rpathy}"
    # $ORIGIN-relative entries that stay inside the environment are fine.
    assert not [
        f for f in report.doc["findings"] if f["code"].startswith("rpath") and "_ok.so" in str(f)
    ]


def test_malformed_elf_file(broken: Broken, report: Result) -> None:
    found = report.one("elf-malformed", broken.truncated.name)
    assert found["files"] == [str(broken.truncated)]
    assert "truncated" in found["message"]


def test_openmp_families_and_vendored_intel(broken: Broken, report: Result) -> None:
    found = report.one("openmp-families")
    assert "GNU (libgomp)" in found["message"] and "Intel (libiomp5)" in found["message"]
    assert str(broken.iomp) in found["files"]
    # The active nativelib-gomp is the --target one, first on sys.path.
    assert str(broken.target / "nativelib.prefix/lib/libgomp.so.1") in found["files"]
    assert any("ompdemo.libs/libgomp-" in f for f in found["files"])
    iomp = report.one("vendored-runtime", str(broken.iomp))
    assert "libiomp5.so" in iomp["message"] and "nativelib-iomp" in iomp["message"]


def test_cuda_major_the_driver_cannot_run(broken: Broken, report: Result) -> None:
    found = report.one("cuda-driver-too-old")
    assert found["severity"] == "error" and found["files"] == [str(broken.cudart)]
    assert "the kernel driver is 550.54.14, CUDA 13 needs 580.65.06" in found["message"]
    assert "580.65.06" in found["hint"]
    new_enough = run_doctor(
        broken.env, extra_env={**broken.extra_env, "NATIVELIB_CUDA_DRIVER": "580.65.06"}
    )
    assert "cuda-driver-too-old" not in new_enough.codes
    no_driver = run_doctor(
        broken.env, extra_env={**broken.extra_env, "NATIVELIB_CUDA_DRIVER": "none"}
    )
    assert "cuda-driver-too-old" not in no_driver.codes
    calm = no_driver.one("cuda-no-driver")
    assert calm["severity"] == "info" and calm["files"] == [str(broken.cudart)]


def test_runtime_dependency_missing(tmp_path: Path, gfortran_wheel: Path) -> None:
    """nativelib-gfortran5 (the host's libgfortran) without nativelib-cxx14, in a
    --target directory."""
    env = Env(tmp_path / "t", "target")
    env.install(gfortran_wheel)
    result = run_doctor(env)
    found = result.one("runtime-dependency-missing", "nativelib-gfortran5")
    assert "depends on nativelib-cxx14" in found["message"]
    assert found["hint"].startswith('pip install "nativelib-cxx14')
    assert result.code == 1
    gfortran = result.doc["runtimes"][0]
    assert gfortran["name"] == "nativelib-gfortran5" and gfortran["record"] == "verified"


def test_cuda_runtime_wheel_against_the_driver(tmp_path: Path) -> None:
    """An installed nativelib-cudart-cu12 12.9.79 (toolkit 12.9 wants driver 575.51.03;
    CUDA 12 needs 525.60.13 at all), in a --target directory."""
    env = Env(tmp_path / "t", "target")
    env.install(stub_cudart_wheel(tmp_path / "cuda"))
    lib = str(env.site / "nativelib.prefix/lib/libcudart.so.12")
    below = run_doctor(env, extra_env={"NATIVELIB_CUDA_DRIVER": "550.54.14"})
    found = below.one("cuda-driver-below-toolkit")
    assert found["files"] == [lib] and found["severity"] == "warning"
    assert (
        "nativelib-cudart-cu12 12.9.79 wants NVIDIA driver 575.51.03 or newer" in found["message"]
    )
    # The prefix's own copy is no vendored copy. (Other findings may come from the base
    # Python's site-packages, which a --target layout shares.)
    assert not [f for f in below.findings("vendored-runtime") if lib in f["files"]]
    old = run_doctor(env, extra_env={"NATIVELIB_CUDA_DRIVER": "520.61.05"})
    assert "CUDA 12 needs 525.60.13" in old.one("cuda-driver-too-old")["message"]
    assert old.code == 1 and "cuda-driver-below-toolkit" not in old.codes
    fine = run_doctor(env, extra_env={"NATIVELIB_CUDA_DRIVER": "575.51.03"})
    assert not {c for c in fine.codes if c.startswith("cuda")}


def test_prefix_permissions_are_the_loaders(broken: Broken) -> None:
    """The same prefix, once fixed, is not reported (the finding is not a constant)."""
    manifests = broken.env.site / "nativelib.prefix/share/nativelib/runtimes"
    mode = stat.S_IMODE(manifests.stat().st_mode)
    manifests.chmod(0o755)
    try:
        again = run_doctor(broken.env, extra_env=broken.extra_env)
    finally:
        manifests.chmod(mode)
    assert "runtime-prefix-unsafe" not in again.codes
