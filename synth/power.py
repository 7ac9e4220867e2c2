"""Power, area and delay estimates from the cell table in :mod:`approxlut.synth.cells45`.

Each IR gate is mapped onto two-input cells (an n-input gate becomes a balanced tree, an SOP node
an AND tree per cube under an OR tree, with inverters for negative literals); buffers and constants
are wires. Then:

- area = Σ cell area;
- delay = the longest path through cell delays (a topological pass);
- power = Σ over cells (toggle probability of the cell's output × its switching energy) × clock
  + Σ leakage. The toggle probability of a signal with ``P(1) = p`` between two independent operand
  pairs is ``2p(1-p)``; ``p`` comes from bit-parallel simulation of every cell output — exhaustive
  for up to 20 input bits (weighted by operand histograms when ``activity`` is given), otherwise a
  sample of 2^16 operand pairs.

:func:`calibrate` compares the estimate with EvoApproxLib's published 45 nm power.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..circuits.netlist import Kind, Netlist
from ..errors import ConfigError, InputError, LutgenError
from ..lutgen.simulate import CompiledNetlist, exhaustive_inputs, packed_inputs, random_codes
from .cells45 import AREA_SCALE, CELLS, CLOCK_GHZ, DELAY_SCALE, ENERGY_SCALE, CellData

#: Widest operand pair whose activity is computed exhaustively.
MAX_EXHAUSTIVE_BITS = 20
#: Operand pairs sampled for wider circuits.
SAMPLES = 1 << 16
#: Most memory the per-net activity words may take (every net's words are kept to count toggles).
MAX_ACTIVITY_BYTES = 512 << 20


@dataclass(frozen=True)
class HardwareCost:
    """Estimated cost of one circuit (mW, µm², ns) and how many cells it maps to."""

    power_mw: float
    area_um2: float
    delay_ns: float
    dynamic_mw: float = 0.0
    leakage_mw: float = 0.0
    cells: int = 0


@dataclass(frozen=True)
class OperandDistribution:
    """Probabilities of operand codes (index = bit pattern), e.g. histograms of a DNN layer's inputs."""

    prob_a: np.ndarray
    prob_b: np.ndarray

    @classmethod
    def from_histograms(
        cls, hist_a: Sequence[float] | np.ndarray, hist_b: Sequence[float] | np.ndarray
    ) -> OperandDistribution:
        """Normalise two histograms over operand codes (counts or weights, non-negative)."""
        probs = []
        for name, hist in (("a", hist_a), ("b", hist_b)):
            h = np.asarray(hist, dtype=np.float64).ravel()
            if h.size == 0 or (h < 0).any() or not np.isfinite(h).all() or h.sum() <= 0:
                raise ConfigError(f"operand {name} histogram must be non-negative with a positive sum")
            probs.append(h / h.sum())
        return cls(probs[0], probs[1])


@dataclass(frozen=True)
class OperandStream:
    """Operand pairs in the order a multiplier sees them (e.g. recorded from a DNN layer).

    Activity is then the measured toggle rate between consecutive pairs, which keeps the temporal
    correlation of the stream (a stationary weight, runs of zero activations). Entries are operand
    codes or two's-complement values (taken modulo ``2^bits``).
    """

    a: np.ndarray
    b: np.ndarray

    def __post_init__(self) -> None:
        a, b = np.asarray(self.a).ravel(), np.asarray(self.b).ravel()
        if a.shape != b.shape or a.size < 2 or not np.issubdtype(a.dtype, np.integer) or b.dtype.kind not in "iu":
            raise ConfigError("an operand stream needs two integer sequences of the same length (at least 2)")
        object.__setattr__(self, "a", a.astype(np.int64))
        object.__setattr__(self, "b", b.astype(np.int64))


Activity = OperandDistribution | OperandStream


