"""Retraining protocols: which optimiser, schedule, layers and activation ranges a retraining run uses.

Two protocols, side by side (``lutgen retrain --protocol NAME``):

=====================  ===========================================  ============================================
                       ``lutgen`` (the default)                     ``date25`` (the DATE'25 reference code)
=====================  ===========================================  ============================================
optimiser              SGD, Nesterov momentum 0.9, weight decay     Adam, no weight decay
                       5e-4
learning rate          0.01, cosine decay to 0 per step             1e-3, halved after epochs 10 and 20
approximated layers    every layer the assignment names (Linear     convolutions only; the other layers run
                       included)                                    quantised with exact products
activation ranges      calibrated on 4 training batches (99.9th     a moving average (momentum 0.1) of each
                       percentile), then frozen                     batch's min/max, updated at every training
                                                                    step; first set by one pass over the
                                                                    training set in training mode
=====================  ===========================================  ============================================

Both keep lutgen's quantisers otherwise: the multiplier's signedness picks the scheme (affine for
unsigned, symmetric for signed), weights take their max range (per tensor under affine, per channel
under symmetric) from the current weight at every step, and a range always contains 0.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, replace

import torch
from torch import nn

from ..errors import ConfigError
from .config import AssignmentMapping, LayerConfig
from .multipliers import resolve_config

#: Layer types that a conv-only protocol approximates (the rest run quantised with exact products).
CONVOLUTIONS: tuple[type[nn.Module], ...] = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d)


@dataclass(frozen=True)
class Protocol:
    """One retraining protocol.

    Attributes:
        name: how ``--protocol`` names it.
        optimizer: ``"sgd"`` (Nesterov momentum) or ``"adam"``.
        lr: the default peak learning rate.
        momentum: SGD momentum (unused by Adam).
        weight_decay: L2 penalty.
        schedule: ``"cosine"`` (per step, to 0 at the end) or ``"halving"`` (the learning rate halves at
            the start of each epoch listed in ``milestones``, counted from 0).
        milestones: the halving epochs.
        conv_only: approximate convolutions only.
        running_ranges: activation ranges by a moving average of each training batch's min/max.
        range_momentum: the moving average's weight of the new batch.
        calibration_batches: training batches that first set the activation ranges (0: all of them).
    """

    name: str
    optimizer: str
    lr: float
    momentum: float
    weight_decay: float
    schedule: str
    milestones: tuple[int, ...]
    conv_only: bool
    running_ranges: bool
    range_momentum: float
    calibration_batches: int

    def lr_factor(self, step: int, steps_per_epoch: int, total_steps: int) -> float:
        """The learning rate at 0-based ``step`` of the run, as a fraction of the peak."""
        if self.schedule == "cosine":
            return 0.5 * (1.0 + math.cos(math.pi * step / max(1, total_steps)))
        epoch = step // max(1, steps_per_epoch)
        return 0.5 ** sum(epoch >= m for m in self.milestones)

    def make_optimizer(
        self, params: Iterable[nn.Parameter], *, lr: float, momentum: float, weight_decay: float
    ) -> torch.optim.Optimizer:
        """This protocol's optimiser over ``params``."""
        if self.optimizer == "adam":
            return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
        return torch.optim.SGD(params, lr=lr, momentum=momentum, nesterov=momentum > 0, weight_decay=weight_decay)


PROTOCOLS: dict[str, Protocol] = {
    "lutgen": Protocol(
        name="lutgen", optimizer="sgd", lr=0.01, momentum=0.9, weight_decay=5e-4, schedule="cosine",
        milestones=(), conv_only=False, running_ranges=False, range_momentum=0.0, calibration_batches=4,
    ),
    "date25": Protocol(
        name="date25", optimizer="adam", lr=1e-3, momentum=0.0, weight_decay=0.0, schedule="halving",
        milestones=(10, 20), conv_only=True, running_ranges=True, range_momentum=0.1, calibration_batches=0,
    ),
}  # fmt: skip


def get_protocol(name: str) -> Protocol:
    """The protocol called ``name`` (a :class:`ConfigError` listing the known ones otherwise)."""
    found = PROTOCOLS.get(name)
    if found is None:
        raise ConfigError(f"protocol {name!r}: expected one of {', '.join(PROTOCOLS)}")
    return found


def conv_only(model: nn.Module, mapping: AssignmentMapping) -> AssignmentMapping:
    """``mapping`` with every non-convolution layer that it sends through a LUT set to exact products instead.

    The layer keeps the multiplier's widths and scheme, so only the products change (quantised exact,
    as the DATE'25 reference runs its Linear layers). Idempotent.
    """
    from .swap import default_mapping

    approximable = tuple(default_mapping())
    exact: dict[str, LayerConfig] = {}
    for name, module in model.named_modules(remove_duplicate=False):
        if isinstance(module, CONVOLUTIONS) or not isinstance(module, approximable):
            continue
        config = mapping.config_for(name, module)
        if config.is_float or config.multiplier == "exact":
            continue
        resolved = resolve_config(config)
        exact[name] = replace(
            config, multiplier="exact", bits=(resolved.bits_a, resolved.bits_b), scheme=resolved.scheme
        )
    for name, config in exact.items():
        mapping = mapping.with_name(name, config)
    return mapping
