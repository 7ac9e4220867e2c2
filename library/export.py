"""Export a catalogued LUT to a file: lutgen ``.npz``, a TFApprox binary table, or a DATE'25 text LUT."""

from __future__ import annotations

from pathlib import Path

from ..circuits.names import safe_name
from ..errors import ConfigError
from .catalogue import HALF_WINDOW, Library

FORMATS = ("npz", "tfapprox", "lutfp")


def default_path(full_name: str, fmt: str, *, gradients: bool = False, half_window: int = HALF_WINDOW) -> Path:
    """The file name an export gets when none is given (in the current folder, whatever the name holds)."""
    full_name = safe_name(full_name)
    if fmt == "npz":
        return Path(f"{full_name}.npz")
    if fmt == "tfapprox":
        return Path(f"{full_name}.bin")
    if gradients:
        return Path(f"{full_name}_lutfp+bp_avg_{half_window}_{half_window}.txt")
    return Path(f"{full_name}_lutfp.txt")


def export_lut(
    lib: Library,
    name_or_hash: str,
    fmt: str,
    out: str | Path | None = None,
    *,
    gradients: bool = False,
    half_window: int = HALF_WINDOW,
) -> Path:
    """Write the table of one entry in ``fmt`` to ``out`` (default: :func:`default_path`); returns the path.

    ``gradients`` adds the gradient sections to a ``lutfp`` file (``npz`` always carries them).
    """
    from ..lutgen.formats import save_npz, write_lutfp, write_tfapprox

    if fmt not in FORMATS:
        raise ConfigError(f"unknown export format '{fmt}' (choose from {', '.join(FORMATS)})")
    entry = lib.entry(name_or_hash)
    lut = lib.load_lut(entry, half_window=half_window, gradients=fmt == "npz" or gradients)
    path = (
        Path(out)
        if out is not None
        else default_path(entry.full_name, fmt, gradients=gradients, half_window=half_window)
    )
    if fmt == "npz":
        save_npz(lut, path)
    elif fmt == "tfapprox":
        write_tfapprox(lut, path)
    else:
        write_lutfp(lut, path, gradients=gradients)
    return path
