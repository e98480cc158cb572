"""The ``nativelib`` console script's launcher: :func:`main` checks that the ``nativelib``
package on ``sys.path`` is pynativelib's (:func:`foreign_package`: its ``__init__.py``
read, never run) before ``nativelib.cli`` is imported, and refuses, exit 2, when it is
not: PyPI's unrelated project ``nativelib`` installs its own ``__init__.py`` over ours
(pip says nothing), and that one imports pandas. ``python -m nativelib`` runs that
``__init__.py`` first and cannot be protected the same way.

A top-level module of pynativelib (not in the ``nativelib`` package, which it checks);
standard library only. The autoload's full path at start-up uses the same check.
"""

import os
import sys

__all__ = ["foreign_package", "main"]

#: The marker line of pynativelib's ``nativelib/__init__.py``.
_MARKER = b'\nDISTRIBUTION = "pynativelib"\n'
_HINT = "pip uninstall nativelib && pip install --force-reinstall pynativelib"


def foreign_package() -> "tuple[str, str] | None":
    """(error, hint) when the ``nativelib`` package that ``import nativelib`` would run
    is not pynativelib's: its ``__init__.py`` lacks our marker line. Found as the import
    system finds it (``sys.meta_path``: an editable install's finder too), read, never
    run. The site directory's RECORDs are read only to name the other distribution."""
    init = None
    for finder in sys.meta_path:
        find = getattr(finder, "find_spec", None)
        spec = find("nativelib", None) if find is not None else None
        if spec is not None:
            init = spec.origin if spec.has_location else None
            break
    if init is None or not init.endswith(".py"):
        return None  # no package (or a namespace one): the import says what is wrong
    try:
        with open(init, "rb") as f:
            if _MARKER in f.read(1 << 20):
                return None
    except OSError:
        return None
    package = os.path.dirname(init)
    site = os.path.dirname(package)
    who = []
    try:
        names = sorted(n for n in os.listdir(site) if n.endswith(".dist-info"))
    except OSError:
        names = []
    for name in names:
        stem = name[: -len(".dist-info")]
        if stem.partition("-")[0].lower() == "pynativelib":
            continue
        try:
            with open(os.path.join(site, name, "RECORD"), "rb") as f:
                record = f.read(64 << 20)
        except OSError:
            continue
        if record.startswith(b"nativelib/__init__.py,") or b"\nnativelib/__init__.py," in record:
            who.append(stem.replace("-", " ", 1))
    by = f" ({', '.join(who)})" if who else ""
    return (
        f"{init}: this nativelib package is not pynativelib's: another distribution{by} "
        "installed its own nativelib/__init__.py over it",
        _HINT,
    )


def main() -> int:
    """The ``nativelib`` console script: :func:`foreign_package` first (exit 2), then
    ``nativelib.__main__.main`` (``nativelib.cli.main``)."""
    foreign = foreign_package()
    if foreign is not None:
        sys.stderr.write(f"error: {foreign[0]}\nhint: {foreign[1]}\n")
        return 2
    # nativelib.__main__ answers `nativelib config`'s pkg-config style queries before
    # the command line's argparse is imported, then hands over to nativelib.cli.
    from nativelib.__main__ import main as cli_main  # noqa: PLC0415

    return cli_main()
