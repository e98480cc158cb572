"""``nativelib build``: runtime wheels from the catalog's sources or from given archives."""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

from nativelib.catalog import Catalog, Recipe, load_catalog
from nativelib.errors import NativeLibError
from nativelib.net.download import fetch, get_document
from nativelib.runtime_wheels.builder import BuildError, Input, build, plan_build, sha256_file
from nativelib.sources import get_kind, kind_names, resolve

__all__ = ["FromSpecError", "parse_from", "run"]


class FromSpecError(NativeLibError):
    """A ``--from KIND:URL_OR_PATH`` value that cannot be used."""


def parse_from(spec: str) -> Input:
    """``KIND:PATH`` (a local archive) or ``KIND:URL#sha256=HEX`` (downloaded, pinned)."""
    kind, sep, target = spec.partition(":")
    if not sep or not target:
        raise FromSpecError(
            f"--from {spec!r}: expected KIND:URL_OR_PATH (kinds: {', '.join(kind_names())})"
        )
    if get_kind(kind) is None:
        raise FromSpecError(
            f"--from {spec!r}: unknown kind {kind!r} (kinds: {', '.join(kind_names())})"
        )
    if target.startswith(("https://", "http://")):
        url, _, fragment = target.partition("#")
        if not fragment.startswith("sha256="):
            raise FromSpecError(f"--from {spec!r}: a URL needs its sha256: {url}#sha256=HEX")
        sha = fragment[len("sha256=") :]
        print(f"downloading {url}", file=sys.stderr)
        return Input(fetch(url, sha), kind, url, sha.lower())
    path = Path(target)
    if not path.is_file():
        raise FromSpecError(f"--from {spec!r}: no such file: {target!r}")
    return Input(path, kind, path.resolve().as_uri(), sha256_file(path))


def _inputs_from_catalog(recipe: Recipe, source_name: str | None) -> list[Input]:
    source = recipe.source(source_name)
    print(f"{recipe.name}: resolving {source.name} ({source.kind})", file=sys.stderr)
    inputs = []
    for pkg in resolve(source, get_document):
        host = urlsplit(pkg.url).netloc
        print(f"  {pkg.name} {pkg.version} from {host}", file=sys.stderr)
        inputs.append(Input(fetch(pkg.url, pkg.sha256), pkg.kind, pkg.url, pkg.sha256))
    return inputs


def _build_one(catalog: Catalog, recipe: Recipe, args: argparse.Namespace, out: Path) -> str:
    if args.from_:
        inputs = [parse_from(spec) for spec in args.from_]
        source = recipe.source(args.source) if args.source else None
    else:
        inputs = _inputs_from_catalog(recipe, args.source)
        source = recipe.source(args.source)
    with tempfile.TemporaryDirectory(prefix="nativelib-build-") as work:
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
        raise FromSpecError("give RUNTIME names or --all, not both")
    if args.all:
        recipes = list(catalog.in_dependency_order(sorted(catalog.recipes)))
    elif args.runtimes:
        recipes = [catalog.get(name) for name in args.runtimes]
    else:
        raise FromSpecError("name at least one RUNTIME (or --all)")
    if args.from_ and len(recipes) != 1:
        raise FromSpecError("--from builds one RUNTIME; name exactly one")
    out = Path(args.output)
    for recipe in recipes:
        try:
            print(_build_one(catalog, recipe, args, out))
        except BuildError:
            raise
        except NativeLibError as e:
            raise BuildError(recipe.name, str(e)) from e
    return 0
