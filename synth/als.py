"""Approximate logic synthesis: greedy substitution of internal nets under an error bound.

A net can be tied to 0 or 1, or replaced by one of its driver's inputs (wire-by-wire replacement).
Each step simulates the current circuit bit-parallel over every input pair, ranks the candidate
substitutions by a cheap estimate (how often the net would change × the weight of the most
significant output it reaches, per gate that would disappear), re-simulates the fan-out cone of the
best ``candidates``, and keeps the substitution with the largest saving
per unit of added error that stays within the bound. The circuit is then simplified (constants
propagated, dead logic removed) and the next step starts. Every accepted step is a new circuit; the
non-dominated ones (gates or estimated power vs. error) are returned as Pareto points.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..circuits.netlist import Kind, Netlist
from ..errors import ConfigError
from ..lutgen.lut import code_values
from ..lutgen.simulate import CompiledNetlist, decode_outputs, exhaustive_inputs
from .cells45 import CELLS
from .logic import simplify
from .power import estimate_cost

_CONSTS = (Kind.CONST0, Kind.CONST1)
#: Widest operand pair the loop simulates exhaustively.
MAX_BITS = 20

_GATE_ENERGY = {
    Kind.NOT: CELLS["INVX1"].energy_fj,
    Kind.AND: CELLS["AND2X1"].energy_fj,
    Kind.OR: CELLS["OR2X1"].energy_fj,
    Kind.NAND: CELLS["NAND2X1"].energy_fj,
    Kind.NOR: CELLS["NOR2X1"].energy_fj,
    Kind.XOR: CELLS["XOR2X1"].energy_fj,
    Kind.XNOR: CELLS["XNOR2X1"].energy_fj,
    Kind.MUX: CELLS["MUX2X1"].energy_fj,
}


@dataclass(frozen=True)
class ParetoPoint:
    """One circuit of the search: its size, error and estimated power, and how it was reached."""

    netlist: Netlist
    gates: int
    mae_pct: float
    wce_pct: float
    power_mw: float
    substitutions: tuple[str, ...]


class _State:
    """The current circuit simulated over every input pair."""

    def __init__(self, netlist: Netlist, exact: np.ndarray, signed: bool):
        self.netlist = netlist
        self.signed = signed
        self.exact = exact
        self.compiled = CompiledNetlist.compile(netlist)
        bits_a, bits_b = netlist.widths
        n_words = max(1, (1 << (bits_a + bits_b)) // 64)
        self.values = self.compiled.run(exhaustive_inputs(bits_a, bits_b, 0, n_words), keep_all=True)
        self.index = {g.output: i for i, g in enumerate(netlist.gates)}
        self.users: dict[int, list[int]] = {}
        for i, g in enumerate(netlist.gates):
            for net in set(g.inputs):
                self.users.setdefault(net, []).append(i)
        self.out_pos = {net: k for k, net in enumerate(netlist.outputs)}
        width = len(netlist.outputs)
        self.weights = [1 << k for k in range(width)]
        if signed:
            self.weights[-1] = -self.weights[-1]
        words = [self.values[n] for n in netlist.outputs]
        self.outputs = decode_outputs(words, signed)[: len(exact)].astype(np.int32)
        self.refs = {x: len(us) for x, us in self.users.items()}
        for net in netlist.outputs:
            self.refs[net] = self.refs.get(net, 0) + 1

    def error(self, overlay: dict[int, np.ndarray] | None = None) -> tuple[float, float]:
        """(MAE %, WCE %) of the outputs, with ``overlay`` replacing some nets' words.

        Only output bits whose words change are decoded; their change is added to the current
        output values.
        """
        got = self.outputs
        for net, k in self.out_pos.items():
            if overlay is None or net not in overlay:
                continue
            new, old = overlay[net], self.values[net]
            if np.array_equal(new, old):
                continue
            change = _unpack(new) - _unpack(old)
            got = got + change[: len(got)] * np.int32(self.weights[k])
        err = np.abs(got - self.exact)
        scale = 100.0 / (1 << sum(self.netlist.widths))
        return float(err.mean()) * scale, float(err.max()) * scale

    def cone(self, net: int) -> list[int]:
        """Indices (in topological order) of the gates that depend on ``net``."""
        seen: set[int] = set()
        stack = [net]
        while stack:
            for i in self.users.get(stack.pop(), ()):
                if i not in seen:
                    seen.add(i)
                    stack.append(self.netlist.gates[i].output)
        return sorted(seen)

    def substitute(self, net: int, rep: tuple[str, int]) -> dict[int, np.ndarray]:
        """Words of every net in ``net``'s fan-out cone with ``net`` replaced by ``rep``
        (``("const", 0|1)`` or ``("net", other)``)."""
        n = len(self.values[net])
        if rep[0] == "net":
            words = self.values[rep[1]]
        else:
            words = np.full(n, np.uint64(0xFFFF_FFFF_FFFF_FFFF) if rep[1] else np.uint64(0), dtype=np.uint64)
        overlay = {net: words}
        for i in self.cone(net):
            func, ins, out, _ = self.compiled.steps[i]
            overlay[out] = func([overlay.get(x, self.values[x]) for x in ins], n)
        return overlay

    def freed(self, net: int, keep: int | None = None) -> list[int]:
        """Gates that become dead when ``net``'s driver is removed (its maximum fan-out-free cone),
        with net ``keep`` (the replacement) staying alive."""
        refs = dict(self.refs)
        if keep is not None:
            refs[keep] = refs.get(keep, 0) + 1
        dead = [self.index[net]]
        stack = [net]
        while stack:
            gate = self.netlist.gates[self.index[stack.pop()]]
            for x in set(gate.inputs):
                if x in self.index:
                    refs[x] -= 1
                    if refs[x] == 0 and x not in self.out_pos:
                        dead.append(self.index[x])
                        stack.append(x)
        return dead

    def reach(self) -> dict[int, int]:
        """For each net, the highest output bit position it reaches (-1: none)."""
        best = {net: k for net, k in self.out_pos.items()}
        for gate in reversed(self.netlist.gates):
            here = best.get(gate.output, -1)
            for x in gate.inputs:
                best[x] = max(best.get(x, -1), here)
        return best


def _unpack(words: np.ndarray) -> np.ndarray:
    return np.unpackbits(words.view(np.uint8), bitorder="little").view(np.int8)


def _probability(words: np.ndarray) -> float:
    return float(np.bitwise_count(words).sum()) / (64 * len(words))


def approximate(
    netlist: Netlist,
    *,
    signed: bool,
    max_mae_pct: float | None = None,
    max_wce_pct: float | None = None,
    objective: str = "gates",
    max_steps: int = 80,
    candidates: int = 48,
    wires: bool = True,
) -> list[ParetoPoint]:
    """Greedy net substitution (constants, or a gate's output by one of its inputs) under
    ``max_mae_pct`` and/or ``max_wce_pct``.

    ``objective`` is ``"gates"`` (gates removed) or ``"power"`` (switching energy removed, from the
    simulated activity of the removed gates). At most ``max_steps`` substitutions, each choosing
    among the ``candidates`` most promising (net, replacement) pairs; ``wires=False`` tries
    constants only. A bound of 0 is honoured: only error-free substitutions (redundant logic) are
    made. Returns the Pareto points (the starting circuit first, then by increasing error).
    """
    if max_mae_pct is None and max_wce_pct is None:
        raise ConfigError("give an error bound: max_mae_pct and/or max_wce_pct")
    if objective not in ("gates", "power"):
        raise ConfigError(f"objective must be 'gates' or 'power', not {objective!r}")
    widths = netlist.widths
    if len(widths) != 2 or sum(widths) > MAX_BITS:
        raise ConfigError(f"{netlist.name}: approximate synthesis needs two operands of at most {MAX_BITS} bits")
    bits_a, bits_b = widths
    exact = np.outer(code_values(bits_a, signed), code_values(bits_b, signed)).ravel().astype(np.int32)
    mae_bound = np.inf if max_mae_pct is None else max_mae_pct
    wce_bound = np.inf if max_wce_pct is None else max_wce_pct

    # every step is charged at least this much error, so steps that save more gates win among
    # near-free ones and the step budget is not spent on tiny savings; a bound of 0 admits only
    # substitutions that add no error (redundant logic), ranked by what they save
    bound = mae_bound if max_mae_pct is not None else wce_bound
    floor = bound / (4 * max_steps) if bound > 0 else 1.0
    state = _State(simplify(netlist), exact, signed)
    mae, wce = state.error()
    if mae > mae_bound or wce > wce_bound:
        over = f"MAE {mae:.4g} %" if mae > mae_bound else f"WCE {wce:.4g} %"
        limit = f"--max-mae {max_mae_pct:g}" if mae > mae_bound else f"--max-wce {max_wce_pct:g}"
        kind = "a signed" if signed else "an unsigned"
        raise ConfigError(
            f"{netlist.name}: the circuit itself has {over} as {kind} multiplier, over {limit}: no point meets "
            f"the bound" + ("" if signed else " (if its operands are two's complement, pass --signed)")
        )
    history: list[tuple[Netlist, float, float, tuple[str, ...]]] = [(state.netlist, mae, wce, ())]
    done: tuple[str, ...] = ()
    for _ in range(max_steps):
        reach = state.reach()
        ranked = []
        lanes = 64 * len(state.values[state.netlist.outputs[0]])
        for gate in state.netlist.gates:
            if gate.kind in (Kind.CONST0, Kind.CONST1, Kind.BUF) or reach.get(gate.output, -1) < 0:
                continue
            words = state.values[gate.output]
            weight = float(1 << reach[gate.output])
            p = _probability(words)
            gain = _gain(state, state.freed(gate.output), objective)
            for value, flips in ((0, p), (1, 1.0 - p)):
                ranked.append((gain / (flips * weight + 1e-9), gain, gate.output, ("const", value)))
            for other in set(gate.inputs) if wires else ():  # wire replacement: the gate's output by one of its inputs
                if other not in state.index or state.netlist.gates[state.index[other]].kind not in _CONSTS:
                    flips = float(np.bitwise_count(words ^ state.values[other]).sum()) / lanes
                    kept = _gain(state, state.freed(gate.output, keep=other), objective)
                    ranked.append((kept / (flips * weight + 1e-9), kept, gate.output, ("net", other)))
        ranked.sort(key=lambda r: -r[0])
        best = None
        for _, gain, net, rep in ranked[:candidates]:
            if gain <= 0:
                continue
            new_mae, new_wce = state.error(state.substitute(net, rep))
            if new_mae > mae_bound or new_wce > wce_bound:
                continue
            added = (new_mae - mae) if max_mae_pct is not None else (new_wce - wce)
            score = gain / (max(added, 0.0) + floor)
            if best is None or score > best[0]:
                best = (score, net, rep, new_mae, new_wce)
        if best is None:
            break
        _, net, rep, mae, wce = best
        name = state.netlist.net_name(net)
        done = (*done, f"{name}={rep[1]}" if rep[0] == "const" else f"{name}<-{state.netlist.net_name(rep[1])}")
        state = _State(simplify(state.netlist, {net: rep}), exact, signed)
        history.append((state.netlist, mae, wce, done))
    return _pareto(history, objective)


def _gain(state: _State, freed: list[int], objective: str) -> float:
    gates = [state.netlist.gates[i] for i in freed]
    if objective == "gates":
        return float(sum(1 for g in gates if g.kind in _GATE_ENERGY or g.kind is Kind.SOP))
    total = 0.0
    for g in gates:
        p = _probability(state.values[g.output])
        total += 2 * p * (1 - p) * _GATE_ENERGY.get(g.kind, CELLS["AND2X1"].energy_fj)
    return total


def _pareto(history: list[tuple[Netlist, float, float, tuple[str, ...]]], objective: str) -> list[ParetoPoint]:
    points = []
    for netlist, mae, wce, subs in history:
        cost = estimate_cost(netlist)
        points.append(ParetoPoint(netlist, netlist.gate_count(), mae, wce, cost.power_mw, subs))
    key = (lambda p: p.gates) if objective == "gates" else (lambda p: p.power_mw)
    front: list[ParetoPoint] = []
    for p in sorted(points, key=lambda p: (p.mae_pct, key(p))):
        if not front or key(p) < key(front[-1]):
            front.append(p)
    return front
