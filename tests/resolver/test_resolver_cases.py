"""The scenario corpus: tests/resolver/cases/*.json, each an index, requirements, a host,
and the expected resolution or the expected explanation.

Case format::

    {
      "description": "...",
      "index": [{"name": "nativelib-cxx14", "version": "12.2.0",
                 "provides": {"libstdc++.so.6": ["GLIBCXX_3.4.30", ...]},
                 "platforms": ["manylinux_2_36_x86_64"], "requires": ["nativelib-gomp"],
                 "yanked": false, "installed": false}],
      "requirements": [{"name": "nativelib-cxx14", "specifier": ">=12",
                        "nodes": {"libstdc++.so.6": ["GLIBCXX_3.4.30"]}, "file": "_ext.so"}],
      "host": {"glibc": "2.36", "arch": "x86_64", "cuda_driver": null},
      "options": {"prereleases": false, "lowest": false},
      "expected": {"nativelib-cxx14": "12.2.0"},          (or)
      "error": ["fragment of the explanation", ...]
    }
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from packaging.specifiers import SpecifierSet

from nativelib.errors import ResolutionError
from nativelib.resolver.candidates import static
from nativelib.resolver.host import Host
from nativelib.resolver.model import Need, Requirement
from nativelib.resolver.provider import resolve

CASES = sorted((Path(__file__).parent / "cases").glob("*.json"))


def _requirement(raw: dict[str, Any]) -> Requirement:
    nodes = {s: frozenset(n) for s, n in raw.get("nodes", {}).items()}
    needs = tuple(Need(raw.get("file", "ext.so"), s, n) for s, n in nodes.items())
    return Requirement.of(
        raw["name"], nodes=nodes, specifier=SpecifierSet(raw.get("specifier", "")), needs=needs
    )


def _host(raw: dict[str, Any]) -> Host:
    glibc = tuple(int(p) for p in raw.get("glibc", "2.36").split("."))
    return Host((glibc[0], glibc[1]), raw.get("arch", "x86_64"), raw.get("cuda_driver"))


def test_corpus_is_large_enough() -> None:
    assert len(CASES) >= 25, f"only {len(CASES)} cases"


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_case(path: Path) -> None:
    case = json.loads(path.read_text())
    assert ("expected" in case) != ("error" in case), "a case has 'expected' or 'error'"
    requirements = [_requirement(r) for r in case["requirements"]]
    options = case.get("options", {})
    run = lambda: resolve(  # noqa: E731
        requirements, static(case["index"]), _host(case.get("host", {})),
        prereleases=options.get("prereleases", False), lowest=options.get("lowest", False),
    )  # fmt: skip
    if "expected" in case:
        result = run()
        got = {name: str(c.version) for name, c in result.chosen.items()}
        assert got == case["expected"], case.get("description")
        installed = case.get("expected_installed", [])
        assert sorted(n for n, c in result.chosen.items() if c.installed) == sorted(installed)
    else:
        with pytest.raises(ResolutionError) as e:
            run()
        text = " | ".join(e.value.explanation)
        for fragment in case["error"]:
            assert fragment in text, f"{fragment!r} not in {text!r}"
