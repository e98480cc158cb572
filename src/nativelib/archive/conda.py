"""conda packages: .conda (zip of zstd tars) and .tar.bz2."""

from __future__ import annotations

import io
import json
import os
import zipfile
from collections.abc import Callable, Iterator
from typing import IO

from nativelib.archive.extraction import extract
from nativelib.archive.members import (
    DEFAULT_LIMITS,
    Archive,
    CheckState,
    FileArchive,
    Limits,
    Member,
    MemberKind,
    PackageInfo,
    PackagePath,
    check_member,
)
from nativelib.archive.streams import (
    _CHUNK,
    _Corrupt,
    _decompressed,
    _open_file,
    _ZstdReader,
    reading_errors,
)
from nativelib.archive.tar import (
    _MAX_META_BYTES,
    _MAX_META_MEMBERS,
    _metadata_members,
    _normalized,
    _read_small,
    _tar_members,
)
from nativelib.archive.zip import _open_conda_zip as _open_zip
from nativelib.errors import SourceError

# -- conda ----------------------------------------------------------------------------

_MAX_CONDA_JSON = 64 << 20
#: The outer zip of a .conda is never extracted; its names are still checked.
_OUTER_LIMITS = Limits(max_members=1000, max_member_size=1 << 62, max_total_size=1 << 62)


def _conda_info(members: Iterator[tuple[Member, IO[bytes] | None]]) -> PackageInfo:
    """PackageInfo from the members of an info/ tree (index.json, paths.json)."""
    found: dict[str, bytes] = {}
    for member, stream in _metadata_members(members, "the info/ tree"):
        key = _normalized(member.name)
        if member.kind is MemberKind.FILE and key in ("info/index.json", "info/paths.json"):
            found[key] = _read_small(stream, member, _MAX_CONDA_JSON)
            if len(found) == 2:
                break
    if "info/index.json" not in found:
        raise _Corrupt("no info/index.json")
    try:
        index = json.loads(found["info/index.json"])
        paths_doc = json.loads(found.get("info/paths.json", b'{"paths": []}'))
    except ValueError as e:
        raise _Corrupt(f"bad JSON in info/: {e}") from None
    except RecursionError:
        raise _Corrupt("bad JSON in info/: nested too deeply") from None
    if not isinstance(index, dict) or not isinstance(paths_doc, dict):
        raise _Corrupt("info/index.json or info/paths.json is not a JSON object")
    name, version = index.get("name"), index.get("version")
    if not isinstance(name, str) or not isinstance(version, str):
        raise _Corrupt("info/index.json has no string 'name' and 'version'")
    paths: list[PackagePath] = []
    for entry in paths_doc.get("paths", []):
        if not isinstance(entry, dict) or not isinstance(entry.get("_path"), str):
            raise _Corrupt("bad entry in info/paths.json")
        sha = entry.get("sha256")
        size = entry.get("size_in_bytes")
        paths.append(
            PackagePath(
                entry["_path"],
                str(entry.get("path_type", "hardlink")),
                sha if isinstance(sha, str) else None,
                size if isinstance(size, int) else None,
            )
        )
    license = index.get("license")
    subdir = index.get("subdir")
    extra = {
        k: str(v)
        for k, v in index.items()
        if k not in ("name", "version", "license", "subdir")
        and isinstance(v, (str, int, float))
        and not isinstance(v, bool)
    }
    return PackageInfo(
        "conda",
        name,
        version,
        license if isinstance(license, str) else None,
        subdir if isinstance(subdir, str) else None,
        extra,
        tuple(paths),
    )


class CondaArchive(FileArchive):
    """A ``.conda`` package: a zip holding ``info-*.tar.zst`` and ``pkg-*.tar.zst``.

    The payload is the ``pkg`` component. The outer zip's names pass the same name
    checks as members (an unsafe one is an UnsafeArchiveError naming it) and must hold
    exactly one component of each kind.
    """

    def _component(self, zf: zipfile.ZipFile, which: str) -> zipfile.ZipInfo:
        state = CheckState(_OUTER_LIMITS)
        found: list[zipfile.ZipInfo] = []
        for info in zf.infolist():
            check_member(self._path, Member(info.filename, MemberKind.FILE, 0o644), state)
            if info.filename.startswith(f"{which}-") and info.filename.endswith(".tar.zst"):
                found.append(info)
        if len(found) != 1:
            raise _Corrupt(f"expected one {which}-*.tar.zst component, found {len(found)}")
        return found[0]

    def _tar(self, zf: zipfile.ZipFile, which: str) -> Iterator[tuple[Member, IO[bytes] | None]]:
        component = self._component(zf, which)
        raw = zf.open(component)
        stream = io.BufferedReader(_ZstdReader(raw), _CHUNK)
        return _tar_members(stream, self._path, component.filename)

    def info(self) -> PackageInfo:
        with reading_errors(self._path), _open_zip(self._path) as zf:
            return _conda_info(self._tar(zf, "info"))

    def members(self) -> Iterator[tuple[Member, IO[bytes] | None]]:
        with reading_errors(self._path), _open_zip(self._path) as zf:
            yield from self._tar(zf, "pkg")

    def info_members(self) -> Iterator[tuple[Member, IO[bytes] | None]]:
        """The members of the ``info`` component, unchecked (see :func:`info_files`)."""
        with reading_errors(self._path), _open_zip(self._path) as zf:
            yield from self._tar(zf, "info")


