"""Bit-parallel simulation of a :class:`Netlist` with numpy.

Input vectors are packed 64 to a uint64 word; every gate is evaluated once per chunk of words with
numpy bitwise operations, so there is no per-vector Python loop. Vector ``v`` of an exhaustive run
is the operand pair ``(a, b) = (v >> bits_b, v & (2^bits_b - 1))``, which makes the decoded output
vector exactly ``Lut.forward.ravel()``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from ..circuits.netlist import Gate, Kind, Netlist
from ..errors import ConfigError
from .lut import Lut
from .metrics import ErrorStats, Metrics

#: Widest operand pair (``bits_a + bits_b``) simulated exhaustively into a table.
MAX_LUT_BITS = 24
#: Widest operand pair whose metrics are computed by streaming exhaustive simulation.
MAX_EXHAUSTIVE_BITS = 28
#: Monte-Carlo sample count for wider circuits (a multiple of 64).
DEFAULT_SAMPLES = 1 << 22
#: Words per chunk: 2^14 words = 128 KiB per net, small enough to stay in cache.
CHUNK_WORDS = 1 << 14
#: Most work one simulation may do, in gate operations on 64-vector words (a 2,000-gate circuit over 2^30
#: Monte-Carlo samples, or 400,000 gates over an exhaustive 12x12 table): about a minute here.
MAX_WORK = 1 << 36

#: Widest integers held in int64 arrays: 62 bits and a sign leave room for the error ``f - a·b`` of two of them.
#: Wider output buses and products (a 32x32 multiplier's reach 2^64) are Python integers in object arrays.
INT64_BITS = 62

_ONES = np.uint64(0xFFFF_FFFF_FFFF_FFFF)
_LANE_PATTERNS = [np.uint64(sum(1 << lane for lane in range(64) if (lane >> bit) & 1)) for bit in range(6)]


def _operand_widths(netlist: Netlist) -> tuple[int, int]:
    widths = netlist.widths
    if len(widths) != 2:
        raise ConfigError(
            f"{netlist.name}: a multiplier needs exactly two input buses, this one has {len(widths)} "
            f"({', '.join(netlist.operand_names)})"
        )
    return widths[0], widths[1]


#: Two-input covers by truth table ``(f(0,0), f(0,1), f(1,0), f(1,1))``: one or two word operations
#: instead of the generic cube loop (BLIF netlists are mostly such nodes).
_TWO_INPUT: dict[tuple[int, ...], Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    (0, 0, 0, 1): lambda x, y: x & y,
    (0, 1, 1, 1): lambda x, y: x | y,
    (0, 1, 1, 0): lambda x, y: x ^ y,
    (1, 1, 1, 0): lambda x, y: ~(x & y),
    (1, 0, 0, 0): lambda x, y: ~(x | y),
    (1, 0, 0, 1): lambda x, y: ~(x ^ y),
    (0, 0, 1, 0): lambda x, y: x & ~y,
    (0, 1, 0, 0): lambda x, y: ~x & y,
    (1, 0, 1, 1): lambda x, y: x | ~y,
    (1, 1, 0, 1): lambda x, y: ~x | y,
}


def _gate_function(gate: Gate) -> Callable[[list[np.ndarray], int], np.ndarray]:
    """A function computing the gate's output words from its input words."""
    kind = gate.kind

    def reduce(op: np.ufunc, invert: bool) -> Callable[[list[np.ndarray], int], np.ndarray]:
        def run(ins: list[np.ndarray], n: int) -> np.ndarray:
            out = op(ins[0], ins[1])
            for extra in ins[2:]:
                op(out, extra, out=out)
            if invert:
                np.invert(out, out=out)
            return out

        return run

    if kind is Kind.CONST0:
        return lambda ins, n: np.zeros(n, dtype=np.uint64)
    if kind is Kind.CONST1:
        return lambda ins, n: np.full(n, _ONES, dtype=np.uint64)
    if kind is Kind.BUF:
        return lambda ins, n: ins[0]
    if kind is Kind.NOT:
        return lambda ins, n: np.invert(ins[0])
    if kind is Kind.MUX:
        return lambda ins, n: (ins[1] & ~ins[0]) | (ins[2] & ins[0])
    if kind is Kind.SOP:
        assert gate.cover is not None
        cubes = gate.cover.cubes
        phase = gate.cover.phase
        if len(gate.inputs) == 2:
            truth = tuple(gate.cover.evaluate(bits) for bits in ((0, 0), (0, 1), (1, 0), (1, 1)))
            pair = _TWO_INPUT.get(truth)
            if pair is not None:
                return lambda ins, n: pair(ins[0], ins[1])

        def sop(ins: list[np.ndarray], n: int) -> np.ndarray:
            out = np.zeros(n, dtype=np.uint64)
            for cube in cubes:
                term = np.full(n, _ONES, dtype=np.uint64)
                for lit, word in zip(cube, ins, strict=True):
                    if lit == "1":
                        term &= word
                    elif lit == "0":
                        term &= ~word
                out |= term
            if not phase:
                np.invert(out, out=out)
            return out

        return sop
    table = {
        Kind.AND: (np.bitwise_and, False),
        Kind.OR: (np.bitwise_or, False),
        Kind.XOR: (np.bitwise_xor, False),
        Kind.NAND: (np.bitwise_and, True),
        Kind.NOR: (np.bitwise_or, True),
        Kind.XNOR: (np.bitwise_xor, True),
    }
    op, invert = table[kind]
    return reduce(op, invert)


