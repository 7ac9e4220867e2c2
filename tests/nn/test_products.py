"""Products of two activations (and of an activation with a weight): integer exactness, per-head ranges,
gradients for both operands, and whole transformers where an exact LUT equals the quantised-exact model."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from approxlut.lutgen.lut import Lut
from approxlut.nn import ApproxLinear, LayerConfig, approximate, calibrate
from approxlut.nn.products import ApproxProduct
from approxlut.nn.swap import approx_layers
from approxlut.nn.zoo import build_model

from .test_layers import LUT_CASES, exact_lut, noisy_lut, term


def calibrated_product(config: LayerConfig, a: torch.Tensor, b: torch.Tensor) -> ApproxProduct:
    """A product calibrated on ``a``, ``b`` without their outliers (which then clip to the edge codes)."""
    product = ApproxProduct("matmul", weight_operand=False, config=config)
    product.start_observing()
    product(a.clamp(-4, 4), b.clamp(-4, 4))
    product.freeze()
    return product


def operands(signed: bool, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``a [2, 3, 5, 7]`` and ``b [3, 7, 4]`` (batch dims broadcast) with outliers beyond the clip range."""
    gen = torch.Generator().manual_seed(seed)
    a = torch.randn(2, 3, 5, 7, generator=gen)
    b = torch.randn(3, 7, 4, generator=gen)
    a[0, 0, 0, :2] = torch.tensor([40.0, -40.0])  # clipped to the edge codes (incl. -2^(n-1) when signed)
    b[0, :2, 0] = torch.tensor([30.0, -30.0])
    if not signed:
        a, b = a + 0.7, b.abs()
    return a, b


@pytest.mark.parametrize(("bits_a", "bits_b", "signed"), LUT_CASES)
@pytest.mark.parametrize("kind", ["exact", "noisy"])
@pytest.mark.parametrize("per_head", [False, True])
def test_matmul_accumulator_bit_exact(bits_a: int, bits_b: int, signed: bool, kind: str, per_head: bool) -> None:
    lut = exact_lut(bits_a, bits_b, signed) if kind == "exact" else noisy_lut(bits_a, bits_b, signed)
    a, b = operands(signed)
    b = b.expand(2, 3, 7, 4) if per_head else b
    product = calibrated_product(LayerConfig(lut, per_channel=per_head or None), a, b)
    acc, scale = product.accumulate(a, b)
    (qa, sa, za), (qb, sb, zb) = product.quantize_operands(a, b)
    assert torch.equal(scale, sa * sb)
    assert sa.shape == ((3, 1, 1) if per_head else ())
    low = -(1 << (bits_a - 1)) if signed else 0
    assert qa.min() == low and qa.max() == low + (1 << bits_a) - 1  # both edge codes are exercised
    # Σ_k term(a[..., m, k], b[..., k, n]) on the integers
    expected = term(lut, qa[..., :, :, None], qb[..., None, :, :], za[..., None], zb[..., None]).sum(-2)
    assert torch.equal(acc.double(), expected.double())
    if kind == "exact":
        assert torch.equal(acc.double(), torch.matmul((qa - za).double(), (qb - zb).double()))
        fast = LayerConfig("exact", bits=(bits_a, bits_b), scheme="symmetric" if signed else "affine")
        twin = calibrated_product(replace(fast, per_channel=per_head or None), a, b)
        assert twin.resolved.is_exact_path and not product.resolved.is_exact_path
        assert torch.equal(twin(a, b), product(a, b))


def test_weight_operand_matches_a_linear_layer() -> None:
    torch.manual_seed(0)
    linear = nn.Linear(6, 5)
    x = torch.randn(4, 3, 6)
    for spec in (noisy_lut(8, 8, True), noisy_lut(8, 8, False)):
        layer = ApproxLinear.from_float(linear, LayerConfig(spec))
        calibrate(layer, [x])
        product = ApproxProduct("linear", weight_operand=True, config=LayerConfig(spec))
        product.start_observing()
        product(x, linear.weight, linear.bias)
        product.freeze()
        assert torch.equal(product(x, linear.weight, linear.bias), layer(x))


