"""``doctor --import MODULE...``: import modules, in order, in a child process, and say
which runtime copies the process ended up with.

The child (this interpreter, this environment) reports the files mapped before any
import and after each one (``/proc/self/maps``), one JSON line at a time into a file of
its own, so a crash still leaves what happened before it; at the end it asks the dynamic
loader which file each runtime soname is bound to (``dlopen(soname, RTLD_NOLOAD)``): the
copy that every later ``DT_NEEDED`` entry of that name gets, "the copy that won". The
parent reads the mapped files (each once) and recognises runtime copies with
:func:`nativelib.vendored.identify`, renamed ones included.
"""

from __future__ import annotations

import contextlib
import json
import os
import posixpath
import re
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from nativelib.catalog import Catalog
from nativelib.doctor import versions
from nativelib.doctor.fixhint import FixHints, openmp_hint
from nativelib.doctor.hostfacts import ElfCache, HostLibraries
from nativelib.doctor.model import Finding, finding
from nativelib.prefix import PREFIX_DIRNAME
from nativelib.vendored import canonical_name, identify

__all__ = ["ImportProbe"]

_CHILD = r"""
import importlib, json, sys

def mapped():
    out = set()
    with open("/proc/self/maps", encoding="utf-8", errors="surrogateescape") as f:
        for line in f:
            parts = line.split(None, 5)
            if len(parts) == 6 and parts[5].startswith("/"):
                out.add(parts[5].rstrip("\n"))
    return out

report = open(sys.argv[1], "a", encoding="utf-8")

def say(**event):
    report.write(json.dumps(event) + "\n")
    report.flush()

sonames, modules = json.loads(sys.argv[2]), sys.argv[3:]
before = mapped()
say(event="start", maps=sorted(before))
for name in modules:
    say(event="begin", module=name)
    try:
        importlib.import_module(name)
        error = None
    except BaseException as e:
        error = f"{type(e).__name__}: {e}"
    now = mapped()
    say(event="end", module=name, error=error, maps=sorted(now - before))
    before = now
bound = {}
try:
    from nativelib.loader import loaded_path
except BaseException as e:
    loaded_path = None
for soname in sonames:
    bound[soname] = loaded_path(soname) if loaded_path else None
say(event="done", bound=bound)
"""

#: ld.so's message when a version node is missing.
_NOT_FOUND = re.compile(r"(/[^:\s]+): version `([^']+)' not found \(required by ([^)]+)\)")


@dataclass
class _Copy:
    path: str
    soname: str  # the canonical soname it is a copy of
    renamed: bool
    module: str | None  # the import that brought it in; None: there before any import


