"""STE vs difference-based gradient LUTs: how much accuracy retraining wins back, per multiplier and protocol.

Reproduces the comparison of the DATE'25 gradient-approximation paper at laptop scale: one trained
float model per seed; for each retraining protocol (``--protocols``: lutgen's default and ``date25``,
the reference code's Adam, convolutions only, running activation ranges; see
``approxlut.nn.protocol``) and each approximate multiplier, the test accuracy before retraining, then
the same number of epochs with the same seed, once with the straight-through estimator (exact-product
gradients) and once with the multiplier's own gradient LUTs. Every run has the divergence guard
(``--no-guard`` turns it off) and runs deterministically with ``--threads`` intra-op threads (1 by
default). ``--seeds 0,1,2`` repeats the whole protocol per seed (its own train/test split, float model
and shuffle; the half windows come from the library cache, so each multiplier keeps one ``w`` per
protocol). Writes, under ``--out``:

* ``retrain_epochs.csv``   one row per (seed, protocol, multiplier, gradient mode, epoch); epoch 0 is before;
* ``retrain_summary.csv``  one row per (seed, protocol, multiplier): before, after STE, after difference,
  the guard's back-offs per mode, and the SHA-256 of the seed's float weights (another machine that
  prints the same hash started from the same model);
* ``retrain_summary.md``   the same as a Markdown table;
* ``retrain_seeds.csv``    one row per (protocol, multiplier) over the seeds: mean and standard deviation
  per mode, the paired mean of difference − STE, wins/ties/losses of difference, the two-sided sign
  test over the untied seeds, and the runs that ended at chance level;
* ``retrain_seeds.md``     the same as a Markdown table;
* ``retrain_guard.csv``    every blow-up the divergence guard caught, and what it did;
* ``retrain_accuracy.png`` test accuracy per epoch, one panel per (protocol, multiplier): the mean over
  the seeds per mode with a band from the lowest to the highest seed.

Default (built-in digits, LeNet-5 at 16x16, five multipliers, 5 epochs, both protocols): about a
minute per seed on one CPU core once the half windows are cached. Full version: ``--data DIR`` with
CIFAR-10's python batches, e.g. ``--data ~/cifar10 --model resnet18 --epochs 30`` (retraining runs on
CUDA when torch has it).

Run from the repository root:  .venv/bin/python experiments/retrain_compare.py --out experiments/results
"""

from __future__ import annotations

import argparse
import csv
import io
import math
import statistics
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from approxlut.errors import LutgenError
from approxlut.fileio import atomic_write_bytes, atomic_write_text, make_dirs
from approxlut.nn.config import AssignmentMapping, LayerConfig
from approxlut.nn.data import load_dataset
from approxlut.nn.multipliers import load_multiplier
from approxlut.nn.protocol import PROTOCOLS
from approxlut.nn.reproducible import deterministic, state_sha256
from approxlut.nn.retrain import (
    CHANCE_MARGIN,
    EpochRecord,
    RetrainConfig,
    prepare_model,
    retrain,
    test_accuracy,
)
from approxlut.nn.train import default_recipe, trained_weights
from approxlut.nn.zoo import build_model, model_spec

#: Low to very high error: a 7-bit one, then 8-bit ones by rising MAE (built-in library names).
DEFAULT_MULTIPLIERS = ("drum7s_k4", "mitchell8u", "drum8u_k4", "trunc8s_k8", "drum8u_k3")
EPOCH_FIELDS = ("seed", "protocol", "multiplier", "bits", "signed", "mae_pct", "grad", "half_window", "epoch",
                "train_loss", "train_accuracy", "test_accuracy", "seconds")  # fmt: skip
SUMMARY_FIELDS = ("seed", "protocol", "multiplier", "bits", "signed", "mae_pct", "float_accuracy",
                  "exact_quantised_accuracy", "before", "after_ste", "after_difference", "half_window",
                  "ste_backoffs", "difference_backoffs", "float_sha256")  # fmt: skip
