"""The opt-in early preload: one ``.pth`` file in a site directory that, at interpreter
start, preloads the installed backward-compatible GCC runtimes (libstdc++/libgcc_s,
libgomp, libgfortran) from the common prefix, before any import can bring an older copy.

Standard library only, and light: the ``.pth`` line runs at every interpreter start
(budget: 3 ms, see ``scripts/bench_load.py``). It imports :mod:`nativelib.startup` (not
this module) and :mod:`nativelib.loader` (no json, re, typing), and loads through the loader, so the
prefix and every library are checked exactly as ``nativelib.load()`` checks them: an
unsafe prefix or an unreadable index is skipped. Nothing it does may break interpreter
start: every failure is silent, unless ``NATIVELIB_AUTOLOAD_DEBUG=1``, which writes one
line to stderr. ``NATIVELIB_DISABLE=1`` turns it off, as it turns ``nativelib.load()`` off.

``nativelib autoload enable|disable|status`` (:mod:`nativelib.autoload.command`) writes,
removes and reports the file; the doctor reports it too (:func:`state`).
"""

from __future__ import annotations

import os

from nativelib.startup import DEBUG_VARIABLE, preload, selected
from nativelib.startup import disabled as _disabled

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs ~2 ms
if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = [
    "DEBUG_VARIABLE",
    "PTH_NAME",
    "PTH_TEXT",
    "Planned",
    "State",
    "disable",
    "enable",
    "plan",
    "preload",
    "selected",
    "site_dir",
    "state",
]

#: The file, in a site directory. ``site`` runs the ``.pth`` files of a directory in
#: name order (by code point): a leading ``_`` puts this one before every lower-case
#: name (another package's ``.pth`` that imports an extension comes later), and after
#: setuptools' ``__editable__.*.pth`` (an editable pynativelib is importable by then).
PTH_NAME = "_nativelib-autoload.pth"
_MARKER = "# nativelib autoload"
#: What the ``.pth`` line runs: :func:`preload` (from :mod:`nativelib.startup`, the lean
#: entry: the rest of this module is not imported at start-up), and nothing at all (or,
#: with the debug variable, one line: a mark on ``sys`` says it was written, since site
#: may run the file twice) when pynativelib cannot even be imported (it was uninstalled,
#: or PyPI's unrelated ``nativelib`` took the name). A failed import leaves no namespace
#: package ``nativelib`` behind (the runtime wheels' ``nativelib/pkgconfig/`` folder makes
#: one when pynativelib is gone).
_GUARDED = (
    "try:\n import nativelib.startup as m\n m.preload()\n"
    "except Exception as e:\n"
    " if getattr(sys.modules.get('nativelib'), '__file__', '') is None:\n"
    "  del sys.modules['nativelib']\n"
    f" if os.environ.get({DEBUG_VARIABLE!r}) == '1' and not hasattr(sys, '_nativelib_autoload'):\n"
    "  sys._nativelib_autoload = 1; sys.stderr.write('nativelib autoload: not run: %r\\n' % (e,))"
)
#: The whole file: a comment (``site`` skips it), then the one line it executes.
PTH_TEXT = (
    f"{_MARKER}: preloads the GCC runtimes of nativelib.prefix at interpreter start "
    "('nativelib autoload disable' removes this file)\n"
    f"import os, sys; exec({_GUARDED!r})\n"
)
_MAX_PTH_BYTES = 1 << 16
_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


# ----------------------------------------------------------------------------- at start-up


# ----------------------------------------------------------------------------- the file


class State:
    """The autoload file of one site directory: ``enabled`` when our file is there;
    ``foreign`` when a file of that name is there that we did not write. (A plain class:
    ``nativelib._frozen`` is private to the top-level modules.)"""

    __slots__ = ("site", "file", "enabled", "foreign")
    site: str
    file: str
    enabled: bool
    foreign: bool

    def __init__(self, site: str, file: str, enabled: bool, foreign: bool) -> None:
        self.site = site
        self.file = file
        self.enabled = enabled
        self.foreign = foreign


