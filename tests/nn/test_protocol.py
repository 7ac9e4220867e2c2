"""Retraining protocols (approxlut.nn.protocol): schedules, defaults, conv-only approximation, a date25 run."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
import torch
from torch import nn

from approxlut.errors import ConfigError
from approxlut.lutgen.lut import Lut, code_values
from approxlut.nn import ApproxConv2d, ApproxLinear, LayerConfig
from approxlut.nn.config import AssignmentMapping
from approxlut.nn.data import load_dataset
from approxlut.nn.protocol import PROTOCOLS, conv_only, get_protocol
from approxlut.nn.retrain import RetrainConfig, Trainer, prepare_model, retrain
from approxlut.nn.train import TrainConfig, train_model


def coarse_lut(bits: int = 6) -> Lut:
    """An unsigned multiplier that drops the low 4 product bits."""
    values = code_values(bits, False)
    forward = np.multiply.outer(values, values).astype(np.int64) & ~15
    return Lut(forward=forward.astype(np.int32), bits_a=bits, bits_b=bits, signed=False, name="coarse6")


def tiny_convnet() -> nn.Module:
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 10))


@pytest.fixture(scope="module")
def images():
    data = load_dataset().prepare(input_kind="image", channels=1, size=8)
    return replace(data, x_train=data.x_train[:192], y_train=data.y_train[:192])


@pytest.fixture(scope="module")
def float_convnet(images) -> nn.Module:
    torch.manual_seed(0)
    model = tiny_convnet()
    train_model(model, images, TrainConfig(epochs=4, batch_size=32, lr=0.05), verbose=False)
    return model


def test_schedules() -> None:
    lutgen, date25 = PROTOCOLS["lutgen"], PROTOCOLS["date25"]
    assert lutgen.lr_factor(0, 10, 100) == 1.0
    assert lutgen.lr_factor(50, 10, 100) == pytest.approx(0.5)
    assert lutgen.lr_factor(99, 10, 100) == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.99)))
    # date25: halved at the start of epochs 10 and 20 (counted from 0), whatever the run's length
    assert [date25.lr_factor(s, 10, 50) for s in (0, 99, 100, 199, 200, 299)] == [1, 1, 0.5, 0.5, 0.25, 0.25]


def test_configs_take_the_protocols_defaults() -> None:
    default = RetrainConfig()
    assert (default.protocol, default.lr, default.momentum, default.weight_decay) == ("lutgen", 0.01, 0.9, 5e-4)
    assert default.calibration_batches == 4
    paper = RetrainConfig(protocol="date25")
    assert (paper.lr, paper.weight_decay, paper.calibration_batches) == (1e-3, 0.0, 0)
    assert RetrainConfig(protocol="date25", lr=0.01).lr == 0.01
    for bad in ({"protocol": "sgd"}, {"threads": 0}, {"lr": math.inf}):
        with pytest.raises(ConfigError):
            RetrainConfig(**bad)
    with pytest.raises(ConfigError, match="lutgen, date25"):
        get_protocol("paper")


def test_conv_only_sends_the_other_layers_through_exact_products() -> None:
    model = tiny_convnet()
    lut = coarse_lut()
    mapping = AssignmentMapping.build(lut, names={"3": lut})
    converted = conv_only(model, mapping)
    conv = converted.config_for("0", model[0])
    linear = converted.config_for("3", model[3])
    assert conv.multiplier is lut
    assert linear == LayerConfig("exact", bits=(6, 6), scheme="affine")  # the LUT's widths and scheme
    assert conv_only(model, converted) == converted  # idempotent
    floats = AssignmentMapping.build(lut, types={nn.Linear: "float"})
    assert conv_only(model, floats).config_for("3", model[3]).is_float  # float layers stay float


def test_date25_trainer_uses_adam_and_running_ranges(float_convnet, images) -> None:
    config = RetrainConfig(protocol="date25", batch_size=32)
    mapping = conv_only(float_convnet, AssignmentMapping.build(coarse_lut()))
    approx = prepare_model(float_convnet, images, mapping, config)
    conv, linear = approx[0], approx[3]
    assert isinstance(conv, ApproxConv2d) and conv.multiplier_name == "coarse6"
    assert isinstance(linear, ApproxLinear) and linear.multiplier_name == "exact6u"
    # calibrated by one pass over the whole training set, in training mode
    assert conv.input_quant.range_momentum == 0.1 and torch.isfinite(conv.input_quant.running_min)
    trainer = Trainer.create(approx, images, config, total_steps=6)
    assert isinstance(trainer.optimizer, torch.optim.Adam) and trainer.learning_rate() == 1e-3
    before = float(linear.input_quant.running_max)
    trainer.run_epoch(max_steps=2)
    assert float(linear.input_quant.running_max) != before  # the ranges move while training


def test_a_date25_run_reports_its_protocol(float_convnet, images) -> None:
    result = retrain(
        float_convnet,
        images,
        coarse_lut(),
        grad="difference",
        epochs=1,
        batch_size=32,
        protocol="date25",
        verbose=False,
    )
    assert result.protocol == "date25" and result.to_dict()["protocol"] == "date25"
    assert result.model[3].multiplier_name == "exact6u"
    assert 0 <= result.after_accuracy <= 100 and not result.guard_events
