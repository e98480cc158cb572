"""The exact ``nativelib fix`` command a doctor hint prints, with where the runtime
wheels come from.

Where runtime wheels can be had is known, in this order:

1. ``$NATIVELIB_INDEX_URL``: the index (or, as a path, a directory of wheels) of runtime
   wheels the user names: ``--index-url URL`` (``--find-links DIR``). A remote one is
   trusted as given; a local one (``file://`` or a path) is used only when it holds the
   runtime.
2. pip's own configuration: ``PIP_FIND_LINKS``, ``PIP_INDEX_URL``,
   ``PIP_EXTRA_INDEX_URL``, then ``find-links``/``index-url``/``extra-index-url`` of the
   ``[install]`` and ``[global]`` sections of pip's configuration files, in pip's order
   (``$PIP_CONFIG_FILE``; the environment's ``pip.conf``; ``~/.config/pip/pip.conf`` and
   ``~/.pip/pip.conf``; ``/etc/xdg/pip/pip.conf`` and ``/etc/pip.conf``), read directly
   (``pip config list`` takes 0.3 s). Only local locations are used, and only when they
   hold the runtime: whether a remote index holds it cannot be known offline, and pip's
   index is PyPI or a mirror of it, which holds no ``nativelib-*`` runtime wheel.
3. Otherwise ``--build``: ``nativelib fix`` builds the runtime wheels from the catalog.

Nothing is read until a hint is made (a doctor that finds nothing to fix reads no file).
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Mapping, Sequence
from pathlib import Path
from urllib.parse import unquote, urlsplit

__all__ = ["INDEX_ENV", "FixHints", "openmp_hint", "pip_config_files"]

INDEX_ENV = "NATIVELIB_INDEX_URL"
_PIP_ENV = (
    ("PIP_FIND_LINKS", "find-links"),
    ("PIP_INDEX_URL", "index-url"),
    ("PIP_EXTRA_INDEX_URL", "extra-index-url"),
)
_OPTIONS = ("find-links", "index-url", "extra-index-url")


def canonicalize_name(name: str) -> str:
    """PEP 503's normalized name (packaging's rule; the doctor imports no packaging)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def pip_config_files(environ: Mapping[str, str], prefix: str) -> list[str]:
    """pip's configuration files, the one that wins first (pip's own order)."""
    env_file = environ.get("PIP_CONFIG_FILE")
    if env_file == os.devnull:
        return []
    home = environ.get("HOME") or os.path.expanduser("~")
    xdg_home = environ.get("XDG_CONFIG_HOME") or os.path.join(home, ".config")
    user = [os.path.join(xdg_home, "pip", "pip.conf"), os.path.join(home, ".pip", "pip.conf")]
    dirs = (environ.get("XDG_CONFIG_DIRS") or "/etc/xdg").split(os.pathsep)
    # Within a kind, pip loads the later file over the earlier: /etc/pip.conf wins.
    global_ = ["/etc/pip.conf", *(os.path.join(d, "pip", "pip.conf") for d in reversed(dirs) if d)]
    files = [env_file] if env_file else []
    files.append(os.path.join(prefix, "pip.conf"))
    if not (env_file and os.path.exists(env_file)):
        files += user
    return [*files, *global_]


def _pip_locations(environ: Mapping[str, str], prefix: str) -> list[tuple[str, str]]:
    """(option, value) of pip's configuration, the ones that win first."""
    import configparser  # noqa: PLC0415 (only when a hint is made)

    out = [(opt, v) for key, opt in _PIP_ENV for v in environ.get(key, "").split()]
    for path in pip_config_files(environ, prefix):
        parser = configparser.RawConfigParser()
        try:
            parser.read(path, encoding="utf-8")
        except (configparser.Error, UnicodeDecodeError):
            continue
        for section in ("install", "global"):
            if not parser.has_section(section):
                continue
            for key, value in parser.items(section):
                opt = key.lower().replace("_", "-")
                if opt in _OPTIONS:
                    out += [(opt, v) for v in value.split()]
    return out


def _local(location: str) -> Path | None:
    """The directory of a ``file://`` URL or a path; None for a remote URL."""
    parts = urlsplit(location)
    if parts.scheme == "file":
        return Path(unquote(parts.path))
    if not parts.scheme:
        return Path(location).expanduser()
    return None


def _holds(directory: Path, runtimes: Sequence[str], *, index: bool) -> bool:
    """A simple index root with a page of every runtime, or a directory of their wheels."""
    for name in runtimes:
        project = canonicalize_name(name)
        if index:
            if not (directory / project).is_dir():
                return False
        elif not any(directory.glob(f"{project.replace('-', '_')}-*.whl")):
            return False
    return True


class FixHints:
    """Makes ``nativelib fix`` commands; where the runtimes come from is looked up once
    per set of runtimes, on the first hint that needs it."""

    def __init__(self, environ: Mapping[str, str] | None = None, prefix: str | None = None) -> None:
        import sys  # noqa: PLC0415

        self.environ = os.environ if environ is None else environ
        self.prefix = sys.prefix if prefix is None else prefix
        self._known: dict[tuple[str, ...], list[str]] = {}

    def source(self, runtimes: Sequence[str]) -> list[str]:
        """The options of ``nativelib fix`` that give it ``runtimes``."""
        key = tuple(sorted({canonicalize_name(r) for r in runtimes}))
        if key not in self._known:
            self._known[key] = self._find(key)
        return self._known[key]

    def _find(self, runtimes: Sequence[str]) -> list[str]:
        named = self.environ.get(INDEX_ENV, "").strip()
        if named:
            where = _local(named)
            if where is None:
                return ["--index-url", named]
            if _holds(where, runtimes, index=True):
                return ["--index-url", where.resolve().as_uri()]
            if _holds(where, runtimes, index=False):
                return ["--find-links", str(where)]
        for opt, value in _pip_locations(self.environ, self.prefix):
            where = _local(value)
            if where is None or not where.is_dir():
                continue
            if opt == "find-links" and _holds(where, runtimes, index=False):
                return ["--find-links", str(where)]
            if opt != "find-links" and _holds(where, runtimes, index=True):
                return ["--index-url", value]
        return ["--build"]

    def pip_install(self, requirement: str) -> str:
        """``pip install "REQ"``, with the index or directory that holds it when known
        (never ``--build``: pip builds nothing; without one, pip's own configuration)."""
        from nativelib.doctor.versions import pip_install  # noqa: PLC0415

        name = re.split(r"[<>=!~;\[ ]", requirement, maxsplit=1)[0]
        options = [o for o in self.source([name]) if o != "--build"]
        command = pip_install(requirement)
        if not options:
            return command
        return command.replace("pip install ", f"pip install {shlex.join(options)} ", 1)

    def command(self, dists: Sequence[str], runtimes: Sequence[str]) -> str:
        """``nativelib fix DIST... <where the runtimes come from>``, ready to run."""
        return shlex.join(["nativelib", "fix", *dists, *self.source(runtimes)])


def openmp_hint(hints: FixHints, shippers: Mapping[str, str]) -> str:
    """Devendor the distributions that ship a copy of an OpenMP runtime (``shippers``:
    distribution -> the runtime wheel replacing its copy), and make MKL use libgomp."""
    mkl = "MKL_THREADING_LAYER=GNU makes MKL use libgomp"
    if not shippers:
        return f"keep one family: {mkl}"
    fix = hints.command(sorted(shippers), sorted(set(shippers.values())))
    return f"{fix} (one copy of each OpenMP runtime, from the prefix); then keep one: {mkl}"
