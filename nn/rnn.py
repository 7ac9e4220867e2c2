"""Approximate RNN, LSTM and GRU re-implemented at cell level: every gate product through the multiplier.

Parameters keep torch's names and shapes (``weight_ih_l0``, ``bias_hh_l0_reverse``, ... for the
multi-layer modules, ``weight_ih``/``weight_hh``/``bias_ih``/``bias_hh`` for the cells), so float
``state_dict``s load unchanged. The packed gate weights are quantised row by row (each gate unit of
each block has its own scale in the symmetric scheme), so one LUT matmul covers all gate blocks of a
step: the input-to-hidden products of a whole sequence in one call, the hidden-to-hidden products one
call per time step. Biases are added after rescaling (``b_ih + b_hh`` for every gate; GRU's ``b_hn``
stays inside ``r ⊙ (W_hn h + b_hn)``). With ``"float"`` the modules compute torch's equations in float.

Quantisation state: ``quant.x_l{k}`` (layer input, per tensor), ``quant.h_l{k}[_reverse]`` (hidden
state), ``quant.ih_l{k}[_reverse]`` and ``quant.hh_l{k}[_reverse]`` (weights).
"""

from __future__ import annotations

from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from ..native.ops import quantised_linear
from .config import LayerConfig
from .layers import ApproxModule, _lut_for, fused_applies, fused_weight, linear_accumulate, transfer_hooks
from .quant import ActivationQuantizer, WeightQuantizer, qrange, quantize


def _identity(w: torch.Tensor) -> torch.Tensor:
    return w


def _column(values: torch.Tensor) -> torch.Tensor:
    return values[:, None]


