"""``nativelib repair WHEEL... [-w OUTDIR] [--runtime ...] [--plan] [--add-preload]``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from nativelib.catalog import Catalog, load_catalog
from nativelib.errors import (
    NativeLibError,
    RepairError,
    ResolutionError,
    WheelError,
    report_error,
)
from nativelib.leftovers import temporary_tree
from nativelib.repair.core import Bounds, RepairPlan, apply_repair, plan_repair
from nativelib.repair.elfpatch import Editor, find_patchelf, patchelf_editor
from nativelib.resolver import candidates
from nativelib.resolver.candidates import candidate_source
from nativelib.resolver.host import detect_host
from nativelib.resolver.model import Requirement
from nativelib.resolver.provider import lower_bounds
from nativelib.wheelfile import copy_wheel, validate_layout
from nativelib.wheelfile.read import read_wheel

__all__ = ["configure_parser", "repair_wheel", "resolver_bounds", "run"]


def resolver_bounds(source: candidates.Source, arch: str) -> Bounds:
    """Lower bounds from the resolver: for each requirement, the oldest candidate whose
    version definitions cover the nodes. A distribution with no candidate at all gets no
    bound; one whose candidates all lack a node is an error (devendoring would break)."""

    def bounds(requirements: Sequence[Requirement]) -> Mapping[str, str]:
        known = [r for r in requirements if source(r.name)]
        if not known:
            return {}
        try:
            lowest = lower_bounds(known, source, arch)
        except ResolutionError as e:
            raise RepairError(
                "runtime wheels",
                "; ".join(e.explanation)
                + " (the shared runtime would not satisfy the wheel: nothing was written)",
            ) from e
        return {r.name: str(lowest.chosen[r.name].version) for r in known}

    return bounds


def _extracted(name: str) -> bool:
    """The members repair reads from disk besides the ELF files (which are always
    extracted): the .dist-info files, files named like shared objects (to refuse those
    that are not ELF), and ``__init__.py`` files (``--add-preload`` edits them). The
    others are verified as they stream by and copied compressed into the output."""
    base = name.rsplit("/", 1)[-1]
    return ".dist-info/" in name or base == "__init__.py" or ".so" in base


def repair_wheel(
    wheel: Path,
    out_dir: Path,
    *,
    catalog: Catalog,
    bounds: Bounds,
    editor: Editor | None = None,
    runtimes: set[str] | None = None,
    add_preload: bool = False,
    plan_only: bool = False,
) -> tuple[RepairPlan, Path | None]:
    """Plan the repair of ``wheel`` and (unless ``plan_only``) write the result into
    ``out_dir``; returns the plan and the written wheel (None when nothing was written)."""
    try:
        validate_layout(Path(wheel))
    except WheelError as e:
        raise RepairError(e.path, e.reason) from e
    with temporary_tree("repair") as tmp:
        contents = read_wheel(Path(wheel), Path(tmp), wanted=_extracted)
        plan = plan_repair(
            contents, catalog, runtimes=runtimes, bounds=bounds, add_preload=add_preload
        )
        if plan_only or not plan.changes_anything:
            return plan, None
        if editor is None:
            binary, _version = find_patchelf()
            editor = patchelf_editor(binary)
        return plan, apply_repair(plan, Path(out_dir), editor)


def _copy_unchanged(wheel: Path, out_dir: Path) -> Path:
    """``wheel`` copied into ``out_dir`` (nothing to do when it is there already), through
    the writer's temporary file, validated and renamed into place."""
    target = out_dir / wheel.name
    if target.resolve() == wheel.resolve():
        return target
    try:
        return copy_wheel(wheel, out_dir)
    except WheelError as e:
        raise RepairError(e.path, e.reason) from e


def _runtimes(values: Sequence[str], catalog: Catalog) -> set[str] | None:
    if not values:
        return None
    out = set()
    for value in values:
        for name in filter(None, (v.strip() for v in value.split(","))):
            out.add(catalog.get(name).name)
    return out


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Find the runtime libraries a wheel vendors (auditwheel's pkg.libs/libgomp-<hash>"
        ".so.1.0.0, or unrenamed copies such as torch/lib/libgomp.so.1), point the shared "
        "objects that need them at the shared runtime (DT_NEEDED back to the canonical "
        "soname, an $ORIGIN-relative RUNPATH to nativelib.prefix/lib), remove the copies "
        "and add Requires-Dist on the runtime distributions. The input is never modified. "
        "Exit status: 0 repaired (or nothing to repair), 2 error (nothing written)."
    )
    parser.add_argument("wheels", nargs="+", metavar="WHEEL")
    parser.add_argument(
        "-w", "--wheel-dir", default="wheelhouse", metavar="OUTDIR",
        help="where repaired wheels go (default: wheelhouse)",
    )  # fmt: skip
    parser.add_argument(
        "--runtime", action="append", metavar="NAMES",
        help="only these runtimes, e.g. gomp,gfortran5 (default: every runtime found)",
    )  # fmt: skip
    parser.add_argument("--plan", action="store_true", help="print every edit; write nothing")
    parser.add_argument(
        "--add-preload", action="store_true",
        help="also add a hook module that calls nativelib.load() from the package's __init__.py "
        "(for --user, --target and other layouts that RUNPATH cannot reach)",
    )  # fmt: skip
    parser.add_argument(
        "--find-links", action="append", metavar="DIR", help="runtime wheels (for bounds)"
    )
    parser.add_argument(
        "--index-url", action="append", metavar="URL", help="an index of runtime wheels"
    )


def run(args: argparse.Namespace) -> int:
    """Exit status: 0 every wheel repaired (or left alone), 2 an error (nothing written
    for that wheel)."""
    catalog = load_catalog()
    runtimes = _runtimes(args.runtime or (), catalog)
    source = candidate_source(args.find_links, args.index_url, lowest=True)
    bounds = resolver_bounds(source, detect_host().arch)
    out_dir = Path(args.wheel_dir)
    status = 0
    for wheel in args.wheels:
        try:
            plan, written = repair_wheel(
                Path(wheel), out_dir, catalog=catalog, bounds=bounds, runtimes=runtimes,
                add_preload=args.add_preload, plan_only=args.plan,
            )  # fmt: skip
            name = Path(wheel).name
            if not plan.changes_anything:
                print(f"{name}: vendors no runtime library; unchanged", file=sys.stderr)
                if not args.plan:
                    print(_copy_unchanged(Path(wheel), out_dir))
                continue
        except NativeLibError as e:
            report_error(e)
            status = 2
            continue
        if args.plan:
            print(f"{name} -> {out_dir / plan.filename}")
            for line in plan.describe():
                print(f"  {line}")
            continue
        for line in plan.describe():
            print(f"  {line}", file=sys.stderr)
        print(
            f"{name}: removed {len(plan.copies)} vendored "
            f"cop{'y' if len(plan.copies) == 1 else 'ies'} ({plan.bytes_removed} bytes)",
            file=sys.stderr,
        )
        print(written)
    return status