@dataclass
class CompiledNetlist:
    """A netlist prepared for repeated chunked evaluation (gate functions and net lifetimes)."""

    netlist: Netlist
    input_nets: list[int]
    steps: list[tuple[Callable[[list[np.ndarray], int], np.ndarray], tuple[int, ...], int, tuple[int, ...]]]
    cost: int = 0
    """Word operations per word of input vectors (one per gate, more for wide gates and large covers)."""

    @classmethod
    def compile(cls, netlist: Netlist) -> CompiledNetlist:
        """Order, lifetimes and per-gate functions; ``netlist`` must be valid (topologically sorted)."""
        keep = set(netlist.outputs)
        last_use: dict[int, int] = {}
        for i, gate in enumerate(netlist.gates):
            for net in gate.inputs:
                last_use[net] = i
        dying: dict[int, list[int]] = {}
        for net, i in last_use.items():
            if net not in keep:
                dying.setdefault(i, []).append(net)
        functions: dict[object, Callable[[list[np.ndarray], int], np.ndarray]] = {}

        def function(gate: Gate) -> Callable[[list[np.ndarray], int], np.ndarray]:
            key = gate.cover if gate.kind is Kind.SOP else gate.kind  # all a gate function depends on
            found = functions.get(key)
            if found is None:
                found = functions[key] = _gate_function(gate)
            return found

        steps = [(function(g), g.inputs, g.output, tuple(dying.get(i, ()))) for i, g in enumerate(netlist.gates)]
        input_nets = [net for bus in netlist.inputs.values() for net in bus]
        cost = sum(_gate_cost(g) for g in netlist.gates)
        return cls(netlist, input_nets, steps, cost)

    def require(self, vectors: int, advice: str) -> None:
        """Refuse (one :class:`ConfigError` stating the limit) a run over ``vectors`` beyond :data:`MAX_WORK`."""
        work = self.cost * max(1, vectors // 64)
        if work > MAX_WORK:
            raise ConfigError(
                f"{self.netlist.name}: simulating {len(self.netlist.gates)} gates over {vectors} input vectors "
                f"takes {work:.3g} word operations; lutgen's limit is {MAX_WORK:.3g} (about a minute): {advice}"
            )

    def run(self, inputs: list[np.ndarray], *, keep_all: bool = False) -> dict[int, np.ndarray]:
        """Evaluate on packed input words (one array per input bit, operand a's bits first).

        Returns the words of the output nets (of every net when ``keep_all``).
        """
        n = len(inputs[0])
        values: dict[int, np.ndarray] = dict(zip(self.input_nets, inputs, strict=True))
        for func, ins, out, dead in self.steps:
            values[out] = func([values[i] for i in ins], n)
            if not keep_all:
                for net in dead:
                    del values[net]
        if keep_all:
            return values
        return {net: values[net] for net in self.netlist.outputs}


def _gate_cost(gate: Gate) -> int:
    if gate.kind is Kind.SOP and gate.cover is not None:
        return max(1, len(gate.cover.cubes) * (len(gate.inputs) + 1))
    return max(1, len(gate.inputs) - 1)


def exhaustive_inputs(bits_a: int, bits_b: int, start_word: int, n_words: int) -> list[np.ndarray]:
    """Packed input words for vectors ``64*start_word ..``: index bit j < bits_b is b's bit j."""
    words = np.arange(start_word, start_word + n_words, dtype=np.uint64)
    result = []
    for bit in range(bits_a + bits_b):
        if bit < 6:
            result.append(np.full(n_words, _LANE_PATTERNS[bit], dtype=np.uint64))
        else:
            on = (words >> np.uint64(bit - 6)) & np.uint64(1)
            result.append((np.uint64(0) - on).astype(np.uint64))  # 0 or all ones
    # index bits: b occupies 0..bits_b-1, a occupies bits_b..bits_b+bits_a-1; return a's bits first
    return result[bits_b:] + result[:bits_b]


def random_codes(rng: np.random.Generator, bits: int, n: int) -> np.ndarray:
    """``n`` uniform operand codes of ``bits`` bits: int64, or Python integers (an object array) above
    :data:`INT64_BITS` bits, drawn 32 bits at a time."""
    if bits <= INT64_BITS:
        return rng.integers(0, 1 << bits, n, dtype=np.int64)
    codes = np.zeros(n, dtype=object)
    for shift in range(0, bits, 32):
        codes += rng.integers(0, 1 << min(32, bits - shift), n, dtype=np.int64).astype(object) << shift
    return codes


def packed_inputs(a_codes: np.ndarray, b_codes: np.ndarray, bits_a: int, bits_b: int) -> list[np.ndarray]:
    """Packed input words for explicit operand code vectors (length a multiple of 64)."""
    result = []
    for codes, bits in ((a_codes, bits_a), (b_codes, bits_b)):
        wide = codes.dtype == object  # (Python integers: cut into int64 pieces once, not shifted per bit)
        step = INT64_BITS if wide else max(1, bits)
        for shift in range(0, bits, step):
            part = ((codes >> shift) & ((1 << step) - 1)).astype(np.int64) if wide else codes
            for bit in range(min(step, bits - shift)):
                plane = ((part >> bit) & 1).astype(np.uint8)
                result.append(np.packbits(plane, bitorder="little").view(np.uint64))
    return result


def _unpack(words: list[np.ndarray], n: int) -> np.ndarray:
    """Unsigned value (int64) of at most 63 bit words, LSB first."""
    value = np.zeros(n, dtype=np.int64)
    for k, word in enumerate(words):
        bits = np.unpackbits(word.view(np.uint8), bitorder="little")
        value |= bits.astype(np.int64) << k
    return value


def decode_outputs(words: list[np.ndarray], signed: bool) -> np.ndarray:
    """Integer output per vector from the output bus words, LSB first.

    int64 for buses of up to :data:`INT64_BITS` bits; wider buses give exact Python integers (an object array).
    """
    n = len(words[0]) * 64
    width = len(words)
    value = _unpack(words[:INT64_BITS], n)
    if width > INT64_BITS:
        value = value.astype(object)
        for start in range(INT64_BITS, width, INT64_BITS):
            value += _unpack(words[start : start + INT64_BITS], n).astype(object) << start
    if signed:
        value = np.where(value >= 1 << (width - 1), value - (1 << width), value)
    return value


def _chunks(total_vectors: int) -> Iterator[tuple[int, int]]:
    total_words = max(1, total_vectors // 64)
    for start in range(0, total_words, CHUNK_WORDS):
        yield start, min(CHUNK_WORDS, total_words - start)


def _outputs(compiled: CompiledNetlist, inputs: list[np.ndarray], signed: bool) -> np.ndarray:
    values = compiled.run(inputs)
    return decode_outputs([values[net] for net in compiled.netlist.outputs], signed)


def simulate_lut(netlist: Netlist, *, signed: bool, name: str | None = None) -> Lut:
    """Exhaustively simulate a two-operand circuit into a :class:`Lut` (``bits_a + bits_b <= 24``)."""
    bits_a, bits_b = _operand_widths(netlist)
    if bits_a + bits_b > MAX_LUT_BITS:
        raise ConfigError(
            f"{netlist.name}: {bits_a}x{bits_b} is too wide for a table (at most {MAX_LUT_BITS} input bits); "
            "use simulate_metrics for its error figures"
        )
    compiled = CompiledNetlist.compile(netlist)
    total = 1 << (bits_a + bits_b)
    compiled.require(total, "the circuit is too large to tabulate")
    parts = [_outputs(compiled, exhaustive_inputs(bits_a, bits_b, start, n), signed) for start, n in _chunks(total)]
    flat = np.concatenate(parts)[:total]
    if flat.size and (flat.max() >= 1 << 31 or flat.min() < -(1 << 31)):
        raise ConfigError(f"{netlist.name}: output values do not fit int32")
    forward = flat.reshape(1 << bits_a, 1 << bits_b).astype(np.int32)
    meta = {"gates": netlist.gate_count(), "source_name": netlist.name, "output_bits": len(netlist.outputs)}
    return Lut(forward, bits_a, bits_b, signed, name=name or netlist.name, meta=meta)


def simulate_nets(netlist: Netlist) -> dict[int, np.ndarray]:
    """Packed words of every net over all input pairs (for activity analysis; up to 20 input bits)."""
    bits_a, bits_b = _operand_widths(netlist)
    if bits_a + bits_b > 20:
        raise ConfigError(f"{netlist.name}: per-net simulation is limited to 20 input bits")
    compiled = CompiledNetlist.compile(netlist)
    n_words = max(1, (1 << (bits_a + bits_b)) // 64)
    return compiled.run(exhaustive_inputs(bits_a, bits_b, 0, n_words), keep_all=True)


def simulate_metrics(
    netlist: Netlist,
    *,
    signed: bool,
    samples: int | None = None,
    seed: int = 0,
    mre_convention: str = "nonzero",
) -> Metrics:
    """Error metrics without building a table.

    Exhaustive (streamed in chunks) up to ``MAX_EXHAUSTIVE_BITS`` input bits unless ``samples`` is
    given; otherwise Monte-Carlo over ``samples`` uniform operand pairs (default 2^22) with ``seed``.
    ``Metrics.method`` says which was used.
    """
    bits_a, bits_b = _operand_widths(netlist)
    compiled = CompiledNetlist.compile(netlist)
    stats = ErrorStats(bits_a, bits_b, mre_convention=mre_convention)
    if samples is None and bits_a + bits_b <= MAX_EXHAUSTIVE_BITS:
        total = 1 << (bits_a + bits_b)
        compiled.require(total, "give --samples N for Monte-Carlo metrics")
        for start, n in _chunks(total):
            got = _outputs(compiled, exhaustive_inputs(bits_a, bits_b, start, n), signed)
            index = np.arange(start * 64, min(start * 64 + len(got), total), dtype=np.int64)
            got = got[: len(index)]
            a = _to_value(index >> bits_b, bits_a, signed)
            b = _to_value(index & ((1 << bits_b) - 1), bits_b, signed)
            stats.update(got, a * b)
        return stats.result(method="exhaustive")
    count = samples if samples is not None else DEFAULT_SAMPLES
    count = max(64, (count + 63) // 64 * 64)
    compiled.require(count, "use fewer --samples")
    rng = np.random.default_rng(seed)
    done = 0
    while done < count:
        n = min(CHUNK_WORDS * 64, count - done)
        a_codes = random_codes(rng, bits_a, n)
        b_codes = random_codes(rng, bits_b, n)
        got = _outputs(compiled, packed_inputs(a_codes, b_codes, bits_a, bits_b), signed)
        exact = _products(_to_value(a_codes, bits_a, signed), _to_value(b_codes, bits_b, signed), bits_a + bits_b)
        stats.update(got, exact)
        done += n
    return stats.result(method=f"monte-carlo ({count} samples, seed {seed})")


def _products(a: np.ndarray, b: np.ndarray, bits: int) -> np.ndarray:
    """``a·b`` elementwise: int64, or Python integers when ``bits`` (the operands' widths together) exceed int64's."""
    if bits > INT64_BITS:
        return a.astype(object) * b.astype(object)
    return a * b


def _to_value(codes: np.ndarray, bits: int, signed: bool) -> np.ndarray:
    if not signed:
        return codes
    return np.where(codes >= 1 << (bits - 1), codes - (1 << bits), codes)
