"""Which torch device a command runs on: checked against what this machine has before any work starts."""

from __future__ import annotations

import torch

from ..errors import ConfigError


def check_device(text: str) -> str:
    """``text`` as a canonical device name when this machine has that device, else :class:`ConfigError`.

    Accepts ``cpu``, ``cuda`` and ``cuda:N`` (``N`` below the number of GPUs torch sees).
    """
    try:
        device = torch.device(text.strip())
    except (RuntimeError, ValueError, TypeError):
        raise ConfigError(f"'{text}' is not a torch device (cpu, cuda or cuda:N)") from None
    if device.type == "cpu" and device.index in (None, 0):
        return "cpu"
    if device.type == "cuda":
        count = torch.cuda.device_count()
        if count == 0:
            raise ConfigError(f"'{text}': torch sees no CUDA device on this machine; use cpu")
        if device.index is not None and device.index >= count:
            raise ConfigError(f"'{text}': this machine has {count} CUDA device(s), cuda:0..cuda:{count - 1}")
        return str(device)
    here = "cpu, cuda" if torch.cuda.is_available() else "cpu"
    raise ConfigError(f"'{text}' is not a device lutgen runs on here ({here})")


def default_device() -> str:
    """``cuda`` where torch sees a GPU, else ``cpu``."""
    return "cuda" if torch.cuda.is_available() else "cpu"
