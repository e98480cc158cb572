"""The one RECORD reader (nativelib.wheelfile.record), and the cases where its three
earlier copies (repair's reader, the validator through installer, the doctor's substring
search) disagreed: the stricter rule wins in both the validator and repair."""

from __future__ import annotations

import base64
import hashlib
import zipfile
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nativelib.errors import RepairError, WheelError
from nativelib.wheelfile.read import read_wheel, verify_record
from nativelib.wheelfile.record import RecordRow, parse_record
from nativelib.wheelfile.validate import validate_wheel

DIST_INFO = "demo-1.0.dist-info"
RECORD = f"{DIST_INFO}/RECORD"
MEMBERS = {
    "demo/__init__.py": b"x = 1\n",
    f"{DIST_INFO}/METADATA": b"Metadata-Version: 2.1\nName: demo\nVersion: 1.0\n",
    f"{DIST_INFO}/WHEEL": b"Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
}


def _row(name: str, data: bytes, algorithm: str = "sha256") -> str:
    digest = base64.urlsafe_b64encode(hashlib.new(algorithm, data).digest()).rstrip(b"=")
    return f"{name},{algorithm}={digest.decode()},{len(data)}"


def _wheel(
    tmp_path: Path,
    rows: list[str] | None = None,
    extra: dict[str, bytes] | None = None,
) -> Path:
    members = {**MEMBERS, **(extra or {})}
    if rows is None:
        rows = [_row(n, d) for n, d in MEMBERS.items()] + [f"{RECORD},,"]
    path = tmp_path / "demo-1.0-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
        zf.writestr(RECORD, "\n".join(rows) + "\n")
    return path


def _both(path: Path, tmp_path: Path) -> tuple[str, str]:
    """The reasons validate_wheel and repair's reader give for the same wheel."""
    with pytest.raises(WheelError) as validated:
        validate_wheel(path)
    with pytest.raises(RepairError) as read:
        read_wheel(path, tmp_path / "x")
    return validated.value.reason, read.value.reason


def test_parse_record_rows() -> None:
    rows = parse_record('a.py,sha256=AAAA,3\n"b,c.py",sha512=BBBB,10\nd/RECORD,,\n', "w")
    assert rows == {
        "a.py": RecordRow("a.py", "sha256", "AAAA", 3, 1),
        "b,c.py": RecordRow("b,c.py", "sha512", "BBBB", 10, 2),
        "d/RECORD": RecordRow("d/RECORD", None, None, None, 3),
    }


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("a,b\n", "RECORD line 1: expected 3 fields, found 2"),
        ("a.py,,\n\nb.py,,\n", "RECORD line 2: expected 3 fields, found 0"),
        (",,\n", "RECORD line 1: the path is empty"),
        ("a.py,,\na.py,,\n", "RECORD line 2: 'a.py' is listed twice"),
        ("a.py,sha256,3\n", "hash 'sha256' of 'a.py' is not 'sha256=...'"),
        ("a.py,md5=AAAA,3\n", "hash algorithm 'md5' of 'a.py' is not allowed"),
        ("a.py,sha1=AAAA,3\n", "hash algorithm 'sha1' of 'a.py' is not allowed"),
        ("a.py,sha256=AAAA,\n", "size '' of 'a.py' is not a number"),
        ("a.py,sha256=AAAA,-1\n", "size '-1' of 'a.py' is not a number"),
        ("a.py,,x\n", "size 'x' of 'a.py' is not a number"),
    ],
)
def test_parse_record_rejects(text: str, reason: str) -> None:
    with pytest.raises(WheelError, match=reason) as e:
        parse_record(text, "here")
    assert e.value.subject == "here"


def test_a_good_wheel_passes_both(tmp_path: Path) -> None:
    path = _wheel(tmp_path)
    validate_wheel(path)
    contents = read_wheel(path, tmp_path / "x")
    assert [m.arcname for m in contents.members] == list(MEMBERS)
    assert (tmp_path / "x/demo/__init__.py").read_bytes() == b"x = 1\n"


def test_weak_hash_was_accepted_by_the_validator(tmp_path: Path) -> None:
    # installer took any hashlib algorithm (md5 too); repair's reader did not.
    rows = [_row(n, d, "md5") for n, d in MEMBERS.items()] + [f"{RECORD},,"]
    validated, read = _both(_wheel(tmp_path, rows), tmp_path)
    assert "hash algorithm 'md5'" in validated and "hash algorithm 'md5'" in read


def test_duplicate_rows_were_accepted_by_the_validator(tmp_path: Path) -> None:
    # installer kept the last of two rows for a path; repair's reader refused them.
    rows = [_row(n, d) for n, d in MEMBERS.items()] + [
        f"{RECORD},,",
        _row(*next(iter(MEMBERS.items()))),
    ]
    validated, read = _both(_wheel(tmp_path, rows), tmp_path)
    assert "'demo/__init__.py' is listed twice" in validated
    assert "'demo/__init__.py' is listed twice" in read


