"""A model in eval (or training) mode for a stretch of work, every module's own mode restored after.

``model.eval()`` switches every submodule, and a caller's model may hold submodules in mixed modes (a frozen
batch norm in a training model); so the modes are saved per module, not per model.

Example:
    >>> with work_mode(model):  # doctest: +SKIP
    ...     logits = model(x)
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from torch import nn


@contextmanager
def work_mode(*models: nn.Module, training: bool = False) -> Iterator[None]:
    """Every module of ``models`` in eval mode (training mode with ``training``), each one's mode restored
    after, whatever happens inside."""
    modes = {module: module.training for model in models for module in model.modules()}
    for model in models:
        model.train(training)
    try:
        yield
    finally:
        for module, mode in modes.items():
            module.training = mode
