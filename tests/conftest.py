"""Shared fixtures: the third-party corpus lives beside the checkout in ../shared/corpus."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO.parent / "shared" / "corpus"


@pytest.fixture(scope="session")
def corpus() -> Path:
    """Path of ../shared/corpus; tests that need it are skipped where it is absent."""
    if not CORPUS.is_dir():
        pytest.skip(f"corpus not found at {CORPUS}")
    return CORPUS


@pytest.fixture(scope="session", autouse=True)
def _private_library(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Keep tests out of the user's library: the default library is a session temp folder, created empty here.

    A library named by ``$LUTGEN_LIBRARY`` must exist before reading commands use it; the built-in set
    is then installed on first use.
    """
    from approxlut.library import Library

    old = os.environ.get("LUTGEN_LIBRARY")
    root = tmp_path_factory.mktemp("library")
    Library.open(root).close()
    os.environ["LUTGEN_LIBRARY"] = str(root)
    yield
    if old is None:
        os.environ.pop("LUTGEN_LIBRARY", None)
    else:
        os.environ["LUTGEN_LIBRARY"] = old


@pytest.fixture(scope="session")
def json_output() -> Callable[[str, str], dict[str, Any]]:
    """``json_output(stdout, command)``: the command's ``--json`` object, validated against its schema."""
    import jsonschema

    from approxlut.schema import json_schema

    def parse(text: str, command: str) -> dict[str, Any]:
        data = json.loads(text)
        jsonschema.validate(data, json_schema(command))
        return data

    return parse
