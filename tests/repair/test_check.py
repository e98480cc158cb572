"""``nativelib check`` on real wheels: an OpenMP extension compiled here, as a raw
``pip wheel`` would leave it (exit 1, each problem named), after the real ``auditwheel
repair`` (exit 1: a vendored copy), after ``nativelib repair`` (exit 0), and damaged on
purpose (a bound below the nodes, an external library not grafted); text and JSON (the
committed schema, validated with jsonschema)."""

from __future__ import annotations

import json
import shutil
import subprocess
import zipfile
from importlib import resources
from pathlib import Path

import jsonschema
import pytest

from nativelib.cli import main
from nativelib_testing import (
    auditwheel_repair,
    host_runtime_wheels,
    omp_wheel,
    write_wheel_members,
)

pytestmark = pytest.mark.skipif(
    shutil.which("dpkg-deb") is None or shutil.which("gcc") is None,
    reason="needs dpkg-deb and gcc to build runtime wheels and extensions",
)

SCHEMA = json.loads(
    resources.files("nativelib").joinpath("data/schemas/check.schema.json").read_text("utf-8")
)


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("check")
    runtimes = host_runtime_wheels(root / "runtimes")
    raw = omp_wheel(root / "raw")
    vendored = auditwheel_repair(raw, root / "auditwheel")
    out = root / "repaired"
    argv = ["repair", str(raw), "-w", str(out), "--find-links", str(runtimes[0].parent)]
    assert main(argv) == 0
    (repaired,) = out.glob("*.whl")
    return {"raw": raw, "vendored": vendored, "repaired": repaired,
            "wheelhouse": runtimes[0].parent, "root": root}  # fmt: skip


def _check(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    status = main(["check", *argv])
    return status, capsys.readouterr().out


def _json(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, object]]:
    status, out = _check(capsys, "--json", *argv)
    doc = json.loads(out)
    jsonschema.validate(doc, SCHEMA)
    return status, doc


def _kinds(report: dict[str, object]) -> dict[str, list[object]]:
    out: dict[str, list[object]] = {}
    for p in report["problems"]:  # type: ignore[attr-defined]
        out.setdefault(p["kind"], []).append(p["member"])
    return out


def test_a_raw_wheel_has_each_problem_named(
    wheels: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    status, text = _check(capsys, str(wheels["raw"]), "--find-links", str(wheels["wheelhouse"]))
    assert status == 1
    assert "problem missing-requirement: the files need nativelib-gomp" in text
    assert "problem runpath: ompdemo/_omp." in text and "nativelib.prefix/lib" in text
    assert "problem platform-tag: tagged linux_x86_64, which PyPI refuses" in text
    assert "consistent with manylinux_" in text and "requires        nativelib-gomp>=" in text

    status, doc = _json(capsys, str(wheels["raw"]), "--find-links", str(wheels["wheelhouse"]))
    assert status == 1
    (report,) = doc["wheels"]  # type: ignore[misc]
    kinds = _kinds(report)
    assert set(kinds) == {"missing-requirement", "runpath", "platform-tag"}
    assert kinds["runpath"] == [next(n for n in zipfile.ZipFile(wheels["raw"]).namelist()
                                     if n.endswith(".so"))]  # fmt: skip
    assert report["cross_checked"] is True
    assert report["requirements"][0].startswith("nativelib-gomp>=")


def test_an_auditwheel_repaired_wheel_vendors_libgomp(
    wheels: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    status, doc = _json(capsys, str(wheels["vendored"]), "--find-links", str(wheels["wheelhouse"]))
    assert status == 1
    (report,) = doc["wheels"]  # type: ignore[misc]
    kinds = _kinds(report)
    (copy,) = kinds["vendored-copy"]
    assert str(copy).startswith("ompdemo.libs/libgomp-")
    assert "missing-requirement" in kinds and "runpath" in kinds
    assert "external-library" not in kinds


def test_a_nativelib_repaired_wheel_is_clean(
    wheels: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    status, text = _check(
        capsys, str(wheels["repaired"]), "--find-links", str(wheels["wheelhouse"])
    )
    assert status == 0, text
    assert "ok: no problems" in text
    status, doc = _json(capsys, str(wheels["repaired"]), "--find-links", str(wheels["wheelhouse"]))
    assert status == 0
    (report,) = doc["wheels"]  # type: ignore[misc]
    assert report["problems"] == []
    assert report["consistent_tag"] in report["tags"]
    assert report["declared"] == report["requirements"]


def _rewrite(src: Path, dest: Path, change: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(src) as zf:
        members = {n: zf.read(n) for n in zf.namelist() if not n.endswith("RECORD")}
    members.update(change)
    return write_wheel_members(dest / src.name, members)


def test_a_bound_below_the_nodes_needed(
    wheels: dict[str, Path], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    src = wheels["repaired"]
    with zipfile.ZipFile(src) as zf:
        name = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
        text = zf.read(name).decode()
    lines = [
        "Requires-Dist: nativelib-gomp>=1.0" if ln.startswith("Requires-Dist: nativelib-gomp")
        else ln
        for ln in text.split("\n")
    ]  # fmt: skip
    bad = _rewrite(src, tmp_path, {name: "\n".join(lines).encode()})
    status, doc = _json(capsys, str(bad))
    assert status == 1
    (report,) = doc["wheels"]  # type: ignore[misc]
    (problem,) = report["problems"]
    assert problem["kind"] == "bound-too-low"
    assert "nativelib-gomp>=1.0 allows versions below" in problem["message"]


def test_an_external_library_that_is_not_grafted(
    wheels: dict[str, Path], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """An extension NEEDs libfoo.so.1 (compiled here), which the wheel does not carry."""
    (tmp_path / "foo.c").write_text("int foo(void){return 1;}\n")
    (tmp_path / "ext.c").write_text("int foo(void);\nint ext(void){return foo();}\n")
    subprocess.run(["gcc", "-shared", "-fPIC", "-o", str(tmp_path / "libfoo.so.1"),
                    "-Wl,-soname,libfoo.so.1", str(tmp_path / "foo.c")], check=True)  # fmt: skip
    subprocess.run(["gcc", "-shared", "-fPIC", "-o", str(tmp_path / "_ext.so"),
                    str(tmp_path / "ext.c"), str(tmp_path / "libfoo.so.1")], check=True)  # fmt: skip
    bad = _rewrite(wheels["repaired"], tmp_path / "out",
                   {"ompdemo/_ext.so": (tmp_path / "_ext.so").read_bytes()})  # fmt: skip
    status, text = _check(capsys, str(bad), "--find-links", str(wheels["wheelhouse"]))
    assert status == 1
    assert "problem external-library: ompdemo/_ext.so: NEEDs libfoo.so.1" in text


def test_bad_input_is_exit_2_and_the_others_are_still_checked(
    wheels: dict[str, Path], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    junk = tmp_path / "junk-1.0-py3-none-any.whl"
    junk.write_bytes(b"not a zip")
    status = main(["check", str(junk), str(wheels["repaired"]),
                   "--find-links", str(wheels["wheelhouse"])])  # fmt: skip
    captured = capsys.readouterr()
    assert status == 2
    assert captured.err.startswith(f"error: {junk}: ") and "Traceback" not in captured.err
    assert "ok: no problems" in captured.out
