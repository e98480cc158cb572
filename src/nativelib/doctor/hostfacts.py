"""Facts about the host: OS, libc, architecture, Python, platform tags, where the dynamic
loader finds a soname, and the NVIDIA driver.

Where ``dlopen(soname)`` finds a library is worked out as ld.so does, without loading
anything: the directories of ``LD_LIBRARY_PATH``, then ``/etc/ld.so.cache`` (read here:
the format glibc 2.32 and later write, with or without the old one in front), then the
default directories. Entries for ``glibc-hwcaps`` subdirectories are not used (the base
library is reported).

The CUDA driver API version comes from ``cuDriverGetVersion`` in ``libcuda.so.1``, asked
in a child process with a timeout (a broken driver can hang or crash whoever loads it),
and only when the host has a ``libcuda.so.1`` at all; the kernel driver version from
``/sys/module/nvidia/version`` or ``/proc/driver/nvidia/version``.
``NATIVELIB_CUDA_DRIVER=575.51.03`` (or ``none``) replaces both, for tests and for hosts
without a GPU.
"""

from __future__ import annotations

import os
import platform
import struct
import subprocess
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence

from nativelib.abi import parse_version_node
from nativelib.doctor.model import CudaFacts, Finding, HostFacts, HostLibrary, finding
from nativelib.elf import ElfInfo, read_elf
from nativelib.errors import ElfError, NativeLibError

__all__ = [
    "CudaProbe",
    "ElfCache",
    "HostLibraries",
    "host_facts",
    "newest_by_family",
    "newest_nodes",
    "parse_ld_cache",
]

LD_CACHE = "/etc/ld.so.cache"
_NEW_MAGIC = b"glibc-ld.so.cache1.1"
_OLD_MAGIC = b"ld.so-1.7.0"
_HWCAP_EXTENSION = 1 << 62
#: Searched after the cache, as ld.so does (the multiarch ones are usually in the cache).
_DEFAULT_DIRS = (
    "/lib64",
    "/usr/lib64",
    "/lib",
    "/usr/lib",
    f"/lib/{platform.machine()}-linux-gnu",
    f"/usr/lib/{platform.machine()}-linux-gnu",
)


class ElfCache:
    """Each ELF file read once: by the path it was asked for and by its real path.
    A file that cannot be read is remembered as None."""

    def __init__(self, reader: Callable[[str], ElfInfo] = read_elf) -> None:
        self._reader = reader
        self._files: dict[str, ElfInfo | None] = {}

    def add(self, info: ElfInfo) -> None:
        self._files[info.path] = info

    def get(self, path: str) -> ElfInfo | None:
        try:
            return self._files[path]
        except KeyError:
            pass
        real = os.path.realpath(path)
        if real in self._files:  # a symlink to a file read before
            info: ElfInfo | None = self._files[real]
            self._files[path] = info
            return info
        try:
            info = self._reader(path)
        except ElfError:
            info = None
        self._files[path] = info
        if info is not None:
            self._files.setdefault(info.path, info)
        return info


def _string(data: bytes, offset: int) -> str | None:
    end = data.find(b"\0", offset)
    if offset <= 0 or offset >= len(data) or end < 0:
        return None
    return data[offset:end].decode("utf-8", "surrogateescape")


def parse_ld_cache(data: bytes) -> dict[str, list[str]]:
    """soname -> paths, in cache order, from the bytes of ``/etc/ld.so.cache``.
    A file in neither format, or truncated, gives what could be read (maybe nothing)."""
    base = 0
    if data.startswith(_OLD_MAGIC):
        if len(data) < 16:
            return {}
        (old_count,) = struct.unpack_from("=I", data, 12)
        base = 16 + old_count * 12
        base += -base % 8  # the new header is 8-aligned after the old entries
    if data[base : base + len(_NEW_MAGIC)] != _NEW_MAGIC or len(data) < base + 48:
        return {}
    (count,) = struct.unpack_from("=I", data, base + 20)
    table = data[base:]  # string offsets are relative to the new header
    entry = struct.Struct("=iIIIQ")
    out: dict[str, list[str]] = {}
    for i in range(count):
        at = 48 + i * entry.size
        if at + entry.size > len(table):
            break
        _flags, key, value, _os, hwcap = entry.unpack_from(table, at)
        if hwcap & _HWCAP_EXTENSION:
            continue  # a glibc-hwcaps subdirectory entry
        soname, path = _string(table, key), _string(table, value)
        if soname and path:
            out.setdefault(soname, []).append(path)
    return out


