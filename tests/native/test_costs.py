"""The VBMI kernels' prices: measured on this machine, cached as JSON beside the kernels, and a cache that is
damaged, foreign or not a regular file never trusted nor overwritten where it is not ours."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import pytest

from approxlut.errors import ConfigError
from approxlut.native import costs, cpu_features

VBMI = "avx512vbmi" in cpu_features.detect().paths()


@pytest.fixture
def fake_measure(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """``costs.measure`` replaced by a counter returning fixed prices (one entry per call)."""
    calls: list[int] = []

    def measure() -> costs.KernelCosts:
        calls.append(1)
        prices = {"lookup": {6: 1.0, 7: 1.2, 8: 2.4}, "widen": 0.0, "exact_int8": math.inf}
        return replace(costs.DEFAULT_COSTS, **prices, source="measured")  # type: ignore[arg-type]

    monkeypatch.setattr(costs, "measure", measure)
    return calls


@pytest.mark.skipif(not VBMI, reason="no AVX-512 VBMI on this CPU")
def test_measure_prices_every_part(native: object) -> None:
    """A real measurement: every price finite where the part runs here, in units of the 6-bit look-up."""
    measured = costs.measure(runs=2)
    assert measured.source == "measured" and measured.lookup[6] == 1.0
    assert sorted(measured.lookup) == [6, 7, 8]
    for value in [*measured.lookup.values(), measured.widen, measured.fold, measured.fold_move, measured.column]:
        assert 0 <= value < 1e3 and math.isfinite(value)
    assert 0 < measured.exact_values < 1e3
    assert math.isinf(measured.exact_int8) or 0 < measured.exact_int8 < 1e3


def test_cache_round_trip(tmp_path: Path, fake_measure: list[int]) -> None:
    """Measured once, then read back from the JSON file (an int8 product that is not exact stored as null); a
    part measured free (widening hidden under the look-ups) is read back too, not measured again each time."""
    path = tmp_path / "deep" / "costs.json"
    first = costs.load_or_measure(path)
    assert first.source == "measured" and len(fake_measure) == 1
    data = json.loads(path.read_text())
    assert data["cpu"] == costs.cpu_key() and data["exact_int8"] is None and "source" not in data
    second = costs.load_or_measure(path)
    assert second.source == "cached" and len(fake_measure) == 1
    assert replace(second, source="measured") == first


@pytest.mark.parametrize(
    "damage",
    [
        lambda d: "not json {",
        lambda d: json.dumps({**d, "cpu": "0123456789abcdef"}),  # another machine's
        lambda d: json.dumps({**d, "widen": -1.0}),
        lambda d: json.dumps({**d, "widen": True}),
        lambda d: json.dumps({**d, "fold": "0.5"}),
        lambda d: json.dumps({**d, "lookup": {"6": 1.0, "7": 1.2}}),
        lambda d: json.dumps({**d, "lookup": {"6": 1.0, "7": 1.2, "8": 1e9}}),
        lambda d: json.dumps({**d, "exact_values": None}),  # (only the int8 product may be absent)
        lambda d: json.dumps({k: v for k, v in d.items() if k != "column"}),  # (a file of an earlier version)
        lambda d: json.dumps([d]),
        lambda d: json.dumps(d).replace("1.2", "NaN"),
    ],
)
def test_a_damaged_cache_is_measured_again(tmp_path: Path, fake_measure: list[int], damage: object) -> None:
    path = tmp_path / "costs.json"
    costs.load_or_measure(path)
    good = json.loads(path.read_text())
    assert callable(damage)
    path.write_text(damage(good))
    again = costs.load_or_measure(path)
    assert again.source == "measured" and len(fake_measure) == 2
    assert json.loads(path.read_text()) == good  # replaced by the new measurement


def test_a_cache_that_is_not_a_regular_file_is_left_alone(tmp_path: Path, fake_measure: list[int]) -> None:
    """A folder or a symlink where the cache goes: measured every time, nothing written through or over it."""
    folder = tmp_path / "costs.json"
    folder.mkdir()
    assert costs.load_or_measure(folder).source == "measured" and folder.is_dir() and not any(folder.iterdir())
    target = tmp_path / "elsewhere.json"
    target.write_text("precious")
    link = tmp_path / "link.json"
    link.symlink_to(target)
    assert costs.load_or_measure(link).source == "measured" and len(fake_measure) == 2
    assert link.is_symlink() and target.read_text() == "precious"


def test_an_unwritable_cache_costs_only_a_measurement(tmp_path: Path, fake_measure: list[int]) -> None:
    """A cache whose folder cannot be made (a file is in the way): the measurement is used, nothing raised."""
    blocker = tmp_path / "native"
    blocker.write_text("a file, not a folder")
    assert costs.load_or_measure(blocker / "costs.json").source == "measured"
    assert costs.load_or_measure(blocker / "costs.json").source == "measured" and len(fake_measure) == 2
    assert blocker.read_text() == "a file, not a folder"


def test_the_environment_picks_the_source(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """``default`` gives the documented defaults without measuring; an unknown mode is a one-line error; the
    measured prices are floored where noise could make a part free; a failed measurement warns and falls back
    to the defaults."""
    costs.kernel_costs.cache_clear()
    try:
        monkeypatch.setenv(costs.COSTS_ENV, "default")
        assert costs.kernel_costs() is costs.DEFAULT_COSTS
        costs.kernel_costs.cache_clear()
        monkeypatch.setenv(costs.COSTS_ENV, "fastest")
        with pytest.raises(ConfigError, match="LUTGEN_KERNEL_COSTS='fastest' must be"):
            costs.kernel_costs()
        if VBMI:
            costs.kernel_costs.cache_clear()
            monkeypatch.setenv(costs.COSTS_ENV, "measure")
            free = replace(costs.DEFAULT_COSTS, widen=0.0, fold=0.0, source="cached")
            monkeypatch.setattr(costs, "load_or_measure", lambda path: free)
            floored = costs.kernel_costs()
            assert floored.widen > 0 and floored.fold > 0 and floored.source == "cached"
            costs.kernel_costs.cache_clear()

            def broken(path: Path) -> costs.KernelCosts:
                raise RuntimeError("kernel crashed")

            monkeypatch.setattr(costs, "load_or_measure", broken)
            with pytest.warns(RuntimeWarning, match="kernel costs not measured .kernel crashed.; using the defaults"):
                assert costs.kernel_costs() is costs.DEFAULT_COSTS
    finally:
        costs.kernel_costs.cache_clear()
