"""Cost bases: each published power against the exact circuit its own library published."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from approxlut.library import Library
from approxlut.library.basis import relative_power
from approxlut.library.importer import import_paths


def test_an_unreleased_checkout_and_evoapprox8b_keep_their_own_exact_circuits(corpus: Path, tmp_path: Path) -> None:
    """An EvoApproxLib checkout as shipped (file names without a release) and EvoApprox8b both have the empty
    release: matching on the release alone measured ``mul8u_ZB3`` against EvoApprox8b's ``mul8_282`` (0.81 instead
    of about 1)."""
    checkout = tmp_path / "evoapproxlib" / "multiplers" / "8x8_unsigned" / "pareto_pwr_mae"
    checkout.mkdir(parents=True)
    for name in ("1JJQ", "ZB3"):
        shutil.copy(corpus / "evoapprox" / "8x8" / f"v2022_mul8u_{name}.v", checkout / f"mul8u_{name}.v")
    with Library.open(tmp_path / "lib", create=True) as lib:
        summary = import_paths(lib, [tmp_path / "evoapproxlib", corpus / "evoapprox8b"])
        assert not summary.failed
        entry, exact = lib.entry("mul8u_ZB3"), lib.entry("mul8u_1JJQ")
        assert entry.release == exact.release == "" and entry.origin != lib.entry("mul8_038").origin
        relative, basis = relative_power(lib, entry)
        assert basis.exact_name == "mul8u_1JJQ" and basis.label == f"published {entry.origin}"
        assert relative == pytest.approx(entry.power_mw / exact.power_mw) and relative > 0.99
        other, basis8 = relative_power(lib, lib.entry("mul8_038"))
        assert lib.entry(basis8.exact_name).origin == "evoapprox8b" and basis8.label == "published evoapprox8b"
        assert other == pytest.approx(lib.entry("mul8_038").power_mw / lib.entry(basis8.exact_name).power_mw)
