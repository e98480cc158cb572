"""The reproducible runtime-wheel writer and the wheel validator.

Real checks only: the wheels are installed with pip into a real venv and uninstalled
again, validated with installer and packaging, written from subprocesses with other
umasks, time zones and file orders, and tampered with byte by byte.

Run as a script, this file is the child process of the reproducibility and concurrency
tests: it builds the same plan from a prepared source directory and writes it.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import os
import random
import shutil
import stat
import subprocess
import sys
import tempfile
import time
import unicodedata
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from installer.sources import WheelFile as InstallerWheelFile
from packaging.metadata import Metadata
from packaging.utils import parse_wheel_filename

import nativelib
import nativelib.wheelfile.write as wheel_module
from nativelib.elf import read_elf
from nativelib.errors import WheelError
from nativelib.prefix import record_digest
from nativelib.wheelfile import (
    DEFAULT_DATE_TIME,
    WheelFile,
    WheelPlan,
    validate_wheel,
    write_wheel,
    zip_date_time,
)

HERE = Path(__file__).resolve()
TAG = "py3-none-manylinux_2_17_x86_64.manylinux2014_x86_64"
NAME = "nativelib-foo"
VERSION = "1.2.3"
FILENAME = f"nativelib_foo-1.2.3-{TAG}.whl"
DIST_INFO = "nativelib_foo-1.2.3.dist-info"
LIB = "nativelib.prefix/lib/libfoo.so.1"
HEADER = "nativelib.prefix/include/foo.h"
MANIFEST = "nativelib.prefix/share/nativelib/runtimes/nativelib-foo.json"
ODD = 'nativelib.prefix/share/doc/nativelib-foo/notes, "quoted" & caf\u00e9.txt'
REQUIRES = ("pynativelib>=0.1", "nativelib-cxx14>=12.2")
MANIFEST_JSON = b'{"distribution": "nativelib-foo", "libraries": ["libfoo.so.1"]}\n'
FOO_C = "int foo(void) { return 42; }\n"


# --------------------------------------------------------------------------- plans


def prepare_sources(root: Path, lib: bytes) -> None:
    """The source tree the plan reads: a real shared library, a header, licences."""
    (root / "lib").mkdir(parents=True, exist_ok=True)
    (root / "lib" / "libfoo.so.1").write_bytes(lib)
    (root / "foo.h").write_text("int foo(void);\n")
    (root / "COPYING.RUNTIME").write_text("GCC RUNTIME LIBRARY EXCEPTION\n")


def build_plan(root: Path, *, reverse: bool = False) -> WheelPlan:
    files = [
        WheelFile(LIB, source=root / "lib" / "libfoo.so.1", executable=True),
        WheelFile(HEADER, source=root / "foo.h"),
        WheelFile(MANIFEST, data=MANIFEST_JSON),
        WheelFile(ODD, data=b"a file whose name needs quoting in RECORD\n"),
    ]
    licenses = [
        WheelFile("LICENSE", data=b"MIT License\n\nCopyright (c) the foo authors\n"),
        WheelFile("gcc/COPYING.RUNTIME", source=root / "COPYING.RUNTIME"),
    ]
    if reverse:
        files.reverse()
        licenses.reverse()
    return WheelPlan(
        name=NAME,
        version=VERSION,
        tag=TAG,
        files=tuple(files),
        summary="The foo runtime library, for nativelib",
        requires_dist=REQUIRES,
        license_files=tuple(licenses),
        license_expression="MIT AND GPL-3.0-or-later WITH GCC-exception-3.1",
        requires_python=">=3.10",
        project_urls=(("Source", "https://example.invalid/foo"),),
        classifiers=("Operating System :: POSIX :: Linux",),
        description="# nativelib-foo\n\nThe foo runtime.\n",
        description_content_type="text/markdown",
    )


def data_plan(**overrides: Any) -> WheelPlan:
    """A plan without source files, with fields replaced by ``overrides``."""
    kwargs: dict[str, Any] = {
        "name": NAME,
        "version": VERSION,
        "tag": TAG,
        "files": (WheelFile(LIB, data=b"\x7fELF not really"),),
        "summary": "foo",
    }
    kwargs.update(overrides)
    return WheelPlan(**kwargs)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def listing(d: Path) -> list[str]:
    return sorted(p.name for p in d.iterdir()) if d.exists() else []


def _child(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--umask", type=lambda s: int(s, 8), default=0o022)
    parser.add_argument("--reverse", action="store_true")
    parser.add_argument("--go", type=Path)
    args = parser.parse_args(argv)
    os.umask(args.umask)
    plan = build_plan(args.root, reverse=args.reverse)
    if args.go is not None:
        deadline = time.monotonic() + 30
        while not args.go.exists() and time.monotonic() < deadline:
            time.sleep(0.001)
    print(write_wheel(plan, args.out))


def run_child(*args: str | Path, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    base = {k: v for k, v in os.environ.items() if k not in ("SOURCE_DATE_EPOCH", "TZ")}
    return subprocess.Popen(
        [sys.executable, str(HERE), *map(str, args)],
        env={**base, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_ok(proc: subprocess.Popen[str]) -> Path:
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    return Path(out.strip())


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def libfoo(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """A real, tiny ELF shared library with soname libfoo.so.1, compiled with gcc."""
    d = tmp_path_factory.mktemp("libfoo")
    (d / "foo.c").write_text(FOO_C)
    proc = subprocess.run(
        ["gcc", "-shared", "-fPIC", "-O1", "-Wl,-soname,libfoo.so.1", "-o", "libfoo.so.1", "foo.c"],
        cwd=d,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    info = read_elf(str(d / "libfoo.so.1"))
    assert info.soname == "libfoo.so.1"
    return (d / "libfoo.so.1").read_bytes()


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One fresh venv (with pip) per module: creating it is the slow part."""
    # Imported here: this file also runs as a script (run_child), with tests/ not on
    # sys.path.
    from nativelib_testing import make_venv  # noqa: PLC0415

    d = tmp_path_factory.mktemp("venv") / "venv"
    make_venv(d)
    return d


