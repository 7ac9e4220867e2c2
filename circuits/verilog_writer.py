"""Write a :class:`Netlist` as a small structural Verilog module that :func:`.verilog.read_verilog` reads back.

One ``assign`` per gate (``& | ^ ~`` and ``?:``; SOP covers become sum-of-products expressions),
``buf`` primitives for buffers, operand buses as ``input [n-1:0]`` ports in operand order and the
output bus as one ``output`` port, all declared ``signed`` when the netlist's
:attr:`~.netlist.Netlist.signed_ports` says it multiplies signed numbers. Net names are kept where
Verilog can spell them (plain or escaped identifiers), otherwise nets are called ``n<id>``.
"""

from __future__ import annotations

import re

from .netlist import Cover, Gate, Kind, Netlist

_PLAIN = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]*$")
_KEYWORD_TEXT = """
always and assign begin buf bufif0 bufif1 case casex casez cmos deassign default defparam disable edge else
end endcase endfunction endgenerate endmodule endprimitive endspecify endtable endtask event for force
forever fork function generate genvar highz0 highz1 if ifnone initial inout input integer join large
localparam macromodule medium module nand negedge nmos nor not notif0 notif1 or output parameter pmos
posedge primitive pull0 pull1 pulldown pullup rcmos real realtime reg release repeat rnmos rpmos rtran
rtranif0 rtranif1 scalared signed small specify specparam strong0 strong1 supply0 supply1 table task time
tran tranif0 tranif1 tri tri0 tri1 triand trior trireg unsigned vectored wait wand weak0 weak1 while wire
wor xnor xor logic always_ff always_comb always_latch unique
"""
_KEYWORDS = frozenset(_KEYWORD_TEXT.split())
_OPS = {Kind.AND: "&", Kind.OR: "|", Kind.XOR: "^", Kind.NAND: "&", Kind.NOR: "|", Kind.XNOR: "^"}


def _identifier(name: str) -> str | None:
    """``name`` as a Verilog identifier (plain or escaped), or ``None`` when it cannot be spelled."""
    if _PLAIN.match(name) and name not in _KEYWORDS:
        return name
    if name and all(33 <= ord(c) <= 126 for c in name):
        return f"\\{name} "
    return None


class _Names:
    """Unique Verilog spellings for ports and nets."""

    def __init__(self) -> None:
        self.used: set[str] = set()

    def take(self, preferred: str | None, fallback: str) -> str:
        for candidate in (preferred, fallback):
            if candidate is None:
                continue
            ident = _identifier(candidate)
            if ident is not None and ident.strip() not in self.used:
                self.used.add(ident.strip())
                return ident
        base, i = fallback, 1
        while f"{base}_{i}" in self.used:
            i += 1
        self.used.add(f"{base}_{i}")
        return f"{base}_{i}"


def _sop(cover: Cover, args: list[str]) -> str:
    terms = []
    for cube in cover.cubes:
        literals = [a if c == "1" else f"~{a}" for c, a in zip(cube, args, strict=True) if c != "-"]
        terms.append(" & ".join(literals) if literals else "1'b1")
    if not terms:
        return "1'b1" if cover.phase == 0 else "1'b0"
    body = " | ".join(f"({t})" if len(terms) > 1 and "&" in t else t for t in terms)
    return body if cover.phase == 1 else f"~({body})"


def _expression(gate: Gate, args: list[str]) -> str:
    kind = gate.kind
    if kind is Kind.CONST0:
        return "1'b0"
    if kind is Kind.CONST1:
        return "1'b1"
    if kind is Kind.NOT:
        return f"~{args[0]}"
    if kind is Kind.MUX:
        return f"{args[0]} ? {args[2]} : {args[1]}"
    if kind is Kind.SOP:
        assert gate.cover is not None
        return _sop(gate.cover, args)
    body = f" {_OPS[kind]} ".join(args)
    return f"~({body})" if kind in (Kind.NAND, Kind.NOR, Kind.XNOR) else body


def write_verilog(netlist: Netlist) -> str:
    """Structural Verilog text of ``netlist`` (gates in their netlist order).

    Example:
        >>> from approxlut.circuits.netlist import NetlistBuilder
        >>> b = NetlistBuilder("and2")
        >>> a, x = b.input_bus("A", 1), b.input_bus("B", 1)
        >>> print(write_verilog(b.build([b.gate(Kind.AND, [a[0], x[0]])])).splitlines()[0])
        module and2 (A, B, O);
    """
    names = _Names()
    module = names.take(netlist.name, "top")
    ref: dict[int, str] = {}
    ports: list[tuple[str, str, int]] = []
    for bus, nets in netlist.inputs.items():
        port = names.take(bus, f"in{len(ports)}")
        ports.append(("input", port, len(nets)))
        for i, net in enumerate(nets):
            ref[net] = f"{port}[{i}]"
    out_port = names.take(netlist.output_name, "O")
    ports.append(("output", out_port, len(netlist.outputs)))

    port_names = {p.strip() for _, p, _ in ports}
    wires = []
    for gate in netlist.gates:
        preferred = netlist.net_names.get(gate.output)
        if preferred is not None and preferred.split("[")[0] in port_names:
            preferred = None  # `\O[3]` next to port bit O[3] would mislead a reader
        ref[gate.output] = names.take(preferred, f"n{gate.output}")
        wires.append(ref[gate.output])

    lines = [f"module {module} ({', '.join(p for _, p, _ in ports)});"]
    sign = "signed " if netlist.signed_ports else ""
    lines += [f"  {direction} {sign}[{width - 1}:0] {port};" for direction, port, width in ports]
    for i in range(0, len(wires), 16):
        lines.append("  wire " + ", ".join(wires[i : i + 16]) + ";")
    lines.append("")
    for gate in netlist.gates:
        args = [ref[n] for n in gate.inputs]
        if gate.kind is Kind.BUF:
            lines.append(f"  buf ({ref[gate.output]}, {args[0]});")
        else:
            lines.append(f"  assign {ref[gate.output]} = {_expression(gate, args)};")
    lines.append("")
    lines += [f"  assign {out_port}[{i}] = {ref[net]};" for i, net in enumerate(netlist.outputs)]
    lines.append("endmodule")
    return "\n".join(lines) + "\n"
