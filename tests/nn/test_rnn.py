"""Approximate RNN/LSTM/GRU and their cells against torch (float) and a quantised reference (exact LUT)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from approxlut.errors import ConfigError
from approxlut.lutgen.lut import Lut, code_values
from approxlut.nn import (
    ApproxGRU,
    ApproxLSTM,
    ApproxLSTMCell,
    ApproxRNN,
    LayerConfig,
    approximate,
    qrange,
    quantize,
    to_float,
    weight_qparams,
)


def exact_lut(bits: int, signed: bool) -> Lut:
    forward = np.multiply.outer(code_values(bits, signed), code_values(bits, signed)).astype(np.int32)
    return Lut(forward=forward, bits_a=bits, bits_b=bits, signed=signed, name="exact-test")


MODULES = [
    pytest.param(lambda **kw: nn.LSTM(5, 6, **kw), id="lstm"),
    pytest.param(lambda **kw: nn.GRU(5, 6, **kw), id="gru"),
    pytest.param(lambda **kw: nn.RNN(5, 6, **kw), id="rnn-tanh"),
    pytest.param(lambda **kw: nn.RNN(5, 6, nonlinearity="relu", **kw), id="rnn-relu"),
]


@pytest.mark.parametrize("make", MODULES)
@pytest.mark.parametrize(
    "options",
    [{}, {"num_layers": 2, "bidirectional": True, "batch_first": True}, {"num_layers": 2, "bias": False}],
)
def test_float_mode_matches_torch(make, options) -> None:
    torch.manual_seed(0)
    module = make(**options)
    approx = type(approximate(module, "exact")).from_float(module, LayerConfig("float"))
    x = torch.randn(3, 4, 5)
    expected, got = module(x), approx(x)
    torch.testing.assert_close(got[0], expected[0], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(got[1], expected[1], rtol=1e-5, atol=1e-6)
    # initial state given, and an unbatched sequence
    directions = 2 if options.get("bidirectional") else 1
    batch = x.shape[0] if options.get("batch_first") else x.shape[1]
    h0 = torch.randn(options.get("num_layers", 1) * directions, batch, 6)
    state = (h0, torch.randn_like(h0)) if isinstance(module, nn.LSTM) else h0
    torch.testing.assert_close(approx(x, state)[0], module(x, state)[0], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(approx(x[:, 0])[0], module(x[:, 0])[0], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("cell", [nn.LSTMCell(5, 6), nn.GRUCell(5, 6), nn.RNNCell(5, 6, nonlinearity="relu")])
def test_cells_float_and_exact(cell: nn.Module) -> None:
    torch.manual_seed(1)
    x, h = torch.randn(4, 5), torch.randn(4, 6)
    state = (h, torch.randn(4, 6)) if isinstance(cell, nn.LSTMCell) else h
    float_cell = approximate(cell, "exact").from_float(cell, LayerConfig("float"))  # type: ignore[operator]
    expected = cell(x, state)
    got = float_cell(x, state)
    for a, b in zip(got if isinstance(got, tuple) else (got,), expected if isinstance(expected, tuple) else (expected,),
                    strict=True):  # fmt: skip
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    data = [{"input": x, "hx": state}]  # a dict batch is passed as keyword arguments
    quantised = approximate(cell, exact_lut(8, True), calibration_data=data)
    fast = approximate(cell, "exact", calibration_data=data)
    assert quantised.calibrated and float(quantised.quant["h"].scale) > 0.01
    a, b = quantised(x, state), fast(x, state)
    a0 = a[0] if isinstance(a, tuple) else a
    b0 = b[0] if isinstance(b, tuple) else b
    assert torch.equal(a0, b0)
    assert (a0 - (expected[0] if isinstance(expected, tuple) else expected)).abs().max() < 0.05


def _fq_linear(x, w, b, scale_x, zero_x, bits, scheme):
    """The quantised float computation: centred codes multiplied exactly, rescaled, plus bias."""
    qmin, qmax = qrange(bits, scheme)
    per_channel = scheme == "symmetric"
    scale_w, zero_w = weight_qparams(w, bits, scheme, method="max", per_channel=per_channel)
    qa = quantize(x, scale_x, zero_x, qmin, qmax)
    qb = quantize(w, scale_w[:, None], zero_w[:, None], qmin, qmax)
    acc = F.linear((qa - zero_x).double(), (qb - zero_w[:, None]).double())
    return (acc * (scale_x * scale_w)).float() + b


def _reference(module: nn.Module, approx: nn.Module, x: torch.Tensor, scheme: str) -> torch.Tensor:
    """Quantised LSTM/GRU (one layer, one direction) written out step by step, torch's gate order."""
    q = approx.quant
    sx, zx = q["x_l0"].scale, q["x_l0"].zero_point
    sh, zh = q["h_l0"].scale, q["h_l0"].zero_point
    gi_all = _fq_linear(x, module.weight_ih_l0, module.bias_ih_l0, sx, zx, 8, scheme)
    h = torch.zeros(x.shape[1], module.hidden_size)
    c = torch.zeros_like(h)
    outs = []
    for t in range(x.shape[0]):
        gh = _fq_linear(h, module.weight_hh_l0, module.bias_hh_l0, sh, zh, 8, scheme)
        if isinstance(module, nn.LSTM):
            i, f, g, o = (gi_all[t] + gh).chunk(4, dim=-1)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            h = torch.sigmoid(o) * torch.tanh(c)
        else:
            ir, iz, in_ = gi_all[t].chunk(3, dim=-1)
            hr, hz, hn = gh.chunk(3, dim=-1)
            r, z = torch.sigmoid(ir + hr), torch.sigmoid(iz + hz)
            n = torch.tanh(in_ + r * hn)  # b_hn stays inside r * (W_hn h + b_hn)
            h = (1 - z) * n + z * h
        outs.append(h)
    return torch.stack(outs)


