"""The ``lutgen evaluate`` job: a model through approximate multipliers, layer by layer.

Resolves the model (zoo name or ``module:callable``), its weights (``--weights`` or cached float
training), the dataset, the candidate multipliers (library filter or names), then reports float,
quantised-exact and approximate accuracy, a per-layer table and the relative multiplier energy
``Σ MACs·P(mult) / Σ MACs·P(exact)``. ``assign="auto"`` runs :func:`approxlut.nn.assign.auto_assign`.
"""

from __future__ import annotations

import io
import json
import math
import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.console import Console
from rich.table import Table
from torch import nn

from ..errors import ConfigError, InputError
from ..fileio import atomic_write_bytes, atomic_write_text, dumps_json
from .assign import Candidate, auto_assign, build_assigned
from .config import AssignmentMapping, LayerConfig
from .multipliers import load_multiplier
from .predict import predict_errors, record_operands
from .progress import add_task, make_progress
from .swap import approx_layers, approximate, layer_macs
from .train import float_model


@dataclass(frozen=True)
class EvaluateOptions:
    """Everything ``lutgen evaluate`` takes (see the command's help)."""

    model: str
    weights: Path | None = None
    data: Path | None = None
    dataset: str | None = None
    assign: str = "auto"
    budget: float = 1.0
    candidates: str = "bits=8,signed"
    limit: int | None = None
    seed: int = 0
    calibration_samples: int = 256
    bias_correction: bool = True
    batch_size: int = 128


@dataclass(frozen=True)
class LayerRow:
    """One line of the per-layer table."""

    name: str
    macs: int
    multiplier: str
    mae: float | None
    power: float | None


@dataclass
class EvaluateResult:
    """What ``lutgen evaluate`` reports; :meth:`to_json` is the ``--json`` object."""

    model: str
    dataset: str
    samples: int
    float_accuracy: float
    quantized_accuracy: float
    approx_accuracy: float
    relative_energy: float | None
    layers: list[LayerRow]
    assignment: dict[str, Any]
    budget: float | None = None
    pareto: list[dict[str, Any]] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> str:
        """One JSON object (accuracies in percent, ``relative_energy`` a fraction)."""
        data = asdict(self)
        return dumps_json(data, indent=2, sort_keys=False, default=float)


# ------------------------------------------------------------------------------------------ candidates


def parse_candidates(text: str) -> tuple[dict[str, Any], list[str]]:
    """``'bits=8,signed,max_mae=0.5'`` -> query filters; ``'a,b,c'`` -> names."""
    filters: dict[str, Any] = {}
    names: list[str] = []
    for raw in (t.strip() for t in text.split(",")):
        if not raw:
            continue
        key, _, value = raw.partition("=")
        if raw in ("signed", "unsigned"):
            filters["signed"] = raw == "signed"
        elif key in ("bits", "max_mae") and value:
            try:
                number = int(value) if key == "bits" else float(value)
            except ValueError:
                raise ConfigError(f"--candidates: {raw!r} needs a number") from None
            if not math.isfinite(number) or number < 0 or (key == "bits" and not 1 <= number <= 32):
                raise ConfigError(f"--candidates: {raw!r} is out of range (bits 1..32, max_mae a finite number >= 0)")
            filters[key] = number
        elif key == "signed" and value:
            filters["signed"] = value.lower() in ("1", "true", "yes")
        elif "=" in raw:
            raise ConfigError(f"--candidates: unknown filter {key!r} (bits=, signed, unsigned, max_mae=)")
        else:
            names.append(raw)
    if filters and names:
        raise ConfigError("--candidates: give either filters (bits=8,signed) or a list of names, not both")
    return filters, names


def library_candidates(text: str) -> tuple[list[Any], Any]:
    """The library entries selected by ``--candidates`` and the exact entry they are measured against."""
    from ..library import Library

    lib = Library.open_default()
    filters, names = parse_candidates(text)
    entries = [lib.entry(n) for n in names] if names else lib.query(**filters)
    if not entries:
        raise ConfigError(f"--candidates {text!r} selects no multipliers in the library")
    kinds = {(e.bits_a, e.bits_b, e.signed) for e in entries}
    if len(kinds) > 1:
        raise ConfigError(
            f"--candidates {text!r} mixes widths/signedness {sorted(kinds)}; add e.g. 'signed' or 'bits=8'"
        )
    bits_a, bits_b, signed = kinds.pop()
    exact_name = f"exact{bits_a}{'s' if signed else 'u'}" if bits_a == bits_b else None
    exact = next((e for e in entries if e.mae_pct == 0 and e.name == exact_name), None)
    if exact is None:
        exacts = [e for e in lib.query(bits=(bits_a, bits_b), signed=signed) if e.mae_pct == 0 and e.wce_pct == 0]
        if not exacts:
            raise ConfigError(f"the library has no exact {bits_a}x{bits_b} multiplier to measure energy against")
        exact = min(exacts, key=lambda e: e.name != exact_name)
    approximate_entries = [e for e in entries if not (e.mae_pct == 0 and e.wce_pct == 0)]
    return approximate_entries, exact