class HostLibraries:
    """Where the dynamic loader finds a soname on this host (after the file's own
    RPATH/RUNPATH): ``LD_LIBRARY_PATH``, the cache, the default directories."""

    def __init__(
        self,
        machine: int,
        elf_class: int,
        cache: ElfCache,
        environ: Mapping[str, str],
        ld_cache: str = LD_CACHE,
    ) -> None:
        self.machine = machine
        self.elf_class = elf_class
        self._elf = cache
        raw = environ.get("LD_LIBRARY_PATH", "")
        # An empty element is the current directory to ld.so.
        self.ld_library_path = tuple(d or "." for d in raw.split(":")) if raw else ()
        try:
            with open(ld_cache, "rb") as f:
                self._cache = parse_ld_cache(f.read())
        except OSError:
            self._cache = {}
        self._found: dict[str, str | None] = {}

    def matches(self, info: ElfInfo | None) -> bool:
        return (
            info is not None and info.machine == self.machine and info.elf_class == self.elf_class
        )

    def find(self, soname: str) -> str | None:
        """The real path of what ``dlopen(soname)`` gives from the host's library path."""
        if soname in self._found:
            return self._found[soname]
        candidates = [os.path.join(d, soname) for d in self.ld_library_path]
        candidates += self._cache.get(soname, [])
        candidates += [os.path.join(d, soname) for d in _DEFAULT_DIRS]
        found = None
        for path in candidates:
            info = self._elf.get(path)
            if self.matches(info):
                assert info is not None
                found = info.path
                break
        self._found[soname] = found
        return found


def newest_by_family(definitions: Iterable[str]) -> dict[str, str]:
    """The newest numeric version node of each family: ``{"GLIBCXX": "GLIBCXX_3.4.30"}``."""
    best: dict[str, tuple[tuple[int, ...], str]] = {}
    for node in definitions:
        parsed = parse_version_node(node)
        if parsed is None:
            continue
        family, version = parsed
        if family not in best or version > best[family][0]:
            best[family] = (version, node)
    return {family: node for family, (_version, node) in best.items()}


def newest_nodes(definitions: Iterable[str]) -> tuple[str, ...]:
    """The newest numeric version node of each family, in family order."""
    newest = newest_by_family(definitions)
    return tuple(newest[f] for f in sorted(newest))


# --------------------------------------------------------------------------- CUDA

_CUDA_PROBE = """\
import ctypes
try:
    lib = ctypes.CDLL("libcuda.so.1")
except OSError as e:
    print("absent", e)
    raise SystemExit(0)
version = ctypes.c_int(0)
print("version", lib.cuDriverGetVersion(ctypes.byref(version)), version.value)
"""


def _kernel_driver() -> str | None:
    from nativelib.resolver.host import detect_host  # noqa: PLC0415 (only when a driver matters)

    try:
        return detect_host().cuda_driver
    except NativeLibError:
        return None


