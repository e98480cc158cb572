"""What the doctor reports: findings (a stable code, a severity, a message, the files
involved, a hint), facts about the host, and the runtimes installed in the common prefix.

Every finding code is listed once in :data:`CODES` with its severity and meaning; a
finding takes its severity from there, so one code always means one severity. The JSON
document (``doctor --json``, ``data/schemas/doctor.schema.json``) is made here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = [
    "CODES",
    "JSON_VERSION",
    "MAX_FINDINGS_PER_FILE",
    "SEVERITIES",
    "AutoloadFacts",
    "CudaFacts",
    "Finding",
    "HostFacts",
    "HostLibrary",
    "Report",
    "RuntimeFile",
    "RuntimeReport",
    "bound_per_file",
    "finding",
]

#: Version of the ``doctor --json`` document.
JSON_VERSION = 1

#: Most severe first.
SEVERITIES = ("error", "warning", "info")

#: Findings reported about one file; the rest are summed up in one ``findings-truncated``
#: (a crafted library with thousands of NEEDED entries would otherwise give thousands).
MAX_FINDINGS_PER_FILE = 50


@dataclass(frozen=True)
class Code:
    severity: str
    meaning: str


#: Every finding code: its severity and what it means (docs/doctor.md lists the same).
CODES: dict[str, Code] = {
    # The host.
    "cuda-probe-failed": Code(
        "warning", "asking libcuda.so.1 for the driver API version failed or timed out"
    ),
    # Runtimes installed in the common prefix.
    "runtime-manifest-invalid": Code("error", "a runtime manifest cannot be read"),
    "runtime-index-mismatch": Code(
        "error", "the loader's index (<dist>.load) is missing or disagrees with the manifest"
    ),
    "runtime-record-missing": Code(
        "warning", "an installed runtime has no RECORD to verify its files against"
    ),
    "runtime-file-modified": Code(
        "error", "a runtime's file differs from the sha256 its RECORD gives (pip never checks)"
    ),
    "runtime-file-missing": Code("error", "a file a runtime's RECORD or manifest lists is absent"),
    "runtime-record-outside": Code(
        "error", "a runtime's RECORD lists a path outside its site directory and environment"
    ),
    "runtime-file-unreadable": Code(
        "error", "a runtime's file cannot be read (permissions, or not a regular file)"
    ),
    "runtime-soname-unsafe": Code(
        "error",
        "a runtime's manifest or loader index names a soname that is not one file name in "
        "lib/ (an absolute path, a '/', '..'): the loader refuses it",
    ),
    "runtime-manifest-mismatch": Code(
        "error", "a runtime's manifest does not describe the library file it ships"
    ),
    "runtime-file-conflict": Code(
        "error", "one file in the prefix is claimed by two distributions"
    ),
    "runtime-dependency-missing": Code("error", "a runtime's dependency is not installed"),
    "runtime-prefix-unsafe": Code(
        "error", "the loader refuses this prefix (writable by others, or a foreign owner)"
    ),
    "dist-installed-twice": Code(
        "error", "two dist-info directories of one distribution in one site directory"
    ),
    "runtime-record-orphaned": Code(
        "error",
        "a distribution's RECORD lists files in the prefix that are missing (pip believes it "
        "is installed)",
    ),
    "runtime-library-unsafe": Code(
        "error", "the loader refuses a library file in the prefix (its owner, mode or type)"
    ),
    "runtime-shadowed": Code(
        "info", "a runtime is installed in two site directories; the first on sys.path wins"
    ),
    # The distributions of each site directory.
    "import-name-clash": Code(
        "error",
        "another distribution's RECORD installs files in nativelib/, pynativelib's import "
        "package (PyPI's unrelated project 'nativelib' does)",
    ),
    "file-claimed-twice": Code(
        "warning",
        "a file of a site directory that two distributions' RECORDs list (whichever pip "
        "installed last wrote it; uninstalling one deletes it under the other)",
    ),
    "dist-info-unreadable": Code(
        "warning", "a distribution's RECORD or METADATA is not a regular file, or unreadable"
    ),
    # The ELF files of the environment.
    "vendored-runtime": Code(
        "warning", "a distribution ships its own copy of a runtime a runtime wheel provides"
    ),
    "openmp-families": Code("warning", "more than one OpenMP runtime family is installed"),
    "needs-unsatisfied": Code(
        "error", "a file needs version nodes that nothing installed and nothing on the host has"
    ),
    "soname-not-found": Code("error", "a needed library is found nowhere"),
    "needs-prefix-too-old": Code(
        "error",
        "a file's RUNPATH reaches the nativelib prefix, whose runtime copy lacks version "
        "nodes the file needs (ld.so takes it before the host's: 'version not found')",
    ),
    "soname-only-elsewhere": Code(
        "warning",
        "a needed library exists in the environment but not on the file's search path: it "
        "loads only if something else loaded it first",
    ),
    "older-runtime-first": Code(
        "warning",
        "a file's RPATH/RUNPATH (or LD_LIBRARY_PATH) reaches an older copy of a GCC runtime "
        "while another file needs version nodes only the prefix's copy has: the import "
        "order decides whether the second fails (autoload off)",
    ),
    "rpath-empty": Code("warning", "an empty RPATH/RUNPATH entry (the current directory)"),
    "rpath-relative": Code(
        "warning",
        "a relative RPATH/RUNPATH entry without $ORIGIN (relative to the current directory)",
    ),
    "rpath-outside": Code("warning", "an absolute RPATH/RUNPATH entry outside the environment"),
    "cuda-driver-too-old": Code("error", "a CUDA runtime major that the NVIDIA driver cannot run"),
    "cuda-driver-below-toolkit": Code(
        "warning",
        "the NVIDIA driver is older than the CUDA toolkit's minimum (minor version "
        "compatibility only: no newer PTX)",
    ),
    "cuda-no-driver": Code("info", "CUDA libraries are installed, and there is no NVIDIA driver"),
    "elf-malformed": Code("warning", "a file with the ELF magic cannot be read as ELF"),
    "scan-unreadable": Code("warning", "a directory or file cannot be read"),
    "scan-changed": Code("warning", "a file changed or disappeared while it was read"),
    "findings-truncated": Code(
        "info", "more findings about one file than are listed; the rest are counted"
    ),
    # A live process (--import).
    "import-failed": Code("error", "importing a module raised an exception"),
    "import-crashed": Code("error", "the process importing the modules died or hung"),
    "process-runtime": Code("info", "the copy of a runtime the process loaded"),
    "process-duplicate-runtime": Code(
        "warning", "more than one copy of one runtime is loaded in one process"
    ),
    "process-openmp-families": Code(
        "error", "more than one OpenMP runtime family is loaded in one process"
    ),
}


@dataclass(frozen=True)
class Finding:
    code: str
    severity: str
    message: str
    files: tuple[str, ...] = ()
    hint: str | None = None

    def to_json(self) -> dict[str, object]:
        return {
            "code": self.code,
            "severity": self.severity,
            "message": self.message,
            "files": list(self.files),
            "hint": self.hint,
        }

    def sort_key(self) -> tuple[int, str, tuple[str, ...], str]:
        return (SEVERITIES.index(self.severity), self.code, self.files, self.message)


def finding(
    code: str, message: str, files: tuple[str, ...] = (), hint: str | None = None
) -> Finding:
    """A finding with the severity its code has in :data:`CODES`."""
    return Finding(code, CODES[code].severity, message, files, hint)


def bound_per_file(findings: list[Finding], limit: int = MAX_FINDINGS_PER_FILE) -> list[Finding]:
    """``findings`` (sorted, most severe first) with at most ``limit`` about any one file:
    a finding is kept while one of its files has fewer than ``limit`` kept, the others are
    counted in one ``findings-truncated`` per file (so the most severe are the ones kept)."""
    kept: list[Finding] = []
    counts: dict[str, int] = {}
    dropped: dict[str, dict[str, int]] = {}
    for f in findings:
        if not f.files or any(counts.get(p, 0) < limit for p in f.files):
            kept.append(f)
            for p in f.files:
                counts[p] = counts.get(p, 0) + 1
        else:
            by_code = dropped.setdefault(f.files[0], {})
            by_code[f.code] = by_code.get(f.code, 0) + 1
    for path, by_code in dropped.items():
        total = sum(by_code.values())
        codes = ", ".join(f"{n} {code}" for code, n in sorted(by_code.items()))
        kept.append(
            finding(
                "findings-truncated",
                f"{path}: and {total} more finding{'' if total == 1 else 's'} ({codes}), not "
                f"listed: at most {limit} are reported about one file",
                (path,),
                None,
            )
        )
    return sorted(kept, key=Finding.sort_key)


@dataclass(frozen=True)
class HostLibrary:
    """What ``dlopen(soname)`` finds on the host, and its newest version node per family."""

    soname: str
    path: str | None
    newest: tuple[str, ...] = ()

    def to_json(self) -> dict[str, object] | None:
        if self.path is None:
            return None
        return {"path": self.path, "newest": list(self.newest)}


@dataclass(frozen=True)
class CudaFacts:
    #: ``cuDriverGetVersion`` as ``"12.9"``, or None.
    driver_api: str | None
    #: The kernel driver version (``575.51.03``), or None.
    kernel_driver: str | None
    #: ``"probe"`` (asked libcuda and read /sys or /proc), ``"override"``
    #: (NATIVELIB_CUDA_DRIVER) or ``"none"`` (no libcuda.so.1 on the host).
    source: str

    def to_json(self) -> dict[str, object]:
        return {
            "driver_api": self.driver_api,
            "kernel_driver": self.kernel_driver,
            "source": self.source,
        }


@dataclass(frozen=True)
class HostFacts:
    os: str
    kernel: str
    libc: str
    libc_version: str | None
    arch: str
    python_version: str
    python_implementation: str
    executable: str
    prefix: str
    site_dirs: tuple[str, ...]
    platform_tags: tuple[str, ...]
    libraries: tuple[HostLibrary, ...]
    cuda: CudaFacts

    def to_json(self) -> dict[str, object]:
        return {
            "os": self.os,
            "kernel": self.kernel,
            "libc": {"name": self.libc, "version": self.libc_version},
            "arch": self.arch,
            "python": {
                "version": self.python_version,
                "implementation": self.python_implementation,
                "executable": self.executable,
                "prefix": self.prefix,
                "site_dirs": list(self.site_dirs),
            },
            "platform_tags": list(self.platform_tags),
            "libraries": {lib.soname: lib.to_json() for lib in self.libraries},
            "cuda": self.cuda.to_json(),
        }


@dataclass(frozen=True)
class RuntimeFile:
    path: str
    soname: str | None
    size: int | None
    #: ``"ok"``, ``"modified"``, ``"missing"``, or ``"unverified"`` (no RECORD hash).
    status: str

    def to_json(self) -> dict[str, object]:
        return {"path": self.path, "soname": self.soname, "size": self.size, "status": self.status}


@dataclass(frozen=True)
class RuntimeReport:
    name: str
    version: str
    prefix: str
    manifest: str
    #: False when the same distribution in a site directory earlier on sys.path wins.
    active: bool
    #: ``"verified"``, ``"mismatch"`` or ``"missing"``.
    record: str
    files: tuple[RuntimeFile, ...] = field(default=())

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "version": self.version,
            "prefix": self.prefix,
            "manifest": self.manifest,
            "active": self.active,
            "record": self.record,
            "files": [f.to_json() for f in self.files],
        }


@dataclass(frozen=True)
class AutoloadFacts:
    """``nativelib autoload``: whether its ``.pth`` file is in one of the environment's
    site directories (``file``), preloading the prefix's GCC runtimes at start-up."""

    enabled: bool
    file: str | None
    #: Why the plan stored in the file is stale (start-up runs the full discovery until
    #: ``nativelib autoload enable`` writes it again), or None.
    stale: str | None = None

    def to_json(self) -> dict[str, object]:
        return {"enabled": self.enabled, "file": self.file, "stale": self.stale}


@dataclass(frozen=True)
class Report:
    host: HostFacts
    runtimes: tuple[RuntimeReport, ...]
    findings: tuple[Finding, ...]
    #: How many ELF files were read (for the log line; not in the JSON document).
    elf_files: int = 0
    autoload: AutoloadFacts | None = None

    def count(self, severity: str) -> int:
        return sum(1 for f in self.findings if f.severity == severity)

    def exit_code(self, *, strict: bool = False) -> int:
        """0 without errors (and, with ``strict``, without warnings); else 1."""
        if self.count("error") or (strict and self.count("warning")):
            return 1
        return 0

    def to_json(self) -> dict[str, object]:
        return {
            "version": JSON_VERSION,
            "host": self.host.to_json(),
            "runtimes": [r.to_json() for r in self.runtimes],
            "findings": [f.to_json() for f in self.findings],
            **({"autoload": self.autoload.to_json()} if self.autoload is not None else {}),
        }
