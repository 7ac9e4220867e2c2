"""Resolve multiplier specs to LUTs, and keep one :class:`PreparedLut` per (LUT, device).

A spec is ``"float"``, ``"exact"``, a :class:`~approxlut.lutgen.lut.Lut`, a path (``.npz`` LUT, TFApprox
``.bin``, DATE'25 ``*_lutfp*.txt``, or a netlist: ``.v``/``.sv``/``.blif``/``.sop``/``.pla``, as in
``lutgen library import``) or a library name
(looked up in :meth:`approxlut.library.Library.open_default`).
"""

from __future__ import annotations

import hashlib
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ..circuits.io import NETLIST_SUFFIXES
from ..circuits.names import name_hint, said_signedness
from ..errors import ConfigError
from ..lutgen.lut import Lut, code_values
from ..native import PreparedLut
from .config import LayerConfig

if TYPE_CHECKING:
    from ..circuits.netlist import Netlist

LUT_SUFFIXES = (".npz", ".bin", ".txt")

_lock = threading.Lock()
_spec_cache: dict[tuple[str, str, float], Lut] = {}
_grad_cache: dict[tuple[str, str], Lut] = {}
_prepared_cache: dict[tuple[str, str, str, str], PreparedLut] = {}


@dataclass(frozen=True)
class ResolvedConfig:
    """A :class:`LayerConfig` with its multiplier looked up.

    Attributes:
        config: the config it came from.
        lut: the LUT to run (``None`` for ``"float"`` and for the fast exact path of ``"exact"``).
        bits_a: activation width (0 for float).
        bits_b: weight width (0 for float).
        scheme: ``"symmetric"``, ``"affine"`` or ``"float"``.
        name: the multiplier's name for reports.
    """

    config: LayerConfig
    lut: Lut | None
    bits_a: int
    bits_b: int
    scheme: str
    name: str
    _tables: dict[tuple[str, bool], PreparedLut] = field(default_factory=dict, compare=False, repr=False)

    def __deepcopy__(self, memo: dict[int, Any]) -> ResolvedConfig:
        return self  # immutable; the table cache is shared on purpose

    def prepared(self, device: torch.device | str, *, gradients: bool = False) -> PreparedLut:
        """The shared :class:`PreparedLut` of this multiplier on ``device`` (see :func:`prepared_lut`)."""
        key = (str(device), gradients)
        found = self._tables.get(key)
        if found is None:
            if self.lut is None:
                raise ConfigError(f"multiplier '{self.name}' runs without a table")
            found = prepared_lut(self.lut, device, gradients=gradients)
            self._tables[key] = found
        return found

    @property
    def is_float(self) -> bool:
        """No quantisation at all."""
        return self.scheme == "float"

    @property
    def is_exact_path(self) -> bool:
        """Quantised, with exact products computed by torch (no LUT)."""
        return not self.is_float and self.lut is None


def exact_lut(bits_a: int, bits_b: int, signed: bool, name: str | None = None) -> Lut:
    """The exact multiplier of the given widths as a :class:`Lut`."""
    forward = np.multiply.outer(code_values(bits_a, signed), code_values(bits_b, signed)).astype(np.int32)
    sign = "s" if signed else "u"
    label = name or (f"exact{bits_a}{sign}" if bits_a == bits_b else f"exact{bits_a}x{bits_b}{sign}")
    return Lut(forward=forward, bits_a=bits_a, bits_b=bits_b, signed=signed, name=label)


def _signed_from_file(path: Path, netlist: Netlist) -> bool:
    """What the file says: its name (``mul8s_``), else operand ports declared ``signed``; else ConfigError."""
    hint = name_hint(path.name)
    said = said_signedness(hint.signed if hint is not None else None, netlist.signed_ports)
    if said is None:
        raise ConfigError(
            f"{path}: cannot tell whether this netlist multiplies signed or unsigned operands; "
            "simulate it with `lutgen sim --signed/--unsigned` and pass the .npz instead"
        )
    return said[0]


def _load_path(path: Path) -> Lut:
    """A netlist (by its suffix) simulated, or a LUT file of any format (by its content)."""
    if path.suffix.lower() not in NETLIST_SUFFIXES:
        from ..lutgen.formats import read_lut_file

        return read_lut_file(path)
    from ..circuits.io import read_netlist
    from ..lutgen.simulate import simulate_lut

    netlist = read_netlist(path)
    return simulate_lut(netlist, signed=_signed_from_file(path, netlist), name=path.stem)


def _looks_like_path(spec: str) -> bool:
    return os.sep in spec or "/" in spec or spec.lower().endswith(LUT_SUFFIXES + NETLIST_SUFFIXES)


