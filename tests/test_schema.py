"""The JSON vocabulary: every `--json` has a schema, the docs list it, the keys carry their units."""

from __future__ import annotations

import math
from dataclasses import fields
from pathlib import Path

import click
import jsonschema
import numpy as np
import pytest

from approxlut.cli import main
from approxlut.library.catalogue import Entry
from approxlut.schema import (
    COMMANDS,
    ENTRY_KEYS,
    NESTED,
    NESTED_BY_COMMAND,
    VOCABULARY,
    dumps,
    dumps_json,
    json_schema,
    markdown,
)
from approxlut.schema import (
    main as write_docs,
)

DOCS = Path(__file__).resolve().parents[1] / "docs" / "json.md"


def _json_commands(group: click.Group, prefix: str = "") -> set[str]:
    found = set()
    for name, command in group.commands.items():
        path = f"{prefix}{name}"
        if isinstance(command, click.Group):
            found |= _json_commands(command, f"{path} ")
        elif any("--json" in param.opts for param in command.params if isinstance(param, click.Option)):
            found.add(path)
    return found


def test_every_json_command_has_a_schema() -> None:
    assert _json_commands(main) == set(COMMANDS)


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_schemas_are_valid_and_use_only_the_vocabulary(command: str) -> None:
    schema = json_schema(command)
    jsonschema.Draft202012Validator.check_schema(schema)
    assert set(COMMANDS[command]) <= set(VOCABULARY)


def test_nested_keys_are_in_the_vocabulary_and_entries_match_the_dataclass() -> None:
    for keys in (*NESTED.values(), *NESTED_BY_COMMAND.values()):
        assert set(keys) <= set(VOCABULARY)
    assert set(ENTRY_KEYS) == {f.name for f in fields(Entry)} | {"full_name", "kind"}


def test_keys_carry_units_and_one_spelling() -> None:
    for key, (_schema, meaning) in VOCABULARY.items():
        assert "quantized" not in key and "quantized" not in meaning
        assert not key.endswith(("_seconds", "_percent", "_mW", "_rel")), key
        if key.endswith("_pct"):
            assert "percent" in meaning, key
        if key.endswith("_s") and not key.endswith("samples_per_s"):
            assert "seconds" in meaning, key
    for bare in ("mae", "wce_abs", "power", "seconds", "quantized_accuracy", "accuracy", "n", "method"):
        assert bare not in VOCABULARY


def test_the_docs_are_generated_from_the_schema() -> None:
    assert DOCS.read_text() == markdown(), "run: python -m approxlut.schema docs/json.md"


def test_a_document_that_breaks_the_schema_is_caught() -> None:
    good = {"schema_version": 1, "command": "library calibrate", "spearman": 0.9, "median_relative_error": 0.1}
    jsonschema.validate({**good, "circuits": 68}, json_schema("library calibrate"))
    for bad in ({**good}, {**good, "circuits": 68, "n": 68}, {**good, "circuits": "68"}):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, json_schema("library calibrate"))


def test_json_never_carries_nan_and_takes_numpy_scalars() -> None:
    assert dumps_json({"a": math.nan, "b": [math.inf, 1.5], "c": 2}) == '{"a": null, "b": [null, 1.5], "c": 2}'
    assert dumps_json([np.float32(0.5), np.int64(3), np.bool_(True), np.float64(-np.inf)]) == "[0.5, 3, true, null]"
    assert dumps("bench", {"results": [{"ratio": math.nan}]}) == (
        '{"schema_version": 1, "command": "bench", "results": [{"ratio": null}]}'
    )


def test_the_docs_are_written_atomically_to_a_file(tmp_path: Path) -> None:
    write_docs([str(tmp_path / "json.md")])
    assert (tmp_path / "json.md").read_text() == markdown()
