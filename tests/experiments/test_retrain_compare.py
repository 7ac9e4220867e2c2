"""experiments/retrain_compare.py: option parsing and the summary over seeds (pure functions, no training)."""

from __future__ import annotations

import math
from typing import Any

import pytest

from approxlut.experiments.retrain_compare import aggregate, epoch_bands, markdown_seeds, parse_args, sign_test


def row(
    seed: int, name: str, ste: float | str, diff: float | str, *, before: float = 50.0, protocol: str = "lutgen"
) -> dict[str, Any]:
    return {
        "seed": seed, "protocol": protocol, "multiplier": name, "bits": 8, "signed": False, "mae_pct": 1.5,
        "float_accuracy": 97.0, "exact_quantised_accuracy": 96.0 + seed, "before": before + seed, "after_ste": ste,
        "after_difference": diff, "half_window": 32 if diff != "" else "", "ste_backoffs": 1 if ste == 9.0 else 0,
        "difference_backoffs": 0 if diff != "" else "", "float_sha256": "ab" * 32,
    }  # fmt: skip


def test_aggregate_means_stds_paired_difference_and_wins() -> None:
    summary = [
        row(0, "m", 90.0, 94.0),
        row(0, "k", 80.0, 70.0),
        row(1, "m", 92.0, 92.0),  # a tie counts as difference >= STE
        row(1, "k", 84.0, 86.0),
        row(2, "m", 94.0, 87.0),
        row(2, "k", 82.0, ""),  # difference not run for this seed: left out of its mean and of the pairs
    ]
    m, k = aggregate(summary)
    assert (m["multiplier"], k["multiplier"]) == ("m", "k")  # first-seen order
    assert m["seeds"] == 3 and m["half_window"] == "32"
    assert m["exact_quantised_mean"] == pytest.approx(97.0)
    assert m["before_mean"] == pytest.approx(51.0) and m["before_std"] == pytest.approx(1.0)
    assert m["ste_mean"] == pytest.approx(92.0) and m["ste_std"] == pytest.approx(2.0)
    assert m["difference_mean"] == pytest.approx(91.0)
    assert m["difference_std"] == pytest.approx(math.sqrt((9 + 1 + 16) / 2))
    assert m["paired_mean"] == pytest.approx((4 + 0 - 7) / 3)  # not difference_mean - ste_mean by accident
    assert m["paired_std"] == pytest.approx(math.sqrt(((4 + 1) ** 2 + 1 + (-7 + 1) ** 2) / 2))
    assert m["difference_ge_ste"] == "2/3" and (m["wins"], m["ties"], m["losses"]) == (1, 1, 1)
    assert m["sign_test_p"] == pytest.approx(1.0)
    assert k["ste_mean"] == pytest.approx(82.0) and k["difference_mean"] == pytest.approx(78.0)
    assert k["paired_mean"] == pytest.approx((-10 + 2) / 2)
    assert k["difference_ge_ste"] == "1/2"


def test_aggregate_one_seed_has_no_std_and_one_mode_no_pairs() -> None:
    (one,) = aggregate([row(4, "m", 90.0, 91.0)])
    assert one["ste_std"] == "" and one["paired_std"] == "" and one["paired_mean"] == pytest.approx(1.0)
    (ste_only,) = aggregate([row(0, "m", 90.0, ""), row(1, "m", 91.0, "")])
    assert ste_only["difference_mean"] == "" and ste_only["paired_mean"] == "" and ste_only["difference_ge_ste"] == ""
    assert ste_only["half_window"] == ""
    table = markdown_seeds([one, ste_only])
    assert "| lutgen | m | 8u | 1.500 | 32 | 1 |" in table and "+1.00 | 1/0/0 | 1.00 |" in table


def test_aggregate_keeps_protocols_apart_and_counts_collapses_and_back_offs() -> None:
    summary = [row(0, "m", 90.0, 94.0), row(0, "m", 9.0, 93.0, protocol="date25"), row(1, "m", 91.0, 12.0)]
    lutgen, date25 = aggregate(summary)
    assert (lutgen["protocol"], lutgen["seeds"], date25["protocol"], date25["seeds"]) == ("lutgen", 2, "date25", 1)
    assert (lutgen["ste_at_chance"], lutgen["difference_at_chance"]) == (0, 1)  # 12 % <= 1.5 x chance
    assert (date25["ste_at_chance"], date25["ste_backoffs"]) == (1, 1)


def test_sign_test() -> None:
    assert sign_test(0, 0) == ""
    assert sign_test(5, 0) == pytest.approx(2 / 32)
    assert sign_test(12, 4) == pytest.approx(2 * sum(math.comb(16, k) for k in range(5)) / 2**16)
    assert sign_test(4, 12) == sign_test(12, 4) and sign_test(3, 3) == 1.0


def test_epoch_bands_mean_min_max_per_mode_and_epoch() -> None:
    epochs = [
        {"seed": s, "protocol": "date25", "multiplier": "m", "grad": g, "epoch": e, "test_accuracy": acc}
        for s, g, e, acc in [
            (0, "ste", 0, 50.0), (1, "ste", 0, 60.0), (0, "ste", 1, 80.0), (1, "ste", 1, 90.0),
            (0, "difference", 1, 70.0), (1, "difference", 1, 76.0), (2, "difference", 1, 73.0),
        ]
    ]  # fmt: skip
    bands = epoch_bands(epochs)
    assert bands[("date25", "m", "ste")] == [(0, 55.0, 50.0, 60.0), (1, 85.0, 80.0, 90.0)]
    assert bands[("date25", "m", "difference")] == [(1, 73.0, 70.0, 76.0)]


def test_seed_options() -> None:
    assert parse_args([]).seeds == [0]
    assert parse_args(["--seed", "3"]).seeds == [3]
    assert parse_args(["--seeds", "2, 0,4"]).seeds == [2, 0, 4]
    defaults = parse_args([])
    assert defaults.protocols == ["lutgen", "date25"] and defaults.threads == 1 and defaults.guard
    assert defaults.lr is None and defaults.grads == ["ste", "difference"]
    assert parse_args(["--protocols", "date25", "--no-guard"]).protocols == ["date25"]
    bad_options = (
        ["--protocols", "paper"],
        ["--protocols", "date25,date25"],
        ["--grads", "ste,sgd"],
        ["--threads", "0"],
    )
    for bad in (
        *bad_options,
        ["--seeds", "0,x"],
        ["--seeds", "1,1"],
        ["--seeds", "-1"],
        ["--seed", "1", "--seeds", "0,1"],
    ):
        with pytest.raises(SystemExit):
            parse_args(bad)
