"""Run binutils ``readelf -d -V --wide`` and parse what it reports, for exactness tests."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field

_DYN = re.compile(r"\((NEEDED|SONAME|RPATH|RUNPATH)\)\s+[A-Za-z ]+: \[(.*)\]$")
_VERDEF = re.compile(
    r"^\s+(?:0x)?[0-9a-f]+: Rev: \d+\s+Flags: (.*?)\s+Index: \d+\s+Cnt: \d+\s+Name: (.*)$"
)
_VERNEED = re.compile(r"^\s+(?:0x)?[0-9a-f]+: Version: \d+\s+File: (.*?)\s+Cnt: \d+$")
_VERNAUX = re.compile(r"^\s+0x[0-9a-f]+:\s+Name: (.*?)\s+Flags: (.*?)\s+Version: \d+$")


@dataclass
class ReadelfFacts:
    """What readelf printed for one file."""

    soname: str | None = None
    needed: list[str] = field(default_factory=list)
    rpath: list[str] = field(default_factory=list)
    runpath: list[str] = field(default_factory=list)
    # (file, [(node, weak), ...]) in file order
    version_needs: list[tuple[str, list[tuple[str, bool]]]] = field(default_factory=list)
    version_definitions: list[str] = field(default_factory=list)
    has_version_sections: bool = False
    stderr: str = ""


def parse_readelf(text: str) -> ReadelfFacts:
    facts = ReadelfFacts()
    section = None
    for line in text.splitlines():
        if line.startswith("Version definition section"):
            section = "verdef"
            facts.has_version_sections = True
            continue
        if line.startswith("Version needs section"):
            section = "verneed"
            facts.has_version_sections = True
            continue
        if line.startswith("Version symbols section"):
            section = "versym"
            facts.has_version_sections = True
            continue
        m = _DYN.search(line)
        if m:
            kind, value = m.groups()
            if kind == "NEEDED":
                facts.needed.append(value)
            elif kind == "SONAME":
                facts.soname = value
            elif kind == "RPATH":
                facts.rpath.extend(value.split(":"))
            else:
                facts.runpath.extend(value.split(":"))
            continue
        if section == "verdef":
            m = _VERDEF.match(line)
            if m and "BASE" not in m.group(1):
                facts.version_definitions.append(m.group(2))
        elif section == "verneed":
            m = _VERNEED.match(line)
            if m:
                facts.version_needs.append((m.group(1), []))
                continue
            m = _VERNAUX.match(line)
            if m and facts.version_needs:
                facts.version_needs[-1][1].append((m.group(1), "WEAK" in m.group(2)))
    return facts


def readelf(paths: Sequence[str], batch: int = 64) -> dict[str, ReadelfFacts]:
    """readelf's facts for each path (run in batches; output split on ``File:`` lines)."""
    out: dict[str, ReadelfFacts] = {}
    for start in range(0, len(paths), batch):
        chunk = list(paths[start : start + batch])
        proc = subprocess.run(
            ["readelf", "-d", "-V", "--wide", *chunk],
            capture_output=True,
            text=True,
            errors="backslashreplace",
            env={"LC_ALL": "C", "PATH": "/usr/bin:/bin"},
        )
        if len(chunk) == 1:
            blocks = {chunk[0]: proc.stdout}
        else:
            blocks = {}
            current = None
            lines: list[str] = []
            for line in proc.stdout.splitlines():
                if line.startswith("File: ") and line[6:] in chunk:
                    if current is not None:
                        blocks[current] = "\n".join(lines)
                    current, lines = line[6:], []
                else:
                    lines.append(line)
            if current is not None:
                blocks[current] = "\n".join(lines)
        for path in chunk:
            facts = parse_readelf(blocks.get(path, ""))
            facts.stderr = "\n".join(line for line in proc.stderr.splitlines() if path in line)
            out[path] = facts
    return out
