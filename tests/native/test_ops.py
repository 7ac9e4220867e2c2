"""Approximate ops (matmul, linear, conv1d/2d) and their autograd against explicit per-element references."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from approxlut.errors import ConfigError
from approxlut.native import PreparedLut, available_engines
from approxlut.native.cpu_features import cpu_isa
from approxlut.native.engines import PLAN_PATHS, exact_kind
from approxlut.native.ops import approx_conv1d, approx_conv2d, approx_linear, approx_matmul, path_for
from approxlut.native.prepared import code_values

ENGINES = [name for name in available_engines("cpu") if name != "decomp"]


def random_lut(bits_a: int, bits_b: int, signed: bool, *, seed: int = 0) -> PreparedLut:
    gen = torch.Generator().manual_seed(seed)
    table = torch.randint(-3000, 3001, (1 << bits_a, 1 << bits_b), generator=gen, dtype=torch.int32)
    grads = torch.randn((2, 1 << bits_a, 1 << bits_b), generator=gen)
    return PreparedLut(table, bits_a, bits_b, signed, grad_a=grads[0], grad_b=grads[1], name="rand")


def exact_lut(bits_a: int, bits_b: int, signed: bool) -> PreparedLut:
    table = torch.outer(code_values(bits_a, signed), code_values(bits_b, signed)).to(torch.int32)
    return PreparedLut(table, bits_a, bits_b, signed, name="exact")


def values(shape: tuple[int, ...], bits: int, signed: bool, seed: int) -> torch.Tensor:
    """Random operand values as float, with the edge values (min, max, 0) planted at the start."""
    gen = torch.Generator().manual_seed(seed)
    lo = -(1 << (bits - 1)) if signed else 0
    hi = lo + (1 << bits) - 1
    out = torch.randint(lo, hi + 1, shape, generator=gen).flatten()
    edges = torch.tensor([lo, hi, 0, lo, hi])[: out.numel()]
    out[: len(edges)] = edges
    return out.reshape(shape).to(torch.float32)


def ref_conv2d(
    x: torch.Tensor,
    w: torch.Tensor,
    lut: PreparedLut,
    stride: tuple[int, int],
    pad: tuple[int, int],
    dil: tuple[int, int],
    groups: int,
    grad_out: torch.Tensor | None = None,
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Per-output loops: forward sums of T, and (with grad_out) the gradients through Ga/Gb."""
    t = lut.forward.numpy().astype(np.int64)
    ga = lut.grad_a.numpy().astype(np.float64) if lut.grad_a is not None else None
    gb = lut.grad_b.numpy().astype(np.float64) if lut.grad_b is not None else None
    ma, mb = (1 << lut.bits_a) - 1, (1 << lut.bits_b) - 1
    xv = x.numpy().astype(np.int64)
    wv = w.numpy().astype(np.int64)
    n, c, h, wd = xv.shape
    o, cg, kh, kw = wv.shape
    xp = np.zeros((n, c, h + 2 * pad[0], wd + 2 * pad[1]), dtype=np.int64)
    xp[:, :, pad[0] : pad[0] + h, pad[1] : pad[1] + wd] = xv
    oh = (h + 2 * pad[0] - dil[0] * (kh - 1) - 1) // stride[0] + 1
    ow = (wd + 2 * pad[1] - dil[1] * (kw - 1) - 1) // stride[1] + 1
    out = np.zeros((n, o, oh, ow), dtype=np.int64)
    gxp = np.zeros(xp.shape) if grad_out is not None else None
    gw = np.zeros(wv.shape) if grad_out is not None else None
    go = grad_out.numpy().astype(np.float64) if grad_out is not None else None
    og = o // groups
    for b_, oc, i, j in itertools.product(range(n), range(o), range(oh), range(ow)):
        grp = oc // og
        rows = i * stride[0] + dil[0] * np.arange(kh)
        cols = j * stride[1] + dil[1] * np.arange(kw)
        chans = grp * cg + np.arange(cg)
        win = xp[b_][np.ix_(chans, rows, cols)] & ma
        wc = wv[oc] & mb
        out[b_, oc, i, j] = t[win, wc].sum()
        if go is not None:
            assert gxp is not None and gw is not None and ga is not None and gb is not None
            gxp[b_][np.ix_(chans, rows, cols)] += go[b_, oc, i, j] * ga[win, wc]
            gw[oc] += go[b_, oc, i, j] * gb[win, wc]
    if gxp is None:
        return out, None, None
    return out, gxp[:, :, pad[0] : pad[0] + h, pad[1] : pad[1] + wd], gw


