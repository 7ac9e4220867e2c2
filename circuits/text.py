"""Source text as every reader sees it: one line-ending convention, and 1-based positions.

Netlists arrive with Windows (CRLF), old Mac (CR) or mixed line endings and sometimes a UTF-8 byte
order mark. :func:`normalise` turns every line break into ``\\n`` and drops the mark, so that a line
of the file is a line of the text and a column counts the characters before it on that line (a tab
is one character). :class:`Positions` turns character offsets (a token's ``lexpos``) into
``(line, column)``, both 1-based.
"""

from __future__ import annotations

import re
from bisect import bisect_right

_BREAK = re.compile(r"\r\n?")
BOM = "\ufeff"


def normalise(text: str) -> str:
    """``text`` with CRLF and lone CR turned into LF and a leading byte order mark removed.

    Example:
        >>> normalise("\\ufeffa\\r\\nb\\rc\\n")
        'a\\nb\\nc\\n'
    """
    if text.startswith(BOM):
        text = text[1:]
    return _BREAK.sub("\n", text) if "\r" in text else text


def lines(text: str) -> list[str]:
    """The lines of normalised ``text`` (split at ``\\n`` only, unlike ``str.splitlines``)."""
    body = text[:-1] if text.endswith("\n") else text
    return body.split("\n") if body else []


class Positions:
    """Maps character offsets of a normalised text to 1-based ``(line, column)``.

    Example:
        >>> Positions("ab\\ncd").at(4)
        (2, 2)
    """

    def __init__(self, text: str):
        self._starts = [0] + [m.end() for m in re.finditer("\n", text)]

    def at(self, offset: int) -> tuple[int, int]:
        """Line and column of the character at ``offset``."""
        line = bisect_right(self._starts, offset)
        return line, offset - self._starts[line - 1] + 1
