"""``nativelib fix [DIST...]``: devendor distributions installed in an environment.

For each installed distribution that ships a vendored runtime copy (the files of its
RECORD that :func:`nativelib.vendored.identify` recognises, as the doctor does), pip
itself fetches the wheel of exactly the installed version (``pip download DIST==VERSION
--no-deps --only-binary=:all:``, with the user's index configuration and cache), the
repair core links it to the runtime wheels, pip installs the runtime wheels its
Requires-Dist names and then the repaired wheel (``--no-deps --force-reinstall`` from a
one-wheel ``--find-links`` directory, so RECORD, INSTALLER and uninstall stay pip's and
no ``direct_url.json`` is written). Each fixed distribution is verified by importing its
top-level packages in a child process of the environment's Python and reading that
child's ``/proc/self/maps``: each runtime must be mapped once, from the prefix. On
failure the original wheel is reinstalled the same way (and runtime wheels this run
added, that nothing fixed needs, are uninstalled), so the environment is as it was.

With ``--build`` the runtime wheels are built from the catalog first
(:mod:`nativelib.release.forhost`: the newest entry of the release file that satisfies
the bounds and that this host's glibc runs), into a temporary wheelhouse (or
``--wheelhouse DIR``), which pip then installs from as from ``--find-links``. The build
comes before any change: a failed build leaves the environment as it was.
"""

from __future__ import annotations

import argparse
import json
import os
import posixpath
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

from nativelib.catalog import Catalog, load_catalog
from nativelib.elf import has_elf_magic, read_elf
from nativelib.errors import ElfError, NativeLibError, RepairError, UsageError, report_error
from nativelib.prefix import LIB_DIR, PREFIX_DIRNAME
from nativelib.repair.command import repair_wheel
from nativelib.repair.core import LinkOptions, RepairPlan
from nativelib.resolver.target import target_candidates
from nativelib.vendored import RuntimeCopy, canonical_name, identify
from nativelib.wheelfile.record import parse_record

if TYPE_CHECKING:
    from nativelib.release.forhost import HostBuild

__all__ = ["Installed", "configure_parser", "find_installed", "run", "vendored_copies"]

_ENV_PROBE = (
    "import json, sys, sysconfig; p = sysconfig.get_paths(); "
    "print(json.dumps({'sites': [p['purelib'], p['platlib']], 'prefix': sys.prefix}))"
)
_IMPORT_PROBE = (
    "import importlib, sys\n"
    "for name in sys.argv[1:]:\n"
    "    importlib.import_module(name)\n"
    "with open('/proc/self/maps') as f:\n"
    "    sys.stdout.write(f.read())\n"
)


@dataclass
class Installed:
    """One installed distribution: its dist-info, RECORD rows and vendored copies."""

    site: str
    dist_info: str
    name: str
    version: str
    files: list[str]  # RECORD paths, relative to the site directory
    copies: list[RuntimeCopy] = field(default_factory=list)
    sizes: dict[str, int] = field(default_factory=dict)

    @property
    def path(self) -> str:
        return os.path.join(self.site, self.dist_info)

    def top_level(self) -> list[str]:
        """The importable top-level names: ``top_level.txt`` when there is one, else the
        packages and modules its RECORD installs at the top of the site directory."""
        text = _read(os.path.join(self.path, "top_level.txt"))
        if text is not None:
            names = [n.strip() for n in text.splitlines() if n.strip()]
        else:
            names = []
            for f in self.files:
                head, _, rest = f.partition("/")
                if rest == "__init__.py":
                    names.append(head)
                elif not rest and (f.endswith(".py") or ".cpython-" in f):
                    names.append(f.split(".")[0])
        return sorted({n for n in names if n.isidentifier() and not n.startswith("_")})


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except (OSError, UnicodeDecodeError):
        return None


