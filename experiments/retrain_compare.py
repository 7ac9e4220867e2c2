"""STE vs difference-based gradient LUTs: how much accuracy retraining wins back, per multiplier.

Reproduces the comparison of the DATE'25 gradient-approximation paper at laptop scale: one trained
float model; for each approximate multiplier, every layer runs through it; the test accuracy before
retraining, then the same number of epochs with the same seed and hyperparameters, once with the
straight-through estimator (exact-product gradients) and once with the multiplier's own gradient
LUTs. ``--seeds 0,1,2`` repeats the whole protocol per seed (its own train/test split, float model
and shuffle; the half windows come from the library cache, so each multiplier keeps one ``w``).
Writes, under ``--out``:

* ``retrain_epochs.csv``   one row per (seed, multiplier, gradient mode, epoch); epoch 0 is before retraining;
* ``retrain_summary.csv``  one row per (seed, multiplier): before, after STE, after difference;
* ``retrain_summary.md``   the same as a Markdown table;
* ``retrain_seeds.csv``    one row per multiplier over the seeds: mean and standard deviation per mode,
  the paired mean of difference − STE and the number of seeds where difference >= STE;
* ``retrain_seeds.md``     the same as a Markdown table;
* ``retrain_accuracy.png`` test accuracy per epoch, one panel per multiplier: the mean over the seeds
  per mode with a band from the lowest to the highest seed.

Default (built-in digits, LeNet-5 at 16x16, five multipliers, 5 epochs): about 5-10 minutes per seed on
one CPU core once the half windows are cached. Full version: ``--data DIR`` with CIFAR-10's python
batches, e.g. ``--data ~/cifar10 --model resnet18 --epochs 30``.

Run from the repository root:  .venv/bin/python experiments/retrain_compare.py --out experiments/results
"""

from __future__ import annotations

import argparse
import csv
import statistics
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from approxlut.errors import LutgenError
from approxlut.nn.config import LayerConfig
from approxlut.nn.data import load_dataset
from approxlut.nn.multipliers import load_multiplier
from approxlut.nn.retrain import EpochRecord, RetrainConfig, retrain, test_accuracy
from approxlut.nn.swap import approximate
from approxlut.nn.train import default_recipe, trained_weights
from approxlut.nn.zoo import build_model, model_spec

#: Low to very high error: a 7-bit one, then 8-bit ones by rising MAE (built-in library names).
DEFAULT_MULTIPLIERS = ("drum7s_k4", "mitchell8u", "drum8u_k4", "trunc8s_k8", "drum8u_k3")
EPOCH_FIELDS = ("seed", "multiplier", "bits", "signed", "mae_pct", "grad", "half_window", "epoch", "train_loss",
                "train_accuracy", "test_accuracy", "seconds")  # fmt: skip
SUMMARY_FIELDS = ("seed", "multiplier", "bits", "signed", "mae_pct", "float_accuracy", "exact_quantised_accuracy",
                  "before", "after_ste", "after_difference", "half_window")  # fmt: skip
SEEDS_FIELDS = ("multiplier", "bits", "signed", "mae_pct", "half_window", "seeds", "exact_quantised_mean",
                "before_mean", "before_std", "ste_mean", "ste_std", "difference_mean", "difference_std",
                "paired_mean", "paired_std", "difference_ge_ste")  # fmt: skip
