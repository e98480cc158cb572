"""``nativelib build``: runtime wheels from the catalog's sources or from given archives."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from urllib.parse import urlsplit

from nativelib.catalog import Catalog, Recipe, load_catalog
from nativelib.errors import NativeLibError
from nativelib.leftovers import temporary_tree
from nativelib.net.download import fetch, get_document
from nativelib.runtime_wheels.builder import BuildError, Input, build, plan_build, sha256_file
from nativelib.sources import get_kind, kind_names, resolve

__all__ = ["FromSpecError", "configure_parser", "parse_from", "run"]


_log = logging.getLogger(__name__)


class FromSpecError(NativeLibError):
    """A ``--from KIND:URL_OR_PATH`` value that cannot be used."""


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Build runtime wheels (nativelib-<name>) from the catalog's upstream sources "
        "(conda, RPM, Debian, PyPI), or from the packages given with --from. The wheel "
        "paths are printed on stdout. Exit status: 0 built, 2 failure."
    )
    parser.add_argument(
        "runtimes", nargs="*", metavar="RUNTIME", help="short name (gomp) or distribution name"
    )
    parser.add_argument("--all", action="store_true", help="build every runtime of the catalog")
    parser.add_argument("--source", metavar="NAME", help="which of the recipe's sources to use")
    parser.add_argument(
        "--from",
        dest="from_",
        action="append",
        default=[],
        metavar="KIND:URL_OR_PATH",
        help="an upstream package to build from instead of the catalog's source, e.g. "
        "deb:./libgomp1_12.2.0-14_amd64.deb or wheel:https://host/x.whl#sha256=HEX "
        "(repeatable; a URL needs its sha256; kinds: conda, rpm, deb, wheel)",
    )
    parser.add_argument(
        "-w",
        "--wheel-dir",
        default="wheelhouse",
        metavar="DIR",
        help="where wheels go (default: wheelhouse)",
    )
    # The spelling before 0.x (-o/--output DIR); resolve's -o is a file, so it is hidden.
    parser.add_argument("-o", "--output", dest="wheel_dir", help=argparse.SUPPRESS)
    parser.add_argument(
        "--plan", action="store_true", help="print what would be built; write nothing"
    )


def parse_from(spec: str) -> Input:
    """``KIND:PATH`` (a local archive) or ``KIND:URL#sha256=HEX`` (downloaded, pinned)."""
    kind, sep, target = spec.partition(":")
    if not sep or not target:
        raise FromSpecError(
            f"--from {spec!r}: expected KIND:URL_OR_PATH (kinds: {', '.join(kind_names())})",
            hint="prefix the package with its kind, e.g. --from deb:./libgomp1_12.2.0-14_amd64.deb",
        )
    if get_kind(kind) is None:
        raise FromSpecError(
            f"--from {spec!r}: unknown kind {kind!r} (kinds: {', '.join(kind_names())})",
            hint=f"use one of the kinds: {', '.join(kind_names())}",
        )
    if target.startswith(("https://", "http://")):
        url, _, fragment = target.partition("#")
        if not fragment.startswith("sha256="):
            raise FromSpecError(
                f"--from {spec!r}: a URL needs its sha256",
                hint=f"append the file's sha256 (sha256sum prints it): {url}#sha256=HEX",
            )
        sha = fragment[len("sha256=") :]
        return Input(fetch(url, sha), kind, url, sha.lower())
    path = Path(target)
    if not path.is_file():
        raise FromSpecError(
            f"--from {spec!r}: no such file: {target!r}",
            hint="give the path of a downloaded package, or an https:// URL with #sha256=HEX",
        )
    return Input(path, kind, path.resolve().as_uri(), sha256_file(path))


def _inputs_from_catalog(recipe: Recipe, source_name: str | None) -> list[Input]:
    source = recipe.source(source_name)
    _log.info("%s: resolving %s (%s)", recipe.name, source.name, source.kind)
    inputs = []
    for pkg in resolve(source, get_document):
        host = urlsplit(pkg.url).netloc
        _log.info("  %s %s from %s", pkg.name, pkg.version, host)
        inputs.append(Input(fetch(pkg.url, pkg.sha256), pkg.kind, pkg.url, pkg.sha256))
    return inputs


def _build_one(catalog: Catalog, recipe: Recipe, args: argparse.Namespace, out: Path) -> str:
    if args.from_:
        inputs = [parse_from(spec) for spec in args.from_]
        source = recipe.source(args.source) if args.source else None
    else:
        inputs = _inputs_from_catalog(recipe, args.source)
        source = recipe.source(args.source)
    with temporary_tree("build") as work:
        plan = plan_build(
            recipe, inputs, catalog=catalog, workdir=Path(work) / "unpacked", source=source
        )
        if args.plan:
            return plan.describe()
        return str(build(plan, out))


def run(args: argparse.Namespace) -> int:
    """Exit status: 0 every wheel built (or planned), 2 otherwise (an error is raised)."""
    catalog = load_catalog()
    if args.all and args.runtimes:
        raise FromSpecError(
            "give RUNTIME names or --all, not both", hint="drop --all, or the RUNTIME names"
        )
    if args.all:
        recipes = list(catalog.in_dependency_order(sorted(catalog.recipes)))
    elif args.runtimes:
        recipes = [catalog.get(name) for name in args.runtimes]
    else:
        raise FromSpecError(
            "name at least one RUNTIME (or --all)",
            hint=f"e.g. nativelib build gomp; the runtimes: {', '.join(sorted(catalog.recipes))}",
        )
    if args.from_ and len(recipes) != 1:
        raise FromSpecError(
            "--from builds one RUNTIME; name exactly one",
            hint="run nativelib build once per RUNTIME, each with its own --from",
        )
    out = Path(args.wheel_dir)
    for recipe in recipes:
        try:
            print(_build_one(catalog, recipe, args, out))
        except BuildError:
            raise
        except NativeLibError as e:
            raise BuildError(recipe.name, e.message, hint=e.hint) from e
    return 0