def _metadata(dist_info_dir: str) -> tuple[str, str] | None:
    text = _read(os.path.join(dist_info_dir, "METADATA"))
    if text is None:
        return None
    name = version = None
    for line in text.splitlines():
        if not line:
            break
        key, _, value = line.partition(":")
        if key == "Name":
            name = value.strip()
        elif key == "Version":
            version = value.strip()
    return (name, version) if name and version else None


def find_installed(sites: Sequence[str]) -> list[Installed]:
    """Every distribution with a RECORD in ``sites`` (the first site wins a name)."""
    out: dict[str, Installed] = {}
    for site in dict.fromkeys(sites):
        try:
            names = sorted(os.listdir(site))
        except OSError:
            continue
        for entry in names:
            if not entry.endswith(".dist-info"):
                continue
            where = os.path.join(site, entry)
            meta = _metadata(where)
            record = _read(os.path.join(where, "RECORD"))
            if meta is None or record is None:
                continue
            try:
                rows = parse_record(record, os.path.join(where, "RECORD"))
            except NativeLibError:
                continue
            key = canonicalize_name(meta[0])
            if key not in out:
                out[key] = Installed(site, entry, meta[0], meta[1], list(rows))
    return list(out.values())


def vendored_copies(dist: Installed, catalog: Catalog) -> list[RuntimeCopy]:
    """The files of ``dist`` that are copies of a runtime (the doctor's rule: identify()
    over its ELF files outside the common prefix)."""
    copies = []
    for rel in dist.files:
        if rel.startswith(PREFIX_DIRNAME + "/") or ".so" not in posixpath.basename(rel):
            continue
        path = os.path.normpath(os.path.join(dist.site, rel))
        if not os.path.isfile(path) or not has_elf_magic(Path(path)):
            continue
        try:
            info = read_elf(path)
        except ElfError:
            continue
        copy = identify(path, info, catalog)
        if copy is not None:
            copies.append(copy)
            dist.sizes[path] = os.path.getsize(path)
    dist.copies = copies
    return copies


def _count(dists: Sequence[Installed]) -> Counter[str]:
    return Counter(c.soname for d in dists for c in d.copies)


# --------------------------------------------------------------------------- refusals


def _refusal(dist: Installed) -> str | None:
    installer = _read(os.path.join(dist.path, "INSTALLER"))
    if installer is not None and installer.strip() != "pip":
        return f"installed by {installer.strip()!r}, not pip: pip would not own the result"
    raw = _read(os.path.join(dist.path, "direct_url.json"))
    if raw is not None:
        try:
            doc = json.loads(raw)
        except ValueError:
            doc = {}
        if isinstance(doc, dict):
            if isinstance(doc.get("dir_info"), dict) and doc["dir_info"].get("editable"):
                return "installed editable (pip install -e): its files are the source tree"
            if "vcs_info" in doc:
                return f"installed from a VCS URL ({doc.get('url')}): no wheel of it to fetch"
    for where in (dist.site, dist.path):
        try:  # a real write (os.access says yes to root, and knows no read-only mount)
            fd, probe = tempfile.mkstemp(prefix=".nativelib-fix-", dir=where)
        except OSError as e:
            return f"the environment cannot be written: {where}: {e.strerror}"
        os.close(fd)
        os.unlink(probe)
    return None


def _refuse(dist: Installed) -> None:
    reason = _refusal(dist)
    if reason is not None:
        raise RepairError(
            f"{dist.name} {dist.version}", f"refused: {reason}",
            hint="reinstall it from a wheel with pip, then run nativelib fix again",
        )  # fmt: skip


# --------------------------------------------------------------------------- pip