@pytest.fixture
def root(tmp_path: Path, libfoo: bytes) -> Path:
    r = tmp_path / "src"
    prepare_sources(r, libfoo)
    return r


@pytest.fixture(autouse=True)
def _no_env_epoch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)


# --------------------------------------------------------------------------- the plan


def test_plan_names_metadata_and_describe(root: Path) -> None:
    plan = build_plan(root)
    assert plan.filename == FILENAME
    assert plan.dist_info == DIST_INFO
    assert [str(t) for t in plan.tags] == [
        "py3-none-manylinux_2_17_x86_64",
        "py3-none-manylinux2014_x86_64",
    ]
    assert plan.metadata_version == "2.4"
    assert plan.metadata_lines() == [
        "Metadata-Version: 2.4",
        f"Name: {NAME}",
        f"Version: {VERSION}",
        "Summary: The foo runtime library, for nativelib",
        "License-Expression: MIT AND GPL-3.0-or-later WITH GCC-exception-3.1",
        "License-File: LICENSE",
        "License-File: gcc/COPYING.RUNTIME",
        "Project-URL: Source, https://example.invalid/foo",
        "Classifier: Operating System :: POSIX :: Linux",
        "Requires-Python: >=3.10",
        "Requires-Dist: pynativelib>=0.1",
        "Requires-Dist: nativelib-cxx14>=12.2",
        "Description-Content-Type: text/markdown",
    ]
    text = plan.describe()
    lib_size = (root / "lib" / "libfoo.so.1").stat().st_size
    assert f"wheel {FILENAME}" in text
    assert f"{lib_size}  0755  {LIB}" in text
    assert f"0644  {DIST_INFO}/licenses/gcc/COPYING.RUNTIME" in text
    assert f"{len(MANIFEST_JSON)}  0644  {MANIFEST}" in text
    assert "    Requires-Dist: nativelib-cxx14>=12.2" in text
    assert "    Tag: py3-none-manylinux2014_x86_64" in text
    assert "Root-Is-Purelib: false" in text
    assert f"Generator: nativelib {nativelib.__version__}" in text
    assert "(description: 3 lines)" in text
    # The order files are given in does not matter: the plan sorts them.
    assert build_plan(root, reverse=True) == plan
    assert build_plan(root, reverse=True).describe() == text


def test_plan_normalizes() -> None:
    plan = data_plan(
        name="Nativelib.Foo_Bar",
        version="1.0.0.RC1",
        requires_dist=("pynativelib >= 0.1",),
        license_expression="mit",
        tag="py3-none-linux_x86_64",
    )
    assert plan.version == "1.0.0rc1"
    assert plan.filename == "nativelib_foo_bar-1.0.0rc1-py3-none-linux_x86_64.whl"
    assert plan.dist_info == "nativelib_foo_bar-1.0.0rc1.dist-info"
    assert plan.requires_dist == ("pynativelib>=0.1",)
    assert plan.license_expression == "MIT"
    # Without a licence expression or licence files the metadata is 2.1.
    assert data_plan().metadata_version == "2.1"
    assert data_plan(license_files=(WheelFile("L", data=b"x"),)).metadata_version == "2.4"


# --------------------------------------------------------------------------- install


