"""The distributions of each site directory (their RECORDs) and the runtimes installed in
its common prefix: every file a runtime's RECORD lists is hashed and compared (pip never
checks), every library its manifest lists is compared with the file, the loader's index
with the manifest, and a file in the prefix claimed by two distributions is named.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import stat
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from packaging.version import Version

from nativelib.doctor.hostfacts import ElfCache
from nativelib.doctor.model import Finding, RuntimeFile, RuntimeReport, finding
from nativelib.errors import FileReadError, ManifestError, UnsafeRuntimePath, WheelError
from nativelib.files import file_kind, open_regular_file, read_regular_file
from nativelib.loader import check_library, check_prefix, is_openmp_provider
from nativelib.prefix import (
    LIB_DIR,
    MANIFEST_DIR,
    MAX_INDEX_BYTES,
    PREFIX_DIRNAME,
    Manifest,
    index_filename,
    loader_index,
    parse_manifest,
    record_digest,
    soname_problem,
)
from nativelib.wheelfile.record import (
    RecordRow,
    parse_record,
    record_lists,
    record_path_set,
    record_paths,
    record_top_runs,
    record_well_formed,
)

__all__ = [
    "InstalledRuntime",
    "SiteDistributions",
    "check_runtimes",
    "environment_prefix",
    "normalize",
]

#: Bounds on what the doctor reads of a file pip installed (the largest real RECORDs,
#: of packages with tens of thousands of files, are a few MiB).
MAX_RECORD_BYTES = 64 << 20
MAX_MANIFEST_BYTES = 16 << 20
#: METADATA: only its headers are read, from at most this much of the file.
METADATA_HEAD_BYTES = 1 << 20


def normalize(name: str) -> str:
    """A distribution name as PEP 503 compares it."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _file_digest(path: str, algorithm: str = "sha256") -> str | FileReadError:
    """The RECORD form of a file's digest (urlsafe base64, no padding), or why it cannot
    be read: only a regular file is read (a FIFO or a device is refused, never read), and
    never through a symlink (pip installs regular files)."""
    digest = hashlib.new(algorithm)
    try:
        with open_regular_file(path) as f:
            while block := f.read(1 << 20):
                digest.update(block)
    except FileReadError as e:
        return e
    except OSError as e:
        return FileReadError(path, f"cannot read: {e.strerror or e}")
    return record_digest(digest.digest())


def environment_prefix(site: str) -> str | None:
    """The prefix pip installs a site directory's scripts and data under (RECORD paths
    such as ``../../../bin/tool``): the directory above ``lib/pythonX.Y/site-packages``
    (a venv, ``--user``, ``--prefix``, ``/usr/lib/python3/dist-packages``); None for any
    other layout (``--target``), or when that would be ``/``."""
    parts = os.path.normpath(site).split(os.sep)
    if (
        len(parts) > 4
        and parts[-1] in ("site-packages", "dist-packages")
        and parts[-2].startswith("python")
        and parts[-3] in ("lib", "lib64")
    ):
        return os.sep.join(parts[:-3])
    return None


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def _headers(head: bytes) -> dict[str, str]:
    """The ``Name`` and ``Version`` headers of the start of a METADATA file."""
    out = {}
    for raw in head.split(b"\n"):
        line = raw.decode("utf-8")
        if not line.strip():
            break
        key, _, value = line.partition(":")
        if key in ("Name", "Version"):
            out[key] = value.strip()
    return out


def _unreadable_in_place(path: str, digest: str | FileReadError) -> bool:
    """Whether a file could not be read where pip put it (permissions, a directory or
    another kind of file): reported as unreadable, not as changed. A symlink in its place
    is a change (pip installs regular files), reported as such."""
    return isinstance(digest, FileReadError) and not os.path.islink(path)


def _unreadable(path: str) -> str:
    """Why a file cannot be read: its kind, or the error opening it gives."""
    try:
        st = os.stat(path)
    except OSError as e:
        return str(e.strerror)
    if not stat.S_ISREG(st.st_mode):
        return f"it is {file_kind(st.st_mode)}, not a regular file"
    try:
        os.close(os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC))
    except OSError as e:
        return str(e.strerror)
    return "reading it failed"


