"""The opt-in early preload: one ``.pth`` file in a site directory that, at interpreter
start, preloads the installed backward-compatible GCC runtimes (libstdc++/libgcc_s,
libgomp, libgfortran) from the common prefix, before any import can bring an older copy.

``enable`` runs the discovery and the loader's checks once and writes what they found
into the ``.pth`` line: the libraries in load order and a stamp of every directory, index
and library read (:func:`make_plan`). At start-up the line runs ``_pynativelib.start``
(pynativelib's top-level module, standard library only: no ``nativelib`` module is
imported while the plan holds), which checks the stamp and the loader's safety rule and
dlopens the files; a stale plan (a runtime upgraded, added or removed, a prefix changed)
takes the full path, :mod:`nativelib.startup` (the loader's discovery: as correct, slower)
until ``enable`` runs again. Nothing it does may break interpreter start: every failure
is silent, unless ``NATIVELIB_AUTOLOAD_DEBUG=1``, which writes one line to stderr.
``NATIVELIB_DISABLE=1`` turns it off, as it turns ``nativelib.load()`` off.

``nativelib autoload enable|disable|status`` (:mod:`nativelib.autoload.command`) writes,
removes and reports the file; the doctor reports it too (:func:`state`).
"""

from __future__ import annotations

import os
import sys

import _pynativelib
from nativelib.startup import DEBUG_VARIABLE, preload, selected
from nativelib.startup import disabled as _disabled

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs ~2 ms
if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = [
    "DEBUG_VARIABLE",
    "PTH_NAME",
    "Planned",
    "State",
    "disable",
    "enable",
    "format_plan",
    "make_plan",
    "plan",
    "preload",
    "pth_text",
    "read_plan",
    "selected",
    "site_dir",
    "stale",
    "state",
]

#: The file, in a site directory. ``site`` runs the ``.pth`` files of a directory in
#: name order (by code point): a leading ``_`` puts this one before every lower-case
#: name (another package's ``.pth`` that imports an extension comes later), and after
#: setuptools' ``__editable__.*.pth`` (an editable pynativelib is importable by then).
PTH_NAME = "_nativelib-autoload.pth"
_MARKER = "# nativelib autoload"
#: What the ``.pth`` line runs: ``_pynativelib.start(PLAN)`` (pynativelib's top-level
#: module: the lean start-up path, which imports no ``nativelib`` module while the plan
#: holds), and nothing at all (or, with the debug variable, one line: a mark on ``sys``
#: says it was written, since site may run the file twice) when it cannot be imported
#: (pynativelib was uninstalled).
_GUARDED = (
    "sys._nativelib_autoload = 1\n"
    "try:\n import _pynativelib as m\n"
    "except Exception as e:\n"
    " import os\n"
    f" if os.environ.get({DEBUG_VARIABLE!r}) == '1':\n"
    "  sys.stderr.write('nativelib autoload: not run: %r\\n' % (e,))\n"
    "else:\n m.start(P)\n"
)
_HEAD = (
    f"{_MARKER}: preloads the GCC runtimes of nativelib.prefix at interpreter start "
    "('nativelib autoload disable' removes this file; 'nativelib autoload enable' "
    "writes it again with what is installed now)\n"
)


def pth_text(plan: str | None) -> str:
    """The whole file: a comment (``site`` skips it), then the one line it executes,
    which holds the plan's text (:func:`make_plan`) as one string constant, passed to
    the guarded code as ``P``. The mark on ``sys`` makes a second run of the file (site
    may run it twice) cost one attribute lookup, and the debug line appear once."""
    return (
        f"{_HEAD}import sys; hasattr(sys, '_nativelib_autoload') or "
        f"exec({_GUARDED!r}, {{'sys': sys, 'P': {plan!r}}})\n"
    )


def read_plan(text: str) -> str | None:
    """The plan's text held by the file (None when it holds none: an earlier version's
    file, one written without a plan, or one that cannot be read)."""
    import ast  # noqa: PLC0415 (the commands' side only)

    for line in text.splitlines():
        if not line.startswith("import "):
            continue
        try:
            tree = ast.parse(line)
        except SyntaxError:
            return None
        for node in ast.walk(tree):
            if isinstance(node, ast.Dict):
                for key, value in zip(node.keys, node.values, strict=True):
                    if (
                        isinstance(key, ast.Constant)
                        and key.value == "P"
                        and isinstance(value, ast.Constant)
                        and isinstance(value.value, str)
                    ):
                        return value.value
    return None


_MAX_PTH_BYTES = 1 << 16
_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


# ----------------------------------------------------------------------------- at start-up


# ----------------------------------------------------------------------------- the file


class State:
    """The autoload file of one site directory: ``enabled`` when our file is there;
    ``foreign`` when a file of that name is there that we did not write; ``stale``: why
    the plan it holds no longer says what is installed (start-up then takes the full
    path: correct, slower), or None. (A plain class: ``nativelib._frozen`` is private to
    the top-level modules.)"""

    __slots__ = ("site", "file", "enabled", "foreign", "stale")
    site: str
    file: str
    enabled: bool
    foreign: bool
    stale: str | None

    def __init__(
        self, site: str, file: str, enabled: bool, foreign: bool, stale: str | None = None
    ) -> None:
        self.site = site
        self.file = file
        self.enabled = enabled
        self.foreign = foreign
        self.stale = stale


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