def load_multiplier(spec: str | Lut) -> Lut:
    """The :class:`Lut` of a spec that names a table (a ``Lut``, a path or a library name).

    Files and library entries are read once per process (files again when they change).
    """
    if isinstance(spec, Lut):
        return spec
    if spec in ("float", "exact"):
        raise ConfigError(f"'{spec}' is not a table; use exact_lut() for an exact multiplier")
    if _looks_like_path(spec):
        path = Path(spec).expanduser()
        if not path.is_file():
            raise ConfigError(f"multiplier file not found: {path}")
        key = ("path", str(path.resolve()), path.stat().st_mtime)
        with _lock:
            if key in _spec_cache:
                return _spec_cache[key]
        lut = _load_path(path)
    else:
        from ..library import Library
        from ..library.config import library_dir

        key = ("library", f"{library_dir()}:{spec}", 0.0)
        with _lock:
            if key in _spec_cache:
                return _spec_cache[key]
        lut = Library.open_default().load_lut(spec)
    with _lock:
        _spec_cache[key] = lut
    return lut


def resolve_config(config: LayerConfig) -> ResolvedConfig:
    """Look up the multiplier of ``config`` and settle widths and scheme.

    A signed LUT implies the symmetric scheme, an unsigned one the affine scheme; widths come from the
    LUT (``bits``, when given, must match). ``"exact"`` defaults to 8x8 symmetric.
    """
    if config.is_float:
        return ResolvedConfig(config, None, 0, 0, "float", "float")
    if config.multiplier == "exact":
        bits_a, bits_b = config.bit_pair or (8, 8)
        scheme = "symmetric" if config.scheme == "auto" else config.scheme
        sign = "s" if scheme == "symmetric" else "u"
        label = f"exact{bits_a}{sign}" if bits_a == bits_b else f"exact{bits_a}x{bits_b}{sign}"
        return ResolvedConfig(config, None, bits_a, bits_b, scheme, label)
    lut = load_multiplier(config.multiplier)
    if not (2 <= lut.bits_a <= 8 and 2 <= lut.bits_b <= 8):
        raise ConfigError(f"multiplier '{lut.name}' is {lut.bits_a}x{lut.bits_b}; LUT layers take 2..8 bits")
    if config.bit_pair is not None and config.bit_pair != (lut.bits_a, lut.bits_b):
        raise ConfigError(
            f"bits={config.bits!r} does not match multiplier '{lut.name}' ({lut.bits_a}x{lut.bits_b}); "
            "leave bits unset to use the multiplier's widths"
        )
    scheme = "symmetric" if lut.signed else "affine"
    if config.scheme not in ("auto", scheme):
        raise ConfigError(
            f"multiplier '{lut.name}' is {'signed' if lut.signed else 'unsigned'}, so it needs the "
            f"{scheme} scheme, not {config.scheme!r}"
        )
    return ResolvedConfig(config, lut, lut.bits_a, lut.bits_b, scheme, lut.name)


def _with_gradients(lut: Lut) -> Lut:
    if lut.grad_a is not None and lut.grad_b is not None:
        return lut
    key = (lut.hash, "difference")
    with _lock:
        cached = _grad_cache.get(key)
    if cached is None:
        cached = lut.with_gradients()
        with _lock:
            _grad_cache[key] = cached
    return cached


def _gradient_key(lut: Lut) -> str:
    """Identity of the gradient tables prepared for ``lut``: a hash of its own, or the default ones."""
    if lut.grad_a is None or lut.grad_b is None:
        return "default"
    digest = hashlib.sha256(np.ascontiguousarray(lut.grad_a, dtype="<f4").tobytes())
    digest.update(np.ascontiguousarray(lut.grad_b, dtype="<f4").tobytes())
    return digest.hexdigest()


def prepared_lut(lut: Lut, device: torch.device | str, *, gradients: bool = False) -> PreparedLut:
    """The shared :class:`approxlut.native.PreparedLut` of ``lut`` on ``device``.

    With ``gradients``, the tables carry gradient LUTs: the ``Lut``'s own (e.g. from
    ``lut.with_gradients(w)`` for another half window, cached separately per table content), or ones
    computed with the default half window when the ``Lut`` has none.
    """
    device = torch.device(device)
    key = (lut.hash, str(device), _gradient_key(lut) if gradients else "none", lut.name)
    with _lock:
        found = _prepared_cache.get(key)
    if found is None:
        source = _with_gradients(lut) if gradients else lut
        try:
            found = PreparedLut.from_lut(source, device=device)
        except RuntimeError as exc:
            raise ConfigError(f"cannot place multiplier '{lut.name}' on {device}: {exc}") from None
        with _lock:
            _prepared_cache[key] = found
    return found


def clear_caches() -> None:
    """Forget loaded and prepared multipliers (e.g. after the library changed)."""
    with _lock:
        _spec_cache.clear()
        _grad_cache.clear()
        _prepared_cache.clear()
