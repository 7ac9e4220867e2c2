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
its ``0`` cubes. An output value ``~`` (the cube means nothing for that output) joins neither set.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from ..errors import ParseError
from .blif import _clip, _ordered, _Token, cover_gate, read_blif
from .netlist import Cover, Netlist, SourceLoc
from .ports import group_bits, group_inputs, order_operands
from .text import lines, normalise

_PLA_TYPES = ("f", "fd", "fr", "fdr", "r", "dr")
_BLIF_START = re.compile(r"^\s*\.(model|names|inputs|outputs|subckt|gate)\b", re.MULTILINE)
_PLA_START = re.compile(r"^\s*\.(i|o|ilb|ob|p|type)\b", re.MULTILINE)
_COUNT = re.compile(r"[0-9]+")  # (ASCII: str.isdigit takes '²', which int() refuses)


#: Most cube rows and most inputs or outputs a PLA file may have (an exhaustive 8x8 table has 65536 rows).
MAX_ROWS = 1 << 20
MAX_WIDTH = 256


def read_sop(text: str, path: str = "<input>", *, operands: tuple[str, str] | None = None) -> Netlist:
    """Parse a two-level SOP file (Espresso PLA, or BLIF with SOP covers) into a :class:`Netlist`."""
    text = normalise(text)
    blif = _BLIF_START.search(text)
    pla = _PLA_START.search(text)
    if blif and (not pla or blif.start() < pla.start()):
        return read_blif(text, path, operands=operands)
    if not pla:
        raise ParseError("neither BLIF (.model, .names) nor PLA (.i, .o): not a SOP file", path, 1, 1)
    return read_pla(text, path, operands=operands)


def _tokens(text: str) -> Iterator[list[_Token]]:
    """Tokens per non-empty line (generated one at a time), ``#`` comments dropped, with 1-based line and column."""
    for number, raw in enumerate(lines(normalise(text)), start=1):
        body = raw.split("#", 1)[0]
        found = [_Token(m.group(), number, m.start() + 1) for m in re.finditer(r"\S+", body)]
        if found:
            yield found


def read_pla(text: str, path: str = "<input>", *, operands: tuple[str, str] | None = None) -> Netlist:
    """Parse an Espresso PLA (``.i .o .ilb .ob .type .p`` header, cube rows, ``.e``)."""
    n_in = n_out = None
    ilb: list[str] | None = None
    ob: list[str] | None = None
    kind = "fd"
    rows: list[tuple[_Token, str, str]] = []
    header: _Token | None = None  # the .i directive
    names_at: dict[str, _Token] = {}  # .ilb / .ob directives
    ended = False

    def fail(message: str, token: _Token) -> ParseError:
        return ParseError(message, path, token.line, token.col)

    for fields in _tokens(text):
        head = fields[0]
        if ended:
            raise fail(f"text after .e: {_clip(' '.join(t.text for t in fields))}", head)
        if head.text.startswith("."):
            directive = head.text.lower()
            if directive in (".i", ".o", ".p"):
                if len(fields) != 2 or not _COUNT.fullmatch(fields[1].text):
                    raise fail(f"{directive} takes one number", fields[1] if len(fields) > 1 else head)
                if int(fields[1].text) > MAX_WIDTH:
                    raise fail(f"{directive} {fields[1].text}: at most {MAX_WIDTH} allowed", fields[1])
                if directive == ".i":
                    n_in, header = int(fields[1].text), head
                elif directive == ".o":
                    n_out = int(fields[1].text)
            elif directive in (".ilb", ".ob"):
                names_at[directive] = head
                if directive == ".ilb":
                    ilb = [t.text for t in fields[1:]]
                else:
                    ob = [t.text for t in fields[1:]]
            elif directive == ".type":
                if len(fields) != 2 or fields[1].text.lower() not in _PLA_TYPES:
                    raise fail(f".type must be one of {', '.join(_PLA_TYPES)}", fields[1] if len(fields) > 1 else head)
                kind = fields[1].text.lower()
            elif directive in (".e", ".end"):
                ended = True
            elif directive in (".phase", ".pair", ".symbolic", ".symbolic-output", ".mv", ".kiss", ".label"):
                raise fail(f"PLA directive {directive} is not supported", head)
            else:
                raise fail(f"unknown PLA directive '{_clip(head.text)}'", head)
            continue
        if n_in is None or n_out is None:
            raise fail("cube row before the .i and .o lines", head)
        plane = "".join(t.text for t in fields)
        if len(plane) != n_in + n_out:
            raise fail(f"cube row has {len(plane)} values, expected {n_in} inputs + {n_out} outputs", head)
        if len(rows) >= MAX_ROWS:
            raise fail(f"more than {MAX_ROWS} cube rows: PLA input is limited to {MAX_ROWS}", head)
        cols = [_Token(ch, t.line, t.col + k) for t in fields for k, ch in enumerate(t.text)]
        for char in cols[:n_in]:
            if char.text not in "01-":
                raise fail(f"input value '{char.text}' is not 0, 1 or -", char)
        for char in cols[n_in:]:
            if char.text not in "01-~234":
                raise fail(f"output value '{char.text}' is not one of 0 1 - ~ 2 3 4", char)
        ins, outs = plane[:n_in], plane[n_in:]
        rows.append((head, ins, outs.replace("4", "1").replace("3", "0").replace("2", "-").replace("~", "-")))
    if n_in is None or n_out is None or header is None:
        raise ParseError("no .i/.o lines: not a PLA file", path, 1, 1)
    if n_in == 0 or n_out == 0:
        raise fail("a multiplier needs inputs and outputs (.i and .o > 0)", header)
    ilb = ilb if ilb is not None else [f"i{k}" for k in range(n_in)]
    ob = ob if ob is not None else [f"O[{k}]" for k in range(n_out)]
    for names, count, directive in ((ilb, n_in, ".ilb"), (ob, n_out, ".ob")):
        if len(names) != count or len(set(names)) != count:
            raise fail(".ilb/.ob must name each of the .i inputs and .o outputs once", names_at.get(directive, header))
    return _pla_netlist(path, ilb, ob, rows, kind, operands, names_at.get(".ilb", header), names_at.get(".ob", header))


def _pla_netlist(
    path: str,
    ilb: list[str],
    ob: list[str],
    rows: list[tuple[_Token, str, str]],
    kind: str,
    operands: tuple[str, str] | None,
    ilb_at: _Token,
    ob_at: _Token,
) -> Netlist:
    try:
        in_buses = group_inputs(ilb)
    except ValueError as exc:
        raise ParseError(str(exc), path, ilb_at.line, ilb_at.col) from None
    try:
        out_buses = group_bits(ob)
    except ValueError as exc:
        raise ParseError(str(exc), path, ob_at.line, ob_at.col) from None
    a, b = order_operands(list(in_buses), operands, path=path, line=ilb_at.line, col=ilb_at.col)
    extra = [bus for bus in in_buses if bus not in (a, b)]
    if extra:
        raise ParseError(f"inputs {', '.join(extra)} are neither operand ({a}, {b})", path, ilb_at.line, ilb_at.col)
    if len(out_buses) != 1:
        raise ParseError(
            f"outputs form {len(out_buses)} buses ({', '.join(out_buses)}); expected one", path, ob_at.line, ob_at.col
        )
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
        first = next((row for row, _, outs in rows if outs[k] == mark), ob_at)
        gates.append(cover_gate(Cover(cubes, phase), gate_inputs, net, SourceLoc(path, first.line, first.col)))
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
