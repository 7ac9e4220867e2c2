"""Approximate products that modules compute with functions: ``a @ b`` of two activations, or ``x @ wᵀ``.

An :class:`ApproxProduct` stands for one call site inside a module's ``forward`` (found at run time by
:mod:`approxlut.nn.capture`): the attention scores ``Q·Kᵀ`` and context ``A·V`` of an attention layer,
a ``torch.matmul``/``@``/``bmm``/``einsum``, or an ``F.linear``. It is attached to the module that makes
the call, under the call's name (``encoder.layers.0.self_attn.qk``), so it takes part in everything a
layer does: assignment by name, calibration, ``state_dict``, the per-layer table and the search.

Both operands are quantised. An activation operand has a per-tensor range, or one range per head
(``LayerConfig(per_channel=True)``: dim -3 of ``[batch, heads, L, E]`` operands); a weight operand
(a parameter: ``F.linear(x, self.w)``, ``x @ self.w``, the in-projection of ``nn.MultiheadAttention``)
is quantised per output channel like the weight of a ``Linear``. The integer sums go through the same
batched LUT-GEMM (:func:`approxlut.native.ops.approx_matmul`) with the same exact zero-point terms, and
backward runs the gradient LUTs for both operands.
"""

from __future__ import annotations

from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from ..native.ops import approx_matmul
from .config import LayerConfig
from .layers import ApproxModule, _lut_for, _needs_grad, linear_accumulate
from .multipliers import ResolvedConfig
from .quant import ActivationQuantizer, WeightQuantizer, qparams_from_range, qrange, quantize


def matmul_accumulate(
    qa: torch.Tensor, za: torch.Tensor, qb: torch.Tensor, zb: torch.Tensor, resolved: ResolvedConfig
) -> torch.Tensor:
    """``Σ_k (qa − za)(qb − zb)`` through the multiplier for ``qa [..., M, K]`` and ``qb [..., K, N]``.

    ``za``/``zb`` are scalars or per-head ``[H, 1, 1]``; batch dims broadcast. The exact path and the
    affine cross terms are computed in float64 (exact); the LUT sums come from the engine as float32.
    """
    if resolved.is_exact_path:
        if resolved.scheme == "symmetric":
            return torch.matmul(qa.double(), qb.double())
        return torch.matmul((qa - za).double(), (qb - zb).double())
    lut, grad = _lut_for(resolved, qa.device, _needs_grad(qa, qb))
    acc = approx_matmul(qa, qb, lut, grad=grad, engine=resolved.config.engine)
    if resolved.scheme == "affine":
        za64, zb64 = za.double(), zb.double()
        k = qa.shape[-1]
        acc = (
            acc.double()
            - zb64 * qa.double().sum(-1, keepdim=True)
            - za64 * qb.double().sum(-2, keepdim=True)
            + k * za64 * zb64
        )
    return acc


