"""The doctor's report as text (for people; colour on a terminal unless NO_COLOR) and
as JSON (``data/schemas/doctor.schema.json``)."""

from __future__ import annotations

import json
import os
import textwrap
from collections.abc import Mapping
from typing import TextIO

from nativelib.doctor.model import AutoloadFacts, Finding, HostFacts, Report, RuntimeReport

__all__ = ["use_colour", "write_json", "write_text"]

_COLOURS = {"error": "31;1", "warning": "33;1", "info": "36", "head": "1", "dim": "2"}
_WIDTH = 100
#: Files listed under one finding in the text report (--json lists all).
_FILES_SHOWN = 5


def use_colour(stream: TextIO, environ: Mapping[str, str] | None = None) -> bool:
    """Colour only on a terminal, and never with NO_COLOR set (https://no-color.org)."""
    env = os.environ if environ is None else environ
    if env.get("NO_COLOR") or env.get("TERM") == "dumb":
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


class _Writer:
    def __init__(self, stream: TextIO, colour: bool) -> None:
        self.stream = stream
        self.colour = colour

    def paint(self, text: str, style: str) -> str:
        return f"\x1b[{_COLOURS[style]}m{text}\x1b[0m" if self.colour else text

    def line(self, text: str = "") -> None:
        self.stream.write(text + "\n")

    def wrapped(self, text: str, indent: str, first: str | None = None) -> None:
        lines = textwrap.wrap(
            text,
            width=_WIDTH,
            initial_indent=indent if first is None else first,
            subsequent_indent=indent,
            break_long_words=False,
            break_on_hyphens=False,
        )
        for line in lines or [indent if first is None else first]:
            self.line(line)


def _host(w: _Writer, host: HostFacts) -> None:
    w.line(w.paint("Host", "head"))
    rows = [
        ("os", f"{host.os}, kernel {host.kernel}, {host.arch}"),
        ("libc", f"{host.libc} {host.libc_version or '?'}"),
        ("python", f"{host.python_version} ({host.python_implementation}) {host.executable}"),
        ("platform", " ".join(host.platform_tags)),
    ]
    for lib in host.libraries:
        if lib.path is None:
            rows.append((lib.soname.split(".so")[0], "not found"))
        else:
            newest = f" ({', '.join(lib.newest)})" if lib.newest else ""
            rows.append((lib.soname.split(".so")[0], f"{lib.path}{newest}"))
    cuda = host.cuda
    if cuda.source == "override":
        text = f"NATIVELIB_CUDA_DRIVER: kernel driver {cuda.kernel_driver or 'none'}"
    elif cuda.driver_api is None and cuda.kernel_driver is None:
        text = "no NVIDIA driver"
    else:
        text = f"driver API {cuda.driver_api or '?'}, kernel driver {cuda.kernel_driver or '?'}"
    rows.append(("cuda", text))
    rows.append(("site dirs", " ".join(host.site_dirs) or "-"))
    for label, value in rows:
        w.wrapped(value, " " * 14, f"  {label:<11} ")


def _runtimes(
    w: _Writer, runtimes: tuple[RuntimeReport, ...], autoload: AutoloadFacts | None
) -> None:
    w.line(w.paint("Runtimes in the common prefix", "head"))
    if autoload is not None:
        w.line(
            f"  autoload: enabled ({autoload.file})"
            if autoload.enabled
            else "  autoload: disabled (nativelib autoload enable preloads them at start-up)"
        )
        if autoload.stale:
            w.line(
                f"  autoload plan: stale ({autoload.stale}): start-up runs the full discovery; "
                "run `nativelib autoload enable` again"
            )
    if not runtimes:
        w.line("  none installed")
    for r in runtimes:
        state = {"verified": "RECORD verified", "mismatch": "RECORD mismatch"}.get(
            r.record, "no RECORD"
        )
        shadow = "" if r.active else ", shadowed"
        w.line(f"  {r.name} {r.version}  {r.prefix}  ({state}{shadow})")
        for f in r.files:
            size = "-" if f.size is None else f"{f.size} bytes"
            w.line(f"    {os.path.relpath(f.path, r.prefix)}  {size}  {f.status}")


def _finding(w: _Writer, f: Finding) -> None:
    label = w.paint(f"{f.severity:<8}", f.severity)
    w.line(f"  {label} {w.paint(f.code, 'head')}")
    w.wrapped(f.message, " " * 11)
    shown = f.files if len(f.files) <= _FILES_SHOWN + 1 else f.files[:_FILES_SHOWN]
    for i, path in enumerate(shown):
        w.line(f"           {'files:' if i == 0 else '      '} {path}")
    if len(shown) < len(f.files):
        w.line(
            f"                  ... and {len(f.files) - len(shown)} more (all of them with --json)"
        )
    if f.hint:
        w.wrapped(f.hint, " " * 18, f"           {w.paint('hint:', 'dim')}  ")


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def write_text(report: Report, stream: TextIO, *, colour: bool) -> None:
    w = _Writer(stream, colour)
    _host(w, report.host)
    w.line()
    _runtimes(w, report.runtimes, report.autoload)
    w.line()
    w.line(w.paint("Findings", "head"))
    if not report.findings:
        w.line("  none")
    for f in report.findings:
        _finding(w, f)
    w.line()
    counts = [
        _plural(report.count("error"), "error"),
        _plural(report.count("warning"), "warning"),
        _plural(report.count("info"), "note"),
    ]
    w.line(", ".join(counts))


def write_json(report: Report, stream: TextIO) -> None:
    json.dump(report.to_json(), stream, indent=2)
    stream.write("\n")
