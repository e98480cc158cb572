"""The doctor on a runtime the loader refuses, or whose files it cannot read: a soname
that is not one file name in lib/ (a hostile manifest, index and RECORD that agree) is an
error, and an unreadable library is said to be unreadable, not changed."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from nativelib.doctor.hostfacts import ElfCache
from nativelib.doctor.installed import SiteDistributions, check_runtimes
from nativelib.doctor.model import Finding
from nativelib.prefix import loader_index, parse_manifest, soname_problem
from nativelib_testing import SRC

NAME, VERSION = "nativelib-foo", "1.0"
DIST_INFO = f"nativelib_foo-{VERSION}.dist-info"


def _digest(data: bytes) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def _runtime(site: Path, soname: str, data: bytes = b"\x7fELF not really") -> Path:
    """A runtime whose manifest, loader index and RECORD all agree on ``soname``; its
    library holds ``data`` at ``nativelib.prefix/lib/<soname>`` (unless the soname leaves
    lib/). Returns the prefix."""
    prefix = site / "nativelib.prefix"
    runtimes = prefix / "share/nativelib/runtimes"
    runtimes.mkdir(parents=True)
    (prefix / "lib").mkdir()
    doc = {
        "manifest_version": 1, "name": NAME, "version": VERSION,
        "platform_tag": "manylinux_2_17_x86_64",
        "libraries": [{
            "soname": soname, "file": f"lib/{soname}", "sha256": hashlib.sha256(data).hexdigest(),
            "size": len(data), "version_definitions": [], "needed": [], "version_needs": {},
            "implicit_needs": [],
        }],
        "load_order": [soname], "preload": [], "headers": [], "dependencies": [],
        "provenance": {"source": "local", "kind": "wheel", "license": None,
                       "license_files": [], "packages": []},
    }  # fmt: skip
    manifest_text = json.dumps(doc)
    manifest = parse_manifest(manifest_text, "test")
    (runtimes / f"{NAME}.json").write_text(manifest_text)
    (runtimes / f"{NAME}.load").write_text(loader_index(manifest))
    library = prefix / "lib" / soname if soname_problem(soname) is None else None
    if library is not None:
        library.write_bytes(data)
    rows = [
        f"nativelib.prefix/share/nativelib/runtimes/{NAME}{ext},"
        f"sha256={_digest((runtimes / f'{NAME}{ext}').read_bytes())},"
        f"{(runtimes / f'{NAME}{ext}').stat().st_size}"
        for ext in (".json", ".load")
    ]
    where = soname if soname.startswith("/") else f"nativelib.prefix/lib/{soname}"
    rows.append(f"{where},sha256={_digest(data)},{len(data)}")
    (site / DIST_INFO).mkdir()
    (site / DIST_INFO / "METADATA").write_text(f"Name: {NAME}\nVersion: {VERSION}\n\n")
    (site / DIST_INFO / "RECORD").write_text("\n".join([*rows, f"{DIST_INFO}/RECORD,,"]) + "\n")
    return prefix


def _findings(site: Path) -> list[Finding]:
    return check_runtimes(
        [str(site)], {str(site): SiteDistributions(str(site))}, ElfCache(), lambda s: None
    )[2]


def test_a_soname_outside_lib_is_an_error(tmp_path: Path) -> None:
    evil = tmp_path / "elsewhere" / "libevil.so"
    evil.parent.mkdir()
    evil.write_bytes(b"\x7fELF not really")
    prefix = _runtime(tmp_path / "site", str(evil), evil.read_bytes())
    found = _findings(tmp_path / "site")
    unsafe = [f for f in found if f.code == "runtime-soname-unsafe"]
    runtimes = prefix / "share/nativelib/runtimes"
    assert [f.files for f in unsafe] == [
        (str(runtimes / f"{NAME}.json"),),
        (str(runtimes / f"{NAME}.load"),),
    ]
    assert all(f.severity == "error" for f in unsafe)
    assert f"names the soname {str(evil)!r}, which is an absolute path" in unsafe[0].message
    assert "nativelib.load() refuses this runtime" in unsafe[0].message
    # Nothing else is said about a file the manifest names outside the prefix.
    assert not [f for f in found if f.code == "runtime-manifest-mismatch"]


@pytest.mark.parametrize("soname", ["../../elsewhere/libx.so.1", "sub/libx.so.1", ".."])
def test_sonames_that_are_not_one_file_name(tmp_path: Path, soname: str) -> None:
    _runtime(tmp_path / "site", soname)
    codes = [f.code for f in _findings(tmp_path / "site")]
    assert codes.count("runtime-soname-unsafe") == 2, codes


def test_a_directory_in_place_of_a_library_is_unreadable_not_changed(tmp_path: Path) -> None:
    prefix = _runtime(tmp_path / "site", "libfoo.so.1")
    library = prefix / "lib/libfoo.so.1"
    library.unlink()
    library.mkdir()
    found = _findings(tmp_path / "site")
    assert not [f for f in found if f.code == "runtime-file-modified"]
    (unreadable,) = [f for f in found if f.code == "runtime-file-unreadable"]
    assert unreadable.files == (str(library),) and unreadable.severity == "error"
    assert (
        "nativelib.prefix/lib/libfoo.so.1 cannot be read (it is a directory, not a regular "
        "file), so it cannot be checked against its RECORD" in unreadable.message
    )
    # Without a RECORD row, the manifest's check says the same.
    (tmp_path / "site" / DIST_INFO / "RECORD").write_text(f"{DIST_INFO}/RECORD,,\n")
    found = _findings(tmp_path / "site")
    (unreadable,) = [f for f in found if f.code == "runtime-file-unreadable"]
    assert "against its manifest" in unreadable.message
    assert not [f for f in found if f.code == "runtime-manifest-mismatch"]


PROBE = """
import json, sys
from nativelib.doctor.hostfacts import ElfCache
from nativelib.doctor.installed import SiteDistributions, check_runtimes
site = sys.argv[1]
found = check_runtimes([site], {site: SiteDistributions(site)}, ElfCache(), lambda s: None)[2]
print(json.dumps([[f.code, f.message] for f in found]))
"""


def test_a_library_without_read_permission_is_unreadable_not_changed(tmp_path: Path) -> None:
    wrapper: tuple[str, ...] = ()
    if os.geteuid() == 0:
        if shutil.which("setpriv") is None:
            pytest.skip("running as root without setpriv: a mode of 000 would not stop us")
        wrapper = ("setpriv", "--bounding-set", "-dac_override,-dac_read_search", "--")
    prefix = _runtime(tmp_path / "site", "libfoo.so.1")
    (prefix / "lib/libfoo.so.1").chmod(0)
    proc = subprocess.run(
        [*wrapper, sys.executable, "-c", PROBE, str(tmp_path / "site")],
        capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(SRC)},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    found = json.loads(proc.stdout)
    assert "runtime-file-modified" not in [code for code, _m in found]
    (message,) = [m for code, m in found if code == "runtime-file-unreadable"]
    assert "libfoo.so.1 cannot be read (Permission denied)" in message
