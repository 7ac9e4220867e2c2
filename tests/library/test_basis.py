"""Cost bases: each published power against the exact circuit its own library published."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from approxlut.library import Cost, Library
from approxlut.library.basis import cost_basis, exact_multiplier, relative_power
from approxlut.library.importer import import_paths
from approxlut.lutgen.simulate import simulate_lut


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


def test_reports_and_cost_bases_take_the_same_exact_multiplier(lib, multiplier) -> None:
    """Without lutgen's ``exact4u`` two modelled exact circuits remain: the exact multiplier ``evaluate`` reports for
    layers left exact and the one every modelled power is measured against must be one circuit (one took the first
    full name, ``v1_mul4u_a``; the other the one without a release)."""
    lut = simulate_lut(multiplier(4, False), signed=False)
    lib.add(lut, name="mul4u_a", release="v1", cost=Cost(1.0, 1.0, 1.0, "estimated"))
    lib.add(lut, name="x4u_exact", cost=Cost(1.1, 1.0, 1.0, "estimated"))
    approx = lib.add(simulate_lut(multiplier(4, False, drop=2), signed=False), name="m", cost=Cost(0.5, 1.0, 1.0))
    exact = exact_multiplier(lib, 4, 4, False)
    assert exact is not None and exact.full_name == cost_basis(lib, approx).exact_name == "x4u_exact"
    assert relative_power(lib, approx)[0] == pytest.approx(0.5 / 1.1)
