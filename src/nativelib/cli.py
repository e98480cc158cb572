"""The ``nativelib`` command line: ``main(argv) -> int``.

``cli.py`` only assembles the commands. Each command lives in a module that exposes two
functions: one that configures its ``argparse`` sub-parser (``configure_parser``) and one
that runs it (``run(args) -> int``); a module holding two commands names them
``configure_<command>_parser`` and ``run_<command>``. A module is imported only when its
command is the one asked for, so ``nativelib inspect`` never imports the build pipeline.

Data goes to stdout; logs, errors and hints to stderr. Every error is printed as
``error: <message>`` and, when there is one, ``hint: <what to do>`` on the next line.
Exit codes: 0 fine, 1 findings (inspect: files that could not be parsed; doctor:
errors found; resolve/requires: no resolution), 2 usage error or failure, 130
interrupted. ``-v``/``--verbose`` shows retries, progress, cache hits and skipped files
(``-vv``: debug); ``-q``/``--quiet`` shows errors only.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import nativelib
from nativelib._frozen import Frozen, setfield
from nativelib.errors import NativeLibError, UsageError, report_error

__all__ = ["COMMANDS", "Command", "main"]

EXIT_OK = 0
EXIT_FINDINGS = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class Command(Frozen):
    """A subcommand: where its two functions live, and its one-line summary.

    (A :class:`Frozen`, not a dataclass: ``dataclasses`` imports ``inspect``, ~10 ms on
    the way to every command.)
    """

    __slots__ = ("name", "module", "summary", "configure", "run", "extra")
    name: str
    module: str
    summary: str
    configure: str
    run: str
    extra: str | None  # the pynativelib extra that brings what the command imports

    def __init__(
        self,
        name: str,
        module: str,
        summary: str,
        configure: str = "configure_parser",
        run: str = "run",
        extra: str | None = None,
    ) -> None:
        setfield(self, "name", name)
        setfield(self, "module", module)
        setfield(self, "summary", summary)
        setfield(self, "configure", configure)
        setfield(self, "run", run)
        setfield(self, "extra", extra)

    def load(
        self,
    ) -> tuple[Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]:
        module = importlib.import_module(self.module)
        configure: Callable[[argparse.ArgumentParser], None] = getattr(module, self.configure)
        run: Callable[[argparse.Namespace], int] = getattr(module, self.run)
        return configure, run


COMMANDS: tuple[Command, ...] = (
    Command("inspect", "nativelib.inspection", "show what ELF files provide and need"),
    Command(
        "build",
        "nativelib.runtime_wheels.command",
        "build runtime wheels from upstream packages",
        extra="build",
    ),
    Command(
        "release",
        "nativelib.release.command",
        "build the release set (runtime wheels, pynativelib sdist and wheel) of a release file",
        extra="release",
    ),
    Command(
        "resolve",
        "nativelib.resolver.command",
        "pick the runtime wheels that satisfy what files need",
        configure="configure_resolve_parser",
        run="run_resolve",
    ),
    Command(
        "requires",
        "nativelib.resolver.command",
        "the Requires-Dist lines a downstream wheel should declare",
        configure="configure_requires_parser",
        run="run_requires",
    ),
    Command(
        "repair",
        "nativelib.repair.command",
        "link wheels to the runtime wheels: drop vendored copies, add Requires-Dist, set the tag",
    ),
    Command(
        "fix",
        "nativelib.repair.fix",
        "devendor installed distributions: repaired wheels installed by pip, checked by import",
    ),
    Command(
        "check",
        "nativelib.repair.check",
        "audit wheels: the tag, the runtime requirements, every linking problem",
    ),
    Command(
        "index",
        "nativelib.publish.command",
        "write a static simple index (PEP 503/691/658) for a directory of wheels",
    ),
    Command(
        "config",
        "nativelib.config.command",
        "the prefix and the flags to build against the runtime wheels",
    ),
    Command(
        "doctor",
        "nativelib.doctor.command",
        "diagnose this environment (and, with --import, a live process)",
    ),
    Command(
        "autoload",
        "nativelib.autoload.command",
        "preload the prefix's GCC runtimes at interpreter start (enable|disable|status)",
    ),
)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(message, hint=f"see '{self.prog} --help'")


def _verbosity(parser: argparse.ArgumentParser, suffix: str = "") -> None:
    """``-v``/``-q``; on a sub-parser they count into their own destinations (an
    argparse sub-parser would otherwise overwrite what was given before the command)."""
    group = parser.add_argument_group("output")
    group.add_argument(
        "-v", "--verbose", action="count", default=0, dest=f"verbose{suffix}",
        help="show retries, progress, cache hits and skipped files (-vv: debug)",
    )  # fmt: skip
    group.add_argument(
        "-q", "--quiet", action="count", default=0, dest=f"quiet{suffix}",
        help="show errors only",
    )  # fmt: skip


def _command_named(argv: Sequence[str]) -> Command | None:
    """The command ``argv`` asks for: the first word that is not an option (the
    top-level options take no values)."""
    for word in argv:
        if word == "--":
            return None
        if not word.startswith("-"):
            return next((c for c in COMMANDS if c.name == word), None)
    return None


def _missing_dependency(command: Command | None, module: str) -> UsageError:
    """The error for a command whose third-party dependency is not installed."""
    what = f"nativelib {command.name}" if command is not None else "nativelib"
    if command is not None and command.extra is not None:
        hint = f"install the {command.extra!r} extra: pip install 'pynativelib[{command.extra}]'"
    else:
        hint = "reinstall pynativelib: pip install --force-reinstall pynativelib"
    return UsageError(
        f"{what} needs the Python module {module!r}, which is not installed", hint=hint
    )


def build_parser(
    argv: Sequence[str] = (),
) -> tuple[argparse.ArgumentParser, dict[str, Callable[[argparse.Namespace], int]]]:
    """The parser, with the sub-parser of the command named in ``argv`` configured (or
    every one, with ``argv`` empty); and each configured command's run function."""
    parser = _Parser(
        prog="nativelib",
        description="Shared native runtime libraries for Python wheels.",
        epilog="Exit status: 0 fine, 1 findings, 2 usage error or failure. "
        "Errors are printed as 'error: ...' with a 'hint: ...' line when there is one.",
    )
    parser.add_argument("--version", action="version", version=f"nativelib {nativelib.__version__}")
    _verbosity(parser)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    chosen = _command_named(argv)
    runs: dict[str, Callable[[argparse.Namespace], int]] = {}
    for command in COMMANDS:
        p = sub.add_parser(command.name, help=command.summary, description=command.summary)
        if chosen is None and argv:
            continue
        if chosen is not None and chosen is not command:
            continue
        configure, run = command.load()
        configure(p)
        _verbosity(p, "_after")
        runs[command.name] = run
    return parser, runs


