"""Environment variables set for the length of a block, then put back as they were (absent included)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def environ_scope(*names: str, **values: str) -> Iterator[None]:
    """Set ``values`` in ``os.environ`` for the block; on leaving it, restore those and ``names`` (which the
    block may set itself) to what they were, unsetting the ones that were not set."""
    saved = {name: os.environ.get(name) for name in (*names, *values)}
    try:
        os.environ.update(values)
        yield
    finally:
        for name, old in saved.items():
            if old is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = old
