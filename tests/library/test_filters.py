"""The filter language: parsing, its text form, matching rules and the errors that list valid values."""

from __future__ import annotations

import pytest

from approxlut.errors import ConfigError
from approxlut.library import Cost
from approxlut.library.filters import Filter
from approxlut.lutgen.simulate import simulate_lut


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("bits=8,signed", Filter(bits=(8, 8), signed=True)),
        ("bits=8x4, unsigned", Filter(bits=(8, 4), signed=False)),
        ("signed=no,max-mae=0.5,max_power=1e-1", Filter(signed=False, limits=(("mae_pct", 0.5), ("power_mw", 0.1)))),
        ("origin=evoapprox v2022,family=trunc", Filter(origin="evoapprox v2022", family="trunc")),
        ("", Filter()),
        ("max_mae=0.01734998", Filter(limits=(("mae_pct", 0.01734998),))),  # (the text form kept every digit)
        (
            "max_mae=0.2,max_mae=0.2,origin=EvoApprox,origin=evoapprox",
            Filter(origin="EvoApprox", limits=(("mae_pct", 0.2),)),
        ),
    ],
)
def test_parse_and_text_form(text: str, expected: Filter) -> None:
    parsed = Filter.parse(text)
    assert parsed == expected
    assert Filter.parse(str(parsed)) == parsed  # the text form reads back


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("speed=3", "--filter: unknown field 'speed' (fields: signed, unsigned, bits=, origin=, release=, family="),
        ("mul8s_1KV8", "--filter: 'mul8s_1KV8' is not a filter"),
        ("bits=eight", "bits=eight is not a width: use e.g. bits=8 (8x8) or bits=8x4"),
        ("max_mae=-1", "max_mae=-1 needs a non-negative number"),
        ("max_mae=nan", "max_mae=nan needs a non-negative number"),
        ("max_mae=1_0", "max_mae=1_0 needs a non-negative number"),  # (float() reads 10)
        ("max_wce=\uff18", "max_wce=\uff18 needs a non-negative number"),  # a full-width 8
        ("bits=\uff18", "bits=\uff18 is not a width"),
        ("bits=0_8", "bits=0_8 is not a width"),
        ("signed,unsigned", "signed is given twice (signed and unsigned)"),
        ("signed=maybe", "signed=maybe: use yes or no"),
        ("family=", "'family=' needs a value"),
        ("max_mae=1,max_mae=2", "a bound on mae_pct is given twice"),
    ],
)
def test_bad_filters_say_what_is_valid(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        Filter.parse(text)
    assert message in str(raised.value)


def test_matching_rules(lib, multiplier) -> None:
    def add(name: str, bits: int, signed: bool, drop: int, **extra) -> None:
        lut = simulate_lut(multiplier(bits, signed, drop=drop), signed=signed)
        lib.add(lut, name=name, cost=Cost(0.1 * (1 + drop), 1.0, 1.0), **extra)

    add("t1", 4, False, 1, family="truncated", origin="builtin")
    add("t2", 4, True, 2, family="truncated", origin="builtin")
    add("b1", 4, False, 3, family="broken_array", origin="builtin")
    add("mul4u_E1", 4, False, 0, family="evoapprox", origin="evoapprox v2022", release="v2022")
    add("mul4u_E2", 4, False, 2, family="evoapprox", origin="evoapprox v1.0", release="v1.0")
    add("mul4_E3", 4, False, 1, family="evoapprox", origin="evoapprox8b")  # (EvoApprox8b: no release)

    def names(text: str) -> list[str]:
        return sorted(e.full_name for e in Filter.parse(text).select(lib))

    assert names("family=trunc") == names("family=truncated") == ["t1", "t2"]  # the built-ins' name prefix
    assert names("family=bam") == ["b1"] and names("family=broken") == ["b1"]  # alias, unique prefix
    evoapprox = ["mul4_E3", "v1.0_mul4u_E2", "v2022_mul4u_E1"]
    assert names("origin=evoapprox") == names("family=evoapprox") == evoapprox  # every release, EvoApprox8b too
    assert names("origin=EvoApprox8b") == ["mul4_E3"]
    assert names("origin=evoapprox v2022") == names("release=v2022") == ["v2022_mul4u_E1"]
    assert names("family=drum") == []  # a family the library lacks: valid, selects nothing
    assert names("unsigned,max_power=0.25") == ["mul4_E3", "t1", "v2022_mul4u_E1"]
    assert names("bits=8") == []
    for text, message in [
        ("family=xyz", "unknown family 'xyz' (valid: broken_array (bam), drum, evoapprox, exact,"),
        (
            "origin=evo",
            "unknown origin 'evo' (valid: builtin, evoapprox, evoapprox v1.0, evoapprox v2022, evoapprox8b, import",
        ),
        ("release=v2030", "unknown release 'v2030' (releases in this library: v1.0, v2022)"),
    ]:
        with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
            Filter.parse(text).select(lib)


def test_the_docs_name_every_field() -> None:
    from pathlib import Path

    from approxlut.library.filters import FLAGS, VALUE_FIELDS

    text = (Path(__file__).resolve().parents[2] / "docs" / "filters.md").read_text()
    for name in (*FLAGS, *(f"{field}=" for field in VALUE_FIELDS)):
        assert f"`{name}" in text, name


def test_a_bound_on_a_sampled_worst_case_counts_the_published_figure() -> None:
    """A wide circuit's WCE from a sample is a lower bound (0.38 %): with 0.41 % published, max_wce=0.4 must not
    pass it."""
    from types import SimpleNamespace

    def entry(wce: float, published: dict[str, str], sampled: bool = True) -> SimpleNamespace:
        return SimpleNamespace(
            bits_a=16,
            bits_b=16,
            signed=False,
            origin="evoapprox v2022",
            release="v2022",
            family="evoapprox",
            wce_pct=wce,
            mae_pct=0.1,
            sampled=sampled,
            published=published,
        )

    bound = Filter.parse("max_wce=0.4")
    assert not bound.matches([entry(0.38, {"WCE%": "0.41"})])
    assert bound.matches([entry(0.38, {})])  # (nothing published: the sample's figure, shown as a lower bound)
    assert bound.matches([entry(0.38, {"WCE%": "0.41"}, sampled=False)])  # (exhaustive: the measured one rules)
    assert Filter.parse("max_mae=0.2").matches([entry(0.38, {"MAE%": "0.3"})])  # (a mean is an estimate, not a bound)