class SiteDistributions:
    """The ``*.dist-info`` directories of one site directory; RECORDs read once, when asked
    (with :func:`nativelib.wheelfile.record.parse_record`, the wheel readers' rules)."""

    def __init__(self, site: str) -> None:
        self.site = site
        self.real = os.path.realpath(site)
        try:
            names = os.listdir(site)
        except OSError:
            names = []
        self.dist_infos = sorted(n for n in names if n.endswith(".dist-info"))
        self._raw: dict[str, bytes | WheelError | None] = {}
        self._records: dict[str, dict[str, RecordRow] | WheelError | None] = {}
        self._formed: dict[str, bool] = {}
        #: RECORD or METADATA files there that are not regular files, or cannot be read.
        self.unreadable: dict[str, str] = {}
        self._owners: dict[str, dict[str, str]] = {}  # by top-level name (the filter)
        self._labels: dict[str, str] = {}

    def raw_record(self, dist_info: str) -> bytes | None:
        """The bytes of its RECORD, read once (a regular file, bounded); None if there is
        none; :class:`~nativelib.errors.WheelError` if it cannot be read (a FIFO, a
        device, a symlink, over :data:`MAX_RECORD_BYTES`)."""
        if dist_info not in self._raw:
            where = os.path.join(self.site, dist_info, "RECORD")
            try:
                self._raw[dist_info] = read_regular_file(where, MAX_RECORD_BYTES)
            except FileReadError as e:
                if os.path.lexists(where):
                    self.unreadable[where] = e.reason
                    self._raw[dist_info] = WheelError(where, e.reason)
                else:
                    self._raw[dist_info] = None
        found = self._raw[dist_info]
        if isinstance(found, WheelError):
            raise found
        return found

    def mentions(self, dist_info: str, text: str) -> bool:
        """Whether its RECORD holds ``text`` at all: a cheap filter (a C substring search)
        before parsing it (torch's RECORD has ~15,000 rows)."""
        try:
            raw = self.raw_record(dist_info)
        except WheelError:
            return False
        return raw is not None and text.encode("utf-8") in raw

    def record(self, dist_info: str) -> dict[str, RecordRow] | None:
        """Its RECORD rows by path; None if there is no RECORD, and
        :class:`~nativelib.errors.WheelError` if it is malformed or cannot be read."""
        if dist_info not in self._records:
            where = os.path.join(self.site, dist_info, "RECORD")
            try:
                raw = self.raw_record(dist_info)
            except WheelError as e:
                self._records[dist_info] = e
            else:
                try:
                    text = None if raw is None else raw.decode("utf-8")
                except UnicodeDecodeError:
                    text = None
                try:
                    self._records[dist_info] = None if text is None else parse_record(text, where)
                except WheelError as e:
                    self._records[dist_info] = e
        found = self._records[dist_info]
        if isinstance(found, WheelError):
            raise found
        return found

    def findings(self) -> list[Finding]:
        """A RECORD or METADATA that is not a regular file, or cannot be read (every
        RECORD is read here, once, and parsed only when needed; METADATA is looked at with
        ``lstat``, not opened)."""
        for dist_info in self.dist_infos:
            with contextlib.suppress(WheelError):
                self.raw_record(dist_info)
        for dist_info in self.dist_infos:
            where = os.path.join(self.site, dist_info, "METADATA")
            try:
                mode = os.lstat(where).st_mode
            except OSError:
                continue
            if not stat.S_ISREG(mode) and where not in self.unreadable:
                self.unreadable[where] = f"not a regular file: it is {file_kind(mode)}"
        return [
            finding(
                "dist-info-unreadable",
                f"{where} cannot be read ({reason}): the doctor skipped it",
                (where,),
                f"remove {os.path.dirname(where)} and reinstall that distribution",
            )
            for where, reason in sorted(self.unreadable.items())
        ]

    def _usable(self, needle: str) -> dict[str, dict[str, RecordRow]]:
        """The RECORDs that can be read and hold ``needle`` (a cheap substring filter
        first: a RECORD that lists ``top/x`` holds ``top/``; malformed ones left out)."""
        out = {}
        for dist_info in self.dist_infos:
            if not self.mentions(dist_info, needle):
                continue
            try:
                rows = self.record(dist_info)
            except WheelError:
                continue
            if rows is not None:
                out[dist_info] = rows
        return out

    def find(self, name: str, version: str) -> str | None:
        """The dist-info directory of ``name`` ``version``, if installed here."""
        want = normalize(name)
        for dist_info in self.dist_infos:
            stem = dist_info[: -len(".dist-info")]
            dist, _, ver = stem.partition("-")
            if normalize(dist) == want and ver == version:
                return dist_info
        return None

    def label(self, dist_info: str) -> str:
        """``scikit-learn 1.9.1``: the Name and Version of its METADATA (else the dir name)."""
        if dist_info not in self._labels:
            stem = dist_info[: -len(".dist-info")]
            name, _, version = stem.partition("-")
            where = os.path.join(self.site, dist_info, "METADATA")
            try:
                with open_regular_file(where) as f:
                    headers = _headers(f.read(METADATA_HEAD_BYTES))
            except FileReadError as e:
                if os.path.lexists(where):
                    self.unreadable[where] = e.reason
            except (OSError, UnicodeDecodeError):
                pass
            else:
                name = headers.get("Name", name)
                version = headers.get("Version", version)
            self._labels[dist_info] = f"{name} {version}".strip()
        return self._labels[dist_info]

    def owner(self, path: str) -> str | None:
        """The distribution whose RECORD lists ``path`` (a real path under this site)."""
        if not path.startswith(self.real + os.sep):
            return None
        rel = path[len(self.real) + 1 :]
        for dist_info in self.dist_infos:
            # A row of its own with this very path decides it without parsing the rows.
            if self.mentions(dist_info, rel) and record_lists(self._raw_bytes(dist_info), rel):
                if not self._well_formed(dist_info):
                    return None  # a malformed RECORD names no owner
                return self.label(dist_info)
        # Else a row may spell it another way (``./x``, ``a//x``, quoted): read the paths.
        top, sep, _ = rel.partition(os.sep)
        needle = top + sep  # "torch/" for torch/lib/x.so; the name of a file in the site
        owners = self._owners.get(needle)
        if owners is None:
            owners = self._owners[needle] = {}
            for dist_info in self.dist_infos:
                if not self.mentions(dist_info, needle):
                    continue
                where = os.path.join(self.site, dist_info, "RECORD")
                try:
                    keys = record_paths(self._raw_bytes(dist_info).decode("utf-8"), where)
                except (UnicodeDecodeError, WheelError):
                    continue
                for key in keys:
                    if "./" in key or "//" in key or key.startswith("/"):
                        key = os.path.normpath(os.path.join(self.real, key))
                        if not key.startswith(self.real + os.sep):
                            continue
                        key = key[len(self.real) + 1 :]
                    owners.setdefault(key, dist_info)
        found = owners.get(rel)
        return self.label(found) if found is not None else None

    def _well_formed(self, dist_info: str) -> bool:
        """Whether its RECORD parses (decided cheaply where it can be, and once: owners
        are asked of torch's ~15,000 rows)."""
        if dist_info not in self._formed:
            quick: bool | None = None
            if dist_info not in self._records:
                try:
                    quick = record_well_formed(self._raw_bytes(dist_info).decode("utf-8"))
                except UnicodeDecodeError:
                    quick = False
            if quick is None:
                try:
                    quick = self.record(dist_info) is not None
                except WheelError:
                    quick = False
            self._formed[dist_info] = quick
        return self._formed[dist_info]

    def _raw_bytes(self, dist_info: str) -> bytes:
        """Its RECORD's bytes, once :meth:`mentions` said it holds something."""
        raw = self.raw_record(dist_info)
        assert raw is not None
        return raw

    def claims(self, under: str) -> dict[str, list[str]]:
        """Paths under ``under/`` (relative to the site) -> the dist-infos whose RECORD
        lists them."""
        out: dict[str, list[str]] = {}
        for dist_info, rows in self._usable(under + "/").items():
            for path in rows:
                if path.startswith(under + "/"):
                    out.setdefault(os.path.normpath(path), []).append(dist_info)
        return out


