"""``nativelib config``: the prefix and the flags to build against the runtime wheels.

Each option prints one line (``--requires``: one per runtime), in the order of the
options below; without an option, the prefix. Exit 0, or 2 with ``error:``/``hint:`` when
a runtime is not installed in the layout (this environment, ``--user``, ``--target DIR``).
The common queries rarely get here: :mod:`nativelib.config.query` answers them first,
without ``argparse``; this module parses every line it leaves, and reports the errors.
"""

from __future__ import annotations

import argparse
import sys

from nativelib.config.query import Query, answer

__all__ = ["configure_parser", "run"]


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Print the prefix of the runtime wheels and the flags a build uses to link them: "
        "include and library directories, compiler and linker flags, the $ORIGIN-relative "
        "RUNPATH, CMake and pkg-config locations, and the Requires-Dist to declare."
    )
    q = parser.add_argument_group("what to print (one line each, in this order)")
    q.add_argument(
        "--prefix", nargs="?", const="", metavar="RUNTIME",
        help="the prefix (<site>/nativelib.prefix) RUNTIME is installed in, or the first "
        "prefix holding any runtime wheel (the default output)",
    )  # fmt: skip
    q.add_argument("--libdir", nargs="?", const="", metavar="RUNTIME", help="<prefix>/lib")
    q.add_argument(
        "--includedir", metavar="RUNTIME", help="<prefix>/include/<short name> of RUNTIME"
    )
    q.add_argument(
        "--cflags", nargs="*", metavar="RUNTIME",
        help="compile flags (-I the headers, -fopenmp for GNU OpenMP)",
    )  # fmt: skip
    q.add_argument(
        "--libs", nargs="*", metavar="RUNTIME",
        help="link flags: -Wl,-L<prefix>/lib -Wl,-l:<soname> (the soname is the link name)",
    )  # fmt: skip
    q.add_argument(
        "--rpath-from", metavar="DIR",
        help="the $ORIGIN-relative RUNPATH entry from DIR (where the extension installs: "
        "a folder below site-packages such as mypkg/_impl, or an absolute path) to "
        "<prefix>/lib",
    )  # fmt: skip
    q.add_argument(
        "--cmake-dir", action="store_true",
        help="the folder of nativelibConfig.cmake (for -Dnativelib_DIR=...)",
    )  # fmt: skip
    q.add_argument(
        "--pkg-config-path", action="store_true",
        help="<prefix>/lib/pkgconfig of each prefix (for PKG_CONFIG_PATH)",
    )  # fmt: skip
    q.add_argument(
        "--requires", nargs="*", metavar="RUNTIME",
        help="the Requires-Dist lines to declare (the bound covers every version node the "
        "installed copy defines)",
    )  # fmt: skip
    parser.add_argument(
        "runtimes", nargs="*", metavar="RUNTIME",
        help="runtimes for --cflags/--libs/--requires given without one (pkg-config "
        "style: nativelib config --cflags --libs gomp)",
    )  # fmt: skip
    where = parser.add_argument_group("where the runtime wheels are installed")
    layout = where.add_mutually_exclusive_group()
    layout.add_argument("--user", action="store_true", help="the user site (pip install --user)")
    layout.add_argument(
        "--target", metavar="DIR", help="a directory 'pip install --target DIR' installed into"
    )


def run(args: argparse.Namespace) -> int:
    query = Query(
        prefix=args.prefix, libdir=args.libdir, includedir=args.includedir, cflags=args.cflags,
        libs=args.libs, rpath_from=args.rpath_from, cmake_dir=args.cmake_dir,
        pkg_config_path=args.pkg_config_path, requires=args.requires, runtimes=args.runtimes,
        user=args.user, target=args.target,
    )  # fmt: skip
    sys.stdout.write("".join(f"{line}\n" for line in answer(query)))
    return 0
