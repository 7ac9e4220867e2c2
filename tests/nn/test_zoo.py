"""Model zoo: every model builds and maps its input to the right output shape; registry and module:callable."""

from __future__ import annotations

import pytest
import torch

from approxlut.errors import ConfigError
from approxlut.nn.zoo import MODELS, build_model, model_spec


def _input(name: str, batch: int = 2) -> torch.Tensor:
    spec = MODELS[name]
    if spec.input_kind == "sequence":
        return torch.randn(batch, spec.size, spec.channels * spec.size)
    if spec.input_kind == "flat":
        return torch.rand(batch, spec.channels * spec.size * spec.size)
    return torch.randn(batch, spec.channels, spec.size, spec.size)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_models_build_with_correct_output_shape(name: str) -> None:
    spec = MODELS[name]
    width = {"width": 0.125} if spec.scalable else {}
    model = build_model(name, num_classes=7, in_channels=spec.channels, input_size=spec.size, **width).eval()
    x = _input(name)
    with torch.no_grad():
        out = model(x)
    if spec.task == "reconstruction":
        recon, mu, logvar = out
        assert recon.shape == x.shape and mu.shape == logvar.shape and mu.shape[0] == 2
    else:
        assert out.shape == (2, 7)


def test_full_width_architectures_match_their_published_sizes() -> None:
    params = {name: sum(p.numel() for p in build_model(name).parameters()) for name in ("resnet18", "resnet20")}
    assert params["resnet20"] == 272_474  # 0.27 M, the 6n+2 CIFAR ResNet with 1x1 projection shortcuts
    assert 11_100_000 < params["resnet18"] < 11_200_000
    vgg19 = build_model("vgg19")
    assert sum(isinstance(m, torch.nn.Conv2d) for m in vgg19.modules()) == 16
    resnet50 = build_model("resnet50")
    assert sum(isinstance(m, torch.nn.Conv2d) for m in resnet50.modules()) == 1 + 16 * 3 + 4  # stem, blocks, shortcuts


def test_mobilenet_uses_depthwise_convolutions() -> None:
    model = build_model("mobilenetv2", width=0.25)
    depthwise = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d) and m.groups > 1]
    assert depthwise and all(m.groups == m.in_channels == m.out_channels for m in depthwise)


def test_input_channels_and_sizes_are_parameters() -> None:
    lenet = build_model("lenet5", in_channels=3, input_size=32).eval()
    assert lenet(torch.zeros(1, 3, 32, 32)).shape == (1, 10)
    resnet = build_model("resnet20", in_channels=1, width=0.25).eval()
    assert resnet(torch.zeros(1, 1, 28, 28)).shape == (1, 10)
    lstm = build_model("lstm", in_channels=3, input_size=8).eval()
    assert lstm(torch.zeros(4, 8, 24)).shape == (4, 10)


def test_registry_names_aliases_and_errors() -> None:
    assert model_spec("LeNet-5").name == "lenet5"
    assert model_spec("mobilenet_v2").name == "mobilenetv2"
    with pytest.raises(ConfigError, match="unknown model 'alexnet'"):
        model_spec("alexnet")
    with pytest.raises(ConfigError, match="unknown model 'no_such_module_xyz:build'"):
        model_spec("no_such_module_xyz:build")  # only zoo names and file.py:callable
    with pytest.raises(ConfigError, match="unknown model 'os:system'"):
        model_spec("os:system")
    with pytest.raises(ConfigError, match="model file not found"):
        model_spec("no_such_file.py:build")


def test_module_callable_models(tmp_path) -> None:
    source = tmp_path / "my_models.py"
    source.write_text(
        "import torch\n"
        "def tiny(num_classes=10, in_channels=3):\n"
        "    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(in_channels * 64, num_classes))\n"
        "tiny.size = 8\n"
        "def not_a_module(**kwargs):\n"
        "    return 42\n"
    )
    spec = model_spec(f"{source}:tiny")
    assert (spec.size, spec.channels, spec.input_kind) == (8, 3, "image")
    model = build_model(f"{source}:tiny", num_classes=4, in_channels=3, input_size=8, width=0.5)
    assert model(torch.zeros(2, 3, 8, 8)).shape == (2, 4)
    with pytest.raises(ConfigError, match=r"not a torch\.nn\.Module"):
        build_model(f"{source}:not_a_module")
    with pytest.raises(ConfigError, match="not a callable"):
        model_spec(f"{source}:not_there")
