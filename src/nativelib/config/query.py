"""The lines ``nativelib config`` prints, and the short way to the common queries.

A build asks ``nativelib config --cflags --libs gomp`` (or ``--prefix``, ``--libdir``,
``--pkg-config-path``, ``--cmake-dir``) once per step that needs it, as it would ask
``pkg-config``: each answer is a fresh process, so it should cost little more than the
interpreter's start. :func:`main` reads those options by hand, with no ``argparse`` and no
``logging`` (together more than the answer itself), and answers them; anything else on
the line (``--requires``, ``-h``, ``-v``, a positional runtime, an abbreviation, a
mistake) and any error return None, and the full command line (``nativelib.cli``) parses
the line again and answers it, or reports the error with its hint. Both print
:func:`answer`.

``nativelib.__main__`` (the console script and ``python -m nativelib``) calls :func:`main`
for ``nativelib config``; ``scripts/bench_config.py`` measures it against ``pkg-config``.
"""

from __future__ import annotations

import os
import sys

from nativelib import config
from nativelib.errors import NativeLibError, UsageError

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs ~2 ms
if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["Query", "answer", "main", "parse"]


class Query:
    """What ``nativelib config`` was asked: the options of :mod:`nativelib.config.command`
    (None: not given; ``""``: ``--prefix``/``--libdir`` with no runtime; ``[]``:
    ``--cflags``/``--libs``/``--requires`` with no runtime)."""

    __slots__ = (
        "prefix", "libdir", "includedir", "cflags", "libs", "rpath_from", "cmake_dir",
        "pkg_config_path", "requires", "runtimes", "user", "target",
    )  # fmt: skip

    def __init__(
        self,
        *,
        prefix: str | None = None,
        libdir: str | None = None,
        includedir: str | None = None,
        cflags: list[str] | None = None,
        libs: list[str] | None = None,
        rpath_from: str | None = None,
        cmake_dir: bool = False,
        pkg_config_path: bool = False,
        requires: list[str] | None = None,
        runtimes: Sequence[str] = (),
        user: bool = False,
        target: str | None = None,
    ) -> None:
        self.prefix = prefix
        self.libdir = libdir
        self.includedir = includedir
        self.cflags = cflags
        self.libs = libs
        self.rpath_from = rpath_from
        self.cmake_dir = cmake_dir
        self.pkg_config_path = pkg_config_path
        self.requires = requires
        self.runtimes = list(runtimes)
        self.user = user
        self.target = target


#: A shell word that needs no quotes (what ``shlex.quote`` leaves alone; ``shlex``
#: imports ``re``, which a query does not otherwise need).
_SAFE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_@%+=:,./-")


def _quote(word: str) -> str:
    if word and all(c in _SAFE for c in word):
        return word
    import shlex  # noqa: PLC0415

    return shlex.quote(word)


def _line(words: list[str]) -> str:
    return " ".join(_quote(w) for w in words)


def answer(q: Query) -> list[str]:
    """The lines to print, one per option in the documented order (``--requires``: one per
    runtime); with no option, the prefix. Runtimes named anywhere on the line stand in
    for ``--cflags``/``--libs``/``--requires`` given without one."""
    where = config.layout(user=q.user, target=q.target)
    named: list[str] = []
    for group in (q.cflags, q.libs, q.requires, q.runtimes):
        named += [r for r in group or () if r not in named]
    cflags, libs, requires = q.cflags, q.libs, q.requires
    for option, value in (("cflags", cflags), ("libs", libs), ("requires", requires)):
        if value == [] and not named:
            raise UsageError(
                f"--{option} needs a runtime", hint=f"nativelib config --{option} gomp"
            )
    cflags, libs, requires = (v if v != [] else named for v in (cflags, libs, requires))
    lines: list[str] = []
    if q.prefix is not None:
        lines.append(config.prefix(q.prefix or None, where=where))
    if q.libdir is not None:
        lines.append(config.libdir(q.libdir or None, where=where))
    if q.includedir is not None:
        lines.append(config.includedir(q.includedir, where=where))
    if cflags is not None:
        lines.append(_line(config.cflags(*cflags, where=where)))
    if libs is not None:
        lines.append(_line(config.libs(*libs, where=where)))
    if q.rpath_from is not None:
        if not q.rpath_from:
            raise UsageError("--rpath-from needs a directory")
        lines.append(config.rpath_from(q.rpath_from, where=where))
    if q.cmake_dir:
        lines.append(config.cmake_dir())
    if q.pkg_config_path:
        lines.append(config.pkg_config_path(where=where))
    if requires is not None:
        lines += config.requires(*requires, where=where)
    if not lines:
        lines.append(config.prefix(where=where))
    return lines


#: Options taking one optional value, one value, any number of values, none.
_OPTIONAL = {"--prefix": "prefix", "--libdir": "libdir"}
_ONE = {"--includedir": "includedir", "--rpath-from": "rpath_from", "--target": "target"}
_MANY = {"--cflags": "cflags", "--libs": "libs"}
_FLAGS = {"--cmake-dir": "cmake_dir", "--pkg-config-path": "pkg_config_path", "--user": "user"}


def parse(argv: Sequence[str]) -> Query | None:
    """The query of a ``nativelib config`` line made of the common options only, read as
    ``argparse`` reads them (a value is a word that does not start with ``-``); None for
    anything else, left to :mod:`nativelib.config.command`."""
    given: dict[str, object] = {}
    i = 0
    while i < len(argv):
        word = argv[i]
        i += 1
        values: list[str] = []
        value: object
        while i < len(argv) and argv[i] and not argv[i].startswith("-"):
            values.append(argv[i])
            i += 1
        if word in _OPTIONAL and len(values) <= 1:
            field, value = _OPTIONAL[word], values[0] if values else ""
        elif word in _ONE and len(values) == 1:
            field, value = _ONE[word], values[0]
        elif word in _MANY:
            field, value = _MANY[word], values
        elif word in _FLAGS and not values:
            field, value = _FLAGS[word], True
        else:
            return None  # a positional runtime, --requires, -h, a typo: argparse's to read
        if field in given:
            return None
        given[field] = value
    if given.get("user") and "target" in given:
        return None
    return Query(**given)  # type: ignore[arg-type]


def main(argv: Sequence[str]) -> int | None:
    """Answer ``nativelib config <argv>`` when :func:`parse` reads it and nothing goes
    wrong: 0 once the lines are written; None to leave the line to the full command
    line, which reports an error with its hint (nothing is written before that)."""
    import nativelib  # noqa: PLC0415

    if getattr(nativelib, "DISTRIBUTION", None) != "pynativelib":
        return None  # another distribution's nativelib: the CLI says so
    query = parse(argv)
    if query is None:
        return None
    try:
        lines = answer(query)
    except NativeLibError:
        return None
    try:
        sys.stdout.write("".join(f"{line}\n" for line in lines))
        sys.stdout.flush()
    except BrokenPipeError:  # piped into a command that stopped reading: not our failure
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    return 0
