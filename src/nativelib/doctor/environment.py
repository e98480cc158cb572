"""The ELF files of an environment: read once, then checked.

- vendored copies of runtimes (:func:`nativelib.vendored.identify`), with the
  distribution that ships each and the runtime wheel that could replace it;
- OpenMP runtime families (GNU libgomp, Intel libiomp5, LLVM libomp) installed side by side;
- what each file needs: a NEEDED soname is looked for as ld.so looks for it (DT_RPATH
  unless there is a DT_RUNPATH, ``LD_LIBRARY_PATH``, DT_RUNPATH, the host's cache and
  default directories; ``$ORIGIN`` expanded), in the runtimes installed in the common
  prefix (the loader preloads them) and anywhere in the environment (a copy loaded first
  is reused by soname). A need is satisfied when one of them defines every version node
  needed (weak ones aside), exact names, as the resolver decides;
- RPATH/RUNPATH entries that are empty, relative without ``$ORIGIN``, or absolute
  outside the environment;
- CUDA runtime majors against the NVIDIA driver.

Files read for another architecture (an aarch64 library shipped as data) are not
checked. A file that cannot be read, or that changes while it is read, is a finding.
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from nativelib import scan
from nativelib.abi import load_policies, parse_version_node
from nativelib.catalog import Catalog
from nativelib.doctor import versions
from nativelib.doctor.fixhint import FixHints, openmp_hint
from nativelib.doctor.hostfacts import ElfCache, HostLibraries, newest_by_family
from nativelib.doctor.installed import InstalledRuntime
from nativelib.doctor.model import CudaFacts, Finding, finding
from nativelib.elf import ElfInfo
from nativelib.errors import ElfError, NotElfError
from nativelib.loader import BACKWARD_COMPATIBLE
from nativelib.prefix import LIB_DIR, PREFIX_DIRNAME
from nativelib.resolver.host import cuda_policy, driver_version
from nativelib.scan import ScanResult
from nativelib.vendored import RuntimeCopy, canonical_name, identify

__all__ = ["Checks", "Scanned", "member_of", "scan_environment"]


def member_of(path: str) -> tuple[str, str] | None:
    """``(wheel, member)`` for a path read from inside a wheel (``W.whl!pkg/x.so``)."""
    at = path.find(".whl!")
    if at < 0:
        return None
    return path[: at + 4], path[at + 5 :]


def _size(path: str) -> int | None:
    member = member_of(path)
    try:
        if member is None:
            return os.stat(path).st_size
        import zipfile  # noqa: PLC0415 (only for a wheel named with --path)

        with zipfile.ZipFile(member[0]) as zf:
            return zf.getinfo(member[1]).file_size
    except (OSError, KeyError, ValueError):
        return None


def _mib(size: int | None) -> str:
    if size is None:
        return "size unknown"
    return f"{size / (1 << 20):.1f} MiB" if size >= 1 << 20 else f"{size / 1024:.0f} KiB"


@dataclass
class Scanned:
    """The ELF files read: by path, by the names ld.so may find them under (soname and
    file name), and the findings about files that could not be read."""

    files: dict[str, ElfInfo] = field(default_factory=dict)
    by_name: dict[str, list[str]] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)

    def add(self, info: ElfInfo) -> None:
        self.files[info.path] = info
        names = {posixpath.basename(info.path)}
        if info.soname:
            names.add(info.soname)
        for name in names:
            self.by_name.setdefault(name, []).append(info.path)


def _classify(
    result: ScanResult, reader: Callable[[str], ElfInfo], named: frozenset[str]
) -> tuple[ElfInfo | None, Finding]:
    """A file the scan could not read: read it once more to tell a file that is broken
    from one that changed (or vanished) while it was being read. A walk reads only files
    that start with the ELF magic, so "not an ELF file" is a change, unless the file was
    ``named`` by the user."""
    path, reason = result.path, result.error or "unreadable"
    if result.kind == scan.DIRECTORY:
        return None, finding(
            "scan-unreadable",
            f"{path}: {reason}; the files under it were not checked",
            (path,),
            "run the doctor as a user who can read it, or fix its permissions",
        )
    if member_of(path) is not None or path.endswith(".whl"):
        # Read from a wheel (or the wheel itself): a broken archive, not a moving file.
        return None, finding("elf-malformed", f"{path}: {reason}", (path,), None)
    if not os.path.lexists(path):
        return None, finding(
            "scan-changed", f"{path}: disappeared while it was being read", (path,), None
        )
    try:
        again = reader(path)
    except NotElfError as e:
        if result.kind == scan.NOT_ELF and path in named:
            return None, finding("elf-malformed", f"{path}: {reason}", (path,), None)
        return None, finding(
            "scan-changed",
            f"{path}: changed while it was being read ({reason}; now: {e.reason})",
            (path,),
            None,
        )
    except ElfError as e:
        if e.reason != reason or result.kind == scan.CHANGED:
            return None, finding(
                "scan-changed",
                f"{path}: changed while it was being read ({reason}; then: {e.reason})",
                (path,),
                "run the doctor again once pip (or whatever writes there) has finished",
            )
        if result.kind == scan.UNREADABLE:
            return None, finding(
                "scan-unreadable",
                f"{path}: {reason}",
                (path,),
                "run the doctor as a user who can read it, or fix its permissions",
            )
        return None, finding("elf-malformed", f"{path}: {reason}", (path,), None)
    return again, finding(
        "scan-changed",
        f"{path}: changed while it was being read (the first read failed: {reason}; "
        "a second read succeeded and was checked)",
        (path,),
        "run the doctor again once pip (or whatever writes there) has finished",
    )


def scan_environment(
    results: Iterable[ScanResult],
    elf: ElfCache,
    reader: Callable[[str], ElfInfo],
    named: Iterable[str] = (),
) -> Scanned:
    """Index the ELF files of a scan (each read once; the cache keeps them for later).
    ``named``: the files the user named (not found by walking a directory)."""
    explicit = frozenset(os.path.realpath(p) for p in named)
    scanned = Scanned()
    for result in results:
        info = result.info
        if info is None:
            info, problem = _classify(result, reader, explicit)
            scanned.findings.append(problem)
            if info is None:
                continue
        scanned.add(info)
        elf.add(info)
    return scanned


@dataclass(frozen=True)
class _Provider:
    path: str
    definitions: frozenset[str]
    how: str  # "search path", "host", "<runtime distribution> <version>", "environment"


def _newest_like(definitions: Iterable[str], node: str) -> str | None:
    """The newest node of ``node``'s family in ``definitions`` (for messages)."""
    parsed = parse_version_node(node)
    return None if parsed is None else newest_by_family(definitions).get(parsed[0])