@dataclass(frozen=True)
class InstalledRuntime:
    manifest: Manifest
    prefix: str
    active: bool

    def library_path(self, soname: str) -> str:
        return os.path.join(self.prefix, LIB_DIR, soname)


def _reinstall(name: str, version: str) -> str:
    return f'pip install --force-reinstall --no-deps "{name}=={version}"'


class _SiteCheck:
    def __init__(self, site: str, dists: SiteDistributions, elf: ElfCache) -> None:
        self.site = site
        self.dists = dists
        self.elf = elf
        self.prefix = os.path.join(site, PREFIX_DIRNAME)
        self.prefix_safe = True
        self.findings: list[Finding] = []
        # Where a RECORD path may lead: the site directory, and the prefix pip puts
        # scripts and data under; lexically, then for real (a symlinked directory).
        roots = [os.path.normpath(site)]
        env_prefix = environment_prefix(site)
        if env_prefix is not None:
            roots.append(env_prefix)
        self.roots = tuple(roots)
        self.real_roots = tuple(os.path.realpath(r) for r in roots)

    def outside(self, rel: str) -> bool:
        """Whether a RECORD path leads out of the site directory and its prefix: absolute,
        too many ``..``, or through a symlinked directory that leads elsewhere."""
        if os.path.isabs(rel):
            return True
        path = os.path.normpath(os.path.join(self.site, rel))
        if not any(_inside(path, root) for root in self.roots):
            return True
        real_dir = os.path.realpath(os.path.dirname(path))
        return not any(_inside(real_dir, root) for root in self.real_roots)

    def add(self, code: str, message: str, files: Sequence[str], hint: str | None) -> None:
        self.findings.append(finding(code, message, tuple(files), hint))

    def unreadable(self, manifest: Manifest, rel: str, path: str, against: str) -> None:
        self.add(
            "runtime-file-unreadable",
            f"{manifest.name} {manifest.version}: {rel} cannot be read ({_unreadable(path)}), "
            f"so it cannot be checked against its {against}",
            [path],
            _reinstall(manifest.name, manifest.version),
        )

    def unsafe_sonames(self, manifest: Manifest, sonames: Sequence[str], where: str) -> None:
        """A manifest or loader index naming a soname that is not one file name in lib/."""
        for soname in sonames:
            problem = soname_problem(soname)
            if problem is not None:
                self.add(
                    "runtime-soname-unsafe",
                    f"{manifest.name} {manifest.version}: {os.path.relpath(where, self.prefix)} "
                    f"names the soname {soname!r}, which {problem}: nativelib.load() refuses "
                    "this runtime",
                    [where],
                    _reinstall(manifest.name, manifest.version),
                )

    def verify_record(
        self,
        manifest: Manifest,
        dist_info: str | None,
        digests: dict[str, str | FileReadError],
    ) -> tuple[str, dict[str, str]]:
        """Hash every file the RECORD lists; returns the RECORD state and each file's
        status (by path)."""
        name, version = manifest.name, manifest.version
        record = f"{normalize(name).replace('-', '_')}-{version}.dist-info/RECORD"
        try:
            rows = self.dists.record(dist_info) if dist_info is not None else None
            problem = f"no {record} in {self.site}"
        except WheelError as e:
            what = "cannot be read" if e.subject in self.dists.unreadable else "is malformed"
            rows, problem = None, f"its RECORD {what} ({e.reason})"
        if rows is None:
            self.add(
                "runtime-record-missing",
                f"{name} {version}: {problem}, so its files cannot be verified",
                [os.path.join(self.prefix, manifest.filename)],
                _reinstall(name, version),
            )
            return "missing", {}
        status: dict[str, str] = {}
        for rel, row in rows.items():
            path = os.path.normpath(os.path.join(self.site, rel))
            if self.outside(rel):
                status[path] = "outside"  # never opened, nor even looked at
                self.add(
                    "runtime-record-outside",
                    f"{name} {version}: its RECORD lists {rel!r}, outside its site directory "
                    f"{self.site} (and its environment): not verified; pip uninstall would "
                    "delete that file",
                    [os.path.join(self.site, dist_info or "", "RECORD")],
                    _reinstall(name, version),
                )
                continue
            if row.algorithm is None or row.digest is None:
                continue
            if not os.path.lexists(path):
                status[path] = "missing"
                self.add(
                    "runtime-file-missing",
                    f"{name} {version}: {rel} is listed in its RECORD but is not installed",
                    [path],
                    _reinstall(name, version),
                )
                continue
            digest = _file_digest(path, row.algorithm)
            if row.algorithm == "sha256":
                digests[path] = digest
            if digest == row.digest:
                status[path] = "ok"
                continue
            if _unreadable_in_place(path, digest):  # not changed: it cannot be read at all
                status[path] = "unverified"
                self.unreadable(manifest, rel, path, "RECORD")
                continue
            status[path] = "modified"
            if isinstance(digest, FileReadError):
                message = (
                    f"{name} {version}: {rel} cannot be verified against its RECORD: "
                    f"{digest.reason}"
                )
            else:
                message = (
                    f"{name} {version}: {rel} does not match its RECORD ({row.algorithm} "
                    f"{digest} instead of {row.digest}): the file was changed after pip "
                    "installed it"
                )
            self.add("runtime-file-modified", message, [path], _reinstall(name, version))
        state = "verified" if all(s == "ok" for s in status.values()) else "mismatch"
        return state, status

    def compare_manifest(
        self, manifest: Manifest, status: dict[str, str], digests: dict[str, str | FileReadError]
    ) -> list[RuntimeFile]:
        name, version = manifest.name, manifest.version
        files = []
        where = os.path.join(self.prefix, manifest.filename)
        self.unsafe_sonames(manifest, [lib.soname for lib in manifest.libraries], where)
        for lib in manifest.libraries:
            if soname_problem(lib.soname) is not None:
                continue  # never opened: it is not a file of this prefix
            path = os.path.join(self.prefix, lib.file)
            seen = status.get(path)
            if not os.path.lexists(path):
                files.append(RuntimeFile(path, lib.soname, None, "missing"))
                if seen != "missing":
                    self.add(
                        "runtime-file-missing",
                        f"{name} {version}: its manifest lists {lib.file}, which is not installed",
                        [path],
                        _reinstall(name, version),
                    )
                continue
            try:
                size: int | None = os.stat(path).st_size
            except OSError:
                size = None
            files.append(RuntimeFile(path, lib.soname, size, seen or "unverified"))
            if self.prefix_safe:  # else the prefix finding says why the loader skips it
                try:
                    check_library(path, self.prefix)
                except UnsafeRuntimePath as e:
                    self.add(
                        "runtime-library-unsafe",
                        f"{name} {version}: nativelib.load() refuses {lib.file}: {e.reason}",
                        [path],
                        f"chmod go-w {path} (as its owner), or {_reinstall(name, version)} "
                        "as the user who owns the environment",
                    )
            if seen == "modified":
                continue  # already said: the file changed after installation
            problems = []
            if path not in digests:
                digests[path] = _file_digest(path)
            if _unreadable_in_place(path, digests[path]):
                if seen is None:  # else already said, against its RECORD
                    self.unreadable(manifest, lib.file, path, "manifest")
                continue
            expected = record_digest(bytes.fromhex(lib.sha256))
            digest = digests[path]
            if isinstance(digest, FileReadError):
                problems.append(f"it cannot be read: {digest.reason}")
            elif digest != expected:
                problems.append(f"its sha256 is not the manifest's {lib.sha256}")
            if size is not None and size != lib.size:
                problems.append(f"it has {size} bytes, the manifest says {lib.size}")
            # Not read again as ELF when it could not be read at all (said above).
            info = None if isinstance(digest, FileReadError) else self.elf.get(path)
            if info is None and not isinstance(digest, FileReadError):
                problems.append("it cannot be read as ELF")
            elif info is not None:
                if info.soname != lib.soname:
                    problems.append(f"its soname is {info.soname!r}")
                if set(info.version_definitions) != set(lib.version_definitions):
                    problems.append("its version definitions differ from the manifest's")
            if problems:
                self.add(
                    "runtime-manifest-mismatch",
                    f"{name} {version}: {lib.file} does not match its manifest: "
                    + "; ".join(problems),
                    [path, os.path.join(self.prefix, manifest.filename)],
                    _reinstall(name, version),
                )
        return files

    def check_index(self, manifest: Manifest) -> None:
        where = os.path.join(self.prefix, index_filename(manifest.name))
        what = "is missing"
        try:
            text: str | None = read_regular_file(where, MAX_INDEX_BYTES).decode("utf-8")
        except FileReadError as e:
            text = None
            if os.path.lexists(where):
                what = f"cannot be read ({e.reason})"
        except UnicodeDecodeError:
            text = None
        if text is not None:
            fields = (line.split("\t") for line in text.split("\n"))
            named = [f[1] for f in fields if len(f) > 1 and f[0] == "library"]
            self.unsafe_sonames(manifest, named, where)
        if text == loader_index(manifest):
            return
        if text is not None:
            what = "does not match the manifest"
        effect = "does not see this runtime" if text is None else "may load the wrong files"
        self.add(
            "runtime-index-mismatch",
            f"{manifest.name} {manifest.version}: the loader's index "
            f"{index_filename(manifest.name)} {what}, so nativelib.load() {effect}",
            [where, os.path.join(self.prefix, manifest.filename)],
            _reinstall(manifest.name, manifest.version),
        )


