"""The distributions of each site directory (their RECORDs) and the runtimes installed in
its common prefix: every file a runtime's RECORD lists is hashed and compared (pip never
checks), every library its manifest lists is compared with the file, the loader's index
with the manifest, and a file in the prefix claimed by two distributions is named.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from packaging.version import Version

from nativelib.doctor.hostfacts import ElfCache
from nativelib.doctor.model import Finding, RuntimeFile, RuntimeReport, finding
from nativelib.errors import ManifestError, UnsafeRuntimePath, WheelError
from nativelib.loader import check_library, check_prefix, is_openmp_provider
from nativelib.prefix import (
    LIB_DIR,
    MANIFEST_DIR,
    PREFIX_DIRNAME,
    Manifest,
    index_filename,
    loader_index,
    parse_manifest,
    record_digest,
    sha256_file,
)
from nativelib.wheelfile.record import RecordRow, digest_file, parse_record

__all__ = ["InstalledRuntime", "SiteDistributions", "check_runtimes", "normalize"]


def normalize(name: str) -> str:
    """A distribution name as PEP 503 compares it."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _file_digest(path: str) -> str | None:
    """The RECORD form of a file's sha256 (urlsafe base64, no padding), None if unreadable."""
    try:
        return record_digest(bytes.fromhex(sha256_file(path)))
    except OSError:
        return None


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
        self._records: dict[str, dict[str, RecordRow] | WheelError | None] = {}
        self._owners: dict[str, str] | None = None
        self._labels: dict[str, str] = {}

    def record(self, dist_info: str) -> dict[str, RecordRow] | None:
        """Its RECORD rows by path; None if there is no readable RECORD, and
        :class:`~nativelib.errors.WheelError` if it is malformed."""
        if dist_info not in self._records:
            where = os.path.join(self.site, dist_info, "RECORD")
            try:
                with open(where, encoding="utf-8") as f:
                    text = f.read()
            except (OSError, UnicodeDecodeError):
                self._records[dist_info] = None
            else:
                try:
                    self._records[dist_info] = parse_record(text, where)
                except WheelError as e:
                    self._records[dist_info] = e
        found = self._records[dist_info]
        if isinstance(found, WheelError):
            raise found
        return found

    def _usable(self) -> dict[str, dict[str, RecordRow]]:
        """The RECORDs that can be read, by dist-info (malformed ones left out)."""
        out = {}
        for dist_info in self.dist_infos:
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
            try:
                with open(os.path.join(self.site, dist_info, "METADATA"), encoding="utf-8") as f:
                    for line in f:
                        if not line.strip():
                            break
                        key, _, value = line.partition(":")
                        if key == "Name":
                            name = value.strip()
                        elif key == "Version":
                            version = value.strip()
            except (OSError, UnicodeDecodeError):
                pass
            self._labels[dist_info] = f"{name} {version}".strip()
        return self._labels[dist_info]

    def owner(self, path: str) -> str | None:
        """The distribution whose RECORD lists ``path`` (a real path under this site)."""
        if not path.startswith(self.real + os.sep):
            return None
        if self._owners is None:
            self._owners = {}
            for dist_info, rows in self._usable().items():
                for rel in rows:
                    where = os.path.normpath(os.path.join(self.real, rel))
                    self._owners.setdefault(where, dist_info)
        found = self._owners.get(path)
        return self.label(found) if found is not None else None

    def claims(self, under: str) -> dict[str, list[str]]:
        """Paths under ``under/`` (relative to the site) -> the dist-infos whose RECORD
        lists them."""
        out: dict[str, list[str]] = {}
        for dist_info, rows in self._usable().items():
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

    def add(self, code: str, message: str, files: Sequence[str], hint: str | None) -> None:
        self.findings.append(finding(code, message, tuple(files), hint))

    def verify_record(
        self, manifest: Manifest, dist_info: str | None, digests: dict[str, str | None]
    ) -> tuple[str, dict[str, str]]:
        """Hash every file the RECORD lists; returns the RECORD state and each file's
        status (by path)."""
        name, version = manifest.name, manifest.version
        record = f"{normalize(name).replace('-', '_')}-{version}.dist-info/RECORD"
        try:
            rows = self.dists.record(dist_info) if dist_info is not None else None
            problem = f"no {record} in {self.site}"
        except WheelError as e:
            rows, problem = None, f"its RECORD is malformed ({e.reason})"
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
            if row.algorithm == "sha256":
                digest = digests[path] = _file_digest(path)
            else:
                try:
                    digest = digest_file(path, row.algorithm)
                except OSError:
                    digest = None
            if digest == row.digest:
                status[path] = "ok"
                continue
            status[path] = "modified"
            self.add(
                "runtime-file-modified",
                f"{name} {version}: {rel} does not match its RECORD ({row.algorithm} "
                f"{digest or '?'} instead of {row.digest}): the file was changed after pip "
                "installed it",
                [path],
                _reinstall(name, version),
            )
        state = "verified" if all(s == "ok" for s in status.values()) else "mismatch"
        return state, status

    def compare_manifest(
        self, manifest: Manifest, status: dict[str, str], digests: dict[str, str | None]
    ) -> list[RuntimeFile]:
        name, version = manifest.name, manifest.version
        files = []
        for lib in manifest.libraries:
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
            expected = record_digest(bytes.fromhex(lib.sha256))
            if digests[path] != expected:
                problems.append(f"its sha256 is not the manifest's {lib.sha256}")
            if size is not None and size != lib.size:
                problems.append(f"it has {size} bytes, the manifest says {lib.size}")
            info = self.elf.get(path)
            if info is None:
                problems.append("it cannot be read as ELF")
            else:
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
        try:
            with open(where, encoding="utf-8") as f:
                text: str | None = f.read()
        except (OSError, UnicodeDecodeError):
            text = None
        if text == loader_index(manifest):
            return
        what = "is missing" if text is None else "does not match the manifest"
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
        if dist_info in verified or not _mentions(check.site, dist_info, under):
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


def _mentions(site: str, dist_info: str, text: str) -> bool:
    """Whether the RECORD of ``dist_info`` holds ``text`` at all."""
    try:
        with open(os.path.join(site, dist_info, "RECORD"), encoding="utf-8") as f:
            return text in f.read()
    except (OSError, UnicodeDecodeError):
        return False


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
                with open(where, "rb") as f:
                    manifest = parse_manifest(f.read(), where)
            except (OSError, ManifestError) as e:
                check.add(
                    "runtime-manifest-invalid",
                    str(e),
                    [where],
                    f"pip install --force-reinstall {name[: -len('.json')]}",
                )
                continue
            manifests.append(manifest)
            digests: dict[str, str | None] = {}
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
