"""Table plans (exact product + offsets + scaled byte planes): the decomposition reproduces every table entry,
and every plan the CPU engine runs is bit-exact against the reference (edge codes, flips, padding)."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from approxlut.errors import LutgenError
from approxlut.native import PreparedLut, cpu_features, engines, lut_bmm, tuning
from approxlut.native import plan as plans
from approxlut.native.bench import bench_lut
from approxlut.native.conv import Conv2dLowering, conv2d_spec
from approxlut.native.costs import DEFAULT_COSTS
from approxlut.native.ops import choose_engine, quantised_conv2d
from approxlut.native.plan import TablePlan, int8_flip, int8_gemm_is_exact, plan_for
from approxlut.native.prepared import code_values, value_range
from approxlut.nn.multipliers import load_multiplier

ISA_PATHS = cpu_features.detect().paths()


def structured_lut(bits: int, signed: bool, *, error_span: int, scale: int = 1, seed: int = 0) -> PreparedLut:
    """``a·b + r[a] + c[b] + scale·E`` with random offsets and ``E`` spanning ``error_span`` values (a 2x2
    checkerboard of its extremes in the corner keeps offsets from narrowing it)."""
    gen = torch.Generator().manual_seed(seed)
    values = code_values(bits, signed)
    size = 1 << bits
    error = torch.randint(0, error_span, (size, size), generator=gen)
    error[0, 0] = error[1, 1] = 0
    error[0, 1] = error[1, 0] = error_span - 1
    rows = torch.randint(-300, 300, (size, 1), generator=gen)
    cols = torch.randint(-300, 300, (1, size), generator=gen)
    table = values[:, None] * values[None, :] + rows + cols + scale * error
    return PreparedLut(table.to(torch.int32), bits, bits, signed, name=f"structured{bits}{'s' if signed else 'u'}")


def foldable_lut(*, error_span: int, seed: int, flip: int = 0x80, bit: int = 7, scale: int = 1) -> PreparedLut:
    """An unsigned 8x8 ``a·b + r[a] + c[b] + scale·E`` whose error's rows with bit ``bit`` of the stored code
    ``a ^ flip`` set are the rows with it clear plus a term of the row and a term of the column (``E`` spanning
    about ``error_span``)."""
    gen = torch.Generator().manual_seed(seed)
    values = code_values(8, False)
    low = torch.randint(0, error_span // 2, (128, 256), generator=gen)
    row_term = torch.randint(-40, 40, (128, 1), generator=gen)
    col_term = torch.randint(0, error_span // 2, (1, 256), generator=gen)
    stored = torch.empty((256, 256), dtype=torch.int64)  # by stored code
    stored[torch.from_numpy(plans.fold_order(bit).copy())] = torch.cat([low, low + row_term + col_term])
    error = stored[torch.arange(256) ^ flip]
    rows = torch.randint(-300, 300, (256, 1), generator=gen)
    cols = torch.randint(-300, 300, (1, 256), generator=gen)
    table = values[:, None] * values[None, :] + rows + cols + scale * error
    return PreparedLut(table.to(torch.int32), 8, 8, False, name="foldable")


def narrow_lut(*, kept_bits: int, error_span: int, seed: int, flip: int = 0x80, scale: int = 1) -> PreparedLut:
    """An unsigned 8x8 ``a·b + r[a] + c[b] + scale·E`` whose error, by stored code ``a ^ flip``, repeats every
    ``2^kept_bits`` rows up to a term of the row (``E`` spanning ``error_span``): the higher code bits are row
    offsets alone."""
    gen = torch.Generator().manual_seed(seed)
    values = code_values(8, False)
    kept = 1 << kept_bits
    low = torch.randint(0, error_span, (kept, 256), generator=gen)
    low[0, 0], low[-1, 1] = 0, error_span - 1
    stored = low[torch.arange(256) % kept] + torch.randint(-60, 60, (256, 1), generator=gen)
    error = stored[torch.arange(256) ^ flip]
    rows = torch.randint(-300, 300, (256, 1), generator=gen)
    cols = torch.randint(-300, 300, (1, 256), generator=gen)
    table = values[:, None] * values[None, :] + rows + cols + scale * error
    return PreparedLut(table.to(torch.int32), 8, 8, False, name=f"narrow{kept_bits}")


def rebuilt(lut: PreparedLut, plan: TablePlan) -> np.ndarray:
    """The table as the plan writes it, indexed by codes of a below the plan's rows (in code order)."""
    rows, cols = plan.rows, 1 << lut.bits_b
    planes = []
    for i in range(max(1, plan.planes)):
        if plan.fold:  # rows of stored codes >= 128: the lower rows plus the column's fold byte, mod 256
            lower = plan.table[:cols, i, : rows // 2].numpy().astype(np.int64).T
            if plan.fold_weights is not None:  # (the fold's term is in the int8 product, below)
                fold = np.zeros(cols, dtype=np.int64)
            else:
                fold = plan.table[:cols, plan.planes + i, 0].numpy().astype(np.int64)
            planes.append(np.concatenate([lower, (lower + fold[None, :]) & 0xFF]))
        else:  # (a narrow plan's rows repeat: the kernels read the low bits of the codes; a high plane by
            # fewer code bits is read at code >> hi_drop)
            plane = plan.table[:cols, i, :].numpy().astype(np.int64).T
            read = np.arange(rows) >> (plan.hi_drop if i == 1 else 0)
            planes.append(plane[read % plane.shape[0]])
    q = planes[0] + (planes[1] << plan.shift if plan.planes == 2 else 0)
    if plan.fold:  # rows in the fold's order, back to code order
        q[plans.fold_order(plan.fold_bit, rows)] = q.copy()
    stored_a, stored_b = np.arange(rows), np.arange(cols)
    if plan.exact == "int8":  # (a coarse table's int8 product reads its codes shifted back: see exact_shift)
        read_a = ((stored_a << plan.exact_shift) & 0xFF) ^ plan.exact_flip
        x, y = np.where(read_a >= 128, read_a - 256, read_a), np.where(stored_b >= 128, stored_b - 256, stored_b)
    elif plan.exact == "values":
        x = code_values(lut.bits_a, lut.signed).numpy()[stored_a ^ plan.flip_a]
        y = code_values(lut.bits_b, lut.signed).numpy()[stored_b ^ plan.flip_b]
    else:
        x, y = np.zeros(rows, dtype=np.int64), np.zeros(cols, dtype=np.int64)
    table = np.outer(x, y) + plan.bias + plan.scale * q
    if plan.fold_weights is not None:
        table += np.outer(stored_a >> 7, plan.fold_weights.numpy().astype(np.int64)[:cols])
    if plan.row_offset is not None:
        table += plan.row_offset.numpy()[:, None]
    if plan.col_offset is not None:
        table += plan.col_offset.numpy()[None, :cols]
    out = np.empty_like(table)
    out[np.ix_(stored_a ^ plan.flip_a, stored_b ^ plan.flip_b)] = table
    return out


@pytest.mark.parametrize("isa", ["avx2", "avx512vbmi"])
@pytest.mark.parametrize(
    ("bits", "signed", "rows_bits"),
    [(8, True, 8), (8, True, 7), (8, False, 8), (8, False, 7), (6, True, 6), (4, False, 4)],
)
def test_plans_reproduce_the_table(
    isa: str, bits: int, signed: bool, rows_bits: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every entry the plan covers equals the table: each exact kind (preferred whenever it fits), with and
    without the int8 flips."""
    monkeypatch.setattr(plans, "exact_cost", lambda isa, kind: -100.0)
    lut = structured_lut(bits, signed, error_span=90, scale=4, seed=bits + 2 * signed)
    rows = 1 << rows_bits
    flip = int8_flip(bits, signed)
    options: list[tuple[str | None, int, int]] = [(None, 0, 0), ("values", 0, 0), ("int8", 0, 0)]
    if flip:
        # (a flipped panel covers every code: its bound is 2 * flip - 1)
        options += [("int8", flip if rows_bits == bits else 0, flip), ("int8", 0, flip)]
    for kind, flip_a, flip_b in options:
        plan = plan_for(lut, isa, rows, flip_a, flip_b, kind)
        # The int8 reading of codes is the value (plus a constant) where flipped, or below the flip.
        reads_values = kind != "int8" or not flip or ((flip_a == flip or rows <= flip) and flip_b == flip)
        if plan is None:
            assert not reads_values
            continue
        want = lut.forward.numpy().astype(np.int64)[:rows]
        assert np.array_equal(rebuilt(lut, plan), want), (kind, flip_a, flip_b, plan.describe())
        if reads_values and kind is not None:
            assert plan.exact == kind and plan.planes == 1 and plan.scale == 4, plan.describe()
            # Row offsets (one more pass) are fitted where they widen the byte-sum groups: VBMI only.
            assert plan.span <= 100 or isa == "avx2", plan.describe()  # 90 at best; the fit is a heuristic


@pytest.mark.parametrize(("kind", "flip"), [("values", 0), ("int8", 0x80)])
def test_folded_plans_reproduce_the_table(kind: str, flip: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """8-bit codes whose upper half is the lower half plus separable terms fold on VBMI: one plane of 128 rows
    and a fold byte per column reproduce every entry, and so do two planes with a fold byte each, and other
    fold bits; AVX2 folds on the top bit only; a table that does not fold, and codes below 128 on VBMI, do
    not fold."""
    monkeypatch.setattr(plans, "exact_cost", lambda isa, kind: -100.0)
    lut = foldable_lut(error_span=150, seed=7, flip=flip)
    plan = plan_for(lut, "avx512vbmi", 256, flip, flip, kind)
    assert plan is not None and plan.fold and plan.planes == 1 and plan.exact == kind, plan
    # With the int8 exact product, the fold's term (fitting int8) joins that GEMM: no fold register.
    in_gemm = kind == "int8"
    assert (plan.fold_weights is not None) == in_gemm and "folded" in plan.describe()
    assert plan.table.shape == (256, 1 if in_gemm else 2, 128)
    assert np.array_equal(rebuilt(lut, plan), lut.forward.numpy().astype(np.int64))
    assert plan.row_offset is not None  # the upper rows' terms
    wide = foldable_lut(error_span=700, seed=9, flip=flip)
    two = plan_for(wide, "avx512vbmi", 256, flip, flip, kind)
    assert two is not None and two.fold and two.planes == 2 and two.table.shape == (256, 4, 128), two
    assert np.array_equal(rebuilt(wide, two), wide.forward.numpy().astype(np.int64))
    for bit, span in ((0, 150), (3, 700), (6, 150)):
        other_bit = foldable_lut(error_span=span, seed=10 + bit, flip=flip, bit=bit)
        plan = plan_for(other_bit, "avx512vbmi", 256, flip, flip, kind)
        assert plan is not None and plan.fold and plan.fold_bit == bit, plan
        assert f"folded on bit {bit}" in plan.describe()
        assert np.array_equal(rebuilt(other_bit, plan), other_bit.forward.numpy().astype(np.int64))
    # AVX2 folds on the top bit (half the sub-tables), two planes split below bit 8 to leave room for the
    # fold bytes without carries; codes below 128 fold on bit 6.
    for table, planes in ((lut, 1), (wide, 2)):
        on_avx2 = plan_for(table, "avx2", 256, flip, flip, kind)
        assert on_avx2 is not None and on_avx2.fold and on_avx2.fold_bit == 7, on_avx2
        assert on_avx2.planes == planes and (planes == 1 or on_avx2.shift < 8), on_avx2.describe()
        assert np.array_equal(rebuilt(table, on_avx2), table.forward.numpy().astype(np.int64))
    narrow = foldable_lut(error_span=150, seed=18, flip=0, bit=6)
    below = plan_for(narrow, "avx2", 128, 0, 0, kind)
    assert below is not None and below.fold and below.fold_bit == 6 and below.rows == 128, below
    assert np.array_equal(rebuilt(narrow, below), narrow.forward.numpy().astype(np.int64)[:128])
    for other in (
        plan_for(foldable_lut(error_span=150, seed=10, flip=flip, bit=0), "avx2", 256, flip, flip, kind),
        plan_for(lut, "avx512vbmi", 128, flip, flip, kind),
        plan_for(structured_lut(8, False, error_span=150, seed=8), "avx512vbmi", 256, flip, flip, kind),
    ):
        assert other is not None and not other.fold, other.describe()


def runs_of_unsigned_codes(
    lut: PreparedLut, seed: int, planted: list[int], monkeypatch: pytest.MonkeyPatch, *, panel: str | None = None
) -> list[str]:
    """GEMMs of odd shapes and convolutions (padding, stride, groups; panels of ``panel`` bytes where given) of
    unsigned 8-bit codes with ``planted`` codes among them, each bit-exact against the reference: the paths the
    CPU engine took."""
    engine = engines.get_engine("cpu")
    paths = []
    for i, (g, m, k, n) in enumerate([(1, 37, 19, 5), (2, 300, 261, 3), (1, 65, 700, 4)]):
        a = edge_values((g, m, k), 0, 255, seed + i)
        a.view(-1)[3 : 3 + len(planted)] = torch.tensor(planted)
        paths.append(check_bmm(a, edge_values((g, k, n), 0, 255, seed + 5 + i), lut))
    if panel is not None:
        monkeypatch.setenv(tuning.PANEL_ENV, panel)
    for stride, pad, groups in [(1, 1, 1), (2, (2, 1), 1), (1, 1, 2)]:
        x = edge_values((2, 4, 7, 6), 0, 255, seed + 10).to(torch.uint8)
        x.view(-1)[3:7] = torch.tensor([planted[0], planted[1], planted[3], planted[-1]], dtype=torch.uint8)
        w = edge_values((6, 4 // groups, 3, 3), 0, 255, seed + 11).to(torch.uint8)
        spec = conv2d_spec(w.shape, stride, pad, 1, groups)
        want = Conv2dLowering(lut, engines.get_engine("reference"), ste=True, spec=spec).forward(x, w)
        assert torch.equal(Conv2dLowering(lut, engine, ste=True, spec=spec).forward(x, w), want)
        paths.append(engine.last_path or "")
    if panel is not None:
        monkeypatch.delenv(tuning.PANEL_ENV)
    return paths


@pytest.mark.parametrize("isa", ["avx2", "avx512vbmi"])
@pytest.mark.parametrize(("kind", "flip"), [("values", 0), ("int8", 0x80)])
def test_narrow_plans_reproduce_the_table(isa: str, kind: str, flip: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """A table whose error repeats every 2^L rows of the stored codes (up to row offsets) is planned narrow: the
    kernels look up L bits, the table holds those rows repeated up to its padded height (kernels read at least
    6 bits on VBMI, 4 on AVX2), the row offsets hold the rest, and every entry comes back; two planes too, and
    with a scale. A table without that repetition is not narrow."""
    monkeypatch.setattr(plans, "exact_cost", lambda isa, kind: 0.0)  # (an exact product in every plan)
    for kept_bits, span, scale in ((2, 3, 1), (4, 60, 2), (5, 150, 1), (6, 400, 1), (7, 90, 3)):
        lut = narrow_lut(kept_bits=kept_bits, error_span=span, seed=30 + kept_bits, flip=flip, scale=scale)
        plan = plan_for(lut, isa, 256, flip, flip, kind)
        assert plan is not None and plan.narrow and plan.lookup_bits == kept_bits, (kept_bits, plan)
        assert plan.exact == kind and plan.planes == (2 if span > 256 else 1) and plan.scale == scale, plan
        assert plan.table.shape == (256, plan.planes, 64 if kept_bits < 7 else 128), plan.table.shape
        assert f"{kept_bits} of 8 code bits" in plan.describe() and plan.row_offset is not None
        assert np.array_equal(rebuilt(lut, plan), lut.forward.numpy().astype(np.int64)), plan.describe()
        if kept_bits < 6:  # the 64 stored rows repeat the 2^L looked up
            top = plan.table[:, :, : 1 << kept_bits]
            assert torch.equal(plan.table, top.repeat(1, 1, 64 >> kept_bits))
    plain = plan_for(structured_lut(8, False, error_span=150, seed=8), isa, 256, flip, flip, kind)
    assert plain is not None and not plain.narrow and plain.lookup_bits == 8, plain.describe()


def test_plan_choice_follows_the_machine_costs(corpus: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """mul8s_1KX5 over ReLU'd codes: where a 6-bit look-up costs much less than a 7-bit one and the int8 product
    is cheap (the Intel Xeon's defaults), its plan is narrow with the int8 product; where the widths cost about
    the same and the int8 product is dearer (an AMD Zen 4's measured prices), it looks up two planes of the
    table at 7 bits with no exact product. Both reproduce the table."""
    table = load_multiplier(str(corpus / "evoapprox" / "8x8" / "v2022_mul8s_1KX5.v"))
    lut = PreparedLut.from_lut(table)
    chosen = plan_for(lut, "avx512vbmi", 128, 0, 0, "int8")
    assert chosen is not None and chosen.narrow and chosen.exact == "int8" and chosen.lookup_bits == 5, chosen
    zen4 = replace(DEFAULT_COSTS, lookup={6: 1.0, 7: 1.2, 8: 2.4}, widen=0.5, exact_int8=0.72, source="measured")
    monkeypatch.setattr(plans, "kernel_costs", lambda: zen4)
    other = PreparedLut.from_lut(table)  # (plans are cached per LUT)
    measured = plan_for(other, "avx512vbmi", 128, 0, 0, "int8")
    assert measured is not None and not measured.narrow and measured.exact is None, measured
    assert measured.planes == 2 and measured.lookup_bits == 7
    want = lut.forward.numpy().astype(np.int64)[:128]
    assert np.array_equal(rebuilt(lut, chosen), want) and np.array_equal(rebuilt(other, measured), want)


def test_fold_into_the_int8_product() -> None:
    """A table folded on bit 7 with the int8 exact product takes the fold's term into that GEMM on VBMI (cheaper
    than the kernel's masked add there) and not on AVX2 (dearer there), with a scale as well; the sum bound
    covers the fold's term beside the int8 product."""
    lut = foldable_lut(error_span=150, seed=19, scale=3)
    vbmi = plan_for(lut, "avx512vbmi", 256, 0x80, 0x80, "int8")
    assert vbmi is not None and vbmi.fold and vbmi.fold_weights is not None and vbmi.scale == 3, vbmi
    assert np.array_equal(rebuilt(lut, vbmi), lut.forward.numpy().astype(np.int64))
    rows_bound = int(vbmi.row_offset.abs().max()) + 1 if vbmi.row_offset is not None else 0
    assert vbmi.sum_bound == max(vbmi.span, (1 << 14) + 128, rows_bound)
    avx2 = plan_for(lut, "avx2", 256, 0x80, 0x80, "int8")
    assert avx2 is not None and avx2.fold and avx2.fold_weights is None and avx2.exact == "int8", avx2
    rows_bound = int(avx2.row_offset.abs().max()) + 1 if avx2.row_offset is not None else 0
    assert avx2.table.shape == (256, 2, 128) and avx2.sum_bound == max(avx2.span, 1 << 14, rows_bound)
    assert np.array_equal(rebuilt(lut, avx2), lut.forward.numpy().astype(np.int64))


def test_plan_choice() -> None:
    """The cost model: an 8x8 signed multiplier whose error fits a plane takes the exact product on VBMI (int8;
    a float product costs as much as the plane it saves there) and AVX2 (both); a two-plane error beats two
    planes of the table (split at bit 5 on VBMI, where both planes then sum bytes before widening); narrow
    tables stay one plane of T."""
    one = structured_lut(8, True, error_span=200, seed=1)
    for isa, kind, exact in [
        ("avx512vbmi", "int8", "int8"),
        ("avx512vbmi", "values", None),
        ("avx2", "int8", "int8"),
        ("avx2", "values", "values"),
    ]:
        chosen = plan_for(one, isa, 128, 0, 0, kind)
        assert chosen is not None and chosen.exact == exact, (isa, kind)
    unsigned = structured_lut(8, False, error_span=400, seed=2)
    chosen = plan_for(unsigned, "avx512vbmi", 256, 0x80, 0x80, "int8")
    assert chosen is not None and (chosen.exact, chosen.planes) == ("int8", 2)
    signed = structured_lut(8, True, error_span=400, seed=2)
    chosen = plan_for(signed, "avx512vbmi", 128, 0, 0, "int8")
    assert chosen is not None and (chosen.exact, chosen.planes, chosen.shift) == ("int8", 2, 5)
    on_avx2 = plan_for(signed, "avx2", 128, 0, 0, None)  # (unfolded, AVX2 gains nothing from another split)
    assert on_avx2 is not None and on_avx2.planes == 2 and on_avx2.shift == 8
    narrow = structured_lut(4, True, error_span=10, seed=3)
    chosen = plan_for(narrow, "avx512vbmi", 16, 8, 8, "int8")
    assert chosen is not None and (chosen.exact, chosen.planes) == (None, 1)


def test_plan_groups_and_planes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Small entries are summed as bytes before widening (VBMI, and AVX2's one plane); wider errors take a second
    plane whose small entries are grouped too (VBMI); tables beyond 2^16 values after the offsets have no plan."""
    monkeypatch.setattr(plans, "exact_cost", lambda isa, kind: -100.0)
    narrow = plan_for(structured_lut(8, True, error_span=30, seed=1), "avx512vbmi", 128, 0, 0, "int8")
    assert narrow is not None and (narrow.planes, narrow.group_lo) == (1, 8)
    middle = plan_for(structured_lut(8, True, error_span=120, seed=2), "avx512vbmi", 128, 0, 0, "int8")
    assert middle is not None and (middle.planes, middle.group_lo) == (1, 2)
    two = plan_for(structured_lut(8, True, error_span=400, seed=3), "avx512vbmi", 128, 0, 0, "int8")
    assert two is not None and (two.planes, two.exact, two.shift, two.group_lo, two.group_hi) == (2, "int8", 5, 8, 8)
    assert int(two.table[:, 0].max()) < 32 and int(two.table[:, 1].max()) * 8 <= 255
    on_avx2 = plan_for(structured_lut(8, True, error_span=30, seed=1), "avx2", 128, 0, 0, "int8")
    assert on_avx2 is not None and (on_avx2.planes, on_avx2.group_lo) == (1, 8)
    on_avx2 = plan_for(structured_lut(8, True, error_span=120, seed=2), "avx2", 128, 0, 0, "int8")
    assert on_avx2 is not None and (on_avx2.planes, on_avx2.group_lo) == (1, 2)
    on_avx2 = plan_for(structured_lut(8, True, error_span=400, seed=3), "avx2", 128, 0, 0, "int8")
    assert on_avx2 is not None and (on_avx2.planes, on_avx2.group_lo, on_avx2.group_hi) == (2, 1, 1)
    gen = torch.Generator().manual_seed(4)
    wide = PreparedLut(torch.randint(-(1 << 20), 1 << 20, (256, 256), generator=gen, dtype=torch.int32), 8, 8, True)
    assert plan_for(wide, "avx512vbmi", 256, 0, 0, "int8") is None


# --- the engine ----------------------------------------------------------------------------------------------


PLAN_ISAS = [isa for isa in ISA_PATHS if isa in engines.PLAN_PATHS]


@pytest.fixture(params=PLAN_ISAS or [pytest.param("none", marks=pytest.mark.skip(reason="no AVX2 or VBMI"))])
def isa(request: pytest.FixtureRequest, native: object, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv(cpu_features.ISA_ENV, request.param)
    return str(request.param)


@pytest.fixture(params=["int8", "values"])
def kind(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Each way of computing the exact product (int8 only where the machine's int8 GEMM is exact), preferred
    by the cost model whenever a plan with it fits."""
    if request.param == "int8" and not int8_gemm_is_exact():
        pytest.skip("torch's int8 GEMM is not exact here (no VNNI/AMX)")
    monkeypatch.setattr(engines, "exact_kind", lambda: request.param)
    monkeypatch.setattr(plans, "exact_cost", lambda isa, kind: -100.0)
    return str(request.param)


def edge_values(shape: tuple[int, ...], low: int, high: int, seed: int) -> torch.Tensor:
    """Random integers in ``[low, high]`` with 0, ``high`` and ``low`` planted first."""
    gen = torch.Generator().manual_seed(seed)
    out = torch.randint(low, high + 1, shape, generator=gen).flatten()
    out[:3] = torch.tensor([0, high, low])
    return out.reshape(shape)


def check_bmm(a: torch.Tensor, b: torch.Tensor, lut: PreparedLut) -> str:
    want = lut_bmm(a, b, lut, engine="reference")
    got = lut_bmm(a, b, lut, engine="cpu")
    path = engines.get_engine("cpu").last_path or ""
    assert torch.equal(got, want), path
    return path


@pytest.mark.parametrize(("bits", "signed"), [(8, True), (8, False), (6, True), (7, False)])
def test_engine_runs_exact_plans_bit_exactly(isa: str, kind: str, bits: int, signed: bool) -> None:
    """Structured multipliers take exact product + one plane; activations below and reaching the flip (after a
    ReLU and not), edge codes, odd shapes, groups."""
    lut = structured_lut(bits, signed, error_span=200, scale=3, seed=10 + bits)
    low, high = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    for top in (high, high // 2):  # all codes / codes below the flip (e.g. after a ReLU)
        for i, (g, m, k, n) in enumerate([(1, 37, 19, 5), (2, 300, 261, 3), (1, 65, 700, 4)]):
            a = edge_values((g, m, k), 0 if top != high else low, top, 20 + i)
            b = edge_values((g, k, n), low, high, 30 + i)
            path = check_bmm(a, b, lut)
            assert f"exact {kind} + 1 plane" in path, path


@pytest.mark.parametrize(("bits", "signed"), [(8, True), (8, False), (6, True), (4, False)])
def test_exact_products_need_no_plane(isa: str, kind: str, bits: int, signed: bool) -> None:
    """Exact products plus row and column offsets: a plan of no planes (nothing looked up), GEMM and direct
    conv bit-exact at the edge codes; a plain exact multiplier takes it through the automatic engine choice
    where the exact product is the int8 GEMM."""
    lut = structured_lut(bits, signed, error_span=1, seed=50 + bits)
    low, high = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    for i, (g, m, k, n) in enumerate([(1, 37, 19, 5), (2, 300, 261, 3)]):
        path = check_bmm(edge_values((g, m, k), low, high, 60 + i), edge_values((g, k, n), low, high, 62 + i), lut)
        assert f"exact {kind} + 0 planes" in path, path
    dtype = torch.int8 if signed else torch.uint8
    x = edge_values((2, 4, 7, 6), low, high, 64).to(dtype)
    w = edge_values((6, 2, 3, 3), low, high, 65).to(dtype)
    spec = conv2d_spec(w.shape, 1, 1, 1, 2)
    want = Conv2dLowering(lut, engines.get_engine("reference"), ste=True, spec=spec).forward(x, w)
    engine = engines.get_engine("cpu")
    assert torch.equal(Conv2dLowering(lut, engine, ste=True, spec=spec).forward(x, w), want)
    assert isinstance(engine, engines.CpuEngine) and engine.last_plan is not None and engine.last_plan.planes == 0
    values = code_values(bits, signed)
    exact = PreparedLut((values[:, None] * values[None, :]).to(torch.int32), bits, bits, signed, name="exact")
    a, b = edge_values((1, 40, 30), low, high, 66), edge_values((1, 30, 7), low, high, 67)
    assert torch.equal(lut_bmm(a, b, exact).to(torch.int64), torch.bmm(a.double(), b.double()).to(torch.int64))
    assert choose_engine(exact, None, "cpu").name == ("cpu" if kind == "int8" else "decomp")


def test_engine_runs_folded_plans_bit_exactly(isa: str, kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Folded tables of one and two planes on VBMI (any fold bit) and AVX2 (the top bit): GEMMs with the edge
    codes 0, 127, 128 and 255 of a, codes all below 128, every byte-sum group, odd shapes; the direct conv with
    padding, a stride, groups and panels of a few rows of k."""
    flip = 0x80 if kind == "int8" else 0
    for seed, span, bit in ((11, 20, 7), (12, 100, 0), (13, 150, 7), (14, 400, 5), (16, 3000, 7), (17, 900, 2)):
        lut = foldable_lut(error_span=span, seed=seed, flip=flip, bit=bit)
        for i, (g, m, k, n) in enumerate([(1, 37, 19, 5), (2, 300, 261, 3), (1, 65, 700, 4)]):
            a = edge_values((g, m, k), 0, 255, 80 + i)
            a.view(-1)[3:6] = torch.tensor([127, 128, 255])
            b = edge_values((g, k, n), 0, 255, 90 + i)
            path = check_bmm(a, b, lut)
            # (AVX2 folds on the top bit only)
            assert ("folded" in path) == (isa == "avx512vbmi" or bit == 7), path
            assert "folded" not in check_bmm(a % 128, b, lut)
    engine = engines.get_engine("cpu")
    for panel, span, bit in ((None, 150, 7), ("1280", 150, 4), (None, 900, 7), (None, 900, 1)):
        lut = foldable_lut(error_span=span, seed=15, flip=flip, bit=bit)
        if panel is None:
            monkeypatch.delenv(tuning.PANEL_ENV, raising=False)
        else:
            monkeypatch.setenv(tuning.PANEL_ENV, panel)
        for stride, pad, groups in [(1, 1, 1), (2, (2, 1), 1), (1, 1, 2)]:
            x = edge_values((2, 4, 7, 6), 0, 255, 95).to(torch.uint8)
            x.view(-1)[3:5] = torch.tensor([127, 128], dtype=torch.uint8)
            w = edge_values((6, 4 // groups, 3, 3), 0, 255, 96).to(torch.uint8)
            spec = conv2d_spec(w.shape, stride, pad, 1, groups)
            want = Conv2dLowering(lut, engines.get_engine("reference"), ste=True, spec=spec).forward(x, w)
            assert torch.equal(Conv2dLowering(lut, engine, ste=True, spec=spec).forward(x, w), want)
            folded = engine.last_path is not None and f"folded on bit {bit}" in engine.last_path
            assert folded == (isa == "avx512vbmi" or bit == 7), engine.last_path


def test_engine_runs_narrow_plans_bit_exactly(isa: str, kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Narrow tables (2, 4, 5 and 7 of 8 code bits looked up; one and two planes): GEMMs whose codes of a have
    every high bit set somewhere (the kernels must ignore them: AVX2 looks up 4 bits with one sub-table), with
    the edge codes 0, 127, 128 and 255 and odd shapes; the direct conv with padding, a stride, groups and panels
    of a few rows of k; the bench table over ReLU'd codes looks up 5 of its 7 code bits."""
    flip = 0x80 if kind == "int8" else 0
    for kept_bits, span in ((2, 5), (4, 90), (5, 400), (7, 150)):
        lut = narrow_lut(kept_bits=kept_bits, error_span=span, seed=50 + kept_bits, flip=flip)
        paths = runs_of_unsigned_codes(lut, 120, [127, 128, 255, 16, 32, 64, 240], monkeypatch, panel="1280")
        assert all(f"{kept_bits} of 8 code bits" in path for path in paths), paths
    approx = PreparedLut.from_lut(bench_lut("approx"))
    for i, (g, m, k, n) in enumerate([(1, 37, 19, 5), (2, 300, 261, 3)]):
        path = check_bmm(edge_values((g, m, k), 0, 127, 110 + i), edge_values((g, k, n), -128, 127, 112 + i), approx)
        assert "5 of 7 code bits" in path, path


def coarse_high_lut(*, drop: int, seed: int) -> PreparedLut:
    """An unsigned 8x8 ``a·b + c[b] + E`` whose error is ``32·H[a >> drop, b]`` plus up to 31: two planes,
    the high one a function of the code's top ``8 - drop`` bits up to what the low plane holds."""
    gen = torch.Generator().manual_seed(seed)
    values = code_values(8, False)
    high = torch.randint(0, 41, (256 >> drop, 256), generator=gen)
    high[0, 0], high[-1, 1] = 0, 40
    error = 32 * high[torch.arange(256) >> drop] + torch.randint(0, 32, (256, 256), generator=gen)
    cols = torch.randint(-300, 300, (1, 256), generator=gen)
    table = values[:, None] * values[None, :] + cols + error
    return PreparedLut(table.to(torch.int32), 8, 8, False, name=f"coarse-high{drop}")


def test_high_plane_by_fewer_code_bits(native: object, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two planes whose high plane depends on the code's top bits only (up to what the low plane holds) look it
    up on ``a >> L``: on VBMI L = 1 (7 bits) or 2 (6 bits, the cheapest: a plan keeps the fewest dropped bits at
    that width), on AVX2 L = 1..4 (fewer sub-tables). The plan rebuilds the table; GEMMs of odd shapes and
    convolutions (padding, stride, groups) run bit-exactly at the edge codes on each path this CPU has."""
    monkeypatch.setattr(plans, "exact_cost", lambda isa, kind: -100.0)  # (the exact product's plans, always)
    expected = {"avx512vbmi": {1: 1, 3: 2, 5: 2}, "avx2": {1: 1, 3: 3, 5: 4}}
    luts = {drop: coarse_high_lut(drop=drop, seed=60 + drop) for drop in (1, 3, 5)}
    for isa, drops in expected.items():
        for drop, kept in drops.items():
            plan = plan_for(luts[drop], isa, 256, 0, 0, "values")
            assert plan is not None and (plan.planes, plan.hi_drop, plan.fold, plan.narrow) == (2, kept, False, False)
            assert np.array_equal(rebuilt(luts[drop], plan), luts[drop].forward.numpy())
    monkeypatch.setattr(engines, "exact_kind", lambda: "values")
    for isa in [path for path in ("avx512vbmi", "avx2") if path in ISA_PATHS]:
        monkeypatch.setenv(cpu_features.ISA_ENV, isa)
        for drop in (1, 3, 5):
            paths = runs_of_unsigned_codes(luts[drop], 140, [127, 128, 255, 1, 2, 3, 254], monkeypatch)
            assert all(f"high plane on a >> {expected[isa][drop]}" in path for path in paths), paths


def test_corpus_tables_fold_or_narrow_and_run_bit_exactly(
    corpus: Path, native: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Real EvoApprox tables on VBMI: where the error's rows repeat every 2^L codes up to row offsets, the plan
    is narrow (mul8u_ZB3: 2 of 8 code bits; mul8u_GTR: 5; mul8u_2AC: 7; mul8u_96D: two planes of 6); where the
    table ignores a's low bits, it runs on a >> L (mul8s_1KX5 over ReLU'd codes: 2 bits, its int8 product on the
    codes shifted back; mul8u_13QR: 5;
    mul8u_19XF: 1); where the halves differ by separable terms it folds (mul8u_L93, on bit 1); where each group
    of 4 rows spans at most a byte per column, the high plane takes 6 of the 8 code bits (mul8u_DM1 and QKX);
    mul8u_ZFB does none of these. Each runs bit-exactly."""
    if "avx512vbmi" not in ISA_PATHS:
        pytest.skip("no AVX-512 VBMI on this CPU")
    monkeypatch.setenv(cpu_features.ISA_ENV, "avx512vbmi")
    folder = corpus / "evoapprox" / "8x8"
    for name, shape in (
        ("v2022_mul8u_ZB3", "2 of 8 code bits"),
        ("v2022_mul8u_GTR", "5 of 8 code bits"),
        ("v1.1_mul8u_2AC", "7 of 8 code bits"),
        ("v1.0_mul8u_96D", "2 planes of E (4033 values, 6 of 8 code bits)"),
        ("v2022_mul8s_1KX5", "exact int8 (a << 2) + 1 plane of E (18 values) (a >> 2)"),
        ("v1.1_mul8u_13QR", "2 planes of T (14198 values) (a >> 5)"),
        ("v2022_mul8u_19XF", "exact int8 (a << 1) + 2 planes of E (989 values) (a >> 1)"),
        ("v2022_mul8u_L93", "2 planes of E (589 values, folded on bit 1)"),
        ("v1.1_mul8u_DM1", "2 planes of E (886 values, high plane on a >> 2)"),
        ("v1.1_mul8u_QKX", "2 planes of T (8192 values, high plane on a >> 2)"),
        ("v1.1_mul8u_ZFB", "1 plane of E (179 values)"),
    ):
        lut = PreparedLut.from_lut(load_multiplier(str(folder / f"{name}.v")))
        a = edge_values((1, 130, 300), 0, 127 if lut.signed else 255, 97)
        a.view(-1)[3:5] = torch.tensor([127, 0 if lut.signed else 128])
        low = -128 if lut.signed else 0
        path = check_bmm(a, edge_values((1, 300, 6), low, low + 255, 98), lut)
        assert shape in path, (name, path)


def test_row_offsets_of_one_plane(corpus: Path, isa: str, native: object, monkeypatch: pytest.MonkeyPatch) -> None:
    """Row offsets that span at most 256 values take a one-plane row table (mul8s_1L2J over every signed code,
    on its own table: it ignores bit 0 of a, and over every code its coarse table would cost less): GEMM and
    direct conv bit-exact."""
    monkeypatch.setattr(engines.CpuEngine, "_dropped_bits", lambda self, isa, lut, top, rows_order: 0)
    lut = PreparedLut.from_lut(load_multiplier(str(corpus / "evoapprox" / "8x8" / "v2022_mul8s_1L2J.v")))
    engine = engines.get_engine("cpu")
    a = edge_values((1, 130, 300), -128, 127, 99)
    check_bmm(a, edge_values((1, 300, 6), -128, 127, 100), lut)
    x = edge_values((2, 4, 7, 6), -128, 127, 101).to(torch.int8)
    w = edge_values((6, 4, 3, 3), -128, 127, 102).to(torch.int8)
    spec = conv2d_spec(w.shape, 1, 1, 1, 1)
    want = Conv2dLowering(lut, engines.get_engine("reference"), ste=True, spec=spec).forward(x, w)
    assert torch.equal(Conv2dLowering(lut, engine, ste=True, spec=spec).forward(x, w), want)
    plan = engine.last_plan if isinstance(engine, engines.CpuEngine) else None
    if isa == "avx512vbmi" and int8_gemm_is_exact():
        assert plan is not None and plan.row_table is not None and plan.row_table.shape[1] == 1, engine.last_path


def test_one_column_of_b(isa: str, kind: str) -> None:
    """A GEMM of one column of b (a linear layer of one output) on plans with an exact product, folded into it and
    not: bit-exact. (The int8 product reads b's codes as a ``[1, K]`` matrix, which torch's int8 GEMM misread
    where its row stride was 1.)"""
    flip = 0x80 if kind == "int8" else 0
    cases = [
        structured_lut(8, True, error_span=1, seed=180),
        structured_lut(8, False, error_span=200, seed=181),
        structured_lut(5, True, error_span=150, seed=182),
        foldable_lut(error_span=200, seed=183, flip=flip),
    ]
    for lut in cases:
        low, high = value_range(lut.bits_a, lut.signed)
        for m, k in ((63, 64), (300, 3), (2, 3)):
            path = check_bmm(edge_values((1, m, k), low, high, 184 + m), edge_values((1, k, 1), low, high, 185), lut)
            assert "exact" in path and "swapped" not in path, path


def test_partial_blocks_of_rows(isa: str, kind: str) -> None:
    """The kernels look up only the rows of a last, partial block of 256 (VBMI: one, two or four vectors of 64
    lanes; AVX2: blocks of 32), on every kind of plan: bit-exact for row counts at and around each width,
    with reductions of one and of two blocks of k (the second accumulates), operands not swapped (but for one
    row, whose GEMM is cheaper over b's 5 columns: the partial block is then theirs, the table transposed)."""
    flip = 0x80 if kind == "int8" else 0
    cases = [
        (structured_lut(8, True, error_span=20, seed=150), "1 plane"),  # small entries: grouped byte sums
        (structured_lut(8, True, error_span=400, seed=151), "2 planes"),
        (foldable_lut(error_span=700, seed=152, flip=flip), "folded"),
        (narrow_lut(kept_bits=5, error_span=90, seed=153, flip=flip), "5 of 8 code bits"),
    ]
    for lut, shape in cases:
        low, high = (-128, 127) if lut.signed else (0, 255)
        for m in (1, 31, 33, 63, 64, 65, 127, 128, 129, 192, 255, 256, 257, 300, 320, 321):
            for k in (70, 1100) if m in (63, 129, 300) else (70,):
                a = edge_values((1, m, k), 0 if lut.signed else low, high, 154 + m)
                path = check_bmm(a, edge_values((1, k, 5), low, high, 155 + k), lut)
                assert "swapped" in path if m == 1 else shape in path and "swapped" not in path, (m, k, path)


def test_grouped_byte_sums(isa: str, kind: str) -> None:
    """One plane whose entries are small enough to be summed as bytes over 8 or 2 k steps before widening,
    folded and not, at every code width: bit-exact for reductions that end inside a group, on a group's edge
    and across the 256 steps of the word sums."""
    flip = 0x80 if kind == "int8" else 0
    widths = ((4, False), (5, True), (6, False), (7, True), (8, True))
    cases = [
        (structured_lut(bits, signed, error_span=span, seed=160 + bits), group, "1 plane")
        for bits, signed in widths
        for span, group in ((20, 8), (100, 2))
    ]
    cases += [(foldable_lut(error_span=s, seed=170, flip=flip), group, "folded") for s, group in ((20, 8), (40, 2))]
    engine = engines.get_engine("cpu")
    for lut, group, shape in cases:
        low, high = value_range(lut.bits_a, lut.signed)
        for k in (1, 7, 9, 16, 255, 256, 257, 520):
            a = edge_values((1, 40, k), 0 if lut.signed else low, high, 171 + k)
            path = check_bmm(a, edge_values((1, k, 3), low, high, 172 + k), lut)
            plan = engine.last_plan if isinstance(engine, engines.CpuEngine) else None
            assert plan is not None and shape in path and (plan.planes, plan.group_lo) == (1, group), (k, path)


def test_engine_two_plane_errors_and_long_reductions(isa: str, kind: str) -> None:
    """An error spanning 400 values (two planes, the high one grouped) and a reduction long enough to be split
    into int32 chunks, each with its plan."""
    lut = structured_lut(8, True, error_span=400, seed=5)
    a = edge_values((1, 70, 300), 0, 127, 40)
    b = edge_values((1, 300, 9), -128, 127, 41)
    assert "2 planes" in check_bmm(a, b, lut)
    values = code_values(8, True)
    error = torch.randint(-200, 200, (256, 256), generator=torch.Generator().manual_seed(6))
    big = PreparedLut((values[:, None] * values[None, :] + 4096 * error).to(torch.int32), 8, 8, True, name="big")
    a = edge_values((1, 20, 3000), -128, 127, 42)
    b = edge_values((1, 3000, 3), -20, 20, 43)
    path = check_bmm(a, b, big)
    assert "k-split" in path and "exact" in path, path


def test_float_exact_products_of_errors_beyond_int32(isa: str, native: object, monkeypatch: pytest.MonkeyPatch) -> None:
    """A table within int32 whose error ``T − a·b`` is not (entries near int32's minimum where the product is
    positive): the int32 part of a plan with the float exact product would sum that error, so such a call runs
    without it (no false "beyond int32" error), bit-exact."""
    monkeypatch.setattr(engines, "exact_kind", lambda: "values")
    values = code_values(8, False)
    table = torch.clamp(values[:, None] * values[None, :] - 2**31 - 100, min=-(2**31))
    lut = PreparedLut(table.to(torch.int32), 8, 8, False, name="saturated")
    assert plan_for(lut, isa, 256, 0, 0, "values") is not None  # (the plan exists; the call declines it)
    check_bmm(edge_values((1, 70, 1), 0, 255, 190), torch.tensor([[[0, 255, 7, 100, 1]]]), lut)


@pytest.mark.parametrize(("bits", "signed"), [(8, True), (8, False), (6, True)])
@pytest.mark.parametrize("panel", [None, "1280"], ids=["l2", "5rows"])
def test_direct_conv_plans_pad_with_value_zero(
    isa: str, kind: str, bits: int, signed: bool, panel: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Padding is operand value 0 whatever the stored codes: flipped panels store it flipped. Panels of a few
    rows of k at a time accumulate the kernel's sums, the exact product and the row offsets over slices."""
    if panel is not None:
        monkeypatch.setenv(tuning.PANEL_ENV, panel)
    lut = structured_lut(bits, signed, error_span=150, scale=2, seed=60 + bits)
    low, high = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    dtype = torch.int8 if signed else torch.uint8
    engine = engines.get_engine("cpu")
    for stride, pad, groups in [(1, 1, 1), (2, (2, 1), 1), (1, 1, 2)]:
        x = edge_values((2, 4, 7, 6), low, high, 70).to(dtype)
        w = edge_values((6, 4 // groups, 3, 3), low, high, 71).to(dtype)
        spec = conv2d_spec(w.shape, stride, pad, 1, groups)
        want = Conv2dLowering(lut, engines.get_engine("reference"), ste=True, spec=spec).forward(x, w)
        got = Conv2dLowering(lut, engine, ste=True, spec=spec).forward(x, w)
        assert torch.equal(got, want), engine.last_path
        assert isinstance(engine, engines.CpuEngine) and engine.last_plan is not None
        assert engine.last_plan.exact == kind
        if isa == "avx512vbmi" and bits == 8:
            assert engine.last_plan.row_table is not None  # row offsets narrow the error to one plane


def test_direct_conv_splits_the_channels_of_few_blocks(isa: str, kind: str) -> None:
    """A conv with fewer blocks of output positions than threads splits each block's output channels into
    chunks (each with the block's panel, its rows of the exact product and its outputs): bit-exact, with row
    offsets, a fold, groups and a stride."""
    tables = [
        (structured_lut(8, True, error_span=150, scale=2, seed=120), -128, 127, torch.int8),
        (foldable_lut(error_span=150, seed=121, flip=0x80 if kind == "int8" else 0), 0, 255, torch.uint8),
    ]
    engine = engines.get_engine("cpu")
    for lut, low, high, dtype in tables:
        for stride, groups in [(1, 1), (2, 2)]:  # (400 and 100 positions: too many to swap the operands)
            x = edge_values((1, 4, 20, 20), low, high, 122).to(dtype)
            w = edge_values((80, 4 // groups, 3, 3), low, high, 123).to(dtype)
            spec = conv2d_spec(w.shape, stride, 1, 1, groups)
            want = Conv2dLowering(lut, engines.get_engine("reference"), ste=True, spec=spec).forward(x, w)
            assert torch.equal(Conv2dLowering(lut, engine, ste=True, spec=spec).forward(x, w), want), engine.last_path
            assert engine.last_path is not None and "swapped" not in engine.last_path


def test_few_rows_swap_the_operands(isa: str, kind: str) -> None:
    """A GEMM of a few rows of a against many columns of b (a batch of one through a deep layer) runs with the
    operands swapped (``T'[b, a] = T[a, b]``, lanes over b's columns): bit-exact at the edge codes, through
    ``lut_bmm``; many rows, or few columns, are not swapped. A convolution of as few rows runs the direct conv
    (its look-ups over the rows of a cost less there than an im2col GEMM over b's columns)."""
    cases = [
        (structured_lut(8, True, error_span=150, scale=2, seed=140), -128, 127),
        (narrow_lut(kept_bits=3, error_span=90, seed=141, flip=0x80 if kind == "int8" else 0), 0, 255),
        (foldable_lut(error_span=700, seed=142, flip=0x80 if kind == "int8" else 0), 0, 255),
    ]
    engine = engines.get_engine("cpu")
    for lut, low, high in cases:
        for g, m, k, n, swapped in [(1, 1, 70, 300, True), (2, 8, 301, 512, True), (1, 300, 40, 64, False)]:
            a = edge_values((g, m, k), 0 if lut.signed else low, high, 143)
            path = check_bmm(a, edge_values((g, k, n), low, high, 144), lut)
            assert ("(operands swapped)" in path) == swapped, path
        dtype = torch.int8 if lut.signed else torch.uint8
        x = edge_values((1, 32, 2, 2), 0 if lut.signed else low, high, 145).to(dtype)
        w = edge_values((300, 32, 3, 3), low, high, 146).to(dtype)
        spec = conv2d_spec(w.shape, 1, 1, 1, 1)
        want = Conv2dLowering(lut, engines.get_engine("reference"), ste=True, spec=spec).forward(x, w)
        assert torch.equal(Conv2dLowering(lut, engine, ste=True, spec=spec).forward(x, w), want)
        assert engine.last_path is not None and "(operands swapped)" not in engine.last_path


def test_results_written_once_as_float_with_the_epilogue(isa: str, kind: str) -> None:
    """``lut_bmm_into`` (the sums, the table's other parts and a layer's rescale and bias, written as float32 in
    one pass) equals ``lut_bmm``'s integer result converted and rescaled step by step by torch, bit for bit:
    every kind of plan (a float exact product adds in Python), both orientations (a few rows swap: the epilogue
    then runs over the lanes), outputs with either stride order, parts of one value or none."""
    flip = 0x80 if kind == "int8" else 0
    cases = [
        structured_lut(8, True, error_span=150, scale=2, seed=160),  # one plane, scaled
        structured_lut(8, False, error_span=500, seed=161),  # two planes
        foldable_lut(error_span=700, seed=162, flip=flip),
        narrow_lut(kept_bits=3, error_span=90, seed=163, flip=flip),
    ]
    engine = engines.get_engine("cpu")
    for lut in cases:
        low, high = (-128, 127) if lut.signed else (0, 255)
        for g, m, k, n in [(1, 3, 70, 300), (2, 37, 19, 5), (1, 300, 261, 9)]:
            a = edge_values((g, m, k), 0 if lut.signed else low, high, 164 + m)
            b = edge_values((g, k, n), low, high, 165 + n)
            sums = lut_bmm(a, b, lut, engine="reference").to(torch.float32)
            gen = torch.Generator().manual_seed(m + n)
            column = [torch.rand(n, generator=gen) * 0.01 - 0.003 for _ in range(3)]
            for epilogue in (
                None,
                engines.Epilogue(*column),
                engines.Epilogue(scale=torch.tensor([0.0173]), bias=None, extra=column[2]),
            ):
                want = sums.clone()
                if epilogue is not None:
                    for part, apply in ((epilogue.scale, want.mul_), (epilogue.bias, want.add_)):
                        if part is not None:
                            apply(part)
                    if epilogue.extra is not None:
                        want.add_(epilogue.extra)
                for out in (torch.full((g, m, n), float("nan")), torch.full((g, n, m), float("nan")).transpose(1, 2)):
                    engine.lut_bmm_into(out, a, b, lut, epilogue)
                    path = engine.last_path or ""
                    assert torch.equal(out, want), (lut.name, g, m, k, n, path)
                    assert ("(operands swapped)" in path) == (m == 3), path


def test_results_written_as_float_check_long_sums(native: object) -> None:
    """Sums that need the int64 split (a table's products near 2^30) are written as float32 where they fit int32,
    and refused where they do not, as ``lut_bmm`` refuses them."""
    values = code_values(4, True)
    table = (values[:, None] * values[None, :] * (1 << 23)).to(torch.int32)
    lut = PreparedLut(table, 4, 4, True, name="huge")
    engine = engines.get_engine("cpu")
    a = torch.tensor([[[7, -7, 7, -7, 7, -7, 7, -7]], [[7, 7, 7, 7, 7, 7, 7, 7]]], dtype=torch.int8)
    b = torch.full((2, 8, 1), 7, dtype=torch.int8)
    out = torch.empty((1, 1, 1))
    engine.lut_bmm_into(out, a[:1], b[:1], lut)
    assert out.item() == 0.0 and "k-split" in (engine.last_path or "")
    with pytest.raises(LutgenError, match="int32"):
        engine.lut_bmm_into(out, a[1:], b[1:], lut)


def truncating_lut(bits: int, signed: bool, *, ignored: int, seed: int) -> PreparedLut:
    """A ``bits`` x ``bits`` table that ignores the low ``ignored`` bits of a's codes (a truncated input): rows
    of codes that differ only there are equal; noise elsewhere."""
    gen = torch.Generator().manual_seed(seed)
    values = code_values(bits, signed)
    kept = values >> ignored << ignored  # (two's complement: clearing low bits of the code floors the value)
    noise = torch.randint(-40, 40, (1 << (bits - ignored), 1 << bits), generator=gen)
    table = kept[:, None] * values[None, :] + noise[torch.arange(1 << bits) >> ignored]
    return PreparedLut(table.to(torch.int32), bits, bits, signed, name=f"truncating{ignored}")


def test_tables_that_ignore_low_bits_of_a() -> None:
    """``coarse_bits`` counts the low code bits a table ignores (at most ``bits - 2``); ``coarse`` is the table
    of ``a >> L``, signed codes included; a table whose rows differ in the lowest bit ignores none."""
    for bits, signed, ignored in ((8, False, 5), (8, True, 3), (6, True, 4), (4, False, 1)):
        lut = truncating_lut(bits, signed, ignored=ignored, seed=bits + ignored)
        assert lut.coarse_bits == ignored
        coarse = lut.coarse()
        assert (coarse.bits_a, coarse.bits_b, coarse.signed) == (bits - ignored, bits, signed)
        codes = torch.arange(1 << bits)
        values = code_values(bits, signed)
        shifted_codes = (values >> ignored) & ((1 << (bits - ignored)) - 1)  # codes of a >> L
        assert torch.equal(coarse.forward[shifted_codes], lut.forward[codes])
    constant = PreparedLut(torch.zeros((16, 16), dtype=torch.int32), 4, 4, False)
    assert constant.coarse_bits == 2 and constant.coarse().bits_a == 2  # (never below 2 bits)
    assert structured_lut(8, True, error_span=20, seed=3).coarse_bits == 0


def test_coarse_tables_take_the_int8_product_of_the_values_they_stand_for(corpus: Path) -> None:
    """A coarse table (codes a >> L) may read its codes shifted back for the int8 exact product, so that the
    error left is the full table's: mul8s_1KXF over ReLU'd codes leaves none (no plane), mul8s_1L2J one plane
    of 64 values at 6 bits (its own plan: 254 values at 7); unsigned codes are flipped after the shift. Every
    entry comes back."""
    folder = corpus / "evoapprox" / "8x8"
    for name, shift, shape in (
        ("v2022_mul8s_1KXF", 3, "exact int8 (a << 3) + 0 planes of E (1 values)"),
        ("v2022_mul8s_1L2J", 1, "exact int8 (a << 1) + 1 plane of E (64 values"),
    ):
        lut = PreparedLut.from_lut(load_multiplier(str(folder / f"{name}.v")))
        coarse = lut.coarse()
        assert coarse.coarse_shift == shift
        plan = plan_for(coarse, "avx512vbmi", 1 << (7 - shift), 0, 0, "int8")
        assert plan is not None and plan.exact_shift == shift and plan.exact_flip == 0, plan
        assert plan.describe().startswith(shape), plan.describe()
        assert np.array_equal(rebuilt(coarse, plan), coarse.forward.numpy().astype(np.int64)[: plan.rows])
        assert plan_for(coarse, "avx512vbmi", 1 << (8 - shift), 1 << (7 - shift), 0, "int8").exact_shift == 0
    unsigned = truncating_lut(8, False, ignored=3, seed=70).coarse()
    plan = plan_for(unsigned, "avx2", 32, 0, 0x80, "int8")
    assert plan is not None and plan.exact_shift == 3 and plan.exact_flip == 0x80, plan
    assert np.array_equal(rebuilt(unsigned, plan), unsigned.forward.numpy().astype(np.int64))


def test_engine_runs_tables_that_ignore_low_bits_bit_exactly(isa: str, kind: str) -> None:
    """Tables that ignore a's low bits run on ``a >> L`` and the coarse table: GEMMs at the edge codes (signed
    values floor when shifted), the direct conv with zero padding, a stride and groups, and the fused
    quantised conv of ``nn`` layers; the path says so."""
    engine = engines.get_engine("cpu")
    # (dropping one bit of eight may not pay: the coarse table's exact product then fits worse)
    for bits, signed, ignored, dropped in ((8, False, 5, True), (8, True, 3, True), (8, False, 1, None)):
        lut = truncating_lut(bits, signed, ignored=ignored, seed=60 + ignored)
        suffix = f"(a >> {ignored})"
        low, high = value_range(bits, signed)
        for i, (g, m, k, n) in enumerate([(1, 37, 19, 5), (2, 300, 261, 3)]):
            a = edge_values((g, m, k), low, high, 150 + i)
            a.view(-1)[3:7] = torch.tensor([low, low + 1, high - 1, high])
            path = check_bmm(a, edge_values((g, k, n), low, high, 152 + i), lut)
            assert dropped is None or path.endswith(suffix), path
        dtype = torch.int8 if signed else torch.uint8
        for stride, pad, groups in [(1, 1, 1), (2, (2, 1), 2)]:
            x = edge_values((2, 4, 7, 6), low, high, 154).to(dtype)
            w = edge_values((6, 4 // groups, 3, 3), low, high, 155).to(dtype)
            spec = conv2d_spec(w.shape, stride, pad, 1, groups)
            want = Conv2dLowering(lut, engines.get_engine("reference"), ste=True, spec=spec).forward(x, w)
            assert torch.equal(Conv2dLowering(lut, engine, ste=True, spec=spec).forward(x, w), want)
            assert engine.last_path is not None and (dropped is None or engine.last_path.endswith(suffix))
        if signed:  # non-negative codes: the coarse table's int8 product reads them shifted back
            a = edge_values((1, 130, 300), 0, high, 158)
            path = check_bmm(a, edge_values((1, 300, 6), low, high, 159), lut)
            assert (f"exact int8 (a << {ignored})" in path) == (kind == "int8"), path
            x = edge_values((2, 4, 7, 6), 0, high, 160).to(dtype)
            w = edge_values((6, 4, 3, 3), low, high, 161).to(dtype)
            spec = conv2d_spec(w.shape, 1, 1, 1, 1)
            want = Conv2dLowering(lut, engines.get_engine("reference"), ste=True, spec=spec).forward(x, w)
            assert torch.equal(Conv2dLowering(lut, engine, ste=True, spec=spec).forward(x, w), want)
        x = edge_values((2, 4, 7, 6), low, high, 156).to(torch.float32)
        w = edge_values((6, 4, 3, 3), low, high, 157).to(dtype)
        fused = quantised_conv2d(
            x, w, lut, scale=1.0, zero_point=0.0, code_range=(low, high), padding=(1, 1, 1, 1), engine="cpu"
        )
        spec = conv2d_spec(w.shape, 1, 1, 1, 1)
        want = Conv2dLowering(lut, engines.get_engine("reference"), ste=True, spec=spec).forward(x.to(dtype), w)
        assert fused is not None and torch.equal(fused, want)


def test_swap_decision() -> None:
    """Swapped where that saves a tenth of the look-up work (the default costs: an 8-bit look-up and its
    widening 2.2 times a 6-bit one's): where the rows of a fill few of the lanes the kernels look up, or blocks
    of only one or two VBMI vectors, whose columns each pay for their table, and b's columns are many; on AVX2
    also where the swapped call runs in the rows order. Never on paths without plans."""
    swaps = engines.CpuEngine.swaps_operands
    assert swaps("avx512vbmi", 1, 64) and swaps("avx512vbmi", 16, 512) and swaps("avx2", 1, 512)
    assert not swaps("avx512vbmi", 64, 40) and not swaps("avx512vbmi", 256, 4096)
    assert not swaps("avx512vbmi", 64, 10) and not swaps("avx2", 64, 10)
    # one vector of 64 lanes (or two) per column and k step, against blocks of four over 512 columns
    assert swaps("avx512vbmi", 64, 512) and swaps("avx512vbmi", 128, 512)
    # 150 rows take a block of 256 lanes; 256 rows against 256 columns: the same work either way
    assert swaps("avx512vbmi", 150, 256) and not swaps("avx512vbmi", 256, 256)
    # 6-bit codes of a against b's 8-bit codes: a's look-ups cost less than half as much
    assert not swaps("avx512vbmi", 64, 512, 6, 8)
    # AVX2: 64 rows of 8-bit codes in the blend tree, against 512 in the rows order
    assert swaps("avx2", 64, 512) and swaps("avx2", 16, 512)
    assert not swaps("avx512bw", 1, 4096) and not swaps("scalar", 1, 4096)


def test_looked_up_lanes() -> None:
    """Whole blocks of 256 lanes, then the kernel's own width up to the rows of a last, partial block."""
    lanes = engines.looked_up_lanes
    vbmi = [64, 64, 128, 128, 256, 256, 320, 512]
    assert [lanes("avx512vbmi", n) for n in (1, 64, 65, 128, 129, 256, 257, 400)] == vbmi
    assert [lanes("avx2", n) for n in (1, 32, 33, 256, 257)] == [32, 32, 64, 256, 288]
    assert lanes("avx512bw", 3) == lanes("scalar", 3) == 256 and lanes("avx512vbmi", 0) == 0


def test_int8_probe_detects_saturating_gemms() -> None:
    """Capped below VNNI, oneDNN's int8 GEMM saturates: the probe must say so (fresh process, the cap is read
    at oneDNN's first use)."""
    code = "from approxlut.native.plan import int8_gemm_is_exact; print(int8_gemm_is_exact())"
    env = {"ONEDNN_MAX_CPU_ISA": "AVX2", "PATH": "/usr/bin:/bin"}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


def test_many_rows_price_the_avx2_rows_order(native: object, monkeypatch: pytest.MonkeyPatch) -> None:
    """On AVX2 a call of ``ROWS_PRICED`` rows of a or more prices its plan for the rows order, where a look-up of
    6..8 code bits costs ``AVX2_ROWS_COST`` per plane: a table whose blend-tree plan folds its top bit runs two
    plain planes of its 8-bit codes there, in the rows order, bit-exactly; a call of fewer rows keeps the folded
    plan (and from 256 rows runs it in the rows order too, by its 7 looked-up bits)."""
    if "avx2" not in ISA_PATHS:
        pytest.skip("no AVX2 on this CPU")
    monkeypatch.setenv(cpu_features.ISA_ENV, "avx2")
    monkeypatch.setattr(engines, "exact_kind", lambda: "values")
    lut = foldable_lut(error_span=3000, seed=16, flip=0)
    tree = plan_for(lut, "avx2", 256, 0, 0, "values")
    rows = plan_for(lut, "avx2", 256, 0, 0, "values", rows_order=True)
    assert tree is not None and rows is not None
    assert tree.fold and not rows.fold and rows.planes == 2 and rows.lookup_bits == 8 and rows.cost < tree.cost
    assert plan_for(lut, "avx512vbmi", 256, 0, 0, "values", rows_order=True) is plan_for(
        lut, "avx512vbmi", 256, 0, 0, "values"
    )  # (VBMI plans are priced for its kernels alone)
    a = edge_values((1, engines.ROWS_PRICED + 3, 300), 0, 255, 110)
    a.view(-1)[3:6] = torch.tensor([127, 128, 255])
    b = edge_values((1, 300, 37), 0, 255, 111)
    for m, order, folded in ((engines.ROWS_PRICED + 3, True, False), (300, True, True), (100, False, True)):
        path = check_bmm(a[:, :m], b, lut)
        assert ("(rows order)" in path, "folded" in path) == (order, folded), (m, path)


def test_rows_order_pays_by_code_bits_rows_and_columns() -> None:
    """The AVX2 rows order runs from 6 looked-up code bits (a fold looks one fewer up), over enough rows of a to
    pay for its transposes, and where its blocks of 32 columns waste less than it gains: never for a depthwise
    conv's one column; never on the VBMI kernels or without planes."""
    pays = engines.rows_order_pays
    assert pays("avx2/nibble", 8, 2, 128, 64) and not pays("avx2/nibble", 8, 2, 127, 64)
    assert pays("avx2/nibble", 7, 1, 256, 64) and not pays("avx2/nibble", 7, 1, 255, 64)
    assert pays("avx2/nibble", 6, 1, 512, 64) and not pays("avx2/nibble", 5, 1, 1 << 20, 64)
    assert pays("avx2/fold", 8, 1, 256, 64) and not pays("avx2/fold", 8, 1, 255, 64)  # (7 bits looked up)
    assert not pays("avx2/nibble", 8, 1, 1 << 20, 1) and pays("avx2/nibble", 8, 1, 1 << 20, 8)
    assert pays("avx2/nibble", 6, 2, 1 << 20, 24) and not pays("avx2/nibble", 6, 2, 1 << 20, 40)
    assert not pays("avx512vbmi/planes", 8, 2, 1 << 20, 64) and not pays("avx2/nibble", 8, 0, 1 << 20, 64)
    assert engines.prices_rows_order(512, 32) and not engines.prices_rows_order(511, 32)
    assert not engines.prices_rows_order(1 << 20, 31)