class _Activity:
    """Toggle probabilities from packed simulation words: uniform or weighted lanes (independent
    consecutive pairs, ``2p(1-p)``), or a stream (toggles counted between neighbouring lanes)."""

    def __init__(self, lanes: int, weight: np.ndarray | None, *, stream: bool = False):
        self.lanes = lanes
        self.weight = weight
        self.stream = stream

    def toggle(self, words: np.ndarray) -> float:
        if self.stream:
            previous = (words << np.uint64(1)) | np.concatenate(
                ([words[0] & np.uint64(1)], words[:-1] >> np.uint64(63))
            )
            return float(np.bitwise_count(words ^ previous).sum()) / (self.lanes - 1)
        if self.weight is None:
            p = float(np.bitwise_count(words).sum()) / self.lanes
        else:
            bits = np.unpackbits(words.view(np.uint8), bitorder="little")
            p = float(bits @ self.weight)
        return 2.0 * p * (1.0 - p)


def _simulate(netlist: Netlist, activity: Activity | None, seed: int) -> tuple[dict[int, np.ndarray], _Activity]:
    widths = netlist.widths
    if len(widths) != 2:
        raise ConfigError(f"{netlist.name}: power estimation needs a two-operand circuit")
    bits_a, bits_b = widths
    compiled = CompiledNetlist.compile(netlist)
    words = max(1, (1 << (bits_a + bits_b)) // 64) if bits_a + bits_b <= MAX_EXHAUSTIVE_BITS else SAMPLES // 64
    if isinstance(activity, OperandStream):
        words = -(-activity.a.size // 64)
    if netlist.num_nets * words * 8 > MAX_ACTIVITY_BYTES:
        raise ConfigError(
            f"{netlist.name}: the switching activity of {netlist.num_nets} nets over {words * 64} vectors needs more "
            f"than {MAX_ACTIVITY_BYTES >> 20} MiB; the power model is limited to smaller circuits"
        )
    if isinstance(activity, OperandStream):
        n = activity.a.size
        pad = (-n) % 64  # repeat the last pair: no toggles
        a = np.concatenate([activity.a, np.repeat(activity.a[-1:], pad)]) & ((1 << bits_a) - 1)
        b = np.concatenate([activity.b, np.repeat(activity.b[-1:], pad)]) & ((1 << bits_b) - 1)
        return compiled.run(packed_inputs(a, b, bits_a, bits_b), keep_all=True), _Activity(n, None, stream=True)
    if activity is not None and (activity.prob_a.size != 1 << bits_a or activity.prob_b.size != 1 << bits_b):
        raise ConfigError(
            f"{netlist.name}: operand histograms have {activity.prob_a.size} and {activity.prob_b.size} bins, "
            f"expected {1 << bits_a} and {1 << bits_b}"
        )
    total = bits_a + bits_b
    if total <= MAX_EXHAUSTIVE_BITS:
        n_words = max(1, (1 << total) // 64)
        values = compiled.run(exhaustive_inputs(bits_a, bits_b, 0, n_words), keep_all=True)
        weight = None
        if activity is not None:
            index = np.arange(n_words * 64, dtype=np.int64) & ((1 << total) - 1)
            weight = activity.prob_a[index >> bits_b] * activity.prob_b[index & ((1 << bits_b) - 1)]
            weight = weight / weight.sum()
        return values, _Activity(n_words * 64, weight)
    rng = np.random.default_rng(seed)
    if activity is None:
        a = random_codes(rng, bits_a, SAMPLES)
        b = random_codes(rng, bits_b, SAMPLES)
    else:
        a = rng.choice(1 << bits_a, SAMPLES, p=activity.prob_a).astype(np.int64)
        b = rng.choice(1 << bits_b, SAMPLES, p=activity.prob_b).astype(np.int64)
    return compiled.run(packed_inputs(a, b, bits_a, bits_b), keep_all=True), _Activity(SAMPLES, None)


_OPS: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "AND2X1": lambda x, y: x & y,
    "OR2X1": lambda x, y: x | y,
    "XOR2X1": lambda x, y: x ^ y,
    "NAND2X1": lambda x, y: ~(x & y),
    "NOR2X1": lambda x, y: ~(x | y),
    "XNOR2X1": lambda x, y: ~(x ^ y),
}
#: three-input cells of the two-input ones (for n-ary gates), their base operation and inversion
_THREE = {"AND2X1": "AND3X1", "OR2X1": "OR3X1", "NAND2X1": "NAND3X1", "NOR2X1": "NOR3X1"}
_BASE = {
    "AND2X1": "AND2X1",
    "OR2X1": "OR2X1",
    "XOR2X1": "XOR2X1",
    "NAND2X1": "AND2X1",
    "NOR2X1": "OR2X1",
    "XNOR2X1": "XOR2X1",
    "AND3X1": "AND2X1",
    "OR3X1": "OR2X1",
    "NAND3X1": "AND2X1",
    "NOR3X1": "OR2X1",
}
_INVERTING = {"NAND2X1", "NOR2X1", "XNOR2X1", "NAND3X1", "NOR3X1"}
#: gate kind -> (cell for inner tree nodes, cell for the root)
_TREES = {
    Kind.AND: ("AND2X1", "AND2X1"),
    Kind.OR: ("OR2X1", "OR2X1"),
    Kind.XOR: ("XOR2X1", "XOR2X1"),
    Kind.NAND: ("AND2X1", "NAND2X1"),
    Kind.NOR: ("OR2X1", "NOR2X1"),
    Kind.XNOR: ("XOR2X1", "XNOR2X1"),
}

_Node = tuple[np.ndarray, float]  # (words, arrival time)


@dataclass
class _Tally:
    activity: _Activity
    cells: dict[str, CellData] = field(default_factory=lambda: dict(CELLS))
    area: float = 0.0
    energy_fj: float = 0.0
    leakage_nw: float = 0.0
    count: int = 0

    def cell(self, name: str, words: np.ndarray, inputs: Sequence[_Node]) -> _Node:
        data = self.cells[name]
        self.area += data.area_um2
        self.leakage_nw += data.leakage_nw
        self.energy_fj += data.energy_fj * self.activity.toggle(words)
        self.count += 1
        return words, max((t for _, t in inputs), default=0.0) + data.delay_ns

    def tree(self, inner: str, root: str, nodes: list[_Node]) -> _Node:
        """A balanced tree over ``nodes``: three-input cells where the table has them, else two-input."""
        nodes = list(nodes)
        wide_inner, wide_root = _THREE.get(inner), _THREE.get(root)
        group = 3 if wide_inner else 2
        while len(nodes) > group:
            merged = []
            for i in range(0, len(nodes), group):
                part = nodes[i : i + group]
                merged.append(
                    part[0] if len(part) == 1 else self._combine(inner if len(part) == 2 else wide_inner, part)
                )
            nodes = merged
        if len(nodes) == 3 and wide_root:
            return self._combine(wide_root, nodes)
        if len(nodes) == 3:
            nodes = [self._combine(inner, nodes[:2]), nodes[2]]
        return self._combine(root, nodes)

    def _combine(self, name: str | None, nodes: list[_Node]) -> _Node:
        assert name is not None
        words = nodes[0][0]
        for other, _ in nodes[1:]:
            words = _OPS[_BASE[name]](words, other)
        if name in _INVERTING:
            words = ~words
        return self.cell(name, words, nodes)

    def inverter(self, node: _Node) -> _Node:
        return self.cell("INVX1", ~node[0], [node])


def _map_gate(tally: _Tally, kind: Kind, ins: list[_Node], out_words: np.ndarray, cover: Any) -> _Node:
    if kind in (Kind.CONST0, Kind.CONST1):
        return out_words, 0.0
    if kind is Kind.BUF:
        return ins[0]
    if kind is Kind.NOT:
        return tally.inverter(ins[0])
    if kind is Kind.MUX:
        return tally.cell("MUX2X1", out_words, ins)
    if kind in _TREES:
        return tally.tree(*_TREES[kind], ins)
    if any(set(c) <= {"-"} for c in cover.cubes) or not cover.cubes:
        return out_words, 0.0
    if len(ins) <= 2:
        return _small_cover(tally, ins, out_words, cover)
    # SOP: AND tree per cube over (shared) literals, OR tree over cubes, inverter for an off-set cover
    negated: dict[int, _Node] = {}
    terms = []
    for cube in cover.cubes:
        lits = []
        for i, lit in enumerate(cube):
            if lit == "1":
                lits.append(ins[i])
            elif lit == "0":
                if i not in negated:
                    negated[i] = tally.inverter(ins[i])
                lits.append(negated[i])
        terms.append(lits[0] if len(lits) == 1 else tally.tree("AND2X1", "AND2X1", lits))
    node = terms[0] if len(terms) == 1 else tally.tree("OR2X1", "OR2X1", terms)
    return tally.inverter(node) if cover.phase == 0 else node


#: two-input functions (truth table bit ``in0 + 2*in1``) -> (cell, which inputs are inverted first)
_TWO_INPUT = {
    0b1000: ("AND2X1", ()),
    0b0111: ("NAND2X1", ()),
    0b1110: ("OR2X1", ()),
    0b0001: ("NOR2X1", ()),
    0b0110: ("XOR2X1", ()),
    0b1001: ("XNOR2X1", ()),
    0b0010: ("AND2X1", (1,)),
    0b0100: ("AND2X1", (0,)),
    0b1011: ("OR2X1", (1,)),
    0b1101: ("OR2X1", (0,)),
}


def _small_cover(tally: _Tally, ins: list[_Node], out_words: np.ndarray, cover: Any) -> _Node:
    """A cover of one or two inputs as the cell it is (a NAND written as ``0- 1 / -0 1`` is a NAND2)."""
    n = len(ins)
    table = sum(cover.evaluate([(t >> i) & 1 for i in range(n)]) << t for t in range(1 << n))
    if table in (0, (1 << (1 << n)) - 1):
        return out_words, 0.0
    if n == 1 or table in (0b1010, 0b1100, 0b0101, 0b0011):
        # a wire or an inverter of one input
        which = 0 if n == 1 or table in (0b1010, 0b0101) else 1
        inverted = table in (0b01, 0b0101, 0b0011)
        return tally.inverter(ins[which]) if inverted else ins[which]
    cell, inverted_inputs = _TWO_INPUT[table]
    nodes = [tally.inverter(node) if i in inverted_inputs else node for i, node in enumerate(ins)]
    return tally.cell(cell, out_words, nodes)


def estimate_cost(
    netlist: Netlist,
    *,
    activity: Activity | None = None,
    cells: dict[str, CellData] | None = None,
    seed: int = 0,
) -> HardwareCost:
    """Estimated power (mW), area (µm²) and critical-path delay (ns) of a two-operand circuit.

    ``activity``: an :class:`OperandDistribution` weights operand codes, an :class:`OperandStream`
    gives the measured sequence (uniform independent pairs when ``None``); ``cells`` overrides the
    cell table.

    Example:
        >>> from approxlut.synth.generators import array_multiplier
        >>> cost = estimate_cost(array_multiplier(8, 8, signed=False))
        >>> 0.3 < cost.power_mw < 0.5
        True
    """
    values, act = _simulate(netlist, activity, seed)
    tally = _Tally(act, dict(cells or CELLS))
    nodes: dict[int, _Node] = {net: (values[net], 0.0) for bus in netlist.inputs.values() for net in bus}
    for gate in netlist.gates:
        ins = [nodes[n] for n in gate.inputs]
        node = _map_gate(tally, gate.kind, ins, values[gate.output], gate.cover)
        assert np.array_equal(node[0], values[gate.output]), f"cell mapping of {gate.kind.value} changed its function"
        nodes[gate.output] = node
    delay = max((nodes[n][1] for n in netlist.outputs), default=0.0) * DELAY_SCALE
    dynamic = tally.energy_fj * ENERGY_SCALE * CLOCK_GHZ * 1e-3  # fJ x GHz = µW
    leakage = tally.leakage_nw * 1e-6
    return HardwareCost(
        power_mw=dynamic + leakage,
        area_um2=tally.area * AREA_SCALE,
        delay_ns=delay,
        dynamic_mw=dynamic,
        leakage_mw=leakage,
        cells=tally.count,
    )


# --------------------------------------------------------------------------------------------------
# calibration against EvoApproxLib


@dataclass(frozen=True)
class CalibrationRow:
    """One corpus circuit: published and estimated figures."""

    name: str
    file: str
    bits_a: int
    bits_b: int
    signed: bool
    published_mw: float
    estimated_mw: float
    published_area_um2: float
    estimated_area_um2: float


@dataclass(frozen=True)
class Calibration:
    """How well the estimate ranks published power: Spearman's rho and the median relative error."""

    spearman: float
    median_rel_error: float
    n: int
    rows: list[CalibrationRow]
    skipped: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """The ``--json`` summary."""
        return {"spearman": self.spearman, "median_relative_error": self.median_rel_error, "circuits": self.n}


def rankdata(x: np.ndarray) -> np.ndarray:
    """Ranks 1..n with ties given their average rank (as ``scipy.stats.rankdata``)."""
    x = np.asarray(x, dtype=np.float64)
    order = np.argsort(x, kind="mergesort")
    ranks = np.empty(len(x), dtype=np.float64)
    sorted_x = x[order]
    i = 0
    while i < len(x):
        j = i
        while j + 1 < len(x) and sorted_x[j + 1] == sorted_x[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman's rank correlation (Pearson correlation of the tie-averaged ranks)."""
    rx, ry = rankdata(x), rankdata(y)
    rx, ry = rx - rx.mean(), ry - ry.mean()
    denom = float(np.sqrt((rx * rx).sum() * (ry * ry).sum()))
    return float((rx * ry).sum() / denom) if denom else float("nan")


def _metrics_csv(corpus_dir: Path) -> Path:
    for candidate in (corpus_dir / "metrics.csv", corpus_dir / "evoapprox" / "metrics.csv"):
        if candidate.is_file():
            return candidate
    raise InputError(f"{corpus_dir}: no EvoApproxLib metrics.csv here or in evoapprox/")


def calibrate(corpus_dir: str | Path, *, bits: int | None = 8) -> Calibration:
    """Estimate every corpus circuit and compare with its published power.

    Reads ``metrics.csv`` (columns ``file``, ``pdk45_file``, ``power_mW``, ...) of an EvoApproxLib
    corpus; prefers the ``_pdk45`` cell-mapped netlist, which is what was measured. ``bits`` keeps
    only ``bits x bits`` circuits (``None``: every circuit).
    """
    from ..circuits.io import read_netlist

    table = _metrics_csv(Path(corpus_dir))
    base = table.parent
    rows: list[CalibrationRow] = []
    skipped: list[str] = []
    with table.open(newline="") as handle:
        records = list(csv.DictReader(handle))
    for rec in records:
        try:
            bits_a, bits_b = int(rec["bits_a"]), int(rec["bits_b"])
            published = float(rec["power_mW"])
            area = float(rec["area_um2"])
        except (KeyError, ValueError):
            skipped.append(f"{rec.get('file', '?')}: no published power")
            continue
        if bits is not None and (bits_a, bits_b) != (bits, bits):
            continue
        rel = rec.get("pdk45_file") or rec["file"]
        try:
            netlist = read_netlist(base / rel)
            cost = estimate_cost(netlist)
        except LutgenError as exc:
            skipped.append(f"{rel}: {exc}")
            continue
        rows.append(
            CalibrationRow(
                name=rec.get("name", Path(rel).stem),
                file=rel,
                bits_a=bits_a,
                bits_b=bits_b,
                signed=rec.get("signed", "0") in ("1", "true", "True"),
                published_mw=published,
                estimated_mw=cost.power_mw,
                published_area_um2=area,
                estimated_area_um2=cost.area_um2,
            )
        )
    if len(rows) < 3:
        width = f" of {bits}x{bits}" if bits is not None else ""
        if not rows and not skipped:
            raise InputError(f"{table}: lists no circuits{width} with published power; need at least 3 to calibrate")
        raise InputError(f"{table}: only {len(rows)} circuits{width} could be estimated; need at least 3 to calibrate")
    pub = np.array([r.published_mw for r in rows])
    est = np.array([r.estimated_mw for r in rows])
    positive = pub > 0
    rel_err = np.abs(est[positive] - pub[positive]) / pub[positive]
    return Calibration(
        spearman=spearman(est, pub),
        median_rel_error=float(np.median(rel_err)) if rel_err.size else float("nan"),
        n=len(rows),
        rows=rows,
        skipped=skipped,
    )
