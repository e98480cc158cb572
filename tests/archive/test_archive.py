"""nativelib.archive: reading upstream packages and extracting them safely.

Well-formed packages are built by the real tools (gcc for the library, dpkg-deb, rpmbuild)
or, for conda and wheels, written the way their tools write them. The attack corpus of
``archive_corpus.py`` is rendered into every format that can express each case, and each
(case, format) pair must fail with an error naming the archive and the member, leaving
nothing behind. Corrupt archives must fail with a SourceError naming the archive.
"""

from __future__ import annotations

import bz2
import errno
import hashlib
import io
import json
import os
import shutil
import stat
import struct
import subprocess
import tarfile
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import zstandard
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import archive_corpus as corpus
import nativelib.archive.members as archive_members
import nativelib.archive.tar as archive_tar
from archive_corpus import Case, Entry
from nativelib.archive import (
    DEFAULT_LIMITS,
    CheckState,
    Limits,
    Member,
    MemberKind,
    PackageInfo,
    check_member,
    extract,
    iter_members,
    open_archive,
)
from nativelib.elf import parse_elf_stream, read_elf
from nativelib.errors import SourceError, UnsafeArchiveError

LIB = "usr/lib/libfoo.so.1.0.0"
LINK = "usr/lib/libfoo.so.1"
HARD = "usr/lib/libfoo-hard.so"
COPYRIGHT = "usr/share/doc/libfoo1/copyright"
COPYRIGHT_TEXT = (
    b"Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\nLicense: MIT\n"
)

# -- helpers --------------------------------------------------------------------------


def _run(*cmd: str | Path, cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, cmd))} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc.stdout


def _need(tool: str) -> None:
    if shutil.which(tool) is None:
        pytest.skip(f"{tool} is not installed (CI installs it: .ci/run)")


def snapshot(root: Path) -> dict[str, object]:
    """Every path under ``root`` with its type and content (symlinks not followed)."""
    out: dict[str, object] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath, name)
            rel = str(path.relative_to(root))
            st_ = path.lstat()
            if stat.S_ISLNK(st_.st_mode):
                out[rel] = ("link", os.readlink(path))
            elif stat.S_ISDIR(st_.st_mode):
                out[rel] = ("dir",)
            else:
                out[rel] = ("file", path.read_bytes(), st_.st_mtime_ns)
    return out


class Workspace:
    """A destination next to a sentinel file, and a snapshot of everything around it."""

    def __init__(self, base: Path):
        self.base = base
        self.work = base / "work"
        self.work.mkdir(parents=True)
        (self.work / "x").write_bytes(b"sentinel: must never change\n")
        (base / "x").write_bytes(b"sentinel outside work\n")
        self.dest = self.work / "out"
        self.before = snapshot(base)

    def assert_untouched(self) -> None:
        assert not os.path.lexists(self.dest)
        assert snapshot(self.base) == self.before  # no temporary directory left either
        assert not os.path.lexists(corpus.ABSOLUTE_NAME)


class FakeArchive:
    """The Archive protocol over a list of (member, data): for what no format can say."""

    def __init__(self, items: list[tuple[Member, bytes | None]], path: str = "fake.pkg"):
        self._items = items
        self._path = path

    @property
    def path(self) -> str:
        return self._path

    def info(self) -> PackageInfo:
        return PackageInfo("fake", "fake", "0", None, None)

    def members(self) -> Iterator[tuple[Member, io.BufferedReader | None]]:
        for member, data in self._items:
            yield member, None if data is None else io.BufferedReader(io.BytesIO(data))


def fake_file(name: str, data: bytes = b"data", *, size: int | None = None) -> tuple[Member, bytes]:
    return Member(name, MemberKind.FILE, 0o644, len(data) if size is None else size), data


# -- real packages --------------------------------------------------------------------


@pytest.fixture(scope="module")
def libfoo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real shared library, libfoo.so.1.0.0 with soname libfoo.so.1."""
    _need("gcc")
    d = tmp_path_factory.mktemp("libfoo")
    (d / "foo.c").write_text("int foo(void) { return 42; }\n")
    out = d / "libfoo.so.1.0.0"
    _run("gcc", "-shared", "-fPIC", "-O1", "-Wl,-soname,libfoo.so.1", "-o", out, d / "foo.c")
    return out


def make_tree(root: Path, lib: Path, *, hardlink: bool = True) -> None:
    (root / "usr/lib").mkdir(parents=True)
    (root / "usr/share/doc/libfoo1").mkdir(parents=True)
    shutil.copyfile(lib, root / LIB)
    os.chmod(root / LIB, 0o755)
    os.symlink("libfoo.so.1.0.0", root / LINK)
    if hardlink:
        os.link(root / LIB, root / HARD)
    (root / COPYRIGHT).write_bytes(COPYRIGHT_TEXT)
    os.chmod(root / COPYRIGHT, 0o644)
    for d in (root / "usr", root / "usr/lib", root / "usr/share", root / "usr/share/doc"):
        os.chmod(d, 0o755)
    os.chmod(root / "usr/share/doc/libfoo1", 0o755)


def build_deb(lib: Path, work: Path, method: str) -> Path:
    _need("dpkg-deb")
    root = work / f"deb-{method}"
    make_tree(root, lib)
    (root / "DEBIAN").mkdir()
    os.chmod(root / "DEBIAN", 0o755)
    (root / "DEBIAN/control").write_text(
        "Package: libfoo1\nVersion: 1.2.3-4\nArchitecture: amd64\nMulti-Arch: same\n"
        "Maintainer: Tests <tests@example.com>\nDescription: test library\n"
        " A shared library built by the tests.\n"
    )
    out = work / f"libfoo1_1.2.3-4_amd64-{method}.deb"
    _run("dpkg-deb", "--root-owner-group", f"-Z{method}", "--build", root, out)
    return out


SPEC = """\
Name: libfoo
Version: 1.2.3
Release: 4
Summary: test library
License: MIT AND BSD-3-Clause
AutoReqProv: no
%define debug_package %{nil}
%define __os_install_post %{nil}
%define _build_id_links none

%description
A shared library built by the tests.

%install
mkdir -p %{buildroot}/usr/lib %{buildroot}/usr/share/doc/libfoo1
install -m 755 %{_sourcedir}/libfoo.so.1.0.0 %{buildroot}/usr/lib/libfoo.so.1.0.0
ln -s libfoo.so.1.0.0 %{buildroot}/usr/lib/libfoo.so.1
ln %{buildroot}/usr/lib/libfoo.so.1.0.0 %{buildroot}/usr/lib/libfoo-hard.so
install -m 644 %{_sourcedir}/copyright %{buildroot}/usr/share/doc/libfoo1/copyright

