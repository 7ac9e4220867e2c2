"""The divergence guard: catch a retraining run that blows up, restore its last good state and back off.

A network whose multipliers break it badly can start retraining with large losses and logits; at a
learning rate that suits a healthy network the first updates then make it worse, and within a few
steps it dies (every ReLU off, loss ln(classes), chance accuracy). :class:`DivergenceGuard` watches
every step:

- **blow-up**: a non-finite loss or gradient norm, a loss above ``BLOWUP`` × the first step's loss +
  ``MARGIN`` nats, or a gradient norm above ``GRAD_BLOWUP`` × the larger of the first step's and the
  median of the healthy steps' (a well-trained network's first norm can be tiny, and one hard batch
  then raises it a hundredfold without anything going wrong);
- **back-off**: restore the weights and optimiser state of the last good epoch end (the start, in the
  first epoch), then run the learning rate up linearly from 0 over one epoch (a warm-up), scaled by
  ``BACKOFF_LR`` per earlier back-off, and clip the gradient norm at the median of the healthy steps' norms;
- **give up** after ``MAX_BACKOFFS`` back-offs: training goes on unguarded, and the event says so.

An epoch end counts as good when no blow-up happened in the last ``warmup_steps`` steps. Each event is
kept (:class:`GuardEvent`) so that the run's results report it.
"""

from __future__ import annotations

import copy
import math
import statistics
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

BLOWUP = 2.0
MARGIN = 1.0
GRAD_BLOWUP = 100.0
MAX_BACKOFFS = 3
#: The learning rate's factor per back-off after the first (which only warms up again).
BACKOFF_LR = 0.1
#: Healthy gradient norms kept for the clipping threshold (the latest ones).
KEPT_NORMS = 256


@dataclass(frozen=True)
class GuardEvent:
    """One blow-up the guard caught, and what it did about it.

    Attributes:
        epoch: the epoch (from 1) of the step.
        step: the step of the run (from 1).
        reason: what was wrong.
        loss: the step's training loss.
        grad_norm: the step's gradient norm (NaN when the loss was not finite).
        action: what the guard did.
    """

    epoch: int
    step: int
    reason: str
    loss: float
    grad_norm: float
    action: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def message(self) -> str:
        """One line for stderr."""
        return f"divergence guard: epoch {self.epoch}, step {self.step}: {self.reason}; {self.action}"