@dataclass
class Pip:
    python: str
    index_urls: list[str]
    find_links: list[str]
    log: list[str] = field(default_factory=list)

    def argv(self, *args: str) -> list[str]:
        return [self.python, "-m", "pip", *args]

    def run(
        self, argv: list[str], what: str, *, isolated: bool = False
    ) -> subprocess.CompletedProcess[str]:
        # isolated: no pip configuration file either (--isolated leaves them), so that a
        # find-links or index of the user's cannot offer pip another wheel of NAME==VERSION.
        env = {**os.environ, "PIP_CONFIG_FILE": os.devnull} if isolated else None
        proc = subprocess.run(argv, capture_output=True, text=True, check=False, env=env)
        if proc.returncode != 0:
            tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-6:])
            raise RepairError(what, f"{shlex.join(argv[1:])} failed:\n{tail}")
        return proc

    def sources(self, *, runtimes: bool) -> list[str]:
        out: list[str] = []
        urls = list(self.index_urls)
        if urls:
            # The runtimes come from the given index; the distribution's own wheel from
            # the user's index, with the given one besides it.
            out += ["--index-url", urls.pop(0)] if runtimes else ["--extra-index-url", urls.pop(0)]
            for url in urls:
                out += ["--extra-index-url", url]
        for d in self.find_links:
            out += ["--find-links", d]
        return out


def _progress(text: str) -> None:
    if sys.stderr.isatty():
        print(f"fix: {text}", file=sys.stderr, flush=True)


@dataclass
class Job:
    dist: Installed
    original: Path | None = None
    plan: RepairPlan | None = None
    repaired: Path | None = None
    requirements: list[str] = field(default_factory=list)
    status: str = "planned"


def _same_files(dist: Installed, wheel: Path) -> None:
    """The wheel is the one installed: every file both RECORDs list (but the dist-info)
    has the same hash. Another build of the same version (another tag, a local build)
    would put back other files than the ones it replaces, and the rollback would not
    restore the environment."""
    import zipfile  # noqa: PLC0415

    label = f"{dist.name} {dist.version}"
    try:
        with zipfile.ZipFile(wheel) as zf:
            name = next(n for n in zf.namelist() if n.endswith(".dist-info/RECORD"))
            theirs = parse_record(zf.read(name).decode("utf-8"), f"{wheel}!{name}")
    except (OSError, StopIteration, UnicodeDecodeError, zipfile.BadZipFile) as e:
        raise RepairError(str(wheel), f"cannot read its RECORD: {e}") from e
    ours = parse_record(_read(os.path.join(dist.path, "RECORD")) or "", dist.path)
    for path, row in theirs.items():
        mine = ours.get(path)
        if ".dist-info/" in path or mine is None or row.digest is None:
            continue
        if (mine.algorithm, mine.digest) != (row.algorithm, row.digest):
            raise RepairError(
                label,
                f"{wheel.name} is not the wheel it was installed from: {path} differs",
                hint="give the wheel it was installed from with --wheel FILE",
            )


def _download(pip: Pip, dist: Installed, dest: Path) -> Path:
    before = set(dest.iterdir())
    argv = pip.argv(
        "download", f"{dist.name}=={dist.version}", "--no-deps", "--only-binary=:all:",
        "--quiet", "-d", str(dest), *pip.sources(runtimes=False),
    )  # fmt: skip
    pip.run(argv, f"{dist.name} {dist.version}")
    new = [p for p in dest.iterdir() if p not in before and p.suffix == ".whl"]
    if len(new) != 1:
        raise RepairError(
            f"{dist.name} {dist.version}",
            f"pip download gave {len(new)} wheels, expected one",
            hint="give the wheel with --wheel FILE",
        )
    return new[0]


def _install_one(pip: Pip, wheel: Path, dist: Installed, tmp: Path, label: str) -> list[str]:
    """pip installs ``wheel`` as ``NAME==VERSION`` from a directory holding only it (a
    --find-links install: no direct_url.json, INSTALLER pip), without the user's pip
    configuration (run it with ``isolated=True``)."""
    links = Path(tempfile.mkdtemp(prefix=f"{label}-", dir=tmp))
    shutil.copy2(wheel, links / wheel.name)
    return _install_argv(pip, str(links), dist)


def _install_argv(pip: Pip, links: str, dist: Installed) -> list[str]:
    return pip.argv(
        "install", "--isolated", "--no-deps", "--force-reinstall", "--no-index", "--quiet",
        "--find-links", links, f"{dist.name}=={dist.version}",
    )  # fmt: skip


