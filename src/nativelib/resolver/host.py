"""Facts about the target host: glibc version, architecture, platform tags, CUDA driver."""

from __future__ import annotations

import json
import os
import platform
import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

from nativelib.abi import parse_platform_tag
from nativelib.errors import NativeLibError

__all__ = ["CudaPolicy", "Host", "cuda_policy", "detect_host", "driver_version"]


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", text))


@dataclass(frozen=True)
class Host:
    """The target: ``glibc`` (major, minor), ``arch`` and the CUDA kernel driver (or None)."""

    glibc: tuple[int, int]
    arch: str
    cuda_driver: str | None = None  # the kernel driver version, as the driver spells it

    def supports_platform(self, platform_tag: str) -> bool:
        """Whether a wheel platform tag runs here (``any``, ``manylinux_X_Y_arch``, aliases)."""
        if platform_tag == "any":
            return True
        parsed = parse_platform_tag(platform_tag)
        return parsed is not None and parsed[1] == self.arch and parsed[0] <= self.glibc

    def needs_glibc(self, platform_tags: list[str]) -> tuple[int, int] | None:
        """The oldest glibc among a wheel's manylinux platform tags (for explanations)."""
        best: tuple[int, int] | None = None
        for tag in platform_tags:
            parsed = parse_platform_tag(tag)
            if parsed is not None and (best is None or parsed[0] < best):
                best = parsed[0]
        return best

    def describe(self) -> str:
        text = f"glibc {self.glibc[0]}.{self.glibc[1]}"
        return text if self.cuda_driver is None else f"{text} with NVIDIA driver {self.cuda_driver}"


def _cuda_driver() -> str | None:
    override = os.environ.get("NATIVELIB_CUDA_DRIVER")
    if override is not None:
        return None if override.strip().lower() in ("", "none") else override.strip()
    for path in ("/sys/module/nvidia/version", "/proc/driver/nvidia/version"):
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
        except OSError:
            continue
        m = re.search(r"(\d+\.\d+(?:\.\d+)?)", text)
        if m:
            return m.group(1)
    return None


def detect_host(
    *, glibc: str | None = None, platform_tag: str | None = None, arch: str | None = None
) -> Host:
    """This host, or the target given by ``--glibc 2.28`` / ``--platform manylinux_2_28_x86_64``."""
    target_arch = arch or platform.machine()
    if platform_tag is not None:
        parsed = parse_platform_tag(platform_tag)
        if parsed is None or not parsed[1]:
            raise NativeLibError(
                f"--platform {platform_tag!r}: expected manylinux_X_Y_ARCH (or a legacy alias)"
            )
        return Host(parsed[0], parsed[1], _cuda_driver())
    if glibc is not None:
        parts = _version(glibc)
        if len(parts) < 2:
            raise NativeLibError(f"--glibc {glibc!r}: expected a version like 2.28")
        return Host((parts[0], parts[1]), target_arch, _cuda_driver())
    text = os.confstr("CS_GNU_LIBC_VERSION") if hasattr(os, "confstr") else None
    if not text or not text.startswith("glibc"):
        raise NativeLibError(f"this host's C library is not glibc ({text!r}): give --glibc")
    parts = _version(text)
    return Host((parts[0], parts[1]), target_arch, _cuda_driver())


def driver_version(text: str) -> tuple[int, ...]:
    """A driver version for comparing (``"575.51.03"`` -> ``(575, 51, 3)``)."""
    return _version(text)


@dataclass(frozen=True)
class CudaPolicy:
    distributions: dict[str, int]
    major_floor: dict[int, str]
    toolkit_minimum: dict[tuple[int, int], str]

    def minimum_driver(self, distribution: str, version: tuple[int, ...]) -> str | None:
        """The kernel driver a cudart wheel of this version needs, or None if not cudart."""
        major = self.distributions.get(distribution)
        if major is None or len(version) < 2:
            return None
        known = [
            k for k in self.toolkit_minimum if k[0] == version[0] and k <= (version[0], version[1])
        ]
        if known:
            return self.toolkit_minimum[max(known)]
        return self.major_floor.get(version[0])


@lru_cache(maxsize=1)
def cuda_policy() -> CudaPolicy:
    raw = json.loads(
        resources.files("nativelib").joinpath("data/cuda-drivers.json").read_text("utf-8")
    )
    return CudaPolicy(
        distributions={k: int(v) for k, v in raw["distributions"].items()},
        major_floor={int(k): str(v) for k, v in raw["major_floor"].items()},
        toolkit_minimum={
            (int(k.split(".")[0]), int(k.split(".")[1])): str(v)
            for k, v in raw["toolkit_minimum"].items()
        },
    )