CONV_CASES = [
    # (N, C, H, W, O, kh, kw, stride, padding, dilation, groups)
    (2, 3, 6, 5, 4, 3, 3, (1, 1), (1, 1), (1, 1), 1),
    (1, 4, 7, 7, 6, 3, 2, (2, 1), (0, 2), (1, 2), 2),
    (2, 4, 5, 6, 4, 3, 3, (1, 2), (1, 0), (1, 1), 4),  # depthwise
    (1, 2, 4, 4, 3, 1, 1, (1, 1), (0, 0), (1, 1), 1),
    (1, 6, 5, 5, 6, 2, 2, (2, 2), (1, 1), (2, 1), 3),
]


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("case", CONV_CASES)
@pytest.mark.parametrize(("bits", "signed"), [(8, True), (8, False), (4, True), (3, False)])
def test_conv2d_exact_lut_equals_torch_conv(case: tuple, bits: int, signed: bool, engine: str) -> None:
    n, c, h, w_, o, kh, kw, stride, pad, dil, groups = case
    lut = exact_lut(bits, bits, signed)
    x = values((n, c, h, w_), bits, signed, 1)
    w = values((o, c // groups, kh, kw), bits, signed, 2)
    got = approx_conv2d(x, w, lut, stride, pad, dil, groups, grad="ste", engine=engine)
    want = F.conv2d(x.double(), w.double(), stride=stride, padding=pad, dilation=dil, groups=groups)
    assert got.dtype == torch.float32
    assert torch.equal(got.double(), want)


@pytest.mark.parametrize("case", CONV_CASES)
def test_conv2d_exact_lut_auto_path_equals_torch_conv(case: tuple) -> None:
    n, c, h, w_, o, kh, kw, stride, pad, dil, groups = case
    lut = exact_lut(8, 8, True)
    x = values((n, c, h, w_), 8, True, 3)
    w = values((o, c // groups, kh, kw), 8, True, 4)
    got = approx_conv2d(x, w, lut, stride, pad, dil, groups, grad="ste")
    want = F.conv2d(x.double(), w.double(), stride=stride, padding=pad, dilation=dil, groups=groups)
    assert torch.equal(got.double(), want)
    int8_plans = cpu_isa() in PLAN_PATHS and exact_kind() == "int8"  # (the int8 GEMM alone, as a plan of 0 planes)
    assert path_for(lut).startswith("cpu" if int8_plans else "decomp")


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("case", CONV_CASES)
@pytest.mark.parametrize(("bits_a", "bits_b", "signed"), [(8, 8, True), (8, 4, False), (3, 5, True)])
def test_conv2d_random_lut_forward_and_backward(
    case: tuple, bits_a: int, bits_b: int, signed: bool, engine: str
) -> None:
    n, c, h, w_, o, kh, kw, stride, pad, dil, groups = case
    lut = random_lut(bits_a, bits_b, signed, seed=5)
    x = values((n, c, h, w_), bits_a, signed, 6).requires_grad_()
    w = values((o, c // groups, kh, kw), bits_b, signed, 7).requires_grad_()
    out = approx_conv2d(x, w, lut, stride, pad, dil, groups, engine=engine)
    grad_out = torch.randn(out.shape, generator=torch.Generator().manual_seed(8))
    want, want_gx, want_gw = ref_conv2d(x.detach(), w.detach(), lut, stride, pad, dil, groups, grad_out)
    assert np.array_equal(out.detach().numpy().astype(np.int64), want)
    out.backward(grad_out)
    assert x.grad is not None and w.grad is not None
    np.testing.assert_allclose(x.grad.numpy(), want_gx, rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(w.grad.numpy(), want_gw, rtol=1e-4, atol=1e-3)


def test_conv2d_noncontiguous_and_same_padding() -> None:
    lut = random_lut(8, 8, True, seed=9)
    x = values((5, 3, 6, 2), 8, True, 10).permute(3, 1, 0, 2)  # [2, 3, 5, 6], non-contiguous
    w = values((3, 3, 4, 4), 8, True, 11).transpose(2, 3)
    assert not x.is_contiguous() and not w.is_contiguous()
    got = approx_conv2d(x, w, lut, padding="same", grad="ste", engine="reference")
    # "same" with an even kernel pads (1, 2) per axis, the extra row/column after, like torch.
    xp = F.pad(x, (1, 2, 1, 2))
    want, _, _ = ref_conv2d(xp, w, lut, (1, 1), (0, 0), (1, 1), 1)
    assert np.array_equal(got.numpy().astype(np.int64), want)


@pytest.mark.parametrize("engine", ENGINES)
def test_conv2d_ste_gradients_equal_exact_product_gradients(engine: str) -> None:
    lut = random_lut(8, 8, False, seed=12)
    x = values((2, 4, 6, 6), 8, False, 13).requires_grad_()
    w = values((4, 2, 3, 3), 8, False, 14).requires_grad_()
    approx_conv2d(x, w, lut, 2, 1, 1, 2, grad="ste", engine=engine).sum().backward()
    xr = x.detach().double().requires_grad_()
    wr = w.detach().double().requires_grad_()
    F.conv2d(xr, wr, stride=2, padding=1, groups=2).sum().backward()
    assert x.grad is not None and w.grad is not None
    torch.testing.assert_close(x.grad.double(), xr.grad, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(w.grad.double(), wr.grad, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("engine", ENGINES)
def test_conv2d_ste_gradients_with_asymmetric_padding_and_dilation(engine: str) -> None:
    """ "same" with an even kernel pads (1, 2) per axis; the gradient of the padding is dropped."""
    lut = random_lut(6, 6, True, seed=18)
    x = values((2, 3, 7, 6), 6, True, 19).requires_grad_()
    w = values((4, 3, 4, 4), 6, True, 20).requires_grad_()
    approx_conv2d(x, w, lut, padding="same", grad="ste", engine=engine).sum().backward()
    approx_conv2d(x, w, lut, 1, 2, 2, grad="ste", engine=engine).sum().backward()  # dilation 2: grads add up
    xr = x.detach().double().requires_grad_()
    wr = w.detach().double().requires_grad_()
    (F.conv2d(F.pad(xr, (1, 2, 1, 2)), wr).sum() + F.conv2d(xr, wr, padding=2, dilation=2).sum()).backward()
    assert x.grad is not None and w.grad is not None
    torch.testing.assert_close(x.grad.double(), xr.grad, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(w.grad.double(), wr.grad, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize(("stride", "padding", "dilation", "groups"), [(1, 0, 1, 1), (2, 2, 2, 3), (1, 1, 1, 6)])
def test_conv1d_matches_conv2d_reference(stride: int, padding: int, dilation: int, groups: int, engine: str) -> None:
    lut = random_lut(6, 6, True, seed=15)
    x = values((2, 6, 11), 6, True, 16).requires_grad_()
    w = values((6, 6 // groups, 3), 6, True, 17).requires_grad_()
    out = approx_conv1d(x, w, lut, stride, padding, dilation, groups, engine=engine)
    grad_out = torch.randn(out.shape, generator=torch.Generator().manual_seed(18))
    want, want_gx, want_gw = ref_conv2d(
        x.detach()[:, :, None],
        w.detach()[:, :, None],
        lut,
        (1, stride),
        (0, padding),
        (1, dilation),
        groups,
        grad_out[:, :, None],
    )
    assert np.array_equal(out.detach().numpy().astype(np.int64), want[:, :, 0])
    out.backward(grad_out)
    assert x.grad is not None and w.grad is not None and want_gx is not None and want_gw is not None
    np.testing.assert_allclose(x.grad.numpy(), want_gx[:, :, 0], rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(w.grad.numpy(), want_gw[:, :, 0], rtol=1e-4, atol=1e-3)


def ref_matmul(a: np.ndarray, b: np.ndarray, lut: PreparedLut, go: np.ndarray) -> tuple[np.ndarray, ...]:
    """Per-element LUT matmul of 2-D value arrays and its gradients through Ga/Gb."""
    t = lut.forward.numpy().astype(np.int64)
    assert lut.grad_a is not None and lut.grad_b is not None
    ga, gb = lut.grad_a.numpy().astype(np.float64), lut.grad_b.numpy().astype(np.float64)
    ca = a.astype(np.int64) & ((1 << lut.bits_a) - 1)
    cb = b.astype(np.int64) & ((1 << lut.bits_b) - 1)
    out = np.zeros((a.shape[0], b.shape[1]), dtype=np.int64)
    gxa = np.zeros(a.shape)
    gxb = np.zeros(b.shape)
    for m, n in itertools.product(range(a.shape[0]), range(b.shape[1])):
        out[m, n] = t[ca[m], cb[:, n]].sum()
        gxa[m] += go[m, n] * ga[ca[m], cb[:, n]]
        gxb[:, n] += go[m, n] * gb[ca[m], cb[:, n]]
    return out, gxa, gxb


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("lead", [(), (3,), (2, 3)])
def test_linear_any_leading_dims(lead: tuple[int, ...], engine: str) -> None:
    lut = random_lut(8, 8, True, seed=19)
    x = values((*lead, 5, 7), 8, True, 20).requires_grad_()
    w = values((4, 7), 8, True, 21).requires_grad_()
    out = approx_linear(x, w, lut, engine=engine)
    assert out.shape == (*lead, 5, 4)
    grad_out = torch.randn(out.shape, generator=torch.Generator().manual_seed(22))
    out.backward(grad_out)
    want, gxa, gxb = ref_matmul(
        x.detach().reshape(-1, 7).numpy(), w.detach().t().numpy(), lut, grad_out.reshape(-1, 4).numpy()
    )
    assert np.array_equal(out.detach().reshape(-1, 4).numpy().astype(np.int64), want)
    assert x.grad is not None and w.grad is not None
    np.testing.assert_allclose(x.grad.reshape(-1, 7).numpy(), gxa, rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(w.grad.t().numpy(), gxb, rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize(
    ("a_shape", "b_shape"), [((2, 3, 4, 5), (2, 3, 5, 6)), ((2, 1, 4, 5), (3, 5, 6)), ((4, 5), (5, 6))]
)
def test_batched_matmul_broadcast(a_shape: tuple, b_shape: tuple, engine: str) -> None:
    lut = random_lut(7, 7, False, seed=23)
    a = values(a_shape, 7, False, 24).requires_grad_()
    b = values(b_shape, 7, False, 25).requires_grad_()
    out = approx_matmul(a, b, lut, engine=engine)
    batch = torch.broadcast_shapes(a_shape[:-2], b_shape[:-2])
    assert out.shape == (*batch, a_shape[-2], b_shape[-1])
    grad_out = torch.randn(out.shape, generator=torch.Generator().manual_seed(26))
    out.backward(grad_out)
    ae = a.detach().expand(*batch, *a_shape[-2:]).reshape(-1, *a_shape[-2:])
    be = b.detach().expand(*batch, *b_shape[-2:]).reshape(-1, *b_shape[-2:])
    go = grad_out.reshape(-1, a_shape[-2], b_shape[-1])
    parts = [ref_matmul(ae[i].numpy(), be[i].numpy(), lut, go[i].numpy()) for i in range(ae.shape[0])]
    want = np.stack([p[0] for p in parts]).reshape(out.shape)
    assert np.array_equal(out.detach().numpy().astype(np.int64), want)
    gxa = torch.from_numpy(np.stack([p[1] for p in parts])).reshape(*batch, *a_shape[-2:]).sum_to_size(a_shape)
    gxb = torch.from_numpy(np.stack([p[2] for p in parts])).reshape(*batch, *b_shape[-2:]).sum_to_size(b_shape)
    assert a.grad is not None and b.grad is not None
    np.testing.assert_allclose(a.grad.numpy(), gxa.numpy(), rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(b.grad.numpy(), gxb.numpy(), rtol=1e-4, atol=1e-3)


def test_ste_linear_equals_exact_product_gradients() -> None:
    lut = random_lut(8, 8, True, seed=27)
    x = values((6, 9), 8, True, 28).requires_grad_()
    w = values((5, 9), 8, True, 29).requires_grad_()
    approx_linear(x, w, lut, grad="ste").sum().backward()
    xr, wr = x.detach().double().requires_grad_(), w.detach().double().requires_grad_()
    (xr @ wr.t()).sum().backward()
    assert x.grad is not None and w.grad is not None
    torch.testing.assert_close(x.grad.double(), xr.grad)
    torch.testing.assert_close(w.grad.double(), wr.grad)


def test_bad_inputs_raise_config_errors() -> None:
    lut = random_lut(4, 4, False)
    no_grads = PreparedLut(lut.forward, 4, 4, signed=False, name="nograd")
    x = values((1, 2, 4, 4), 4, False, 30)
    w = values((2, 2, 3, 3), 4, False, 31)
    with pytest.raises(ConfigError, match="no gradient tables"):
        approx_conv2d(x, w, no_grads)
    with pytest.raises(ConfigError, match=r"outside 0\.\.15"):
        approx_conv2d(x + 16, w, lut, grad="ste")
    with pytest.raises(ConfigError, match="integer"):
        approx_conv2d(x + 0.5 * (x < 15), w, lut, grad="ste")
    with pytest.raises(ConfigError, match="groups"):
        approx_conv2d(x, w, lut, groups=2, grad="ste")
    with pytest.raises(ConfigError, match="does not fit"):
        approx_conv2d(x, values((2, 2, 5, 5), 4, False, 32), lut, grad="ste")
    with pytest.raises(ConfigError, match="grad="):
        approx_linear(x[0, 0], w[0, 0], lut, grad="exact")
    with pytest.raises(ConfigError, match="PreparedLut"):
        approx_linear(x[0, 0], w[0, 0], lut.forward, grad="ste")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="do not broadcast"):
        approx_matmul(values((2, 3, 4), 4, False, 33), values((3, 4, 2), 4, False, 34), lut, grad="ste")


@pytest.mark.parametrize("engine", ENGINES)
def test_operands_without_elements_give_torchs_shapes_and_zero_sums(engine: str) -> None:
    """No products to look up: a sum over K = 0 is 0, and no rows or columns give an empty result (K = 0 and a
    conv weight without output channels raised a reshape traceback)."""
    lut = random_lut(8, 8, True)
    for a, b in [((4, 0), (0, 3)), ((0, 5), (5, 3)), ((4, 5), (5, 0)), ((2, 4, 0), (2, 0, 3))]:
        x, w = torch.zeros(a, requires_grad=True), torch.zeros(b, requires_grad=True)
        out = approx_matmul(x, w, lut, engine=engine, grad="ste")
        assert torch.equal(out, torch.zeros(torch.matmul(x, w).shape))
        out.sum().backward()
        assert x.grad is not None and x.grad.shape == x.shape
    out = approx_linear(torch.zeros(2, 0), torch.zeros(3, 0), lut, engine=engine)
    assert torch.equal(out, torch.zeros(2, 3))
    assert approx_linear(torch.zeros(2, 5), torch.zeros(0, 5), lut, engine=engine).shape == (2, 0)
    with pytest.raises(ConfigError, match="no output channels"):
        approx_conv2d(torch.zeros(1, 2, 5, 5), torch.zeros(0, 2, 3, 3), lut, engine=engine)