_MISSING_SHOWN = 20


def _dist_info_state(check: _SiteCheck, verified: set[str], versions: dict[str, str]) -> None:
    """pip's own state in the site directory: a distribution with two dist-info
    directories (two pip runs at once, or one killed half-way); a dist-info whose RECORD
    lists files in the prefix that are gone (``pip uninstall`` of one of those two
    removed the files both list). ``verified``: dist-infos already checked against a
    manifest; ``versions``: the version of each runtime whose manifest is installed."""
    by_name: dict[str, list[str]] = {}
    for dist_info in check.dists.dist_infos:
        by_name.setdefault(normalize(dist_info.partition("-")[0]), []).append(dist_info)
    for dist, dist_infos in sorted(by_name.items()):
        if len(dist_infos) < 2:
            continue
        labels = [check.dists.label(d) for d in dist_infos]
        name = labels[0].partition(" ")[0]
        found = [label.partition(" ")[2] for label in labels]
        keep = versions.get(dist)
        if keep is None or keep not in found:
            keep = max(found, key=_version_key)
        stale = [d for d, v in zip(dist_infos, found, strict=True) if v != keep]
        removal = " ".join(os.path.join(check.site, d) for d in stale)
        check.add(
            "dist-installed-twice",
            f"{name} is installed twice in {check.site}: versions {' and '.join(found)} "
            f"({', '.join(dist_infos)}); two pip runs at once (or one interrupted) leave "
            "this: its files may be a mix of both, and uninstalling one deletes the files "
            "of the other",
            [os.path.join(check.site, d) for d in dist_infos],
            f'rm -r {removal} && pip install --force-reinstall --no-deps "{name}=={keep}"',
        )
    under = PREFIX_DIRNAME + "/"
    for dist_info in check.dists.dist_infos:
        if dist_info in verified or not check.dists.mentions(dist_info, under):
            continue  # most RECORDs list nothing in the prefix: not parsed (torch's: 25,000 rows)
        try:
            rows = check.dists.record(dist_info)
        except WheelError:
            continue
        if rows is None:
            continue
        listed = [rel for rel in rows if rel.startswith(under)]
        missing = [
            p
            for p in (os.path.normpath(os.path.join(check.site, rel)) for rel in listed)
            if not os.path.lexists(p)
        ]
        if not missing:
            continue
        label = check.dists.label(dist_info)
        name, _, version = label.partition(" ")
        shown = missing[:_MISSING_SHOWN]
        more = len(missing) - len(shown)
        check.add(
            "runtime-record-orphaned",
            f"{label}: {len(missing)} of the {len(listed)} files its RECORD lists in "
            f"{PREFIX_DIRNAME}/ are missing; pip believes it is installed, its files are gone "
            "(a pip uninstall of another copy of it, or files deleted by hand)"
            + (f"; {more} more not listed" if more else ""),
            shown,
            _reinstall(name, version),
        )


