"""Click parameter types that check option values up front (ranges, finiteness, devices, model references).

Every value a command takes is checked before any work starts, so a bad one costs the user a
one-line error (exit code 2), never a traceback or a half-finished run.
"""

from __future__ import annotations

import math
import re
from typing import Any

import click

#: A number as every command takes it, in options and filters alike: ASCII decimal digits, a point, an exponent
#: (float() also takes '1_0' as 10 and other scripts' digits, e.g. a full-width '８' as 8).
DECIMAL = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
#: Seeds accepted everywhere: what numpy's legacy generator, torch and Python's ``random`` all take.
SEED_MAX = 2**32 - 1
#: Most front points ``evaluate --assign auto`` verifies per round (``--verify``); each is a full LUT-engine
#: evaluation.
MAX_VERIFY = 64
#: Largest gradient-LUT half window the commands take (``sim``, ``library export``, ``retrain``): 128 spans every
#: difference of 8-bit codes, and no wider window changes a table.
MAX_HALF_WINDOW = 128


class FiniteFloat(click.ParamType):
    """A finite float in ``[low, high]`` (``low`` excluded when ``open_low``); NaN and infinities refused."""

    name = "number"

    def __init__(self, low: float | None = None, high: float | None = None, *, open_low: bool = False):
        self.low, self.high, self.open_low = low, high, open_low

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        try:
            number = float(value)
        except (TypeError, ValueError, OverflowError):
            self.fail(f"{value!r} is not a number", param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        if isinstance(value, str) and not DECIMAL.fullmatch(value.strip()):
            self.fail(f"{value!r} is not a number (decimal digits, e.g. 0.5 or 1e-3)", param, ctx)
        below = self.low is not None and (number <= self.low if self.open_low else number < self.low)
        above = self.high is not None and number > self.high
        if below or above:
            self.fail(f"{value!r} is not in {self._range()}", param, ctx)
        return number

    def _range(self) -> str:
        low = "-inf" if self.low is None else f"{self.low:g}"
        high = "inf" if self.high is None else f"{self.high:g}"
        left = "(" if self.open_low or self.low is None else "["
        right = "]" if self.high is not None else ")"
        return f"{left}{low}, {high}{right}"


def seed_option(help_text: str, *, optional: bool = False) -> Any:
    """``--seed``: an integer in ``0 .. 2^32-1``, default 0 (``optional``: ``None`` when not given, for a command
    that refuses it where nothing is random; the help says the default)."""
    if optional:
        return click.option("--seed", type=click.IntRange(0, SEED_MAX), help=f"{help_text} (0..2^32-1; default 0).")
    return click.option(
        "--seed", type=click.IntRange(0, SEED_MAX), default=0, show_default=True, help=f"{help_text} (0..2^32-1)."
    )


class _Checked(click.ParamType):
    """A string accepted when :meth:`check` accepts it (checks import what they need when they run)."""

    def check(self, text: str) -> str:
        raise NotImplementedError

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        from .errors import ConfigError

        try:
            return self.check(str(value))
        except ConfigError as error:
            self.fail(str(error), param, ctx)


class Device(_Checked):
    """A torch device this machine has: ``cpu``, ``cuda`` or ``cuda:N`` with ``N`` below the GPU count."""

    name = "device"

    def check(self, text: str) -> str:
        from .nn.devices import check_device

        return check_device(text)


class ModelReference(_Checked):
    """A zoo model name or ``path/to/file.py:callable`` (checked for form here; imported by the command)."""

    name = "model"

    def check(self, text: str) -> str:
        from .nn.zoo import check_model_reference

        return check_model_reference(text)


class CellSource(_Checked):
    """A cell profile (``osu``, ``evoapprox8b``) or an existing JSON cell file (read by the command)."""

    name = "cells"

    def check(self, text: str) -> str:
        from .circuits.cells import check_cell_source

        return check_cell_source(text)


class RayAddress(_Checked):
    """``auto``, ``HOST:PORT`` or ``ray://HOST:PORT`` (joined only when the search runs)."""

    name = "address"

    def check(self, text: str) -> str:
        from .tasks import check_ray_address

        return check_ray_address(text)


class Engine(_Checked):
    """A LUT-GEMM engine registered on this machine (``cpu``, ``decomp``, ``reference``, ``cuda`` with a GPU)."""

    name = "engine"

    def check(self, text: str) -> str:
        from .native import engines  # the package registers every engine this machine has

        return engines.get_engine(text).name