def _runtime_argv(pip: Pip, requirements: Sequence[str], *extra: str) -> list[str]:
    return pip.argv("install", "--quiet", *extra, *pip.sources(runtimes=True), *requirements)


def _resolve_runtimes(pip: Pip, requirements: Sequence[str], tmp: Path) -> dict[str, str]:
    """What pip would install for ``requirements`` (name -> version), from its report
    (nothing for those installed already)."""
    report = tmp / "runtimes-report.json"
    argv = _runtime_argv(pip, requirements, "--dry-run", "--report")
    argv.insert(argv.index("--report") + 1, str(report))
    pip.run(argv, "runtime wheels")
    doc = json.loads(report.read_text("utf-8"))
    return {
        str(item["metadata"]["name"]): str(item["metadata"]["version"])
        for item in doc.get("install", ())
    }


def _mapped(pip: Pip, dist: Installed) -> list[str]:
    names = dist.top_level()
    proc = subprocess.run(
        [pip.python, "-c", _IMPORT_PROBE, *names], capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or [f"exit status {proc.returncode}"])[-1]
        raise RepairError(f"{dist.name} {dist.version}", f"importing {names} failed: {last}")
    return sorted(
        {
            line.split(None, 5)[5]
            for line in proc.stdout.splitlines()
            if line.count(" ") >= 5 and "/" in line
        }
    )


def _verify(pip: Pip, dist: Installed, sonames: Sequence[str]) -> list[str]:
    """Import its top-level packages in a child; each runtime must be mapped once, from
    the prefix. Returns the lines that say so; raises RepairError otherwise."""
    paths = _mapped(pip, dist)
    prefix = os.path.realpath(os.path.join(dist.site, PREFIX_DIRNAME, LIB_DIR)) + os.sep
    lines = []
    for soname in sorted(set(sonames)):
        stem = soname.partition(".so")[0]
        found = sorted(
            {
                os.path.realpath(p)
                for p in paths
                if canonical_name(posixpath.basename(p))[0].partition(".so")[0] == stem
            }
        )
        if len(found) != 1 or not found[0].startswith(prefix):
            raise RepairError(
                f"{dist.name} {dist.version}",
                f"after the fix, {soname} is mapped from {found or 'nowhere'} "
                f"(expected once, from {prefix})",
            )
        lines.append(f"{soname} mapped once, from {found[0]}")
    return lines


# --------------------------------------------------------------------------- command


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Devendor installed distributions: for each one that ships its own copy of a "
        "runtime (as doctor reports), pip downloads the wheel of exactly the installed "
        "version, nativelib repair links it to the runtime wheels, pip installs those "
        "runtime wheels and then the repaired wheel (so RECORD and uninstall stay pip's), "
        "and an import in a child process checks that each runtime is mapped once, from "
        "the prefix; a failed check reinstalls the original. Exit status: 0 fixed (or "
        "nothing to fix), 2 refused or failed (the environment as it was)."
    )
    parser.add_argument("dists", nargs="*", metavar="DIST", help="default: every affected one")
    parser.add_argument(
        "--index-url", action="append", default=[], metavar="URL",
        help="an index of runtime wheels (pip installs the runtimes from it; the "
        "distribution's own wheel still comes from your pip configuration)",
    )  # fmt: skip
    parser.add_argument(
        "--find-links", action="append", default=[], metavar="DIR",
        help="a directory of wheels (runtime wheels, or the distributions' own)",
    )  # fmt: skip
    parser.add_argument(
        "--wheel", action="append", default=[], metavar="FILE",
        help="the wheel of an installed distribution, instead of pip download",
    )  # fmt: skip
    parser.add_argument(
        "--python", default=sys.executable, metavar="PATH",
        help="the environment's Python (default: this one)",
    )  # fmt: skip
    parser.add_argument(
        "--build", action="store_true",
        help="build the runtime wheels from the catalog (Debian's packages, for this host's "
        "glibc) instead of installing them from an index",
    )  # fmt: skip
    parser.add_argument(
        "--wheelhouse", metavar="DIR",
        help="with --build: keep the built runtime wheels in DIR (default: a temporary "
        "directory); --find-links DIR reuses them",
    )  # fmt: skip
    parser.add_argument(
        "--release-file", metavar="FILE",
        help="with --build: the release file whose entries may be built (default: the "
        "project's own, nativelib/data/release.toml)",
    )  # fmt: skip
    parser.add_argument("--dry-run", action="store_true", help="print the plan; change nothing")


