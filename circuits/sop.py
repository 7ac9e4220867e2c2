"""Two-level sum-of-products text: Espresso PLA files, and BLIF with SOP covers.

The DATE'25 flow keeps its multipliers as ``*_sop.blif`` (BLIF whose nodes are SOP covers, written by
Yosys/ABC); those go through :func:`~approxlut.circuits.blif.read_blif`. A ``.sop`` file may be either
that BLIF or the classic two-level form, an Espresso PLA::

    .i 4
    .o 2
    .ilb A[0] A[1] B[0] B[1]
    .ob O[0] O[1]
    .type fd
    .p 2
    1-1- 10
    -1-1 01
    .e

Each output becomes one :attr:`Kind.SOP` gate over all inputs. With ``.type`` containing ``f`` (the
default ``fd``, ``f``, ``fr``, ``fdr``) the output is 1 exactly on its ``1`` cubes (don't-cares and
unlisted points read as 0); with ``r``/``dr`` only the off-set is given and the output is 0 exactly on
its ``0`` cubes.
"""

from __future__ import annotations

import re

from ..errors import ParseError
from .blif import _clip, _ordered, cover_gate, read_blif
from .netlist import Cover, Netlist, SourceLoc
from .ports import group_bits, order_operands

_PLA_TYPES = ("f", "fd", "fr", "fdr", "r", "dr")
_BLIF_START = re.compile(r"^\s*\.(model|names|inputs|outputs|subckt|gate)\b", re.MULTILINE)
_PLA_START = re.compile(r"^\s*\.(i|o|ilb|ob|p|type)\b", re.MULTILINE)


#: Most cube rows and most inputs or outputs a PLA file may have (an exhaustive 8x8 table has 65536 rows).
MAX_ROWS = 1 << 20
MAX_WIDTH = 256


def read_sop(text: str, path: str = "<input>", *, operands: tuple[str, str] | None = None) -> Netlist:
    """Parse a two-level SOP file (Espresso PLA, or BLIF with SOP covers) into a :class:`Netlist`."""
    blif = _BLIF_START.search(text)
    pla = _PLA_START.search(text)
    if blif and (not pla or blif.start() < pla.start()):
        return read_blif(text, path, operands=operands)
    if not pla:
        raise ParseError("neither BLIF (.model, .names) nor PLA (.i, .o): not a SOP file", path, 1, 1)
    return read_pla(text, path, operands=operands)


