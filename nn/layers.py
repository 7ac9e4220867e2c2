"""Approximate Linear/Conv layers: torch's constructor signatures and ``state_dict`` keys, one engine call each.

``forward`` quantises the input (per tensor) and the weight (per output channel for symmetric), runs
one LUT op of :mod:`approxlut.native` on the codes, removes the zero-point cross terms exactly (affine
scheme: ``Σ (qa − za)(qb − zb) = Σ T[qa, qb] − zb Σ qa − za Σ qb + K za zb``), rescales by
``s_a · s_b`` and adds the bias (plus an optional per-channel ``bias_correction`` buffer). The
``"exact"`` multiplier takes a fast path with exact products computed by torch in float64 (bit-equal
to an exact LUT), ``"float"`` runs the plain torch layer.

Quantisation state lives in two child modules, ``input_quant`` (buffers ``scale``, ``zero_point``) and
``weight_quant`` (derived from the weight), so a float ``state_dict`` loads unchanged.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from ..native.engines import Epilogue
from ..native.ops import approx_conv2d, approx_linear, approx_matmul, quantised_conv2d, quantised_linear
from ..native.prepared import PreparedLut
from .config import LayerConfig
from .multipliers import ResolvedConfig, resolve_config
from .quant import ActivationQuantizer, Calibratable, WeightQuantizer, affine_weight_terms, qrange, quantize

_HOOK_DICTS = (
    "_forward_hooks",
    "_forward_hooks_with_kwargs",
    "_forward_hooks_always_called",
    "_forward_pre_hooks",
    "_forward_pre_hooks_with_kwargs",
    "_backward_hooks",
    "_backward_pre_hooks",
)


def transfer_hooks(source: nn.Module, target: nn.Module) -> None:
    """Make ``target`` share ``source``'s hook dicts (existing hook handles keep working) and mode."""
    for name in _HOOK_DICTS:
        if hasattr(source, name):
            setattr(target, name, getattr(source, name))
    target.train(source.training)


def _lut_for(resolved: ResolvedConfig, device: torch.device, needs_grad: bool) -> tuple[PreparedLut, str]:
    """The prepared LUT on ``device`` and the grad mode to pass to the op."""
    grad = resolved.config.grad if needs_grad else "ste"
    return resolved.prepared(device, gradients=grad == "difference"), grad


def _needs_grad(*tensors: torch.Tensor) -> bool:
    return torch.is_grad_enabled() and any(t.requires_grad for t in tensors)


def fused_applies(resolved: ResolvedConfig, x: torch.Tensor, weight: torch.Tensor) -> bool:
    """Whether the fused inference path (native quantiser, LUT op, epilogue in place) may run: a LUT multiplier
    (symmetric or affine), no autograd, a float32 CPU input of at least one sample (an empty batch takes the op's
    own path) and float32 weights (others, e.g. a float64 layer, take the step-by-step path, whose result they
    promote)."""
    if resolved.is_exact_path or _needs_grad(x, weight) or x.shape[0] == 0:
        return False
    return x.dtype == torch.float32 and weight.dtype == torch.float32 and x.device.type == "cpu"


def fused_weight(
    resolved: ResolvedConfig,
    quantizer: WeightQuantizer,
    qb: torch.Tensor,
    zero_a: torch.Tensor,
    zero_b: torch.Tensor,
    scale: torch.Tensor,
    bias: torch.Tensor | None = None,
    extra: torch.Tensor | None = None,
) -> tuple[torch.Tensor, Epilogue]:
    """The weight codes (int8 symmetric, uint8 affine) and the epilogue of a fused path: ``scale``, ``bias``,
    ``extra``, and in the affine scheme the zero-point terms of :func:`linear_accumulate` and
    :func:`conv2d_accumulate` (per output channel ``za·(Σqb − K·zb)`` and ``zb``, as they compute them).

    ``qb`` holds the weight codes (``[C, ...]``, as ``quantizer`` returned them), ``zero_a`` the activation zero
    point, ``zero_b [C]`` the weight zero points.
    """
    affine = resolved.scheme == "affine"
    codes = quantizer.integer_codes(qb, signed=not affine)
    if not affine:
        return codes, Epilogue(scale, bias, extra)
    zb64, weight_terms = quantizer.affine_terms(qb, zero_b)
    return codes, Epilogue(scale, bias, extra, zero=zb64, offset=zero_a.double() * weight_terms)


