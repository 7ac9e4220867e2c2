"""A gate builder that folds constants and shares identical gates, and the ``simplify`` pass.

Generators and approximation operators build through :class:`Logic`: ``and_(x, 0)`` returns the
constant net, ``xor_(x, 1)`` an inverter, two identical gates become one, and :meth:`Logic.build`
drops every gate that no output depends on. :func:`simplify` rebuilds an existing netlist through
the same rules, optionally with some nets replaced by constants or other nets (how the approximate
logic synthesis loop edits circuits).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ..circuits.netlist import Cover, Gate, Kind, Netlist, NetlistBuilder

_COMMUTATIVE = {Kind.AND, Kind.OR, Kind.XOR, Kind.NAND, Kind.NOR, Kind.XNOR}


class Logic:
    """Constant-folding, structurally hashed gate construction over a :class:`NetlistBuilder`.

    Example:
        >>> lg = Logic("x")
        >>> a, b = lg.input_bus("A", 2), lg.input_bus("B", 2)
        >>> s, c = lg.half_adder(a[0], b[0])
        >>> lg.build([s, c]).gate_count()
        2
    """

    def __init__(self, name: str):
        self.builder = NetlistBuilder(name)
        self.zero = self.builder.const(0)
        self.one = self.builder.const(1)
        self._value = {self.zero: 0, self.one: 1}
        self._inv: dict[int, int] = {}  # net -> its inverter's output (and back)
        self._hash: dict[tuple[object, ...], int] = {}
        self._inputs: set[int] = set()

    def input_bus(self, name: str, width: int) -> list[int]:
        """Declare an operand bus ``name[0..width-1]`` (LSB first)."""
        nets = self.builder.input_bus(name, width)
        self._inputs.update(nets)
        return nets

    def const(self, value: int) -> int:
        """The shared constant net for ``value`` (0 or 1)."""
        return self.one if value else self.zero

    def value(self, net: int) -> int | None:
        """0 or 1 when ``net`` is a constant, else ``None``."""
        return self._value.get(net)

    def _gate(self, kind: Kind, inputs: Sequence[int], cover: Cover | None = None) -> int:
        ins = tuple(sorted(inputs)) if kind in _COMMUTATIVE else tuple(inputs)
        key = (kind, ins, cover)
        net = self._hash.get(key)
        if net is None:
            net = self.builder.gate(kind, ins, cover=cover)
            self._hash[key] = net
        return net

    def not_(self, x: int) -> int:
        """``~x``."""
        v = self.value(x)
        if v is not None:
            return self.const(1 - v)
        if x not in self._inv:
            y = self._gate(Kind.NOT, [x])
            self._inv[x] = y
            self._inv[y] = x
        return self._inv[x]

    def and_(self, *xs: int) -> int:
        """AND of any number of nets (folded: constants, repeats, ``x & ~x``)."""
        ins = self._distinct(xs, absorbing=0)
        if isinstance(ins, int):
            return ins
        if not ins:
            return self.one
        return ins[0] if len(ins) == 1 else self._gate(Kind.AND, ins)

    def or_(self, *xs: int) -> int:
        """OR of any number of nets (folded like :meth:`and_`)."""
        ins = self._distinct(xs, absorbing=1)
        if isinstance(ins, int):
            return ins
        if not ins:
            return self.zero
        return ins[0] if len(ins) == 1 else self._gate(Kind.OR, ins)

    def _distinct(self, xs: Sequence[int], *, absorbing: int) -> list[int] | int:
        """Drop neutral constants and repeats; return the absorbing constant if one occurs."""
        out: list[int] = []
        for x in xs:
            v = self.value(x)
            if v == absorbing:
                return self.const(absorbing)
            if v is None and x not in out:
                if self._inv.get(x) in out:
                    return self.const(absorbing)
                out.append(x)
        return out

    def xor_(self, x: int, y: int) -> int:
        """``x ^ y`` (folded: constants, ``x ^ x``, ``x ^ ~x``)."""
        vx, vy = self.value(x), self.value(y)
        if vx is not None and vy is not None:
            return self.const(vx ^ vy)
        if vx is not None:
            return self.not_(y) if vx else y
        if vy is not None:
            return self.not_(x) if vy else x
        if x == y:
            return self.zero
        if self._inv.get(x) == y:
            return self.one
        return self._gate(Kind.XOR, [x, y])

    def xnor_(self, x: int, y: int) -> int:
        """``~(x ^ y)`` as one XNOR gate when neither input is constant."""
        if self.value(x) is not None or self.value(y) is not None or x == y or self._inv.get(x) == y:
            return self.not_(self.xor_(x, y))
        return self._gate(Kind.XNOR, [x, y])

    def nand_(self, x: int, y: int) -> int:
        """``~(x & y)`` as one NAND gate when neither input is constant."""
        if self.value(x) is not None or self.value(y) is not None or x == y or self._inv.get(x) == y:
            return self.not_(self.and_(x, y))
        return self._gate(Kind.NAND, [x, y])

    def nor_(self, x: int, y: int) -> int:
        """``~(x | y)`` as one NOR gate when neither input is constant."""
        if self.value(x) is not None or self.value(y) is not None or x == y or self._inv.get(x) == y:
            return self.not_(self.or_(x, y))
        return self._gate(Kind.NOR, [x, y])

    def mux(self, sel: int, d0: int, d1: int) -> int:
        """``sel ? d1 : d0``."""
        vs = self.value(sel)
        if vs is not None:
            return d1 if vs else d0
        if d0 == d1:
            return d0
        v0, v1 = self.value(d0), self.value(d1)
        if v0 is not None and v1 is not None:
            return sel if v1 else self.not_(sel)
        if v0 == 0:
            return self.and_(sel, d1)
        if v1 == 0:
            return self.and_(self.not_(sel), d0)
        if v1 == 1:
            return self.or_(sel, d0)
        if v0 == 1:
            return self.or_(self.not_(sel), d1)
        return self._gate(Kind.MUX, [sel, d0, d1])

    def half_adder(self, x: int, y: int) -> tuple[int, int]:
        """(sum, carry) of two bits."""
        return self.xor_(x, y), self.and_(x, y)

    def full_adder(self, x: int, y: int, z: int) -> tuple[int, int]:
        """(sum, carry) of three bits: two XORs, two ANDs and an OR (fewer with constant inputs)."""
        for i, net in enumerate((x, y, z)):
            v = self.value(net)
            if v is not None:
                p, q = [n for j, n in enumerate((x, y, z)) if j != i]
                return (self.xnor_(p, q), self.or_(p, q)) if v else self.half_adder(p, q)
        t = self.xor_(x, y)
        return self.xor_(t, z), self.or_(self.and_(x, y), self.and_(t, z))

    def sop(self, inputs: Sequence[int], cover: Cover) -> int:
        """A cover over ``inputs``, cofactored on constant inputs (a constant when nothing is left)."""
        cubes: list[str] = []
        for cube in cover.cubes:
            kept = []
            for lit, net in zip(cube, inputs, strict=True):
                v = self.value(net)
                if v is None:
                    kept.append(lit)
                elif lit != "-" and int(lit) != v:
                    break
            else:
                cubes.append("".join(kept))
        live = [n for n in inputs if self.value(n) is None]
        if any(set(c) <= {"-"} for c in cubes):
            return self.const(cover.phase)
        if not cubes:
            return self.const(1 - cover.phase)
        return self._gate(Kind.SOP, live, Cover(tuple(cubes), cover.phase))

    def build(self, outputs: Sequence[int], *, output_name: str = "O") -> Netlist:
        """The finished netlist: dead gates removed, each output bit on a net of its own."""
        b = self.builder
        final: list[int] = []
        for net in outputs:
            v = self.value(net)
            if v is not None:
                net = b.gate(Kind.CONST1 if v else Kind.CONST0, [])
            elif net in self._inputs or net in final:
                net = b.gate(Kind.BUF, [net])
            final.append(net)
        netlist = b.build(final, output_name=output_name)
        return prune(netlist)


def prune(netlist: Netlist) -> Netlist:
    """Drop gates whose outputs reach no output bit (keeps net ids; order preserved)."""
    live = set(netlist.outputs) | {n for nets in netlist.inputs.values() for n in nets}
    kept: list[Gate] = []
    for gate in reversed(netlist.gates):
        if gate.output in live:
            kept.append(gate)
            live.update(gate.inputs)
    kept.reverse()
    if len(kept) == len(netlist.gates):
        return netlist
    return Netlist(
        name=netlist.name,
        inputs={k: list(v) for k, v in netlist.inputs.items()},
        outputs=list(netlist.outputs),
        gates=kept,
        num_nets=netlist.num_nets,
        output_name=netlist.output_name,
        net_names={k: v for k, v in netlist.net_names.items() if k in live},
    )


def simplify(
    netlist: Netlist, replace: Mapping[int, tuple[str, int]] | None = None, *, name: str | None = None
) -> Netlist:
    """Rebuild ``netlist`` with constants folded, identical gates shared and dead gates removed.

    ``replace`` maps a net to ``("const", 0|1)`` or ``("net", other)`` — the net's driver is ignored
    and its users read the replacement instead (``other`` must come before the replaced net in the
    netlist's topological order).
    Input bus names and widths are kept.
    """
    replace = dict(replace or {})
    lg = Logic(name or netlist.name)
    m: dict[int, int] = {}
    for bus, nets in netlist.inputs.items():
        for old, new in zip(nets, lg.input_bus(bus, len(nets)), strict=True):
            m[old] = new
    pending: dict[int, int] = {}
    for net, rep in replace.items():
        if isinstance(rep, tuple) and rep[0] == "const":
            m[net] = lg.const(rep[1])
        elif isinstance(rep, tuple):
            pending[net] = rep[1]
    for gate in netlist.gates:
        if gate.output in replace and gate.output not in pending:
            continue
        if gate.output in pending:
            m[gate.output] = m[pending[gate.output]]
            continue
        ins = [m[n] for n in gate.inputs]
        m[gate.output] = _rebuild(lg, gate, ins)
    return lg.build([m[n] for n in netlist.outputs], output_name=netlist.output_name)


def _rebuild(lg: Logic, gate: Gate, ins: list[int]) -> int:
    kind = gate.kind
    if kind is Kind.CONST0:
        return lg.zero
    if kind is Kind.CONST1:
        return lg.one
    if kind is Kind.BUF:
        return ins[0]
    if kind is Kind.NOT:
        return lg.not_(ins[0])
    if kind is Kind.AND:
        return lg.and_(*ins)
    if kind is Kind.OR:
        return lg.or_(*ins)
    if kind is Kind.NAND:
        return lg.not_(lg.and_(*ins)) if len(ins) != 2 else lg.nand_(*ins)
    if kind is Kind.NOR:
        return lg.not_(lg.or_(*ins)) if len(ins) != 2 else lg.nor_(*ins)
    if kind in (Kind.XOR, Kind.XNOR):
        acc = ins[0]
        for x in ins[1:-1]:
            acc = lg.xor_(acc, x)
        return lg.xor_(acc, ins[-1]) if kind is Kind.XOR else lg.xnor_(acc, ins[-1])
    if kind is Kind.MUX:
        return lg.mux(*ins)
    assert gate.cover is not None
    return lg.sop(ins, gate.cover)