#: This project's distribution, and the import package it owns in a site directory.
OWN_DISTRIBUTION = "pynativelib"
OWN_PACKAGE = "nativelib"
#: How many files a finding about shared files names (the rest are counted).
_CLASH_SHOWN = 3


def _sources_first(path: str) -> tuple[bool, str]:
    """The order files are named in: by path, the ``.pyc`` files pip wrote last."""
    return ("__pycache__" in path, path)


def _shown(files: Sequence[str]) -> str:
    more = len(files) - _CLASH_SHOWN
    return ", ".join(files[:_CLASH_SHOWN]) + (f", and {more} more" if more > 0 else "")


def _ownership(check: _SiteCheck, prefix_reported: bool) -> None:
    """Who owns each file of the site directory, from every RECORD the doctor already
    read: the top-level names of each RECORD first (a few C searches per name), then
    the paths under a name two RECORDs have (sets, intersected in C; no rows built, no
    hashes checked):

    - ``import-name-clash``: another distribution whose RECORD installs files in
      ``nativelib/`` (PyPI's project ``nativelib``, a ClickHouse reader, ships an import
      package of that name): pip installs both without a word, and ``import nativelib``
      runs whichever was written last;
    - ``file-claimed-twice``: any other file two distributions' RECORDs list (the files of
      ``nativelib/`` are the finding above; those of the common prefix are
      ``runtime-file-conflict`` when ``prefix_reported``; two dist-infos of one
      distribution are ``dist-installed-twice``)."""
    dists = check.dists
    needle = OWN_PACKAGE + "/"
    own = needle.encode()
    raws: dict[str, bytes] = {}
    runs: dict[str, dict[bytes, tuple[int, int]]] = {}
    whole: dict[str, set[bytes]] = {}  # RECORDs whose lines had to be split all
    holders: dict[bytes, int] = {}  # top-level name -> how many RECORDs have paths under it
    for dist_info in dists.dist_infos:
        try:
            raw = dists.raw_record(dist_info)
        except WheelError:
            continue  # reported as unreadable
        if raw is None:
            continue
        found = record_top_runs(raw)
        if found is None:
            try:
                paths = record_path_set(raw, os.path.join(check.site, dist_info, "RECORD"))
            except (UnicodeDecodeError, WheelError):
                continue  # a malformed RECORD names no owner
            whole[dist_info] = paths
            tops = {p[: p.find(b"/") + 1] if b"/" in p else p + b"," for p in paths}
        else:
            runs[dist_info] = found
            tops = set(found)
        raws[dist_info] = raw
        for top in tops:
            holders[top] = holders.get(top, 0) + 1
    owner: dict[bytes, str] = {}
    shared: dict[bytes, list[str]] = {}
    for dist_info, raw in raws.items():
        where = os.path.join(check.site, dist_info, "RECORD")
        if dist_info in whole:
            paths = whole[dist_info]
        else:
            paths = set()
            for top, (start, end) in runs[dist_info].items():
                if holders[top] > 1 or top == own:
                    with contextlib.suppress(UnicodeDecodeError, WheelError):
                        paths |= record_path_set(raw[start:end], where)
        if own in raw and normalize(dist_info.partition("-")[0]) != OWN_DISTRIBUTION:
            clashing = sorted(
                (p.decode("utf-8", "replace") for p in paths if p.startswith(own)),
                key=_sources_first,
            )
            if clashing:  # not a runtime wheel's nativelib.prefix/share/nativelib/...
                _import_name_clash(check, dist_info, clashing)
        twice = paths & owner.keys()
        for field in twice:
            shared.setdefault(field, [owner[field]]).append(dist_info)
        owner.update(dict.fromkeys(paths - twice, dist_info))
    groups: dict[tuple[str, ...], list[str]] = {}
    for key, owners in shared.items():
        path = key.decode("utf-8", "replace")
        if path.startswith(needle):
            continue
        if prefix_reported and path.startswith(PREFIX_DIRNAME + "/"):
            continue
        if len({normalize(d.partition("-")[0]) for d in owners}) < 2:
            continue
        groups.setdefault(tuple(sorted(set(owners))), []).append(path)
    for group, files in sorted(groups.items()):
        files.sort(key=_sources_first)
        labels = [dists.label(d) for d in group]
        hint = None
        if len(labels) == 2:
            (a_name, _, a_version), (b_name, _, b_version) = (x.partition(" ") for x in labels)
            hint = (
                f"keep one of them: pip uninstall -y {b_name} && {_reinstall(a_name, a_version)}"
                f" (or pip uninstall -y {a_name} && {_reinstall(b_name, b_version)})"
            )
        check.add(
            "file-claimed-twice",
            f"{len(files)} file{'s' if len(files) != 1 else ''} in {check.site} "
            f"{'are' if len(files) != 1 else 'is'} claimed by {' and '.join(labels)} "
            f"({_shown(files)}): whichever pip installed last wrote "
            f"{'them' if len(files) != 1 else 'it'}, and uninstalling one deletes "
            f"{'them' if len(files) != 1 else 'it'} under the other",
            [os.path.join(check.site, d, "RECORD") for d in group]
            + [os.path.normpath(os.path.join(check.site, f)) for f in files[:_CLASH_SHOWN]],
            hint,
        )