class CondaTarBz2Archive(FileArchive):
    """A conda ``.tar.bz2`` package; the payload is everything but ``info/``.

    The ``info/`` members are not yielded, but every member, ``info/`` included, is
    checked (with the default limits) so that no unsafe member is ever skipped silently.
    """

    def _tar(self, f: IO[bytes]) -> Iterator[tuple[Member, IO[bytes] | None]]:
        return _tar_members(_decompressed(f, "bzip2"), self._path, "tar.bz2")

    def info(self) -> PackageInfo:
        with reading_errors(self._path), _open_file(self._path) as f:
            return _conda_info(self._tar(f))

    def members(self) -> Iterator[tuple[Member, IO[bytes] | None]]:
        return self._members(None)

    def _members(self, info: _InfoFiles | None) -> Iterator[tuple[Member, IO[bytes] | None]]:
        """The payload; ``info``, where given, collects the ``info/`` files on the way."""
        state = CheckState()
        with reading_errors(self._path), _open_file(self._path) as f:
            for member, stream in self._tar(f):
                checked = check_member(self._path, member, state)
                if checked is None:
                    continue
                if checked.name.split("/")[0] == "info":
                    if info is not None:
                        info.add(member, stream)
                    continue
                yield member, stream

    def info_members(self) -> Iterator[tuple[Member, IO[bytes] | None]]:
        """The ``info/`` members, unchecked (see :func:`info_files`)."""
        with reading_errors(self._path), _open_file(self._path) as f:
            for member, stream in self._tar(f):
                if _normalized(member.name).split("/")[0] == "info":
                    yield member, stream


#: The most info_files reads from one package (licence texts are small).
_MAX_INFO_FILES_BYTES = 64 << 20


class _InfoFiles:
    """What :func:`info_files` collects, fed the ``info/`` members one at a time.

    Bounded like :func:`_metadata_members` (members and bytes of the tree) and to
    ``_MAX_INFO_FILES_BYTES`` of selected files.
    """

    def __init__(self, archive: str, select: Callable[[str], bool]):
        self._archive = archive
        self._select = select
        self._state = CheckState()
        self._seen = 0
        self._size = 0
        self._total = 0
        self.found: dict[str, bytes] = {}

    def add(self, member: Member, stream: IO[bytes] | None) -> None:
        """Check ``member`` (as stored) and keep its bytes if it is a selected file."""
        self._seen += 1
        self._size += member.size
        with reading_errors(self._archive):
            if self._seen > _MAX_META_MEMBERS:
                raise _Corrupt(f"the info/ tree holds more than {_MAX_META_MEMBERS} members")
            if self._size > _MAX_META_BYTES:
                raise _Corrupt(f"the info/ tree holds more than {_MAX_META_BYTES} bytes")
        checked = check_member(self._archive, member, self._state)
        if checked is None or checked.kind is not MemberKind.FILE or not self._select(checked.name):
            return
        self._total += checked.size
        if self._total > _MAX_INFO_FILES_BYTES:
            raise SourceError(
                self._archive, f"info/ files selected exceed {_MAX_INFO_FILES_BYTES} bytes"
            )
        with reading_errors(self._archive):
            self.found[checked.name] = _read_small(stream, checked, _MAX_INFO_FILES_BYTES)


def info_files(archive: Archive, select: Callable[[str], bool]) -> dict[str, bytes]:
    """Regular files of a conda package's ``info/`` tree that ``select`` picks, by name.

    This is where conda packages keep their licences (``info/licenses/...``). Every
    member passes :func:`check_member`; links are not followed; at most 64 MiB in all.
    Packages of other kinds have no ``info/`` tree: ``{}``.
    """
    reader = getattr(archive, "info_members", None)
    if reader is None:
        return {}
    collected = _InfoFiles(archive.path, select)
    for member, stream in reader():
        collected.add(member, stream)
    return collected.found


class _CollectingInfo:
    """A conda ``.tar.bz2`` whose payload pass also collects its ``info/`` files."""

    def __init__(self, archive: CondaTarBz2Archive, collected: _InfoFiles):
        self._archive = archive
        self._collected = collected

    @property
    def path(self) -> str:
        return self._archive.path

    def info(self) -> PackageInfo:
        return self._archive.info()

    def members(self) -> Iterator[tuple[Member, IO[bytes] | None]]:
        return self._archive._members(self._collected)


def extract_with_info_files(
    archive: Archive,
    dest: str | os.PathLike[str],
    *,
    select: Callable[[Member], bool],
    info_select: Callable[[str], bool],
    limits: Limits = DEFAULT_LIMITS,
) -> tuple[list[Member], dict[str, bytes]]:
    """:func:`~nativelib.archive.extract` and :func:`info_files` of one package together.

    A conda ``.tar.bz2`` holds its ``info/`` tree in the one stream of its payload: it is
    decompressed once for both. Other kinds are read as the two functions read them.
    """
    if isinstance(archive, CondaTarBz2Archive):
        collected = _InfoFiles(archive.path, info_select)
        done = extract(_CollectingInfo(archive, collected), dest, limits=limits, select=select)
        return done, collected.found
    done = extract(archive, dest, limits=limits, select=select)
    return done, info_files(archive, info_select)
