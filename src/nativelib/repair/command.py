"""``nativelib repair WHEEL... [-w OUTDIR] [--runtime ...] [--plan] [--add-preload]``."""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from nativelib.catalog import Catalog, load_catalog
from nativelib.errors import NativeLibError, RepairError, ResolutionError
from nativelib.repair.core import Bounds, RepairPlan, apply_repair, plan_repair
from nativelib.repair.elfpatch import Editor, find_patchelf, patchelf_editor
from nativelib.resolver import candidates
from nativelib.resolver.command import candidate_source
from nativelib.resolver.host import detect_host
from nativelib.resolver.model import Requirement
from nativelib.resolver.provider import lower_bounds
from nativelib.wheelfile.read import read_wheel

__all__ = ["repair_wheel", "resolver_bounds", "run"]


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
    with tempfile.TemporaryDirectory(prefix="nativelib-repair-") as tmp:
        contents = read_wheel(Path(wheel), Path(tmp))
        plan = plan_repair(
            contents, catalog, runtimes=runtimes, bounds=bounds, add_preload=add_preload
        )
        if plan_only or not plan.changes_anything:
            return plan, None
        if editor is None:
            binary, _version = find_patchelf()
            editor = patchelf_editor(binary)
        return plan, apply_repair(plan, Path(out_dir), editor)


def _runtimes(values: Sequence[str], catalog: Catalog) -> set[str] | None:
    if not values:
        return None
    out = set()
    for value in values:
        for name in filter(None, (v.strip() for v in value.split(","))):
            out.add(catalog.get(name).name)
    return out


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
        except NativeLibError as e:
            print(f"error: {e}", file=sys.stderr)
            status = 2
            continue
        name = Path(wheel).name
        if not plan.changes_anything:
            print(f"{name}: vendors no runtime library; unchanged", file=sys.stderr)
            if not args.plan:
                target = out_dir / name
                if target.resolve() != Path(wheel).resolve():
                    out_dir.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(wheel, target)
                print(target)
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