def _import_name_clash(check: _SiteCheck, dist_info: str, clashing: Sequence[str]) -> None:
    label = check.dists.label(dist_info)
    name = label.partition(" ")[0]
    check.add(
        "import-name-clash",
        f"{label} installs files in {OWN_PACKAGE}/ ({_shown(clashing)}), the import package "
        f"of {OWN_DISTRIBUTION}: `import {OWN_PACKAGE}` runs whichever distribution pip "
        "wrote last, and uninstalling either deletes files of the other",
        [os.path.join(check.site, dist_info, "RECORD")]
        + [os.path.join(check.site, rel) for rel in clashing[:_CLASH_SHOWN]],
        f"pip uninstall -y {name} && pip install --force-reinstall --no-deps {OWN_DISTRIBUTION}",
    )


def _version_key(version: str) -> tuple[bool, Version, str]:
    """Newest by PEP 440; a version that is not one sorts first, by text."""
    from packaging.version import InvalidVersion, Version  # noqa: PLC0415 (only for duplicates)

    try:
        return (True, Version(version), "")
    except InvalidVersion:
        return (False, Version("0"), version)


def _conflicts(
    check: _SiteCheck, manifests: list[Manifest], catalog_owner: Callable[[str], str | None]
) -> None:
    """A file in the prefix claimed by two distributions: by two manifests, or by two
    RECORDs."""
    claims: dict[str, set[str]] = {}
    versions = {normalize(m.name): m for m in manifests}
    for m in manifests:
        for lib in m.libraries:
            claims.setdefault(os.path.normpath(f"{PREFIX_DIRNAME}/{lib.file}"), set()).add(
                f"{m.name} {m.version}"
            )
    for rel, dist_infos in check.dists.claims(PREFIX_DIRNAME).items():
        for dist_info in dist_infos:
            label = check.dists.label(dist_info)
            dist = normalize(label.split(" ")[0])
            if dist in versions:
                label = f"{versions[dist].name} {versions[dist].version}"
            claims.setdefault(rel, set()).add(label)
    for rel, owners in sorted(claims.items()):
        if len(owners) < 2:
            continue
        names = sorted(owners)
        soname = os.path.basename(rel)
        keep = catalog_owner(soname)
        keeping = next((o for o in names if keep and normalize(o.split(" ")[0]) == keep), None)
        keeping = keeping or next((o for o in names if o.split(" ")[0] in versions), names[0])
        others = [o.split(" ")[0] for o in names if o != keeping]
        k_name, _, k_version = keeping.partition(" ")
        check.add(
            "runtime-file-conflict",
            f"{rel} is claimed by {' and '.join(names)}: whichever pip installed last wrote "
            "it, and uninstalling either deletes it under the other",
            [os.path.join(check.site, rel)],
            f"pip uninstall -y {' '.join(others)} && {_reinstall(k_name, k_version)}",
        )


