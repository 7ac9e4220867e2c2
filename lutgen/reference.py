"""The slow, obviously correct reference simulator: one input vector at a time, gate by gate."""

from __future__ import annotations

from ..circuits.netlist import Kind, Netlist


def evaluate_vector(netlist: Netlist, operands: tuple[int, ...]) -> list[int]:
    """Output bits (LSB first) for one assignment of operand codes (one code per input bus)."""
    value: dict[int, int] = {}
    for code, nets in zip(operands, netlist.inputs.values(), strict=True):
        for i, net in enumerate(nets):
            value[net] = (code >> i) & 1
    for gate in netlist.gates:
        ins = [value[n] for n in gate.inputs]
        kind = gate.kind
        if kind is Kind.CONST0:
            out = 0
        elif kind is Kind.CONST1:
            out = 1
        elif kind is Kind.BUF:
            out = ins[0]
        elif kind is Kind.NOT:
            out = 1 - ins[0]
        elif kind in (Kind.AND, Kind.NAND):
            out = int(all(ins)) ^ (kind is Kind.NAND)
        elif kind in (Kind.OR, Kind.NOR):
            out = int(any(ins)) ^ (kind is Kind.NOR)
        elif kind in (Kind.XOR, Kind.XNOR):
            out = (sum(ins) & 1) ^ (kind is Kind.XNOR)
        elif kind is Kind.MUX:
            out = ins[2] if ins[0] else ins[1]
        else:
            assert gate.cover is not None
            out = gate.cover.evaluate(ins)
        value[gate.output] = out
    return [value[n] for n in netlist.outputs]


def output_value(bits: list[int], signed: bool) -> int:
    """The integer an output bus holds (two's complement when ``signed``)."""
    raw = sum(bit << i for i, bit in enumerate(bits))
    if signed and bits[-1]:
        raw -= 1 << len(bits)
    return raw
