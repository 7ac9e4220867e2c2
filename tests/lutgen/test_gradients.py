from __future__ import annotations

import numpy as np
import pytest

from approxlut.errors import ConfigError
from approxlut.lutgen.gradients import gradient_luts
from approxlut.lutgen.lut import Lut, code_values


def _reference_line(f: list[float], w: int) -> list[float]:
    """The DATE'25 definition written out for one line (unsigned, value order)."""
    n = len(f)

    def smooth(i: int) -> float:
        window = f[max(0, i - w) : min(n, i + w + 1)]
        return sum(window) / len(window)

    border = (max(f) - min(f)) / n
    return [(smooth(i + 1) - smooth(i - 1)) / 2 if w + 1 <= i <= n - 2 - w else border for i in range(n)]


def _random_lut(bits: int, signed: bool, seed: int) -> Lut:
    rng = np.random.default_rng(seed)
    exact = np.multiply.outer(code_values(bits, signed), code_values(bits, signed))
    noise = rng.integers(-5, 6, exact.shape)
    return Lut((exact + noise).astype(np.int32), bits, bits, signed, name="noisy")


@pytest.mark.parametrize("w", [0, 1, 2, 4, 8])
def test_difference_gradients_match_written_out_definition(w: int) -> None:
    lut = _random_lut(5, False, seed=w)
    grad_a, grad_b = gradient_luts(lut, half_window=w)
    f = lut.forward.astype(float)
    for a in range(32):
        assert np.allclose(grad_b[a], _reference_line(list(f[a]), w), atol=1e-5)
    for b in range(32):
        assert np.allclose(grad_a[:, b], _reference_line(list(f[:, b]), w), atol=1e-5)


def test_signed_gradients_follow_value_order() -> None:
    lut = _random_lut(4, True, seed=1)
    order = np.r_[8:16, 0:8]  # codes sorted by value -8..7
    grad_a, grad_b = gradient_luts(lut, half_window=1)
    assert np.array_equal(gradient_luts(Lut(lut.forward.T.copy(), 4, 4, True), half_window=1)[1], grad_a.T)
    f = lut.forward.astype(float)[np.ix_(order, order)]
    for i in range(16):
        expected = _reference_line(list(f[i]), 1)
        # interior points are the plain definition in value order
        assert np.allclose(grad_b[order[i], order][2:14], expected[2:14], atol=1e-5)
    # border slope has the sign of the row's trend: row a = -8 slopes down
    assert grad_b[8, 0] < 0 and grad_b[7, 0] > 0


def test_exact_multiplier_gradients_are_the_other_operand() -> None:
    bits = 6
    va = code_values(bits, False)
    lut = Lut(np.multiply.outer(va, va).astype(np.int32), bits, bits, False)
    grad_a, grad_b = gradient_luts(lut, half_window=3)
    interior = slice(4, 64 - 4)
    assert np.allclose(grad_b[:, interior], va[:, None].repeat(56, axis=1))
    assert np.allclose(grad_a[interior, :], va[None, :].repeat(56, axis=0))


def test_ste_and_bad_options() -> None:
    lut = _random_lut(3, True, seed=2)
    grad_a, grad_b = gradient_luts(lut, method="ste")
    assert np.array_equal(grad_a, np.broadcast_to(code_values(3, True)[None, :], (8, 8)))
    assert np.array_equal(grad_b, np.broadcast_to(code_values(3, True)[:, None], (8, 8)))
    with pytest.raises(ConfigError, match="unknown gradient method"):
        gradient_luts(lut, method="magic")
    with_grads = lut.with_gradients(2)
    assert with_grads.grad_a is not None and with_grads.meta["half_window"] == 2
    assert with_grads.hash == lut.hash


def _read_sections(path) -> list[np.ndarray]:
    sections: list[list[list[int]]] = []
    for line in path.read_text().splitlines():
        if line.startswith("LUT for"):
            sections.append([])
        elif line.strip() and not line.startswith("INFO"):
            sections[-1].append([int(x) for x in line.split()])
    return [np.array(s)[:, 2].reshape(128, 128) for s in sections]


def test_compat_mode_reproduces_published_flow(corpus) -> None:
    forward, ga, gb = _read_sections(corpus / "date25" / "mul7u_06Q_lutfp+bp_avg_4_4.txt")
    lut = Lut(forward.astype(np.int32), 7, 7, False).with_gradients(4, compat=True)
    assert np.array_equal(np.floor(16 * lut.grad_a.astype(np.float64) + 0.5), ga)
    assert np.array_equal(np.floor(16 * lut.grad_b.astype(np.float64) + 0.5), gb)
    paper = Lut(forward.astype(np.int32), 7, 7, False).with_gradients(4)
    assert np.array_equal(paper.grad_b, lut.grad_b)
    assert not np.array_equal(np.floor(16 * paper.grad_a.astype(np.float64) + 0.5), ga)  # this circuit is asymmetric
