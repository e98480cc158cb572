"""``nativelib autoload enable|disable|status``: the opt-in early preload's ``.pth`` file.

Exit status: 0 done (or nothing to do: already enabled, already disabled), 2 failure
(the site directory cannot be written, a file of that name that is not ours).
"""

from __future__ import annotations

import argparse
import sys

from nativelib.autoload import PTH_NAME, disable, enable, plan, site_dir, state

__all__ = ["configure_parser", "run"]

_ACTIONS = ("enable", "disable", "status")


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        f"Write (enable), remove (disable) or report (status) {PTH_NAME} in this "
        "interpreter's site directory: at every interpreter start it preloads the "
        "backward-compatible GCC runtimes installed in the common prefix (libstdc++ and "
        "libgcc_s, libgomp, libgfortran), before any import can load an older copy. "
        "Exit status: 0 done, 2 failure."
    )
    parser.add_argument("action", choices=_ACTIONS, help="enable, disable or status")
    parser.add_argument(
        "--user", action="store_true",
        help="the user site directory (pip install --user) instead of this interpreter's "
        "site-packages",
    )  # fmt: skip


def _status(site: str) -> int:
    current = state(site)
    out = sys.stdout
    if current.foreign:
        word = f"disabled ({current.file} exists, but nativelib autoload did not write it)"
    else:
        word = "enabled" if current.enabled else "disabled"
    out.write(f"autoload: {word}\n")
    out.write(f"file: {current.file}\n")
    if current.enabled:
        out.write(
            f"plan: stale ({current.stale}): start-up runs the full discovery (correct, "
            "slower); run `nativelib autoload enable` again\n"
            if current.stale
            else "plan: current (start-up loads from it, without a discovery)\n"
        )
    planned = plan()
    verb = "preloads" if current.enabled else "would preload"
    if planned.distributions:
        out.write(f"{verb} at interpreter start, in this order:\n")
        for name, version, prefix, sonames in planned.distributions:
            out.write(f"  {name} {version}: {' '.join(sonames)}  ({prefix})\n")
    else:
        out.write(
            f"{verb} nothing: no GCC runtime (nativelib-cxx14, -gomp, -gfortran5) is installed\n"
        )
    for note in planned.notes:
        out.write(f"note: {' '.join(note.split())}\n")
    return 0


def _reads_user_site() -> bool:
    import site  # noqa: PLC0415

    return bool(site.ENABLE_USER_SITE)


def run(args: argparse.Namespace) -> int:
    site = site_dir(args.user)
    if args.action == "status":
        return _status(site)
    if args.action == "enable":
        file, changed = enable(site)
        sys.stdout.write(
            f"autoload enabled: {file}\n" if changed else f"autoload already enabled: {file}\n"
        )
        if args.user and not _reads_user_site():
            sys.stderr.write(
                "note: this interpreter does not read the user site directory (a venv, or "
                "-s/PYTHONNOUSERSITE): the file takes effect in interpreters that do\n"
            )
        return 0
    file, changed = disable(site)
    sys.stdout.write(
        f"autoload disabled: removed {file}\n" if changed else "autoload already disabled\n"
    )
    return 0