# ------------------------------------------------------------------------------------------- assignment


def parse_assignment(spec: str, exact: LayerConfig) -> AssignmentMapping:
    """``--assign`` text (see :meth:`AssignmentMapping.parse`); layers it does not name stay quantised-exact.

    ``layer=NAME,...`` lists without a ``default=`` item get ``exact`` (in the candidates' width and
    scheme) as their default instead of ``float``, and ``exact`` itself means that same config.
    """
    mapping = AssignmentMapping.parse(spec)
    is_list = "=" in spec and not spec.strip().lower().endswith(".json")
    if is_list and not re.search(r"(^|,)\s*(default|\*)\s*=", spec):
        mapping = mapping.with_default(exact)
    if mapping.default == LayerConfig("exact"):
        mapping = mapping.with_default(exact)
    return mapping


# ---------------------------------------------------------------------------------------------- the job


@torch.no_grad()
def accuracy(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, label: str, batch_size: int = 128, console: Console
) -> float:
    """Top-1 accuracy in percent with a progress bar."""
    model.eval()
    correct = 0
    with make_progress(console=console) as progress:
        task = add_task(progress, label, x.shape[0])
        for start in range(0, x.shape[0], batch_size):
            logits = model(x[start : start + batch_size])
            correct += int((logits.argmax(1) == y[start : start + batch_size]).sum())
            progress.update(task, advance=min(batch_size, x.shape[0] - start))
    return 100.0 * correct / max(1, x.shape[0])