@pytest.mark.parametrize("kind", [nn.LSTM, nn.GRU])
@pytest.mark.parametrize("signed", [True, False])
def test_exact_lut_equals_quantised_float_computation(kind: type[nn.Module], signed: bool) -> None:
    torch.manual_seed(2)
    module = kind(4, 5)
    x = torch.randn(6, 3, 4)
    approx = approximate(module, exact_lut(8, signed), calibration_data=[x])
    assert approx.calibrated
    got = approx(x)[0]
    expected = _reference(module, approx, x, "symmetric" if signed else "affine")
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-6)
    # and it stays near torch's float numerics
    assert (got - module(x)[0]).abs().max() < 0.05


def test_exact_lut_equals_fast_exact_path_multi_layer_bidirectional() -> None:
    torch.manual_seed(3)
    module = nn.LSTM(4, 5, num_layers=2, bidirectional=True, batch_first=True)
    x = torch.randn(2, 5, 4)
    lut_model = approximate(module, exact_lut(8, True), calibration_data=[x])
    fast_model = approximate(module, "exact", calibration_data=[x])
    a, (ha, ca) = lut_model(x)
    b, (hb, cb) = fast_model(x)
    assert torch.equal(a, b) and torch.equal(ha, hb) and torch.equal(ca, cb)
    assert a.shape == module(x)[0].shape and ha.shape == (4, 2, 5)


def test_every_gate_product_goes_through_the_multiplier() -> None:
    torch.manual_seed(4)
    zero = Lut(forward=np.zeros((256, 256), dtype=np.int32), bits_a=8, bits_b=8, signed=True, name="zero")
    module = nn.GRU(3, 4, num_layers=2)
    x = torch.randn(5, 2, 3)
    approx = approximate(module, zero, calibration_data=[x])
    only_bias = nn.GRU(3, 4, num_layers=2)
    only_bias.load_state_dict(module.state_dict())
    with torch.no_grad():
        for name, p in only_bias.named_parameters():
            if name.startswith("weight"):
                p.zero_()
    torch.testing.assert_close(approx(x)[0], only_bias(x)[0], rtol=1e-6, atol=1e-6)


def test_state_dict_keys_and_round_trip() -> None:
    module = nn.LSTM(3, 4, num_layers=2, bidirectional=True)
    approx = approximate(module, "exact")
    assert isinstance(approx, ApproxLSTM)
    keys = set(approx.state_dict())
    assert set(module.state_dict()) <= keys
    assert all(k.startswith("quant.") for k in keys - set(module.state_dict()))
    other = nn.LSTM(3, 4, num_layers=2, bidirectional=True)
    approx.load_state_dict(other.state_dict())
    assert torch.equal(approx.weight_hh_l1_reverse, other.weight_hh_l1_reverse)
    back = to_float(approx)
    assert type(back) is nn.LSTM
    x = torch.randn(3, 2, 3)
    assert torch.equal(back(x)[0], other(x)[0])


def test_gradients_flow_through_recurrence() -> None:
    torch.manual_seed(5)
    module = nn.GRU(3, 4, batch_first=True)
    x = torch.randn(2, 5, 3)
    approx = approximate(module, LayerConfig(exact_lut(8, True), grad="ste"), calibration_data=[x])
    xi = x.clone().requires_grad_(True)
    approx(xi)[0].sum().backward()
    assert xi.grad is not None and torch.isfinite(xi.grad).all() and (xi.grad != 0).any()
    assert approx.weight_hh_l0.grad is not None and (approx.weight_hh_l0.grad != 0).any()


def test_unsupported_rnn_options() -> None:
    with pytest.raises(ConfigError):
        approximate(nn.LSTM(3, 4, proj_size=2), "exact")
    approx = ApproxRNN(3, 4, config=LayerConfig("exact"))
    packed = nn.utils.rnn.pack_padded_sequence(torch.randn(4, 2, 3), [4, 2])
    with pytest.raises(ConfigError):
        approx(packed)
    with pytest.raises(ConfigError):
        ApproxGRU(3, 4, config=LayerConfig("exact")).set_bias_correction(torch.zeros(12))
    cell = ApproxLSTMCell(3, 4, config=LayerConfig("exact"))
    h, c = cell(torch.randn(3))
    assert h.shape == (4,) and c.shape == (4,)