def _environment(python: str) -> tuple[list[str], str]:
    try:
        proc = subprocess.run(
            [python, "-I", "-c", _ENV_PROBE], capture_output=True, text=True, check=False
        )
    except OSError as e:
        raise UsageError(f"--python {python}: {e.strerror}") from e
    if proc.returncode != 0:
        raise UsageError(f"--python {python}: it does not run: {proc.stderr.strip()[-200:]}")
    doc = json.loads(proc.stdout)
    return [str(s) for s in doc["sites"]], str(doc["prefix"])


def _select(args: argparse.Namespace, installed: list[Installed]) -> list[Job]:
    by_name = {canonicalize_name(d.name): d for d in installed}
    wheels: dict[str, Path] = {}
    for w in args.wheel:
        p = Path(w)
        if not p.is_file() or p.suffix != ".whl":
            raise UsageError(f"--wheel {w}: not a wheel file", hint="give the path of a .whl")
        wheels[canonicalize_name(p.name.split("-")[0])] = p
    jobs = []
    if args.dists:
        for name in args.dists:
            d = by_name.get(canonicalize_name(name))
            if d is None:
                raise RepairError(name, "not installed in this environment")
            _refuse(d)
            if not d.copies:
                print(f"{d.name} {d.version}: ships no runtime copy; nothing to fix")
                continue
            jobs.append(Job(d, wheels.get(canonicalize_name(d.name))))
    else:
        for d in installed:
            if d.copies:
                jobs.append(Job(d, wheels.get(canonicalize_name(d.name))))
    for job in jobs:
        _refuse(job.dist)
        if job.original is not None:
            parts = job.original.name.split("-")
            if len(parts) < 2 or parts[1] != job.dist.version:
                raise UsageError(
                    f"--wheel {job.original}: version {parts[1] if len(parts) > 1 else '?'}, "
                    f"but {job.dist.name} {job.dist.version} is installed"
                )
    return jobs


def _bounds(plans: Sequence[RepairPlan]) -> dict[str, SpecifierSet]:
    """Each runtime the repaired wheels require, with every bound they put on it."""
    names: dict[str, SpecifierSet] = {}
    for plan in plans:
        for line in plan.requires_dist:
            try:
                req = Requirement(line)
            except InvalidRequirement:
                continue
            if req.marker is not None and not req.marker.evaluate():
                continue
            key = canonicalize_name(req.name)
            names[key] = names.get(key, SpecifierSet()) & req.specifier
    return names


def _requirements(bounds: dict[str, SpecifierSet]) -> list[str]:
    return [f"{name}{bounds[name]}" for name in sorted(bounds)]


_BUILD_HINT = (
    "--build builds the runtime wheels from Debian's archive (or $NATIVELIB_DEBIAN_MIRROR): "
    "check the network, or install them from an index of runtime wheels (--index-url URL or "
    "--find-links DIR) instead of --build"
)


def _check_build_args(args: argparse.Namespace) -> None:
    for flag, value in (("--wheelhouse", args.wheelhouse), ("--release-file", args.release_file)):
        if value is not None and not args.build:
            raise UsageError(f"{flag} goes with --build", hint=f"add --build, or drop {flag}")


