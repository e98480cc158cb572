"""The doctor reads RECORDs with the wheel readers' parser (nativelib.wheelfile.record):
the cases where its own copy (a substring search, a lenient csv loop) disagreed."""

from __future__ import annotations

import base64
import hashlib
import os
from pathlib import Path
from types import SimpleNamespace

from nativelib.doctor.hostfacts import ElfCache
from nativelib.doctor.installed import SiteDistributions, _SiteCheck

DIST_INFO = "nativelib_foo-1.0.dist-info"


def _digest(data: bytes, algorithm: str = "sha256") -> str:
    return base64.urlsafe_b64encode(hashlib.new(algorithm, data).digest()).rstrip(b"=").decode()


def _site(tmp_path: Path, record: str) -> Path:
    site = tmp_path / "site"
    (site / DIST_INFO).mkdir(parents=True)
    (site / DIST_INFO / "METADATA").write_text("Name: nativelib-foo\nVersion: 1.0\n\n")
    (site / DIST_INFO / "RECORD").write_text(record)
    return site


def _check(site: Path) -> tuple[str, _SiteCheck]:
    check = _SiteCheck(str(site), SiteDistributions(str(site)), ElfCache())
    manifest = SimpleNamespace(name="nativelib-foo", version="1.0", filename="x.json")
    state, _status = check.verify_record(manifest, DIST_INFO, {})  # type: ignore[arg-type]
    return state, check


def test_owner_of_a_path_that_csv_quotes(tmp_path: Path) -> None:
    # The substring search looked for "\n<path>," and missed quoted rows.
    site = _site(tmp_path, f'"pkg/a,b.so",sha256={_digest(b"x")},1\n{DIST_INFO}/RECORD,,\n')
    (site / "pkg").mkdir()
    (site / "pkg/a,b.so").write_bytes(b"x")
    dists = SiteDistributions(str(site))
    assert dists.owner(os.path.realpath(site / "pkg/a,b.so")) == "nativelib-foo 1.0"
    assert dists.owner(os.path.realpath(site / "pkg/other.so")) is None


def test_malformed_record_is_not_verified_against(tmp_path: Path) -> None:
    # The lenient loop took the rows it could and called the runtime verified.
    site = _site(tmp_path, f"lib/x.so,sha256={_digest(b'x')},1\nlib/x.so,,\n")
    (site / "lib").mkdir()
    (site / "lib/x.so").write_bytes(b"x")
    state, check = _check(site)
    assert state == "missing"
    (found,) = check.findings
    assert found.code == "runtime-record-missing"
    assert "its RECORD is malformed (RECORD line 2: 'lib/x.so' is listed twice)" in found.message
    # A malformed RECORD names no owner either.
    assert SiteDistributions(str(site)).owner(os.path.realpath(site / "lib/x.so")) is None


def test_rows_hashed_with_a_stronger_algorithm_are_verified(tmp_path: Path) -> None:
    # The doctor skipped every row not hashed with sha256.
    site = _site(tmp_path, f"lib/x.so,sha512={_digest(b'x', 'sha512')},1\n{DIST_INFO}/RECORD,,\n")
    (site / "lib").mkdir()
    (site / "lib/x.so").write_bytes(b"x")
    assert _check(site)[0] == "verified"
    (site / "lib/x.so").write_bytes(b"y")
    state, check = _check(site)
    assert state == "mismatch"
    assert [f.code for f in check.findings] == ["runtime-file-modified"]
    assert "(sha512 " in check.findings[0].message