SEEDS_FIELDS = ("protocol", "multiplier", "bits", "signed", "mae_pct", "half_window", "seeds",
                "exact_quantised_mean", "before_mean", "before_std", "ste_mean", "ste_std", "difference_mean",
                "difference_std", "paired_mean", "paired_std", "difference_ge_ste", "wins", "ties", "losses",
                "sign_test_p", "ste_at_chance", "difference_at_chance", "ste_backoffs",
                "difference_backoffs")  # fmt: skip
GUARD_FIELDS = ("seed", "protocol", "multiplier", "grad", "epoch", "step", "reason", "loss", "grad_norm", "action")
MODES = (("ste", "STE", "--o"), ("difference", "difference LUT", "-s"))


def parse_list(text: str, known: tuple[str, ...], option: str) -> list[str]:
    """``"a,b"`` -> ``["a", "b"]``, each one of ``known`` and none twice."""
    items = [part.strip() for part in text.split(",") if part.strip()]
    unknown = [i for i in items if i not in known]
    if not items or unknown or len(set(items)) != len(items):
        raise argparse.ArgumentTypeError(f"{option} {text!r}: expected distinct names from {', '.join(known)}")
    return items


def parse_seeds(text: str) -> list[int]:
    """``"0,1,2"`` -> ``[0, 1, 2]`` (distinct non-negative ints, in the order given)."""
    try:
        seeds = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--seeds {text!r}: expected comma-separated integers") from None
    if not seeds or len(set(seeds)) != len(seeds) or min(seeds) < 0:
        raise argparse.ArgumentTypeError(f"--seeds {text!r}: expected distinct non-negative integers")
    return seeds


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("experiments/results"), help="output folder")
    parser.add_argument("--data", type=Path, help="CIFAR-10 (python batches) or MNIST folder; default: digits")
    parser.add_argument("--model", default=None, help="zoo model (default: lenet5 on digits, resnet18 otherwise)")
    parser.add_argument("--size", type=int, default=None, help="input side (default: 16 on digits, else the model's)")
    parser.add_argument("--multipliers", default=",".join(DEFAULT_MULTIPLIERS), help="comma-separated names")
    parser.add_argument(
        "--protocols",
        type=lambda t: parse_list(t, tuple(PROTOCOLS), "--protocols"),
        default=list(PROTOCOLS),
        help=f"retraining protocols to run (comma-separated; default {','.join(PROTOCOLS)})",
    )
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--lr", type=float, default=None, help="peak learning rate (default: each protocol's)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--half-window", default="auto", help="int, or 'auto' (the paper's per-multiplier search)")
    seeds = parser.add_mutually_exclusive_group()
    seeds.add_argument("--seed", type=int, default=0, help="one seed (default 0)")
    seeds.add_argument("--seeds", type=parse_seeds, help="comma-separated seeds, each a full run of the protocol")
    parser.add_argument(
        "--grads",
        type=lambda t: parse_list(t, ("ste", "difference"), "--grads"),
        default=["ste", "difference"],
        help="gradient modes to run (comma-separated)",
    )
    parser.add_argument("--search-steps", type=int, default=30, help="steps per half-window trial (auto)")
    parser.add_argument("--threads", type=int, default=1, help="intra-op threads of every run (fixed: reproducible)")
    parser.add_argument("--no-guard", dest="guard", action="store_false", help="retrain without the divergence guard")
    args = parser.parse_args(argv)
    if args.seeds is None:
        args.seeds = [args.seed]
    if args.threads < 1:
        parser.error("--threads must be at least 1")
    return args


def write_csv(path: Path, fields: tuple[str, ...], rows: list[dict[str, Any]]) -> None:
    text = io.StringIO(newline="")
    writer = csv.DictWriter(text, fieldnames=fields)
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, text.getvalue())


