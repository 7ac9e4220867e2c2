"""The ``lutgen`` command: a click group of thin commands over the packages.

Circuit commands (``sim``, ``library``) must not import torch: heavy imports happen inside the
commands that need them.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import wraps
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