def test_write_validate_pip_install_and_uninstall(root: Path, tmp_path: Path, venv: Path) -> None:
    plan = build_plan(root)
    out = tmp_path / "dist"
    path = write_wheel(plan, out)
    assert path == out / FILENAME
    assert listing(out) == [FILENAME]
    validate_wheel(path)

    # The checks threats.md §2 names, called directly here, not only through validate_wheel.
    name, version, _, tags = parse_wheel_filename(path.name)
    assert (name, str(version)) == (NAME, VERSION)
    assert {str(t) for t in tags} == {str(t) for t in plan.tags}
    with zipfile.ZipFile(path) as zf:
        InstallerWheelFile(zf).validate_record(validate_contents=True)
        metadata = Metadata.from_email(zf.read(f"{DIST_INFO}/METADATA"), validate=True)
        infos = zf.infolist()
        wheel_text = zf.read(f"{DIST_INFO}/WHEEL").decode()
    assert metadata.requires_dist is not None
    assert [str(r) for r in metadata.requires_dist] == list(REQUIRES)
    assert metadata.license_files == ["LICENSE", "gcc/COPYING.RUNTIME"]
    assert metadata.description == "# nativelib-foo\n\nThe foo runtime.\n"
    assert wheel_text == (
        "Wheel-Version: 1.0\n"
        f"Generator: nativelib {nativelib.__version__}\n"
        "Root-Is-Purelib: false\n"
        "Tag: py3-none-manylinux_2_17_x86_64\n"
        "Tag: py3-none-manylinux2014_x86_64\n"
    )
    # Sorted entries, .dist-info last, RECORD very last; fixed time and modes.
    assert [i.filename for i in infos] == [
        HEADER,
        LIB,
        ODD,
        MANIFEST,
        f"{DIST_INFO}/licenses/LICENSE",
        f"{DIST_INFO}/licenses/gcc/COPYING.RUNTIME",
        f"{DIST_INFO}/METADATA",
        f"{DIST_INFO}/WHEEL",
        f"{DIST_INFO}/RECORD",
    ]
    for info in infos:
        assert info.date_time == DEFAULT_DATE_TIME
        assert info.create_system == 3
        assert info.compress_type == zipfile.ZIP_DEFLATED
        mode = 0o100755 if info.filename == LIB else 0o100644
        assert info.external_attr >> 16 == mode, info.filename

    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    pip = [str(venv / "bin" / "python"), "-m", "pip"]
    proc = subprocess.run(
        [*pip, "install", "--no-index", "--no-deps", str(path)],
        capture_output=True,
        text=True,
        env=env,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    site = Path(
        subprocess.run(
            [
                str(venv / "bin" / "python"),
                "-c",
                "import sysconfig; print(sysconfig.get_path('platlib'))",
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    assert (
        site
        == venv / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}" / "site-packages"
    )
    installed = site / LIB
    assert installed.read_bytes() == (root / "lib" / "libfoo.so.1").read_bytes()
    assert installed.stat().st_mode & 0o111  # the executable bit survived
    assert (site / HEADER).read_text() == "int foo(void);\n"
    assert (site / MANIFEST).read_bytes() == MANIFEST_JSON
    assert (site / ODD).is_file()
    licenses = site / DIST_INFO / "licenses"
    assert (licenses / "LICENSE").read_bytes().startswith(b"MIT License")
    assert (licenses / "gcc" / "COPYING.RUNTIME").read_text() == "GCC RUNTIME LIBRARY EXCEPTION\n"
    # The installed library is a working shared object.
    load = subprocess.run(
        [
            str(venv / "bin" / "python"),
            "-c",
            f"import ctypes; print(ctypes.CDLL({str(installed)!r}).foo())",
        ],
        capture_output=True,
        text=True,
    )
    assert load.stdout.strip() == "42", load.stderr

    show = subprocess.run([*pip, "show", NAME], capture_output=True, text=True, env=env)
    assert show.returncode == 0, show.stderr
    fields = dict(line.split(": ", 1) for line in show.stdout.splitlines() if ": " in line)
    assert fields["Name"] == NAME
    assert fields["Version"] == VERSION
    assert sorted(fields["Requires"].split(", ")) == ["nativelib-cxx14", "pynativelib"]

    proc = subprocess.run([*pip, "uninstall", "-y", NAME], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert not (site / DIST_INFO).exists()
    for arcname in (LIB, HEADER, MANIFEST, ODD):
        assert not (site / arcname).exists(), arcname
    # pip may leave empty directories behind (the prefix is shared), but no file.
    assert [p for p in (site / "nativelib.prefix").rglob("*") if not p.is_dir()] == []


# --------------------------------------------------------------------------- reproducible


def test_reproducible_across_umask_tz_mtimes_and_order(root: Path, tmp_path: Path) -> None:
    first = wait_ok(
        run_child("--root", root, "--out", tmp_path / "a", "--umask", "022", env={"TZ": "UTC"})
    )
    # Touch every source file: other mtimes, and a different atime.
    for p in root.rglob("*"):
        os.utime(p, (1_234_567_890, 1_999_999_999))
    second = wait_ok(
        run_child(
            "--root",
            root,
            "--out",
            tmp_path / "b",
            "--umask",
            "077",
            "--reverse",
            env={"TZ": "Asia/Tokyo"},
        )
    )
    assert first.name == second.name == FILENAME
    assert sha256(first) == sha256(second)
    # The umask did reach the children: it shows in the wheel files' own modes only.
    assert stat.S_IMODE(first.stat().st_mode) == 0o644
    assert stat.S_IMODE(second.stat().st_mode) == 0o600
    # And in this process, with yet another order and the current time later.
    third = write_wheel(build_plan(root, reverse=True), tmp_path / "c")
    assert sha256(third) == sha256(first)


def test_source_date_epoch(root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    plan = build_plan(root)
    default = sha256(write_wheel(plan, tmp_path / "default"))

    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    from_env = write_wheel(plan, tmp_path / "env")
    assert sha256(from_env) != default
    with zipfile.ZipFile(from_env) as zf:
        assert {i.date_time for i in zf.infolist()} == {(2023, 11, 14, 22, 13, 20)}
    validate_wheel(from_env)
    # The keyword wins over the environment.
    kw = write_wheel(plan, tmp_path / "kw", source_date_epoch=1_700_000_000)
    assert sha256(kw) == sha256(from_env)
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "")
    assert sha256(write_wheel(plan, tmp_path / "empty")) == default
    monkeypatch.delenv("SOURCE_DATE_EPOCH")

    # Before 1980 (even negative) clamps to the zip minimum, which is also the default.
    for i, early in enumerate((0, -86400, 315_532_799)):
        assert sha256(write_wheel(plan, tmp_path / f"early{i}", source_date_epoch=early)) == default
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "-1")
    assert sha256(write_wheel(plan, tmp_path / "early-env")) == default
    monkeypatch.delenv("SOURCE_DATE_EPOCH")

    # After 2107 clamps to the last second a DOS date can hold.
    late = write_wheel(plan, tmp_path / "late", source_date_epoch=10**12)
    with zipfile.ZipFile(late) as zf:
        assert {i.date_time for i in zf.infolist()} == {(2107, 12, 31, 23, 59, 58)}
    assert zip_date_time(4_354_819_199) == (2107, 12, 31, 23, 59, 58)  # 2107-12-31 23:59:59
    assert zip_date_time(2**62) == (2107, 12, 31, 23, 59, 58)
    validate_wheel(late)


def test_source_date_epoch_not_a_number(
    root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "yesterday")
    with pytest.raises(WheelError, match="SOURCE_DATE_EPOCH: 'yesterday' is not an integer") as e:
        write_wheel(build_plan(root), tmp_path / "out")
    assert e.value.path == str(tmp_path / "out" / FILENAME)
    assert listing(tmp_path / "out") == []


def test_concurrent_writers_of_one_plan(root: Path, tmp_path: Path) -> None:
    # A bigger file, so that the two writes overlap in time.
    big = random.Random(5).randbytes(6 << 20)
    (root / "lib" / "libfoo.so.1").write_bytes(big)
    out = tmp_path / "out"
    go = tmp_path / "go"
    procs = [run_child("--root", root, "--out", out, "--go", go) for _ in range(2)]
    time.sleep(0.3)  # let both start and wait on the go file
    go.touch()
    paths = [wait_ok(p) for p in procs]
    assert paths[0] == paths[1] == out / FILENAME
    assert listing(out) == [FILENAME]  # no temporary file left
    serial = write_wheel(build_plan(root), tmp_path / "serial")
    assert sha256(out / FILENAME) == sha256(serial)
    validate_wheel(out / FILENAME)


_NAME_CHARS = st.sampled_from(list("abcXYZ019_-.,\"' &+=\u00e9\u00df\u4e2d"))
_COMPONENT = st.text(_NAME_CHARS, min_size=1, max_size=8).filter(lambda s: s not in (".", ".."))
_ARCNAME = st.lists(_COMPONENT, min_size=1, max_size=3).map("/".join)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    files=st.dictionaries(_ARCNAME, st.binary(max_size=200), min_size=1, max_size=6),
    seed=st.integers(0, 2**32),
)
def test_any_safe_names_roundtrip_and_order_does_not_matter(
    files: dict[str, bytes], seed: int
) -> None:
    keys = {unicodedata.normalize("NFC", k) for k in files}
    names = sorted(files)
    if (
        len(keys) != len(names)
        or any(b.startswith(a + "/") for a in names for b in names)
        or any(n.split("/")[0].lower().endswith((".dist-info", ".data")) for n in names)
    ):
        with pytest.raises(WheelError):
            data_plan(files=tuple(WheelFile(n, data=files[n]) for n in names))
        return
    shuffled = names[:]
    random.Random(seed).shuffle(shuffled)
    with tempfile.TemporaryDirectory() as d:
        a = write_wheel(
            data_plan(files=tuple(WheelFile(n, data=files[n]) for n in names)), Path(d) / "a"
        )
        b = write_wheel(
            data_plan(files=tuple(WheelFile(n, data=files[n]) for n in shuffled)), Path(d) / "b"
        )
        assert a.read_bytes() == b.read_bytes()
        validate_wheel(a)
        with zipfile.ZipFile(a) as zf:
            record = zf.read(f"{DIST_INFO}/RECORD").decode()
            rows = list(csv.reader(io.StringIO(record)))
            assert [r[0] for r in rows[:-3]] == names
            for n in names:
                assert zf.read(n) == files[n]


# --------------------------------------------------------------------------- invalid plans


@pytest.mark.parametrize(
    ("arcname", "kwargs", "reason"),
    [
        ("", {"data": b""}, "non-empty string"),
        ("../escape", {"data": b""}, "'..' components"),
        ("a/../../escape", {"data": b""}, "'..' components"),
        ("/abs/path", {"data": b""}, "relative, not absolute"),
        ("a\\b", {"data": b""}, "no backslash"),
        ("a//b", {"data": b""}, "empty components"),
        ("a/", {"data": b""}, "empty components"),
        ("./a", {"data": b""}, "'.' components"),
        ("a/\nb", {"data": b""}, "control characters or line breaks"),
        ("a\u2028b", {"data": b""}, "control characters or line breaks"),
        ("a\udcffb", {"data": b""}, "lone surrogates"),
        ("a", {}, "exactly one of data and source"),
        ("a", {"data": b"", "source": Path("/etc/hostname")}, "exactly one of data and source"),
    ],
)
def test_invalid_wheel_file(arcname: str, kwargs: dict[str, Any], reason: str) -> None:
    with pytest.raises(WheelError) as e:
        WheelFile(arcname, **kwargs)
    assert reason in e.value.reason
    assert e.value.path == repr(arcname)


def test_wheel_file_coerces_bytes_like_and_str_paths(tmp_path: Path) -> None:
    f = WheelFile("a", data=bytearray(b"xy"))  # type: ignore[arg-type]
    assert type(f.data) is bytes and f.data == b"xy"
    hash(f)  # a plan is a frozen, hashable value
    (tmp_path / "s").write_bytes(b"abc")
    g = WheelFile("b", source=str(tmp_path / "s"))  # type: ignore[arg-type]
    assert g.source == tmp_path / "s"
    assert g.size() == 3


def test_licence_path_that_escapes() -> None:
    with pytest.raises(WheelError, match=r"'\.\./LICENSE'.*'\.\.' components"):
        data_plan(license_files=(WheelFile("../LICENSE", data=b"x"),))


_LIB = WheelFile(LIB, data=b"x")


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"name": "-foo"}, "invalid distribution name '-foo'"),
        ({"name": "foo bar"}, "invalid distribution name 'foo bar'"),
        ({"name": ""}, "invalid distribution name ''"),
        ({"version": "1.0-foo-bar"}, "invalid version '1.0-foo-bar'"),
        ({"version": "latest"}, "invalid version 'latest'"),
        ({"tag": "py3-none"}, "expected interpreter-abi-platform (3 parts)"),
        ({"tag": "py3-none-any-x"}, "expected interpreter-abi-platform (3 parts)"),
        ({"tag": "py3--linux_x86_64"}, "'' is not made of lowercase"),
        ({"tag": "py3-none-linux_x86_64."}, "'' is not made of lowercase"),
        ({"tag": "py3-none-Linux_x86_64"}, "'Linux_x86_64' is not made of lowercase"),
        ({"tag": "py3-none-linux x86_64"}, "'linux x86_64' is not made of lowercase"),
        ({"tag": 3}, "invalid tag 3: not a string"),
        ({"tag": "3py-none-any"}, "interpreter '3py' must start with a letter"),
        ({"tag": "py3.311-none-any"}, "interpreter '311' must start with a letter"),
        ({"requires_dist": ("foo>>1",)}, "invalid requirement 'foo>>1'"),
        ({"requires_dist": ("ok", "bad name")}, "invalid requirement 'bad name'"),
        ({"requires_python": ">=3.x"}, "invalid Requires-Python '>=3.x'"),
        ({"requires_python": ">=3.10\nX: y"}, "Requires-Python must be a single line"),
        ({"license_expression": "MIT OR"}, "invalid license expression 'MIT OR'"),
        ({"license_expression": "Not-A-Licence"}, "invalid license expression"),
        ({"summary": "two\nlines"}, "summary must be a single line"),
        ({"summary": "line\rsep"}, "summary must be a single line"),
        ({"summary": "  "}, "summary must not be empty"),
        ({"summary": None}, "summary must be a string, not NoneType"),
        ({"project_urls": (("a, b", "https://x"),)}, "label must not contain ','"),
        ({"project_urls": (("Home", ""),)}, "a Project-URL must not be empty"),
        ({"project_urls": (("Home", "https://x\nEvil: 1"),)}, "a Project-URL must be a single"),
        ({"classifiers": ("A :: B\nC",)}, "a classifier must be a single line"),
        ({"description_content_type": "text/html"}, "invalid Description-Content-Type"),
        (
            {"description_content_type": "text/plain; charset=UTF-8\nX: 1"},
            "Description-Content-Type must be a single line",
        ),
        ({"files": (_LIB, WheelFile(LIB, data=b"y"))}, f"duplicate archive name {LIB!r}"),
        (
            {"files": (WheelFile("caf\u00e9", data=b""), WheelFile("cafe\u0301", data=b""))},
            "duplicate archive name",
        ),
        ({"files": (WheelFile("a", data=b""), WheelFile("a/b", data=b""))}, "'a' is a file and"),
        (
            {"files": (WheelFile(f"{DIST_INFO}/licenses/LICENSE", data=b""),)},
            f"collides with the .dist-info directory {DIST_INFO!r}",
        ),
        (
            {"files": (WheelFile(f"{DIST_INFO}/RECORD", data=b""),)},
            "collides with the .dist-info directory",
        ),
        (
            {"files": (WheelFile("other-1.0.dist-info/METADATA", data=b""),)},
            "would make a second .dist-info directory 'other-1.0.dist-info'",
        ),
        (
            {"files": (WheelFile("nativelib_foo-1.2.3.data/scripts/x", data=b""),)},
            "inside a .data directory",
        ),
        (
            {"license_files": (WheelFile("LICENSE", data=b""), WheelFile("LICENSE", data=b""))},
            "duplicate licence file 'LICENSE'",
        ),
        (
            {"license_files": (WheelFile("gcc", data=b""), WheelFile("gcc/COPYING", data=b""))},
            "licence file 'gcc' is also the directory of 'gcc/COPYING'",
        ),
    ],
)
def test_invalid_plan(overrides: dict[str, Any], reason: str) -> None:
    with pytest.raises(WheelError) as e:
        data_plan(**overrides)
    assert reason in e.value.reason
    assert e.value.path.startswith("wheel plan ")
    assert str(e.value).startswith("wheel plan ")


