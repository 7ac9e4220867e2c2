"""Capture of functional products: names, float parity with torch, einsum plans, refusals, install/remove."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from approxlut.errors import ConfigError
from approxlut.nn import AssignmentMapping, LayerConfig, approximate, to_float
from approxlut.nn.capture import CAPTURE_ATTR, einsum_plan, find_capture
from approxlut.nn.products import ApproxProduct
from approxlut.nn.swap import approx_layers, layer_macs
from approxlut.nn.zoo import build_model


def products(model: nn.Module) -> list[str]:
    return [n for n, m in model.named_modules() if isinstance(m, ApproxProduct)]


class Functional(nn.Module):
    """Products of every supported form inside one module's forward."""

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.randn(6, 4) * 0.3)
        self.v = nn.Parameter(torch.randn(4, 5) * 0.3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x [N, 3, 4]
        h = F.linear(x, self.w)  # weight operand: [N, 3, 6]
        s = h @ h.transpose(-2, -1)  # activation x activation
        t = torch.bmm(s, h)
        u = torch.einsum("nij,nkj->nik", t, h)
        p = x @ self.v  # weight operand through @
        return u.sum(-1) + torch.matmul(p, torch.ones(5)) + torch.mm(x[0], self.w.t()).sum()


def test_names_are_module_paths_and_call_indices() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(Functional(), nn.Linear(3, 2))
    x = torch.randn(4, 3, 4)
    captured = approximate(model, "float", [x])
    assert products(captured) == [
        "0.linear",
        "0.matmul",
        "0.bmm",
        "0.einsum",
        "0.matmul_1",
        "0.matmul_2",
        "0.mm",
    ]
    layers = approx_layers(captured)
    assert layers["0.linear"].weight_operand and layers["0.matmul_1"].weight_operand  # type: ignore[union-attr]
    assert not layers["0.matmul"].weight_operand  # type: ignore[union-attr]
    assert torch.allclose(captured(x), model(x), atol=1e-5)
    # the same names in another run, and in a copy
    again = approximate(model, "float", [x])
    assert products(again) == products(captured)
    assert products(copy.deepcopy(captured)) == products(captured)


def test_vit_and_transformer_products() -> None:
    torch.manual_seed(0)
    vit = build_model("vit").eval()
    x = torch.randn(3, 1, 8, 8)
    captured = approximate(vit, "float", [x])
    assert products(captured) == ["blocks.0.attn.qk", "blocks.0.attn.av", "blocks.1.attn.qk", "blocks.1.attn.av"]
    assert torch.allclose(captured(x), vit(x), atol=1e-5)
    seq = build_model("transformer").eval()
    xs = torch.randn(3, 8, 8)
    captured = approximate(seq, "float", [xs])
    assert products(captured) == [
        f"encoder.layers.{i}.self_attn.{kind}" for i in range(2) for kind in ("in_proj", "qk", "av")
    ]
    assert torch.allclose(captured(xs), seq(xs), atol=1e-5)
    exact = approximate(seq, "exact", [xs])
    assert "encoder.layers.0.self_attn.out_proj" in approx_layers(exact)  # the MHA's out_proj runs as a layer


@pytest.mark.parametrize(
    "case",
    ["self", "cross", "masks", "bool-masks", "weights-per-head", "unbatched", "seq-first", "kdim", "causal"],
)
def test_multihead_attention_matches_torch(case: str) -> None:
    torch.manual_seed(1)
    batch_first = case != "seq-first"
    kdim = 5 if case == "kdim" else None
    mha = nn.MultiheadAttention(8, 2, batch_first=batch_first, kdim=kdim, vdim=kdim).eval()
    q = torch.randn(3, 4, 8) if batch_first else torch.randn(4, 3, 8)
    kv = torch.randn(3, 6, 5 if kdim else 8) if case in ("cross", "kdim") else q
    kwargs: dict = {"need_weights": case == "weights-per-head", "average_attn_weights": False}
    if case == "masks":
        kwargs["attn_mask"] = torch.randn(4, 4)
        kwargs["key_padding_mask"] = torch.tensor([[0.0, 0, 0, float("-inf")]] * 3)
    if case == "bool-masks":
        kwargs["attn_mask"] = torch.eye(4, dtype=torch.bool)
        kwargs["key_padding_mask"] = torch.tensor([[False, False, True, False]] * 3)
    if case == "causal":
        kwargs["attn_mask"] = nn.Transformer.generate_square_subsequent_mask(4)
        kwargs["is_causal"] = True
    if case == "unbatched":
        q = kv = q[0]
    want = mha(q, kv, kv, **kwargs)

    class Call(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.attn = mha

        def forward(self, q: torch.Tensor, kv: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
            return self.attn(q, kv, kv, **kwargs)

    model = Call()
    captured = approximate(model, "float")  # products appear on first use
    got = captured(q, kv)
    assert torch.allclose(got[0], want[0], atol=1e-5)
    if want[1] is not None:
        assert got[1] is not None and torch.allclose(got[1], want[1], atol=1e-6)
    names = products(captured)
    assert names[-2:] == ["attn.qk", "attn.av"]
    assert names[0] == ("attn.in_proj" if case not in ("cross", "kdim") else "attn.q_proj")


@pytest.mark.parametrize("case", ["plain", "causal", "bool", "float", "scale", "gqa"])
def test_sdpa_matches_torch(case: str) -> None:
    torch.manual_seed(2)
    q, k, v = torch.randn(2, 4, 5, 8), torch.randn(2, 4, 7, 8), torch.randn(2, 4, 7, 8)
    kwargs: dict = {}
    if case == "causal":
        kwargs["is_causal"] = True
    if case == "bool":
        kwargs["attn_mask"] = torch.rand(5, 7) > 0.3
        kwargs["attn_mask"][:, 0] = True
    if case == "float":
        kwargs["attn_mask"] = torch.randn(2, 1, 5, 7)
    if case == "scale":
        kwargs["scale"] = 0.3
    if case == "gqa":
        k, v = k[:, :2], v[:, :2]
        kwargs["enable_gqa"] = True

    class Attention(nn.Module):
        def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
            return F.scaled_dot_product_attention(q, k, v, **kwargs)

    captured = approximate(Attention(), "float")
    assert torch.allclose(captured(q, k, v), F.scaled_dot_product_attention(q, k, v, **kwargs), atol=1e-5)
    assert products(captured) == ["qk", "av"]


@pytest.mark.parametrize(
    "equation",
    ["bhqd,bhkd->bhqk", "bhqk,bhkd->bhqd", "ij,jk->ik", "bi,bi->b", "i,j->ij", "...qd,...kd->...qk", "bij,jk"],
)
def test_einsum_plans_match_torch(equation: str) -> None:
    torch.manual_seed(3)
    shapes = {
        "bhqd,bhkd->bhqk": ((2, 3, 4, 5), (2, 3, 6, 5)),
        "bhqk,bhkd->bhqd": ((2, 3, 4, 6), (2, 3, 6, 5)),
        "ij,jk->ik": ((4, 5), (5, 3)),
        "bi,bi->b": ((4, 5), (4, 5)),
        "i,j->ij": ((4,), (3,)),
        "...qd,...kd->...qk": ((2, 3, 4, 5), (3, 6, 5)),
        "bij,jk": ((2, 4, 5), (5, 3)),
    }
    a, b = (torch.randn(s) for s in shapes[equation])

    class Einsum(nn.Module):
        def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
            return torch.einsum(equation, a, b)

    captured = approximate(Einsum(), "float")
    assert torch.allclose(captured(a, b), torch.einsum(equation, a, b), atol=1e-5)
    assert products(captured) == ["einsum"]


def test_unsupported_einsum_refused_unless_float() -> None:
    with pytest.raises(ConfigError, match="diagonal"):
        einsum_plan("ii,i->i", torch.Size([3, 3]), torch.Size([3]))
    with pytest.raises(ConfigError, match="one operand only"):
        einsum_plan("ij,j->", torch.Size([3, 3]), torch.Size([3]))

    class Trace(nn.Module):
        def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
            return torch.einsum("ii,i->i", a, b) + torch.einsum("ij->ji", a).sum()

    a, b = torch.randn(3, 3), torch.randn(3)
    with pytest.raises(ConfigError, match=r"'einsum': .*diagonal.*assign it 'float'"):
        approximate(Trace(), "exact")(a, b)
    floated = approximate(Trace(), AssignmentMapping.parse("default=exact,einsum=float"))
    assert torch.allclose(floated(a, b), Trace()(a, b))


def test_layers_inside_calls_are_not_products_and_hooks_of_others_are_not_either() -> None:
    torch.manual_seed(4)
    model = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2))
    x = torch.randn(5, 4)
    assert find_capture(approximate(model, "exact", [x])) is None  # nothing found: no capture kept
    vit = approximate(build_model("vit", depth=1), "float", [torch.randn(2, 1, 8, 8)])
    fc = vit.get_submodule("blocks.0.mlp.0")
    fc.register_forward_hook(lambda m, i, o: o + F.linear(i[0], m.weight, m.bias) * 0)
    vit(torch.randn(2, 1, 8, 8))
    assert products(vit) == ["blocks.0.attn.qk", "blocks.0.attn.av"]


def test_product_assignment_by_name_and_checks() -> None:
    torch.manual_seed(5)
    vit = build_model("vit", depth=1).eval()
    x = torch.randn(4, 1, 8, 8)
    rules = AssignmentMapping.parse("default=exact,blocks.0.attn.qk=float")
    model = approximate(vit, rules, [x])
    layers = approx_layers(model)
    assert layers["blocks.0.attn.qk"].multiplier_name == "float"
    assert layers["blocks.0.attn.av"].multiplier_name == "exact8s"
    assert rules.to_dict()["layers"] == {"blocks.0.attn.qk": "float"}
    with pytest.raises(ConfigError, match=r"blocks\.0\.attn\.qq"):
        approximate(vit, AssignmentMapping.parse("default=exact,blocks.0.attn.qq=float"), [x])
    with pytest.raises(ConfigError, match=r"blocks\.0\.attn\.matmul"):  # plausible but not there
        approximate(vit, AssignmentMapping.parse("default=exact,blocks.0.attn.matmul=float"), [x])
    lazy = approximate(vit, AssignmentMapping.parse("default=exact,blocks.0.attn.qk=float"))  # no data yet
    lazy(x)
    assert approx_layers(lazy)["blocks.0.attn.qk"].multiplier_name == "float"


def test_macs_of_products() -> None:
    vit = approximate(build_model("vit", depth=1), "float", [torch.randn(2, 1, 8, 8)])
    macs = layer_macs(vit, torch.randn(3, 1, 8, 8))
    assert macs["blocks.0.attn.qk"] == 4 * 17 * 17 * 16  # heads x tokens x tokens x head dim, per sample
    assert macs["blocks.0.attn.av"] == 4 * 17 * 17 * 16
    assert macs["blocks.0.attn.qkv"] == 17 * 64 * 192


def test_to_float_removes_capture_and_state_dict_round_trips() -> None:
    torch.manual_seed(6)
    seq = build_model("transformer", depth=1).eval()
    x = torch.randn(4, 8, 8)
    model = approximate(seq, LayerConfig("exact", per_channel=None), [x])
    state = model.state_dict()
    assert "encoder.layers.0.self_attn.qk.quant_a.whole.scale" in state
    twin = approximate(seq, "exact", [x])
    twin.load_state_dict(state)
    assert torch.equal(twin(x), model(x))
    plain = to_float(model)
    assert find_capture(plain) is None and not products(plain)
    assert CAPTURE_ATTR not in vars(plain)
    assert not any(h for m in plain.modules() for h in m._forward_pre_hooks.values())
    assert torch.allclose(plain(x), seq(x), atol=1e-6)