def cell_update(
    mode: str, gi: torch.Tensor, gh: torch.Tensor, h: torch.Tensor, c: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """One step of torch's cell equations from ``gi = W_ih x + b_ih`` and ``gh = W_hh h + b_hh``."""
    if mode == "LSTM":
        assert c is not None
        i, f, g, o = (gi + gh).chunk(4, dim=-1)
        c_new = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        return torch.sigmoid(o) * torch.tanh(c_new), c_new
    if mode == "GRU":
        ir, iz, in_ = gi.chunk(3, dim=-1)
        hr, hz, hn = gh.chunk(3, dim=-1)
        r = torch.sigmoid(ir + hr)
        z = torch.sigmoid(iz + hz)
        n = torch.tanh(in_ + r * hn)
        return (1 - z) * n + z * h, None
    if mode == "RNN_TANH":
        return torch.tanh(gi + gh), None
    if mode == "RNN_RELU":
        return torch.relu(gi + gh), None
    raise ConfigError(f"unknown RNN mode {mode!r}")


class _ApproxRecurrent(ApproxModule):
    """Quantised gate matmuls shared by the multi-layer modules and the cells."""

    quant: nn.ModuleDict

    def _out_channels(self) -> int:
        raise ConfigError(f"{type(self).__name__} has no per-output-channel bias correction")

    def _weight(self, weight: torch.Tensor, weight_key: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(codes, scale [rows], zero [rows])`` of a packed gate weight, quantised row by row."""
        resolved, config = self.resolved, self.config
        per_channel = config.per_channel if config.per_channel is not None else resolved.scheme == "symmetric"
        quantizer = cast(WeightQuantizer, self.quant[weight_key])
        return quantizer.codes(
            weight,
            _identity,
            _column,
            resolved.bits_b,
            resolved.scheme,
            method=config.weight_calibration,
            percentile=config.percentile,
            per_channel=per_channel,
        )

    def _project(
        self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, act_key: str, weight_key: str
    ) -> torch.Tensor:
        """``x Wᵀ + b`` with ``x`` quantised by ``quant[act_key]`` and ``W`` by ``quant[weight_key]``."""
        act = cast(ActivationQuantizer, self.quant[act_key])
        if self.resolved.is_float or act.observing:
            if act.observing:
                act.observe(x)
            return F.linear(x, weight, bias)
        resolved = self.resolved
        scale_a, zero_a = act.qparams(x, resolved.bits_a, resolved.scheme)
        qmin, qmax = qrange(resolved.bits_a, resolved.scheme)
        qb, scale_b, zero_b = self._weight(weight, weight_key)
        if fused_applies(resolved, x, weight):  # (as ApproxLinear: bit-equal to the steps below)
            quantizer = cast(WeightQuantizer, self.quant[weight_key])
            codes, epilogue = fused_weight(resolved, quantizer, qb, zero_a, zero_b, scale_a * scale_b, bias)
            lut, _ = _lut_for(resolved, x.device, False)
            fused = quantised_linear(
                x,
                codes,
                lut,
                scale=float(scale_a),
                zero_point=float(zero_a),
                code_range=(qmin, qmax),
                epilogue=epilogue,
                engine=resolved.config.engine,
            )
            if fused is not None:
                return fused
        qa = quantize(x, scale_a, zero_a, qmin, qmax)
        out = linear_accumulate(qa, zero_a, qb, zero_b, resolved) * (scale_a * scale_b)
        if out.dtype != x.dtype:
            out = out.to(x.dtype)
        return out if bias is None else out + bias


def _rnn_kwargs(m: Any) -> dict[str, Any]:
    kwargs = {
        "num_layers": m.num_layers,
        "bias": m.bias,
        "batch_first": m.batch_first,
        "dropout": m.dropout,
        "bidirectional": m.bidirectional,
        "device": m.weight_ih_l0.device,
        "dtype": m.weight_ih_l0.dtype,
    }
    if m.mode in ("RNN_TANH", "RNN_RELU"):
        kwargs["nonlinearity"] = "tanh" if m.mode == "RNN_TANH" else "relu"
    return kwargs


class _ApproxRNNBase(_ApproxRecurrent):
    """Multi-layer, optionally bidirectional and batch-first recurrent module (torch's layout)."""

    _FLOAT: type[nn.Module]

    def _init_recurrent(self, config: LayerConfig | None) -> None:
        m: Any = self
        if m.proj_size:
            raise ConfigError(f"{type(self).__name__}: proj_size > 0 is not supported")
        quant = nn.ModuleDict()
        for layer in range(m.num_layers):
            quant[f"x_l{layer}"] = ActivationQuantizer()
            for sfx in self._suffixes():
                quant[f"h_l{layer}{sfx}"] = ActivationQuantizer()
                quant[f"ih_l{layer}{sfx}"] = WeightQuantizer()
                quant[f"hh_l{layer}{sfx}"] = WeightQuantizer()
        self.quant = quant.to(m.weight_ih_l0.device)
        self.register_buffer("bias_correction", None)
        self.set_config(config or LayerConfig())

    def _suffixes(self) -> tuple[str, ...]:
        return ("", "_reverse") if getattr(self, "bidirectional") else ("",)  # noqa: B009

    def _direction(
        self, x: torch.Tensor, layer: int, sfx: str, h: torch.Tensor, c: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Run one layer in one direction over ``x [T, B, in]``; returns ``(outputs [T, B, H], h_T, c_T)``."""
        m: Any = self
        name = f"l{layer}{sfx}"
        gi_all = self._project(
            x, getattr(m, f"weight_ih_{name}"), getattr(m, f"bias_ih_{name}", None), f"x_l{layer}", f"ih_{name}"
        )
        w_hh, b_hh = getattr(m, f"weight_hh_{name}"), getattr(m, f"bias_hh_{name}", None)
        steps = range(x.shape[0] - 1, -1, -1) if sfx else range(x.shape[0])
        outputs: list[torch.Tensor] = [x.new_empty(0)] * x.shape[0]
        for t in steps:
            gh = self._project(h, w_hh, b_hh, f"h_{name}", f"hh_{name}")
            h, c = cell_update(m.mode, gi_all[t], gh, h, c)
            outputs[t] = h
        return torch.stack(outputs, dim=0), h, c

    def forward(self, input: torch.Tensor, hx: Any = None) -> Any:
        m: Any = self
        if isinstance(input, nn.utils.rnn.PackedSequence):
            raise ConfigError(f"{type(self).__name__}: PackedSequence input is not supported; pad the batch")
        is_lstm = m.mode == "LSTM"
        batched = input.dim() == 3
        if input.dim() not in (2, 3):
            raise ConfigError(f"{type(self).__name__}: expected a 2-D or 3-D input, got shape {tuple(input.shape)}")
        x = input if batched else input.unsqueeze(1)
        if batched and m.batch_first:
            x = x.transpose(0, 1)
        directions = len(self._suffixes())
        shape = (m.num_layers * directions, x.shape[1], m.hidden_size)
        if hx is None:
            h0 = x.new_zeros(shape)
            c0 = x.new_zeros(shape) if is_lstm else None
        else:
            h0, c0 = hx if is_lstm else (hx, None)
            if not batched:
                h0 = h0.unsqueeze(1)
                c0 = c0.unsqueeze(1) if c0 is not None else None
        h_n, c_n = [], []
        for layer in range(m.num_layers):
            outs = []
            for d, sfx in enumerate(self._suffixes()):
                index = layer * directions + d
                out, h, c = self._direction(x, layer, sfx, h0[index], c0[index] if c0 is not None else None)
                outs.append(out)
                h_n.append(h)
                c_n.append(c)
            x = outs[0] if directions == 1 else torch.cat(outs, dim=-1)
            if m.dropout and self.training and layer < m.num_layers - 1:
                x = F.dropout(x, m.dropout, training=True)
        output = x
        if batched and m.batch_first:
            output = output.transpose(0, 1)
        h_out = torch.stack(h_n, dim=0)
        c_out = torch.stack(c_n, dim=0) if is_lstm else None  # type: ignore[arg-type]
        if not batched:
            output = output.squeeze(1)
            h_out = h_out.squeeze(1)
            c_out = c_out.squeeze(1) if c_out is not None else None
        return (output, (h_out, c_out)) if is_lstm else (output, h_out)

    @classmethod
    def from_float(cls, module: nn.Module, config: LayerConfig | None = None) -> Any:
        """An approximate copy of ``module`` sharing its parameters."""
        if not isinstance(module, cls._FLOAT):
            raise ConfigError(f"{cls.__name__}.from_float needs an {cls._FLOAT.__name__}, got {type(module).__name__}")
        m: Any = module
        if m.proj_size:
            raise ConfigError(f"{cls.__name__}: proj_size > 0 is not supported")
        new = cls(m.input_size, m.hidden_size, **_rnn_kwargs(m), config=config)
        for name in m._flat_weights_names:
            setattr(new, name, getattr(module, name))
        transfer_hooks(module, new)
        return new

    def to_float(self) -> nn.Module:
        m: Any = self
        out = self._FLOAT(m.input_size, m.hidden_size, **_rnn_kwargs(m))
        for name in m._flat_weights_names:
            setattr(out, name, getattr(self, name))
        transfer_hooks(self, out)
        return out


class ApproxRNN(_ApproxRNNBase, nn.RNN):  # type: ignore[misc]
    """:class:`torch.nn.RNN` (tanh or relu) with every product through the multiplier."""

    _FLOAT = nn.RNN

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        nonlinearity: str = "tanh",
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        device: Any = None,
        dtype: Any = None,
        *,
        config: LayerConfig | None = None,
    ) -> None:
        nn.RNN.__init__(
            self, input_size, hidden_size, num_layers, nonlinearity, bias, batch_first, dropout, bidirectional,
            device=device, dtype=dtype,
        )  # fmt: skip
        self._init_recurrent(config)


class ApproxLSTM(_ApproxRNNBase, nn.LSTM):  # type: ignore[misc]
    """:class:`torch.nn.LSTM` with every gate product through the multiplier (``proj_size=0`` only)."""

    _FLOAT = nn.LSTM

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        proj_size: int = 0,
        device: Any = None,
        dtype: Any = None,
        *,
        config: LayerConfig | None = None,
    ) -> None:
        nn.LSTM.__init__(
            self, input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional, proj_size,
            device=device, dtype=dtype,
        )  # fmt: skip
        self._init_recurrent(config)


class ApproxGRU(_ApproxRNNBase, nn.GRU):  # type: ignore[misc]
    """:class:`torch.nn.GRU` with every gate product through the multiplier."""

    _FLOAT = nn.GRU

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        device: Any = None,
        dtype: Any = None,
        *,
        config: LayerConfig | None = None,
    ) -> None:
        nn.GRU.__init__(
            self, input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
            device=device, dtype=dtype,
        )  # fmt: skip
        self._init_recurrent(config)


class _ApproxCell(_ApproxRecurrent):
    """One time step (torch's ``RNNCell``/``LSTMCell``/``GRUCell`` layout)."""

    _FLOAT: type[nn.Module]
    _MODE: str

    def _init_cell(self, config: LayerConfig | None) -> None:
        m: Any = self
        self.quant = nn.ModuleDict(
            {"x": ActivationQuantizer(), "h": ActivationQuantizer(), "ih": WeightQuantizer(), "hh": WeightQuantizer()}
        ).to(m.weight_ih.device)
        self.register_buffer("bias_correction", None)
        self.set_config(config or LayerConfig())

    def _mode(self) -> str:
        if self._MODE == "RNN":
            return "RNN_TANH" if self.nonlinearity == "tanh" else "RNN_RELU"
        return self._MODE

    def forward(self, input: torch.Tensor, hx: Any = None) -> Any:
        m: Any = self
        if input.dim() not in (1, 2):
            raise ConfigError(f"{type(self).__name__}: expected a 1-D or 2-D input, got shape {tuple(input.shape)}")
        batched = input.dim() == 2
        x = input if batched else input.unsqueeze(0)
        is_lstm = self._MODE == "LSTM"
        if hx is None:
            zeros = x.new_zeros(x.shape[0], m.hidden_size)
            h, c = zeros, (zeros if is_lstm else None)
        else:
            h, c = hx if is_lstm else (hx, None)
            if not batched:
                h = h.unsqueeze(0)
                c = c.unsqueeze(0) if c is not None else None
        gi = self._project(x, m.weight_ih, m.bias_ih, "x", "ih")
        gh = self._project(h, m.weight_hh, m.bias_hh, "h", "hh")
        h_new, c_new = cell_update(self._mode(), gi, gh, h, c)
        if not batched:
            h_new = h_new.squeeze(0)
            c_new = c_new.squeeze(0) if c_new is not None else None
        return (h_new, c_new) if is_lstm else h_new

    def _kwargs(self) -> dict[str, Any]:
        m: Any = self
        kwargs = {"bias": m.bias, "device": m.weight_ih.device, "dtype": m.weight_ih.dtype}
        if self._MODE == "RNN":
            kwargs["nonlinearity"] = m.nonlinearity
        return kwargs

    @classmethod
    def from_float(cls, module: nn.Module, config: LayerConfig | None = None) -> Any:
        """An approximate copy of ``module`` sharing its parameters."""
        if not isinstance(module, cls._FLOAT):
            raise ConfigError(f"{cls.__name__}.from_float needs an {cls._FLOAT.__name__}, got {type(module).__name__}")
        m: Any = module
        kwargs: dict[str, Any] = {"bias": m.bias, "device": m.weight_ih.device, "dtype": m.weight_ih.dtype}
        if cls._MODE == "RNN":
            kwargs["nonlinearity"] = m.nonlinearity
        new = cls(m.input_size, m.hidden_size, **kwargs, config=config)
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            setattr(new, name, getattr(module, name))
        transfer_hooks(module, new)
        return new

    def to_float(self) -> nn.Module:
        m: Any = self
        out = self._FLOAT(m.input_size, m.hidden_size, **self._kwargs())
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            setattr(out, name, getattr(self, name))
        transfer_hooks(self, out)
        return out


class ApproxRNNCell(_ApproxCell, nn.RNNCell):
    """:class:`torch.nn.RNNCell` through the multiplier."""

    _FLOAT = nn.RNNCell
    _MODE = "RNN"

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        nonlinearity: str = "tanh",
        device: Any = None,
        dtype: Any = None,
        *,
        config: LayerConfig | None = None,
    ) -> None:
        nn.RNNCell.__init__(self, input_size, hidden_size, bias, nonlinearity, device, dtype)
        self._init_cell(config)


class ApproxLSTMCell(_ApproxCell, nn.LSTMCell):
    """:class:`torch.nn.LSTMCell` through the multiplier."""

    _FLOAT = nn.LSTMCell
    _MODE = "LSTM"

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        device: Any = None,
        dtype: Any = None,
        *,
        config: LayerConfig | None = None,
    ) -> None:
        nn.LSTMCell.__init__(self, input_size, hidden_size, bias, device, dtype)
        self._init_cell(config)


class ApproxGRUCell(_ApproxCell, nn.GRUCell):
    """:class:`torch.nn.GRUCell` through the multiplier."""

    _FLOAT = nn.GRUCell
    _MODE = "GRU"

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        device: Any = None,
        dtype: Any = None,
        *,
        config: LayerConfig | None = None,
    ) -> None:
        nn.GRUCell.__init__(self, input_size, hidden_size, bias, device, dtype)
        self._init_cell(config)