%files
/usr/lib/libfoo.so.1.0.0
/usr/lib/libfoo.so.1
/usr/lib/libfoo-hard.so
%dir /usr/share/doc/libfoo1
/usr/share/doc/libfoo1/copyright
"""

RPM_PAYLOADS = {"gzip": "w9.gzdio", "xz": "w2.xzdio", "zstd": "w19.zstdio", "bzip2": "w9.bzdio"}


def build_rpm(lib: Path, work: Path, method: str) -> Path:
    _need("rpmbuild")
    top = work / f"rpm-{method}"
    (top / "SOURCES").mkdir(parents=True)
    shutil.copyfile(lib, top / "SOURCES/libfoo.so.1.0.0")
    (top / "SOURCES/copyright").write_bytes(COPYRIGHT_TEXT)
    (top / "libfoo.spec").write_text(SPEC)
    env = {**os.environ, "HOME": str(top)}  # no ~/.rpmmacros of the user
    _run(
        "rpmbuild",
        "-bb",
        "--define",
        f"_topdir {top}",
        "--define",
        f"_binary_payload {RPM_PAYLOADS[method]}",
        top / "libfoo.spec",
        env=env,
    )
    (built,) = (top / "RPMS").glob("*/*.rpm")
    out = work / f"libfoo-1.2.3-4-{method}.rpm"
    built.rename(out)
    return out


WHEEL_METADATA = "Metadata-Version: 2.4\nName: libfoo\nVersion: 1.2.3\nLicense-Expression: MIT\n"
WHEEL_WHEEL = (
    "Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: false\n"
    "Tag: py3-none-manylinux_2_17_x86_64\nTag: py3-none-manylinux2014_x86_64\n"
)


def build_wheel(lib: Path, work: Path) -> Path:
    root = work / "whl"
    make_tree(root, lib, hardlink=False)
    out = work / "libfoo-1.2.3-py3-none-manylinux_2_17_x86_64.whl"
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(root.rglob("*")):
            rel = str(path.relative_to(root))
            if path.is_symlink():
                info = zipfile.ZipInfo(rel)
                info.create_system = 3
                info.external_attr = (stat.S_IFLNK | 0o777) << 16
                zf.writestr(info, os.readlink(path))
            elif path.is_file():
                zf.write(path, rel)
        zf.writestr("libfoo-1.2.3.dist-info/METADATA", WHEEL_METADATA)
        zf.writestr("libfoo-1.2.3.dist-info/WHEEL", WHEEL_WHEEL)
        zf.writestr("libfoo-1.2.3.dist-info/RECORD", "")
    return out


def conda_paths(root: Path) -> list[dict[str, object]]:
    paths: list[dict[str, object]] = []
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        if path.is_symlink():
            paths.append({"_path": rel, "path_type": "softlink", "size_in_bytes": 0})
        elif path.is_file():
            data = path.read_bytes()
            paths.append(
                {
                    "_path": rel,
                    "path_type": "hardlink",
                    "sha256": hashlib.sha256(data).hexdigest(),
                    "size_in_bytes": len(data),
                }
            )
    return paths


def _conda_info_tar(root: Path, tar: tarfile.TarFile) -> None:
    index = {
        "name": "libfoo",
        "version": "1.2.3",
        "build": "h1234_4",
        "build_number": 4,
        "license": "MIT",
        "subdir": "linux-64",
        "depends": ["libgcc-ng >=12"],
    }
    paths = {"paths": conda_paths(root), "paths_version": 1}
    for name, doc in (("info/index.json", index), ("info/paths.json", paths)):
        data = json.dumps(doc).encode()
        info = tarfile.TarInfo(name)
        info.size = len(data)
        info.mode = 0o644
        tar.addfile(info, io.BytesIO(data))


def build_conda(lib: Path, work: Path) -> Path:
    root = work / "conda"
    make_tree(root, lib)
    info_buf, pkg_buf = io.BytesIO(), io.BytesIO()
    with tarfile.open(fileobj=info_buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        _conda_info_tar(root, tar)
    with tarfile.open(fileobj=pkg_buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        tar.add(root / "usr", arcname="usr")
    stem = "libfoo-1.2.3-h1234_4"
    out = work / f"{stem}.conda"
    cctx = zstandard.ZstdCompressor(level=19)
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("metadata.json", json.dumps({"conda_pkg_format_version": 2}))
        zf.writestr(f"info-{stem}.tar.zst", cctx.compress(info_buf.getvalue()))
        zf.writestr(f"pkg-{stem}.tar.zst", cctx.compress(pkg_buf.getvalue()))
    return out


def build_tar_bz2(lib: Path, work: Path) -> Path:
    root = work / "tar-bz2"
    make_tree(root, lib)
    out = work / "libfoo-1.2.3-h1234_4.tar.bz2"
    with tarfile.open(out, mode="w:bz2", format=tarfile.PAX_FORMAT) as tar:
        _conda_info_tar(root, tar)
        tar.add(root / "usr", arcname="usr")
    return out


VARIANTS = (
    "deb-xz",
    "deb-zstd",
    "deb-gzip",
    "deb-none",
    "rpm-gzip",
    "rpm-xz",
    "rpm-zstd",
    "rpm-bzip2",
    "whl",
    "conda",
    "tar.bz2",
)


@pytest.fixture(scope="module")
def packages(libfoo: Path, tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """Build each package variant on first use (so a missing tool skips only its own)."""
    work = tmp_path_factory.mktemp("packages")
    built: dict[str, Path] = {}

    def get(variant: str) -> Path:
        if variant not in built:
            kind, _, method = variant.partition("-")
            if kind == "deb":
                built[variant] = build_deb(libfoo, work, method)
            elif kind == "rpm":
                built[variant] = build_rpm(libfoo, work, method)
            elif kind == "whl":
                built[variant] = build_wheel(libfoo, work)
            elif kind == "conda":
                built[variant] = build_conda(libfoo, work)
            else:
                built[variant] = build_tar_bz2(libfoo, work)
        return built[variant]

    return get


def expected_info(variant: str) -> tuple[str, str, str, str | None, str | None]:
    kind = variant.partition("-")[0]
    if kind == "deb":
        return ("deb", "libfoo1", "1.2.3-4", None, "amd64")
    if kind == "rpm":
        return ("rpm", "libfoo", "1.2.3", "MIT AND BSD-3-Clause", os.uname().machine)
    if kind == "whl":
        return ("wheel", "libfoo", "1.2.3", "MIT", "manylinux2014_x86_64.manylinux_2_17_x86_64")
    return ("conda", "libfoo", "1.2.3", "MIT", "linux-64")


@pytest.mark.parametrize("variant", VARIANTS)
def test_real_package_extracts(
    variant: str, packages: Callable[[str], Path], libfoo: Path, tmp_path: Path
) -> None:
    path = packages(variant)
    dest = tmp_path / "out"
    members = extract(path, dest)
    lib_bytes = libfoo.read_bytes()
    has_hardlink = variant != "whl"

    usr = {
        str(p.relative_to(dest))
        for p in dest.rglob("*")
        if str(p.relative_to(dest)).startswith("usr/") and not p.is_dir()
    }
    assert usr == {LIB, LINK, COPYRIGHT} | ({HARD} if has_hardlink else set())
    for name in (LIB, HARD) if has_hardlink else (LIB,):
        assert not (dest / name).is_symlink()
        assert (dest / name).read_bytes() == lib_bytes
        assert stat.S_IMODE((dest / name).stat().st_mode) == 0o755
    assert os.readlink(dest / LINK) == "libfoo.so.1.0.0"
    assert read_elf(str(dest / LINK)).soname == "libfoo.so.1"
    if has_hardlink:
        assert (dest / HARD).stat().st_ino == (dest / LIB).stat().st_ino
        kinds = {m.name: m for m in members}
        linked = kinds[HARD] if kinds[HARD].kind is MemberKind.HARDLINK else kinds[LIB]
        assert linked.kind is MemberKind.HARDLINK
        assert linked.linkname in (LIB, HARD) and linked.linkname != linked.name
    assert (dest / COPYRIGHT).read_bytes() == COPYRIGHT_TEXT
    assert stat.S_IMODE((dest / COPYRIGHT).stat().st_mode) == 0o644
    for d in [dest, *(p for p in dest.rglob("*") if p.is_dir() and not p.is_symlink())]:
        assert stat.S_IMODE(d.stat().st_mode) == 0o755
    assert sorted(os.listdir(tmp_path)) == ["out"]  # nothing beside the destination
    by_name = {m.name: m for m in members}
    assert by_name[LINK] == Member(
        LINK, MemberKind.SYMLINK, by_name[LINK].mode, 0, "libfoo.so.1.0.0"
    )


@pytest.mark.parametrize("variant", VARIANTS)
def test_real_package_info(variant: str, packages: Callable[[str], Path]) -> None:
    path = packages(variant)
    info = open_archive(path).info()
    assert (info.kind, info.name, info.version, info.license, info.arch) == expected_info(variant)
    if info.kind == "deb":
        # The same fields as dpkg-deb itself reads.
        fields = _run("dpkg-deb", "-f", path, "Package", "Version", "Architecture")
        assert f"Package: {info.name}\nVersion: {info.version}" in fields
        assert info.extra["Multi-Arch"] == "same"
        assert info.extra["Description"] == "test library\nA shared library built by the tests."
    elif info.kind == "rpm":
        query = "%{NAME}|%{VERSION}|%{RELEASE}|%{LICENSE}|%{ARCH}"
        out = _run("rpm", "-qp", "--nosignature", "--qf", query, path)
        assert (
            out == f"{info.name}|{info.version}|{info.extra['release']}|{info.license}|{info.arch}"
        )
        assert info.extra["payload_compressor"] == variant.partition("-")[2]
    elif info.kind == "conda":
        assert info.extra["build"] == "h1234_4"
        assert info.extra["build_number"] == "4"
        paths = {p.path: p for p in info.paths}
        assert set(paths) == {LIB, LINK, HARD, COPYRIGHT}
        assert paths[LINK].path_type == "softlink"
        assert paths[COPYRIGHT].sha256 == hashlib.sha256(COPYRIGHT_TEXT).hexdigest()
        assert paths[COPYRIGHT].size == len(COPYRIGHT_TEXT)
    else:
        assert info.extra["tags"].split() == [
            "py3-none-manylinux_2_17_x86_64",
            "py3-none-manylinux2014_x86_64",
        ]


@pytest.mark.parametrize("variant", VARIANTS)
def test_read_members_from_the_stream(
    variant: str, packages: Callable[[str], Path], libfoo: Path
) -> None:
    """The builder can read a library straight from the archive, without extracting."""
    archive = open_archive(packages(variant))
    found = {}
    for member, stream in iter_members(archive):
        if member.kind is MemberKind.FILE and member.name in (LIB, HARD):
            assert stream is not None
            found[member.name] = parse_elf_stream(stream, member.size, member.name).soname
    # One name of the hard-linked pair carries the data; the other is a HARDLINK member.
    assert len(found) == 1
    assert set(found.values()) == {"libfoo.so.1"}


@pytest.mark.parametrize("variant", ["deb-xz", "rpm-zstd", "whl", "conda", "tar.bz2"])
def test_select(variant: str, packages: Callable[[str], Path], tmp_path: Path) -> None:
    def only_doc(member: Member) -> bool:
        return member.name.startswith("usr/share/")

    members = extract(packages(variant), tmp_path / "out", select=only_doc)
    assert {m.name for m in members if m.kind is MemberKind.FILE} == {COPYRIGHT}
    assert not (tmp_path / "out/usr/lib").exists()
    assert (tmp_path / "out" / COPYRIGHT).read_bytes() == COPYRIGHT_TEXT


def test_select_leaving_out_a_hardlink_target(
    packages: Callable[[str], Path], tmp_path: Path
) -> None:
    path = packages("rpm-gzip")
    ws = Workspace(tmp_path)

    def no_lib(member: Member) -> bool:
        return member.name != LIB

    with pytest.raises(SourceError, match="select\\(\\) left out") as err:
        extract(path, ws.dest, select=no_lib)
    assert err.value.source == str(path)
    ws.assert_untouched()


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("cut", ["empty", "head", "middle", "tail"])
def test_truncated_real_package(
    variant: str, cut: str, packages: Callable[[str], Path], tmp_path: Path
) -> None:
    data = packages(variant).read_bytes()
    length = {"empty": 0, "head": 10, "middle": len(data) // 2, "tail": len(data) - 20}[cut]
    path = tmp_path / "archives" / packages(variant).name
    path.parent.mkdir()
    path.write_bytes(data[:length])
    ws = Workspace(tmp_path / "ws")
    with pytest.raises(SourceError) as err:
        extract(path, ws.dest)
    assert not isinstance(err.value, UnsafeArchiveError)
    assert err.value.source == str(path)
    assert str(err.value).startswith(f"{path}: ")
    ws.assert_untouched()
    if cut in ("empty", "head"):
        with pytest.raises(SourceError) as err:
            open_archive(path).info()
        assert err.value.source == str(path)


def test_crafted_rpm_is_read_by_rpm_too(tmp_path: Path) -> None:
    """The corpus's RPM writer makes packages rpm itself accepts, so the matrix is real."""
    _need("rpm2cpio")
    _need("cpio")
    entries = [
        Entry("./usr/lib/libx.so.1.0", data=b"\x7fELF..."),
        Entry("./usr/lib/libx.so.1", "symlink", target="libx.so.1.0"),
    ]
    path = tmp_path / "x.rpm"
    path.write_bytes(corpus.rpm_bytes(corpus.cpio_bytes(entries)))
    listing = subprocess.run(
        f"rpm2cpio {path} | cpio -it --quiet", shell=True, capture_output=True, text=True
    )
    assert listing.returncode == 0, listing.stderr
    assert listing.stdout.split() == [e.name for e in entries]
    out = _run("rpm", "-qp", "--nosignature", "--nodigest", "--qf", "%{NAME} %{LICENSE}", path)
    assert out == "corpus MIT"
    info = open_archive(path).info()
    assert (info.name, info.version, info.license, info.extra["epoch"]) == (
        "corpus",
        "1.0",
        "MIT",
        "2",
    )