def _choose_builds(
    args: argparse.Namespace,
    bounds: dict[str, SpecifierSet],
    installed: Sequence[Installed],
    catalog: Catalog,
) -> tuple[list[HostBuild], str]:
    from nativelib.release.forhost import choose_builds  # noqa: PLC0415
    from nativelib.release.releasefile import default_release_file, load_release_file  # noqa: PLC0415
    from nativelib.resolver.host import detect_host  # noqa: PLC0415

    path = Path(args.release_file) if args.release_file else default_release_file()
    release = load_release_file(path, catalog)
    have: dict[str, str] = {
        canonicalize_name(d.name): d.version
        for d in installed
        if canonicalize_name(d.name).startswith("nativelib-")
    }
    host = detect_host()
    return choose_builds(bounds, have, host.glibc, catalog, release), str(path)


def _build(builds: Sequence[HostBuild], release_path: str, catalog: Catalog, out: Path) -> None:
    from nativelib.release.forhost import build_for_host  # noqa: PLC0415
    from nativelib.resolver.host import detect_host  # noqa: PLC0415

    host = detect_host()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UsageError(f"--wheelhouse {out}: cannot create it: {e.strerror}") from e
    for b in builds:
        _progress(f"building {b.recipe.name} {b.entry.version} from {b.entry.source}")
    try:
        build_for_host(builds, catalog, out, host.glibc, host.arch, release_path)
    except NativeLibError as e:
        e.hint = f"{e.hint}; {_BUILD_HINT}" if e.hint else _BUILD_HINT
        raise


def run(args: argparse.Namespace) -> int:
    try:
        return _run(args)
    except NativeLibError as e:
        report_error(e)
        return 2


def _run(args: argparse.Namespace) -> int:
    _check_build_args(args)
    catalog = load_catalog()
    sites, _prefix = _environment(args.python)
    installed = find_installed(sites)
    for d in installed:  # every distribution: the summary counts copies as the doctor does
        vendored_copies(d, catalog)
    jobs = _select(args, installed)
    if not jobs:
        print("nothing to fix: no installed distribution ships a runtime copy")
        return 0
    before = _count(installed)
    link = LinkOptions(target_candidates(args.find_links, args.index_url or None))
    pip = Pip(args.python, list(args.index_url), list(args.find_links))
    with tempfile.TemporaryDirectory(prefix="nativelib-fix-") as tmp_name:
        tmp = Path(tmp_name)
        (tmp / "dl").mkdir()
        for job in jobs:
            label = f"{job.dist.name} {job.dist.version}"
            if job.original is None:
                _progress(f"downloading {label}")
                job.original = _download(pip, job.dist, tmp / "dl")
            _same_files(job.dist, job.original)
            _progress(f"repairing {job.original.name}")
            out = tmp / f"out-{canonicalize_name(job.dist.name)}"
            job.plan, job.repaired = repair_wheel(
                job.original, out, catalog=catalog, link=link, plan_only=args.dry_run
            )
            if not job.plan.copies:
                raise RepairError(
                    label,
                    f"its wheel {job.original.name} ships no runtime copy, unlike the "
                    "installed files",
                    hint="give the wheel it was installed from with --wheel FILE",
                )
        bounds = _bounds([j.plan for j in jobs if j.plan is not None])
        requirements = _requirements(bounds)
        builds: list[HostBuild] = []
        release_path, wheelhouse = "", tmp / "wheelhouse"
        if args.build:
            builds, release_path = _choose_builds(args, bounds, installed, catalog)
            if args.wheelhouse:
                wheelhouse = Path(args.wheelhouse).resolve()
            pip.find_links.append(str(wheelhouse))
            versions = {b.recipe.name: b.entry.version for b in builds}
        else:
            versions = _resolve_runtimes(pip, requirements, tmp) if requirements else {}
        _print_plan(pip, jobs, requirements, versions, builds)
        if args.dry_run:
            _summary(jobs, before, before, dry_run=True)
            return 0
        if builds:
            _build(builds, release_path, catalog, wheelhouse)
        return _apply(pip, jobs, requirements, installed, before, tmp, catalog)


