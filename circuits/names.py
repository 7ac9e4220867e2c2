"""What a circuit's file name says: EvoApproxLib's ``mul<A>[x<B>]<s|u>_<id>`` names give widths and signedness.

One rule for every command that reads a netlist (``sim``, ``library import``, ``evaluate --assign FILE``):
``v2022_mul8s_1KV8.v`` is an 8x8 signed multiplier, ``mul8x4u_1K7_pdk45.v`` an 8x4 unsigned one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePath

_MUL_NAME = re.compile(r"(?:^|_)mul(?P<a>\d+)(?:x(?P<b>\d+))?(?P<sign>[su])(?:_|$)", re.IGNORECASE)


@dataclass(frozen=True)
class NameHint:
    """Operand widths and signedness encoded in a file name, and the part that said so (``mul8s``)."""

    bits: tuple[int, int]
    signed: bool
    token: str


def name_hint(name: str | PurePath) -> NameHint | None:
    """The widths and signedness a file name or stem encodes, or ``None`` when it follows no known scheme.

    Example:
        >>> name_hint("v2022_mul8s_1KV8.v")
        NameHint(bits=(8, 8), signed=True, token='mul8s')
    """
    stem = PurePath(name).name
    match = _MUL_NAME.search(stem)
    if match is None:
        return None
    bits_a = int(match.group("a"))
    bits_b = int(match.group("b") or bits_a)
    token = match.group(0).strip("_")
    return NameHint((bits_a, bits_b), match.group("sign").lower() == "s", token)
