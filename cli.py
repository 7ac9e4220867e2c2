"""The ``lutgen`` command: a click group of thin commands over the packages.

Circuit commands (``sim``, ``library``) must not import torch: heavy imports happen inside the
commands that need them.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar

import click

from .errors import LutgenError

F = TypeVar("F", bound=Callable[..., Any])


def reports_errors(func: F) -> F:
    """Turn :class:`LutgenError` into one line on stderr and its exit code; never a traceback."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except LutgenError as error:
            click.echo(f"error: {error}", err=True)
            sys.exit(error.exit_code)

    return wrapper  # type: ignore[return-value]


@click.group()
@click.version_option(package_name="lutgen")
def main() -> None:
    """lutgen: approximate multipliers to lookup tables, and DNNs run through them."""


def _operands(value: str | None) -> tuple[str, str] | None:
    if value is None:
        return None
    parts = [p.strip() for p in value.split(",")]
    if len(parts) != 2 or not all(parts):
        raise click.BadParameter("give two input bus names, e.g. --operands A,B")
    return parts[0], parts[1]


@main.command()
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["verilog", "blif", "sop"]), help="Force the input format.")
@click.option("--signed/--unsigned", default=None, help="Operand encoding (default: unsigned).")
@click.option("--operands", help="Input bus names of operand a and b, e.g. IN1,IN2.")
@click.option("--half-window", type=click.IntRange(0, 128), default=8, show_default=True)
@click.option("--grad", type=click.Choice(["difference", "ste"]), default="difference", show_default=True)
@click.option("--compat", is_flag=True, help="Reproduce the DATE'25 script's first-operand border term.")
@click.option("--out", type=click.Path(path_type=Path), help="Output .npz (default: next to FILE).")
@click.option("--no-write", is_flag=True, help="Do not write the LUT file.")
@click.option("--samples", type=click.IntRange(64), help="Monte-Carlo samples instead of exhaustive simulation.")
@click.option("--json", "as_json", is_flag=True, help="Print the metrics as one JSON object.")
@reports_errors
def sim(
    file: Path,
    fmt: str | None,
    signed: bool | None,
    operands: str | None,
    half_window: int,
    grad: str,
    compat: bool,
    out: Path | None,
    no_write: bool,
    samples: int | None,
    as_json: bool,
) -> None:
    """Simulate a multiplier netlist (Verilog, BLIF, SOP): metrics, LUT and gradient LUTs."""
    from .lutgen.job import run_sim
    from .lutgen.report import print_sim

    result = run_sim(
        file,
        signed=signed,
        fmt=fmt,
        operands=_operands(operands),
        half_window=half_window,
        grad=grad,
        compat=compat,
        out=out,
        write=not no_write,
        samples=samples,
    )
    if as_json:
        click.echo(json.dumps(result.as_json()))
    else:
        print_sim(result, explicit_signedness=signed is not None)