def _their(files: Sequence[str]) -> str:
    return "its" if len(files) == 1 else "their"


def _names(paths: Sequence[str], limit: int = 3) -> str:
    shown = ", ".join(paths[:limit])
    return shown if len(paths) <= limit else f"{shown} and {len(paths) - limit} more"


class Checks:
    """The checks over one scanned environment."""

    def __init__(
        self,
        scanned: Scanned,
        elf: ElfCache,
        host: HostLibraries,
        runtimes: Sequence[InstalledRuntime],
        catalog: Catalog,
        roots: Sequence[str],
        owner: Callable[[str], str | None],
        hints: FixHints | None = None,
    ) -> None:
        self.hints = hints if hints is not None else FixHints()
        self.scanned = scanned
        self.elf = elf
        self.host = host
        self.catalog = catalog
        self.roots = tuple(os.path.realpath(r) for r in roots)
        self.owner = owner
        self.runtimes = [r for r in runtimes if r.active]
        self._prefix_libs = {
            os.path.realpath(os.path.join(r.prefix, LIB_DIR)) + os.sep for r in runtimes
        }
        self._listings: dict[str, frozenset[str] | None] = {}
        self.copies: dict[str, RuntimeCopy] = {}
        for path, info in scanned.files.items():
            if any(path.startswith(p) for p in self._prefix_libs):
                continue
            copy = identify(path, info, catalog)
            if copy is not None:
                self.copies[path] = copy

    # ------------------------------------------------------------------ helpers

    def _ours(self, info: ElfInfo) -> bool:
        return info.machine == self.host.machine and info.elf_class == self.host.elf_class

    def _inside(self, path: str) -> bool:
        return any(path == r or path.startswith(r + os.sep) for r in self.roots)

    def _listing(self, folder: str) -> frozenset[str] | None:
        if folder not in self._listings:
            try:
                self._listings[folder] = frozenset(os.listdir(folder))
            except OSError:
                self._listings[folder] = None
        return self._listings[folder]

    def _expand(self, entry: str, origin: str) -> str:
        return entry.replace("${ORIGIN}", "$ORIGIN").replace("$ORIGIN", origin)

    def _at(self, folder: str, soname: str) -> ElfInfo | None:
        """The library ``soname`` in ``folder`` (a directory, or ``W.whl!dir`` inside a
        wheel) if it is there and of this host's architecture."""
        member = member_of(folder)
        if member is not None:
            wheel, inner = member
            rel = posixpath.normpath(posixpath.join(inner, soname))
            info = self.scanned.files.get(f"{wheel}!{rel}")
        else:
            names = self._listing(folder)
            if names is None or soname not in names:
                return None
            info = self.elf.get(os.path.join(folder, soname))
        return info if info is not None and self._ours(info) else None

    def _search_path(self, info: ElfInfo) -> list[str]:
        """Directories ld.so searches for this file's NEEDED entries before the host's
        cache, in order: its DT_RPATH (unless it has a DT_RUNPATH), LD_LIBRARY_PATH, its
        DT_RUNPATH. (Empty entries, the current directory, are findings of their own.)"""
        origin = posixpath.dirname(info.path)
        dirs: list[str] = []
        if not info.runpath:
            dirs += [self._expand(e, origin) for e in info.rpath if e]
        dirs += self.host.ld_library_path
        dirs += [self._expand(e, origin) for e in info.runpath if e]
        return dirs

    def _direct(self, info: ElfInfo, soname: str) -> ElfInfo | None:
        """The copy of ``soname`` found on the file's own search path (before the host's
        cache), as ld.so takes it: the first directory that has one."""
        for folder in self._search_path(info):
            found = self._at(folder, soname)
            if found is not None:
                return found
        return None

    def _inherited(
        self, info: ElfInfo, soname: str, loaders: dict[str, list[ElfInfo]]
    ) -> ElfInfo | None:
        """A file without DT_RUNPATH also searches the DT_RPATH of the objects that load
        it, and of theirs, up the chain (how auditwheel's grafted libraries find each
        other through the extension's RPATH)."""
        if info.runpath:
            return None
        todo, seen = list(loaders.get(info.path, ())), {info.path}
        while todo:
            loader = todo.pop()
            if loader.path in seen:
                continue
            seen.add(loader.path)
            if not loader.runpath:
                origin = posixpath.dirname(loader.path)
                for entry in loader.rpath:
                    found = self._at(self._expand(entry, origin), soname) if entry else None
                    if found is not None:
                        return found
            todo.extend(loaders.get(loader.path, ()))
        return None

    def _providers(self, info: ElfInfo, soname: str, direct: ElfInfo | None) -> list[_Provider]:
        """Every copy of ``soname`` this file could bind to: the one on its search path,
        the host's, the installed runtimes' (the loader preloads them) and, last, any
        other in the environment (reused by soname when it is loaded first)."""
        out: list[_Provider] = []
        seen: set[str] = set()

        def add(path: str, defs: Iterable[str], how: str) -> None:
            if path not in seen and path != info.path:
                seen.add(path)
                out.append(_Provider(path, frozenset(defs), how))

        if direct is not None:
            add(direct.path, direct.version_definitions, "search path")
        host = self.host.find(soname)
        if host is not None:
            host_info = self.elf.get(host)
            add(host, host_info.version_definitions if host_info else (), "host")
        for runtime in self.runtimes:
            lib = runtime.manifest.library(soname)
            if lib is not None:
                m = runtime.manifest
                add(runtime.library_path(soname), lib.version_definitions, f"{m.name} {m.version}")
        for path in self.scanned.by_name.get(soname, ()):
            other = self.scanned.files[path]
            if self._ours(other):
                add(path, other.version_definitions, "environment")
        return out

    # ------------------------------------------------------------------ vendored copies

    def vendored(self) -> list[Finding]:
        installed = {r.manifest.name: r for r in self.runtimes}
        out = []
        for path, copy in sorted(self.copies.items()):
            recipe = self.catalog.get(copy.distribution)
            member = member_of(path)
            shipped_by = os.path.basename(member[0]) if member is not None else self.owner(path)
            how = (
                f"renamed {posixpath.basename(path)} by auditwheel"
                if copy.renamed
                else "not renamed: its soname competes with every other copy, the first loaded wins"
            )
            runtime = installed.get(recipe.name)
            if runtime is not None:
                replace = f"the installed {recipe.name} {runtime.manifest.version} could replace it"
            else:
                replace = f"the runtime wheel {recipe.name} could replace it"
            who = shipped_by or "a file no installed distribution's RECORD lists"
            message = f"{who} ships its own copy of {copy.soname} ({_mib(_size(path))}, {how}); "
            message += replace
            wanted = versions.requirement(recipe.name, copy.definitions, known_only=True)
            # A wheel on disk: its repair adds the Requires-Dist; installed: install too.
            steps = [] if runtime is not None or member else [self.hints.pip_install(wanted)]
            if member is not None:
                steps.append(f"nativelib repair {member[0]}")
            elif shipped_by is not None:
                # Installed: ``nativelib fix`` fetches its wheel, repairs and reinstalls
                # it, and installs the runtime wheels it needs (an exact command).
                steps = [self.hints.command([shipped_by.split(" ")[0]], [recipe.name])]
            hint = " && ".join(steps) if steps else None
            out.append(finding("vendored-runtime", message, (path,), hint))
        return out

    def openmp(self) -> list[Finding]:
        # The families (catalog/openmp.toml): those we ship a runtime wheel of are
        # recognised as runtime copies or installed runtimes, the others by file name.
        families: dict[str, list[str]] = {}
        for path, copy in self.copies.items():
            family = self.catalog.openmp_family_of(copy.distribution)
            if family is not None:
                families.setdefault(family.label, []).append(path)
        for runtime in self.runtimes:
            family = self.catalog.openmp_family_of(runtime.manifest.name)
            if family is not None:
                for lib in runtime.manifest.libraries:
                    families.setdefault(family.label, []).append(runtime.library_path(lib.soname))
        foreign = [f for f in self.catalog.openmp.values() if f.distribution is None]
        for path, info in self.scanned.files.items():
            plain, _renamed = canonical_name(info.soname or posixpath.basename(path))
            for family in foreign:
                if family.names(plain):
                    families.setdefault(family.label, []).append(path)
        if len(families) < 2:
            return []
        listing = "; ".join(f"{k}: {', '.join(sorted(v))}" for k, v in sorted(families.items()))
        files = tuple(sorted(p for v in families.values() for p in v))
        shippers: dict[str, str] = {}  # distribution -> the runtime its copy is of
        for path, copy in self.copies.items():
            who = self.owner(path)
            if who is not None and self.catalog.openmp_family_of(copy.distribution) is not None:
                shippers[who.split(" ")[0]] = copy.distribution
        return [
            finding(
                "openmp-families",
                f"{len(families)} OpenMP runtime families are installed ({listing}); a process "
                "that loads two of them runs two thread pools, and libiomp5 with libomp is "
                "known to crash",
                files,
                openmp_hint(self.hints, shippers),
            )
        ]

    # ------------------------------------------------------------------ needs

    def needs(self) -> list[Finding]:
        todo: list[tuple[ElfInfo, str, ElfInfo | None]] = []
        loaders: dict[str, list[ElfInfo]] = {}
        for info in self.scanned.files.values():
            if not info.needed or not self._ours(info):
                continue
            for soname in info.needed:
                direct = self._direct(info, soname)
                if direct is not None:
                    loaders.setdefault(direct.path, []).append(info)
                todo.append((info, soname, direct))
        unsatisfied: dict[tuple[str, tuple[str, ...]], tuple[list[str], list[_Provider]]] = {}
        nowhere: dict[str, list[str]] = {}
        elsewhere: dict[tuple[str, tuple[str, ...]], list[str]] = {}
        too_old: dict[tuple[str, tuple[str, ...], str], list[str]] = {}
        wanted: dict[str, dict[str, set[str]]] = {}
        for info, soname, direct in todo:
            providers = self._providers(info, soname, direct)
            path = info.path
            if not providers:
                nowhere.setdefault(soname, []).append(path)
                continue
            if path not in wanted:
                wanted[path] = {}
                for file, need in info.needed_nodes():
                    if not need.weak:
                        wanted[path].setdefault(file, set()).add(need.name)
            nodes = wanted[path].get(soname, set())
            if (
                nodes
                and direct is not None
                and PREFIX_DIRNAME in direct.path
                and not nodes <= frozenset(direct.version_definitions)
                and any(os.path.realpath(direct.path).startswith(p) for p in self._prefix_libs)
            ):
                # ld.so takes the copy its search path finds (the prefix's) before the
                # host's: a newer copy elsewhere does not help.
                missing = tuple(sorted(nodes - frozenset(direct.version_definitions)))
                too_old.setdefault((soname, missing, direct.path), []).append(path)
                continue
            if nodes and not any(nodes <= p.definitions for p in providers):
                best = min(providers, key=lambda p: len(nodes - p.definitions))
                missing = tuple(sorted(nodes - best.definitions))
                entry = unsatisfied.setdefault((soname, missing), ([], providers))
                entry[0].append(path)
            elif all(p.how == "environment" for p in providers) and (
                self._inherited(info, soname, loaders) is None
            ):
                key = (soname, tuple(p.path for p in providers))
                elsewhere.setdefault(key, []).append(path)
        out = []
        for (soname, missing), (files, providers) in sorted(unsatisfied.items()):
            out.append(self._unsatisfied(soname, missing, files, providers))
        for (soname, missing, copy), files in sorted(too_old.items()):
            out.append(self._too_old(soname, missing, copy, files))
        for soname, files in sorted(nowhere.items()):
            owner = self.catalog.owner_of(soname)
            hint = (
                f"pip install {owner.name}"
                if owner is not None
                else f"install the package or the system library that provides {soname}"
            )
            out.append(
                finding(
                    "soname-not-found",
                    f"{soname}, needed by {_names([posixpath.basename(f) for f in files])}, "
                    f"is found nowhere: not on {_their(files)} search path, not on the host, not "
                    "in the environment",
                    tuple(files),
                    hint,
                )
            )
        for (soname, copies), files in sorted(elsewhere.items()):
            out.append(
                finding(
                    "soname-only-elsewhere",
                    f"{soname}, needed by {_names([posixpath.basename(f) for f in files])}, is "
                    f"not on {_their(files)} search path; it exists at {_names(list(copies))}, "
                    "and is found only if that copy is loaded first (import order)",
                    (*files, *copies),
                    f"import the package that ships {posixpath.basename(copies[0])} first, or "
                    f"give the file a RUNPATH to its directory",
                )
            )
        return out

    def _unsatisfied(
        self, soname: str, missing: tuple[str, ...], files: list[str], providers: list[_Provider]
    ) -> Finding:
        described = []
        for p in providers:
            top = _newest_like(p.definitions, missing[0])
            has = f"has up to {top}" if top else "lacks them"
            described.append(f"{p.path} ({p.how}) {has}")
        message = (
            f"{_names([posixpath.basename(f) for f in files])} need{'s' if len(files) == 1 else ''}"
            f" {', '.join(missing)} from {soname}, and nothing installed or on the host "
            f"provides {'it' if len(missing) == 1 else 'them'}: {'; '.join(described)}"
        )
        owner = self.catalog.owner_of(soname)
        if owner is not None:
            hint = self.hints.pip_install(versions.requirement(owner.name, missing))
        elif soname in load_policies().host_libraries:
            hint = (
                "these files were built for a newer system than this host; install builds "
                "made for this host's glibc (pip picks them when the wheel tags are right), "
                "or use a newer OS"
            )
        else:
            owners = sorted({o for p in providers if (o := self.owner(p.path)) is not None})
            hint = (
                f"upgrade what provides {soname} ({', '.join(owners)})"
                if owners
                else f"install a newer version of what provides {soname}"
            )
        return finding("needs-unsatisfied", message, tuple(files), hint)

    def _too_old(
        self, soname: str, missing: tuple[str, ...], copy: str, files: list[str]
    ) -> Finding:
        runtime = next(
            (r for r in self.runtimes if r.manifest.library(soname) is not None
             and os.path.realpath(r.library_path(soname)) == os.path.realpath(copy)),
            None,
        )  # fmt: skip
        owner = self.catalog.owner_of(soname)
        which = (
            f"{runtime.manifest.name} {runtime.manifest.version}" if runtime is not None else
            (owner.name if owner is not None else "the prefix")
        )  # fmt: skip
        names = _names([posixpath.basename(f) for f in files])
        message = (
            f"{names} need{'s' if len(files) == 1 else ''} {', '.join(missing)} from {soname}; "
            f"{_their(files)} RUNPATH finds it first in the nativelib prefix ({copy}, "
            f"{which}), which lacks {'it' if len(missing) == 1 else 'them'}: importing fails "
            'with "version not found" even where the host\'s copy has it'
        )
        hint = None
        if owner is not None:
            hint = self.hints.pip_install(versions.requirement(owner.name, missing))
        return finding("needs-prefix-too-old", message, tuple(files), hint)

    # ------------------------------------------------------------------ older copy first

    def older_first(self, autoload: bool) -> list[Finding]:
        """The mixed-runtime trap, before it fires: a file whose RPATH/RUNPATH (or
        LD_LIBRARY_PATH) reaches a copy of a backward-compatible GCC runtime (libstdc++,
        libgomp, ...) older than the prefix's, while another file needs version nodes
        that only the prefix's copy has. Whichever is imported first decides: the older
        copy loaded first is reused by soname, and the other file then fails with
        "version `GLIBCXX_3.4.30' not found". The autoload preloads the prefix's copy
        before any import: nothing to report while it is on."""
        if autoload:
            return []
        prefix_copies: dict[str, tuple[str, frozenset[str], str]] = {}
        for runtime in self.runtimes:
            libs = runtime.manifest.libraries
            if not libs or not all(lib.soname in BACKWARD_COMPATIBLE for lib in libs):
                continue  # not a runtime the autoload preloads
            m = runtime.manifest
            for lib in libs:
                prefix_copies.setdefault(
                    lib.soname,
                    (
                        runtime.library_path(lib.soname),
                        frozenset(lib.version_definitions),
                        f"{m.name} {m.version}",
                    ),
                )
        if not prefix_copies:
            return []
        needing: dict[str, list[tuple[str, frozenset[str]]]] = {}
        reached: dict[tuple[str, str], list[str]] = {}
        older: dict[str, ElfInfo] = {}
        for path, info in self.scanned.files.items():
            wanted = [s for s in info.needed if s in prefix_copies]
            if not wanted or not self._ours(info):
                continue
            nodes: dict[str, set[str]] = {}
            for file, need in info.needed_nodes():
                if not need.weak and file in prefix_copies:
                    nodes.setdefault(file, set()).add(need.name)
            searches = bool(info.rpath or info.runpath or self.host.ld_library_path)
            for soname in wanted:
                if nodes.get(soname):
                    needing.setdefault(soname, []).append((path, frozenset(nodes[soname])))
                direct = self._direct(info, soname) if searches else None
                if direct is None or any(direct.path.startswith(p) for p in self._prefix_libs):
                    continue
                reached.setdefault((soname, direct.path), []).append(path)
                older[direct.path] = direct
        out = []
        for (soname, old), files in sorted(reached.items()):
            prefix_path, prefix_defs, dist = prefix_copies[soname]
            old_defs = frozenset(older[old].version_definitions)
            if not prefix_defs > old_defs:
                continue  # the prefix's copy is not newer: preloading it would not help
            victims = sorted(
                (f, n - old_defs)
                for f, n in needing.get(soname, ())
                if n - old_defs and n <= prefix_defs
            )
            if not victims:
                continue
            missing = sorted({node for _f, n in victims for node in n})
            top = _newest_like(old_defs, missing[0])
            first = self.scanned.files[files[0]]
            folder = posixpath.dirname(old)
            how = (
                "LD_LIBRARY_PATH"
                if folder in self.host.ld_library_path
                else ("RUNPATH" if first.runpath else "RPATH")
            )
            names = _names([posixpath.basename(f) for f in files])
            needy = _names([posixpath.basename(f) for f, _n in victims])
            shown = ", ".join(missing[:3]) + (
                f" and {len(missing) - 3} more" if len(missing) > 3 else ""
            )
            message = (
                f"{names} reach{'es' if len(files) == 1 else ''} an older {soname} first, "
                f"{old} ({f'up to {top}' if top else 'older'}), through {how}; {needy} "
                f"need{'s' if len(victims) == 1 else ''} {shown}, which that copy lacks and "
                f"the prefix's ({dist}) has: when {posixpath.basename(files[0])} is loaded first, "
                f'importing {posixpath.basename(victims[0][0])} fails with "version '
                f"`{missing[0]}' not found\""
            )
            hint = (
                f"nativelib autoload enable (preloads {prefix_path} at interpreter start, "
                "before any import)"
            )
            file_list = tuple(dict.fromkeys((*files, old, *(f for f, _n in victims))))
            out.append(finding("older-runtime-first", message, file_list, hint))
        return out

    # ------------------------------------------------------------------ RPATH / RUNPATH

    def _bad_entry(self, entry: str, origin: str, in_wheel: bool) -> str | None:
        if entry == "":
            return "rpath-empty"
        if not entry.startswith(("/", "$ORIGIN", "${ORIGIN}")):
            return "rpath-relative"
        # Inside a wheel, where $ORIGIN lands depends on where it is installed.
        checkable = entry.startswith("/") or not in_wheel
        if checkable and not self._inside(os.path.normpath(self._expand(entry, origin))):
            return "rpath-outside"
        return None

    def rpaths(self) -> list[Finding]:
        groups: dict[tuple[str, str, str], list[str]] = {}
        bad: dict[str, set[str]] = {}  # file -> its bad entries
        for path, info in self.scanned.files.items():
            in_wheel = member_of(path) is not None
            origin = posixpath.dirname(path)
            for kind, entries in (("RPATH", info.rpath), ("RUNPATH", info.runpath)):
                for entry in entries:
                    code = self._bad_entry(entry, origin, in_wheel)
                    if code is not None:
                        groups.setdefault((code, kind, entry), []).append(path)
                        bad.setdefault(path, set()).add(entry)
        what = {
            "rpath-empty": "an empty entry, which ld.so reads as the current directory",
            "rpath-relative": "a relative entry, which ld.so reads from the current "
            "directory (not from the file's own, as $ORIGIN would)",
            "rpath-outside": "an absolute path outside the environment (a build machine's "
            "path, or a directory that whoever can create it controls)",
        }
        out = []
        for (code, kind, entry), files in sorted(groups.items()):
            first = self.scanned.files[files[0]]
            keep = [e for e in (first.rpath or first.runpath) if e not in bad[files[0]]]
            target = member_of(files[0])
            if target is not None:
                fix = f"rebuild {target[0]} without it (the linker's -rpath flags)"
            elif keep:
                force = " --force-rpath" if kind == "RPATH" else ""
                fix = f"patchelf{force} --set-rpath '{':'.join(keep)}' {files[0]}"
            else:
                fix = f"patchelf --remove-rpath {files[0]}"
            if len(files) > 1 and target is None:
                fix += f" (and likewise for the {len(files) - 1} other files)"
            names = _names([posixpath.basename(f) for f in files])
            out.append(
                finding(code, f"{kind} of {names} has {entry!r}: {what[code]}", tuple(files), fix)
            )
        return out

    # ------------------------------------------------------------------ CUDA

    def cuda(self, facts: CudaFacts) -> list[Finding]:
        policy = cuda_policy()
        majors: dict[int, list[str]] = {}
        floors: dict[int, list[tuple[str, str]]] = {}  # major -> (runtime, minimum driver)
        by_dist = policy.distributions
        for path, copy in self.copies.items():
            if copy.distribution in by_dist:
                majors.setdefault(by_dist[copy.distribution], []).append(path)
        for runtime in self.runtimes:
            m = runtime.manifest
            major = by_dist.get(m.name)
            if major is None:
                continue
            majors.setdefault(major, []).extend(
                runtime.library_path(lib.soname) for lib in m.libraries
            )
            release = tuple(int(p) for p in m.version.split(".") if p.isdigit())
            minimum = policy.minimum_driver(m.name, release)
            if minimum is not None:
                floors.setdefault(major, []).append((f"{m.name} {m.version}", minimum))
        for path, info in self.scanned.files.items():
            for soname in info.needed:
                stem, _, major_text = soname.partition(".so.")
                if stem == "libcudart" and major_text.isdigit():
                    majors.setdefault(int(major_text), []).append(path)
        out: list[Finding] = []
        api = facts.driver_api
        api_major = int(api.split(".")[0]) if api else None
        kernel = facts.kernel_driver
        for major, files in sorted(majors.items()):
            files = sorted(set(files))
            if kernel is None and api is None:
                out.append(
                    finding(
                        "cuda-no-driver",
                        f"CUDA {major} runtime libraries are installed ({_names(files)}), and "
                        "this host has no NVIDIA driver: their CUDA code cannot run here (CPU "
                        "code can)",
                        tuple(files),
                        None,
                    )
                )
                continue
            floor = policy.major_floor.get(major)
            too_old = []
            if api_major is not None and api_major < major:
                too_old.append(f"the driver's CUDA API version is {api}")
            if kernel and floor and driver_version(kernel) < driver_version(floor):
                too_old.append(f"the kernel driver is {kernel}, CUDA {major} needs {floor}")
            if too_old:
                out.append(
                    finding(
                        "cuda-driver-too-old",
                        f"CUDA {major} runtime libraries ({_names(files)}) cannot run on "
                        f"this host's NVIDIA driver: {'; '.join(too_old)}",
                        tuple(files),
                        f"upgrade the NVIDIA driver to {floor or f'one for CUDA {major}'} or "
                        "newer, or install builds made for the CUDA version the driver has"
                        + (f" ({api})" if api else ""),
                    )
                )
                continue
            for what, minimum in floors.get(major, ()):
                if kernel and driver_version(kernel) < driver_version(minimum):
                    out.append(
                        finding(
                            "cuda-driver-below-toolkit",
                            f"{what} wants NVIDIA driver {minimum} or newer, this host has "
                            f"{kernel}: it runs through CUDA minor version compatibility, but "
                            "PTX built by its toolkit cannot be JIT-compiled",
                            tuple(files),
                            f"upgrade the NVIDIA driver to {minimum} or newer",
                        )
                    )
        return out