def _mean(values: list[float]) -> float | str:
    return statistics.fmean(values) if values else ""


def _std(values: list[float]) -> float | str:
    """The sample standard deviation (n - 1); empty where it is undefined (fewer than two values)."""
    return statistics.stdev(values) if len(values) >= 2 else ""


def sign_test(wins: int, losses: int) -> float | str:
    """Two-sided exact sign test of ``wins`` against ``losses`` (ties left out); empty without untied pairs."""
    n = wins + losses
    if n == 0:
        return ""
    tail = sum(math.comb(n, k) for k in range(min(wins, losses) + 1)) / 2**n
    return min(1.0, 2 * tail)


def at_chance(accuracy: float, num_classes: int = 10) -> bool:
    """Whether a final accuracy is at chance level (the threshold of retraining's warning)."""
    return accuracy <= CHANCE_MARGIN * 100.0 / num_classes


def aggregate(summary: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (protocol, multiplier), first-seen order, over the seeds of ``summary`` (``SUMMARY_FIELDS``).

    Accuracies that were not measured (a mode that was not run) are ``""`` in the input and are left
    out; the paired figures use only the seeds that have both modes.
    """
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for row in summary:
        groups.setdefault((row["protocol"], row["multiplier"]), []).append(row)
    out: list[dict[str, Any]] = []
    for (protocol, name), rows in groups.items():

        def measured(key: str, rows: list[dict[str, Any]] = rows) -> list[float]:
            return [float(r[key]) for r in rows if r[key] != ""]

        pairs = [(float(r["after_ste"]), float(r["after_difference"])) for r in rows
                 if r["after_ste"] != "" and r["after_difference"] != ""]  # fmt: skip
        wins = sum(d > s for s, d in pairs)
        losses = sum(d < s for s, d in pairs)
        windows = sorted({str(r["half_window"]) for r in rows if r["half_window"] != ""}, key=lambda w: (len(w), w))
        first = rows[0]
        out.append({
            "protocol": protocol, "multiplier": name, "bits": first["bits"], "signed": first["signed"],
            "mae_pct": first["mae_pct"], "half_window": "/".join(windows), "seeds": len({r["seed"] for r in rows}),
            "exact_quantised_mean": _mean(measured("exact_quantised_accuracy")),
            "before_mean": _mean(measured("before")), "before_std": _std(measured("before")),
            "ste_mean": _mean(measured("after_ste")), "ste_std": _std(measured("after_ste")),
            "difference_mean": _mean(measured("after_difference")),
            "difference_std": _std(measured("after_difference")),
            "paired_mean": _mean([d - s for s, d in pairs]), "paired_std": _std([d - s for s, d in pairs]),
            "difference_ge_ste": f"{sum(d >= s for s, d in pairs)}/{len(pairs)}" if pairs else "",
            "wins": wins if pairs else "", "ties": len(pairs) - wins - losses if pairs else "",
            "losses": losses if pairs else "", "sign_test_p": sign_test(wins, losses),
            "ste_at_chance": sum(at_chance(v) for v in measured("after_ste")),
            "difference_at_chance": sum(at_chance(v) for v in measured("after_difference")),
            "ste_backoffs": int(sum(measured("ste_backoffs"))),
            "difference_backoffs": int(sum(measured("difference_backoffs"))),
        })  # fmt: skip
    return out


def epoch_bands(epochs: list[dict[str, Any]]) -> dict[tuple[str, str, str], list[tuple[int, float, float, float]]]:
    """``(protocol, multiplier, grad)`` -> ``[(epoch, mean, min, max)]`` of the test accuracy over the seeds."""
    values: dict[tuple[str, str, str], dict[int, list[float]]] = {}
    for e in epochs:
        per_epoch = values.setdefault((e["protocol"], e["multiplier"], e["grad"]), {})
        per_epoch.setdefault(int(e["epoch"]), []).append(float(e["test_accuracy"]))
    return {
        key: [(epoch, statistics.fmean(v), min(v), max(v)) for epoch, v in sorted(per_epoch.items())]
        for key, per_epoch in values.items()
    }


def markdown(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| seed | protocol | multiplier | bits | MAE % | quantised exact | before | after STE | after diff. (w) "
        "| diff. − STE | back-offs STE/diff. | float weights (SHA-256) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        ste, diff = r["after_ste"], r["after_difference"]
        gain = f"{diff - ste:+.2f}" if isinstance(ste, float) and isinstance(diff, float) else ""
        lines.append(
            f"| {r['seed']} | {r['protocol']} | {r['multiplier']} | {r['bits']}{'s' if r['signed'] else 'u'} | "
            f"{r['mae_pct']:.3f} | {r['exact_quantised_accuracy']:.2f} | {_fmt(r['before'])} | {_fmt(ste)} | "
            f"{_fmt(diff)} ({r['half_window']}) | {gain} | {r['ste_backoffs']}/{r['difference_backoffs']} | "
            f"{r['float_sha256'][:16]} |"
        )
    return "\n".join(lines) + "\n"


def markdown_seeds(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| protocol | multiplier | bits | MAE % | w | seeds | quantised exact | before | after STE | after difference "
        "| difference − STE (paired) | wins/ties/losses | sign test p | at chance STE/diff. | back-offs STE/diff. |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        record = f"{r['wins']}/{r['ties']}/{r['losses']}" if r["wins"] != "" else ""
        p = f"{r['sign_test_p']:.2f}" if isinstance(r["sign_test_p"], float) else ""
        lines.append(
            f"| {r['protocol']} | {r['multiplier']} | {r['bits']}{'s' if r['signed'] else 'u'} | {r['mae_pct']:.3f} | "
            f"{r['half_window']} | {r['seeds']} | {_fmt(r['exact_quantised_mean'])} | "
            f"{_pm(r['before_mean'], r['before_std'])} | {_pm(r['ste_mean'], r['ste_std'])} | "
            f"{_pm(r['difference_mean'], r['difference_std'])} | {_pm(r['paired_mean'], r['paired_std'], '+')} | "
            f"{record} | {p} | {r['ste_at_chance']}/{r['difference_at_chance']} | "
            f"{r['ste_backoffs']}/{r['difference_backoffs']} |"
        )
    return "\n".join(lines) + "\n"


def _fmt(value: Any, sign: str = "") -> str:
    return f"{value:{sign}.2f}" if isinstance(value, float) else str(value)


def _pm(mean: Any, std: Any, sign: str = "") -> str:
    """``mean ± std`` (just the mean where the deviation is undefined)."""
    return _fmt(mean, sign) + (f" ± {std:.2f}" if isinstance(std, float) else "")


def plot(path: Path, epochs: list[dict[str, Any]], seeds: list[dict[str, Any]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    bands = epoch_bands(epochs)
    protocols = list(dict.fromkeys(r["protocol"] for r in seeds))
    names = list(dict.fromkeys(r["multiplier"] for r in seeds))
    rows, cols = len(protocols), len(names)
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 3.0 * rows), squeeze=False)
    for row in seeds:
        ax = axes[protocols.index(row["protocol"])][names.index(row["multiplier"])]
        for grad, label, style in MODES:
            band = bands.get((row["protocol"], row["multiplier"], grad))
            if band:
                epoch, mean, lo, hi = zip(*band, strict=True)
                (line,) = ax.plot(epoch, mean, style, label=f"{label} (mean)", ms=3)
                ax.fill_between(epoch, lo, hi, color=line.get_color(), alpha=0.18, lw=0, label=f"{label} (min–max)")
        ax.axhline(row["exact_quantised_mean"], color="grey", lw=0.8, ls=":", label="quantised exact (mean)")
        ax.set_title(f"{row['protocol']}: {row['multiplier']} ({row['seeds']} seeds)", fontsize=9)
        ax.set_xlabel("epoch")
        ax.set_ylabel("test accuracy %")
        ax.set_ylim(0, 100)
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    image = io.BytesIO()
    fig.savefig(image, dpi=110, format="png")
    plt.close(fig)
    atomic_write_bytes(path, image.getvalue())


def write_outputs(
    out: Path, epoch_rows: list[dict[str, Any]], summary: list[dict[str, Any]], guard_rows: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Write every output file from the rows so far; return the summary over the seeds."""
    epoch_rows.sort(key=lambda r: (r["seed"], r["protocol"], r["multiplier"], r["grad"], r["epoch"]))
    write_csv(out / "retrain_epochs.csv", EPOCH_FIELDS, epoch_rows)
    write_csv(out / "retrain_summary.csv", SUMMARY_FIELDS, summary)
    atomic_write_text(out / "retrain_summary.md", markdown(summary))
    seeds = aggregate(summary)
    write_csv(out / "retrain_seeds.csv", SEEDS_FIELDS, seeds)
    atomic_write_text(out / "retrain_seeds.md", markdown_seeds(seeds))
    write_csv(out / "retrain_guard.csv", GUARD_FIELDS, guard_rows)
    plot(out / "retrain_accuracy.png", epoch_rows, seeds)
    return seeds


def run_seed(
    args: argparse.Namespace,
    seed: int,
    epoch_rows: list[dict[str, Any]],
    summary: list[dict[str, Any]],
    guard_rows: list[dict[str, Any]],
) -> None:
    """The whole comparison for one seed; appends its rows and rewrites the outputs after each multiplier."""
    torch.manual_seed(seed)
    dataset = load_dataset(None, args.data, seed=seed)
    model_name = args.model or ("lenet5" if dataset.name == "digits" else "resnet18")
    spec = model_spec(model_name)
    size = args.size or (16 if dataset.name == "digits" else spec.size)
    channels = spec.channels if dataset.x_train.shape[1] == spec.channels else dataset.x_train.shape[1]
    recipe = default_recipe(spec, dataset.name)
    kwargs: dict[str, Any] = {"num_classes": dataset.num_classes, "in_channels": channels, "input_size": size}
    if spec.scalable:
        kwargs["width"] = recipe.width
    data = dataset.prepare(input_kind=spec.input_kind, channels=channels, size=size)
    model = build_model(model_name, **kwargs)
    trained = trained_weights(spec, model, kwargs, data, recipe.config)
    float_sha256 = state_sha256(model.state_dict())
    model.to("cuda" if torch.cuda.is_available() else "cpu")  # retraining runs where the model is
    float_accuracy = test_accuracy(model, data)
    half_window: int | str = args.half_window if args.half_window == "auto" else int(args.half_window)
    print(
        f"seed {seed}: {model_name} on {dataset.name} ({size}x{size}), float accuracy {float_accuracy:.2f} %, "
        f"weights sha256 {float_sha256} ({trained.path})"
    )

    from approxlut.library import Library

    library = Library.open_default()
    started = time.perf_counter()
    for protocol in args.protocols:
        for name in [n.strip() for n in args.multipliers.split(",") if n.strip()]:
            entry = library.entry(name)
            lut = load_multiplier(name)
            base = RetrainConfig(protocol=protocol, batch_size=args.batch_size, seed=seed, threads=args.threads)
            exact = LayerConfig("exact", bits=(lut.bits_a, lut.bits_b), scheme="symmetric" if lut.signed else "affine")
            exact_model = prepare_model(model, data, AssignmentMapping.build(exact), base)
            exact_accuracy = test_accuracy(exact_model, data)
            row: dict[str, Any] = {
                "seed": seed, "protocol": protocol, "multiplier": name, "bits": lut.bits_a, "signed": lut.signed,
                "mae_pct": entry.mae_pct, "float_accuracy": float_accuracy, "exact_quantised_accuracy": exact_accuracy,
                "before": "", "after_ste": "", "after_difference": "", "half_window": "",
                "ste_backoffs": "", "difference_backoffs": "", "float_sha256": float_sha256,
            }  # fmt: skip
            summary.append(row)
            for grad in args.grads:
                config = RetrainConfig(
                    grad=grad,
                    half_window=half_window if grad == "difference" else 8,
                    epochs=args.epochs,
                    lr=args.lr,
                    batch_size=args.batch_size,
                    seed=seed,
                    protocol=protocol,
                    guard=args.guard,
                    threads=args.threads,
                )
                tags = {"seed": seed, "protocol": protocol, "multiplier": name, "bits": lut.bits_a}
                tags |= {"signed": lut.signed, "mae_pct": entry.mae_pct, "grad": grad, "half_window": ""}

                def log(record: EpochRecord, tags: dict[str, Any] = tags) -> None:
                    epoch_rows.append({**tags, **{k: v for k, v in asdict(record).items() if k in EPOCH_FIELDS}})
                    write_csv(args.out / "retrain_epochs.csv", EPOCH_FIELDS, epoch_rows)
                    print(
                        f"  seed {seed} {tags['protocol']} {tags['multiplier']} {tags['grad']:10s} epoch "
                        f"{record.epoch}: test {record.test_accuracy:6.2f} % loss {record.train_loss:.3f} "
                        f"({record.seconds:.1f} s)",
                        flush=True,
                    )

                if grad == "difference" and half_window == "auto":
                    from approxlut.nn.halfwindow import choose_half_windows

                    with deterministic(args.threads):
                        choice = choose_half_windows(
                            model, data, AssignmentMapping.build(name), config=config, steps=args.search_steps
                        )
                    row["half_window"] = choice[lut.hash].half_window
                elif grad == "difference":
                    row["half_window"] = half_window
                if grad == "difference":
                    tags["half_window"] = row["half_window"]
                result = retrain(model, data, name, config=config, on_epoch=log, verbose=sys.stderr.isatty())
                row["before"] = result.before_accuracy
                row[f"after_{grad}"] = result.after_accuracy
                row[f"{grad}_backoffs"] = len(result.guard_events)
                for event in result.guard_events:
                    guard_rows.append({"seed": seed, "protocol": protocol, "multiplier": name, "grad": grad,
                                       **event.to_dict()})  # fmt: skip
                before = {"epoch": 0, "train_loss": "", "train_accuracy": "", "seconds": 0.0}
                epoch_rows.append({**tags, **before, "test_accuracy": result.before_accuracy})
            write_outputs(args.out, epoch_rows, summary, guard_rows)
            print(
                f"seed {seed} {protocol} {name}: quantised exact {exact_accuracy:.2f} %, before "
                f"{_fmt(row['before'])} %, STE {_fmt(row['after_ste'])} %, difference "
                f"{_fmt(row['after_difference'])} % [{time.perf_counter() - started:.0f} s]",
                flush=True,
            )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    make_dirs(args.out)
    epoch_rows: list[dict[str, Any]] = []
    summary: list[dict[str, Any]] = []
    guard_rows: list[dict[str, Any]] = []
    started = time.perf_counter()
    for seed in args.seeds:
        run_seed(args, seed, epoch_rows, summary, guard_rows)
    seeds = write_outputs(args.out, epoch_rows, summary, guard_rows)
    print()
    print(markdown(summary))
    print(markdown_seeds(seeds))
    print(f"{len(args.seeds)} seed(s) in {time.perf_counter() - started:.0f} s with {args.threads} thread(s)")
    print(
        f"wrote {args.out}/retrain_epochs.csv, retrain_summary.csv/.md, retrain_seeds.csv/.md, retrain_guard.csv, "
        "retrain_accuracy.png"
    )
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except LutgenError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(error.exit_code)