class CudaProbe:
    """Asks libcuda.so.1 for the driver API version in a child process (started at once,
    read by :meth:`result`), unless NATIVELIB_CUDA_DRIVER says what to assume."""

    def __init__(self, host: HostLibraries, environ: Mapping[str, str], timeout: float) -> None:
        self.timeout = timeout
        self.override = environ.get("NATIVELIB_CUDA_DRIVER")
        self.library = None if self.override is not None else host.find("libcuda.so.1")
        self._proc: subprocess.Popen[str] | None = None
        if self.library is not None:
            self._proc = subprocess.Popen(
                [sys.executable, "-I", "-S", "-c", _CUDA_PROBE],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                stdin=subprocess.DEVNULL,
                text=True,
                env=dict(environ),
            )

    def close(self) -> None:
        """Stop the child if it still runs (after :meth:`result`, or on an error)."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.communicate()

    def result(self) -> tuple[CudaFacts, list[Finding]]:
        if self.override is not None:
            value = self.override.strip()
            driver = None if value.lower() in ("", "none") else value
            return CudaFacts(None, driver, "override"), []
        if self._proc is None:
            return CudaFacts(None, _kernel_driver(), "none"), []
        proc, problem = self._proc, None
        try:
            out, err = proc.communicate(timeout=self.timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            problem = f"did not answer cuDriverGetVersion within {self.timeout:g} s"
            out = err = ""
        api = None
        fields = out.split()
        if problem is None:
            if proc.returncode != 0:
                tail = err.strip().splitlines()[-1:] or [f"exit status {proc.returncode}"]
                problem = f"the process asking it failed: {tail[0]}"
            elif fields[:1] == ["version"] and len(fields) == 3:
                if fields[1] != "0":
                    problem = f"cuDriverGetVersion returned CUDA error {fields[1]}"
                elif fields[2].isdigit() and int(fields[2]) > 0:
                    api = f"{int(fields[2]) // 1000}.{int(fields[2]) % 1000 // 10}"
        findings = []
        if problem is not None:
            findings.append(
                finding(
                    "cuda-probe-failed",
                    f"{self.library}: {problem}; the CUDA driver API version is unknown",
                    (str(self.library),),
                    "check the NVIDIA driver installation (nvidia-smi); "
                    "NATIVELIB_CUDA_DRIVER set to the version nvidia-smi prints (e.g. 575.51.03) "
                    "tells nativelib what to assume",
                )
            )
        return CudaFacts(api, _kernel_driver(), "probe"), findings


# --------------------------------------------------------------------------- host


def _os_name() -> str:
    try:
        with open("/etc/os-release", encoding="utf-8") as f:
            for line in f:
                key, _, value = line.strip().partition("=")
                if key == "PRETTY_NAME":
                    return value.strip().strip('"')
    except OSError:
        pass
    return platform.system()


def _platform_tags(libc: str, version: str | None, arch: str) -> tuple[str, ...]:
    """The first (most specific) manylinux tags this host runs."""
    if libc != "glibc" or version is None:
        return (f"linux_{arch}",)
    major, _, minor = version.partition(".")
    if not (major.isdigit() and minor.isdigit()):
        return (f"linux_{arch}",)
    top = int(minor)
    return tuple(f"manylinux_{major}_{m}_{arch}" for m in range(top, max(top - 3, 16), -1))


def host_facts(
    host: HostLibraries, site_dirs: Sequence[str], cuda: CudaFacts, elf: ElfCache
) -> HostFacts:
    text = os.confstr("CS_GNU_LIBC_VERSION") if hasattr(os, "confstr") else None
    libc_version: str | None
    if text and text.startswith("glibc "):
        libc, libc_version = "glibc", text.split()[1]
    else:
        name, version = platform.libc_ver()
        libc, libc_version = name or "unknown", version or None
    arch = platform.machine()
    libraries = []
    for soname in ("libstdc++.so.6", "libgomp.so.1"):
        path = host.find(soname)
        info = elf.get(path) if path else None
        newest = newest_nodes(info.version_definitions) if info else ()
        libraries.append(HostLibrary(soname, path, newest))
    return HostFacts(
        os=_os_name(),
        kernel=platform.release(),
        libc=libc,
        libc_version=libc_version,
        arch=arch,
        python_version=platform.python_version(),
        python_implementation=sys.implementation.name,
        executable=sys.executable,
        prefix=sys.prefix,
        site_dirs=tuple(site_dirs),
        platform_tags=_platform_tags(libc, libc_version, arch),
        libraries=tuple(libraries),
        cuda=cuda,
    )
