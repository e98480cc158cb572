"""``diagnose()``: the host, the runtimes in the common prefix, every ELF file of the
environment (or of the paths given) and, if asked, a live process; as one report."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from nativelib.autoload import state as autoload_state
from nativelib.catalog import Catalog, load_catalog
from nativelib.doctor.environment import Checks, member_of, scan_environment
from nativelib.doctor.fixhint import FixHints
from nativelib.doctor.hostfacts import CudaProbe, ElfCache, HostLibraries, host_facts
from nativelib.doctor.installed import SiteDistributions, check_runtimes, normalize
from nativelib.doctor.model import AutoloadFacts, Finding, Report, bound_per_file
from nativelib.doctor.process import ImportProbe
from nativelib.elf import ElfInfo, read_elf
from nativelib.errors import NativeLibError
from nativelib.prefix import PREFIX_DIRNAME
from nativelib.scan import ScanResult, scan_paths

__all__ = ["Options", "diagnose", "environment_site_dirs"]


@dataclass(frozen=True)
class Options:
    """What to diagnose. ``paths``: files, directories or wheels to scan instead of the
    environment's site directories. ``imports``: modules to import, in order, in a child
    process. ``sys_path`` and ``environ`` default to this process's. ``scan`` and
    ``reader`` are the seams the tests use to change files in the middle of a scan."""

    paths: tuple[str, ...] = ()
    imports: tuple[str, ...] = ()
    import_timeout: float = 120.0
    cuda_timeout: float = 10.0
    sys_path: tuple[str, ...] | None = None
    environ: Mapping[str, str] | None = None
    scan: Callable[[Sequence[str]], Iterable[ScanResult]] = scan_paths
    reader: Callable[[str], ElfInfo] = read_elf


def _stdlib_dirs() -> set[str]:
    import sysconfig  # noqa: PLC0415

    dirs = {sysconfig.get_path(k) for k in ("stdlib", "platstdlib")}
    dirs.add(sysconfig.get_config_var("DESTSHARED"))
    return {os.path.realpath(d) for d in dirs if d}


def environment_site_dirs(sys_path: Sequence[str] | None = None) -> list[str]:
    """The directories of ``sys_path`` (default ``sys.path``) whose files belong to the
    environment: site-packages, the user site, ``--target``/``--prefix`` directories on
    PYTHONPATH, ``.pth`` entries. Left out: the standard library, zip files, and (for
    ``sys.path`` itself) its first entry, the script's or current directory."""
    entries = list(sys.path if sys_path is None else sys_path)
    if sys_path is None and entries and not getattr(sys.flags, "safe_path", False):
        import site  # noqa: PLC0415

        sites = {os.path.realpath(p) for p in site.getsitepackages()}
        if entries[0] == "" or os.path.realpath(entries[0]) not in sites:
            entries = entries[1:]
    skip = _stdlib_dirs()
    out: list[str] = []
    seen: set[str] = set()
    for entry in entries:
        if not entry or not os.path.isabs(entry) or not os.path.isdir(entry):
            continue
        real = os.path.realpath(entry)
        if real in skip or real in seen:
            continue
        seen.add(real)
        out.append(entry)
    return out


def _outermost(paths: Sequence[str]) -> list[str]:
    """Paths without those inside another one (walking the outer one covers them)."""
    out: list[str] = []
    reals = [(os.path.realpath(p), p) for p in paths]
    for real, path in reals:
        if any(
            real != other and real.startswith(other.rstrip(os.sep) + os.sep)
            for other, _ in reals
            if os.path.isdir(other)
        ):
            continue
        if path not in out:
            out.append(path)
    return out


def diagnose(options: Options | None = None) -> Report:
    """Run every check and return the report (findings sorted, most severe first)."""
    opts = options or Options()
    environ = os.environ if opts.environ is None else opts.environ
    sites = environment_site_dirs(opts.sys_path)
    elf = ElfCache(opts.reader)
    me = elf.get(sys.executable)
    if me is None:
        raise NativeLibError(f"cannot read this Python's own executable {sys.executable!r}")
    host = HostLibraries(me.machine, me.elf_class, elf, environ)
    catalog = load_catalog()
    # The child processes run while this one scans.
    cuda_probe = CudaProbe(host, environ, opts.cuda_timeout)
    import_probe = (
        ImportProbe(opts.imports, catalog, environ, opts.import_timeout) if opts.imports else None
    )
    try:
        return _diagnose(opts, sites, elf, host, catalog, cuda_probe, import_probe)
    finally:
        cuda_probe.close()
        if import_probe is not None:
            import_probe.close()


def _diagnose(
    opts: Options,
    sites: list[str],
    elf: ElfCache,
    host: HostLibraries,
    catalog: Catalog,
    cuda_probe: CudaProbe,
    import_probe: ImportProbe | None,
) -> Report:
    roots = _outermost(list(opts.paths) or sites)
    named = [p for p in roots if not os.path.isdir(p)]
    scanned = scan_environment(opts.scan(roots), elf, opts.reader, named)

    runtime_sites = list(sites)
    for path in opts.paths:
        if os.path.isdir(os.path.join(path, PREFIX_DIRNAME)) and path not in runtime_sites:
            runtime_sites.append(path)
    dist_dirs = [*runtime_sites, *(p for p in opts.paths if os.path.isdir(p))]
    dists = {site: SiteDistributions(site) for site in dict.fromkeys(dist_dirs)}

    def owner(path: str) -> str | None:
        member = member_of(path)
        if member is not None:
            stem = os.path.basename(member[0]).split("-")
            return " ".join(stem[:2]) if len(stem) > 1 else stem[0]
        for d in dists.values():
            found = d.owner(path)
            if found is not None:
                return found
        return None

    def catalog_owner(soname: str) -> str | None:
        recipe = catalog.owner_of(soname)
        return normalize(recipe.name) if recipe is not None else None

    runtimes, runtime_reports, runtime_findings = check_runtimes(
        runtime_sites, dists, elf, catalog_owner
    )
    env_roots = [sys.prefix, *sites, *opts.paths]
    hints = FixHints(os.environ if opts.environ is None else opts.environ)
    checks = Checks(scanned, elf, host, runtimes, catalog, env_roots, owner, hints)
    findings: list[Finding] = [*scanned.findings, *runtime_findings]
    for d in dists.values():
        findings += d.findings()
    findings += checks.vendored()
    findings += checks.openmp()
    findings += checks.needs()
    findings += checks.rpaths()
    autoload = _autoload(sites)
    findings += checks.older_first(autoload.enabled)
    cuda, cuda_findings = cuda_probe.result()
    findings += cuda_findings
    findings += checks.cuda(cuda)
    if import_probe is not None:
        findings += import_probe.findings(elf, owner, host)
    facts = host_facts(host, sites, cuda, elf)
    return Report(
        host=facts,
        runtimes=tuple(runtime_reports),
        findings=tuple(bound_per_file(sorted(findings, key=lambda f: f.sort_key()))),
        elf_files=len(scanned.files),
        autoload=autoload,
    )


def _autoload(sites: Sequence[str]) -> AutoloadFacts:
    """Whether ``nativelib autoload`` is on: its file in one of the site directories."""
    for site in sites:
        current = autoload_state(site)
        if current.enabled:
            return AutoloadFacts(True, current.file, current.stale)
    return AutoloadFacts(False, None)