class OperandQuantizer(nn.Module):
    """Activation quantisation of one product operand: one range for the tensor and, for operands of
    4 or more dims, one range per head (dim -3) as well; the config chooses which is used.

    Both sets of statistics are kept, so switching between per-tensor and per-head needs no new data.
    """

    def __init__(self) -> None:
        super().__init__()
        self.whole = ActivationQuantizer()
        self.heads = nn.ModuleList()

    @property
    def observing(self) -> bool:
        return self.whole.observing

    def observe(self, x: torch.Tensor) -> None:
        """Record ``x`` (the whole tensor, and each head of a ``[..., H, L, E]`` operand)."""
        self.whole.observe(x)
        if x.dim() < 4:
            return
        count = x.shape[-3]
        if not len(self.heads):
            for _ in range(count):
                head = ActivationQuantizer().to(x.device)
                head.start()
                self.heads.append(head)
        if len(self.heads) == count:
            for index, quantizer in enumerate(self.heads):
                cast(ActivationQuantizer, quantizer).observe(x.select(-3, index))

    def qparams(self, x: torch.Tensor, bits: int, scheme: str, *, per_head: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """``(scale, zero_point)`` broadcastable to ``x``: scalars, or ``[H, 1, 1]`` per head.

        Frozen parameters where calibrated, else the current batch's max range.
        """
        if not per_head:
            return self.whole.qparams(x, bits, scheme)
        if x.dim() < 4:
            raise ConfigError(
                f"per-head calibration needs operands shaped [batch, heads, L, E]; got shape {tuple(x.shape)}"
            )
        count = x.shape[-3]
        heads: list[Any] = list(self.heads)
        if heads and all(h.calibrated for h in heads):
            if len(heads) != count:
                raise ConfigError(f"calibrated for {len(heads)} heads, the operand has {count}")
            scale = torch.stack([h.scale for h in heads])
            zero = torch.stack([h.zero_point for h in heads])
        else:
            values = x.detach().float().movedim(-3, 0).reshape(count, -1)
            scale, zero = qparams_from_range(values.amin(1), values.amax(1), bits, scheme)
        return scale.view(count, 1, 1), zero.view(count, 1, 1)


def _rows(weight: torch.Tensor) -> torch.Tensor:
    return weight


def _column(values: torch.Tensor) -> torch.Tensor:
    return values[:, None]


class ApproxProduct(ApproxModule):
    """One product call site inside a module's ``forward``, through an approximate multiplier.

    ``forward(a, b, bias=None)``: with an activation operand ``b`` it is ``a @ b`` (``a [..., M, K]``,
    ``b [..., K, N]``, batch dims broadcast) plus ``bias``; with a weight operand it is
    ``F.linear(a, b, bias)`` (``b [N, K]``, per-output-channel weight quantisation).

    Attributes:
        kind: the call it stands for (``"qk"``, ``"av"``, ``"matmul"``, ``"bmm"``, ``"einsum"``,
            ``"linear"``, ``"in_proj"``, ...).
        weight_operand: whether operand ``b`` is a weight.
    """

    quant_a: OperandQuantizer
    quant_b: OperandQuantizer

    def __init__(self, kind: str, *, weight_operand: bool, config: LayerConfig | None = None) -> None:
        nn.Module.__init__(self)
        self.kind = kind
        self.weight_operand = weight_operand
        self.quant_a = OperandQuantizer()
        if weight_operand:
            self.weight_quant = WeightQuantizer()
        else:
            self.quant_b = OperandQuantizer()
        self.register_buffer("bias_correction", None)
        self.set_config(config or LayerConfig())

    def _operands(self) -> list[tuple[OperandQuantizer, bool]]:
        """``(quantiser, is operand a)`` of each activation operand."""
        found = [(self.quant_a, True)]
        if not self.weight_operand:
            found.append((self.quant_b, False))
        return found

    def _quantizer_bits(self, resolved: ResolvedConfig) -> list[tuple[ActivationQuantizer, int]]:
        pairs = []
        for operand, is_a in self._operands():
            bits = resolved.bits_a if is_a else resolved.bits_b
            pairs += [(q, bits) for q in operand.modules() if isinstance(q, ActivationQuantizer)]
        return pairs

    @property
    def per_head(self) -> bool:
        """Whether activation operands have one range per head (``config.per_channel`` of a product)."""
        return not self.weight_operand and bool(self.config.per_channel)

    @property
    def channel_dim(self) -> int | None:
        """The output dim whose entries have their own error statistics (``None``: one for the whole output)."""
        if self.weight_operand:
            return -1
        return -3 if self.per_head else None

    def set_bias_correction(self, correction: torch.Tensor | None) -> None:
        """Set (or clear) the value added after rescaling: per output channel (weight operand), per head,
        or one value."""
        if correction is None:
            self.bias_correction = None
            return
        device = self.quant_a.whole.scale.device
        self.bias_correction = torch.as_tensor(correction, dtype=torch.float32).to(device).reshape(-1)

    def _correction_view(self, correction: torch.Tensor) -> torch.Tensor:
        if self.weight_operand or correction.numel() == 1:
            return correction
        return correction.view(-1, 1, 1)

    def quantize_operands(
        self, a: torch.Tensor, b: torch.Tensor
    ) -> tuple[tuple[torch.Tensor, torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """``((qa, sa, za), (qb, sb, zb))``: codes with scales and zero points broadcastable to them
        (per output channel ``[N]`` for a weight operand)."""
        resolved, config = self.resolved, self.config
        if resolved.is_float:
            raise ConfigError(f"product '{self.kind}' runs in float; there are no codes")
        scheme = resolved.scheme
        sa, za = self.quant_a.qparams(a, resolved.bits_a, scheme, per_head=self.per_head)
        qa = quantize(a, sa, za, *qrange(resolved.bits_a, scheme))
        if self.weight_operand:
            per_channel = config.per_channel if config.per_channel is not None else scheme == "symmetric"
            qb, sb, zb = self.weight_quant.codes(
                b,
                _rows,
                _column,
                resolved.bits_b,
                scheme,
                method=config.weight_calibration,
                percentile=config.percentile,
                per_channel=per_channel,
            )
            return (qa, sa, za), (qb, sb, zb)
        sb, zb = self.quant_b.qparams(b, resolved.bits_b, scheme, per_head=self.per_head)
        qb = quantize(b, sb, zb, *qrange(resolved.bits_b, scheme))
        return (qa, sa, za), (qb, sb, zb)

    def accumulate(
        self, a: torch.Tensor, b: torch.Tensor, bias: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(acc, scale)``: the integer sums (integer-valued float, output-shaped) and their scale."""
        del bias  # added after rescaling
        (qa, sa, za), (qb, sb, zb) = self.quantize_operands(a, b)
        if self.weight_operand:
            return linear_accumulate(qa, za, qb, zb, self.resolved), sa * sb
        return matmul_accumulate(qa, za, qb, zb, self.resolved), sa * sb

    def operand_codes(self, a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The operands' table indices (int64 codes: the low bits of the quantised values)."""
        (qa, _, _), (qb, _, _) = self.quantize_operands(a, b)
        mask_a, mask_b = (1 << self.resolved.bits_a) - 1, (1 << self.resolved.bits_b) - 1
        return qa.detach().to(torch.int64) & mask_a, qb.detach().to(torch.int64) & mask_b

    def product_of(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """The float product of two operand tensors in this call's layout (no bias)."""
        return F.linear(a, b) if self.weight_operand else torch.matmul(a, b)

    def lowrank_error(self, a: torch.Tensor, b: torch.Tensor, u: torch.Tensor, v: list[torch.Tensor]) -> torch.Tensor:
        """``Σ_r u_r[codes a] · v_r[codes b]`` summed like the product: the error of a table
        ``e ≈ Σ_r u_r ⊗ v_r`` in accumulator units (no scales)."""
        codes_a, codes_b = self.operand_codes(a, b)
        error: torch.Tensor | None = None
        for rank, table in enumerate(v):
            term = self.product_of(u[rank][codes_a], table[codes_b])
            error = term if error is None else error + term
        if error is None:
            return torch.zeros_like(self.product_of(a.detach(), b.detach()))
        return error

    def count_macs(self, inputs: tuple[Any, ...], output: torch.Tensor) -> int:
        """Multiply-accumulates of one call (``K`` per output element)."""
        return int(output.numel()) * int(inputs[0].shape[-1])

    def _float(self, a: torch.Tensor, b: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        if self.weight_operand:
            return F.linear(a, b, bias)
        out = torch.matmul(a, b)
        return out if bias is None else out + bias

    def forward(self, a: torch.Tensor, b: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
        if self.resolved.is_float:
            return self._float(a, b, bias)
        if self.quant_a.observing:
            for operand, is_a in self._operands():
                operand.observe(a if is_a else b)
            return self._float(a, b, bias)
        acc, scale = self.accumulate(a, b)
        out = acc * scale
        if out.dtype != a.dtype:
            out = out.to(a.dtype)
        if bias is not None:
            out = out + bias
        correction = self.bias_correction
        if correction is not None:
            out = out + self._correction_view(correction)
        return out

    def to_float(self) -> nn.Module:
        raise ConfigError(f"product '{self.kind}' has no torch layer; give it the 'float' multiplier instead")

    def extra_repr(self) -> str:
        operand = "weight" if self.weight_operand else "activation"
        return f"{self.kind}, activation × {operand}, multiplier={self.multiplier_name}"


__all__ = ["ApproxProduct", "OperandQuantizer", "matmul_accumulate"]