def _print_plan(
    pip: Pip,
    jobs: Sequence[Job],
    requirements: Sequence[str],
    versions: dict[str, str],
    builds: Sequence[HostBuild],
) -> None:
    for job in jobs:
        assert job.plan is not None and job.original is not None
        print(f"{job.dist.name} {job.dist.version} ({job.original.name} -> {job.plan.filename})")
        for c in job.plan.copies:
            size = next(m.size for m in job.plan.wheel.members if m.arcname == c.path)
            print(f"  remove  {c.path} (a copy of {c.soname}; {size} bytes)")
        for line in job.plan.requires_dist:
            print(f"  require {line}")
    for b in builds:
        print(f"build   {b.describe()}")
    if versions:
        shown = ", ".join(f"{n} {v}" for n, v in sorted(versions.items()))
        print(f"runtime wheels to {'build and ' if builds else ''}install: {shown}")
    elif requirements:
        print(f"runtime wheels: installed already ({', '.join(requirements)})")
    print("pip commands:")
    if requirements:
        print(f"  {shlex.join(_runtime_argv(pip, requirements))}")
    for job in jobs:
        argv = _install_argv(pip, "<a directory holding only the repaired wheel>", job.dist)
        print(f"  {shlex.join(argv)}")


def _summary(
    jobs: Sequence[Job], before: Counter[str], after: Counter[str], *, dry_run: bool
) -> None:
    done = [j for j in jobs if j.status == "fixed" or dry_run]
    saved = sum(j.plan.bytes_removed for j in done if j.plan is not None)
    verb = "would save" if dry_run else "saved"
    if dry_run:
        after = before.copy()
        for j in done:
            after.subtract(c.soname for c in j.dist.copies)
    print(f"summary: {len(done)} of {len(jobs)} distributions; {verb} {saved} bytes")
    for soname in sorted(before):
        print(f"  {soname}: {before[soname]} vendored cop{'y' if before[soname] == 1 else 'ies'} "
              f"before, {max(after[soname], 0)} after")  # fmt: skip


def _apply(
    pip: Pip,
    jobs: Sequence[Job],
    requirements: Sequence[str],
    installed: list[Installed],
    before: Counter[str],
    tmp: Path,
    catalog: Catalog,
) -> int:
    had = {canonicalize_name(d.name) for d in installed}
    if requirements:
        _progress("installing runtime wheels")
        pip.run(_runtime_argv(pip, requirements), "runtime wheels")
    failed = False
    for job in jobs:
        assert job.plan is not None and job.original is not None
        label = f"{job.dist.name} {job.dist.version}"
        if job.repaired is None:
            continue
        _progress(f"installing the repaired {label}")
        try:
            pip.run(
                _install_one(pip, job.repaired, job.dist, tmp, "repaired"), label, isolated=True
            )
            lines = _verify(pip, job.dist, [c.soname for c in job.plan.copies])
        except RepairError as e:
            failed = True
            job.status = "rolled back"
            argv = _install_one(pip, job.original, job.dist, tmp, "original")
            pip.run(argv, label, isolated=True)
            report_error(RepairError(e.subject, f"{e.reason}; the original wheel is reinstalled"))
            continue
        job.status = "fixed"
        print(f"{label}: fixed")
        for line in lines:
            print(f"  {line}")
    # When nothing was fixed, the runtime wheels this run added go again (with what pip
    # pulled in for them): the environment is as it was.
    added = {
        canonicalize_name(d.name)
        for d in find_installed(sorted({d.site for d in installed}))
        if canonicalize_name(d.name) not in had
    }
    unneeded = sorted(added) if not any(j.status == "fixed" for j in jobs) else []
    if unneeded:
        pip.run(pip.argv("uninstall", "-y", "--quiet", *unneeded), "runtime wheels")
    after_installed = find_installed(sorted({d.site for d in installed}))
    for d in after_installed:
        vendored_copies(d, catalog)
    _summary(jobs, before, _count(after_installed), dry_run=False)
    return 2 if failed else 0