def format_plan(
    suffix: str,
    manifests: Sequence[tuple[str, int, int, int]],
    indexes: Sequence[tuple[str, int, int, int]],
    libraries: Sequence[tuple[str, str, int, int, int, str]],
) -> str | None:
    """The plan's text (None where a path holds a tab or a line break)."""
    records = [
        (_pynativelib.PLAN_HEAD, _pynativelib.PLAN_FORMAT, suffix),
        *(("M", *m) for m in manifests),
        *(("I", *i) for i in indexes),
        *(("L", *lib) for lib in libraries),
    ]
    fields = [[str(v) for v in record] for record in records]
    if any("\t" in v or "\n" in v for record in fields for v in record):
        return None
    return "\n".join("\t".join(record) for record in fields)


def stale(text: object, path: Sequence[str] | None = None) -> str | None:
    """Why the plan in ``text`` no longer says what the full discovery would do on
    ``path`` (default ``sys.path``), or None when it still does (by stat alone: the
    libraries are not opened). What ``nativelib autoload status`` and the doctor report."""
    plan = _pynativelib.parse_plan(text)
    try:
        why = _pynativelib.stale_dirs(plan, sys.path if path is None else path)
        if why is not None or plan is None:
            return why
        for prefix, libs in plan[4]:
            for soname, *want in libs:
                file = f"{prefix}/lib/{soname}"
                try:
                    st = os.stat(file)
                except OSError as e:
                    return f"{file}: {e.strerror}"
                if list(_pynativelib.stamp(st)) != want[:3]:
                    return f"{file} changed"
    except (TypeError, ValueError, IndexError):
        return "the stored plan cannot be read"
    return None


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
    """Whether our file is in ``site`` (a file of that name that is not ours: foreign),
    and whether the plan it holds is stale."""
    file = os.path.join(site, PTH_NAME)
    text = _read(file)
    if text is None:
        return State(site, file, False, False)
    if not text.startswith(_MARKER):
        return State(site, file, False, True)
    stored = read_plan(text)
    why: str | None
    if stored is None:
        why = (
            "it holds no plan (written by an earlier version of pynativelib, or while a "
            "prefix or an index was refused)"
        )
    else:
        why = stale(stored, _startup_path(site))
    return State(site, file, True, False, why)


def _startup_path(site: str) -> list[str]:
    """``sys.path`` as it stands when ``site`` runs the file in ``site``: without this
    process's script or current directory (``sys.path[0]``), up to ``site``."""
    entries = list(sys.path[0 if getattr(sys.flags, "safe_path", False) else 1 :])
    try:
        target = os.stat(site)
    except OSError:
        return [*entries, site]
    for i, entry in enumerate(entries):
        try:
            st = os.stat(entry)
        except OSError:
            continue
        if (st.st_dev, st.st_ino) == (target.st_dev, target.st_ino):
            return entries[: i + 1]
    return [*entries, site]


def make_plan(site: str) -> str | None:
    """What the ``.pth`` line in ``site`` loads at start-up while nothing changes: the
    discovery and the choice :mod:`nativelib.startup` makes, on the path start-up sees,
    resolved to files, with the stamp that says it still holds (see ``_pynativelib``).
    None (the full path at every start) when the discovery refused something or a
    dependency is missing: the full path says why, each time."""
    from nativelib import loader  # noqa: PLC0415
    from nativelib.prefix import LIB_DIR, MANIFEST_DIR, PREFIX_DIRNAME  # noqa: PLC0415

    path = _startup_path(site)
    suffix = f"{PREFIX_DIRNAME}/{MANIFEST_DIR}"
    manifests = _pynativelib.manifest_dirs(path, suffix)
    installed, refused = loader.discover_all(path, warn=lambda _message: None)
    if refused:
        return None
    indexes: list[tuple[str, int, int, int]] = []
    for folder, *_rest in manifests:
        for name in sorted(os.listdir(folder)):
            if name.endswith(".load"):
                file = f"{folder}/{name}"
                indexes.append((file, *_pynativelib.stamp(os.stat(file))))
    libraries: list[tuple[str, str, int, int, int, str]] = []
    for name in selected(installed):
        dist = installed[name]
        for dep in dist.index.dependencies:
            if dep not in installed and not loader.is_openmp_provider(dep):
                return None
        for soname in dist.index.to_preload:
            st = os.stat(os.path.join(dist.prefix, LIB_DIR, soname))
            libraries.append((dist.prefix, soname, *_pynativelib.stamp(st), dist.name))
    return format_plan(suffix, manifests, indexes, libraries)


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
    try:
        wanted = pth_text(make_plan(site))
    except OSError:  # a file removed while it was read: the full path at each start
        wanted = pth_text(None)
    if text == wanted:
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
                out.write(wanted)
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