class _StderrHandler(logging.Handler):
    """Writes to whatever ``sys.stderr`` is when a record comes (tests swap it)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stderr.write(self.format(record) + "\n")
        except Exception:
            self.handleError(record)


class _Formatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if record.levelno >= logging.WARNING:
            return f"{record.levelname.lower()}: {message}"
        if record.levelno < logging.INFO:
            return f"debug: {record.name}: {message}"
        return message


def log_level(verbose: int, quiet: int) -> int:
    """Default: warnings; ``-v``: info; ``-vv``: debug; ``-q``: errors only."""
    if quiet:
        return logging.ERROR
    if verbose >= 2:
        return logging.DEBUG
    if verbose == 1:
        return logging.INFO
    return logging.WARNING


@contextmanager
def _logging(level: int) -> Iterator[None]:
    """The ``nativelib`` loggers go to stderr at ``level`` while the command runs; the
    previous configuration is put back afterwards (``main`` may run inside a program)."""
    logger = logging.getLogger("nativelib")
    handler = _StderrHandler()
    handler.setFormatter(_Formatter())
    saved = logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(saved[0])
        logger.propagate = saved[1]


def _not_ours() -> NativeLibError | None:
    """The error when the ``nativelib`` package this runs from is not pynativelib's: its
    ``__init__.py`` lacks our marker (another distribution, PyPI's unrelated
    ``nativelib``, wrote its own over ours; this module, still there, runs under it). One
    attribute read; the rest is the launcher's own check (``_pynativelib_main``, which the
    ``nativelib`` command runs before this package is imported; ``python -m nativelib``
    comes here only after the other ``__init__.py`` ran)."""
    if getattr(nativelib, "DISTRIBUTION", None) == "pynativelib":
        return None
    import _pynativelib_main  # noqa: PLC0415

    found = _pynativelib_main.foreign_package()
    init = os.path.join(os.path.dirname(os.path.abspath(__file__)), "__init__.py")
    message, hint = found or (
        f"{init}: this nativelib package is not pynativelib's",
        "pip uninstall nativelib && pip install --force-reinstall pynativelib",
    )
    return NativeLibError(message, hint=hint)


def main(argv: Sequence[str] | None = None) -> int:
    foreign = _not_ours()
    if foreign is not None:
        report_error(foreign)
        return EXIT_USAGE
    args_list = list(sys.argv[1:] if argv is None else argv)
    try:
        parser, runs = build_parser(args_list or ["--help"])
        args = parser.parse_args(args_list)
        if args.command is None:
            parser.print_help(sys.stderr)
            return EXIT_USAGE
        level = log_level(
            args.verbose + getattr(args, "verbose_after", 0),
            args.quiet + getattr(args, "quiet_after", 0),
        )
        with _logging(level):
            code = runs[args.command](args)
        sys.stdout.flush()
        return code
    except SystemExit as e:  # --help / --version
        return e.code if isinstance(e.code, int) else EXIT_OK
    except BrokenPipeError:
        # Output piped into a command that stopped reading (| head): not our failure.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK
    except NativeLibError as e:
        report_error(e)
        return EXIT_USAGE
    except ModuleNotFoundError as e:
        if not e.name or e.name.partition(".")[0] == "nativelib":
            raise  # our own module missing: a broken install, not the user's input
        report_error(_missing_dependency(_command_named(args_list), e.name))
        return EXIT_USAGE
    except MemoryError:
        # Every reader is bounded, so this is a bug; still an error line, not a traceback.
        report_error(
            NativeLibError("out of memory", hint="please report this with the command that ran out")
        )
        return EXIT_USAGE
    except KeyboardInterrupt:
        report_error(NativeLibError("interrupted"))
        return EXIT_INTERRUPTED