def read_pla(text: str, path: str = "<input>", *, operands: tuple[str, str] | None = None) -> Netlist:
    """Parse an Espresso PLA (``.i .o .ilb .ob .type .p`` header, cube rows, ``.e``)."""
    n_in = n_out = None
    ilb: list[str] | None = None
    ob: list[str] | None = None
    kind = "fd"
    rows: list[tuple[int, str, str]] = []
    header_line = 1
    ended = False
    for number, raw in enumerate(text.splitlines(), start=1):
        body = raw.split("#", 1)[0]
        fields = body.split()
        if not fields:
            continue
        if ended:
            raise ParseError(f"text after .e: {_clip(body.strip())}", path, number, 1)
        head = fields[0]
        if head.startswith("."):
            directive = head.lower()
            if directive in (".i", ".o", ".p"):
                if len(fields) != 2 or not fields[1].isdigit():
                    raise ParseError(f"{directive} takes one number", path, number, 1)
                if int(fields[1]) > MAX_WIDTH:
                    raise ParseError(f"{directive} {fields[1]}: at most {MAX_WIDTH} allowed", path, number, 1)
                if directive == ".i":
                    n_in, header_line = int(fields[1]), number
                elif directive == ".o":
                    n_out = int(fields[1])
            elif directive in (".ilb", ".ob"):
                if directive == ".ilb":
                    ilb = fields[1:]
                else:
                    ob = fields[1:]
            elif directive == ".type":
                if len(fields) != 2 or fields[1].lower() not in _PLA_TYPES:
                    raise ParseError(f".type must be one of {', '.join(_PLA_TYPES)}", path, number, 1)
                kind = fields[1].lower()
            elif directive in (".e", ".end"):
                ended = True
            elif directive in (".phase", ".pair", ".symbolic", ".symbolic-output", ".mv", ".kiss", ".label"):
                raise ParseError(f"PLA directive {directive} is not supported", path, number, 1)
            else:
                raise ParseError(f"unknown PLA directive '{_clip(head)}'", path, number, 1)
            continue
        if n_in is None or n_out is None:
            raise ParseError("cube row before the .i and .o lines", path, number, 1)
        plane = "".join(fields)
        if len(plane) != n_in + n_out:
            raise ParseError(
                f"cube row has {len(plane)} values, expected {n_in} inputs + {n_out} outputs", path, number, 1
            )
        if len(rows) >= MAX_ROWS:
            raise ParseError(f"more than {MAX_ROWS} cube rows: PLA input is limited to {MAX_ROWS}", path, number, 1)
        ins, outs = plane[:n_in], plane[n_in:]
        for i, char in enumerate(ins):
            if char not in "01-":
                raise ParseError(f"input value '{char}' is not 0, 1 or -", path, number, body.find(char) + 1 or i + 1)
        for char in outs:
            if char not in "01-~234":
                raise ParseError(f"output value '{char}' is not one of 0 1 - ~ 2 3 4", path, number, 1)
        rows.append((number, ins, outs.replace("4", "1").replace("3", "0").replace("2", "-").replace("~", "0")))
    if n_in is None or n_out is None:
        raise ParseError("no .i/.o lines: not a PLA file", path, 1, 1)
    if n_in == 0 or n_out == 0:
        raise ParseError("a multiplier needs inputs and outputs (.i and .o > 0)", path, header_line, 1)
    ilb = ilb if ilb is not None else [f"i{k}" for k in range(n_in)]
    ob = ob if ob is not None else [f"O[{k}]" for k in range(n_out)]
    if len(ilb) != n_in or len(ob) != n_out or len(set(ilb)) != n_in or len(set(ob)) != n_out:
        raise ParseError(".ilb/.ob must name each of the .i inputs and .o outputs once", path, header_line, 1)
    return _pla_netlist(path, ilb, ob, rows, kind, operands, header_line)


def _pla_netlist(
    path: str,
    ilb: list[str],
    ob: list[str],
    rows: list[tuple[int, str, str]],
    kind: str,
    operands: tuple[str, str] | None,
    line: int,
) -> Netlist:
    try:
        in_buses = group_bits(ilb)
        out_buses = group_bits(ob)
    except ValueError as exc:
        raise ParseError(str(exc), path, line) from None
    a, b = order_operands(list(in_buses), operands, path=path, line=line)
    extra = [bus for bus in in_buses if bus not in (a, b)]
    if extra:
        raise ParseError(f"inputs {', '.join(extra)} are neither operand ({a}, {b})", path, line)
    if len(out_buses) != 1:
        raise ParseError(f"outputs form {len(out_buses)} buses ({', '.join(out_buses)}); expected one", path, line)
    names: dict[int, str] = {}
    net_of: dict[str, int] = {}
    inputs: dict[str, list[int]] = {}
    for bus in (a, b):
        inputs[bus] = []
        for bit in in_buses[bus]:
            net_of[bit] = len(names)
            names[net_of[bit]] = bit
            inputs[bus].append(net_of[bit])
    # Cubes are written over the .ilb order; gate inputs follow it too.
    gate_inputs = [net_of[name] for name in ilb]
    phase, mark = (0, "0") if "f" not in kind else (1, "1")
    ((out_name, out_bits),) = out_buses.items()
    gates = []
    for k, bit in enumerate(ob):
        net = len(names)
        names[net] = bit
        net_of[bit] = net
        cubes = tuple(ins for _, ins, outs in rows if outs[k] == mark)
        first = next((number for number, _, outs in rows if outs[k] == mark), line)
        gates.append(cover_gate(Cover(cubes, phase), gate_inputs, net, SourceLoc(path, first)))
    netlist = Netlist(
        name=re.sub(r"\W", "_", path.rsplit("/", 1)[-1].split(".")[0]) or "pla",
        inputs=inputs,
        outputs=[net_of[bit] for bit in out_bits],
        gates=gates,
        num_nets=len(names),
        output_name=out_name,
        net_names=names,
    )
    return _ordered(netlist, path)
