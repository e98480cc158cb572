"""Files that are not what they claim (issue 13, items 6 and 7): a FIFO, a device or a
symlink in place of a RECORD, METADATA, manifest, loader index, prefix library or wheel
never makes a reader hang; a RECORD path that leaves its site directory is a finding and
is never opened. Every command runs in a child with a timeout: a hang fails the test."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
from doctor_support import gcc, run_doctor

from nativelib.elf import read_elf
from nativelib.prefix import Library, Manifest, Provenance, load_order, loader_index
from nativelib_testing import SRC, Env, write_wheel_members

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc")

DIST_INFO = "nativelib_nlx-1.0.dist-info"
LIB = "nativelib.prefix/lib/libnlx.so.1"
MANIFEST = "nativelib.prefix/share/nativelib/runtimes/nativelib-nlx.json"
INDEX = "nativelib.prefix/share/nativelib/runtimes/nativelib-nlx.load"
#: Every run is expected to take seconds; a reader that blocks runs into this.
TIMEOUT = 60


def _runtime_wheel(dest: Path) -> Path:
    """A tiny runtime wheel, nativelib-nlx 1.0 (libnlx.so.1 in the common prefix, its
    manifest and loader index), with a console script, as pip installs one."""
    lib = gcc(
        dest / "build" / "libnlx.so.1", "int nlx(void) { return 1; }\n", "-Wl,-soname,libnlx.so.1"
    )
    data = lib.read_bytes()
    info = read_elf(lib)
    library = Library(
        soname="libnlx.so.1",
        file="lib/libnlx.so.1",
        sha256=hashlib.sha256(data).hexdigest(),
        size=len(data),
        version_definitions=info.version_definitions,
        needed=info.needed,
        version_needs={},
        implicit_needs=(),
    )
    manifest = Manifest(
        name="nativelib-nlx",
        version="1.0",
        libraries=(library,),
        load_order=load_order((library,)),
        dependencies=(),
        provenance=Provenance(
            source="test", kind="file", license="MIT", license_files=(), packages=()
        ),
        platform_tag="linux_x86_64",
        headers=(),
    )
    return write_wheel_members(
        dest / "nativelib_nlx-1.0-py3-none-linux_x86_64.whl",
        {
            LIB: data,
            MANIFEST: manifest.to_json().encode(),
            INDEX: loader_index(manifest).encode(),
            "nlx_tool.py": b"def main():\n    return 0\n",
            f"{DIST_INFO}/METADATA": b"Metadata-Version: 2.1\nName: nativelib-nlx\nVersion: 1.0\n\n",
            f"{DIST_INFO}/WHEEL": (
                b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: false\n"
                b"Tag: py3-none-linux_x86_64\n"
            ),
            f"{DIST_INFO}/entry_points.txt": b"[console_scripts]\nnlx-tool = nlx_tool:main\n",
        },
    )


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _runtime_wheel(tmp_path_factory.mktemp("nlx"))


def _site(tmp_path: Path, wheel: Path) -> Path:
    """The wheel unpacked as installed (its RECORD lists every file with its digest), in
    a site directory of its own, given to the doctor with ``--path``."""
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as zf:
        zf.extractall(site)
    return site


def _fifo(path: Path) -> Path:
    path.unlink(missing_ok=True)
    os.mkfifo(path)
    return path


def _doctor(site: Path) -> tuple[set[str], dict[str, list[dict[str, object]]]]:
    result = run_doctor(None, "--path", str(site), timeout=TIMEOUT)
    by_code: dict[str, list[dict[str, object]]] = {}
    for f in result.doc["findings"]:
        by_code.setdefault(f["code"], []).append(f)
    return result.codes, by_code


def test_the_unpacked_runtime_is_clean(tmp_path: Path, wheel: Path) -> None:
    codes, _ = _doctor(_site(tmp_path, wheel))
    assert not codes & {
        "runtime-file-modified",
        "runtime-record-missing",
        "runtime-record-outside",
        "runtime-manifest-invalid",
        "runtime-index-mismatch",
        "dist-info-unreadable",
    }, codes


@pytest.mark.parametrize(
    ("member", "code"),
    [
        (LIB, "runtime-file-unreadable"),
        (f"{DIST_INFO}/RECORD", "runtime-record-missing"),
        (f"{DIST_INFO}/METADATA", "dist-info-unreadable"),
        (MANIFEST, "runtime-manifest-invalid"),
        (INDEX, "runtime-index-mismatch"),
    ],
)
def test_a_fifo_in_place_of_a_file_is_a_finding(
    tmp_path: Path, wheel: Path, member: str, code: str
) -> None:
    site = _site(tmp_path, wheel)
    fifo = _fifo(site / member)
    _, found = _doctor(site)
    (f,) = [f for f in found.get(code, []) if "FIFO" in str(f["message"])]
    assert str(fifo) in f["files"] or member.rsplit("/", 1)[-1] in str(f["message"])


def test_a_fifo_as_another_distributions_record(tmp_path: Path, wheel: Path) -> None:
    # pip's own RECORD (any distribution's, not only a runtime's) is read for owners.
    site = _site(tmp_path, wheel)
    other = site / "pip-24.0.dist-info"
    other.mkdir()
    (other / "METADATA").write_text("Name: pip\nVersion: 24.0\n\n")
    fifo = _fifo(other / "RECORD")
    _, found = _doctor(site)
    (f,) = [f for f in found["dist-info-unreadable"] if f["files"] == [str(fifo)]]
    assert "not a regular file: it is a FIFO" in str(f["message"])


def test_a_fifo_named_json_beside_the_manifests(tmp_path: Path, wheel: Path) -> None:
    site = _site(tmp_path, wheel)
    fifo = _fifo(site / "nativelib.prefix/share/nativelib/runtimes/evil.json")
    _, found = _doctor(site)
    (f,) = [f for f in found["runtime-manifest-invalid"] if f["files"] == [str(fifo)]]
    assert "not a regular file: it is a FIFO" in str(f["message"])
    # The real manifest beside it was still checked.
    assert "runtime-record-missing" not in found


def _add_record_rows(site: Path, *rows: str) -> None:
    record = site / DIST_INFO / "RECORD"
    record.write_text(record.read_text() + "".join(f"{r}\n" for r in rows))


def test_a_record_line_naming_a_device(tmp_path: Path, wheel: Path) -> None:
    site = _site(tmp_path, wheel)
    # Inside the site, a symlink to /dev/zero; and /dev/zero itself, absolute.
    os.symlink("/dev/zero", site / "nativelib.prefix/lib/zero")
    _add_record_rows(site, "nativelib.prefix/lib/zero,sha256=AAAA,1", "/dev/zero,sha256=AAAA,1")
    _, found = _doctor(site)
    (link,) = [f for f in found["runtime-file-modified"] if "lib/zero" in str(f["message"])]
    assert "symbolic link" in str(link["message"])
    (outside,) = found["runtime-record-outside"]
    assert "'/dev/zero'" in str(outside["message"])


def test_record_paths_out_of_the_site_are_never_opened(tmp_path: Path, wheel: Path) -> None:
    site = _site(tmp_path, wheel)
    secrets = tmp_path / "elsewhere"
    secrets.mkdir()
    secret = secrets / "shadow"
    secret.write_bytes(b"root:$6$secret:19000:0:99999:7:::\n")
    digest = hashlib.sha256(secret.read_bytes()).digest()
    import base64  # noqa: PLC0415

    shown = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    # A FIFO out there: opened (even to hash it) without O_NONBLOCK, it would hang; with
    # it, it would be refused as a FIFO, which the message would say.
    trap = _fifo(secrets / "trap")
    up = os.path.relpath(secrets, site)
    assert up.startswith("..")
    _add_record_rows(
        site,
        f"{up}/shadow,sha256=AAAA,1",
        f"{up}/trap,sha256=AAAA,1",
        "nativelib.prefix/../../elsewhere/shadow,sha256=AAAA,1",
    )
    result = run_doctor(None, "--path", str(site), timeout=TIMEOUT)
    found = result.findings("runtime-record-outside")
    assert len(found) == 3, found
    assert {f["files"][0] for f in found} == {str(site / DIST_INFO / "RECORD")}
    assert any(f"{up}/shadow" in f["message"] for f in found)
    everything = str(result.doc) + result.stderr
    assert shown not in everything and "FIFO" not in everything
    assert trap.exists() and not result.findings("runtime-file-modified")


def test_a_symlinked_directory_leading_out_is_never_followed(tmp_path: Path, wheel: Path) -> None:
    site = _site(tmp_path, wheel)
    secrets = tmp_path / "elsewhere"
    secrets.mkdir()
    _fifo(secrets / "trap")
    os.symlink(secrets, site / "nativelib.prefix/escape")
    _add_record_rows(site, "nativelib.prefix/escape/trap,sha256=AAAA,1")
    result = run_doctor(None, "--path", str(site), timeout=TIMEOUT)
    (f,) = result.findings("runtime-record-outside")
    assert "nativelib.prefix/escape/trap" in f["message"]
    assert "FIFO" not in str(result.doc)


def test_pips_own_layout_gives_no_finding(tmp_path: Path, wheel: Path) -> None:
    """pip installs the console script as ``../../../bin/nlx-tool`` in RECORD: it leaves
    site-packages but stays in the venv; it is verified like every other file."""
    env = Env(tmp_path / "env", "venv")
    env.install(wheel)
    record = (env.site / DIST_INFO / "RECORD").read_text()
    assert "../../../bin/nlx-tool," in record
    result = run_doctor(env, timeout=TIMEOUT * 3)
    assert not result.findings("runtime-record-outside"), result.doc["findings"]
    assert not result.findings("runtime-file-modified"), result.doc["findings"]
    (runtime,) = [r for r in result.doc["runtimes"] if r["name"] == "nativelib-nlx"]
    assert runtime["record"] == "verified"
    # The script is hashed, so a change to it is seen.
    (env.root / "venv/bin/nlx-tool").write_text("#!/bin/sh\necho changed\n")
    result = run_doctor(env, timeout=TIMEOUT * 3)
    (f,) = result.findings("runtime-file-modified")
    assert "../../../bin/nlx-tool" in f["message"]


def test_load_with_a_fifo_index_returns_promptly(tmp_path: Path, wheel: Path) -> None:
    site = _site(tmp_path, wheel)
    fifo = _fifo(site / INDEX)
    code = (
        "import sys, nativelib\n"
        f"sys.path.insert(0, {str(site)!r})\n"
        "try:\n"
        "    nativelib.load('nlx')\n"
        "except nativelib.NativeLibError as e:\n"
        "    print('refused:', type(e).__name__, e)\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("NATIVELIB")}
    start = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True,
        env={**env, "PYTHONPATH": str(SRC)}, timeout=TIMEOUT,
    )  # fmt: skip
    assert time.monotonic() - start < TIMEOUT
    assert proc.returncode == 0, proc.stderr
    # The error names the refused index and why (issue 13 item 14), not "not installed".
    assert "refused: ManifestError" in proc.stdout and "FIFO" in proc.stdout
    assert "pip install nativelib-nlx" not in proc.stdout
    assert f"skipping {fifo}" in proc.stderr and "FIFO" in proc.stderr


def test_repair_of_a_fifo_exits_2(tmp_path: Path) -> None:
    fifo = _fifo(tmp_path / "pkg-1.0-cp311-cp311-linux_x86_64.whl")
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "nativelib", "repair", str(fifo), "-w", str(out)],
        capture_output=True, text=True, timeout=TIMEOUT,
        env={**os.environ, "PYTHONPATH": str(SRC)},
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("error: "), proc.stderr
    assert str(fifo) in proc.stderr and "not a regular file: it is a FIFO" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not out.exists() or not any(out.iterdir())