def linear_accumulate(
    qa: torch.Tensor, za: torch.Tensor, qb: torch.Tensor, zb: torch.Tensor, resolved: ResolvedConfig
) -> torch.Tensor:
    """``Σ_k (qa − za)(qb − zb)`` through the multiplier, ``[..., out]`` (integer-valued float).

    ``qa [..., in]`` activation codes, ``qb [out, in]`` weight codes, ``za`` scalar, ``zb [out]``.
    The exact path and the affine cross terms are computed in float64 (exact); the LUT sums come from
    the engine as float32.
    """
    if resolved.is_exact_path:
        if resolved.scheme == "symmetric":
            return F.linear(qa.double(), qb.double())
        return F.linear((qa - za).double(), (qb - zb[:, None]).double())
    lut, grad = _lut_for(resolved, qa.device, _needs_grad(qa, qb))
    acc = approx_linear(qa, qb, lut, grad=grad, engine=resolved.config.engine)
    if resolved.scheme == "affine":  # − zb·Σqa − za·(Σqb − k·zb): integers, exact in float64 in any order
        zb64, weight_terms = affine_weight_terms(qb, zb)
        per_out = za.double() * weight_terms
        acc = acc - torch.addcmul(per_out, qa.sum(-1, keepdim=True, dtype=torch.float64), zb64)  # (float64)
    return acc