@pytest.mark.parametrize("kind", ["missing", "directory", "fifo", "loop"])
def test_bad_source_file(kind: str, tmp_path: Path) -> None:
    src = tmp_path / "libfoo.so.1"
    if kind == "directory":
        src.mkdir()
    elif kind == "fifo":
        os.mkfifo(src)
    elif kind == "loop":
        src.symlink_to(src.name)
    plan = data_plan(files=(_LIB, WheelFile(HEADER, source=src)))
    expected = {
        "missing": f"source of {HEADER!r} does not exist",
        "directory": "is not a regular file (a directory)",
        "fifo": "is not a regular file (a FIFO)",
        "loop": "cannot be opened: Too many levels of symbolic links",
    }[kind]
    out = tmp_path / "out"
    with pytest.raises(WheelError) as e:
        write_wheel(plan, out)
    assert expected in e.value.reason
    assert e.value.path == str(src)
    assert listing(out) == []
    with pytest.raises(WheelError) as e2:
        plan.describe()  # --plan reports the same problem
    assert e2.value.reason == e.value.reason


def test_device_source_file(tmp_path: Path) -> None:
    plan = data_plan(files=(WheelFile(HEADER, source=Path("/dev/null")),))
    with pytest.raises(WheelError, match=r"is not a regular file \(a device\)"):
        write_wheel(plan, tmp_path / "out")
    assert listing(tmp_path / "out") == []


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc")
def test_source_that_changes_while_written(tmp_path: Path) -> None:
    # /proc files are regular files whose stat size (0) is not what reading them gives:
    # exactly a file that grows between the check and the write.
    plan = data_plan(files=(_LIB, WheelFile(HEADER, source=Path("/proc/self/status"))))
    out = tmp_path / "out"
    with pytest.raises(WheelError, match="changed while the wheel was written") as e:
        write_wheel(plan, out)
    assert "it had 0 bytes when checked and has more now" in e.value.reason
    assert listing(out) == []  # the temporary file is gone


