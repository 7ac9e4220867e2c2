"""Plain-torch ResNet-18 and VGG-16 in CIFAR-10 shapes, and their LUT-approximated twins, for the bench.

These are small self-contained definitions for timing (the model zoo lives in ``approxlut.nn``):
convolutions carry a bias and no batch norm (as after folding it for inference). :func:`approximate`
returns a copy in which every ``Conv2d``/``Linear`` quantises its input (per tensor, fixed scale
calibrated once) and weights (per output channel, symmetric), runs the approximate op and rescales.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from .engines import Epilogue
from .ops import approx_conv2d, approx_linear, quantised_conv2d
from .prepared import PreparedLut, value_range

VGG16_LAYERS: list[int | str] = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with an identity (or 1x1 strided) shortcut."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1)
        self.shortcut = nn.Conv2d(cin, cout, 1, stride) if stride != 1 or cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.conv1(x))
        return F.relu(self.conv2(out) + self.shortcut(x))


class ResNet18(nn.Module):
    """ResNet-18 for 32x32 inputs (3x3 stem, no max-pool), widths ``w, 2w, 4w, 8w``."""

    def __init__(self, width: int = 64, classes: int = 10) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, width, 3, 1, 1)
        blocks: list[nn.Module] = []
        cin = width
        for stage, cout in enumerate((width, 2 * width, 4 * width, 8 * width)):
            for i in range(2):
                blocks.append(BasicBlock(cin, cout, 2 if stage > 0 and i == 0 else 1))
                cin = cout
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(cin, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.blocks(F.relu(self.stem(x)))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(out, 1), 1))


class VGG16(nn.Module):
    """VGG-16 for 32x32 inputs: 13 3x3 convolutions, 5 max-pools, one linear classifier."""

    def __init__(self, width: int = 64, classes: int = 10) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        cin = 3
        for item in VGG16_LAYERS:
            if item == "M":
                layers.append(nn.MaxPool2d(2))
            else:
                cout = int(item) * width // 64
                layers += [nn.Conv2d(cin, cout, 3, 1, 1), nn.ReLU()]
                cin = cout
        self.features = nn.Sequential(*layers)
        self.fc = nn.Linear(cin, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.features(x), 1))


def quantise_weight(w: torch.Tensor, bits: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric signed per-output-channel quantisation: ``(integer values as float, scale [O])``."""
    top = (1 << (bits - 1)) - 1
    scale = w.detach().abs().flatten(1).amax(dim=1).clamp_min(1e-12) / top
    shape = (-1,) + (1,) * (w.dim() - 1)
    q = torch.clamp(torch.round(w.detach() / scale.reshape(shape)), -top, top)
    return q, scale


class _ApproxLayer(nn.Module):
    """Shared state: quantised weights, their scales, the activation scale, bias, LUT and engine."""

    qweight: torch.Tensor
    wscale: torch.Tensor
    bias: torch.Tensor | None

    def __init__(self, layer: nn.Conv2d | nn.Linear, lut: PreparedLut, engine: str | None) -> None:
        super().__init__()
        if not lut.signed:
            raise ConfigError("the bench models quantise symmetrically and need a signed LUT")
        q, scale = quantise_weight(layer.weight, lut.bits_b)
        self.register_buffer("qweight", q)
        self.register_buffer("wscale", scale)
        self.register_buffer("bias", None if layer.bias is None else layer.bias.detach().clone())
        self.lut = lut
        self.engine = engine
        self.act_scale: float | None = None
        self._codes: torch.Tensor | None = None

    def weight_codes(self) -> torch.Tensor:
        """The weight codes as int8 (made once)."""
        if self._codes is None:
            self._codes = self.qweight.to(torch.int8)
        return self._codes

    def quantise_input(self, x: torch.Tensor) -> tuple[torch.Tensor, float]:
        lo, hi = value_range(self.lut.bits_a, self.lut.signed)
        if self.act_scale is None:
            self.act_scale = max(float(x.detach().abs().max()), 1e-12) / hi
        return torch.clamp(torch.round(x / self.act_scale), lo, hi), self.act_scale


class ApproxConv2d(_ApproxLayer):
    """A ``Conv2d`` running through the LUT."""

    def __init__(self, layer: nn.Conv2d, lut: PreparedLut, engine: str | None) -> None:
        super().__init__(layer, lut, engine)
        self.stride = (layer.stride[0], layer.stride[1])
        self.padding = layer.padding if isinstance(layer.padding, str) else tuple(layer.padding)
        self.dilation = (layer.dilation[0], layer.dilation[1])
        self.groups = layer.groups

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.act_scale is not None and isinstance(self.padding, tuple):
            # Inference in one native pass where the engine has it (bit-equal to the steps below).
            lo, hi = value_range(self.lut.bits_a, self.lut.signed)
            ph, pw = self.padding
            fused = quantised_conv2d(
                x,
                self.weight_codes(),
                self.lut,
                scale=self.act_scale,
                zero_point=0.0,
                code_range=(lo, hi),
                padding=(ph, ph, pw, pw),
                stride=self.stride,
                dilation=self.dilation,
                groups=self.groups,
                epilogue=Epilogue(self.act_scale * self.wscale, self.bias),
                engine=self.engine,
            )
            if fused is not None:
                return fused
        q, sa = self.quantise_input(x)
        acc = approx_conv2d(
            q,
            self.qweight,
            self.lut,
            self.stride,
            self.padding,
            self.dilation,
            self.groups,
            grad="ste",
            engine=self.engine,
        )
        out = acc * (sa * self.wscale).reshape(1, -1, 1, 1)
        return out if self.bias is None else out + self.bias.reshape(1, -1, 1, 1)


class ApproxLinear(_ApproxLayer):
    """A ``Linear`` running through the LUT."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, sa = self.quantise_input(x)
        out = approx_linear(q, self.qweight, self.lut, grad="ste", engine=self.engine) * (sa * self.wscale)
        return out if self.bias is None else out + self.bias


def approximate(model: nn.Module, lut: PreparedLut, calibration: torch.Tensor, *, engine: str | None) -> nn.Module:
    """A copy of ``model`` with every Conv2d/Linear replaced by its approximate twin.

    Activation scales are calibrated once, by running the copy on ``calibration``, and then fixed, so
    that a sample's result does not depend on the rest of its batch.
    """
    approx = copy.deepcopy(model)

    def swap(parent: nn.Module) -> None:
        for name, child in parent.named_children():
            if isinstance(child, nn.Conv2d):
                setattr(parent, name, ApproxConv2d(child, lut, engine))
            elif isinstance(child, nn.Linear):
                setattr(parent, name, ApproxLinear(child, lut, engine))
            else:
                swap(child)

    swap(approx)
    with torch.no_grad():
        approx(calibration)
    return approx.eval()


def set_engine(model: nn.Module, engine: str | None) -> None:
    """Point every approximate layer of ``model`` at ``engine``."""
    for module in model.modules():
        if isinstance(module, _ApproxLayer):
            module.engine = engine