class Planned:
    """What the autoload would preload now: each distribution (dependencies first) with
    its version, prefix and the sonames it preloads; and why anything was skipped."""

    __slots__ = ("distributions", "notes")
    distributions: tuple[tuple[str, str, str, tuple[str, ...]], ...]
    notes: tuple[str, ...]

    def __init__(
        self,
        distributions: tuple[tuple[str, str, str, tuple[str, ...]], ...],
        notes: tuple[str, ...],
    ) -> None:
        self.distributions = distributions
        self.notes = notes


def site_dir(user: bool = False) -> str:
    """Where ``enable`` writes: the running interpreter's purelib (its venv's
    site-packages), or with ``user`` the user site directory."""
    if user:
        import site  # noqa: PLC0415

        return site.getusersitepackages()
    import sysconfig  # noqa: PLC0415

    return sysconfig.get_path("purelib")


def _read(file: str) -> str | None:
    """The text of the autoload file, or None when there is none."""
    import nativelib  # noqa: PLC0415
    from nativelib.files import read_regular_file  # noqa: PLC0415

    if not os.path.lexists(file):
        return None
    try:
        return read_regular_file(file, _MAX_PTH_BYTES).decode("utf-8", "replace")
    except nativelib.errors.FileReadError as e:
        return f"<unreadable: {e.reason}>"


def state(site: str) -> State:
    """Whether our file is in ``site`` (a file of that name that is not ours: foreign)."""
    file = os.path.join(site, PTH_NAME)
    text = _read(file)
    if text is None:
        return State(site, file, False, False)
    ours = text.startswith(_MARKER)
    return State(site, file, ours, not ours)


def _foreign(file: str) -> Exception:
    import nativelib  # noqa: PLC0415

    return nativelib.errors.AutoloadError(
        file,
        "exists and was not written by 'nativelib autoload': left as it is",
        hint="look at it, remove or rename it if it is not needed, then run the command again",
    )


def enable(site: str) -> tuple[str, bool]:
    """Write the autoload file into ``site`` (created if missing: a user site directory
    may not exist yet), atomically: a temporary file renamed over it. Returns the file and
    whether it was written (False: it was there already, the same)."""
    import nativelib  # noqa: PLC0415

    file = os.path.join(site, PTH_NAME)
    text = _read(file)
    if text == PTH_TEXT:
        return file, False
    if text is not None and not text.startswith(_MARKER):
        raise _foreign(file)
    tmp = os.path.join(site, f".{PTH_NAME}.{os.getpid()}.tmp")  # not *.pth: site skips it
    try:
        os.makedirs(site, exist_ok=True)
        fd = os.open(
            tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644
        )
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                out.write(PTH_TEXT)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, file)
        except BaseException:
            os.unlink(tmp)
            raise
    except OSError as e:
        raise nativelib.errors.AutoloadError(
            site,
            f"cannot write {PTH_NAME} in this site directory: {e.strerror}",
            hint="run it as the user who owns this environment, or use --user to enable it "
            "in your user site directory",
        ) from e
    return file, True


def disable(site: str) -> tuple[str, bool]:
    """Remove our autoload file from ``site`` (never a file of that name we did not
    write). Returns the file and whether it was removed (False: there was none)."""
    import nativelib  # noqa: PLC0415

    current = state(site)
    if current.foreign:
        raise _foreign(current.file)
    if not current.enabled:
        return current.file, False
    try:
        os.unlink(current.file)
    except OSError as e:
        raise nativelib.errors.AutoloadError(
            site,
            f"cannot remove {PTH_NAME} from this site directory: {e.strerror}",
            hint="run it as the user who owns this environment",
        ) from e
    return current.file, True


def plan(path: Sequence[str] | None = None) -> Planned:
    """What :func:`preload` would load now, from ``path`` (default ``sys.path``)."""
    from nativelib import loader  # noqa: PLC0415

    notes: list[str] = []
    installed = loader.discover(path, warn=notes.append)
    dists = tuple(
        (name, dist.index.version, dist.prefix, dist.index.to_preload)
        for name in selected(installed)
        for dist in (installed[name],)
    )
    if _disabled(os.environ):
        notes.append("NATIVELIB_DISABLE is set: nothing is preloaded while it is")
    return Planned(dists, tuple(notes))