@pytest.mark.skipif(not Path("/proc/self/mem").exists(), reason="needs Linux /proc")
def test_read_error_while_writing(tmp_path: Path) -> None:
    # Reading /proc/self/mem at offset 0 fails with EIO: an I/O error mid-write.
    plan = data_plan(files=(_LIB, WheelFile(HEADER, source=Path("/proc/self/mem"))))
    out = tmp_path / "out"
    with pytest.raises(WheelError, match=r"cannot write the wheel: .*Input/output error") as e:
        write_wheel(plan, out)
    assert e.value.path == str(out / plan.filename)
    assert listing(out) == []


def test_out_dir_is_a_file(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.write_text("not a directory")
    with pytest.raises(WheelError, match="cannot create a temporary file in"):
        write_wheel(data_plan(), out)
    assert out.read_text() == "not a directory"


def test_out_dir_is_created(tmp_path: Path) -> None:
    path = write_wheel(data_plan(), tmp_path / "a" / "b")
    assert path.parent == tmp_path / "a" / "b"
    validate_wheel(path)


def test_failed_validation_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[Path] = []

    def failing(path: Path, filename: str) -> None:
        seen.append(path)
        assert path.name.startswith(f".{filename}.") and path.name.endswith(".tmp")
        assert path.is_file()
        raise WheelError(str(path), "injected failure")

    monkeypatch.setattr(wheel_module, "_check_wheel", failing)
    out = tmp_path / "out"
    with pytest.raises(WheelError, match="the written wheel failed validation: injected") as e:
        write_wheel(data_plan(), out)
    assert e.value.path == str(out / data_plan().filename)
    assert seen and not seen[0].exists()
    assert listing(out) == []


def test_interrupt_mid_write_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = wheel_module._blocks  # reads one entry, block by block
    calls = 0

    def interrupted(*args: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise KeyboardInterrupt
        return real(*args)

    monkeypatch.setattr(wheel_module, "_blocks", interrupted)
    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        write_wheel(data_plan(), out)
    assert listing(out) == []


def test_existing_wheel_is_replaced_by_rename(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    old = out / data_plan().filename
    old.write_bytes(b"an old, broken wheel")
    before = old.stat().st_ino
    with old.open("rb") as reader:  # a reader of the old file keeps its content
        write_wheel(data_plan(), out)
        assert reader.read() == b"an old, broken wheel"
    assert old.stat().st_ino != before
    validate_wheel(old)


# --------------------------------------------------------------------------- validate_wheel


def rezip(
    src: Path,
    dst: Path,
    edit: Callable[[list[tuple[str, bytes]]], list[tuple[str, bytes]]],
    *,
    fix_record: bool = False,
) -> Path:
    """Copy a wheel with its members edited; optionally recompute RECORD to match."""
    with zipfile.ZipFile(src) as zf:
        members = [(i.filename, zf.read(i)) for i in zf.infolist()]
    members = edit(members)
    if fix_record:
        record_name = next(n for n, _ in members if n.endswith(".dist-info/RECORD"))
        rows = []
        for n, data in members:
            if n == record_name:
                rows.append([n, "", ""])
            else:
                digest = record_digest(hashlib.sha256(data).digest())
                rows.append([n, f"sha256={digest}", str(len(data))])
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerows(rows)
        members = [(n, buf.getvalue().encode() if n == record_name else d) for n, d in members]
    dst.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as zf:
        for n, data in members:
            zf.writestr(n, data)
    return dst


def replace(name: str, data: bytes) -> Callable[[list[tuple[str, bytes]]], list[tuple[str, bytes]]]:
    return lambda ms: [(n, data if n == name else d) for n, d in ms]


def rename_prefix(
    old: str, new: str
) -> Callable[[list[tuple[str, bytes]]], list[tuple[str, bytes]]]:
    return lambda ms: [(new + n[len(old) :] if n.startswith(old) else n, d) for n, d in ms]


@pytest.fixture
def good(root: Path, tmp_path: Path) -> Path:
    return write_wheel(build_plan(root), tmp_path / "good")


def flip_byte_in_member(src: Path, dst: Path, member: str) -> Path:
    data = bytearray(src.read_bytes())
    with zipfile.ZipFile(src) as zf:
        info = zf.getinfo(member)
    # The local header: 30 fixed bytes, then the name and the extra field.
    at = info.header_offset
    name_len = int.from_bytes(data[at + 26 : at + 28], "little")
    extra_len = int.from_bytes(data[at + 28 : at + 30], "little")
    start = at + 30 + name_len + extra_len
    data[start + info.compress_size // 2] ^= 0x01
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_bytes(bytes(data))
    return dst


def test_validate_tampered_wheels(good: Path, tmp_path: Path) -> None:
    """Each tampering of threats.md §2: a WheelError with its own reason."""
    with zipfile.ZipFile(good) as zf:
        lib = zf.read(LIB)
    cases: dict[str, tuple[Path, str]] = {
        "changed member": (
            rezip(good, tmp_path / "1" / FILENAME, replace(LIB, lib[:-1] + bytes([lib[-1] ^ 1]))),
            f"RECORD check failed: hash / size of {LIB} didn't match RECORD",
        ),
        "flipped byte": (
            flip_byte_in_member(good, tmp_path / "2" / FILENAME, LIB),
            "corrupt zip data:",
        ),
        "unlisted file": (
            rezip(
                good, tmp_path / "3" / FILENAME, lambda ms: [*ms, ("nativelib.prefix/extra", b"x")]
            ),
            "RECORD check failed: nativelib.prefix/extra is not mentioned in RECORD",
        ),
        "missing file": (
            rezip(good, tmp_path / "4" / FILENAME, lambda ms: [m for m in ms if m[0] != HEADER]),
            f"RECORD lists {HEADER!r}, which is not in the wheel",
        ),
        "two dist-info": (
            rezip(
                good,
                tmp_path / "5" / FILENAME,
                lambda ms: [*ms, ("other-1.0.dist-info/METADATA", b"Name: other\n")],
                fix_record=True,
            ),
            f"expected exactly one .dist-info directory, found 2: {DIST_INFO}, other-1.0.dist-info",
        ),
        "dist-info name": (
            rezip(
                good,
                tmp_path / "6" / FILENAME,
                rename_prefix(DIST_INFO, "nativelib_bar-1.2.3.dist-info"),
                fix_record=True,
            ),
            ".dist-info directory 'nativelib_bar-1.2.3.dist-info' does not match the file name"
            " (name 'nativelib-foo', version '1.2.3')",
        ),
        "dist-info version": (
            rezip(
                good,
                tmp_path / "7" / FILENAME,
                rename_prefix(DIST_INFO, "nativelib_foo-1.2.4.dist-info"),
                fix_record=True,
            ),
            ".dist-info directory 'nativelib_foo-1.2.4.dist-info' does not match",
        ),
        "wheel version 2": (
            rezip(
                good,
                tmp_path / "8" / FILENAME,
                replace(f"{DIST_INFO}/WHEEL", b"Wheel-Version: 2.0\nRoot-Is-Purelib: false\n"),
                fix_record=True,
            ),
            "WHEEL: Wheel-Version 2.0 is not supported (only 1.x is)",
        ),
    }
    reasons = {}
    for case, (path, expected) in cases.items():
        with pytest.raises(WheelError) as e:
            validate_wheel(path)
        assert expected in e.value.reason, case
        assert e.value.path == str(path), case
        reasons[case] = e.value.reason
    assert len(set(reasons.values())) == len(reasons), reasons
    # The untouched wheel, and a copy with a RECORD recomputed the same way, are fine.
    validate_wheel(good)
    validate_wheel(rezip(good, tmp_path / "ok" / FILENAME, lambda ms: ms, fix_record=True))


def _metadata(text: str) -> Callable[[list[tuple[str, bytes]]], list[tuple[str, bytes]]]:
    return replace(f"{DIST_INFO}/METADATA", text.encode())


@pytest.mark.filterwarnings("ignore:Duplicate name:UserWarning")
@pytest.mark.parametrize(
    ("edit", "fix_record", "reason"),
    [
        (lambda ms: [*ms, (LIB, b"again")], True, f"duplicate zip entry {LIB!r}"),
        (lambda ms: [*ms, ("../evil", b"x")], True, "unsafe member name '../evil'"),
        (lambda ms: [*ms, ("/etc/evil", b"x")], True, "unsafe member name '/etc/evil'"),
        (lambda ms: [m for m in ms if ".dist-info/" not in m[0]], False, "found 0"),
        (rename_prefix(DIST_INFO, "nativelib_foo.dist-info"), True, "does not match the file"),
        (rename_prefix(DIST_INFO, "nativelib_foo-x.y.dist-info"), True, "does not match the file"),
        (
            lambda ms: [m for m in ms if m[0] != f"{DIST_INFO}/WHEEL"],
            True,
            f"{DIST_INFO}/WHEEL is missing",
        ),
        (replace(f"{DIST_INFO}/WHEEL", b"Root-Is-Purelib: false\n"), True, "has no Wheel-Version"),
        (replace(f"{DIST_INFO}/WHEEL", b"Wheel-Version: one\n"), True, "malformed Wheel-Version"),
        (replace(f"{DIST_INFO}/WHEEL", b"Wheel-Version: \xff\n"), True, "WHEEL is not UTF-8"),
        (replace(f"{DIST_INFO}/WHEEL", b"Wheel-Version: 1.9\n"), True, None),
        (
            lambda ms: [m for m in ms if m[0] != f"{DIST_INFO}/RECORD"],
            False,
            f"{DIST_INFO}/RECORD is missing",
        ),
        (
            replace(f"{DIST_INFO}/RECORD", b"a,b,c,d\n"),
            False,
            "RECORD check failed: Unable to retrieve `RECORD`",
        ),
        (
            lambda ms: [m for m in ms if m[0] != f"{DIST_INFO}/METADATA"],
            True,
            f"{DIST_INFO}/METADATA is missing",
        ),
        (
            _metadata("Metadata-Version: 2.1\nName: nativelib-foo\nVersion: 1.2.3\nBogus: x\n"),
            True,
            "METADATA is invalid: unrecognized field: 'bogus'",
        ),
        (
            _metadata("Metadata-Version: 9.9\nName: nativelib-foo\nVersion: 1.2.3\n"),
            True,
            "'9.9' is not a valid metadata version",
        ),
        (
            _metadata("Metadata-Version: 2.1\nName: nativelib-bar\nVersion: 1.2.3\n"),
            True,
            "METADATA describes nativelib-bar 1.2.3, not the file name's nativelib-foo 1.2.3",
        ),
        (
            _metadata("Metadata-Version: 2.1\nName: nativelib-foo\nVersion: 1.0\n"),
            True,
            "describes nativelib-foo 1.0, not",
        ),
    ],
)
def test_validate_other_problems(
    good: Path,
    tmp_path: Path,
    edit: Callable[[list[tuple[str, bytes]]], list[tuple[str, bytes]]],
    fix_record: bool,
    reason: str | None,
) -> None:
    path = rezip(good, tmp_path / "t" / FILENAME, edit, fix_record=fix_record)
    if reason is None:  # a later 1.x minor version is accepted
        validate_wheel(path)
        return
    with pytest.raises(WheelError) as e:
        validate_wheel(path)
    assert reason in e.value.reason


def test_validate_bad_file_names_and_files(good: Path, tmp_path: Path) -> None:
    bad_name = tmp_path / "x" / "nativelib_foo.whl"
    bad_name.parent.mkdir()
    shutil.copyfile(good, bad_name)
    with pytest.raises(WheelError, match="invalid wheel file name"):
        validate_wheel(bad_name)
    not_zip = tmp_path / "y" / FILENAME
    not_zip.parent.mkdir()
    not_zip.write_bytes(b"PK\x03\x04 but not really a zip file")
    with pytest.raises(WheelError, match="not a zip file"):
        validate_wheel(not_zip)
    with pytest.raises(WheelError, match="cannot open: No such file or directory"):
        validate_wheel(tmp_path / "z" / FILENAME)


if __name__ == "__main__":
    _child(sys.argv[1:])


def _big_plan(tmp_path: Path) -> WheelPlan:
    """A member spanning many deflate blocks (repetitive and random parts)."""
    data = (b"nativelib " * 50_000) + os.urandom(300_000) + (b"\0" * 400_000)
    return WheelPlan(
        name="nativelib-big",
        version="1.0",
        tag="py3-none-any",
        summary="big",
        files=(
            WheelFile("nativelib.prefix/lib/libbig.so.1", data=data),
            WheelFile("x/empty", data=b""),
        ),
    )


def test_block_parallel_deflate_round_trips(tmp_path: Path) -> None:
    plan = _big_plan(tmp_path)
    assert len(plan.files[0].data or b"") > 4 * wheel_module._BLOCK
    path = write_wheel(plan, tmp_path / "out")
    validate_wheel(path)
    with zipfile.ZipFile(path) as zf:
        assert zf.testzip() is None
        assert zf.read("nativelib.prefix/lib/libbig.so.1") == plan.files[0].data
        assert zf.read("x/empty") == b""
        assert zf.getinfo("x/empty").external_attr >> 16 == 0o100644


def test_output_does_not_depend_on_thread_count(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plan = _big_plan(tmp_path)
    digests = []
    for i, cpus in enumerate((1, 8)):
        monkeypatch.setattr(os, "cpu_count", lambda cpus=cpus: cpus)
        digests.append(
            hashlib.sha256(write_wheel(plan, tmp_path / f"o{i}").read_bytes()).hexdigest()
        )
    assert digests[0] == digests[1]


def test_zipfile_fallback_for_zip64_sized_wheels(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plan = _big_plan(tmp_path)
    monkeypatch.setattr(wheel_module, "_fits_raw", lambda entries: False)
    path = write_wheel(plan, tmp_path / "out")
    validate_wheel(path)
    with zipfile.ZipFile(path) as zf:
        assert zf.read("nativelib.prefix/lib/libbig.so.1") == plan.files[0].data
