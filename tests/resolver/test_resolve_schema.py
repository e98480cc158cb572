"""``resolve --json`` against its committed schema, on wheels built from this host."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import jsonschema
import pytest

from nativelib.cli import main
from nativelib.resolver.command import JSON_VERSION
from nativelib_testing import host_runtime_wheels

SCHEMA = json.loads(
    resources.files("nativelib").joinpath("data/schemas/resolve.schema.json").read_text("utf-8")
)


def test_resolve_json_matches_its_schema(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    wheels = host_runtime_wheels(tmp_path / "wheels")
    capsys.readouterr()
    argv = ["resolve", "nativelib-cxx14>=1", "nativelib-gomp>=1", "--json"]
    assert main([*argv, "--find-links", str(wheels[0].parent), "--glibc", "2.99"]) == 0
    doc = json.loads(capsys.readouterr().out)
    jsonschema.validate(doc, SCHEMA)
    assert doc["version"] == JSON_VERSION == SCHEMA["properties"]["version"]["const"]
    assert [r["name"] for r in doc["resolved"]] == ["nativelib-cxx14", "nativelib-gomp"]
    # The schema is strict: an unknown field is not valid.
    doc["resolved"][0]["extra"] = 1
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(doc, SCHEMA)