class ImportProbe:
    """The child process, started at once; :meth:`findings` waits for it."""

    def __init__(
        self,
        modules: Sequence[str],
        catalog: Catalog,
        environ: Mapping[str, str],
        timeout: float,
    ) -> None:
        self.modules = list(modules)
        self.catalog = catalog
        self.hints = FixHints(environ)
        self.timeout = timeout
        plain = sorted(
            {
                s
                for r in catalog.recipes.values()
                for s in r.sonames
                if not any(c in s for c in "*?[")
            }
        )
        # Also asked about: the sonames of OpenMP families no runtime wheel ships (LLVM's).
        self._foreign = [f for f in catalog.openmp.values() if f.distribution is None]
        self.sonames = [*plain, *(s for f in self._foreign for s in f.sonames)]
        # The child reports into a file of its own, one flushed line per event: what the
        # modules print cannot be taken for a report, and a crash keeps what came before.
        fd, self._report = tempfile.mkstemp(prefix="nativelib-doctor-", suffix=".jsonl")
        os.close(fd)
        self._proc = subprocess.Popen(
            [sys.executable, "-c", _CHILD, self._report, json.dumps(self.sonames), *self.modules],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
            errors="replace",
            env=dict(environ),
        )

    def close(self) -> None:
        """Stop the child if it still runs, and remove its report file."""
        if self._proc.poll() is None:
            self._proc.kill()
            self._proc.communicate()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._report)

    def _wait(self) -> tuple[list[dict[str, Any]], str, str | None]:
        """The child's events, its stderr, and what went wrong with it (None: it exited)."""
        problem = None
        try:
            _out, err = self._proc.communicate(timeout=self.timeout)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            _out, err = self._proc.communicate()
            problem = f"did not finish within {self.timeout:g} s (killed)"
        with open(self._report, encoding="utf-8", errors="replace") as f:
            out = f.read()
        code = self._proc.returncode
        if problem is None and code < 0:
            try:
                name = signal.Signals(-code).name
            except ValueError:
                name = f"signal {-code}"
            problem = f"died with {name}"
        elif problem is None and code != 0:
            problem = f"exited with status {code}"
        events = []
        for line in out.splitlines():
            try:
                event = json.loads(line)
            except ValueError:
                continue  # the last line, cut short by a crash
            if isinstance(event, dict) and "event" in event:
                events.append(event)
        return events, err, problem

    def findings(
        self, elf: ElfCache, owner: Callable[[str], str | None], host: HostLibraries
    ) -> list[Finding]:
        events, stderr, problem = self._wait()
        out: list[Finding] = []
        copies: dict[str, list[_Copy]] = {}
        openmp: dict[str, list[str]] = {}
        bound: dict[str, str | None] = {}
        current: str | None = None
        imported: list[str] = []
        for event in events:
            kind = event["event"]
            if kind == "begin":
                current = str(event["module"])
                continue
            if kind == "done":
                raw = event.get("bound")
                bound = {str(k): (str(v) if v else None) for k, v in dict(raw or {}).items()}
                continue
            module = None if kind == "start" else str(event["module"])
            if kind == "end":
                imported.append(str(module))
                current = None
                error = event.get("error")
                if error:
                    out.append(self._failed(str(module), str(error), elf))
            for path in event.get("maps") or ():
                self._note(str(path), module, elf, copies, openmp)
        if problem is not None:
            where = f"while importing {current}" if current else "after the imports"
            tail = stderr.strip().splitlines()[-3:]
            out.append(
                finding(
                    "import-crashed",
                    f"the process importing {', '.join(self.modules)} {problem} {where}"
                    + (f": {' / '.join(tail)}" if tail else ""),
                    (),
                    f"run: {posixpath.basename(sys.executable)} -X faulthandler -c "
                    f"'import {current or self.modules[-1]}' to see where",
                )
            )
        order = ", ".join(imported) or "nothing"
        for soname, found in sorted(copies.items()):
            out.append(self._runtime(soname, found, bound.get(soname), order, owner, host))
        if len(openmp) > 1:
            listing = "; ".join(f"{k}: {', '.join(v)}" for k, v in sorted(openmp.items()))
            out.append(
                finding(
                    "process-openmp-families",
                    f"after importing {order}, one process holds {len(openmp)} OpenMP "
                    f"runtimes ({listing})",
                    tuple(sorted(p for v in openmp.values() for p in v)),
                    openmp_hint(self.hints, self._openmp_shippers(copies, owner)),
                )
            )
        return out

    def _note(
        self,
        path: str,
        module: str | None,
        elf: ElfCache,
        copies: dict[str, list[_Copy]],
        openmp: dict[str, list[str]],
    ) -> None:
        if not os.path.isfile(path):
            return
        info = elf.get(path)
        if info is None:
            return  # a data file mapped by someone (locale archive, ...)
        copy = identify(path, info, self.catalog)
        plain, renamed = canonical_name(info.soname or posixpath.basename(path))
        if copy is not None:
            copies.setdefault(copy.soname, []).append(
                _Copy(path, copy.soname, copy.renamed, module)
            )
            family = self.catalog.openmp_family_of(copy.distribution)
        else:
            family = next((f for f in self._foreign if f.names(plain)), None)
            if family is None:
                return
            first = family.sonames[0]
            copies.setdefault(first, []).append(_Copy(path, first, renamed, module))
        if family is not None:
            openmp.setdefault(family.label, []).append(path)

    def _runtime(
        self,
        soname: str,
        found: list[_Copy],
        winner: str | None,
        order: str,
        owner: Callable[[str], str | None],
        host: HostLibraries,
    ) -> Finding:
        def describe(c: _Copy) -> str:
            by = f"brought in by {c.module}" if c.module else "there before any import"
            who = owner(c.path)
            if c.renamed:
                kind = "auditwheel's renamed copy"
            elif host.find(soname) == c.path:
                kind = "the host's"
            else:
                kind = "not renamed"
            return f"{c.path} ({kind}{f', shipped by {who}' if who else ''}; {by})"

        ordered = sorted(found, key=lambda c: c.path != winner)
        files = tuple(c.path for c in ordered)
        if winner is not None:
            won = f'dlopen("{soname}") and every later NEEDED {soname} bind to {winner}'
        else:
            won = (
                f"no copy is loaded under the soname {soname}: each renamed copy serves only "
                "the files that name it"
            )
        if len(found) == 1:
            return finding(
                "process-runtime",
                f"{soname}: 1 copy loaded after importing {order}: {describe(found[0])}; {won}",
                files,
                None,
            )
        owner_recipe = self.catalog.owner_of(soname)
        dist = owner_recipe.name if owner_recipe is not None else soname
        return finding(
            "process-duplicate-runtime",
            f"{soname}: {len(found)} copies loaded in one process after importing {order}: "
            + "; ".join(describe(c) for c in ordered)
            + f"; {won}",
            files,
            _duplicate_hint(dist, ordered, owner, self.hints),
        )

    def _openmp_shippers(
        self, copies: Mapping[str, list[_Copy]], owner: Callable[[str], str | None]
    ) -> dict[str, str]:
        """The installed distributions that ship a copy of an OpenMP runtime a runtime
        wheel replaces (distribution -> that runtime)."""
        out = {}
        for soname, found in copies.items():
            recipe = self.catalog.owner_of(soname)
            if recipe is None or self.catalog.openmp_family_of(recipe.name) is None:
                continue
            for c in found:
                who = owner(c.path)
                if who is not None and f"{os.sep}{PREFIX_DIRNAME}{os.sep}" not in c.path:
                    out[who.split(" ")[0]] = recipe.name
        return out

    def _failed(self, module: str, error: str, elf: ElfCache) -> Finding:
        m = _NOT_FOUND.search(error)
        if m is None:
            return finding("import-failed", f"import {module} failed: {error}", (), None)
        library, node, consumer = m.groups()
        info = elf.get(library)
        real = info.path if info is not None else library
        soname = info.soname if info is not None and info.soname else posixpath.basename(library)
        recipe = self.catalog.owner_of(soname)
        if recipe is not None:
            short = recipe.short
            hint = (
                f"{self.hints.pip_install(versions.requirement(recipe.name, [node]))}, then "
                f'nativelib.load("{short}") before importing {module}'
            )
        else:
            hint = f"install a newer {soname}, or a build of {module} made for this host"
        return finding(
            "import-failed",
            f"import {module} failed: {consumer} needs {node} from {soname}, and the copy the "
            f"process got, {real}, does not define it ({error})",
            (os.path.realpath(consumer), real),
            hint,
        )


def _duplicate_hint(
    dist: str, found: list[_Copy], owner: Callable[[str], str | None], hints: FixHints
) -> str:
    """``nativelib fix`` of the installed distributions that ship the copies (an exact
    command: it installs the runtime wheel too); without one, what to do by hand."""
    shippers = sorted(
        {
            who.split(" ")[0]
            for c in found
            if f"{os.sep}{PREFIX_DIRNAME}{os.sep}" not in c.path
            and (who := owner(c.path)) is not None
        }
    )
    if shippers:
        return hints.command(shippers, [dist])
    return f"pip install {dist} and call nativelib.load() before these imports"
