"""docs/doctor.md lists every finding code, with the severity the code has."""

from __future__ import annotations

import re
from pathlib import Path

from nativelib.doctor import CODES

DOC = Path(__file__).resolve().parents[2] / "docs" / "doctor.md"


def test_every_code_is_documented_with_its_severity() -> None:
    rows = dict(re.findall(r"^\| `([a-z0-9-]+)` \| (error|warning|info) \|", DOC.read_text(), re.M))
    assert rows == {code: c.severity for code, c in CODES.items()}
