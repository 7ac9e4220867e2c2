"""Module swap, assignment priorities, JSON round trips, multiplier specs and MAC counting."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from approxlut.errors import ConfigError, InputError, LutgenError
from approxlut.lutgen.formats import save_npz
from approxlut.lutgen.lut import Lut, code_values
from approxlut.nn import (
    ApproxConv2d,
    ApproxLinear,
    ApproxLSTM,
    ApproxModule,
    AssignmentMapping,
    LayerConfig,
    approx_layers,
    approximable_layers,
    approximate,
    default_mapping,
    layer_macs,
    resolve_config,
    to_float,
)


def exact_lut(bits: int, signed: bool, name: str = "exact-test") -> Lut:
    forward = np.multiply.outer(code_values(bits, signed), code_values(bits, signed)).astype(np.int32)
    return Lut(forward=forward, bits_a=bits, bits_b=bits, signed=signed, name=name)


class Net(nn.Module):
    """A small model with a shared layer (used twice) and nested containers."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 4, 3, padding=1)
        self.features = nn.Sequential(nn.Conv2d(4, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 1))
        self.shared = nn.Linear(16, 16)
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(64, 16))
        self.alias = self.shared
        self.out = nn.Linear(16, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(torch.relu(self.conv1(x)))
        x = nn.functional.adaptive_avg_pool2d(x, 4)
        h = torch.relu(self.head(x))
        h = torch.relu(self.shared(h))
        h = torch.relu(self.alias(h))
        return self.out(h)


def test_priorities_global_type_regex_name() -> None:
    net = Net()
    mapping = AssignmentMapping.build(
        "exact",
        types={nn.Linear: LayerConfig("exact", bits=6), nn.Module: "float"},
        patterns={r"features\..*": LayerConfig("exact", bits=5), r"features\.2": LayerConfig("exact", bits=4)},
        names={"features.0": LayerConfig("exact", bits=3), "out": "float"},
    )
    configs = {name: mapping.config_for(name, m) for name, m in net.named_modules()}
    assert configs["features.0"].bits == 3  # exact name beats regex
    assert configs["features.2"].bits == 4  # the last matching regex wins
    assert configs["shared"].bits == 6  # type beats global
    assert configs["out"].is_float  # exact name beats type
    assert configs["conv1"].is_float  # nn.Module (a base class) listed as a type beats the global default
    assert mapping.with_type(nn.Module, "exact").config_for("conv1", net.conv1).multiplier == "exact"
    # the most specific listed class wins among types
    assert (
        AssignmentMapping.build(types={nn.Module: "exact", nn.Conv2d: "float"}).config_for("conv1", net.conv1).is_float
    )
    approx = approximate(net, mapping)
    assert isinstance(approx.features[0], ApproxConv2d) and approx.features[0].resolved.bits_a == 3
    assert type(approx.out) is nn.Linear and type(approx.conv1) is nn.Conv2d
    assert isinstance(approx.shared, ApproxLinear) and approx.shared.resolved.bits_b == 6


def test_assignment_json_round_trip() -> None:
    mapping = AssignmentMapping.build(
        "exact",
        types={nn.Conv2d: LayerConfig("exact", bits=(8, 4), calibration="mse"), Net: "float"},
        patterns={r"head\..*": "mul8s_1KV6"},
        names={"out": "float"},
    )
    data = json.loads(json.dumps(mapping.to_dict()))
    assert data["default"] == "exact" and data["layers"] == {"out": "float"}
    assert data["types"]["Conv2d"] == {"multiplier": "exact", "bits": [8, 4], "calibration": "mse"}
    again = AssignmentMapping.from_dict(data)
    assert again == mapping
    assert AssignmentMapping.coerce(data) == mapping
    assert AssignmentMapping.coerce({"out": "exact"}).config_for("out", nn.Linear(1, 1)).multiplier == "exact"
    assert AssignmentMapping.coerce("exact").default.multiplier == "exact"
    with pytest.raises(ConfigError):
        AssignmentMapping.from_dict({"default": "exact", "nonsense": {}})
    with pytest.raises(ConfigError):
        AssignmentMapping.from_dict({"types": {"NoSuchLayer": "exact"}})
    with pytest.raises(ConfigError):
        AssignmentMapping.from_dict({"layers": {"x": {"multiplier": "exact", "colour": "red"}}})
    with pytest.raises(ConfigError):
        AssignmentMapping.build(patterns={"(unclosed": "exact"})
    with pytest.raises(ConfigError):
        AssignmentMapping.build(exact_lut(4, True)).to_dict()


def test_assignment_from_command_line_text(tmp_path: Path) -> None:
    assert AssignmentMapping.parse("mul8s_1KV6") == AssignmentMapping.build("mul8s_1KV6")
    parsed = AssignmentMapping.parse(r"default=exact, type:Linear=float, re:features\..*=exact4s, conv1=mul8s_1KV6")
    expected = AssignmentMapping.build(
        "exact", types={nn.Linear: "float"}, patterns={r"features\..*": "exact4s"}, names={"conv1": "mul8s_1KV6"}
    )
    assert parsed == expected
    path = tmp_path / "assign.json"
    path.write_text(json.dumps(expected.to_dict()))
    assert AssignmentMapping.parse(str(path)) == expected
    path.write_text("{not json")
    with pytest.raises(InputError, match=r"assign\.json:1"):
        AssignmentMapping.parse(str(path))
    for bad in ("", "conv1=", "=x,", "type:Nope=exact", str(tmp_path / "missing.json")):
        with pytest.raises(InputError):
            AssignmentMapping.parse(bad)
    mixed = {"default": "exact", "re:.*qk": "drum8s_k4"}  # (layer-name keys beside 'default': the JSON form)
    with pytest.raises(ConfigError, match=r"unknown assignment keys \['re:\.\*qk'\].*patterns under 'regex'"):
        AssignmentMapping.coerce(mixed)
    for point in ("-1", "a", "", "1e3"):  # (read as a multiplier's name before: "no multiplier 'f.json#-1'")
        with pytest.raises(ConfigError, match=r"a front point is a number, 0 for the first"):
            AssignmentMapping.parse(f"{path}#{point}")


def test_shared_modules_hooks_mode_and_copy() -> None:
    torch.manual_seed(0)
    net = Net()
    net.train()
    calls: list[str] = []
    handle = net.shared.register_forward_hook(lambda m, i, o: calls.append("fwd"))
    net.conv1.register_forward_pre_hook(lambda m, i: calls.append("pre"))
    x = torch.randn(2, 3, 8, 8)
    approx = approximate(net, "exact", calibration_data=[x])
    assert approx is not net and type(net.shared) is nn.Linear  # the original is untouched
    assert approx.shared is approx.alias and isinstance(approx.shared, ApproxLinear)
    assert approx.training and approx.shared.training
    assert sorted(approx_layers(approx)) == ["conv1", "features.0", "features.2", "head.1", "out", "shared"]
    calls.clear()
    approx.eval()
    approx(x)
    assert calls == ["pre", "fwd", "fwd"]
    handle.remove()  # removes the hook from the original only
    calls.clear()
    approx(x)
    assert calls.count("fwd") == 2  # deep copy: the copy's hooks are its own
    inplace = approximate(net, "exact", inplace=True)
    assert inplace is net and isinstance(net.shared, ApproxLinear) and net.shared is net.alias
    hook = net.out.register_forward_hook(lambda m, i, o: calls.append("out"))
    swapped = approximate(net, {"out": "float"}, inplace=True)
    calls.clear()
    swapped(x)
    assert calls == ["pre", "out"] and type(swapped.out) is nn.Linear
    hook.remove()  # handles stay valid across swaps (the hook dict is shared)
    calls.clear()
    swapped(x)
    assert calls == ["pre"]


def test_root_layer_device_and_to_float() -> None:
    torch.manual_seed(1)
    layer = nn.Linear(4, 3)
    approx = approximate(layer, "exact")
    assert isinstance(approx, ApproxLinear) and approx.weight.device == layer.weight.device
    assert approx.input_quant.scale.device == layer.weight.device
    back = to_float(approx)
    assert type(back) is nn.Linear and torch.equal(back.weight, layer.weight)
    net = Net()
    restored = to_float(approximate(net, "exact"))
    x = torch.randn(1, 3, 8, 8)
    assert torch.equal(restored(x), net(x)) and restored.shared is restored.alias
    assert not any(isinstance(m, ApproxModule) for m in restored.modules())


def test_reassigning_keeps_calibration_statistics() -> None:
    torch.manual_seed(2)
    net = nn.Sequential(nn.Linear(6, 6), nn.ReLU(), nn.Linear(6, 2))
    x = torch.randn(32, 6)
    approx = approximate(net, "exact", calibration_data=[x])
    scale8 = float(approx[0].input_quant.scale)
    four = approximate(approx, LayerConfig("exact", bits=4))
    assert four[0].calibrated and four[0].resolved.bits_a == 4
    assert float(four[0].input_quant.scale) == pytest.approx(scale8 * 127 / 7, rel=1e-5)
    affine = approximate(approx, exact_lut(8, False))
    assert affine[0].resolved.scheme == "affine" and affine[0].calibrated
    assert float(affine[2].input_quant.zero_point) == 0.0  # ReLU output: non-negative range
    # without statistics (loaded from a state dict) the calibrated range carries over
    loaded = approximate(net, "exact")
    loaded.load_state_dict(approx.state_dict())
    assert float(loaded[0].input_quant.scale) == scale8
    loaded[0].set_config(LayerConfig("exact", bits=4))
    assert float(loaded[0].input_quant.scale) == pytest.approx(scale8 * 127 / 7, rel=1e-5)


def test_unknown_layer_names_are_reported() -> None:
    with pytest.raises(ConfigError, match=r"features\.9"):
        approximate(Net(), {"features.9": "exact"})
    with pytest.raises(ConfigError, match="approximable"):
        approximate(Net(), {"features.1": "exact"})  # a ReLU
    shared = approximate(Net(), {"alias": "exact"})  # any name of a shared layer may be assigned
    assert isinstance(shared.alias, ApproxLinear) and shared.alias is shared.shared


def test_rules_that_match_no_layer_are_reported_once_products_are_known() -> None:
    batches = [torch.randn(2, 3, 8, 8)]
    typo = AssignmentMapping.parse(r"default=exact,re:feature\..*=float")  # (the layers are features.N)
    with pytest.raises(ConfigError, match=r"'re:feature\\\..\*' matches no layer; approximable layers: 'conv1'"):
        approximate(Net(), typo, calibration_data=batches)
    absent = AssignmentMapping.parse("type:LSTM=float,re:nope=float")
    with pytest.raises(ConfigError, match=r"rules 're:nope', 'type:LSTM' match no layer"):
        approximate(Net(), absent, calibration_data=batches)
    assert isinstance(approximate(Net(), typo).conv1, ApproxConv2d)  # (before calibration, products may yet match)
    rules = AssignmentMapping.parse(r"default=exact,type:Linear=float,re:features\.0=float")
    kept = approximate(Net(), rules, calibration_data=batches)
    assert type(kept.out) is nn.Linear and type(kept.features[0]) is nn.Conv2d and isinstance(kept.conv1, ApproxConv2d)


def test_calibration_batches_as_tuples_and_limits() -> None:
    net = nn.Sequential(nn.Linear(3, 3))
    batches = [(torch.randn(4, 3) * (i + 1), torch.zeros(4)) for i in range(5)]
    seen: list[int] = []
    approx = approximate(net, "exact", calibration_data=batches, max_batches=2, progress=seen.append)
    assert seen == [1, 2] and approx[0].calibrated


def test_default_mapping_is_a_copy_and_custom_mappings() -> None:
    mapping = default_mapping()
    assert mapping[nn.Conv2d] is ApproxConv2d and mapping[nn.LSTM] is ApproxLSTM
    mapping.pop(nn.Conv2d)
    assert default_mapping()[nn.Conv2d] is ApproxConv2d
    net = Net()
    approx = approximate(net, "exact", mapping=mapping)
    assert type(approx.conv1) is nn.Conv2d and isinstance(approx.out, ApproxLinear)
    assert "conv1" not in approximable_layers(net, mapping) and "conv1" in approximable_layers(net)


def test_multiplier_specs(tmp_path: Path) -> None:
    lut = exact_lut(6, False, name="mine")
    path = tmp_path / "mine.npz"
    save_npz(lut, path)
    resolved = resolve_config(LayerConfig(str(path)))
    assert resolved.lut is not None and resolved.lut.hash == lut.hash
    assert (resolved.bits_a, resolved.bits_b, resolved.scheme, resolved.name) == (6, 6, "affine", "mine")
    layer = approximate(nn.Linear(3, 2), str(path))
    assert layer.multiplier_name == "mine"
    assert resolve_config(LayerConfig("exact")).name == "exact8s"
    assert resolve_config(LayerConfig("exact", bits=(8, 4), scheme="affine")).name == "exact8x4u"
    assert resolve_config(LayerConfig("float")).is_float
    with pytest.raises(ConfigError):
        resolve_config(LayerConfig(str(tmp_path / "missing.npz")))
    with pytest.raises(ConfigError):
        approximate(nn.Linear(3, 2), str(tmp_path / "missing.npz"))


def test_netlist_and_text_lut_paths(corpus: Path) -> None:
    netlist = corpus / "evoapprox" / "narrow" / "v2022_mul7u_003.v"
    text = corpus / "date25" / "mul7u_06Q_lutfp.txt"
    from_netlist = resolve_config(LayerConfig(str(netlist)))
    from_text = resolve_config(LayerConfig(str(text)))
    for resolved in (from_netlist, from_text):
        assert resolved.lut is not None and (resolved.bits_a, resolved.bits_b) == (7, 7)
        assert resolved.scheme == "affine"  # unsigned multipliers take the affine scheme
    layer = approximate(nn.Conv2d(2, 3, 3, padding=1), str(text), calibration_data=[torch.randn(2, 2, 5, 5)])
    codes, _, _ = layer.quantize_input(torch.randn(2, 2, 5, 5))
    assert codes.min() >= 0 and codes.max() <= 127


def test_every_netlist_extension_resolves_as_the_importer_reads_it(corpus: Path, tmp_path: Path) -> None:
    """``.sv`` (Verilog) and ``.pla`` (SOP) name netlists for ``--assign`` as they do for ``library import``: the
    same circuit gives the same table whichever extension it comes with."""
    import shutil

    from approxlut.circuits.io import read_netlist, write_netlist
    from approxlut.nn.multipliers import load_multiplier

    source = corpus / "evoapprox" / "narrow" / "v2022_mul7u_003.v"
    want = load_multiplier(str(source)).hash
    shutil.copy(source, tmp_path / "v2022_mul7u_003.sv")
    write_netlist(read_netlist(source), tmp_path / "v2022_mul7u_003.pla")
    for name in ("v2022_mul7u_003.sv", "v2022_mul7u_003.pla"):
        resolved = resolve_config(LayerConfig(str(tmp_path / name)))
        assert resolved.lut is not None and resolved.lut.hash == want and resolved.scheme == "affine"


def test_library_names(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from approxlut.library import Library
    from approxlut.nn import clear_caches

    monkeypatch.setenv("LUTGEN_LIBRARY", str(tmp_path / "lib"))
    clear_caches()
    rng = np.random.default_rng(0)
    base = exact_lut(4, True)
    noisy = Lut(forward=base.forward + rng.integers(-2, 3, base.forward.shape).astype(np.int32), bits_a=4, bits_b=4,
                signed=True, name="noisy4s")  # fmt: skip
    Library.open().add(noisy, name="noisy4s")
    try:
        resolved = resolve_config(LayerConfig("noisy4s"))
        assert resolved.lut is not None and resolved.lut.hash == noisy.hash and resolved.scheme == "symmetric"
        layer = approximate(nn.Linear(3, 2), "noisy4s", calibration_data=[torch.randn(4, 3)])
        assert layer.multiplier_name == "noisy4s" and layer.resolved.bits_a == 4
        with pytest.raises(LutgenError):
            resolve_config(LayerConfig("no_such_multiplier"))
    finally:
        clear_caches()


def test_layer_macs() -> None:
    net = Net()
    macs = layer_macs(net, torch.randn(2, 3, 8, 8))
    assert macs["conv1"] == 4 * 8 * 8 * 3 * 9
    assert macs["features.0"] == 4 * 8 * 8 * 4 * 9
    assert macs["features.2"] == 4 * 8 * 8 * 4
    assert macs["head.1"] == 64 * 16
    assert macs["shared"] == 2 * 16 * 16  # called twice per sample (shared)
    assert macs["out"] == 16 * 5
    assert layer_macs(approximate(net, "exact"), torch.randn(3, 3, 8, 8)) == macs
    lstm = nn.LSTM(5, 6, num_layers=2, bidirectional=True, batch_first=True)
    per_step = 2 * 4 * 6 * (5 + 6) + 2 * 4 * 6 * (12 + 6)
    assert layer_macs(lstm, torch.randn(3, 7, 5)) == {"": 7 * per_step}
    transposed = nn.ConvTranspose2d(4, 6, 3, stride=2, groups=2)
    assert layer_macs(transposed, torch.randn(2, 4, 5, 5)) == {"": 4 * 5 * 5 * 3 * 9}