# -- the attack corpus, in every format -----------------------------------------------

MATRIX = [
    pytest.param(case, fmt, id=f"{case.id}-{fmt}")
    for case in corpus.CASES
    for fmt in corpus.FORMATS
]


@pytest.mark.parametrize(("case", "fmt"), MATRIX)
def test_attack_corpus(case: Case, fmt: str, tmp_path: Path) -> None:
    reason = corpus.cannot_express(case, fmt)
    if reason:
        pytest.skip(reason)
    path = corpus.render(case, fmt, tmp_path / "archives")
    ws = Workspace(tmp_path / "ws")

    with pytest.raises(SourceError) as err:
        extract(path, ws.dest, limits=case.limits)
    error = err.value
    assert error.source == str(path)
    assert str(error).startswith(f"{path}: ")
    if case.corrupt:
        assert not isinstance(error, UnsafeArchiveError)
    else:
        assert isinstance(error, UnsafeArchiveError), error
        assert error.archive == str(path)
        assert error.member in (case.bad, case.bad + "/"), error
    assert case.reason in error.reason, error
    ws.assert_untouched()

    # The same checks without extracting: a builder reading members from the stream.
    with pytest.raises(SourceError) as err2:
        for _member, stream in iter_members(open_archive(path), limits=case.limits):
            if stream is not None:
                stream.read()
    assert type(err2.value) is type(error)
    assert str(err2.value) == str(error)


def test_corpus_skips_are_the_listed_ones() -> None:
    """Every skipped (case, format) pair is one the format cannot express, for a reason."""
    skipped = {
        (case.id, fmt): corpus.cannot_express(case, fmt)
        for case in corpus.CASES
        for fmt in corpus.FORMATS
        if corpus.cannot_express(case, fmt)
    }
    assert {k for k in skipped if k[1] != "conda-zip"} == {
        ("hardlink-outside", "whl"),
        ("hardlink-missing", "whl"),
        ("hardlink-to-symlink", "whl"),
        ("hardlink-outside", "rpm"),
        ("hardlink-missing", "rpm"),
        ("hardlink-to-symlink", "rpm"),
    }
    names_in_outer_zip = {c.id for c in corpus.CASES} - {c for c, f in skipped if f == "conda-zip"}
    assert names_in_outer_zip == {
        "dotdot",
        "absolute",
        "dotdot-inner",
        "backslash",
        "empty-name",
        "duplicate",
        "parent-is-file",
        "file-over-directory",
    }


# -- corrupt and unsupported archives -------------------------------------------------


def _write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def _retar(header: bytes, **fields: bytes) -> bytes:
    """A tar header block with fields replaced and the checksum recomputed."""
    offsets = {"name": (0, 100), "size": (124, 12), "type": (156, 1), "magic": (257, 6)}
    block = bytearray(header[:512])
    for key, value in fields.items():
        start, length = offsets[key]
        block[start : start + length] = value.ljust(length, b"\0")[:length]
    block[148:156] = b" " * 8
    block[148:156] = b"%06o\0 " % sum(block)
    return bytes(block)


def _pax(records: dict[str, str] | bytes, *, size: int | None = None) -> bytes:
    if isinstance(records, bytes):
        data = records
    else:
        data = b""
        for key, value in records.items():
            body = f" {key}={value}\n".encode()
            n = len(body) + len(str(len(body)))
            n = len(body) + len(str(n))
            data += str(n).encode() + body
    info = tarfile.TarInfo("././@PaxHeader")
    info.type = tarfile.XHDTYPE
    info.size = len(data) if size is None else size
    return info.tobuf(tarfile.USTAR_FORMAT) + data + bytes((-len(data)) % 512)


def _deb_with_tar(tmp_path: Path, tar: bytes, name: str = "t.deb") -> Path:
    return _write(tmp_path, name, corpus.deb_bytes(tar, method="none"))


def _file_tar(name: str = "usr/x", data: bytes = b"hello") -> bytes:
    return corpus.tar_bytes([Entry(name, data=data)])


END = bytes(1024)

# (id, file name, builder of the bytes, operation, expected text in the reason)
CorruptCase = tuple[str, str, Callable[[], bytes], str, str]


def _control_tar(control: bytes) -> bytes:
    return corpus.compress(
        corpus.tar_bytes([Entry("./", "dir"), Entry("./control", data=control)]), "gzip"
    )


def _deb_members(*members: tuple[str, bytes]) -> Callable[[], bytes]:
    return lambda: corpus.deb_bytes(b"", members=members)


DATA_XZ = ("data.tar.xz", corpus.compress(_file_tar(), "xz"))
CONTROL_GZ = ("control.tar.gz", _control_tar(corpus.CONTROL.encode()))
BINARY = ("debian-binary", b"2.0\n")


def _cpio_rpm(*entries: bytes, trailer: bool = True, after: bytes = b"") -> Callable[[], bytes]:
    def build() -> bytes:
        cpio = b"".join(entries) + (corpus.cpio_trailer() if trailer else b"") + after
        return corpus.rpm_bytes(cpio)

    return build


FILE_MODE = stat.S_IFREG | 0o644


def _rpm_with_tags(*tags: tuple[int, int, bytes, int]) -> Callable[[], bytes]:
    return lambda: corpus.rpm_bytes(corpus.cpio_bytes([Entry("x")]), tags=list(tags))


def _raw_rpm_header_out_of_bounds() -> bytes:
    good = corpus.rpm_bytes(corpus.cpio_bytes([Entry("x")]))
    lead_and_sig = good[: 96 + len(corpus.rpm_header([(1000, 4, b"\0\0\0\0", 1)]))]
    lead_and_sig += bytes((-len(lead_and_sig)) % 8)
    index = struct.pack(">iIiI", 1000, 6, 9999, 1) + struct.pack(">iIiI", 1001, 6, 0, 1)
    header = b"\x8e\xad\xe8\x01\0\0\0\0" + struct.pack(">II", 2, 4) + index + b"1.0\0"
    return lead_and_sig + header + corpus.compress(corpus.cpio_bytes([]), "gzip")


def _zip_local_name_mismatch() -> bytes:
    data = bytearray(corpus.wheel_bytes([Entry("lib/a", data=b"x" * 100)]))
    pos = data.find(b"PK\x03\x04")
    data[pos + 30 : pos + 35] = b"lib/b"  # the local header now disagrees
    return bytes(data)


