from __future__ import annotations

import numpy as np
import pytest

from approxlut.errors import ConfigError
from approxlut.lutgen.lut import Lut, code_values
from approxlut.lutgen.metrics import ErrorStats, compute_metrics, matches_published, published_round


def _lut(bits: int, signed: bool, error: np.ndarray | None = None) -> Lut:
    exact = np.multiply.outer(code_values(bits, signed), code_values(bits, signed))
    return Lut((exact + (0 if error is None else error)).astype(np.int32), bits, bits, signed, name="t")


def test_metrics_by_hand_on_2bit_table() -> None:
    error = np.zeros((4, 4), dtype=np.int64)
    error[3, 3] = -1  # 3*3 = 9 computed as 8
    error[1, 0] = 2  # 1*0 = 0 computed as 2 (left out of MRE: exact product 0)
    m = compute_metrics(_lut(2, False, error))
    assert m.med == pytest.approx(3 / 16)
    assert m.mae_pct == pytest.approx(100 * 3 / 16 / 16)
    assert m.wce == 2 and m.wce_pct == pytest.approx(100 * 2 / 16)
    assert m.ep_pct == pytest.approx(100 * 2 / 16)
    assert m.mse == pytest.approx(5 / 16)
    assert m.bias == pytest.approx(1 / 16)
    assert m.mre_pct == pytest.approx(100 * (1 / 9) / 9)  # 9 of 16 inputs have a non-zero product
    assert m.wcre_pct == pytest.approx(100 / 9)
    assert m.mre_convention == "nonzero"
    legacy = compute_metrics(_lut(2, False, error), mre_convention="max1")
    assert legacy.mre_pct == pytest.approx(100 * (1 / 9 + 2) / 16)
    assert legacy.wcre_pct == pytest.approx(200) and legacy.mre_convention == "max1"
    assert (legacy.mae_pct, legacy.wce, legacy.ep_pct) == (m.mae_pct, m.wce, m.ep_pct)  # only MRE/WCRE differ
    with pytest.raises(ConfigError, match="unknown MRE convention"):
        compute_metrics(_lut(2, False, error), mre_convention="legacy")


def test_signed_normaliser_is_full_input_space() -> None:
    error = np.zeros((16, 16), dtype=np.int64)
    error[8, 8] = -128  # -8*-8 = 64 wrongly as -64: the classic -2^(n-1) mistake
    m = compute_metrics(_lut(4, True, error))
    assert m.wce == 128
    assert m.wce_pct == pytest.approx(100 * 128 / 256)
    assert m.ep_pct == pytest.approx(100 / 256)


def test_published_rounding() -> None:
    assert published_round(0.00019) == "0.00019"
    assert published_round(22.2222) == "22.22"
    assert published_round(0) == "0.00"
    assert matches_published(0.000194, "0.00019")
    assert not matches_published(0.00021, "0.00019")
    assert matches_published(22.224, "22.22")
    assert not matches_published(22.226, "22.22")
    assert matches_published(1.5e-5, "1.5e-05")


def test_error_sums_do_not_wrap() -> None:
    """Eight errors of 2^61 add up to 2^64, past int64: the mean is still 2^61."""
    stats = ErrorStats(31, 31)
    stats.update(np.full(8, 1 << 61, dtype=np.int64), np.zeros(8, dtype=np.int64))
    stats.update(np.zeros(8, dtype=np.int64), np.full(8, 1 << 61, dtype=np.int64))
    m = stats.result()
    assert m.med == 2.0**61 and m.wce == 1 << 61 and m.bias == 0
    assert m.mae_pct == 100 * 2.0**61 / 2**62


@pytest.mark.parametrize(("bits_a", "bits_b"), [(1, 0), (0, 1), (0, 0)])
def test_a_lut_needs_operands_of_one_bit_or_more(bits_a: int, bits_b: int) -> None:
    with pytest.raises(ConfigError, match="each operand has 1 bit or more"):
        Lut(np.zeros((1 << bits_a, 1 << bits_b), dtype=np.int32), bits_a, bits_b, False)
