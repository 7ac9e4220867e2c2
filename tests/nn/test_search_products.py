"""The search over products: closed-form error of activation × activation products against sampling,
operand statistics recorded from a float model, the low-rank simulation, and ``lutgen evaluate`` on
transformers (the zoo ViT, and a user's own model from ``file.py:callable``)."""

from __future__ import annotations

import importlib.util
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from approxlut.cli import main
from approxlut.lutgen.lut import Lut, code_values
from approxlut.nn import LayerConfig, approximate
from approxlut.nn.assign import _LowRankSimulation
from approxlut.nn.predict import LowRankError, ProductOperands, predict_errors, record_operands
from approxlut.nn.products import ApproxProduct
from approxlut.nn.swap import approx_layers
from approxlut.nn.zoo import build_model


def _lut(bits: int, signed: bool, seed: int) -> Lut:
    values = code_values(bits, signed)
    exact = np.multiply.outer(values, values)
    rng = np.random.default_rng(seed)
    forward = (exact >> 3 << 3) + rng.integers(-3, 4, size=exact.shape)
    return Lut(forward.astype(np.int32), bits, bits, signed, name="trunc")


@pytest.mark.parametrize(("bits", "signed"), [(4, True), (6, False), (8, True)])
def test_product_prediction_matches_sampled_errors(bits: int, signed: bool) -> None:
    """Both operands drawn from their histograms: mean and variance within 5 standard errors."""
    rng = np.random.default_rng(bits)
    lut = _lut(bits, signed, bits)
    codes = 1 << bits
    hist_a = rng.dirichlet(np.full(codes, 0.1), size=2) * 1000
    hist_b = rng.dirichlet(np.full(codes, 0.3), size=2) * 1000
    operands = ProductOperands(hist_a, hist_b, fan_in=7)
    (pred,) = predict_errors([lut], operands)
    samples = 20000
    for group in range(2):
        pa, pb = hist_a[group] / hist_a[group].sum(), hist_b[group] / hist_b[group].sum()
        a = rng.choice(codes, size=(samples, 7), p=pa)
        b = rng.choice(codes, size=(samples, 7), p=pb)
        err = (lut.forward[a, b].astype(np.int64) - lut.values_a[a] * lut.values_b[b]).sum(1).astype(np.float64)
        mean, var = err.mean(), err.var(ddof=1)
        m4 = ((err - mean) ** 4).mean()
        assert abs(mean - pred.mean[group]) <= 5 * np.sqrt(pred.var[group] / samples)
        assert abs(var - pred.var[group]) <= 5 * np.sqrt(max(m4 - var**2, 0) / samples)
        assert pred.var[group] > 0


@pytest.fixture(scope="module")
def vit_pair() -> tuple[torch.nn.Module, torch.nn.Module, torch.Tensor]:
    torch.manual_seed(0)
    model = build_model("vit", depth=1).eval()
    x = torch.randn(32, 1, 8, 8)
    float_model = approximate(model, "float", [x])
    qmodel = approximate(float_model, "exact", [x])
    return float_model, qmodel, x


def test_record_operands_covers_products(vit_pair) -> None:
    float_model, qmodel, x = vit_pair
    stats = record_operands(float_model, qmodel, [x])
    qk, av = stats["blocks.0.attn.qk"], stats["blocks.0.attn.av"]
    assert isinstance(qk.operands, ProductOperands) and qk.operands.fan_in == 16
    assert av.operands.fan_in == 17
    # every operand element is counted once: N · heads · tokens · head dim for q in Q·Kᵀ
    assert qk.operands.a_hist.sum() == 32 * 4 * 17 * 16 and qk.out_scale.shape == (1,)
    assert "blocks.0.attn.qkv" in stats  # layers as before