def _encrypt_first(data: bytes | bytearray) -> bytes:
    """Set the encryption flag of the first central directory entry."""
    data = bytearray(data)
    pos = data.find(b"PK\x01\x02")
    (flags,) = struct.unpack_from("<H", data, pos + 8)
    struct.pack_into("<H", data, pos + 8, flags | 1)
    return bytes(data)


def _zip_bad_crc() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("lib/a", b"A" * 100)
    data = bytearray(buf.getvalue())
    data[data.find(b"A" * 100) + 50] = ord("B")
    return bytes(data)


def _conda(pkg: bytes | None = None, **kw: object) -> Callable[[], bytes]:
    def build() -> bytes:
        tar = pkg if pkg is not None else _file_tar("lib/x")
        return corpus.conda_bytes(tar, **kw)  # type: ignore[arg-type]

    return build


def _conda_info(index: bytes, paths: bytes | None = None) -> Callable[[], bytes]:
    entries = [Entry("info/index.json", data=index)]
    if paths is not None:
        entries.append(Entry("info/paths.json", data=paths))
    return _conda(info_tar=corpus.tar_bytes(entries))


def _truncated_zstd_conda() -> bytes:
    stem = "corpus-1.0-h0_0"
    pkg = corpus.compress(_file_tar("lib/x", b"Z" * 100_000), "zstd")
    info = corpus.compress(corpus.tar_bytes(corpus.conda_info_entries()), "zstd")
    return corpus.zip_bytes(
        [],
        extra=[(f"info-{stem}.tar.zst", info), (f"pkg-{stem}.tar.zst", pkg[: len(pkg) // 2])],
        stored=True,
    )


def _zstd_with_trailing_garbage() -> bytes:
    stem = "corpus-1.0-h0_0"
    pkg = corpus.compress(_file_tar("lib/x"), "zstd") + b"this is not a zstd frame"
    info = corpus.compress(corpus.tar_bytes(corpus.conda_info_entries()), "zstd")
    outer = [(f"info-{stem}.tar.zst", info), (f"pkg-{stem}.tar.zst", pkg)]
    return corpus.zip_bytes([], extra=outer, stored=True)


LONG_SYMLINK = Entry("lib/l", "symlink", target="t" * 5000)

CORRUPT: list[CorruptCase] = [
    # deb / ar
    ("deb-not-ar", "x.deb", lambda: b"not an ar archive at all", "extract", "no ar archive magic"),
    (
        "deb-first-member",
        "x.deb",
        _deb_members(CONTROL_GZ, DATA_XZ),
        "extract",
        "not 'debian-binary'",
    ),
    (
        "deb-version",
        "x.deb",
        _deb_members(("debian-binary", b"3.0\n"), CONTROL_GZ, DATA_XZ),
        "extract",
        "unsupported deb format version",
    ),
    ("deb-no-data", "x.deb", _deb_members(BINARY, CONTROL_GZ), "extract", "no data.tar member"),
    (
        "deb-no-control",
        "x.deb",
        _deb_members(BINARY, DATA_XZ),
        "extract",
        "unexpected ar member 'data.tar.xz'",
    ),
    (
        "deb-extra-member",
        "x.deb",
        _deb_members(BINARY, CONTROL_GZ, DATA_XZ, ("evil", b"")),
        "extract",
        "unexpected ar member 'evil'",
    ),
    (
        "deb-two-data",
        "x.deb",
        _deb_members(BINARY, CONTROL_GZ, DATA_XZ, DATA_XZ),
        "extract",
        "unexpected ar member 'data.tar.xz'",
    ),
    (
        "deb-bad-ar-header",
        "x.deb",
        lambda: corpus.ar_bytes([BINARY]).replace(b"`\n", b"xx"),
        "extract",
        "bad ar header",
    ),
    (
        "deb-bad-ar-size",
        "x.deb",
        lambda: corpus.ar_bytes([BINARY]).replace(b"4         `", b"four      `"),
        "extract",
        "bad ar member size",
    ),
    (
        "deb-ar-header-truncated",
        "x.deb",
        lambda: corpus.ar_bytes([BINARY]) + b"control.tar",
        "extract",
        "truncated: ar header",
    ),
    (
        "deb-no-control-file",
        "x.deb",
        _deb_members(
            BINARY, ("control.tar.gz", corpus.compress(_file_tar("./md5sums"), "gzip")), DATA_XZ
        ),
        "info",
        "no 'control' file",
    ),
    (
        "deb-control-no-arch",
        "x.deb",
        _deb_members(
            BINARY, ("control.tar.gz", _control_tar(b"Package: a\nVersion: 1\n")), DATA_XZ
        ),
        "info",
        "no 'Architecture' field",
    ),
    (
        "deb-control-bad-line",
        "x.deb",
        _deb_members(BINARY, ("control.tar.gz", _control_tar(b"Package: a\njunk\n")), DATA_XZ),
        "info",
        "bad line in control file",
    ),
    (
        "deb-control-continuation",
        "x.deb",
        _deb_members(BINARY, ("control.tar.gz", _control_tar(b" Package: a\n")), DATA_XZ),
        "info",
        "continuation line",
    ),
    (
        "deb-control-too-big",
        "x.deb",
        _deb_members(
            BINARY, ("control.tar.gz", _control_tar(b"Package: a\n" + b"#" * (1 << 20))), DATA_XZ
        ),
        "info",
        "more than 1048576",
    ),
    (
        "deb-control-not-utf8",
        "x.deb",
        _deb_members(BINARY, ("control.tar.gz", _control_tar(b"Package: \xff\n")), DATA_XZ),
        "info",
        "corrupt",
    ),
    (
        "deb-two-control",
        "x.deb",
        _deb_members(BINARY, CONTROL_GZ, CONTROL_GZ, DATA_XZ),
        "extract",
        "unexpected ar member 'control.tar.gz'",
    ),
    # tar, inside a deb's uncompressed data.tar
    (
        "tar-truncated-padding",
        "x.deb",
        lambda: corpus.deb_bytes(_file_tar()[: 512 + 5], method="none"),
        "extract",
        "truncated: member 'usr/x' ends 507 bytes early",
    ),
    (
        "tar-pax-length-not-a-number",
        "x.deb",
        lambda: corpus.deb_bytes(_pax(b"xx path=a\n") + _file_tar(), method="none"),
        "extract",
        "bad pax record",
    ),
    (
        "tar-bad-checksum",
        "x.deb",
        lambda: corpus.deb_bytes(_file_tar("a") + b"", method="none").replace(
            b"a\0\0\0", b"b\0\0\0", 1
        ),
        "extract",
        "bad tar header checksum",
    ),
    (
        "tar-no-end-marker",
        "x.deb",
        lambda: corpus.deb_bytes(corpus.tar_bytes([Entry("a")], end=False), method="none"),
        "extract",
        "truncated: tar header",
    ),
    (
        "tar-partial-header",
        "x.deb",
        lambda: corpus.deb_bytes(
            corpus.tar_bytes([Entry("a")], end=False) + b"\x01" * 100, method="none"
        ),
        "extract",
        "ends after 100 of 512",
    ),
    (
        "tar-data-after-end",
        "x.deb",
        lambda: corpus.deb_bytes(_file_tar() + b"\x01" * 512, method="none"),
        "extract",
        "unexpected data after the end of the data.tar",
    ),
    (
        "tar-too-much-padding",
        "x.deb",
        lambda: corpus.deb_bytes(_file_tar() + bytes(2 << 20), method="xz"),
        "extract",
        "bytes of padding after the data.tar.xz",
    ),
    (
        "tar-pax-too-large",
        "x.deb",
        lambda: corpus.deb_bytes(_pax(b"", size=2 << 20) + END, method="none"),
        "extract",
        "extended header of 2097152 bytes",
    ),
    (
        "tar-pax-bad-record",
        "x.deb",
        lambda: corpus.deb_bytes(_pax(b"garbage\n") + _file_tar(), method="none"),
        "extract",
        "bad pax record",
    ),
    (
        "tar-pax-bad-length",
        "x.deb",
        lambda: corpus.deb_bytes(_pax(b"99 path=x\n") + _file_tar(), method="none"),
        "extract",
        "bad pax record",
    ),
    (
        "tar-pax-no-key",
        "x.deb",
        lambda: corpus.deb_bytes(_pax(b"8 =abcd\n") + _file_tar(), method="none"),
        "extract",
        "bad pax record",
    ),
    (
        "tar-pax-bad-size",
        "x.deb",
        lambda: corpus.deb_bytes(_pax({"size": "12x"}) + _file_tar(), method="none"),
        "extract",
        "bad pax size '12x'",
    ),
    (
        "tar-pax-dangling",
        "x.deb",
        lambda: corpus.deb_bytes(_pax({"path": "a"}) + END, method="none"),
        "extract",
        "extended header not followed by a member",
    ),
    (
        "tar-negative-size",
        "x.deb",
        lambda: corpus.deb_bytes(_retar(_file_tar(), size=b"\xff" * 12) + END, method="none"),
        "extract",
        "negative size",
    ),
    (
        "tar-bad-size-field",
        "x.deb",
        lambda: corpus.deb_bytes(_retar(_file_tar(), size=b"12z") + END, method="none"),
        "extract",
        "bad size field",
    ),
    (
        "tar-dir-with-data",
        "x.deb",
        lambda: corpus.deb_bytes(
            _retar(corpus.tar_header(Entry("d", "dir")), size=b"00000000005") + END, method="none"
        ),
        "extract",
        "claims 5 bytes of data",
    ),
    (
        "tar-truncated-member",
        "x.deb",
        lambda: corpus.deb_bytes(
            _retar(_file_tar(), size=b"00000001000")[:512] + b"hello", method="none"
        ),
        "extract",
        "member 'usr/x'",
    ),
    # rpm
    ("rpm-not-rpm", "x.rpm", lambda: b"\0" * 200, "extract", "bad lead magic"),
    ("rpm-short", "x.rpm", lambda: b"\xed\xab\xee\xdb", "info", "truncated: RPM lead"),
    (
        "rpm-bad-signature",
        "x.rpm",
        lambda: corpus.rpm_bytes(corpus.cpio_bytes([])).replace(
            b"\x8e\xad\xe8\x01", b"\x8e\xad\xe8\x02", 1
        ),
        "info",
        "bad RPM signature header magic",
    ),
    (
        "rpm-header-too-large",
        "x.rpm",
        lambda: corpus.rpm_bytes(corpus.cpio_bytes([])).replace(
            b"\x8e\xad\xe8\x01\0\0\0\0\0\0\0\x01", b"\x8e\xad\xe8\x01\0\0\0\0\x01\0\0\x00", 1
        ),
        "info",
        "too large",
    ),
    (
        "rpm-header-truncated",
        "x.rpm",
        lambda: corpus.rpm_bytes(corpus.cpio_bytes([]))[:130],
        "info",
        "ends past the end of the file",
    ),
    (
        "rpm-payload-format",
        "x.rpm",
        lambda: corpus.rpm_bytes(corpus.cpio_bytes([]), payload_format="drpm"),
        "extract",
        "unsupported RPM payload format 'drpm'",
    ),
    (
        "rpm-compressor",
        "x.rpm",
        lambda: corpus.rpm_bytes(corpus.cpio_bytes([]), compressor="lzip"),
        "extract",
        "unsupported RPM payload compressor 'lzip'",
    ),
    (
        "rpm-no-name",
        "x.rpm",
        _rpm_with_tags(corpus.rpm_string(1001, "1.0")),
        "info",
        "no NAME or VERSION",
    ),
    (
        "rpm-name-not-string",
        "x.rpm",
        _rpm_with_tags((1000, 4, b"\0\0\0\1", 1), corpus.rpm_string(1001, "1.0")),
        "info",
        "tag 1000 is not a string",
    ),
    (
        "rpm-epoch-not-int",
        "x.rpm",
        _rpm_with_tags(
            corpus.rpm_string(1000, "a"), corpus.rpm_string(1001, "1"), corpus.rpm_string(1003, "x")
        ),
        "info",
        "not a valid INT32",
    ),
    ("rpm-string-out-of-bounds", "x.rpm", _raw_rpm_header_out_of_bounds, "info", "out of bounds"),
    (
        "rpm-payload-truncated",
        "x.rpm",
        lambda: corpus.rpm_bytes(corpus.cpio_bytes([Entry("x", data=os.urandom(4000))]))[:-100],
        "extract",
        "corrupt or truncated",
    ),
    (
        "rpm-payload-garbage",
        "x.rpm",
        lambda: corpus.rpm_bytes(corpus.cpio_bytes([Entry("x")])) + b"garbage!",
        "extract",
        "corrupt or truncated",
    ),
    # cpio
    (
        "cpio-bad-magic",
        "x.rpm",
        _cpio_rpm(b"123456" + b"0" * 104),
        "extract",
        "bad cpio magic b'123456'",
    ),
    (
        "cpio-large-file",
        "x.rpm",
        _cpio_rpm(corpus.cpio_entry("x", FILE_MODE, magic=b"07070X")),
        "extract",
        "large-file cpio",
    ),
    (
        "cpio-bad-hex",
        "x.rpm",
        _cpio_rpm(b"070701" + b"ZZZZZZZZ" * 13),
        "extract",
        "bad cpio header",
    ),
    (
        "cpio-bad-name-size",
        "x.rpm",
        _cpio_rpm(corpus.cpio_entry("x", FILE_MODE, name_size=0)),
        "extract",
        "bad cpio name size 0",
    ),
    (
        "cpio-name-unterminated",
        "x.rpm",
        _cpio_rpm(corpus.cpio_entry("xy", FILE_MODE, name_size=2)),
        "extract",
        "not NUL-terminated",
    ),
    (
        "cpio-empty-symlink",
        "x.rpm",
        _cpio_rpm(corpus.cpio_entry("l", stat.S_IFLNK | 0o777)),
        "extract",
        "has a target of 0 bytes",
    ),
    (
        "cpio-dir-with-data",
        "x.rpm",
        _cpio_rpm(corpus.cpio_entry("d", stat.S_IFDIR | 0o755, b"abc")),
        "extract",
        "claims 3 bytes of data",
    ),
    (
        "cpio-no-trailer",
        "x.rpm",
        _cpio_rpm(corpus.cpio_entry("x", FILE_MODE, b"abc"), trailer=False),
        "extract",
        "truncated: cpio entry 1 header",
    ),
    (
        "cpio-data-after-trailer",
        "x.rpm",
        _cpio_rpm(corpus.cpio_entry("x", FILE_MODE, b"abc"), after=b"junk"),
        "extract",
        "unexpected data after the end of the cpio archive",
    ),
    (
        "cpio-hardlinks-without-data",
        "x.rpm",
        _cpio_rpm(
            corpus.cpio_entry("a", FILE_MODE, ino=7, nlink=3),
            corpus.cpio_entry("b", FILE_MODE, ino=7, nlink=3),
        ),
        "extract",
        "have no entry holding their data",
    ),
    (
        "cpio-hardlink-data-twice",
        "x.rpm",
        _cpio_rpm(
            corpus.cpio_entry("a", FILE_MODE, b"one", ino=7, nlink=2),
            corpus.cpio_entry("b", FILE_MODE, b"two", ino=7, nlink=2),
        ),
        "extract",
        "repeats the data of 'a'",
    ),
    (
        "cpio-truncated-data",
        "x.rpm",
        _cpio_rpm(corpus.cpio_entry("x", FILE_MODE, b"abc", size=5000), trailer=False),
        "extract",
        "member 'x'",
    ),
    # zip / wheel
    (
        "zip-garbage",
        "x.whl",
        lambda: b"PK\x03\x04 this is no zip",
        "extract",
        "corrupt or truncated",
    ),
    ("zip-name-mismatch", "x.whl", _zip_local_name_mismatch, "extract", "corrupt or truncated"),
    (
        "zip-encrypted",
        "x.whl",
        lambda: _encrypt_first(corpus.wheel_bytes([Entry("lib/a", data=b"x" * 100)])),
        "extract",
        "zip member 'lib/a' is encrypted",
    ),
    (
        "wheel-encrypted-metadata",
        "x.whl",
        lambda: _encrypt_first(corpus.wheel_bytes([])),
        "info",
        "zip member 'corpus-1.0.dist-info/METADATA' is encrypted",
    ),
    (
        "conda-encrypted-component",
        "x.conda",
        lambda: _encrypt_first(corpus.conda_bytes(_file_tar(), outer=[("info-a.tar.zst", b"")])),
        "info",
        "zip member 'info-a.tar.zst' is encrypted",
    ),
    ("zip-bad-crc", "x.whl", _zip_bad_crc, "extract", "Bad CRC-32"),
    (
        "zip-long-symlink",
        "x.whl",
        lambda: corpus.zip_bytes([LONG_SYMLINK]),
        "extract",
        "has a target of 5000 bytes",
    ),
    (
        "wheel-no-metadata",
        "x.whl",
        lambda: corpus.zip_bytes([Entry("a")]),
        "info",
        "expected one *.dist-info/METADATA, found 0",
    ),
    (
        "wheel-no-wheel-file",
        "x.whl",
        lambda: corpus.zip_bytes([], extra=[("a-1.dist-info/METADATA", b"Name: a\nVersion: 1\n")]),
        "info",
        "no a-1.dist-info/WHEEL",
    ),
    (
        "wheel-metadata-too-large",
        "x.whl",
        lambda: corpus.zip_bytes([], extra=[("a-1.dist-info/METADATA", b"#" * (2 << 20))]),
        "info",
        "a-1.dist-info/METADATA is 2097152 bytes, more than 1048576",
    ),
    (
        "wheel-no-version",
        "x.whl",
        lambda: corpus.zip_bytes(
            [],
            extra=[
                ("a-1.dist-info/METADATA", b"Name: a\n"),
                ("a-1.dist-info/WHEEL", b"Tag: py3-none-any\n"),
            ],
        ),
        "info",
        "has no Name or Version",
    ),
    # conda
    (
        "conda-no-pkg",
        "x.conda",
        _conda(outer=[("metadata.json", b"{}")]),
        "extract",
        "expected one pkg-*.tar.zst component, found 0",
    ),
    (
        "conda-two-pkg",
        "x.conda",
        _conda(extra=[("pkg-other.tar.zst", b"")]),
        "extract",
        "expected one pkg-*.tar.zst component, found 2",
    ),
    (
        "conda-no-info",
        "x.conda",
        _conda(outer=[("pkg-a.tar.zst", corpus.compress(_file_tar(), "zstd"))]),
        "info",
        "expected one info-*.tar.zst component, found 0",
    ),
    (
        "conda-no-index",
        "x.conda",
        _conda(info_tar=corpus.tar_bytes([Entry("info/about.json", data=b"{}")])),
        "info",
        "no info/index.json",
    ),
    ("conda-bad-json", "x.conda", _conda_info(b"{not json"), "info", "bad JSON in info/"),
    ("conda-index-not-object", "x.conda", _conda_info(b"[1, 2]"), "info", "is not a JSON object"),
    (
        "conda-index-no-name",
        "x.conda",
        _conda_info(b'{"version": "1"}'),
        "info",
        "no string 'name' and 'version'",
    ),
    (
        "conda-bad-paths",
        "x.conda",
        _conda_info(b'{"name": "a", "version": "1"}', b'{"paths": [{"path": 1}]}'),
        "info",
        "bad entry in info/paths.json",
    ),
    (
        "zstd-truncated",
        "x.conda",
        _truncated_zstd_conda,
        "extract",
        "zstd stream ends in the middle of a frame",
    ),
    (
        "zstd-trailing-garbage",
        "x.conda",
        _zstd_with_trailing_garbage,
        "extract",
        "corrupt or truncated",
    ),
    ("tar-bz2-garbage", "x.tar.bz2", lambda: b"BZh9 not really", "extract", "corrupt or truncated"),
    (
        "tar-bz2-no-index",
        "x.tar.bz2",
        lambda: bz2.compress(_file_tar("info/about.json")),
        "info",
        "no info/index.json",
    ),
]


@pytest.mark.parametrize(
    ("name", "build", "operation", "expected"),
    [pytest.param(*c[1:], id=c[0]) for c in CORRUPT],
)
def test_corrupt_archive(
    name: str, build: Callable[[], bytes], operation: str, expected: str, tmp_path: Path
) -> None:
    path = _write(tmp_path, name, build())
    ws = Workspace(tmp_path / "ws")
    with pytest.raises(SourceError) as err:
        if operation == "info":
            open_archive(path).info()
        else:
            extract(path, ws.dest)
    assert not isinstance(err.value, UnsafeArchiveError), err.value
    assert err.value.source == str(path)
    assert expected in err.value.reason, err.value.reason
    ws.assert_untouched()


@pytest.mark.parametrize("bound", ["members", "bytes"])
@pytest.mark.parametrize("fmt", ["conda", "tar.bz2", "deb"])
def test_metadata_scan_is_bounded(
    bound: str, fmt: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """info() stops reading a metadata tree that is a bomb, before finding what it wants."""
    monkeypatch.setattr(archive_tar, f"_MAX_META_{bound.upper()}", 20)
    filler = [Entry(f"info/f{i}", data=b"12345") for i in range(25 if bound == "members" else 5)]
    if fmt == "deb":
        control = corpus.compress(corpus.tar_bytes(filler), "gzip")
        data = corpus.deb_bytes(b"", members=[BINARY, ("control.tar.gz", control), DATA_XZ])
    elif fmt == "conda":
        info = corpus.tar_bytes([*filler, *corpus.conda_info_entries()])
        data = corpus.conda_bytes(_file_tar(), info_tar=info)
    else:
        data = corpus.tar_bz2_bytes([], info=[*filler, *corpus.conda_info_entries()])
    path = _write(tmp_path, f"x.{fmt}", data)
    with pytest.raises(SourceError, match=f"holds more than 20 {bound}") as err:
        open_archive(path).info()
    assert err.value.source == str(path)


@pytest.mark.parametrize(
    ("typeflag", "what"), [(b"S", "GNU sparse"), (b"V", "volume label"), (b"4", "block device")]
)
def test_unsupported_tar_types_are_unsafe(typeflag: bytes, what: str, tmp_path: Path) -> None:
    header = _retar(corpus.tar_header(Entry("odd", data=b"")), type=typeflag)
    path = _deb_with_tar(tmp_path, header + END)
    ws = Workspace(tmp_path / "ws")
    with pytest.raises(
        UnsafeArchiveError, match=what.rsplit(maxsplit=1)[-1] if typeflag == b"4" else "unsupported"
    ) as err:
        extract(path, ws.dest)
    assert (err.value.archive, err.value.member) == (str(path), "odd")
    ws.assert_untouched()


def test_pax_sparse_member_is_unsafe(tmp_path: Path) -> None:
    tar = _pax({"GNU.sparse.major": "1", "GNU.sparse.minor": "0"}) + _file_tar("sparse")
    path = _deb_with_tar(tmp_path, tar)
    with pytest.raises(UnsafeArchiveError, match="unsupported type") as err:
        extract(path, tmp_path / "out")
    assert err.value.member == "sparse"


@pytest.mark.parametrize("what", ["unknown-suffix", "unknown-kind", "missing", "directory"])
def test_open_archive_errors(what: str, tmp_path: Path) -> None:
    path = tmp_path / "pkg.tar.gz"
    path.write_bytes(b"")
    kind = None
    if what == "unknown-kind":
        kind = "zip"
    elif what == "missing":
        path = tmp_path / "missing.deb"
    elif what == "directory":
        path = tmp_path / "dir.rpm"
        path.mkdir()
    with pytest.raises(SourceError) as err:
        open_archive(path, kind)
    assert err.value.source == str(path)


def test_open_archive_explicit_kind(packages: Callable[[str], Path], tmp_path: Path) -> None:
    """A cached download named by its hash is opened by an explicit kind."""
    for variant, kind in (
        ("deb-xz", "deb"),
        ("rpm-gzip", "rpm"),
        ("whl", "wheel"),
        ("conda", "conda"),
        ("tar.bz2", "tar.bz2"),
    ):
        path = tmp_path / f"{variant}.blob"
        shutil.copyfile(packages(variant), path)
        assert open_archive(path, kind).info().name.startswith("libfoo")


# -- crafted well-formed archives: paths real tools take too --------------------------


@pytest.mark.parametrize("method", ["gzip", "xz", "lzma", "zstd", "bzip2", "none"])
def test_rpm_payload_compressors(method: str, tmp_path: Path) -> None:
    cpio = corpus.cpio_bytes([Entry("./opt/x", data=b"x" * 1000)])
    path = _write(tmp_path, "x.rpm", corpus.rpm_bytes(cpio, compressor=method))
    extract(path, tmp_path / "out")
    assert (tmp_path / "out/opt/x").read_bytes() == b"x" * 1000
    assert open_archive(path).info().extra["payload_compressor"] == method


def test_rpm_without_compressor_tags_defaults_to_gzip_cpio(tmp_path: Path) -> None:
    cpio = corpus.cpio_bytes([Entry("x", data=b"data")])
    path = _write(tmp_path, "x.rpm", corpus.rpm_bytes(cpio, compressor=None, payload_format=None))
    extract(path, tmp_path / "out")
    assert (tmp_path / "out/x").read_bytes() == b"data"


def test_cpio_hard_link_sets(tmp_path: Path) -> None:
    """newc puts the data in the last entry of a set; entries after it are links too."""
    entries = [
        corpus.cpio_entry("./a", FILE_MODE, ino=5, nlink=3),
        corpus.cpio_entry("./b", FILE_MODE, ino=5, nlink=3),
        corpus.cpio_entry("./c", FILE_MODE, b"shared", ino=5, nlink=3),
        corpus.cpio_entry("./e1", FILE_MODE, b"", ino=6, nlink=2),
        corpus.cpio_entry("./e2", FILE_MODE, b"", ino=6, nlink=2),
        corpus.cpio_entry("./d", FILE_MODE, b"early", ino=8, nlink=2),
        corpus.cpio_entry("./d2", FILE_MODE, ino=8, nlink=2),
        corpus.cpio_entry("./crc", FILE_MODE, b"crc", ino=9, magic=b"070702"),
    ]
    path = _write(tmp_path, "x.rpm", _cpio_rpm(*entries)())
    members = extract(path, tmp_path / "out")
    out = tmp_path / "out"
    assert [(m.name, m.kind.name, m.linkname) for m in members] == [
        ("c", "FILE", None),
        ("a", "HARDLINK", "c"),
        ("b", "HARDLINK", "c"),
        ("e2", "FILE", None),
        ("e1", "HARDLINK", "e2"),
        ("d", "FILE", None),
        ("d2", "HARDLINK", "d"),
        ("crc", "FILE", None),
    ]
    assert {(out / n).stat().st_ino for n in "abc"} == {(out / "c").stat().st_ino}
    assert (out / "a").read_bytes() == b"shared"
    assert (out / "e1").stat().st_ino == (out / "e2").stat().st_ino
    assert (out / "d2").read_bytes() == b"early"


@pytest.mark.parametrize("how", ["gnu", "pax", "ustar-prefix"])
def test_tar_long_names(how: str, tmp_path: Path) -> None:
    long_dir = "/".join(["d" * 60] * 3)
    link, target = f"{long_dir}/libfoo.so.1", "t" * 150
    formats = {"gnu": tarfile.GNU_FORMAT, "pax": tarfile.PAX_FORMAT}
    entries = [Entry(f"{long_dir}/file", data=b"content")]
    if how != "ustar-prefix":  # ustar cannot hold a 150-byte link target
        entries.append(Entry(link, "symlink", target=target))
    tar = corpus.tar_bytes(entries, fmt=formats.get(how, tarfile.USTAR_FORMAT))
    members = extract(_deb_with_tar(tmp_path, tar), tmp_path / "out")
    assert (tmp_path / "out" / long_dir / "file").read_bytes() == b"content"
    if how != "ustar-prefix":
        assert os.readlink(tmp_path / "out" / link) == target
        assert members[-1].linkname == target


def test_deb_ignores_underscore_members(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "x.deb",
        corpus.deb_bytes(b"", members=[BINARY, ("_gpgorigin", b"sig"), CONTROL_GZ, DATA_XZ]),
    )
    extract(path, tmp_path / "out")
    assert (tmp_path / "out/usr/x").read_bytes() == b"hello"


def test_zstd_concatenated_frames(tmp_path: Path) -> None:
    tar = _file_tar("lib/x", b"two frames")
    half = len(tar) // 2
    pkg = corpus.compress(tar[:half], "zstd") + corpus.compress(tar[half:], "zstd")
    info = corpus.compress(corpus.tar_bytes(corpus.conda_info_entries()), "zstd")
    data = corpus.zip_bytes(
        [], extra=[("info-a-1-0.tar.zst", info), ("pkg-a-1-0.tar.zst", pkg)], stored=True
    )
    path = _write(tmp_path, "a-1-0.conda", data)
    extract(path, tmp_path / "out")
    assert (tmp_path / "out/lib/x").read_bytes() == b"two frames"


def test_zip_without_unix_modes(tmp_path: Path) -> None:
    """Zips made elsewhere carry no Unix mode: files 0o644, directories by their slash."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in (("pkg/", b""), ("pkg/a.so", b"so")):
            info = zipfile.ZipInfo(name)
            info.create_system = 0
            zf.writestr(info, data)
    path = _write(tmp_path, "x.whl", buf.getvalue())
    members = extract(path, tmp_path / "out")
    assert [(m.name, m.kind, m.mode) for m in members] == [
        ("pkg", MemberKind.DIR, 0o755),
        ("pkg/a.so", MemberKind.FILE, 0o644),
    ]


def test_tar_header_variants(tmp_path: Path) -> None:
    """Blank numeric fields, pax size, global pax headers, old-style directory entries."""
    blank_size_dir = _retar(corpus.tar_header(Entry("blank", "dir")), size=b"")
    old_dir = _retar(corpus.tar_header(Entry("old/", data=b"")), type=b"\0")
    pax_sized = _pax({"size": "5"}) + _retar(corpus.tar_header(Entry("sized", data=b"")))
    pax_sized += b"12345" + bytes(507)
    glob = tarfile.TarInfo("pax_global_header")
    glob.type = tarfile.XGLTYPE
    comment = b"20 comment=a global\n"
    glob.size = len(comment)
    global_pax = glob.tobuf(tarfile.USTAR_FORMAT) + comment + bytes(512 - len(comment))
    # GNU base-256 numbers, as GNU tar writes sizes of 8 GiB and more.
    base256 = _retar(corpus.tar_header(Entry("b256", data=b"")), size=b"\x80" + bytes(10) + b"\x05")
    base256 += b"54321" + bytes(507)
    tar = global_pax + blank_size_dir + old_dir + pax_sized + base256 + _file_tar("old/f")
    members = extract(_deb_with_tar(tmp_path, tar), tmp_path / "out")
    assert [(m.name, m.kind, m.size) for m in members] == [
        ("blank", MemberKind.DIR, 0),
        ("old", MemberKind.DIR, 0),
        ("sized", MemberKind.FILE, 5),
        ("b256", MemberKind.FILE, 5),
        ("old/f", MemberKind.FILE, 5),
    ]
    assert (tmp_path / "out/b256").read_bytes() == b"54321"
    assert (tmp_path / "out/sized").read_bytes() == b"12345"


def test_raw_members_skip_unknown_data(tmp_path: Path) -> None:
    """members() yields an unknown member (for the checks to refuse) and skips its data."""
    volume = _retar(corpus.tar_header(Entry("label", data=b"x" * 600)), type=b"V")
    tar = volume + b"x" * 600 + bytes(424) + _file_tar("after")
    archive = open_archive(_deb_with_tar(tmp_path, tar))
    seen = [(m.name, m.kind, s.read() if s else None) for m, s in archive.members()]
    assert seen == [("label", MemberKind.UNKNOWN, None), ("after", MemberKind.FILE, b"hello")]


def test_gnu_style_ar_names(tmp_path: Path) -> None:
    members = [(f"{name}/", data) for name, data in (BINARY, CONTROL_GZ, DATA_XZ)]
    path = _write(tmp_path, "x.deb", corpus.ar_bytes(members))
    extract(path, tmp_path / "out")
    assert (tmp_path / "out/usr/x").read_bytes() == b"hello"


def test_control_paragraphs(tmp_path: Path) -> None:
    control = b"\n\nPackage: a\nVersion: 1\nArchitecture: all\n\nPackage: second\n"
    path = _write(
        tmp_path,
        "x.deb",
        corpus.deb_bytes(b"", members=[BINARY, ("control.tar.gz", _control_tar(control)), DATA_XZ]),
    )
    info = open_archive(path).info()
    assert (info.name, info.version, info.arch, dict(info.extra)) == ("a", "1", "all", {})


def test_skipping_a_truncated_member_is_an_error(tmp_path: Path) -> None:
    tar = _retar(_file_tar(), size=b"00000001000")[:512] + b"hello"
    ws = Workspace(tmp_path / "ws")
    path = _deb_with_tar(tmp_path, tar)
    with pytest.raises(SourceError, match="truncated: member 'usr/x'"):
        extract(path, ws.dest, select=lambda member: False)
    ws.assert_untouched()


def test_archive_removed_after_open(tmp_path: Path) -> None:
    path = _write(tmp_path, "x.rpm", corpus.rpm_bytes(corpus.cpio_bytes([Entry("x")])))
    archive = open_archive(path)
    path.unlink()
    with pytest.raises(SourceError, match="cannot open: No such file or directory") as err:
        archive.info()
    assert err.value.source == str(path)


def test_writer_never_follows_links_even_without_the_checks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Defence in depth: with check_member bypassed, O_NOFOLLOW and O_EXCL still hold."""

    def names_only(archive_path: str, member: Member, state: CheckState) -> Member:
        name = "/".join(p for p in member.name.split("/") if p not in ("", "."))
        return Member(name, member.kind, member.mode, member.size, member.linkname)

    monkeypatch.setattr(archive_members, "check_member", names_only)
    outside = tmp_path / "outside"
    outside.mkdir()
    attempts = [
        # O_DIRECTORY | O_NOFOLLOW on a symlink: ENOTDIR (Linux) or ELOOP.
        ([_symlink("ln", str(outside)), fake_file("ln/x")], {errno.ENOTDIR, errno.ELOOP}),
        ([_symlink("f", str(outside / "file")), fake_file("f")], {errno.EEXIST}),
        ([fake_file("dup"), fake_file("dup")], {errno.EEXIST}),
    ]
    for i, (items, code) in enumerate(attempts):
        ws = Workspace(tmp_path / f"ws{i}")
        with pytest.raises(OSError) as err:
            extract(FakeArchive(items), ws.dest)
        assert err.value.errno in code
        ws.assert_untouched()
    assert list(outside.iterdir()) == []


# -- check_member and extract through the fake archive --------------------------------


def _unsafe(
    items: list[tuple[Member, bytes | None]], tmp_path: Path, **kw: object
) -> UnsafeArchiveError:
    ws = Workspace(tmp_path)
    with pytest.raises(UnsafeArchiveError) as err:
        extract(FakeArchive(items), ws.dest, **kw)  # type: ignore[arg-type]
    ws.assert_untouched()
    assert err.value.archive == "fake.pkg"
    return err.value


def _symlink(name: str, target: str) -> tuple[Member, None]:
    return Member(name, MemberKind.SYMLINK, 0o777, 0, target), None


@pytest.mark.parametrize(
    ("items", "member", "reason"),
    [
        ([fake_file("a\0b")], "a\0b", "NUL byte in name"),
        ([fake_file("d/" + "n" * 256)], "d/" + "n" * 256, "component longer than 255 bytes"),
        (
            [fake_file("/".join(["d" * 200] * 21))],
            "/".join(["d" * 200] * 21),
            "name longer than 4095",
        ),
        ([fake_file(".")], ".", "naming the destination root itself"),
        ([_symlink("l", "")], "l", "empty symlink target"),
        ([_symlink("l", "a\0b")], "l", "NUL byte in symlink target"),
        ([_symlink("l", "t" * 4096)], "l", "symlink target longer than 4095"),
        ([_symlink("a/b/l", "../../../x")], "a/b/l", "points outside the destination"),
        ([_symlink("l", "later/../x")], "l", "goes up from 'later'"),
        (
            [(Member("h", MemberKind.HARDLINK, 0o644, 0, "/etc/passwd"), None)],
            "h",
            "hard link target '/etc/passwd': absolute path",
        ),
        (
            [
                (Member("dir", MemberKind.DIR, 0o755), None),
                (Member("h", MemberKind.HARDLINK, 0o644, 0, "dir"), None),
            ],
            "h",
            "not an earlier regular file",
        ),
        ([(Member("b", MemberKind.BLOCKDEV, 0o600), None)], "b", "is a block device"),
        ([(Member("s", MemberKind.SOCKET, 0o600), None)], "s", "is a socket"),
        ([(Member("u", MemberKind.UNKNOWN, 0o600), None)], "u", "unsupported type"),
        (
            [(Member("sticky", MemberKind.DIR, 0o1777), None)],
            "sticky",
            "sticky bit set (mode 0o1777)",
        ),
        (
            [fake_file("liar", b"x" * 5000, size=1)],
            "liar",
            "holds more data than its header says (1 bytes)",
        ),
        (
            [
                (Member("d", MemberKind.DIR, 0o755), None),
                (Member("d/", MemberKind.DIR, 0o755), None),
            ],
            "d/",
            "duplicate member name 'd'",
        ),
    ],
)
def test_member_checks(
    items: list[tuple[Member, bytes | None]], member: str, reason: str, tmp_path: Path
) -> None:
    err = _unsafe(items, tmp_path)
    assert err.member == member
    assert reason in err.reason


def test_limits_count_bytes_read_not_header_claims(tmp_path: Path) -> None:
    """A member whose header says 10 bytes and whose stream gives 5000 is still stopped."""
    items = [fake_file("a", b"x" * 5000, size=5000)]
    err = _unsafe(items, tmp_path / "1", limits=Limits(max_member_size=4000))
    assert "more than the limit of 4000" in err.reason  # claimed size, before reading
    items = [fake_file("a", b"x" * 3000), fake_file("b", b"x" * 3000)]
    err = _unsafe(items, tmp_path / "2", limits=Limits(max_total_size=5000))
    assert (err.member, "max_total_size" in err.reason) == ("b", True)


def test_stream_shorter_than_claimed(tmp_path: Path) -> None:
    ws = Workspace(tmp_path)
    with pytest.raises(SourceError, match="ends after 4 of its 100 bytes") as err:
        extract(FakeArchive([fake_file("short", b"data", size=100)]), ws.dest)
    assert not isinstance(err.value, UnsafeArchiveError)
    ws.assert_untouched()


def test_allowed_links_and_names(tmp_path: Path) -> None:
    items: list[tuple[Member, bytes | None]] = [
        (Member("./", MemberKind.DIR, 0o755), None),
        (Member("./usr//lib/", MemberKind.DIR, 0o700), None),
        fake_file("./usr/lib/./libx.so.1.0", b"x"),
        _symlink("usr/lib/libx.so.1", "libx.so.1.0"),
        _symlink("usr/lib/up", "../lib/./libx.so.1"),
        _symlink("usr/lib/back", "../../usr/lib/libx.so.1.0"),
        _symlink("usr/lib/via-dir", "../lib/../lib/libx.so.1.0"),
        _symlink("usr/lib/dangling", "not/yet/there"),
        _symlink("dot", "."),
        (Member("usr/h1", MemberKind.HARDLINK, 0o644, 0, "./usr/lib/libx.so.1.0"), None),
        (Member("usr/h2", MemberKind.HARDLINK, 0o644, 0, "usr/h1"), None),
        (Member("usr/share", MemberKind.DIR, 0o755), None),
        fake_file("usr/share/later/x", b"y"),
        (Member("usr/share/later", MemberKind.DIR, 0o755), None),  # after an implicit parent
    ]
    dest = tmp_path / "out"
    dest.mkdir()  # an empty directory is an accepted destination
    members = extract(FakeArchive(items), dest)
    names = [m.name for m in members]
    assert names[:2] == ["usr/lib", "usr/lib/libx.so.1.0"]
    assert members[-5].linkname == "usr/lib/libx.so.1.0"
    assert members[-4] == Member("usr/h2", MemberKind.HARDLINK, 0o644, 0, "usr/lib/libx.so.1.0")
    for link in ("libx.so.1", "up", "back", "via-dir"):
        assert (dest / "usr/lib" / link).read_bytes() == b"x"
    assert stat.S_IMODE((dest / "usr/lib").stat().st_mode) == 0o755
    assert (dest / "usr/h2").stat().st_ino == (dest / "usr/lib/libx.so.1.0").stat().st_ino


def test_check_member_directly() -> None:
    state = CheckState(Limits(max_members=10))
    assert check_member("a.deb", Member("./", MemberKind.DIR, 0o755), state) is None
    file = check_member("a.deb", Member("./lib/x", MemberKind.FILE, 0o755, 3), state)
    assert file == Member("lib/x", MemberKind.FILE, 0o755, 3)
    with pytest.raises(UnsafeArchiveError) as err:
        check_member("a.deb", Member("lib/x/y", MemberKind.FILE, 0o644, 1), state)
    assert (err.value.archive, err.value.member) == ("a.deb", "lib/x/y")
    assert (
        str(err.value)
        == "a.deb: unsafe member 'lib/x/y': its parent 'lib/x' is a file, not a directory"
    )
    assert state.kinds == {"lib/x": MemberKind.FILE}
    assert state.dirs == {"lib"}


@pytest.mark.parametrize("existing", ["file", "non-empty-dir", "symlink-to-empty-dir"])
def test_destination_must_be_new_or_empty(existing: str, tmp_path: Path) -> None:
    dest = tmp_path / "out"
    if existing == "file":
        dest.write_bytes(b"keep")
    elif existing == "non-empty-dir":
        dest.mkdir()
        (dest / "keep").write_bytes(b"keep")
    else:
        (tmp_path / "empty").mkdir()
        dest.symlink_to("empty")
    before = snapshot(tmp_path)
    with pytest.raises(FileExistsError):
        extract(FakeArchive([fake_file("a")]), dest)
    assert snapshot(tmp_path) == before


def test_stream_is_valid_until_the_next_item(tmp_path: Path) -> None:
    path = _deb_with_tar(tmp_path, corpus.tar_bytes([Entry("a", data=b"A" * 100), Entry("b")]))
    items = iter_members(open_archive(path))
    _, first = next(items)
    assert first is not None
    assert first.read(10) == b"A" * 10
    next(items)
    with pytest.raises(ValueError, match="read after the next item"):
        first.read()
    items.close()


def test_default_limits() -> None:
    assert Limits(100_000, 4 << 30, 16 << 30) == DEFAULT_LIMITS


# -- random damage: only SourceError, never anything left behind ----------------------


def _fuzz_seeds() -> dict[str, tuple[str, bytes]]:
    entries = [
        Entry("usr/lib/libx.so.1.0", data=bytes(range(256)) * 8),
        Entry("usr/lib/libx.so.1", "symlink", target="libx.so.1.0"),
        Entry("usr/share/doc/x/copyright", data=b"MIT\n" * 20),
    ]
    tar = corpus.tar_bytes(entries)
    return {
        "deb": ("x.deb", corpus.deb_bytes(tar, method="gzip")),
        "deb-none": ("x.deb", corpus.deb_bytes(tar, method="none")),
        "rpm": ("x.rpm", corpus.rpm_bytes(corpus.cpio_bytes(entries))),
        "rpm-none": ("x.rpm", corpus.rpm_bytes(corpus.cpio_bytes(entries), compressor="none")),
        "whl": ("x.whl", corpus.wheel_bytes(entries)),
        "conda": ("x.conda", corpus.conda_bytes(tar)),
        "tar.bz2": ("x.tar.bz2", corpus.tar_bz2_bytes(entries)),
    }


SEEDS = _fuzz_seeds()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    fmt=st.sampled_from(sorted(SEEDS)),
    flips=st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 255)), max_size=4),
    cut=st.one_of(st.none(), st.floats(0, 1)),
)
def test_random_damage(fmt: str, flips: list[tuple[float, int]], cut: float | None) -> None:
    name, seed = SEEDS[fmt]
    data = bytearray(seed)
    for where, value in flips:
        data[int(where * len(data))] = value
    if cut is not None:
        del data[int(cut * len(data)) :]
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        path = base / name
        path.write_bytes(bytes(data))
        ws = Workspace(base / "ws")
        try:
            extract(path, ws.dest)
        except SourceError as e:
            assert e.source == str(path)
            ws.assert_untouched()
        try:
            open_archive(path).info()
        except SourceError as e:
            assert e.source == str(path)