class DivergenceGuard:
    """Watches a training run's steps; on a blow-up restores the last good state and backs off.

    Args:
        model: the model being trained.
        optimizer: its optimiser (its state is restored with the weights).
        warmup_steps: length of the learning-rate warm-up after a back-off (one epoch's steps).
    """

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, *, warmup_steps: int) -> None:
        self.model = model
        self.optimizer = optimizer
        self.warmup_steps = max(1, int(warmup_steps))
        self.reference_loss: float | None = None
        self.reference_grad_norm: float | None = None
        self.norms: list[float] = []
        self.backoffs = 0
        self.lr_scale = 1.0
        self.warmup_from: int | None = None
        self.clip_norm: float | None = None
        self.last_event_step: int | None = None
        self.events: list[GuardEvent] = []
        self.snapshot_epoch = 0
        self._snapshot = self._capture()

    @property
    def active(self) -> bool:
        """Whether the guard still intervenes (it gives up after ``MAX_BACKOFFS`` back-offs)."""
        return self.backoffs <= MAX_BACKOFFS

    def lr_factor(self, step: int) -> float:
        """The guard's factor on the learning rate at 0-based ``step`` (1 until a back-off)."""
        factor = self.lr_scale
        if self.warmup_from is not None and step < self.warmup_from + self.warmup_steps:
            factor *= (step - self.warmup_from + 1) / self.warmup_steps
        return factor

    def diagnose(self, loss: float, grad_norm: float) -> str | None:
        """What is wrong with a step (``None``: nothing); the first finite step sets the references."""
        if not math.isfinite(loss):
            return f"non-finite loss ({loss})"
        if not math.isfinite(grad_norm):
            return f"non-finite gradient norm ({grad_norm})"
        if self.reference_loss is None or self.reference_grad_norm is None:
            self.reference_loss, self.reference_grad_norm = loss, grad_norm
            return None
        if loss > BLOWUP * self.reference_loss + MARGIN:
            return f"loss {loss:.4g} > {BLOWUP:g} x the first step's {self.reference_loss:.4g} + {MARGIN:g}"
        typical = max(self.reference_grad_norm, statistics.median(self.norms) if self.norms else 0.0, 1e-12)
        if grad_norm > GRAD_BLOWUP * typical:
            return f"gradient norm {grad_norm:.4g} > {GRAD_BLOWUP:g} x the typical {typical:.4g}"
        return None

    def healthy(self, grad_norm: float) -> None:
        """Record a step that was applied."""
        self.norms.append(grad_norm)
        del self.norms[:-KEPT_NORMS]

    def back_off(self, epoch: int, step: int, reason: str, loss: float, grad_norm: float) -> GuardEvent:
        """React to a blow-up at 1-based ``step``: restore and back off, or give up after ``MAX_BACKOFFS``."""
        self.backoffs += 1
        self.last_event_step = step
        if not self.active:
            action = f"gave up after {MAX_BACKOFFS} back-offs; training goes on unguarded"
        else:
            self._restore()
            self.lr_scale = BACKOFF_LR ** (self.backoffs - 1)
            self.warmup_from = step  # the 0-based index of the next step
            norms = self.norms or [self.reference_grad_norm or 1.0]
            self.clip_norm = float(statistics.median(norms))
            where = "the start" if self.snapshot_epoch == 0 else f"the end of epoch {self.snapshot_epoch}"
            action = (
                f"restored the weights of {where}; learning rate x{self.lr_scale:g} with a linear warm-up over "
                f"{self.warmup_steps} steps; gradient norm clipped at {self.clip_norm:.4g}"
            )
        event = GuardEvent(epoch, step, reason, loss, grad_norm, action)
        self.events.append(event)
        return event

    def end_epoch(self, epoch: int, step: int) -> None:
        """Keep the state at the end of ``epoch`` as the last good one unless a blow-up is too recent."""
        if self.active and (self.last_event_step is None or step - self.last_event_step >= self.warmup_steps):
            self._snapshot = self._capture()
            self.snapshot_epoch = epoch

    # --------------------------------------------------------------------------------- state

    def _capture(self) -> dict[str, Any]:
        return {
            "model": {k: v.detach().clone() for k, v in self.model.state_dict().items()},
            "optimizer": copy.deepcopy(self.optimizer.state_dict()),
        }

    def _restore(self) -> None:
        self.model.load_state_dict(self._snapshot["model"])
        self.optimizer.load_state_dict(copy.deepcopy(self._snapshot["optimizer"]))

    def state(self, epoch: int) -> dict[str, Any]:
        """The guard's state after ``epoch`` (for a checkpoint; the snapshot only when it is not that epoch's)."""
        blob: dict[str, Any] = {
            "reference": [self.reference_loss, self.reference_grad_norm],
            "norms": list(self.norms),
            "backoffs": self.backoffs,
            "lr_scale": self.lr_scale,
            "warmup_from": self.warmup_from,
            "clip_norm": self.clip_norm,
            "last_event_step": self.last_event_step,
            "events": [e.to_dict() for e in self.events],
            "snapshot_epoch": self.snapshot_epoch,
        }
        if self.snapshot_epoch != epoch:
            blob["snapshot"] = self._snapshot
        return blob

    def load_state(self, blob: Mapping[str, Any]) -> None:
        """Restore :meth:`state` (after the model and optimiser hold the checkpoint's state)."""
        self.reference_loss, self.reference_grad_norm = blob["reference"]
        self.norms = [float(n) for n in blob["norms"]]
        self.backoffs = int(blob["backoffs"])
        self.lr_scale = float(blob["lr_scale"])
        self.warmup_from = blob["warmup_from"]
        self.clip_norm = blob["clip_norm"]
        self.last_event_step = blob["last_event_step"]
        self.events = [GuardEvent(**e) for e in blob["events"]]
        self.snapshot_epoch = int(blob["snapshot_epoch"])
        self._snapshot = blob["snapshot"] if "snapshot" in blob else self._capture()