def test_low_rank_simulation_equals_the_product_error(vit_pair) -> None:
    """For an error table of exact rank 2 the float simulation of a product reproduces its LUT error."""
    float_model, qmodel, x = vit_pair
    codes = np.arange(256)
    error = 40 * np.multiply.outer(codes % 4, codes % 3) - 70 * np.multiply.outer(codes % 5 == 0, codes % 7 == 1)
    values = code_values(8, True)
    lut = Lut((np.multiply.outer(values, values) + error).astype(np.int32), 8, 8, True, name="rank2")
    low = LowRankError.of(lut, energy=0.999999)
    assert low.u.shape[0] == 2
    stats = record_operands(float_model, qmodel, [x])
    name = "blocks.0.attn.qk"
    (pred,) = predict_errors([lut], stats[name].operands)
    mean, _ = stats[name].output_moments(pred)
    product = dict(float_model.named_modules())[name]
    captured: dict[str, tuple] = {}
    handle = product.register_forward_pre_hook(lambda m, i: captured.__setitem__("in", i))
    with torch.no_grad():
        float_model(x[:4])
        handle.remove()
        a, b = captured["in"][0], captured["in"][1]
        plain = product(a, b)
        sim = _LowRankSimulation(float_model, {name: (approx_layers(qmodel)[name], stats[name], low, mean)}, seed=0)
        simulated = product(a, b) - plain
        sim.remove()
        qproduct = approx_layers(qmodel)[name]
        assert isinstance(qproduct, ApproxProduct)
        exact_acc, scale = qproduct.accumulate(a, b)
        qproduct.set_config(LayerConfig(lut))
        lut_acc, _ = qproduct.accumulate(a, b)
        qproduct.set_config(LayerConfig("exact"))
    want = (lut_acc - exact_acc) * scale - float(mean[0])
    assert torch.allclose(simulated.double(), want.double(), atol=1e-4 * float(want.abs().max()) + 1e-5)


CANDIDATES = "trunc8s_k6,bam8s_h3v8,loa8s_k4"


@pytest.fixture(scope="module")
def env(tmp_path_factory) -> dict[str, str]:
    """A fresh library; the native kernels of the test session (weights come from files)."""
    variables = {"LUTGEN_LIBRARY": str(tmp_path_factory.mktemp("evaluate") / "library")}
    created = CliRunner().invoke(main, ["library", "init"], env=variables)
    assert created.exit_code == 0, created.output
    return variables


def test_evaluate_vit_auto_lists_attention_products(env, tmp_path: Path, json_output) -> None:
    torch.manual_seed(0)
    weights = tmp_path / "vit.pt"
    torch.save(build_model("vit").state_dict(), weights)
    args = ["evaluate", "--model", "vit", "--weights", str(weights), "--limit", "32", "--candidates", CANDIDATES]
    result = CliRunner().invoke(main, [*args, "--json"], env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    data = json_output(result.stdout, "evaluate")
    rows = {row["name"]: row for row in data["layers"]}
    for block in (0, 1):
        for kind in ("qk", "av"):
            row = rows[f"blocks.{block}.attn.{kind}"]
            assert row["macs"] == 4 * 17 * 17 * 16
            assert (
                row["multiplier"] in {*CANDIDATES.split(","), "exact8s"}
                and row["relative_power"] is not None
                and row["cost_basis"]
            )
    assert 0 < data["relative_energy"] <= 1
    table = CliRunner().invoke(main, [*args, "--assign", "re:.*\\.qk=trunc8s_k6"], env=env, catch_exceptions=False)
    assert table.exit_code == 0, table.output
    assert "blocks.1.attn.qk" in table.output and "trunc8s_k6" in table.output


def test_user_transformer_from_a_file(env, tmp_path: Path, json_output) -> None:
    source = tmp_path / "mymodel.py"
    source.write_text(
        textwrap.dedent(
            """
            import torch
            from torch import nn


            class Tiny(nn.Module):
                def __init__(self, num_classes=10, in_channels=1, input_size=8):
                    super().__init__()
                    self.embed = nn.Linear(in_channels * input_size, 16)
                    self.w_out = nn.Parameter(torch.randn(16, num_classes) * 0.1)

                def forward(self, x):
                    h = self.embed(x)
                    scores = torch.einsum("bqd,bkd->bqk", h, h) / 4.0
                    h = scores.softmax(-1) @ h
                    return h.mean(1) @ self.w_out


            def build(num_classes=10, in_channels=1, input_size=8):
                return Tiny(num_classes, in_channels, input_size)


            build.input_kind = "sequence"
            build.channels = 1
            build.size = 8
            """
        )
    )
    torch.manual_seed(0)
    weights = tmp_path / "tiny.pt"
    spec = importlib.util.spec_from_file_location("mymodel_for_weights", source)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    torch.save(module.build().state_dict(), weights)
    args = ["evaluate", "--model", f"{source}:build", "--weights", str(weights), "--limit", "40"]
    result = CliRunner().invoke(main, [*args, "--assign", "trunc8s_k6", "--json"], env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    names = [row["name"] for row in json_output(result.output, "evaluate")["layers"]]
    assert names == ["embed", "einsum", "matmul", "matmul_1"]