def test_record_row_rules_repair_did_not_check(tmp_path: Path) -> None:
    # RECORD not listing itself, or listing itself with a hash: installer refused both,
    # repair's reader took them.
    rows = [_row(n, d) for n, d in MEMBERS.items()]
    validated, read = _both(_wheel(tmp_path, rows), tmp_path)
    assert f"{RECORD} is not mentioned in RECORD" in validated
    assert "is not listed in RECORD" in read
    rows = [*rows, f"{RECORD},sha256=AAAA,3"]
    validated, read = _both(_wheel(tmp_path, rows), tmp_path)
    assert "RECORD's own row has a hash or a size" in validated
    assert "RECORD's own row has a hash or a size" in read


def test_blank_lines_were_accepted_by_repair(tmp_path: Path) -> None:
    rows = [_row(n, d) for n, d in MEMBERS.items()] + ["", f"{RECORD},,"]
    validated, read = _both(_wheel(tmp_path, rows), tmp_path)
    assert "expected 3 fields, found 0" in validated and "expected 3 fields, found 0" in read


def test_signatures_of_record(tmp_path: Path) -> None:
    # A signature of RECORD is never listed in it (the wheel spec, and installer); repair's
    # reader wanted it listed. Unlisted, it is accepted and left out of the members.
    signed = {f"{DIST_INFO}/RECORD.jws": b"{}"}
    path = _wheel(tmp_path, extra=signed)
    validate_wheel(path)
    verify_record(path)
    assert all(not m.arcname.endswith(".jws") for m in read_wheel(path, tmp_path / "x").members)
    rows = [_row(n, d) for n, d in {**MEMBERS, **signed}.items()] + [f"{RECORD},,"]
    validated, read = _both(_wheel(tmp_path, rows, extra=signed), tmp_path)
    assert "a signature of RECORD itself" in validated and "a signature of RECORD itself" in read


def test_content_mismatch_in_a_stronger_hash(tmp_path: Path) -> None:
    rows = [_row(n, d, "sha512") for n, d in MEMBERS.items()] + [f"{RECORD},,"]
    path = _wheel(tmp_path, rows)
    validate_wheel(path)
    rows[0] = _row("demo/__init__.py", b"x = 2\n", "sha512")
    validated, read = _both(_wheel(tmp_path, rows), tmp_path)
    assert "hash / size of demo/__init__.py didn't match RECORD: its sha512" in validated
    assert "its sha512 does not match RECORD's" in read


@given(
    st.lists(
        st.lists(
            st.text(alphabet=st.characters(blacklist_characters='"\x00'), max_size=8), max_size=4
        ),
        max_size=6,
    )
)
def test_the_comma_split_reads_what_csv_reads(lines: list[list[str]]) -> None:
    """parse_record splits quote-free RECORD text on commas itself (the fast path pip's
    files take): its rows are exactly csv's, line numbers included."""
    import csv  # noqa: PLC0415

    from nativelib.wheelfile.record import _rows  # noqa: PLC0415

    text = "\n".join(",".join(fields) for fields in lines)
    reader = csv.reader(text.splitlines())
    expected = [(reader.line_num, row) for row in reader]
    assert list(_rows(text, "RECORD")) == expected


@given(
    st.lists(st.text(alphabet="ab/._-\u2028\x85", min_size=1, max_size=6), max_size=6),
    st.text(alphabet="ab/._-", min_size=1, max_size=6),
    st.sampled_from(["\n", "\r\n", "\x0c", "\u2028"]),
)
def test_record_lists_and_record_paths_agree_with_parse_record(
    paths: list[str], probe: str, newline: str
) -> None:
    """The doctor's two cheap questions (is this path listed? which paths?) give what
    parse_record's rows give, on RECORD text split as pip writes it."""
    from nativelib.wheelfile.record import record_lists, record_paths  # noqa: PLC0415

    unique = list(dict.fromkeys(p for p in paths if p.strip("\u2028\x85")))
    text = newline.join(f"{p},," for p in unique if "\u2028" not in p and "\x85" not in p)
    rows = parse_record(text, "RECORD")
    assert record_paths(text, "RECORD") == list(rows)
    raw = text.encode("utf-8")
    for path in [probe, *rows]:
        assert record_lists(raw, path) is (path in rows)
    assert record_lists(b'"a,b",,\n', "x") is None


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["a.so", "b/c.py", "d", "", "a.so"]),
            st.sampled_from(["", "sha256=AbC_-", "md5=x", "sha256=", "=x", "sha512=q=="]),
            st.sampled_from(["", "12", "x", "1 "]),
        ),
        max_size=5,
    ),
    st.booleans(),
)
def test_record_well_formed_agrees_with_parse_record(
    rows: list[tuple[str, str, str]], extra_field: bool
) -> None:
    """The doctor's cheap well-formedness check says what parse_record would."""
    from nativelib.wheelfile.record import record_well_formed  # noqa: PLC0415

    text = "\n".join(
        ",".join([*r, "z"] if extra_field and i == 0 else r) for i, r in enumerate(rows)
    )
    try:
        parse_record(text, "RECORD")
        parses = True
    except WheelError:
        parses = False
    assert record_well_formed(text) is parses