def conv2d_accumulate(
    qa: torch.Tensor,
    za: torch.Tensor,
    qb: torch.Tensor,
    zb: torch.Tensor,
    resolved: ResolvedConfig,
    *,
    stride: tuple[int, int],
    pads: tuple[int, int, int, int],
    dilation: tuple[int, int],
    groups: int,
) -> torch.Tensor:
    """``Σ (qa − za)(qb − zb)`` over each receptive field, ``[N, O, OH, OW]`` (integer-valued float).

    ``pads`` is ``(top, bottom, left, right)``; padding takes code ``za`` (real value 0).
    """
    top, bottom, left, right = pads
    padding: tuple[int, int] = (0, 0)
    if resolved.scheme == "symmetric" and top == bottom and left == right:
        padding = (top, left)  # zero point 0: the op's own zero padding is the right code
    elif any(pads):
        qa = F.pad(qa, (left, right, top, bottom), mode="constant", value=float(za))
    if resolved.is_exact_path:
        if resolved.scheme == "symmetric":
            return F.conv2d(qa.double(), qb.double(), None, stride, padding, dilation, groups)
        return F.conv2d((qa - za).double(), (qb - zb.view(-1, 1, 1, 1)).double(), None, stride, 0, dilation, groups)
    lut, grad = _lut_for(resolved, qa.device, _needs_grad(qa, qb))
    acc = approx_conv2d(qa, qb, lut, stride, padding, dilation, groups, grad=grad, engine=resolved.config.engine)
    if resolved.scheme == "affine":  # − zb·Σqa − za·(Σqb − K·zb): integers, exact in float64 in any order
        out_channels, cg, kh, kw = qb.shape
        n, _, height, width = qa.shape
        # Σ qa over each receptive field: channels of a group summed first, then a box filter; broadcast over the
        # group's output channels
        by_group = qa.reshape(n, groups, cg, height, width)
        exact32 = cg * ((1 << resolved.bits_a) - 1) < 1 << 24  # (non-negative integer sums: exact in float32 below)
        per_group = by_group.sum(dim=2).double() if exact32 else by_group.sum(dim=2, dtype=torch.float64)
        ones = torch.ones((groups, 1, kh, kw), dtype=torch.float64, device=qa.device)
        sum_a = F.conv2d(per_group, ones, None, stride, 0, dilation, groups).unsqueeze(2)
        zb64, weight_terms = affine_weight_terms(qb, zb)
        per_out = za.double() * weight_terms
        shape, per_group_out = acc.shape, (1, groups, out_channels // groups, 1, 1)
        correction = torch.addcmul(per_out.view(per_group_out), sum_a, zb64.view(per_group_out))
        acc = (acc.view(n, groups, out_channels // groups, *shape[2:]) - correction).view(shape)  # (float64)
    return acc


def conv_pads(
    padding: str | tuple[int, ...], kernel: tuple[int, ...], dilation: tuple[int, ...]
) -> list[tuple[int, int]]:
    """Per spatial dim ``(before, after)`` zero padding (torch's rule for ``"same"``: extra after)."""
    if padding == "valid":
        return [(0, 0)] * len(kernel)
    if padding == "same":
        out = []
        for k, d in zip(kernel, dilation, strict=True):
            total = d * (k - 1)
            out.append((total // 2, total - total // 2))
        return out
    assert isinstance(padding, tuple)
    return [(p, p) for p in padding]


class ApproxModule(Calibratable, nn.Module):
    """What every approximate layer offers (mixed into a torch module class).

    Attributes:
        config: the :class:`LayerConfig` in force (change it with :meth:`set_config`).
        resolved: the config with its multiplier looked up.
    """

    config: LayerConfig
    resolved: ResolvedConfig
    input_quant: ActivationQuantizer
    weight_quant: WeightQuantizer
    bias_correction: torch.Tensor | None
    _FLOAT: type[nn.Module]

    def _activation_quantizers(self) -> list[ActivationQuantizer]:
        return [m for m in self.modules() if isinstance(m, ActivationQuantizer)]

    def _quantizer_bits(self, resolved: ResolvedConfig) -> list[tuple[ActivationQuantizer, int]]:
        """Each activation quantiser with its operand width under ``resolved`` (all operand ``a`` here)."""
        return [(q, resolved.bits_a) for q in self._activation_quantizers()]

    def set_config(self, config: LayerConfig) -> None:
        """Use another multiplier/quantisation; recalibrated from kept statistics where there are any."""
        resolved = resolve_config(config)
        previous: ResolvedConfig | None = getattr(self, "resolved", None)
        self.config = config
        self.resolved = resolved
        if resolved.is_float:
            return
        before = {}
        if previous is not None and not previous.is_float:
            before = {id(q): bits for q, bits in self._quantizer_bits(previous)}
        for quantizer, bits in self._quantizer_bits(resolved):
            if quantizer.observing:
                continue
            if quantizer.observer is not None and not quantizer.observer.empty:
                quantizer.freeze(bits, resolved.scheme, config.calibration, config.percentile)
            elif quantizer.calibrated and previous is not None and id(quantizer) in before:
                # no statistics (e.g. loaded from a state dict): keep the calibrated real range
                quantizer.requantize(before[id(quantizer)], previous.scheme, bits, resolved.scheme)

    @property
    def multiplier_name(self) -> str:
        """The multiplier's name (``"float"``, ``"exact8s"``, a library name, ...)."""
        return self.resolved.name

    @property
    def observing(self) -> bool:
        """Whether calibration statistics are being collected."""
        return any(q.observing for q in self._activation_quantizers())

    @property
    def calibrated(self) -> bool:
        """Whether every activation quantiser has frozen parameters."""
        return all(q.calibrated for q in self._activation_quantizers())

    def start_observing(self, *, reset: bool = True) -> None:
        for quantizer in self._activation_quantizers():
            quantizer.start(reset=reset)

    def freeze(self) -> None:
        resolved = self.resolved
        scheme = resolved.scheme if not resolved.is_float else "symmetric"
        for quantizer, bits in self._quantizer_bits(resolved):
            quantizer.freeze(bits or 8, scheme, self.config.calibration, self.config.percentile)

    def set_bias_correction(self, correction: torch.Tensor | None) -> None:
        """Set (or clear with ``None``) the per-output-channel value added after rescaling."""
        if correction is None:
            self.bias_correction = None
            return
        channels = self._out_channels()
        weight: torch.Tensor = getattr(self, "weight")  # noqa: B009
        correction = torch.as_tensor(correction, dtype=weight.dtype).to(weight.device).reshape(-1)
        if correction.numel() != channels:
            raise ConfigError(f"bias correction has {correction.numel()} values, the layer has {channels} outputs")
        self.bias_correction = correction

    def _out_channels(self) -> int:
        raise NotImplementedError

    def _init_approx(self, config: LayerConfig) -> None:
        self.input_quant = ActivationQuantizer()
        self.weight_quant = WeightQuantizer()
        self.register_buffer("bias_correction", None)
        weight: torch.Tensor = getattr(self, "weight")  # noqa: B009
        self.input_quant.to(weight.device)
        self.set_config(config)

    def _load_from_state_dict(
        self,
        state_dict: dict[str, Any],
        prefix: str,
        local_metadata: dict[str, Any],
        strict: bool,
        missing_keys: list[str],
        unexpected_keys: list[str],
        error_msgs: list[str],
    ) -> None:
        # The correction is optional: present in the dict -> loaded, absent -> cleared.
        key = prefix + "bias_correction"
        if key in state_dict:
            self.set_bias_correction(torch.zeros_like(torch.as_tensor(state_dict[key])))
        else:
            self.bias_correction = None
        super()._load_from_state_dict(
            state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
        )

    def weight_rows(self, weight: torch.Tensor) -> torch.Tensor:
        """The weight as ``[out channels, -1]`` rows (one per output channel)."""
        return weight.reshape(weight.shape[0], -1)

    def channel_view(self, values: torch.Tensor) -> torch.Tensor:
        """Per-output-channel ``values [C]`` shaped to broadcast against the weight."""
        weight: torch.Tensor = getattr(self, "weight")  # noqa: B009
        return values.reshape((-1,) + (1,) * (weight.dim() - 1))

    def quantize_weight(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(codes, scale [C], zero_point [C])`` of the weight (codes in the weight's layout)."""
        resolved, config = self.resolved, self.config
        if resolved.is_float:
            raise ConfigError(f"{type(self).__name__} runs in float; there are no weight codes")
        weight: torch.Tensor = getattr(self, "weight")  # noqa: B009
        per_channel = config.per_channel if config.per_channel is not None else resolved.scheme == "symmetric"
        return self.weight_quant.codes(
            weight,
            self.weight_rows,
            self.channel_view,
            resolved.bits_b,
            resolved.scheme,
            method=config.weight_calibration,
            percentile=config.percentile,
            per_channel=per_channel,
        )

    def quantize_input(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(codes, scale, zero_point)`` of an input (per tensor; per batch while uncalibrated)."""
        resolved = self.resolved
        if resolved.is_float:
            raise ConfigError(f"{type(self).__name__} runs in float; there are no input codes")
        scale, zero = self.input_quant.qparams(x, resolved.bits_a, resolved.scheme)
        qmin, qmax = qrange(resolved.bits_a, resolved.scheme)
        return quantize(x, scale, zero, qmin, qmax), scale, zero

    def _fused_operands(self, x: torch.Tensor) -> tuple[float, float, torch.Tensor, PreparedLut, Epilogue] | None:
        """``(scale, zero_point, weight codes, LUT, epilogue)`` of the fused inference path (quantise, LUT op,
        zero-point terms, rescale and bias in native passes, bit-equal to :meth:`accumulate` + :meth:`_finish`),
        or ``None`` where it does not apply: the exact path, autograd, not a float32 CPU input."""
        resolved = self.resolved
        if not fused_applies(resolved, x, getattr(self, "weight")):  # noqa: B009
            return None
        scale_a, zero_a = self.input_quant.qparams(x, resolved.bits_a, resolved.scheme)
        qb, sb, zb = self.quantize_weight()
        lut, _ = _lut_for(resolved, x.device, False)
        bias: torch.Tensor | None = getattr(self, "bias")  # noqa: B009
        codes, epilogue = fused_weight(
            resolved, self.weight_quant, qb, zero_a, zb, scale_a * sb, bias, self.bias_correction
        )
        return float(scale_a), float(zero_a), codes, lut, epilogue

    def _finish(self, acc: torch.Tensor, scale: torch.Tensor, x: torch.Tensor, view: tuple[int, ...]) -> torch.Tensor:
        out = acc * scale.reshape(view)
        if out.dtype != x.dtype:
            out = out.to(x.dtype)
        bias: torch.Tensor | None = getattr(self, "bias")  # noqa: B009
        if bias is not None:
            out = out + bias.reshape(view)
        correction = self.bias_correction
        if correction is not None:
            out = out + correction.reshape(view)
        return out

    def to_float(self) -> nn.Module:
        """The plain torch layer with the same parameters (shared), hooks and mode."""
        raise NotImplementedError

    def extra_repr(self) -> str:
        base = super().extra_repr()
        return f"{base}, multiplier={self.multiplier_name}"


def _copy_params(source: nn.Module, target: nn.Module, names: tuple[str, ...]) -> None:
    for name in names:
        setattr(target, name, getattr(source, name))


class ApproxLinear(ApproxModule, nn.Linear):
    """:class:`torch.nn.Linear` through an approximate multiplier (any leading dims)."""

    _FLOAT = nn.Linear

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        device: Any = None,
        dtype: Any = None,
        *,
        config: LayerConfig | None = None,
    ) -> None:
        nn.Linear.__init__(self, in_features, out_features, bias, device, dtype)
        self._init_approx(config or LayerConfig())

    def _out_channels(self) -> int:
        return self.out_features

    def accumulate(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(acc, scale)``: the integer accumulator (``[..., out]``, integer-valued float) and its scale ``[out]``."""
        qa, sa, za = self.quantize_input(x)
        qb, sb, zb = self.quantize_weight()
        return linear_accumulate(qa, za, qb, zb, self.resolved), sa * sb

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.resolved.is_float:
            return F.linear(x, self.weight, self.bias)
        if self.input_quant.observing:
            self.input_quant.observe(x)
            return F.linear(x, self.weight, self.bias)
        fused = self._fused_operands(x)
        if fused is not None:
            scale_a, zero_a, codes, lut, epilogue = fused
            out = quantised_linear(
                x,
                codes,
                lut,
                scale=scale_a,
                zero_point=zero_a,
                code_range=qrange(self.resolved.bits_a, self.resolved.scheme),
                epilogue=epilogue,
                engine=self.resolved.config.engine,
            )
            if out is not None:
                return out
        acc, scale = self.accumulate(x)
        return self._finish(acc, scale, x, (-1,))

    @classmethod
    def from_float(cls, module: nn.Module, config: LayerConfig | None = None) -> ApproxLinear:
        """An approximate copy of ``module`` sharing its parameters."""
        if not isinstance(module, nn.Linear):
            raise ConfigError(f"ApproxLinear.from_float needs an nn.Linear, got {type(module).__name__}")
        new = cls(
            module.in_features,
            module.out_features,
            module.bias is not None,
            device=module.weight.device,
            dtype=module.weight.dtype,
            config=config,
        )
        _copy_params(module, new, ("weight", "bias"))
        transfer_hooks(module, new)
        return new

    def to_float(self) -> nn.Linear:
        out = nn.Linear(
            self.in_features, self.out_features, self.bias is not None, self.weight.device, self.weight.dtype
        )
        _copy_params(self, out, ("weight", "bias"))
        transfer_hooks(self, out)
        return out


def _conv_kwargs(m: Any) -> dict[str, Any]:
    """Constructor arguments (other than channels and kernel size) that rebuild conv module ``m``."""
    kwargs: dict[str, Any] = {
        "stride": m.stride,
        "padding": m.padding,
        "dilation": m.dilation,
        "groups": m.groups,
        "bias": m.bias is not None,
        "padding_mode": m.padding_mode,
        "device": m.weight.device,
        "dtype": m.weight.dtype,
    }
    if isinstance(m, nn.ConvTranspose2d):
        kwargs["output_padding"] = m.output_padding
    return kwargs


class _ApproxConvNd(ApproxModule):
    """Shared by Conv1d/Conv2d: validation, conversion, weight layout."""

    def _check_conv(self) -> None:
        mode = getattr(self, "padding_mode")  # noqa: B009
        if mode != "zeros":
            raise ConfigError(f"{type(self).__name__}: padding_mode={mode!r} is not supported (only 'zeros')")

    def _out_channels(self) -> int:
        return int(getattr(self, "out_channels"))  # noqa: B009

    @classmethod
    def from_float(cls, module: nn.Module, config: LayerConfig | None = None) -> Any:
        """An approximate copy of ``module`` sharing its parameters."""
        float_cls: type[nn.Module] = cls._FLOAT
        if not isinstance(module, float_cls):
            raise ConfigError(f"{cls.__name__}.from_float needs an {float_cls.__name__}, got {type(module).__name__}")
        m: Any = module
        kwargs = _conv_kwargs(m)
        new = cls(m.in_channels, m.out_channels, m.kernel_size, **kwargs, config=config)
        _copy_params(module, new, ("weight", "bias"))
        transfer_hooks(module, new)
        return new

    def to_float(self) -> nn.Module:
        m: Any = self
        kwargs = _conv_kwargs(m)
        out = self._FLOAT(m.in_channels, m.out_channels, m.kernel_size, **kwargs)
        _copy_params(self, out, ("weight", "bias"))
        transfer_hooks(self, out)
        return out

    def _fused_conv2d(
        self, x: torch.Tensor, pads: tuple[int, int, int, int], stride: tuple[int, int], dilation: tuple[int, int]
    ) -> torch.Tensor | None:
        """Inference with a LUT multiplier on the CPU engine: quantise, convolve, take off the zero-point terms
        (affine), rescale and add the bias in one native pass (:func:`~approxlut.native.ops.quantised_conv2d`),
        bit-equal to :meth:`accumulate` + :meth:`_finish`; ``None`` where that path does not apply. A 3-D ``x``
        (conv1d) runs as the 2-D conv of height 1 that :meth:`accumulate` lowers it to (the result is 4-D)."""
        fused = self._fused_operands(x)
        if fused is None:
            return None
        scale_a, zero_a, codes, lut, epilogue = fused
        x4, codes4 = (x, codes) if x.dim() == 4 else (x.unsqueeze(2), codes.unsqueeze(2))
        return quantised_conv2d(
            x4,
            codes4,
            lut,
            scale=scale_a,
            zero_point=zero_a,
            code_range=qrange(self.resolved.bits_a, self.resolved.scheme),
            padding=pads,
            stride=stride,
            dilation=dilation,
            groups=int(getattr(self, "groups")),  # noqa: B009
            epilogue=epilogue,
            engine=self.resolved.config.engine,
        )


class ApproxConv2d(_ApproxConvNd, nn.Conv2d):
    """:class:`torch.nn.Conv2d` through an approximate multiplier (stride, padding incl. ``"same"``,
    dilation, groups/depthwise; ``padding_mode="zeros"`` only)."""

    _FLOAT = nn.Conv2d

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: Any,
        stride: Any = 1,
        padding: Any = 0,
        dilation: Any = 1,
        groups: int = 1,
        bias: bool = True,
        padding_mode: Any = "zeros",
        device: Any = None,
        dtype: Any = None,
        *,
        config: LayerConfig | None = None,
    ) -> None:
        nn.Conv2d.__init__(
            self, in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias, padding_mode,
            device, dtype,
        )  # fmt: skip
        self._check_conv()
        self._init_approx(config or LayerConfig())

    def accumulate(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(acc, scale)``: integer accumulator (``[N, O, OH, OW]``, integer-valued float) and its scale ``[O]``."""
        if x.dim() != 4:
            raise ConfigError(f"{type(self).__name__}: expected a 4-D NCHW input, got shape {tuple(x.shape)}")
        qa, sa, za = self.quantize_input(x)
        qb, sb, zb = self.quantize_weight()
        (top, bottom), (left, right) = conv_pads(self.padding, self.kernel_size, self.dilation)
        acc = conv2d_accumulate(
            qa,
            za,
            qb,
            zb,
            self.resolved,
            stride=self.stride,  # type: ignore[arg-type]
            pads=(top, bottom, left, right),
            dilation=self.dilation,  # type: ignore[arg-type]
            groups=self.groups,
        )
        return acc, sa * sb

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.resolved.is_float:
            return self._conv_forward(x, self.weight, self.bias)
        if self.input_quant.observing:
            self.input_quant.observe(x)
            return self._conv_forward(x, self.weight, self.bias)
        if x.dim() == 4:
            (top, bottom), (left, right) = conv_pads(self.padding, self.kernel_size, self.dilation)
            fused = self._fused_conv2d(x, (top, bottom, left, right), self.stride, self.dilation)  # type: ignore[arg-type]
            if fused is not None:
                return fused
        acc, scale = self.accumulate(x)
        return self._finish(acc, scale, x, (1, -1, 1, 1))


class ApproxConv1d(_ApproxConvNd, nn.Conv1d):
    """:class:`torch.nn.Conv1d` through an approximate multiplier (lowered to a 2-D conv of height 1)."""

    _FLOAT = nn.Conv1d

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: Any,
        stride: Any = 1,
        padding: Any = 0,
        dilation: Any = 1,
        groups: int = 1,
        bias: bool = True,
        padding_mode: Any = "zeros",
        device: Any = None,
        dtype: Any = None,
        *,
        config: LayerConfig | None = None,
    ) -> None:
        nn.Conv1d.__init__(
            self, in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias, padding_mode,
            device, dtype,
        )  # fmt: skip
        self._check_conv()
        self._init_approx(config or LayerConfig())

    def accumulate(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(acc, scale)``: integer accumulator (``[N, O, OL]``, integer-valued float) and its scale ``[O]``."""
        if x.dim() != 3:
            raise ConfigError(f"{type(self).__name__}: expected a 3-D NCL input, got shape {tuple(x.shape)}")
        qa, sa, za = self.quantize_input(x)
        qb, sb, zb = self.quantize_weight()
        ((left, right),) = conv_pads(self.padding, self.kernel_size, self.dilation)
        acc = conv2d_accumulate(
            qa.unsqueeze(2),
            za,
            qb.unsqueeze(2),
            zb,
            self.resolved,
            stride=(1, self.stride[0]),
            pads=(0, 0, left, right),
            dilation=(1, self.dilation[0]),
            groups=self.groups,
        )
        return acc.squeeze(2), sa * sb

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.resolved.is_float:
            return self._conv_forward(x, self.weight, self.bias)
        if self.input_quant.observing:
            self.input_quant.observe(x)
            return self._conv_forward(x, self.weight, self.bias)
        if x.dim() == 3:
            ((left, right),) = conv_pads(self.padding, self.kernel_size, self.dilation)
            fused = self._fused_conv2d(x, (0, 0, left, right), (1, self.stride[0]), (1, self.dilation[0]))
            if fused is not None:
                return fused.squeeze(2)
        acc, scale = self.accumulate(x)
        return self._finish(acc, scale, x, (1, -1, 1))


class ApproxConvTranspose2d(_ApproxConvNd, nn.ConvTranspose2d):
    """:class:`torch.nn.ConvTranspose2d` through an approximate multiplier.

    Lowered as GEMM + col2im: ``cols = xᵀ W`` (one LUT matmul per group, batched) then
    :func:`torch.nn.functional.fold` sums the overlapping taps exactly, so only real (input, weight)
    pairs go through the multiplier (no products with inserted zeros).
    """

    _FLOAT = nn.ConvTranspose2d

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: Any,
        stride: Any = 1,
        padding: Any = 0,
        output_padding: Any = 0,
        groups: int = 1,
        bias: bool = True,
        dilation: Any = 1,
        padding_mode: Any = "zeros",
        device: Any = None,
        dtype: Any = None,
        *,
        config: LayerConfig | None = None,
    ) -> None:
        nn.ConvTranspose2d.__init__(
            self, in_channels, out_channels, kernel_size, stride, padding, output_padding, groups, bias, dilation,
            padding_mode, device, dtype,
        )  # fmt: skip
        self._check_conv()
        self._init_approx(config or LayerConfig())

    def weight_rows(self, weight: torch.Tensor) -> torch.Tensor:
        g = self.groups
        cin, cout_g, kh, kw = weight.shape
        return weight.reshape(g, cin // g, cout_g, kh * kw).permute(0, 2, 1, 3).reshape(g * cout_g, -1)

    def channel_view(self, values: torch.Tensor) -> torch.Tensor:
        g = self.groups
        cin, cout_g = self.weight.shape[0], self.weight.shape[1]
        return values.reshape(g, 1, cout_g, 1, 1).expand(g, cin // g, cout_g, 1, 1).reshape(cin, cout_g, 1, 1)

    def accumulate(self, x: torch.Tensor, output_size: list[int] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``(acc, scale)``: integer accumulator (``[N, O, OH, OW]``, integer-valued float) and its scale ``[O]``."""
        if x.dim() != 4:
            raise ConfigError(f"{type(self).__name__}: expected a 4-D NCHW input, got shape {tuple(x.shape)}")
        resolved = self.resolved
        m: Any = self
        output_padding = m._output_padding(x, output_size, m.stride, m.padding, m.kernel_size, 2, m.dilation)
        qa, sa, za = self.quantize_input(x)
        qb, sb, zb = self.quantize_weight()
        if resolved.is_exact_path:
            acc = F.conv_transpose2d(
                (qa - za).double(),
                (qb - self.channel_view(zb)).double(),
                None,
                self.stride,
                self.padding,  # type: ignore[arg-type]
                output_padding,
                self.groups,
                self.dilation,
            )
            return acc, sa * sb
        acc = self._lut_col2im(qa, za, qb, zb, output_padding)
        return acc, sa * sb

    def _lut_col2im(
        self, qa: torch.Tensor, za: torch.Tensor, qb: torch.Tensor, zb: torch.Tensor, output_padding: Any
    ) -> torch.Tensor:
        n, _, h, w = qa.shape
        g = self.groups
        cin_g, cout_g, kh, kw = qb.shape[0] // g, qb.shape[1], qb.shape[2], qb.shape[3]
        m: Any = self
        sh, sw = m.stride
        ph, pw = m.padding
        dh, dw = m.dilation
        oph, opw = output_padding
        if oph >= sh or opw >= sw:
            raise ConfigError(
                f"{type(self).__name__}: output_padding {tuple(output_padding)} must be smaller than the stride "
                f"{self.stride} for LUT execution"
            )
        a = qa.reshape(n, g, cin_g, h * w).transpose(2, 3)  # [N, g, HW, Cin_g]
        b = qb.reshape(g, cin_g, cout_g * kh * kw)  # [g, Cin_g, Cout_g·kh·kw]
        lut, grad = _lut_for(self.resolved, qa.device, _needs_grad(qa, qb))
        cols = approx_matmul(a, b, lut, grad=grad, engine=self.config.engine).double()
        if self.resolved.scheme == "affine":
            za64 = za.double()
            zb64 = zb.double().reshape(g, 1, cout_g, 1).expand(g, 1, cout_g, kh * kw).reshape(g, 1, -1)
            sum_a = a.double().sum(-1, keepdim=True)  # [N, g, HW, 1]
            sum_b = b.double().sum(1, keepdim=True)  # [g, 1, Cout_g·kh·kw]
            cols = cols - zb64 * sum_a - za64 * sum_b + cin_g * za64 * zb64
        cols = cols.permute(0, 1, 3, 2).reshape(n, g * cout_g * kh * kw, h * w)
        out_h = (h - 1) * sh - 2 * ph + dh * (kh - 1) + oph + 1
        out_w = (w - 1) * sw - 2 * pw + dw * (kw - 1) + opw + 1
        return F.fold(cols, (out_h, out_w), (kh, kw), dilation=(dh, dw), padding=(ph, pw), stride=(sh, sw))

    def forward(self, x: torch.Tensor, output_size: list[int] | None = None) -> torch.Tensor:
        if self.resolved.is_float or self.input_quant.observing:
            if self.input_quant.observing:
                self.input_quant.observe(x)
            return nn.ConvTranspose2d.forward(self, x, output_size)
        acc, scale = self.accumulate(x, output_size)
        return self._finish(acc, scale, x, (1, -1, 1, 1))