def test_per_head_and_per_tensor_switch_without_new_data() -> None:
    a, b = operands(True, seed=1)
    a = a * torch.tensor([1.0, 5.0, 0.2]).view(3, 1, 1)  # heads with different ranges
    b = b.expand(2, 3, 7, 4)
    product = calibrated_product(LayerConfig("exact"), a, b)
    whole = product.quantize_operands(a, b)[0][1]
    product.set_config(LayerConfig("exact", per_channel=True))
    heads = product.quantize_operands(a, b)[0][1].flatten()
    assert whole.dim() == 0 and heads.shape == (3,)
    assert heads[1] > heads[0] > heads[2]
    err_tensor = (calibrated_product(LayerConfig("exact"), a, b)(a, b) - a @ b).abs().mean()
    assert (product(a, b) - a @ b).abs().mean() < err_tensor  # per-head ranges fit better


@pytest.mark.parametrize("signed", [True, False])
def test_difference_gradients_for_both_operands(signed: bool) -> None:
    lut = noisy_lut(8, 8, signed).with_gradients(4)
    a, b = operands(signed, seed=2)
    product = calibrated_product(LayerConfig(lut), a, b)
    grads = []
    for engine in (None, "reference"):
        product.set_config(LayerConfig(lut, engine=engine))
        ag, bg = a.clone().requires_grad_(), b.clone().requires_grad_()
        product(ag, bg).square().sum().backward()
        assert ag.grad is not None and bg.grad is not None
        grads.append((ag.grad, bg.grad))
    (ga, gb), (ra, rb) = grads
    assert ga.abs().sum() > 0 and gb.abs().sum() > 0
    assert torch.allclose(ga, ra, rtol=1e-4, atol=1e-4) and torch.allclose(gb, rb, rtol=1e-4, atol=1e-4)
    # straight-through gradients of an exact LUT are the quantised-exact path's
    exact = calibrated_product(LayerConfig(exact_lut(8, 8, signed), grad="ste"), a, b)
    fast = calibrated_product(LayerConfig("exact", scheme="symmetric" if signed else "affine"), a, b)
    out = []
    for p in (exact, fast):
        ag, bg = a.clone().requires_grad_(), b.clone().requires_grad_()
        p(ag, bg).square().sum().backward()
        out.append((ag.grad, bg.grad))
    assert torch.allclose(out[0][0], out[1][0]) and torch.allclose(out[0][1], out[1][1])


def exact_table(bits: int, signed: bool) -> Lut:
    return exact_lut(bits, bits, signed)


@pytest.mark.parametrize("model_name", ["vit", "transformer"])
@pytest.mark.parametrize(("bits", "signed", "per_head"), [(8, True, False), (8, False, False), (4, True, True)])
def test_exact_lut_reproduces_quantised_exact_transformer_bit_for_bit(
    model_name: str, bits: int, signed: bool, per_head: bool
) -> None:
    """Every layer and every attention product through an exact table on the LUT engine equals the
    quantised-exact model (exact products in float64), bit for bit."""
    torch.manual_seed(7)
    model = build_model(model_name, depth=1).eval()
    shape = (16, 1, 8, 8) if model_name == "vit" else (16, 8, 8)
    x = torch.randn(shape)
    scheme = "symmetric" if signed else "affine"
    per_channel = True if per_head else None
    lut_model = approximate(model, LayerConfig(exact_table(bits, signed), per_channel=per_channel), [x[:8]])
    fast_model = approximate(model, LayerConfig("exact", bits=bits, scheme=scheme, per_channel=per_channel), [x[:8]])
    layers = approx_layers(lut_model)
    assert sum(isinstance(m, ApproxProduct) for m in layers.values()) >= 2
    assert all(not m.resolved.is_exact_path for m in layers.values())
    with torch.no_grad():
        assert torch.equal(lut_model(x), fast_model(x))


def test_lut_product_through_engines_matches_table_reference() -> None:
    """The engine's batched LUT-GEMM for attention-shaped operands equals a plain gather of the table."""
    lut = noisy_lut(8, 8, True, seed=3)
    gen = torch.Generator().manual_seed(4)
    q = torch.randn(2, 4, 9, 16, generator=gen)
    k = torch.randn(2, 4, 9, 16, generator=gen)
    product = calibrated_product(LayerConfig(lut), q, k.transpose(-2, -1))
    acc, _ = product.accumulate(q, k.transpose(-2, -1))
    (qa, *_), (qb, *_) = product.quantize_operands(q, k.transpose(-2, -1))
    table = torch.from_numpy(lut.forward.astype(np.int64))
    gathered = table[qa.long()[..., :, :, None] & 255, qb.long()[..., None, :, :] & 255].sum(-2)
    assert torch.equal(acc.double(), gathered.double())
    assert F.softmax(acc, -1).isfinite().all()