def run_evaluate(options: EvaluateOptions, *, console: Console | None = None) -> EvaluateResult:
    """Run the evaluate job (progress and status on ``console``, stderr by default)."""
    console = console or Console(stderr=True)
    timings: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        timings[name] = round(now - clock, 2)
        clock = now

    torch.manual_seed(options.seed)
    if not math.isfinite(options.budget) or options.budget < 0:
        raise ConfigError(f"--budget must be a finite number >= 0 of accuracy points, got {options.budget}")
    if options.assign != "auto":
        AssignmentMapping.parse(options.assign)  # a bad assignment is reported before any training
    entries, exact_entry = library_candidates(options.candidates)  # and so are bad candidates
    loaded = float_model(
        options.model, dataset=options.dataset, data_dir=options.data, weights=options.weights, seed=options.seed
    )
    model, data = loaded.model, loaded.data
    notes = []
    if loaded.trained is not None:
        how = "cached" if loaded.trained.cached else f"trained in {loaded.trained.seconds:.0f} s"
        notes.append(f"float weights {how}: {loaded.weights}")
    model.eval()
    lap("model")

    limit = options.limit if options.limit is not None else data.x_test.shape[0]
    if limit <= 0:
        raise ConfigError(f"--limit must be positive, got {limit}")
    x_eval, y_eval = data.x_test[:limit], data.y_test[:limit]
    generator = torch.Generator().manual_seed(options.seed)
    pick = torch.randperm(data.x_train.shape[0], generator=generator)[: options.calibration_samples]
    x_calib = data.x_train[pick]
    calib_batches = [x_calib[i : i + options.batch_size] for i in range(0, x_calib.shape[0], options.batch_size)]

    scheme = "symmetric" if exact_entry.signed else "affine"
    exact_config = LayerConfig("exact", bits=(exact_entry.bits_a, exact_entry.bits_b), scheme=scheme)
    by_name = {e.name: e for e in entries} | {exact_entry.name: exact_entry}
    lap("setup")

    evaluate: Callable[[nn.Module, str], float] = lambda m, label: accuracy(  # noqa: E731
        m, x_eval, y_eval, label=label, batch_size=options.batch_size, console=console
    )
    float_accuracy = evaluate(model, "float accuracy")
    lap("float")
    qmodel = approximate(model, exact_config, calib_batches)
    macs_all = layer_macs(model, x_eval[:1])
    quantized_accuracy = evaluate(qmodel, "quantised-exact accuracy")
    lap("quantised")

    pareto: list[dict[str, Any]] = []
    if options.assign == "auto":
        candidates = [Candidate(e.name, load_multiplier(e.name), float(e.power_mw), float(e.mae_pct)) for e in entries]
        with console.status("auto assignment") as status:
            auto = auto_assign(
                model,
                qmodel,
                candidates,
                exact_power=float(exact_entry.power_mw),
                macs=macs_all,
                x_calib=x_calib,
                x_eval=x_eval,
                y_eval=y_eval,
                baseline_accuracy=quantized_accuracy,
                budget=options.budget,
                evaluate=evaluate,
                batch_size=options.batch_size,
                seed=options.seed,
                status=lambda msg: status.update(f"auto assignment: {msg}"),
            )
        approx_model = build_assigned(qmodel, auto.choice)
        approx_accuracy = auto.chosen.verified_accuracy
        assert approx_accuracy is not None
        mapping = auto.assignment(exact_config)
        # layers the search leaves exact (e.g. recurrent ones) still spend exact-multiplier energy
        other = sum(macs_all.get(n, 0) for n in approx_layers(qmodel) if n not in auto.choice)
        other_energy = other * float(exact_entry.power_mw)
        total = (auto.exact_energy + other_energy) or 1.0
        shift = quantized_accuracy - auto.float_accuracy
        for point in auto.path:
            if point.predicted_accuracy is None and point.verified_accuracy is None:
                continue
            pareto.append(
                {
                    "relative_energy": (point.energy + other_energy) / total,
                    "predicted_accuracy": None
                    if point.predicted_accuracy is None
                    else point.predicted_accuracy + shift,
                    "verified_accuracy": point.verified_accuracy,
                    "chosen": point is auto.chosen,
                }
            )
        notes.append(
            f"auto: {len(auto.path)} knapsack steps, {len(auto.verified)} verification run(s) with the LUT engine"
        )
    else:
        mapping = parse_assignment(options.assign, exact_config)
        approx_model = approximate(qmodel, mapping)
        if options.bias_correction:
            _apply_bias_correction(model, approx_model, calib_batches)
        approx_accuracy = evaluate(approx_model, "approximate accuracy")
    lap("approximate")

    rows = _layer_rows(approx_model, macs_all, by_name, exact_entry)
    energy = _relative_energy(rows, float(exact_entry.power_mw))
    return EvaluateResult(
        model=options.model,
        dataset=data.name,
        samples=int(x_eval.shape[0]),
        float_accuracy=float_accuracy,
        quantized_accuracy=quantized_accuracy,
        approx_accuracy=approx_accuracy,
        relative_energy=energy,
        layers=rows,
        assignment=mapping.to_dict(),
        budget=options.budget if options.assign == "auto" else None,
        pareto=pareto,
        seconds=timings,
        notes=notes,
    )


def _apply_bias_correction(float_model: nn.Module, approx_model: nn.Module, batches: list[torch.Tensor]) -> None:
    """Fold each LUT layer's predicted mean error into its bias (closed form, from one float pass)."""
    layers = approx_layers(approx_model)
    stats = record_operands(float_model, approx_model, batches)
    for name, layer_stats in stats.items():
        layer = layers[name]
        lut = layer.resolved.lut
        if lut is None:
            continue
        (prediction,) = predict_errors([lut], layer_stats.operands)
        mean, _ = layer_stats.output_moments(prediction)
        layer.set_bias_correction(torch.as_tensor(-mean, dtype=torch.float32))


def _layer_rows(model: nn.Module, macs: dict[str, int], entries: dict[str, Any], exact: Any) -> list[LayerRow]:
    rows = []
    for name, layer in approx_layers(model).items():
        multiplier = layer.multiplier_name
        entry = entries.get(multiplier)
        if entry is None and layer.resolved.is_exact_path:
            entry, multiplier = exact, exact.name
        if entry is None and layer.resolved.lut is not None:
            entry = _library_entry(multiplier)
        rows.append(
            LayerRow(
                name,
                int(macs.get(name, 0)),
                multiplier,
                None if entry is None else float(entry.mae_pct),
                None if entry is None else float(entry.power_mw),
            )
        )
    return rows


def _library_entry(name: str) -> Any:
    from ..errors import LibraryError
    from ..library import Library

    try:
        return Library.open_default().entry(name)
    except LibraryError:
        return None


