"""The committed JSON Schema matches the pydantic models, and the example points at it."""

from __future__ import annotations

from pathlib import Path

from aivpbuild.manifest import schema_text

REPO = Path(__file__).resolve().parents[1]


def test_committed_schema_is_current() -> None:
    committed = (REPO / "schemas" / "project.aivp.schema.json").read_text("utf-8")
    assert committed == schema_text(), "schema is stale: run `aivpbuild schema --write` and commit it"


def test_example_starts_with_the_schema_comment() -> None:
    first = (REPO / "examples" / "project.aivp.yaml").read_text("utf-8").splitlines()[0]
    assert first == "# yaml-language-server: $schema=../schemas/project.aivp.schema.json"
    assert (REPO / "examples" / "../schemas/project.aivp.schema.json").resolve().is_file()
