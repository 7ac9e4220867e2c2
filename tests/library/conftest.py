"""Small multiplier circuits built gate by gate, and a fresh library per test."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from approxlut.circuits.netlist import Kind, Netlist, NetlistBuilder
from approxlut.library import Library


def _full_adder(b: NetlistBuilder, x: int, y: int, cin: int) -> tuple[int, int]:
    half = b.gate(Kind.XOR, [x, y])
    total = b.gate(Kind.XOR, [half, cin])
    carry = b.gate(Kind.OR, [b.gate(Kind.AND, [x, y]), b.gate(Kind.AND, [half, cin])])
    return total, carry


def build_multiplier(bits: int, signed: bool, *, drop: int = 0, name: str | None = None) -> Netlist:
    """Shift-and-add multiplier over operands extended to 2·bits; the ``drop`` low output bits forced to 0.

    Signed operands are sign-extended, so the low 2·bits of the product are the two's complement result.
    """
    b = NetlistBuilder(name or f"mul{bits}{'s' if signed else 'u'}_drop{drop}")
    a = b.input_bus("A", bits)
    x = b.input_bus("B", bits)
    width = 2 * bits

    def extend(bus: list[int], i: int) -> int:
        if i < bits:
            return bus[i]
        return bus[bits - 1] if signed else b.const(0)

    acc = [b.const(0)] * width
    for j in range(width):
        partial = [b.const(0)] * j + [b.gate(Kind.AND, [extend(a, i), extend(x, j)]) for i in range(width - j)]
        carry = b.const(0)
        summed = []
        for i in range(width):
            s, carry = _full_adder(b, acc[i], partial[i], carry)
            summed.append(s)
        acc = summed
    outputs = [b.const(0) if i < drop else acc[i] for i in range(width)]
    return b.build(outputs)


@pytest.fixture
def multiplier() -> Callable[..., Netlist]:
    """``multiplier(bits, signed, drop=0, name=None)``: a gate-level (approximate) multiplier."""
    return build_multiplier


@pytest.fixture
def lib(tmp_path: Path) -> Iterator[Library]:
    """An empty library in a temporary folder."""
    library = Library.open(tmp_path / "lib")
    yield library
    library.close()
