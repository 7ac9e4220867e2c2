"""The model zoo: small, self-contained definitions (no torchvision) and a registry by name.

Image models follow their CIFAR forms (3x3 stems, no initial max-pool) so they work on 32x32 inputs;
every builder takes ``num_classes``, ``in_channels`` and ``input_size`` and, where it makes sense, a
``width`` multiplier on the channel counts (``width=1`` is the published network).

    >>> model = build_model("resnet20", num_classes=10)
    >>> model(torch.zeros(2, 3, 32, 32)).shape
    torch.Size([2, 10])

``build_model("path/to/models.py:callable")`` loads a user model the same way; the callable receives
the keyword arguments its signature accepts. Only zoo names and ``file.py:callable`` are accepted: a
``module:callable`` form would let ``--model os:system`` call anything importable.
"""

from __future__ import annotations

import importlib.util
import inspect
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from .modes import work_mode

# ---------------------------------------------------------------------------------------------- LeNet


class LeNet5(nn.Module):
    """LeNet-5 with ReLU and max-pooling (5x5 convolutions 6 and 16 wide, then 120-84-classes)."""

    def __init__(self, num_classes: int = 10, in_channels: int = 1, input_size: int = 28) -> None:
        super().__init__()
        padding = 2 if input_size < 32 else 0
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 6, 5, padding=padding),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(6, 16, 5),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
        )
        side = ((input_size + 2 * padding - 4) // 2 - 4) // 2
        if side < 1:
            raise ConfigError(f"lenet5: input size {input_size} is too small (at least 12 pixels)")
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(16 * side * side, 120),
            nn.ReLU(inplace=True),
            nn.Linear(120, 84),
            nn.ReLU(inplace=True),
            nn.Linear(84, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


# ------------------------------------------------------------------------------------------------ VGG

_VGG_CONFIGS: dict[int, list[int | str]] = {
    11: [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    13: [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    16: [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    19: [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"],
}


def _scaled(channels: int, width: float) -> int:
    if width <= 0:
        raise ConfigError(f"width multiplier must be positive, got {width}")
    return max(1, round(channels * width))


class VGG(nn.Module):
    """CIFAR VGG: 3x3 convolutions with batch norm, five max-pools, one linear classifier."""

    def __init__(
        self, depth: int, num_classes: int = 10, in_channels: int = 3, input_size: int = 32, width: float = 1.0
    ) -> None:
        super().__init__()
        if input_size < 32:
            raise ConfigError(f"vgg{depth}: input size {input_size} is too small for five max-pools (at least 32)")
        layers: list[nn.Module] = []
        channels = in_channels
        for item in _VGG_CONFIGS[depth]:
            if item == "M":
                layers.append(nn.MaxPool2d(2))
            else:
                out = _scaled(int(item), width)
                layers += [nn.Conv2d(channels, out, 3, padding=1), nn.BatchNorm2d(out), nn.ReLU(inplace=True)]
                channels = out
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.pool(self.features(x)), 1))


# --------------------------------------------------------------------------------------------- ResNet


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with an identity (or 1x1 projection) shortcut."""

    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut = _shortcut(in_planes, planes * self.expansion, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3, 1x1 expand (x4) with a shortcut."""

    expansion = 4

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * self.expansion, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut = _shortcut(in_planes, planes * self.expansion, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + self.shortcut(x))


def _shortcut(in_planes: int, out_planes: int, stride: int) -> nn.Module:
    if stride == 1 and in_planes == out_planes:
        return nn.Identity()
    return nn.Sequential(nn.Conv2d(in_planes, out_planes, 1, stride=stride, bias=False), nn.BatchNorm2d(out_planes))


class ResNet(nn.Module):
    """CIFAR ResNet: 3x3 stem without max-pool, stages of residual blocks, global average pool, linear.

    ``stage_planes`` of length 4 gives ResNet-18/34/50 (64..512 planes); of length 3, the 6n+2 CIFAR
    family such as ResNet-20 (16, 32, 64 planes).
    """

    def __init__(
        self,
        block: type[BasicBlock] | type[Bottleneck],
        blocks: Sequence[int],
        stage_planes: Sequence[int],
        num_classes: int = 10,
        in_channels: int = 3,
        width: float = 1.0,
    ) -> None:
        super().__init__()
        planes = [_scaled(p, width) for p in stage_planes]
        self.in_planes = planes[0]
        self.conv1 = nn.Conv2d(in_channels, planes[0], 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes[0])
        self.relu = nn.ReLU(inplace=True)
        stages = []
        for index, (count, width_planes) in enumerate(zip(blocks, planes, strict=True)):
            stride = 1 if index == 0 else 2
            layers = []
            for block_stride in [stride] + [1] * (count - 1):
                layers.append(block(self.in_planes, width_planes, block_stride))
                self.in_planes = width_planes * block.expansion
            stages.append(nn.Sequential(*layers))
        self.layer1, self.layer2, self.layer3 = stages[:3]
        self.layer4 = stages[3] if len(stages) > 3 else nn.Identity()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(self.in_planes, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        return self.fc(torch.flatten(self.pool(out), 1))


# ---------------------------------------------------------------------------------------- MobileNetV2


class InvertedResidual(nn.Module):
    """MobileNetV2 block: 1x1 expand, 3x3 depthwise, 1x1 linear projection; residual when shapes match."""

    def __init__(self, in_planes: int, out_planes: int, expansion: int, stride: int) -> None:
        super().__init__()
        hidden = in_planes * expansion
        self.use_residual = stride == 1 and in_planes == out_planes
        layers: list[nn.Module] = []
        if expansion != 1:
            layers += [nn.Conv2d(in_planes, hidden, 1, bias=False), nn.BatchNorm2d(hidden), nn.ReLU6(inplace=True)]
        layers += [
            nn.Conv2d(hidden, hidden, 3, stride=stride, padding=1, groups=hidden, bias=False),
            nn.BatchNorm2d(hidden),
            nn.ReLU6(inplace=True),
            nn.Conv2d(hidden, out_planes, 1, bias=False),
            nn.BatchNorm2d(out_planes),
        ]
        self.block = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.block(x)
        return x + out if self.use_residual else out


class MobileNetV2(nn.Module):
    """CIFAR MobileNetV2: stride-1 stem and first stages (32x32 inputs), depthwise 3x3 convolutions."""

    # (expansion, output planes, blocks, stride of the first block)
    CONFIG = ((1, 16, 1, 1), (6, 24, 2, 1), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))

    def __init__(self, num_classes: int = 10, in_channels: int = 3, width: float = 1.0) -> None:
        super().__init__()
        stem = _scaled(32, width)
        layers: list[nn.Module] = [
            nn.Conv2d(in_channels, stem, 3, padding=1, bias=False),
            nn.BatchNorm2d(stem),
            nn.ReLU6(inplace=True),
        ]
        planes = stem
        for expansion, out, count, stride in self.CONFIG:
            out = _scaled(out, width)
            for block_stride in [stride] + [1] * (count - 1):
                layers.append(InvertedResidual(planes, out, expansion, block_stride))
                planes = out
        last = _scaled(1280, width) if width > 1 else 1280
        layers += [nn.Conv2d(planes, last, 1, bias=False), nn.BatchNorm2d(last), nn.ReLU6(inplace=True)]
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(last, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.pool(self.features(x)), 1))


# --------------------------------------------------------------------------------------- LSTM and VAE


class LSTMClassifier(nn.Module):
    """Reads an image row by row (``input_size`` steps of ``in_channels * input_size`` features)."""

    def __init__(
        self, num_classes: int = 10, in_channels: int = 1, input_size: int = 28, hidden_size: int = 128, layers: int = 1
    ) -> None:
        super().__init__()
        self.lstm = nn.LSTM(in_channels * input_size, hidden_size, num_layers=layers, batch_first=True)
        self.fc = nn.Linear(hidden_size, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.lstm(x)
        return self.fc(out[:, -1])


class VAE(nn.Module):
    """A fully connected variational auto-encoder on flattened images with pixel values in [0, 1].

    ``forward`` returns ``(reconstruction, mu, logvar)``; in eval mode the latent is the mean.
    """

    def __init__(
        self, num_classes: int = 10, in_channels: int = 1, input_size: int = 28, hidden: int = 400, latent: int = 20
    ) -> None:
        super().__init__()
        del num_classes  # accepted for a uniform signature; a VAE has no classes
        features = in_channels * input_size * input_size
        self.encoder = nn.Sequential(nn.Linear(features, hidden), nn.ReLU(inplace=True))
        self.mu = nn.Linear(hidden, latent)
        self.logvar = nn.Linear(hidden, latent)
        self.decoder = nn.Sequential(
            nn.Linear(latent, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, features), nn.Sigmoid()
        )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        hidden = self.encoder(x)
        mu, logvar = self.mu(hidden), self.logvar(hidden)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar) if self.training else mu
        return self.decoder(z), mu, logvar


# ------------------------------------------------------------------------------------------ transformers


class SelfAttention(nn.Module):
    """Multi-head self-attention written as most vision transformers are: one ``qkv`` projection,
    ``F.scaled_dot_product_attention``, an output projection (its products are found at run time)."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        if dim % heads:
            raise ConfigError(f"attention: width {dim} is not a multiple of {heads} heads")
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, tokens, dim = x.shape
        q, k, v = self.qkv(x).reshape(n, tokens, 3, self.heads, dim // self.heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(n, tokens, dim))


class EncoderBlock(nn.Module):
    """Pre-norm transformer block: ``x + attn(norm(x))``, then ``x + mlp(norm(x))`` (GELU)."""

    def __init__(self, dim: int, heads: int, hidden: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = SelfAttention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class ViT(nn.Module):
    """A small vision transformer: a 4x4 grid of patches (``input_size / 4`` pixels square) embedded
    linearly, a class token and learned positions, ``depth`` pre-norm blocks, a linear classifier."""

    def __init__(
        self,
        num_classes: int = 10,
        in_channels: int = 1,
        input_size: int = 8,
        dim: int = 64,
        depth: int = 2,
        heads: int = 4,
        hidden: int = 128,
    ) -> None:
        super().__init__()
        if input_size % 4:
            raise ConfigError(f"vit: input size {input_size} must be a multiple of 4 (a 4x4 grid of patches)")
        self.patch = input_size // 4
        self.embed = nn.Linear(in_channels * self.patch * self.patch, dim)
        self.cls = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos = nn.Parameter(torch.randn(1, 17, dim) * 0.02)
        self.blocks = nn.Sequential(*(EncoderBlock(dim, heads, hidden) for _ in range(depth)))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        patches = F.unfold(x, self.patch, stride=self.patch).transpose(1, 2)  # [N, 16, C·p·p]
        tokens = torch.cat([self.cls.expand(x.shape[0], -1, -1), self.embed(patches)], dim=1) + self.pos
        return self.head(self.norm(self.blocks(tokens)[:, 0]))


class TransformerClassifier(nn.Module):
    """Reads an image row by row (``input_size`` tokens) with ``nn.TransformerEncoder`` (pre-norm,
    ``nn.MultiheadAttention``), learned positions, mean pooling and a linear classifier."""

    def __init__(
        self,
        num_classes: int = 10,
        in_channels: int = 1,
        input_size: int = 8,
        dim: int = 64,
        depth: int = 2,
        heads: int = 4,
        hidden: int = 128,
    ) -> None:
        super().__init__()
        self.embed = nn.Linear(in_channels * input_size, dim)
        self.pos = nn.Parameter(torch.randn(1, input_size, dim) * 0.02)
        layer = nn.TransformerEncoderLayer(dim, heads, hidden, dropout=0.0, batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.norm(self.encoder(self.embed(x) + self.pos).mean(dim=1)))


# ------------------------------------------------------------------------------------------- registry


@dataclass(frozen=True)
class ModelSpec:
    """A zoo entry.

    Attributes:
        name: registry name.
        builder: ``builder(num_classes=, in_channels=, input_size=, **kwargs) -> nn.Module``.
        input_kind: ``"image"`` (``[N, C, S, S]``), ``"sequence"`` (rows: ``[N, S, C*S]``) or ``"flat"``
            (``[N, C*S*S]`` in [0, 1]).
        channels: default input channels.
        size: default input side length.
        task: ``"classification"`` or ``"reconstruction"``.
        scalable: whether the builder takes a ``width`` multiplier.
    """

    name: str
    builder: Callable[..., nn.Module]
    input_kind: str = "image"
    channels: int = 3
    size: int = 32
    task: str = "classification"
    scalable: bool = True
    description: str = ""
    defaults: dict[str, Any] = field(default_factory=dict)

    def build(self, **kwargs: Any) -> nn.Module:
        """Instantiate with the spec's defaults overridden by ``kwargs``."""
        return self.builder(**{**self.defaults, **kwargs})


def _vgg(depth: int) -> Callable[..., nn.Module]:
    def build(num_classes: int = 10, in_channels: int = 3, input_size: int = 32, width: float = 1.0) -> nn.Module:
        return VGG(depth, num_classes, in_channels, input_size, width)

    return build


def _resnet(block: type[BasicBlock] | type[Bottleneck], blocks: Sequence[int], planes: Sequence[int]) -> Callable:
    def build(num_classes: int = 10, in_channels: int = 3, input_size: int = 32, width: float = 1.0) -> nn.Module:
        del input_size  # global average pooling accepts any size
        return ResNet(block, blocks, planes, num_classes, in_channels, width)

    return build


def _mobilenet(num_classes: int = 10, in_channels: int = 3, input_size: int = 32, width: float = 1.0) -> nn.Module:
    del input_size
    return MobileNetV2(num_classes, in_channels, width)


_WIDE = (64, 128, 256, 512)
MODELS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec("lenet5", LeNet5, channels=1, size=28, scalable=False, description="LeNet-5 (ReLU, max-pool)"),
        *(ModelSpec(f"vgg{d}", _vgg(d), description=f"VGG-{d}, CIFAR form with batch norm") for d in _VGG_CONFIGS),
        ModelSpec("resnet18", _resnet(BasicBlock, (2, 2, 2, 2), _WIDE), description="ResNet-18, CIFAR form"),
        ModelSpec("resnet20", _resnet(BasicBlock, (3, 3, 3), (16, 32, 64)), description="ResNet-20 (6n+2, n=3)"),
        ModelSpec("resnet34", _resnet(BasicBlock, (3, 4, 6, 3), _WIDE), description="ResNet-34, CIFAR form"),
        ModelSpec("resnet50", _resnet(Bottleneck, (3, 4, 6, 3), _WIDE), description="ResNet-50, CIFAR form"),
        ModelSpec("mobilenetv2", _mobilenet, description="MobileNetV2, CIFAR form (depthwise)"),
        ModelSpec(
            "lstm",
            LSTMClassifier,
            input_kind="sequence",
            channels=1,
            size=28,
            scalable=False,
            description="LSTM reading image rows",
        ),
        ModelSpec("vit", ViT, channels=1, size=8, scalable=False, description="vision transformer, 16 patches"),
        ModelSpec(
            "transformer",
            TransformerClassifier,
            input_kind="sequence",
            channels=1,
            size=8,
            scalable=False,
            description="transformer encoder (nn.MultiheadAttention) reading image rows",
        ),
        ModelSpec(
            "vae",
            VAE,
            input_kind="flat",
            channels=1,
            size=28,
            task="reconstruction",
            scalable=False,
            description="MLP variational auto-encoder",
        ),
    )
}
ALIASES = {"lenet": "lenet5", "mobilenet": "mobilenetv2"}


def model_spec(name: str) -> ModelSpec:
    """The zoo entry called ``name``, or a spec wrapping a ``file.py:callable`` user model.

    A user callable is described by optional attributes of the callable: ``input_kind``, ``channels``,
    ``size`` and ``task`` (defaults: a 3x32x32 image classifier).
    """
    key = _zoo_key(name)
    if key in MODELS:
        return MODELS[key]
    builder = load_callable(check_model_reference(name))
    channels, size = getattr(builder, "channels", 3), getattr(builder, "size", 32)
    if not all(type(value) is int and 1 <= value <= 4096 for value in (channels, size)):
        raise ConfigError(f"model '{name}': its channels and size attributes must be ints in 1..4096")
    return ModelSpec(
        name=name,
        builder=_accepting(builder),
        input_kind=getattr(builder, "input_kind", "image"),
        channels=channels,
        size=size,
        task=getattr(builder, "task", "classification"),
        scalable="width" in _parameters(builder),
        description=f"user model {name}",
    )


def build_model(name: str, **kwargs: Any) -> nn.Module:
    """Build a zoo model (or ``file.py:callable``); ``kwargs`` override the spec's defaults."""
    spec = model_spec(name)
    if not spec.scalable:
        kwargs.pop("width", None)
    try:
        model = spec.build(**kwargs)
    except ConfigError:
        raise
    except (Exception, SystemExit) as error:  # a user callable failing is reported in one line, not as a traceback
        if name in MODELS or spec.name in MODELS:
            raise
        raise ConfigError(f"model '{name}' failed to build ({type(error).__name__}: {error})") from None
    if not isinstance(model, nn.Module):
        raise ConfigError(f"model '{name}' returned {type(model).__name__}, not a torch.nn.Module")
    return model


def check_user_model(name: str, model: nn.Module, sample: torch.Tensor) -> None:
    """A user model (``file.py:callable``) that cannot be trained or run on ``sample`` (two inputs of the data it
    is given) gets one :class:`ConfigError` saying why, before any long work; zoo models pass unchecked."""
    if _zoo_key(name) in MODELS:
        return
    if not any(p.requires_grad for p in model.parameters()):
        raise ConfigError(f"model '{name}' has no trainable parameters (nothing to approximate or train)")
    try:
        with torch.no_grad(), work_mode(model):
            model(sample)
    except (Exception, SystemExit) as error:
        shape = "x".join(str(d) for d in sample.shape[1:])
        raise ConfigError(
            f"model '{name}' does not run on inputs of shape [N, {shape}] ({type(error).__name__}: "
            f"{' '.join(str(error).split())[:200]}); attributes on the callable say what it takes: .channels and "
            ".size (default 3 and 32), .input_kind ('image', 'sequence' or 'flat')"
        ) from None


def _zoo_key(name: str) -> str:
    """The zoo's key for ``name`` (case, ``-`` and ``_`` ignored, aliases resolved); a user model's reference
    comes back as no key of :data:`MODELS`."""
    key = re.sub(r"[-_]", "", name.lower())
    return ALIASES.get(key, key)


def check_model_reference(reference: str) -> str:
    """``reference`` when it is a zoo name or ``path/to/file.py:callable``; else :class:`ConfigError`."""
    if _zoo_key(reference) in MODELS:
        return reference
    module_path, _, attr = reference.rpartition(":")
    if module_path.endswith(".py") and attr.isidentifier():
        return reference
    known = ", ".join(sorted(MODELS))
    raise ConfigError(f"unknown model '{reference}'; choose one of {known} or give path/to/file.py:callable")


def load_callable(reference: str) -> Callable[..., Any]:
    """Import ``path/to/file.py:attr`` and return the callable ``attr``.

    The file runs as a module (it is the user's own code); any error it raises is reported in one line.
    """
    module_path, _, attr = reference.rpartition(":")
    path = Path(module_path).expanduser()
    if not path.is_file():
        raise ConfigError(f"model file not found: {path}")
    loader = importlib.util.spec_from_file_location(path.stem, path)
    if loader is None or loader.loader is None:
        raise ConfigError(f"cannot import {path}")
    module = importlib.util.module_from_spec(loader)
    try:
        loader.loader.exec_module(module)
    except (Exception, SystemExit) as error:  # the user's file: any failure is theirs to see, in one line
        raise ConfigError(f"{path}: importing it failed ({type(error).__name__}: {error})") from None
    sys.modules.setdefault(path.stem, module)
    target = getattr(module, attr, None)
    if target is None or not callable(target):
        raise ConfigError(f"'{attr}' is not a callable in {path}")
    return target


def _parameters(func: Callable[..., Any]) -> dict[str, inspect.Parameter]:
    try:
        return dict(inspect.signature(func).parameters)
    except (TypeError, ValueError):
        return {}


def _accepting(func: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap ``func`` so that it only receives the keyword arguments its signature accepts."""
    params = _parameters(func)
    takes_all = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())

    def build(**kwargs: Any) -> Any:
        return func(**(kwargs if takes_all else {k: v for k, v in kwargs.items() if k in params}))

    return build