def _relative_energy(rows: list[LayerRow], exact_power: float) -> float | None:
    total = sum(r.macs for r in rows)
    if total == 0 or any(r.power is None for r in rows if r.multiplier != "float"):
        return None
    used = sum(r.macs * (r.power if r.power is not None else exact_power) for r in rows)
    return used / (total * exact_power)


# ------------------------------------------------------------------------------------------- reporting


def render(result: EvaluateResult, console: Console) -> None:
    """Print the accuracies, the per-layer table, the energy and the front."""
    console.print(f"[bold]{result.model}[/bold] on {result.dataset} ({result.samples} test samples)")
    console.print(f"  float accuracy            {result.float_accuracy:6.2f} %")
    console.print(f"  quantised-exact accuracy  {result.quantized_accuracy:6.2f} %")
    drop = result.quantized_accuracy - result.approx_accuracy
    budget = f" (budget {result.budget:g})" if result.budget is not None else ""
    console.print(f"  approximate accuracy      {result.approx_accuracy:6.2f} %  drop {drop:+.2f} points{budget}")
    table = Table(title="per-layer assignment")
    for column in ("layer", "MACs", "multiplier", "MAE %", "power mW"):
        table.add_column(column, justify="left" if column in ("layer", "multiplier") else "right")
    for row in result.layers:
        table.add_row(
            row.name,
            f"{row.macs:,}",
            row.multiplier,
            "-" if row.mae is None else f"{row.mae:.4g}",
            "-" if row.power is None else f"{row.power:.4f}",
        )
    console.print(table)
    if result.relative_energy is None:
        console.print("relative multiplier energy: unknown (a multiplier has no power figure)")
    else:
        saved = 100 * (1 - result.relative_energy)
        console.print(f"relative multiplier energy: {result.relative_energy:.3f} of exact ({saved:.1f} % saved)")
    if result.pareto:
        front = Table(title="energy-accuracy front (predicted; verified where run)")
        for column in ("relative energy", "predicted acc %", "verified acc %", "assignment"):
            front.add_column(column, justify="right")
        for point in result.pareto:
            front.add_row(
                f"{point['relative_energy']:.3f}",
                "-" if point["predicted_accuracy"] is None else f"{point['predicted_accuracy']:.2f}",
                "-" if point["verified_accuracy"] is None else f"{point['verified_accuracy']:.2f}",
                "chosen" if point["chosen"] else "",
            )
        console.print(front)
    for note in result.notes:
        console.print(f"[dim]{note}[/dim]")
    console.print(f"[dim]time: {', '.join(f'{k} {v:.1f}s' for k, v in result.seconds.items())}[/dim]")


def plot_pareto(result: EvaluateResult, path: Path) -> None:
    """Write the energy-accuracy front (predicted line, verified points) as an image."""
    if not result.pareto:
        raise ConfigError("--plot needs --assign auto (the front comes from the search)")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    predicted = [(p["relative_energy"], p["predicted_accuracy"]) for p in result.pareto if p["predicted_accuracy"]]
    verified = [(p["relative_energy"], p["verified_accuracy"]) for p in result.pareto if p["verified_accuracy"]]
    fig, ax = plt.subplots(figsize=(6, 4))
    if predicted:
        xs, ys = np.array(predicted).T
        ax.plot(xs, ys, "o-", label="predicted (low-rank error simulation)")
    if verified:
        xs, ys = np.array(verified).T
        ax.plot(xs, ys, "s", color="tab:red", markersize=8, label="verified (LUT engine)")
    ax.axhline(result.quantized_accuracy, color="grey", linestyle=":", label="quantised exact")
    if result.budget is not None:
        ax.axhline(result.quantized_accuracy - result.budget, color="tab:orange", linestyle="--", label="budget")
    ax.set_xlabel("relative multiplier energy")
    ax.set_ylabel("accuracy (%)")
    ax.set_title(f"{result.model} on {result.dataset}")
    ax.legend(loc="lower right")
    fig.tight_layout()
    image = io.BytesIO()
    try:
        fig.savefig(image, dpi=120, format=path.suffix.lstrip(".").lower() or "png")
    except ValueError as error:
        raise InputError(f"{path}: cannot write a plot in this format ({error})") from None
    finally:
        plt.close(fig)
    atomic_write_bytes(path, image.getvalue())


def save_assignment(result: EvaluateResult, path: Path) -> None:
    """Write the assignment JSON (readable by ``--assign file.json``)."""
    atomic_write_text(path, json.dumps(result.assignment, indent=2) + "\n")
