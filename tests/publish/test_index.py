"""``nativelib index``: the static simple repository of a directory of wheels and sdists
(offline: the wheels are written here by nativelib's own writer, or broken by hand)."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import tarfile
import threading
import zipfile
from importlib import resources
from pathlib import Path

import jsonschema
import pytest
from hypothesis import given
from hypothesis import strategies as st

from nativelib.cli import main
from nativelib.net.simple import parse_simple_index
from nativelib.publish.index import (
    STATE_FILE,
    IndexInputError,
    build_index,
    plan_index,
    read_yanked_file,
)
from nativelib.wheelfile import WheelFile, WheelPlan, write_wheel
from nativelib_testing import write_wheel_members


def small_wheel(
    dest: Path,
    name: str,
    version: str,
    *,
    requires_python: str | None = None,
    tag: str = "py3-none-any",
) -> Path:
    module = name.lower().replace("-", "_").replace(".", "_")
    plan = WheelPlan(
        name=name,
        version=version,
        tag=tag,
        files=(WheelFile(f"{module}/__init__.py", data=f"VERSION = {version!r}\n".encode()),),
        summary=f"the {name} test distribution",
        requires_python=requires_python,
    )
    return write_wheel(plan, dest)


def sdist(dest: Path, name: str, version: str, pkg_info_name: str | None = None) -> Path:
    """A real .tar.gz sdist whose PKG-INFO says ``pkg_info_name`` (default ``name``)."""
    top = f"{name.replace('-', '_')}-{version}"
    path = dest / f"{top}.tar.gz"
    pkg_info = (
        f"Metadata-Version: 2.1\nName: {pkg_info_name or name}\nVersion: {version}\n"
        "Requires-Python: >=3.9\n"
    ).encode()
    with tarfile.open(path, "w:gz") as tar:
        for member, data in ((f"{top}/setup.py", b"# empty\n"), (f"{top}/PKG-INFO", pkg_info)):
            info = tarfile.TarInfo(member)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def tree(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def mtimes(root: Path) -> dict[str, int]:
    return {
        str(p.relative_to(root)): p.stat().st_mtime_ns
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture
def dist_dir(tmp_path: Path) -> Path:
    d = tmp_path / "dist"
    d.mkdir()
    small_wheel(d, "Foo_Bar", "1.0", requires_python=">=3.8,<4")
    small_wheel(d, "foo-bar", "1.1", tag="py2.py3-none-any")
    small_wheel(d, "baz", "2.0")
    sdist(d, "baz", "2.0")
    return d


# ---------------------------------------------------------------------------- the pages


def test_pages_links_hashes_and_metadata(
    dist_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["index", str(dist_dir)]) == 0
    out = dist_dir / "simple"
    assert sorted(os.listdir(out)) == [STATE_FILE, "baz", "foo-bar", "index.html", "index.json"]
    # The root page: normalized names, relative links.
    root = (out / "index.html").read_text()
    assert '<meta name="pypi:repository-version" content="1.1">' in root
    assert '<a href="baz/">baz</a>' in root and '<a href="foo-bar/">foo-bar</a>' in root
    assert json.loads((out / "index.json").read_text()) == {
        "meta": {"api-version": "1.1"},
        "projects": [{"name": "baz"}, {"name": "foo-bar"}],
    }
    # A project page, read by nativelib's own parser as a client would (HTML and JSON).
    page_url = (out / "foo-bar").as_uri() + "/"
    html = (out / "foo-bar" / "index.html").read_bytes()
    assert b'data-requires-python="&gt;=3.8,&lt;4"' in html
    files = parse_simple_index(html, "text/html", page_url)
    files_json = parse_simple_index(
        (out / "foo-bar" / "index.json").read_bytes(),
        "application/vnd.pypi.simple.v1+json",
        page_url,
    )
    assert files == files_json
    assert [f.filename for f in files] == [
        "foo_bar-1.0-py3-none-any.whl",
        "foo_bar-1.1-py2.py3-none-any.whl",
    ]
    for f in files:
        wheel = dist_dir / f.filename
        assert f.url == wheel.as_uri()  # ../../<file>, beside the pages
        assert f.sha256 == hashlib.sha256(wheel.read_bytes()).hexdigest()
        assert not f.yanked
        # PEP 658: the METADATA beside the wheel, its sha256 on the page (both spellings).
        meta = Path(f"{wheel}.metadata").read_bytes()
        with zipfile.ZipFile(wheel) as zf:
            assert meta == zf.read(f"foo_bar-{f.filename.split('-')[1]}.dist-info/METADATA")
        assert f.metadata == hashlib.sha256(meta).hexdigest()
        assert f'data-dist-info-metadata="sha256={f.metadata}"'.encode() in html
    doc = json.loads((out / "foo-bar" / "index.json").read_text())
    assert doc["name"] == "foo-bar" and doc["versions"] == ["1.0", "1.1"]
    assert doc["files"][0]["requires-python"] == ">=3.8,<4"
    assert doc["files"][0]["size"] == (dist_dir / "foo_bar-1.0-py3-none-any.whl").stat().st_size
    assert doc["files"][0]["dist-info-metadata"] == doc["files"][0]["core-metadata"]
    # The sdist: indexed with its Requires-Python, no .metadata file.
    baz = json.loads((out / "baz" / "index.json").read_text())["files"]
    assert [(f["filename"], f["core-metadata"]) for f in baz] == [
        ("baz-2.0-py3-none-any.whl", {"sha256": baz[0]["core-metadata"]["sha256"]}),
        ("baz-2.0.tar.gz", False),
    ]
    assert baz[1]["requires-python"] == ">=3.9"
    assert not (dist_dir / "baz-2.0.tar.gz.metadata").exists()
    captured = capsys.readouterr()
    assert "foo-bar: 2 files, 1.0, 1.1" in captured.out
    assert "9 written, 0 removed, 0 unchanged (4 files hashed)" in captured.err


def test_output_elsewhere_links_back(dist_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "site" / "simple"
    result = build_index(dist_dir, out)
    assert result.out_dir == out and not (dist_dir / "simple").exists()
    files = parse_simple_index(
        (out / "baz" / "index.html").read_bytes(), "text/html", (out / "baz").as_uri() + "/"
    )
    assert {f.url for f in files} == {(dist_dir / f.filename).as_uri() for f in files}
    assert '"../../../dist/baz-2.0.tar.gz"' in (out / "baz" / "index.json").read_text()


def test_yanked_files_and_releases(dist_dir: Path, tmp_path: Path) -> None:
    listed = tmp_path / "yanked.txt"
    listed.write_text("# yanked\nfoo-bar==1.0 broken <build>\n\nbaz-2.0.tar.gz\n", encoding="utf-8")
    assert read_yanked_file(listed) == {"foo-bar==1.0": "broken <build>", "baz-2.0.tar.gz": ""}
    assert main(["index", str(dist_dir), "--yanked", str(listed)]) == 0
    out = dist_dir / "simple"
    html = (out / "foo-bar" / "index.html").read_text()
    assert html.count("data-yanked") == 1 and 'data-yanked="broken &lt;build&gt;"' in html
    files = {
        f["filename"]: f["yanked"]
        for f in json.loads((out / "baz/index.json").read_text())["files"]
    }
    assert files == {"baz-2.0-py3-none-any.whl": False, "baz-2.0.tar.gz": True}
    # Un-yanking rewrites the two pages only.
    listed.write_text("")
    result = build_index(dist_dir, yanked=read_yanked_file(listed))
    assert sorted(str(p.relative_to(out)) for p in result.written) == [
        "baz/index.html", "baz/index.json", "foo-bar/index.html", "foo-bar/index.json",
    ]  # fmt: skip
    assert "data-yanked" not in (out / "foo-bar" / "index.html").read_text()


@pytest.mark.parametrize("entry", ["foo-bar==9.9", "nothing-1.0-py3-none-any.whl"])
def test_a_yanked_entry_that_matches_nothing_is_refused(
    dist_dir: Path, tmp_path: Path, entry: str, capsys: pytest.CaptureFixture[str]
) -> None:
    listed = tmp_path / "yanked.txt"
    listed.write_text(f"{entry} why\n")
    assert main(["index", str(dist_dir), "--yanked", str(listed)]) == 2
    err = capsys.readouterr().err
    assert f"error: {entry}: yanked entry matches no distribution in {dist_dir}" in err
    assert "hint: " in err
    assert not (dist_dir / "simple").exists()


# ---------------------------------------------------------------------- determinism


def test_deterministic_whatever_the_paths_and_mtimes(dist_dir: Path, tmp_path: Path) -> None:
    build_index(dist_dir)
    other = tmp_path / "elsewhere" / "dist"
    other.mkdir(parents=True)
    for p in sorted(dist_dir.glob("*"), reverse=True):  # another order, other mtimes
        if p.is_file() and not p.name.endswith(".metadata"):
            shutil.copyfile(p, other / p.name)
            os.utime(other / p.name, (1, 1))
    build_index(other)
    first, second = tree(dist_dir / "simple"), tree(other / "simple")
    del first[STATE_FILE], second[STATE_FILE]  # (it holds inodes and mtimes)
    assert first == second
    assert b"elsewhere" not in b"".join(second.values())


def test_a_second_run_writes_nothing(dist_dir: Path) -> None:
    build_index(dist_dir)
    before = mtimes(dist_dir)
    result = build_index(dist_dir)
    assert result.written == () and result.removed == () and result.hashed == 0
    after = mtimes(dist_dir)
    del before[f"simple/{STATE_FILE}"], after[f"simple/{STATE_FILE}"]
    assert after == before


# ---------------------------------------------------------------------- incremental


def test_adding_a_wheel_rewrites_its_project_only(dist_dir: Path) -> None:
    build_index(dist_dir)
    out = dist_dir / "simple"
    before = tree(dist_dir)
    # A new version of a project: its .metadata and its two pages; the root is the same.
    small_wheel(dist_dir, "baz", "2.1")
    result = build_index(dist_dir)
    assert result.hashed == 1
    assert sorted(str(p.relative_to(dist_dir)) for p in result.written) == [
        "baz-2.1-py3-none-any.whl.metadata", "simple/baz/index.html", "simple/baz/index.json",
    ]  # fmt: skip
    # A new project: its pages, and the root pages.
    small_wheel(dist_dir, "qux", "0.1")
    result = build_index(dist_dir)
    assert result.hashed == 1
    assert sorted(str(p.relative_to(dist_dir)) for p in result.written) == [
        "qux-0.1-py3-none-any.whl.metadata", "simple/index.html", "simple/index.json",
        "simple/qux/index.html", "simple/qux/index.json",
    ]  # fmt: skip
    after = tree(dist_dir)
    unchanged = [k for k in before if not k.startswith(("simple/baz/", "simple/index", "simple/."))]
    assert all(after[k] == before[k] for k in unchanged)
    assert "qux/" in (out / "index.html").read_text()


def test_removing_a_wheel_removes_what_was_written_for_it(dist_dir: Path) -> None:
    build_index(dist_dir)
    (dist_dir / "foo_bar-1.0-py3-none-any.whl").unlink()
    (dist_dir / "foo_bar-1.1-py2.py3-none-any.whl").unlink()
    stranger = dist_dir / "simple" / "foo-bar" / "README"  # not ours: left alone
    stranger.write_text("kept")
    result = build_index(dist_dir)
    assert sorted(str(p.relative_to(dist_dir)) for p in result.removed) == [
        "foo_bar-1.0-py3-none-any.whl.metadata",
        "foo_bar-1.1-py2.py3-none-any.whl.metadata",
        "simple/foo-bar/index.html",
        "simple/foo-bar/index.json",
    ]
    assert stranger.read_text() == "kept"
    assert "foo-bar" not in (dist_dir / "simple" / "index.html").read_text()


def test_a_changed_file_is_hashed_again(dist_dir: Path) -> None:
    build_index(dist_dir)
    wheel = dist_dir / "baz-2.0-py3-none-any.whl"
    old = (dist_dir / "simple" / "baz" / "index.html").read_text()
    wheel.unlink()
    small_wheel(dist_dir, "baz", "2.0", requires_python=">=3.12")  # same name, new content
    result = build_index(dist_dir)
    assert result.hashed == 1
    new = (dist_dir / "simple" / "baz" / "index.html").read_text()
    assert new != old and hashlib.sha256(wheel.read_bytes()).hexdigest() in new
    assert 'data-requires-python="&gt;=3.12"' in new


def test_a_lost_metadata_file_or_a_broken_state_is_mended(dist_dir: Path) -> None:
    build_index(dist_dir)
    good = tree(dist_dir)
    meta = dist_dir / "baz-2.0-py3-none-any.whl.metadata"
    meta.write_bytes(b"garbage")
    (dist_dir / "simple" / "baz" / "index.html").unlink()
    result = build_index(dist_dir)
    assert result.hashed == 0  # the state still knew the files
    assert {p.name for p in result.written} == {meta.name, "index.html"}
    (dist_dir / "simple" / STATE_FILE).write_text("{not json")
    result = build_index(dist_dir)
    assert result.hashed == 4 and result.written == ()
    now = tree(dist_dir)
    del now[f"simple/{STATE_FILE}"], good[f"simple/{STATE_FILE}"]
    assert now == good


def test_dry_run_writes_nothing(dist_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = tree(dist_dir)
    assert main(["index", str(dist_dir), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert f"write  {dist_dir}/simple/baz/index.html" in out
    assert "4 files in 2 projects; 9 to write, 0 to remove, 0 unchanged" in out
    assert tree(dist_dir) == before


def test_json_summary(dist_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (dist_dir / "notes.txt").write_text("skipped")
    assert main(["index", str(dist_dir), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    schema = json.loads(
        resources.files("nativelib").joinpath("data/schemas/index.schema.json").read_text()
    )
    jsonschema.validate(doc, schema)
    assert doc["skipped"] == [
        {
            "file": str(dist_dir / "notes.txt"),
            "reason": "not a distribution (a wheel or a .tar.gz sdist)",
        }
    ]
    assert doc["version"] == 1 and doc["url"] == (dist_dir / "simple").as_uri()
    assert sorted(doc["projects"]) == ["baz", "foo-bar"]
    entry = doc["projects"]["foo-bar"][0]
    assert entry["requires_python"] == ">=3.8,<4" and entry["yanked"] is None
    assert doc["hashed"] == 4 and len(doc["written"]) == 9


# -------------------------------------------------------------------------- bad input


def _broken_record(dest: Path) -> Path:
    """A wheel whose RECORD has the wrong hash for its module."""
    good = small_wheel(dest / "tmp", "broken", "1.0")
    with zipfile.ZipFile(good) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    record = "broken-1.0.dist-info/RECORD"
    members[record] = members[record].replace(b"sha256=", b"sha256=AAAA", 1)
    out = dest / good.name
    with zipfile.ZipFile(out, "w") as zf:
        for n, data in members.items():
            zf.writestr(n, data)
    shutil.rmtree(dest / "tmp")
    return out


def _file(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _wrong_metadata(dest: Path) -> Path:
    """A wheel named 2.0 whose .dist-info and METADATA say 1.0 of another project."""
    meta = b"Metadata-Version: 2.1\nName: other\nVersion: 1.0\n"
    return write_wheel_members(
        dest / "mismatch-2.0-py3-none-any.whl",
        {
            "mismatch/__init__.py": b"",
            "mismatch-2.0.dist-info/METADATA": meta,
            "mismatch-2.0.dist-info/WHEEL": b"Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        },
    )


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (_broken_record, "RECORD check failed: "),
        (_wrong_metadata, "describes other 1.0, not the file name's mismatch 2.0"),
        (lambda d: _file(d / "notzip-1.0-py3-none-any.whl", b"PK?"), "not a zip file"),
        (lambda d: _file(d / "bad_name.whl", b""), "not a wheel file name"),
        (
            lambda d: sdist(d, "sd", "1.0", pkg_info_name="other"),
            "PKG-INFO describes other 1.0, not the file name's sd 1.0",
        ),
        (lambda d: _file(d / "sd-1.0.tar.gz", b"not gzip"), "not a gzipped tar archive"),
    ],
    ids=[
        "broken-record",
        "metadata-mismatch",
        "not-a-zip",
        "bad-wheel-name",
        "sdist-mismatch",
        "not-gzip",
    ],
)
def test_a_bad_distribution_is_refused_and_nothing_written(
    dist_dir: Path, make: object, reason: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # An index already there stays as it was.
    build_index(dist_dir)
    before, before_mtimes = tree(dist_dir), mtimes(dist_dir)
    bad = make(dist_dir)  # type: ignore[operator]
    assert main(["index", str(dist_dir)]) == 2
    err = capsys.readouterr().err
    assert f"error: {bad}: " in err and reason in err, err
    assert "Traceback" not in err
    after, after_mtimes = tree(dist_dir), mtimes(dist_dir)
    del after[bad.name], after_mtimes[bad.name]
    assert after == before and after_mtimes == before_mtimes
    with pytest.raises(IndexInputError) as e:
        plan_index(dist_dir)
    assert e.value.subject == str(bad)


def test_other_files_are_skipped(dist_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (dist_dir / "SHA256SUMS.txt").write_text("x")
    (dist_dir / "old-1.0-py3.9.egg").write_bytes(b"x")
    (dist_dir / "sub").mkdir()
    (dist_dir / ".hidden.whl").write_bytes(b"x")
    assert main(["index", str(dist_dir)]) == 0
    err = capsys.readouterr().err
    assert f"warning: skipped {dist_dir}/old-1.0-py3.9.egg: a legacy distribution format" in err
    assert "SHA256SUMS" not in err  # at INFO only
    assert main(["-v", "index", str(dist_dir)]) == 0
    assert "SHA256SUMS.txt: not a distribution" in capsys.readouterr().err
    assert "old" not in (dist_dir / "simple" / "index.html").read_text()


def test_not_a_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["index", str(tmp_path / "nope")]) == 2
    assert f"error: {tmp_path / 'nope'}: not a directory" in capsys.readouterr().err


def test_an_unwritable_output_is_an_error(
    dist_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    if os.geteuid() == 0:
        blocker = dist_dir / "simple"
        blocker.write_text("a file where the output directory goes")
    else:
        (dist_dir / "simple").mkdir(mode=0o500)
    assert main(["index", str(dist_dir)]) == 2
    err = capsys.readouterr().err
    assert "error: " in err and "cannot write the index" in err and "Traceback" not in err
    assert not list(dist_dir.glob("*.tmp")) and not list(dist_dir.glob(".*.tmp"))


def test_many_files_are_read_by_a_pool_of_processes_with_the_same_result(tmp_path: Path) -> None:
    d = tmp_path / "many"
    d.mkdir()
    for i in range(70):
        small_wheel(d, f"p{i % 7}", f"1.{i}")
    serial, pooled = tmp_path / "serial", tmp_path / "pooled"
    assert build_index(d, serial, jobs=1).hashed == 70
    result = build_index(d, pooled, jobs=2)
    assert result.hashed == 70 and len(result.distributions) == 70
    a, b = tree(serial), tree(pooled)
    del a[STATE_FILE], b[STATE_FILE]
    assert a == b
    # A caller with another thread running reads in its own process (fork is unsafe
    # there, and spawn would run the caller's __main__ again): the same pages.
    done = threading.Event()
    other = threading.Thread(target=done.wait)
    other.start()
    try:
        threaded = tmp_path / "threaded"
        assert build_index(d, threaded, jobs=2).hashed == 70
    finally:
        done.set()
        other.join()
    c = tree(threaded)
    del c[STATE_FILE]
    assert c == a
    # The first bad file in name order is the one named, whichever process read it.
    _file(d / "p0-0.1-py3-none-any.whl", b"not a zip")
    _file(d / "zz-0.1-py3-none-any.whl", b"not a zip either")
    with pytest.raises(IndexInputError) as e:
        plan_index(d, tmp_path / "bad", jobs=2)
    assert e.value.subject == str(d / "p0-0.1-py3-none-any.whl")
    assert not (tmp_path / "bad").exists()


def test_an_edited_page_is_written_again(dist_dir: Path) -> None:
    build_index(dist_dir)
    page = dist_dir / "simple" / "baz" / "index.html"
    good = page.read_bytes()
    page.write_bytes(good.replace(b"baz", b"BAZ"))  # same size, another content
    result = build_index(dist_dir)
    assert result.written == (page,) and page.read_bytes() == good


@given(st.from_regex(r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,20}[A-Za-z0-9])?", fullmatch=True))
def test_project_names_are_normalized_as_packaging_does(name: str) -> None:
    from packaging.utils import canonicalize_name  # noqa: PLC0415

    from nativelib.publish.index import _canonical_name  # noqa: PLC0415

    assert _canonical_name(name) == canonicalize_name(name)


def test_a_tampered_state_file_is_not_trusted(dist_dir: Path, tmp_path: Path) -> None:
    """A project name from the state would become a directory name: one that is not a
    normalized name makes the file be read again (nothing is written outside OUT)."""
    build_index(dist_dir)
    state_path = dist_dir / "simple" / STATE_FILE
    state = json.loads(state_path.read_text())
    escape = tmp_path / "escape"
    state["files"]["baz-2.0-py3-none-any.whl"]["project"] = str(escape)
    state_path.write_text(json.dumps(state))
    result = build_index(dist_dir)
    assert result.hashed == 1 and result.written == ()
    assert not escape.exists()