def check_runtimes(
    sites: Sequence[str],
    dists: dict[str, SiteDistributions],
    elf: ElfCache,
    catalog_owner: Callable[[str], str | None],
) -> tuple[list[InstalledRuntime], list[RuntimeReport], list[Finding]]:
    """Every runtime in the common prefix of each site directory (in sys.path order)."""
    installed: list[InstalledRuntime] = []
    reports: list[RuntimeReport] = []
    findings: list[Finding] = []
    active: dict[str, InstalledRuntime] = {}
    for site in sites:
        check = _SiteCheck(site, dists[site], elf)
        folder = os.path.join(check.prefix, MANIFEST_DIR)
        try:
            names = sorted(n for n in os.listdir(folder) if n.endswith(".json"))
        except OSError:
            _dist_info_state(check, set(), {})
            _ownership(check, prefix_reported=False)
            findings.extend(check.findings)
            continue
        verified: set[str] = set()  # dist-infos verified against their manifest
        try:
            check_prefix(check.prefix)
        except UnsafeRuntimePath as e:
            check.prefix_safe = False
            check.add(
                "runtime-prefix-unsafe",
                f"{check.prefix}: {e.reason}; nativelib.load() skips this prefix",
                [check.prefix],
                f"chmod -R go-w {check.prefix}",
            )
        manifests: list[Manifest] = []
        for name in names:
            where = os.path.join(folder, name)
            try:
                manifest = parse_manifest(read_regular_file(where, MAX_MANIFEST_BYTES), where)
            except (FileReadError, ManifestError) as e:
                check.add(
                    "runtime-manifest-invalid",
                    str(e),
                    [where],
                    f"pip install --force-reinstall {name[: -len('.json')]}",
                )
                continue
            manifests.append(manifest)
            digests: dict[str, str | FileReadError] = {}
            dist_info = check.dists.find(manifest.name, manifest.version)
            if dist_info is not None:
                verified.add(dist_info)
            record, status = check.verify_record(manifest, dist_info, digests)
            files = check.compare_manifest(manifest, status, digests)
            check.check_index(manifest)
            first = active.get(manifest.name)
            runtime = InstalledRuntime(manifest, check.prefix, first is None)
            installed.append(runtime)
            if first is None:
                active[manifest.name] = runtime
            else:
                check.add(
                    "runtime-shadowed",
                    f"{manifest.name} {manifest.version} in {site} is not used: "
                    f"{first.manifest.name} {first.manifest.version} in "
                    f"{os.path.dirname(first.prefix)} comes first on sys.path",
                    [where],
                    None,
                )
            reports.append(
                RuntimeReport(
                    manifest.name,
                    manifest.version,
                    check.prefix,
                    where,
                    first is None,
                    record,
                    tuple(files),
                )
            )
        _conflicts(check, manifests, catalog_owner)
        _dist_info_state(check, verified, {normalize(m.name): m.version for m in manifests})
        _ownership(check, prefix_reported=True)
        findings.extend(check.findings)
    for runtime in active.values():
        for dep in runtime.manifest.dependencies:
            if dep.name in active or is_openmp_provider(dep.name):
                continue  # the loader, too, takes MKL's OpenMP dependencies as either-or
            m = runtime.manifest
            findings.append(
                finding(
                    "runtime-dependency-missing",
                    f"{m.name} {m.version} depends on {dep.requirement()}, which is not "
                    "installed: nativelib.load() refuses to load it",
                    (os.path.join(runtime.prefix, m.filename),),
                    f'pip install "{dep.requirement()}"',
                )
            )
    return installed, reports, findings