MODES = (("ste", "STE", "--o"), ("difference", "difference LUT", "-s"))


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
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--half-window", default="auto", help="int, or 'auto' (the paper's per-multiplier search)")
    seeds = parser.add_mutually_exclusive_group()
    seeds.add_argument("--seed", type=int, default=0, help="one seed (default 0)")
    seeds.add_argument("--seeds", type=parse_seeds, help="comma-separated seeds, each a full run of the protocol")
    parser.add_argument("--grads", default="ste,difference", help="gradient modes to run (comma-separated)")
    parser.add_argument("--search-steps", type=int, default=30, help="steps per half-window trial (auto)")
    args = parser.parse_args(argv)
    if args.seeds is None:
        args.seeds = [args.seed]
    return args


def write_csv(path: Path, fields: tuple[str, ...], rows: list[dict[str, Any]]) -> None:
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    tmp.replace(path)


def _mean(values: list[float]) -> float | str:
    return statistics.fmean(values) if values else ""


def _std(values: list[float]) -> float | str:
    """The sample standard deviation (n - 1); empty where it is undefined (fewer than two values)."""
    return statistics.stdev(values) if len(values) >= 2 else ""


def aggregate(summary: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per multiplier (first-seen order) over the seeds of ``summary`` (rows as in ``SUMMARY_FIELDS``).

    Accuracies that were not measured (a mode that was not run) are ``""`` in the input and are left
    out; the paired figures use only the seeds that have both modes.
    """
    groups: dict[str, list[dict[str, Any]]] = {}
    for row in summary:
        groups.setdefault(row["multiplier"], []).append(row)
    out: list[dict[str, Any]] = []
    for name, rows in groups.items():

        def measured(key: str, rows: list[dict[str, Any]] = rows) -> list[float]:
            return [float(r[key]) for r in rows if r[key] != ""]

        pairs = [(float(r["after_ste"]), float(r["after_difference"])) for r in rows
                 if r["after_ste"] != "" and r["after_difference"] != ""]  # fmt: skip
        windows = sorted({str(r["half_window"]) for r in rows if r["half_window"] != ""}, key=lambda w: (len(w), w))
        first = rows[0]
        out.append({
            "multiplier": name, "bits": first["bits"], "signed": first["signed"], "mae_pct": first["mae_pct"],
            "half_window": "/".join(windows), "seeds": len({r["seed"] for r in rows}),
            "exact_quantised_mean": _mean(measured("exact_quantised_accuracy")),
            "before_mean": _mean(measured("before")), "before_std": _std(measured("before")),
            "ste_mean": _mean(measured("after_ste")), "ste_std": _std(measured("after_ste")),
            "difference_mean": _mean(measured("after_difference")),
            "difference_std": _std(measured("after_difference")),
            "paired_mean": _mean([d - s for s, d in pairs]), "paired_std": _std([d - s for s, d in pairs]),
            "difference_ge_ste": f"{sum(d >= s for s, d in pairs)}/{len(pairs)}" if pairs else "",
        })  # fmt: skip
    return out


def epoch_bands(epochs: list[dict[str, Any]]) -> dict[tuple[str, str], list[tuple[int, float, float, float]]]:
    """``(multiplier, grad)`` -> ``[(epoch, mean, min, max)]`` of the test accuracy over the seeds."""
    values: dict[tuple[str, str], dict[int, list[float]]] = {}
    for e in epochs:
        per_epoch = values.setdefault((e["multiplier"], e["grad"]), {})
        per_epoch.setdefault(int(e["epoch"]), []).append(float(e["test_accuracy"]))
    return {
        key: [(epoch, statistics.fmean(v), min(v), max(v)) for epoch, v in sorted(per_epoch.items())]
        for key, per_epoch in values.items()
    }


def markdown(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| seed | multiplier | bits | MAE % | quantised exact | before | after STE | after diff. (w) | diff. − STE |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        ste, diff = r["after_ste"], r["after_difference"]
        gain = f"{diff - ste:+.2f}" if isinstance(ste, float) and isinstance(diff, float) else ""
        lines.append(
            f"| {r['seed']} | {r['multiplier']} | {r['bits']}{'s' if r['signed'] else 'u'} | {r['mae_pct']:.3f} | "
            f"{r['exact_quantised_accuracy']:.2f} | {_fmt(r['before'])} | {_fmt(ste)} | "
            f"{_fmt(diff)} ({r['half_window']}) | {gain} |"
        )
    return "\n".join(lines) + "\n"


def markdown_seeds(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| multiplier | bits | MAE % | w | seeds | quantised exact | before | after STE | after difference "
        "| difference − STE (paired) | difference ≥ STE |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['multiplier']} | {r['bits']}{'s' if r['signed'] else 'u'} | {r['mae_pct']:.3f} | "
            f"{r['half_window']} | {r['seeds']} | {_fmt(r['exact_quantised_mean'])} | "
            f"{_pm(r['before_mean'], r['before_std'])} | {_pm(r['ste_mean'], r['ste_std'])} | "
            f"{_pm(r['difference_mean'], r['difference_std'])} | {_pm(r['paired_mean'], r['paired_std'], '+')} | "
            f"{r['difference_ge_ste']} |"
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
    cols = min(3, len(seeds))
    rows = (len(seeds) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), squeeze=False)
    for ax, row in zip(axes.flat, seeds, strict=False):
        for grad, label, style in MODES:
            band = bands.get((row["multiplier"], grad))
            if band:
                epoch, mean, lo, hi = zip(*band, strict=True)
                (line,) = ax.plot(epoch, mean, style, label=f"{label} (mean)", ms=3)
                ax.fill_between(epoch, lo, hi, color=line.get_color(), alpha=0.18, lw=0, label=f"{label} (min–max)")
        ax.axhline(row["exact_quantised_mean"], color="grey", lw=0.8, ls=":", label="quantised exact (mean)")
        ax.set_title(f"{row['multiplier']} (MAE {row['mae_pct']:.2f} %, {row['seeds']} seeds)", fontsize=9)
        ax.set_xlabel("epoch")
        ax.set_ylabel("test accuracy %")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(seeds) :]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_outputs(out: Path, epoch_rows: list[dict[str, Any]], summary: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Write every output file from the rows so far; return the summary over the seeds."""
    epoch_rows.sort(key=lambda r: (r["seed"], r["multiplier"], r["grad"], r["epoch"]))
    write_csv(out / "retrain_epochs.csv", EPOCH_FIELDS, epoch_rows)
    write_csv(out / "retrain_summary.csv", SUMMARY_FIELDS, summary)
    (out / "retrain_summary.md").write_text(markdown(summary))
    seeds = aggregate(summary)
    write_csv(out / "retrain_seeds.csv", SEEDS_FIELDS, seeds)
    (out / "retrain_seeds.md").write_text(markdown_seeds(seeds))
    plot(out / "retrain_accuracy.png", epoch_rows, seeds)
    return seeds


def run_seed(
    args: argparse.Namespace, seed: int, epoch_rows: list[dict[str, Any]], summary: list[dict[str, Any]]
) -> None:
    """The whole protocol for one seed; appends its rows and rewrites the outputs after each multiplier."""
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
    model.to("cuda" if torch.cuda.is_available() else "cpu")  # retraining runs where the model is
    float_accuracy = test_accuracy(model, data)
    half_window: int | str = args.half_window if args.half_window == "auto" else int(args.half_window)
    print(
        f"seed {seed}: {model_name} on {dataset.name} ({size}x{size}), float accuracy {float_accuracy:.2f} % "
        f"({trained.path})"
    )

    from approxlut.library import Library

    library = Library.open_default()
    started = time.perf_counter()
    for name in [n.strip() for n in args.multipliers.split(",") if n.strip()]:
        entry = library.entry(name)
        lut = load_multiplier(name)
        exact = LayerConfig("exact", bits=(lut.bits_a, lut.bits_b), scheme="symmetric" if lut.signed else "affine")
        calib = [data.x_train[i : i + args.batch_size] for i in range(0, 4 * args.batch_size, args.batch_size)]
        exact_accuracy = test_accuracy(approximate(model, exact, calib), data)
        row: dict[str, Any] = {
            "seed": seed, "multiplier": name, "bits": lut.bits_a, "signed": lut.signed, "mae_pct": entry.mae_pct,
            "float_accuracy": float_accuracy, "exact_quantised_accuracy": exact_accuracy,
            "before": "", "after_ste": "", "after_difference": "", "half_window": "",
        }  # fmt: skip
        summary.append(row)
        for grad in [g.strip() for g in args.grads.split(",") if g.strip()]:
            config = RetrainConfig(
                grad=grad,
                half_window=half_window if grad == "difference" else 8,
                epochs=args.epochs,
                lr=args.lr,
                batch_size=args.batch_size,
                seed=seed,
            )

            tags = {"seed": seed, "multiplier": name, "bits": lut.bits_a, "signed": lut.signed}
            tags |= {"mae_pct": entry.mae_pct, "grad": grad, "half_window": ""}

            def log(record: EpochRecord, tags: dict[str, Any] = tags) -> None:
                epoch_rows.append({**tags, **{k: v for k, v in asdict(record).items() if k in EPOCH_FIELDS}})
                write_csv(args.out / "retrain_epochs.csv", EPOCH_FIELDS, epoch_rows)
                print(
                    f"  seed {seed} {tags['multiplier']} {tags['grad']:10s} epoch {record.epoch}: "
                    f"test {record.test_accuracy:6.2f} % loss {record.train_loss:.3f} ({record.seconds:.1f} s)",
                    flush=True,
                )

            if grad == "difference" and half_window == "auto":
                from approxlut.nn.config import AssignmentMapping
                from approxlut.nn.halfwindow import choose_half_windows

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
            before = {"epoch": 0, "train_loss": "", "train_accuracy": "", "seconds": 0.0}
            epoch_rows.append({**tags, **before, "test_accuracy": result.before_accuracy})
        write_outputs(args.out, epoch_rows, summary)
        print(
            f"seed {seed} {name}: quantised exact {exact_accuracy:.2f} %, before {_fmt(row['before'])} %, "
            f"STE {_fmt(row['after_ste'])} %, difference {_fmt(row['after_difference'])} % "
            f"[{time.perf_counter() - started:.0f} s]",
            flush=True,
        )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    epoch_rows: list[dict[str, Any]] = []
    summary: list[dict[str, Any]] = []
    started = time.perf_counter()
    for seed in args.seeds:
        run_seed(args, seed, epoch_rows, summary)
    seeds = write_outputs(args.out, epoch_rows, summary)
    print()
    print(markdown(summary))
    print(markdown_seeds(seeds))
    print(f"{len(args.seeds)} seed(s) in {time.perf_counter() - started:.0f} s")
    print(f"wrote {args.out}/retrain_epochs.csv, retrain_summary.csv/.md, retrain_seeds.csv/.md, retrain_accuracy.png")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except LutgenError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(error.exit_code)
