"""environ_scope: variables set for a block, then put back as they were, absent included, whatever happens."""

from __future__ import annotations

import os

import pytest

from approxlut.environ import environ_scope


def test_values_and_names_are_restored_even_when_the_block_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LUTGEN_TEST_KEPT", "old")
    monkeypatch.setenv("LUTGEN_TEST_GONE", "")
    monkeypatch.delenv("LUTGEN_TEST_GONE")
    with pytest.raises(RuntimeError), environ_scope("LUTGEN_TEST_GONE", LUTGEN_TEST_KEPT="new"):
        assert os.environ["LUTGEN_TEST_KEPT"] == "new"
        os.environ["LUTGEN_TEST_GONE"] = "set inside"  # (a named variable the block sets itself)
        raise RuntimeError
    assert os.environ["LUTGEN_TEST_KEPT"] == "old" and "LUTGEN_TEST_GONE" not in os.environ
    with environ_scope("LUTGEN_TEST_KEPT", LUTGEN_TEST_KEPT="both"):  # (a name given both ways)
        assert os.environ["LUTGEN_TEST_KEPT"] == "both"
    assert os.environ["LUTGEN_TEST_KEPT"] == "old"


def test_a_value_the_environment_refuses_leaves_nothing_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LUTGEN_TEST_A", "")
    monkeypatch.delenv("LUTGEN_TEST_A")
    with pytest.raises(ValueError), environ_scope(LUTGEN_TEST_A="1", LUTGEN_TEST_B="embedded\0nul"):
        pass
    assert "LUTGEN_TEST_A" not in os.environ and "LUTGEN_TEST_B" not in os.environ
